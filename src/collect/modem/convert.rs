//! ModemManager's D-Bus values → one fixed-size [`Reading`] per modem.
//!
//! Pure: no I/O; it imports only the D-Bus value type (the fuzz target
//! `fuzz/fuzz_targets/dbus_modem.rs` includes this file and `dbus/wire.rs` by path). Bad input
//! is a counted skip, never a panic: a property of the wrong type (an "odd variant") is skipped
//! and counted, a missing one is left unset, objects past [`MAX_MODEMS`] are counted as dropped,
//! and a whole reply that is not `a{oa{sa{sv}}}` counts one skip. Property names and types are
//! ModemManager's (`org.freedesktop.ModemManager1.Modem`, `.Modem.Modem3gpp`, `.Modem.Signal`,
//! `.Bearer`; ModemManager 1.x API documentation).

use crate::dbus::wire::Value;

/// Most modems tracked (a BELABOX bonds 2–4); more are counted in `modem_dropped_total`.
pub const MAX_MODEMS: usize = 8;
/// Most bearers read per modem (ModemManager keeps one per connection profile in use).
pub const MAX_BEARERS: usize = 4;
/// Longest label value kept (the sample's inline label capacity).
pub const TEXT_CAP: usize = 32;

/// A label value (the same type as `model::sample::LabelValue`).
pub type Text = heapless::String<TEXT_CAP, u8>;

pub const MODEM_PATH_PREFIX: &str = "/org/freedesktop/ModemManager1/Modem/";
pub const BEARER_PATH_PREFIX: &str = "/org/freedesktop/ModemManager1/Bearer/";
pub const IFACE_MODEM: &str = "org.freedesktop.ModemManager1.Modem";
pub const IFACE_3GPP: &str = "org.freedesktop.ModemManager1.Modem.Modem3gpp";
pub const IFACE_SIGNAL: &str = "org.freedesktop.ModemManager1.Modem.Signal";
pub const IFACE_BEARER: &str = "org.freedesktop.ModemManager1.Bearer";

/// The technologies of the `Signal` interface read, as (property, `technology` label).
pub const SIGNAL_TECHS: [(&str, &str); 4] = [
    ("Gsm", "gsm"),
    ("Umts", "umts"),
    ("Lte", "lte"),
    ("Nr5g", "nr5g"),
];
/// The keys read in each technology's map (dBm or dB, signature `d`).
pub const SIGNAL_KEYS: [&str; 4] = ["rssi", "rsrp", "rsrq", "snr"];

/// `AccessTechnologies` bits (MMModemAccessTechnology) grouped into the `technology` states of
/// `modem_access_technology`: GSM/GSM-compact/GPRS/EDGE; UMTS; HSDPA/HSUPA/HSPA/HSPA+;
/// 1xRTT/EV-DO 0/A/B; LTE/LTE Cat-M/LTE NB-IoT; 5G NR.
pub const ACCESS_STATES: [(&str, u32); 6] = [
    ("gsm", 0x2 | 0x4 | 0x8 | 0x10),
    ("umts", 0x20),
    ("hspa", 0x40 | 0x80 | 0x100 | 0x200),
    ("cdma", 0x400 | 0x800 | 0x1000 | 0x2000),
    ("lte", 0x4000 | 0x1_0000 | 0x2_0000),
    ("nr5g", 0x8000),
];

/// The `state` values of `modem_registration_state`.
pub const REGISTRATION_STATES: [&str; 7] = [
    "idle",
    "home",
    "searching",
    "denied",
    "unknown",
    "roaming",
    "emergency",
];

/// MMModem3gppRegistrationState → index in [`REGISTRATION_STATES`]: the SMS-only and
/// CSFB-not-preferred variants are home or roaming; emergency-only and attached-RLOS are
/// emergency; values a later ModemManager may add are unknown.
pub fn registration_index(state: u32) -> usize {
    match state {
        0 => 0,
        1 | 6 | 9 => 1,
        2 => 2,
        3 => 3,
        5 | 7 | 10 => 5,
        8 | 11 => 6,
        _ => 4,
    }
}

/// MMModemState CONNECTED.
pub const STATE_CONNECTED: i32 = 11;
/// MMModemPortType NET.
const PORT_TYPE_NET: u32 = 2;

