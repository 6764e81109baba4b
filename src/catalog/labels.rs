//! Label names of the collected series, and the names a user's `device.labels` may not take.

/// Most labels any series carries (thermal: zone + sensor; cpu_seconds_total: core + mode;
/// filesystem_*: mountpoint + fstype; power rails: chip + rail).
pub const MAX_LABELS: usize = 2;

macro_rules! label_keys {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Label names. Kept as an enum so a label costs one byte plus its value.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum LabelKey { $(#[doc = $doc] $variant),* }

        impl LabelKey {
            pub const ALL: &'static [LabelKey] = &[$(LabelKey::$variant),*];

            pub const fn name(self) -> &'static str {
                match self { $(LabelKey::$variant => $name),* }
            }
        }
    };
}

label_keys! {
    Core => "core", "CPU core number, or `all`.";
    Device => "device", "Block device, cooling device number, power supply.";
    Interface => "interface", "Network interface.";
    Zone => "zone", "Thermal zone type.";
    Sensor => "sensor", "Thermal zone directory name.";
    Mode => "mode", "CPU time mode of cpu_seconds_total (`user`, `idle`, …).";
    Mountpoint => "mountpoint", "Mount point (decoded).";
    Fstype => "fstype", "Filesystem type.";
    Policy => "policy", "cpufreq policy number (N of `policyN`).";
    Chip => "chip", "hwmon or iio chip name (`ina3221`, `pwmfan`, …).";
    Rail => "rail", "Power rail name (`VDD_IN`, `POM_5V_IN`, …).";
    Fan => "fan", "Fan number on its chip (N of `pwmN`, `fanN_input`).";
    Engine => "engine", "SoC engine kind: `gpu`, `npu`, `venc`, `vdec`, `jpeg`, …";
    Type => "type", "Cooling device type (`pwm-fan`, `cpufreq-cpu0`, …).";
    Modem => "modem", "Modem: its net port (`wwan0`), else `eq-` and a hash of its equipment id.";
    Technology => "technology", "Radio access technology (`gsm`, `umts`, `hspa`, `cdma`, `lte`, `nr5g`).";
    State => "state", "3GPP registration state (`home`, `roaming`, `searching`, …).";
    Operator => "operator", "Network operator name (else its MCC/MNC code).";
}

/// Label names the agent gives a meaning to besides [`LabelKey`]: the series name and
/// `device_id`, the self-metrics' labels (`collector`, `reason`, `component`, `version`), and
/// the target labels a scraping Prometheus adds (`job`, `instance`) or uses (`le`, `quantile`).
const OWN_LABELS: &[&str] = &[
    "__name__",
    "device_id",
    "collector",
    "reason",
    "component",
    "quantile",
    "le",
    "version",
    "job",
    "instance",
];

/// Every reserved label name: [`OWN_LABELS`] then every [`LabelKey`].
pub fn reserved_labels() -> impl Iterator<Item = &'static str> {
    OWN_LABELS
        .iter()
        .copied()
        .chain(LabelKey::ALL.iter().map(|k| k.name()))
}

/// `Some(name)` when `name` is reserved (refused in `device.labels`).
pub fn reserved_label(name: &str) -> Option<&'static str> {
    reserved_labels().find(|r| *r == name)
}