/// What ModemManager says of one modem, at the last poll. `f64::NAN` / `None`: not reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// N of `/org/freedesktop/ModemManager1/Modem/N` (ModemManager's index; a new one per plug).
    pub id: u32,
    /// The `modem` label: the net port, else `eq-` and a hash of the equipment id, else `mmN`.
    pub label: Text,
    /// `Modem3gpp.OperatorName`, else `OperatorCode`; empty: none.
    pub operator: Text,
    /// `Modem.SignalQuality`'s percent.
    pub quality: Option<f64>,
    /// `Modem.AccessTechnologies` (bits).
    pub access: Option<u32>,
    /// `Modem3gpp.RegistrationState`.
    pub registration: Option<u32>,
    /// `Modem.State`.
    pub state: Option<i32>,
    /// [technology][key] of [`SIGNAL_TECHS`] × [`SIGNAL_KEYS`]; NaN: absent.
    pub signal: [[f64; 4]; 4],
    /// `Modem.Bearers`: the N of each `/org/freedesktop/ModemManager1/Bearer/N`.
    pub bearers: heapless::Vec<u32, MAX_BEARERS>,
    /// Bytes over every bearer (`Bearer.Stats`), `None` until a bearer reported them.
    pub rx_bytes: Option<f64>,
    pub tx_bytes: Option<f64>,
}

impl Reading {
    pub fn new(id: u32) -> Reading {
        Reading {
            id,
            label: Text::new(),
            operator: Text::new(),
            quality: None,
            access: None,
            registration: None,
            state: None,
            signal: [[f64::NAN; 4]; 4],
            bearers: heapless::Vec::new(),
            rx_bytes: None,
            tx_bytes: None,
        }
    }
}

/// Counts of one conversion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Properties or objects skipped for a wrong type or shape.
    pub skipped: u32,
    /// Modems past [`MAX_MODEMS`].
    pub dropped: u32,
}

/// The N of `<prefix>N`.
pub fn path_index(path: &str, prefix: &str) -> Option<u32> {
    let n = path.strip_prefix(prefix)?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// `s` cut to [`TEXT_CAP`] bytes at a character boundary.
pub fn text(s: &str) -> Text {
    let mut t = Text::new();
    for c in s.chars() {
        if t.push(c).is_err() {
            break;
        }
    }
    t
}

/// FNV-1a 64 of `s`: a stable pseudonym for the equipment id (not a secret: an IMEI's space is
/// small enough to search, so the net port is the label when there is one; docs/metrics.md).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Reads the `GetManagedObjects` reply body (`a{oa{sa{sv}}}`) into `out` (cleared first): one
/// [`Reading`] per modem object, in the reply's order, at most [`MAX_MODEMS`]. Labels are made
/// unique: a later modem with the label of an earlier one is skipped and counted.
pub fn read_managed_objects(
    body: &[Value],
    out: &mut heapless::Vec<Reading, MAX_MODEMS>,
) -> Counts {
    out.clear();
    let mut counts = Counts::default();
    let Some(Value::Dict(objects)) = body.first() else {
        counts.skipped += 1;
        return counts;
    };
    for (path, interfaces) in objects {
        let Some(id) = path.as_str().and_then(|p| path_index(p, MODEM_PATH_PREFIX)) else {
            continue; // not a modem (ModemManager manages only modems; anything else is ignored)
        };
        let Value::Dict(interfaces) = interfaces else {
            counts.skipped += 1;
            continue;
        };
        let reading = read_modem(id, interfaces, &mut counts);
        if out.iter().any(|r| r.label == reading.label || r.id == id) {
            counts.skipped += 1;
            continue;
        }
        if out.push(reading).is_err() {
            counts.dropped += 1;
        }
    }
    counts
}

/// The (name, value) pairs of an `a{sv}`, variants unwrapped; `None` if it is not one.
fn properties(v: &Value) -> Option<impl Iterator<Item = (&str, &Value)>> {
    let Value::Dict(entries) = v.unwrap_variant() else {
        return None;
    };
    Some(
        entries
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?, v.unwrap_variant()))),
    )
}

fn u32_of(v: &Value) -> Option<u32> {
    match v {
        Value::U32(n) => Some(*n),
        _ => None,
    }
}

fn i32_of(v: &Value) -> Option<i32> {
    match v {
        Value::I32(n) => Some(*n),
        _ => None,
    }
}

/// `value` into `slot` when it is there: false (a skip) when the property had the wrong type.
fn set<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
    let ok = value.is_some();
    if ok {
        *slot = value;
    }
    ok
}

/// A string property into `slot` (`None` when empty); false when it is not a string.
fn set_text<'a>(slot: &mut Option<&'a str>, v: &'a Value) -> bool {
    match v {
        Value::Str(s) => {
            *slot = Some(s.as_str()).filter(|s| !s.is_empty());
            true
        }
        _ => false,
    }
}

/// One modem object's interfaces (`a{sa{sv}}`) into a [`Reading`].
fn read_modem(id: u32, interfaces: &[(Value, Value)], counts: &mut Counts) -> Reading {
    let mut r = Reading::new(id);
    let mut equipment: Option<&str> = None;
    let mut net_port: Option<&str> = None;
    let (mut operator_name, mut operator_code) = (None, None);
    for (name, props) in interfaces {
        let Some(name) = name.as_str() else {
            counts.skipped += 1;
            continue;
        };
        let Some(props) = properties(props) else {
            counts.skipped += 1;
            continue;
        };
        for (key, v) in props {
            // Each arm takes the property when its type is ModemManager's, else counts a skip.
            let ok = match (name, key) {
                (IFACE_MODEM, "SignalQuality") => match v {
                    Value::Struct(f) => match (f.first(), f.get(1)) {
                        (Some(Value::U32(q)), Some(Value::Bool(_))) if *q <= 100 => {
                            r.quality = Some(f64::from(*q));
                            true
                        }
                        _ => false,
                    },
                    _ => false,
                },
                (IFACE_MODEM, "AccessTechnologies") => set(&mut r.access, u32_of(v)),
                (IFACE_MODEM, "State") => set(&mut r.state, i32_of(v)),
                (IFACE_MODEM, "EquipmentIdentifier") => set_text(&mut equipment, v),
                (IFACE_MODEM, "Ports") => match v {
                    Value::Array(ports) => {
                        net_port = ports.iter().find_map(|p| match p {
                            Value::Struct(f) => match (f.first(), f.get(1)) {
                                (Some(Value::Str(n)), Some(Value::U32(PORT_TYPE_NET)))
                                    if !n.is_empty() =>
                                {
                                    Some(n.as_str())
                                }
                                _ => None,
                            },
                            _ => None,
                        });
                        true
                    }
                    _ => false,
                },
                (IFACE_MODEM, "Bearers") => match v {
                    Value::Array(paths) => {
                        for p in paths {
                            let n = p.as_str().and_then(|p| path_index(p, BEARER_PATH_PREFIX));
                            match n {
                                Some(n) => {
                                    if r.bearers.push(n).is_err() {
                                        counts.skipped += 1;
                                    }
                                }
                                None => counts.skipped += 1,
                            }
                        }
                        true
                    }
                    _ => false,
                },
                (IFACE_3GPP, "RegistrationState") => set(&mut r.registration, u32_of(v)),
                (IFACE_3GPP, "OperatorName") => set_text(&mut operator_name, v),
                (IFACE_3GPP, "OperatorCode") => set_text(&mut operator_code, v),
                (IFACE_SIGNAL, tech) => match SIGNAL_TECHS.iter().position(|(p, _)| *p == tech) {
                    Some(t) => read_signal(v, &mut r.signal[t], counts),
                    None => true, // Rate, thresholds, Cdma, Evdo: not read
                },
                _ => true, // a property the collector does not read
            };
            if !ok {
                counts.skipped += 1;
            }
        }
    }
    r.label = match (net_port, equipment) {
        (Some(port), _) => text(port),
        (None, Some(eq)) => {
            let mut t = Text::new();
            let _ = core::fmt::write(&mut t, format_args!("eq-{:012x}", fnv1a(eq) >> 16));
            t
        }
        (None, None) => {
            let mut t = Text::new();
            let _ = core::fmt::write(&mut t, format_args!("mm{id}"));
            t
        }
    };
    r.operator = text(operator_name.or(operator_code).unwrap_or(""));
    r
}

/// One technology's `a{sv}` of the Signal interface into `out` (by [`SIGNAL_KEYS`]); false
/// when it is not a map. A key of the wrong type or not finite is a counted skip.
fn read_signal(v: &Value, out: &mut [f64; 4], counts: &mut Counts) -> bool {
    let Some(props) = properties(v) else {
        return false;
    };
    for (key, v) in props {
        let Some(k) = SIGNAL_KEYS.iter().position(|s| *s == key) else {
            continue;
        };
        match v {
            Value::Double(d) if d.is_finite() => out[k] = *d,
            _ => counts.skipped += 1,
        }
    }
    true
}

/// `Bearer.Stats` (`a{sv}`, the reply of Properties.Get: a variant) → (rx bytes, tx bytes):
/// `total-rx-bytes`/`total-tx-bytes` (ModemManager ≥ 1.20: over every connection of the
/// bearer) when present, else `rx-bytes`/`tx-bytes` (the current connection). `None` when it
/// is not a map; a byte count of the wrong type is left out and counted.
pub fn read_bearer_stats(v: &Value, counts: &mut Counts) -> Option<(Option<f64>, Option<f64>)> {
    let props = properties(v)?;
    let (mut rx, mut tx, mut total_rx, mut total_tx) = (None, None, None, None);
    for (key, v) in props {
        let slot = match key {
            "rx-bytes" => &mut rx,
            "tx-bytes" => &mut tx,
            "total-rx-bytes" => &mut total_rx,
            "total-tx-bytes" => &mut total_tx,
            _ => continue,
        };
        match v {
            Value::U64(n) => *slot = Some(*n as f64),
            _ => counts.skipped += 1,
        }
    }
    Some((total_rx.or(rx), total_tx.or(tx)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.to_owned())
    }
    fn var(v: Value) -> Value {
        Value::Variant(Box::new(v))
    }
    fn props(p: Vec<(&str, Value)>) -> Value {
        Value::Dict(p.into_iter().map(|(k, v)| (s(k), var(v))).collect())
    }
    fn object(n: u32, ifaces: Vec<(&str, Value)>) -> (Value, Value) {
        (
            Value::Path(format!("{MODEM_PATH_PREFIX}{n}")),
            Value::Dict(ifaces.into_iter().map(|(k, v)| (s(k), v)).collect()),
        )
    }
    fn modem(port: Option<&str>, quality: u32) -> Value {
        let mut ports = vec![Value::Struct(vec![s("cdc-wdm0"), Value::U32(6)])];
        if let Some(p) = port {
            ports.push(Value::Struct(vec![s(p), Value::U32(2)]));
        }
        props(vec![
            (
                "SignalQuality",
                Value::Struct(vec![Value::U32(quality), Value::Bool(true)]),
            ),
            ("AccessTechnologies", Value::U32(0x4000)),
            ("State", Value::I32(11)),
            ("Ports", Value::Array(ports)),
            ("EquipmentIdentifier", s("350000000000001")),
            (
                "Bearers",
                Value::Array(vec![Value::Path(format!("{BEARER_PATH_PREFIX}7"))]),
            ),
        ])
    }

    #[test]
    fn a_modem_with_modem_managers_types() {
        let lte = props(vec![
            ("rsrp", Value::Double(-95.5)),
            ("rsrq", Value::Double(-11.0)),
            ("error-rate", Value::Double(0.0)),
        ]);
        let body = vec![Value::Dict(vec![object(
            3,
            vec![
                (IFACE_MODEM, modem(Some("wwan0"), 71)),
                (
                    IFACE_3GPP,
                    props(vec![
                        ("RegistrationState", Value::U32(1)),
                        ("OperatorName", s("")),
                        ("OperatorCode", s("26201")),
                    ]),
                ),
                (
                    IFACE_SIGNAL,
                    props(vec![("Lte", lte), ("Rate", Value::U32(5))]),
                ),
            ],
        )])];
        let mut out = heapless::Vec::new();
        let counts = read_managed_objects(&body, &mut out);
        assert_eq!(counts, Counts::default());
        let r = &out[0];
        assert_eq!((r.id, r.label.as_str()), (3, "wwan0"));
        assert_eq!(r.operator.as_str(), "26201");
        assert_eq!(r.quality, Some(71.0));
        assert_eq!(
            (r.access, r.state, r.registration),
            (Some(0x4000), Some(11), Some(1))
        );
        assert_eq!(r.signal[2][1..3], [-95.5, -11.0]);
        assert!(r.signal[2][0].is_nan() && r.signal[3].iter().all(|v| v.is_nan()));
        assert_eq!(r.bearers.as_slice(), &[7]);
    }

    /// Without a net port the label is the equipment id's hash, never the id itself.
    #[test]
    fn no_net_port_is_a_hash_of_the_equipment_id() {
        let body = vec![Value::Dict(vec![object(
            0,
            vec![(IFACE_MODEM, modem(None, 1))],
        )])];
        let mut out = heapless::Vec::new();
        read_managed_objects(&body, &mut out);
        let label = out[0].label.as_str();
        assert!(label.starts_with("eq-") && label.len() == 15, "{label}");
        assert!(!label.contains("350000000000001"));
        assert_eq!(label, format!("eq-{:012x}", fnv1a("350000000000001") >> 16));
    }

    /// Odd variants and missing properties: each wrong one is a counted skip, the rest is read.
    #[test]
    fn odd_variants_are_counted_skips() {
        let odd = props(vec![
            ("SignalQuality", Value::U32(50)),                   // not (ub)
            ("AccessTechnologies", s("lte")),                    // not u
            ("State", Value::U32(11)),                           // not i
            ("Ports", Value::U32(0)),                            // not a(su)
            ("Bearers", Value::Array(vec![s("/not/a/bearer")])), // not a bearer path
        ]);
        let signal = props(vec![
            (
                "Lte",
                props(vec![("rsrp", s("-90")), ("snr", Value::Double(f64::NAN))]),
            ),
            ("Nr5g", Value::U32(1)),
        ]);
        let body = vec![Value::Dict(vec![
            object(1, vec![(IFACE_MODEM, odd), (IFACE_SIGNAL, signal)]),
            object(2, vec![(IFACE_MODEM, Value::U32(3))]),
            (
                Value::Path("/org/freedesktop/ModemManager1/Sim/0".into()),
                Value::U32(0),
            ),
            (Value::Path(format!("{MODEM_PATH_PREFIX}9")), Value::U32(0)),
        ])];
        let mut out = heapless::Vec::new();
        let counts = read_managed_objects(&body, &mut out);
        // 5 modem properties, rsrp, snr (NaN), Nr5g, modem 2's interface, modem 9's object.
        assert_eq!(
            counts,
            Counts {
                skipped: 10,
                dropped: 0
            }
        );
        assert_eq!(out.len(), 2);
        let r = &out[0];
        assert_eq!((r.quality, r.access, r.state), (None, None, None));
        assert_eq!(r.label.as_str(), "mm1");
        assert!(r.signal.iter().flatten().all(|v| v.is_nan()));
        // Not a map at all.
        let counts = read_managed_objects(&[Value::U32(1)], &mut out);
        assert_eq!((counts.skipped, out.len()), (1, 0));
        assert_eq!(read_managed_objects(&[], &mut out).skipped, 1);
    }

    /// More modems than the table holds: the rest are counted, not kept; a duplicate label is
    /// skipped.
    #[test]
    fn huge_maps_are_bounded() {
        let mut objects: Vec<_> = (0..100)
            .map(|n| {
                let port = format!("wwan{n}");
                object(n, vec![(IFACE_MODEM, modem(Some(&port), 5))])
            })
            .collect();
        objects.push(object(200, vec![(IFACE_MODEM, modem(Some("wwan0"), 5))]));
        let mut out = heapless::Vec::new();
        let counts = read_managed_objects(&[Value::Dict(objects)], &mut out);
        assert_eq!(out.len(), MAX_MODEMS);
        assert_eq!(
            counts,
            Counts {
                skipped: 1,
                dropped: 100 - MAX_MODEMS as u32
            }
        );
        // A label longer than a label value is cut at a character boundary.
        assert_eq!(text(&"é".repeat(40)).len(), 32);
    }

    #[test]
    fn bearer_stats_prefer_the_totals() {
        let mut c = Counts::default();
        let v = var(props(vec![
            ("rx-bytes", Value::U64(10)),
            ("tx-bytes", Value::U64(20)),
            ("total-rx-bytes", Value::U64(1000)),
            ("duration", Value::U32(5)),
        ]));
        assert_eq!(
            read_bearer_stats(&v, &mut c),
            Some((Some(1000.0), Some(20.0)))
        );
        let v = props(vec![("rx-bytes", Value::U32(10))]);
        assert_eq!(read_bearer_stats(&v, &mut c), Some((None, None)));
        assert_eq!(c.skipped, 1);
        assert_eq!(read_bearer_stats(&Value::U64(1), &mut c), None);
    }

    #[test]
    fn registration_states() {
        // MMModem3gppRegistrationState 0..=11 in order, then one a later ModemManager may add.
        let expected = [0, 1, 2, 3, 4, 5, 1, 5, 6, 1, 5, 6, 4];
        for (state, index) in expected.into_iter().enumerate() {
            assert_eq!(registration_index(state as u32), index, "state {state}");
        }
        assert_eq!(REGISTRATION_STATES[1], "home");
        assert_eq!(REGISTRATION_STATES[5], "roaming");
    }
}
