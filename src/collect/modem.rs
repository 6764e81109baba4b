//! modem_* series from ModemManager over D-Bus (signal, technology, registration, operator,
//! bearer bytes), per modem.
//!
//! **The tick never waits on D-Bus.** A task on the agent's executor ([`ModemCollector::take_task`],
//! spawned by the agent beside the uploader) polls ModemManager every collection interval
//! (`GetManagedObjects`, then `Bearer.Stats` per bearer) and replaces a fixed table of at most
//! [`MAX_MODEMS`] [`Reading`]s under a mutex; the tick copies from that table into samples
//! without allocating. Without the task (`once`) the table stays empty.
//!
//! Modems come and go: each poll replaces the whole table, so a modem ModemManager no longer
//! lists has no series from the next tick on; modems that appear or vanish (by index and label)
//! are counted in `modem_added_total` / `modem_removed_total`. ModemManager leaving the bus, a
//! reply that times out ([`CALL_TIMEOUT`]) or the bus going away empties the table (no stale
//! series); the task reconnects with a backoff of 1 s doubling to 30 s.
//!
//! Unavailable (not failed) when there is no bus at the address, or when ModemManager is
//! neither on it nor activatable (not installed). Installed but not started yet: the collector
//! runs, with no modem, until it starts (calls never auto-start it).
//!
//! `[modem] signal_rate`: `Signal.Setup(rate)` once per modem appearance; refused for want of
//! the polkit action, one warning naming it, and the basic readings go on.

mod convert;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use smol::Timer;

pub use convert::{
    ACCESS_STATES, BEARER_PATH_PREFIX, Counts, IFACE_BEARER, IFACE_SIGNAL, MAX_MODEMS,
    MODEM_PATH_PREFIX, REGISTRATION_STATES, Reading, SIGNAL_TECHS, STATE_CONNECTED,
    read_bearer_stats, read_managed_objects, registration_index,
};

use super::{
    BackgroundTask, CollectError, Collector, OpenError, Outcome, UnitLabels, label_value,
    unit_labels,
};
use crate::config::{CollectorKind, Config};
use crate::dbus::{Arg, Call, Connection, DbusError, Reply, Value, system_bus_address};
use crate::model::ring::SampleSink;
use crate::model::sample::{LabelKey, Metric};

/// ModemManager's bus name.
pub const MM_NAME: &str = "org.freedesktop.ModemManager1";
const MM_PATH: &str = "/org/freedesktop/ModemManager1";
/// The polkit action `Signal.Setup` needs (ModemManager's policy: device control).
pub const POLKIT_DEVICE_CONTROL: &str = "org.freedesktop.ModemManager1.Device.Control";
/// Longest wait for one reply (or the connection and authentication) before the connection is
/// given up.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The bound on the probe at open (the agent's start waits for it).
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Samples per modem at most: quality, 4 readings × 4 technologies, the access-technology and
/// registration state sets, operator, connected, rx and tx.
const PER_MODEM: usize =
    1 + 4 * SIGNAL_TECHS.len() + ACCESS_STATES.len() + REGISTRATION_STATES.len() + 1 + 1 + 2;

/// What the task publishes and the tick reads.
#[derive(Debug, Default)]
struct Table {
    modems: heapless::Vec<Reading, MAX_MODEMS>,
    added: u64,
    removed: u64,
    /// Modem objects left out over [`MAX_MODEMS`], summed over polls.
    dropped: u64,
    /// Values skipped since the last tick (bad types and shapes).
    skipped: u32,
}

impl Table {
    /// Replaces the modems by `next`, counting those that appeared and vanished.
    fn publish(&mut self, next: &[Reading], counts: Counts) {
        let same = |a: &Reading, b: &Reading| a.id == b.id && a.label == b.label;
        let gone = self
            .modems
            .iter()
            .filter(|o| !next.iter().any(|n| same(o, n)))
            .count();
        let new = next
            .iter()
            .filter(|n| !self.modems.iter().any(|o| same(o, n)))
            .count();
        self.removed += gone as u64;
        self.added += new as u64;
        self.dropped += u64::from(counts.dropped);
        self.skipped = self.skipped.saturating_add(counts.skipped);
        self.modems.clear();
        for r in next {
            // `next` holds at most MAX_MODEMS: never refused.
            let _ = self.modems.push(r.clone());
        }
    }
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // A panic elsewhere while holding it cannot leave the table half-written in a way that
    // matters (each field is whole): keep going.
    table
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct ModemCollector {
    table: Arc<Mutex<Table>>,
    /// The poller, until the agent takes it to its executor.
    task: Option<BackgroundTask>,
}

impl std::fmt::Debug for ModemCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModemCollector")
            .field("table", &self.table)
            .field("task", &self.task.is_some())
            .finish()
    }
}

/// The bus address: `[modem] dbus_address`, else the system bus.
fn bus_address(config: &Config) -> String {
    if config.modem.dbus_address.is_empty() {
        system_bus_address()
    } else {
        config.modem.dbus_address.clone()
    }
}

/// Whether ModemManager is on the bus at `address` or activatable there.
async fn probe(address: &str) -> Result<bool, String> {
    let mut conn = Connection::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let bus = |member| Call {
        destination: "org.freedesktop.DBus",
        path: "/org/freedesktop/DBus",
        interface: "org.freedesktop.DBus",
        member,
    };
    let owned = conn
        .call(&bus("NameHasOwner"), &[Arg::Str(MM_NAME)])
        .await
        .map_err(|e| e.to_string())?;
    if matches!(owned.as_deref(), Ok([Value::Bool(true)])) {
        return Ok(true);
    }
    let activatable = conn
        .call(&bus("ListActivatableNames"), &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(match activatable.as_deref() {
        Ok([Value::Array(names)]) => names.iter().any(|n| n.as_str() == Some(MM_NAME)),
        _ => false,
    })
}

impl Collector for ModemCollector {
    fn open(config: &Config) -> Result<ModemCollector, OpenError> {
        let address = bus_address(config);
        let probed = smol::block_on(smol::future::or(probe(&address), async {
            Timer::after(OPEN_TIMEOUT).await;
            Err(format!("no answer in {} s", OPEN_TIMEOUT.as_secs()))
        }));
        match probed {
            Err(why) => {
                return Err(OpenError::Unavailable(format!(
                    "no D-Bus bus at {address}: {why}"
                )));
            }
            Ok(false) => {
                return Err(OpenError::Unavailable(format!(
                    "ModemManager ({MM_NAME}) is neither running nor installed on the bus at {address}"
                )));
            }
            Ok(true) => {}
        }
        let table = Arc::new(Mutex::new(Table::default()));
        let interval = config.collect.interval_for(CollectorKind::Modem);
        let task = Poller {
            address,
            signal_rate: config.modem.signal_rate,
            interval,
            table: table.clone(),
            set_up: heapless::Vec::new(),
            denied_logged: false,
        };
        Ok(ModemCollector {
            table,
            task: Some(Box::pin(task.run())),
        })
    }

    fn max_samples(_: &Config) -> usize {
        MAX_MODEMS * PER_MODEM + 3
    }

    fn take_task(&mut self) -> Option<BackgroundTask> {
        self.task.take()
    }

    fn collect(
        &mut self,
        ts_ms: i64,
        _buf: &mut [u8],
        out: &mut dyn SampleSink,
    ) -> Result<Outcome, CollectError> {
        let mut t = lock(&self.table);
        let mut o = Outcome::ignoring(std::mem::take(&mut t.skipped));
        for r in &t.modems {
            push_modem(&mut o, out, ts_ms, r);
        }
        let none = UnitLabels::new();
        o.push(out, ts_ms, &none, Metric::ModemAddedTotal, t.added as f64);
        o.push(
            out,
            ts_ms,
            &none,
            Metric::ModemRemovedTotal,
            t.removed as f64,
        );
        o.push(
            out,
            ts_ms,
            &none,
            Metric::ModemDroppedTotal,
            t.dropped as f64,
        );
        Ok(o)
    }
}

/// One modem's samples (allocation-free: labels are inline strings).
fn push_modem(o: &mut Outcome, out: &mut dyn SampleSink, ts: i64, r: &Reading) {
    let modem = unit_labels(&[(LabelKey::Modem, &r.label)]);
    let with = |key: LabelKey, value: &str| {
        let v = label_value(value).unwrap_or_default();
        unit_labels(&[(LabelKey::Modem, &r.label), (key, &v)])
    };
    if let Some(q) = r.quality {
        o.push(out, ts, &modem, Metric::ModemSignalQualityPercent, q);
    }
    const SIGNAL: [Metric; 4] = [
        Metric::ModemSignalRssiDbm,
        Metric::ModemSignalRsrpDbm,
        Metric::ModemSignalRsrqDb,
        Metric::ModemSignalSnrDb,
    ];
    for (values, (_, tech)) in r.signal.iter().zip(SIGNAL_TECHS) {
        if values.iter().all(|v| v.is_nan()) {
            continue;
        }
        let labels = with(LabelKey::Technology, tech);
        for (v, metric) in values.iter().zip(SIGNAL) {
            if v.is_finite() {
                o.push(out, ts, &labels, metric, *v);
            }
        }
    }
    if let Some(bits) = r.access {
        for (name, mask) in ACCESS_STATES {
            let on = f64::from(u8::from(bits & mask != 0));
            let labels = with(LabelKey::Technology, name);
            o.push(out, ts, &labels, Metric::ModemAccessTechnology, on);
        }
    }
    if let Some(state) = r.registration {
        let current = registration_index(state);
        for (i, name) in REGISTRATION_STATES.iter().enumerate() {
            let labels = with(LabelKey::State, name);
            let on = f64::from(u8::from(i == current));
            o.push(out, ts, &labels, Metric::ModemRegistrationState, on);
        }
    }
    if !r.operator.is_empty() {
        let labels = unit_labels(&[
            (LabelKey::Modem, &r.label),
            (LabelKey::Operator, &r.operator),
        ]);
        o.push(out, ts, &labels, Metric::ModemOperatorInfo, 1.0);
    }
    if let Some(state) = r.state {
        let connected = f64::from(u8::from(state == STATE_CONNECTED));
        o.push(out, ts, &modem, Metric::ModemConnected, connected);
    }
    if let Some(rx) = r.rx_bytes {
        o.push(out, ts, &modem, Metric::ModemReceiveBytesTotal, rx);
    }
    if let Some(tx) = r.tx_bytes {
        o.push(out, ts, &modem, Metric::ModemTransmitBytesTotal, tx);
    }
}

/// Why a session with the bus ended.
#[derive(Debug)]
enum End {
    Bus(DbusError),
    Timeout,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Bus(e) => e.fmt(f),
            End::Timeout => write!(f, "no reply in {} s", CALL_TIMEOUT.as_secs()),
        }
    }
}

/// `f` bounded by [`CALL_TIMEOUT`].
async fn bounded<T>(f: impl Future<Output = Result<T, DbusError>>) -> Result<T, End> {
    smol::future::or(async { f.await.map_err(End::Bus) }, async {
        Timer::after(CALL_TIMEOUT).await;
        Err(End::Timeout)
    })
    .await
}

async fn call(conn: &mut Connection, c: Call<'_>, args: &[Arg<'_>]) -> Result<Reply, End> {
    bounded(conn.call(&c, args)).await
}

/// The task that keeps the table.
struct Poller {
    address: String,
    signal_rate: u32,
    interval: Duration,
    table: Arc<Mutex<Table>>,
    /// Modems `Signal.Setup` was called on since ModemManager (re)appeared.
    set_up: heapless::Vec<u32, MAX_MODEMS>,
    /// The denial names the polkit action once per process.
    denied_logged: bool,
}

impl Poller {
    async fn run(mut self) {
        let mut backoff = Duration::from_secs(1);
        let mut down_logged = false;
        loop {
            match bounded(Connection::connect(&self.address)).await {
                Ok(mut conn) => {
                    if down_logged {
                        log::info!(collector = "modem"; "D-Bus connection to {} back", self.address);
                    }
                    backoff = Duration::from_secs(1);
                    let end = self.session(&mut conn).await;
                    log::warn!(collector = "modem", error_type = "dbus";
                        "D-Bus connection to {} lost: {end}; modem series stop until it is back", self.address);
                    down_logged = true;
                }
                Err(e) => {
                    if !down_logged {
                        log::warn!(collector = "modem", error_type = "dbus";
                            "cannot reach D-Bus at {}: {e}; retrying", self.address);
                        down_logged = true;
                    }
                }
            }
            lock(&self.table).publish(&[], Counts::default());
            self.set_up.clear();
            Timer::after(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Polls until the connection fails.
    async fn session(&mut self, conn: &mut Connection) -> End {
        let mut next = heapless::Vec::<Reading, MAX_MODEMS>::new();
        let mut present: Option<bool> = None;
        loop {
            let counts = match self.poll(conn, &mut next).await {
                Err(end) => return end,
                Ok(counts) => counts,
            };
            let now = counts.is_some();
            if present != Some(now) {
                if now {
                    log::info!(collector = "modem", modems = next.len(); "ModemManager is on the bus");
                } else {
                    log::info!(collector = "modem"; "ModemManager is not on the bus: no modem series until it starts");
                    self.set_up.clear();
                }
                present = Some(now);
            }
            lock(&self.table).publish(&next, counts.unwrap_or_default());
            Timer::after(self.interval).await;
        }
    }

    /// One poll into `next`: `None` when ModemManager is not on the bus.
    async fn poll(
        &mut self,
        conn: &mut Connection,
        next: &mut heapless::Vec<Reading, MAX_MODEMS>,
    ) -> Result<Option<Counts>, End> {
        let c = Call {
            destination: MM_NAME,
            path: MM_PATH,
            interface: "org.freedesktop.DBus.ObjectManager",
            member: "GetManagedObjects",
        };
        let body = match call(conn, c, &[]).await? {
            Ok(body) => body,
            Err((name, _)) if name.starts_with("org.freedesktop.DBus.Error.") => {
                // ServiceUnknown, NameHasNoOwner: not running (or leaving).
                next.clear();
                return Ok(None);
            }
            Err((name, text)) => {
                log::warn!(collector = "modem", error_type = "dbus"; "GetManagedObjects failed: {name}: {text}");
                next.clear();
                return Ok(Some(Counts {
                    skipped: 1,
                    dropped: 0,
                }));
            }
        };
        let mut counts = read_managed_objects(&body, next);
        for r in next.iter_mut() {
            self.bearer_bytes(conn, r, &mut counts).await?;
        }
        if self.signal_rate > 0 {
            self.set_up.retain(|id| next.iter().any(|r| r.id == *id));
            for r in next.iter() {
                if !self.set_up.contains(&r.id) {
                    self.signal_setup(conn, r).await?;
                    let _ = self.set_up.push(r.id);
                }
            }
        }
        Ok(Some(counts))
    }

    /// Sums `Bearer.Stats` over the modem's bearers into `r` (a bearer that vanished meanwhile
    /// is left out).
    async fn bearer_bytes(
        &self,
        conn: &mut Connection,
        r: &mut Reading,
        counts: &mut Counts,
    ) -> Result<(), End> {
        for b in r.bearers.clone() {
            let path = format!("{BEARER_PATH_PREFIX}{b}");
            let c = Call {
                destination: MM_NAME,
                path: &path,
                interface: "org.freedesktop.DBus.Properties",
                member: "Get",
            };
            let reply = call(conn, c, &[Arg::Str(IFACE_BEARER), Arg::Str("Stats")]).await?;
            let Ok(body) = reply else { continue };
            match body.first().and_then(|v| read_bearer_stats(v, counts)) {
                Some((rx, tx)) => {
                    if let Some(rx) = rx {
                        r.rx_bytes = Some(r.rx_bytes.unwrap_or(0.0) + rx);
                    }
                    if let Some(tx) = tx {
                        r.tx_bytes = Some(r.tx_bytes.unwrap_or(0.0) + tx);
                    }
                }
                None => counts.skipped += 1,
            }
        }
        Ok(())
    }

    async fn signal_setup(&mut self, conn: &mut Connection, r: &Reading) -> Result<(), End> {
        let path = format!("{MODEM_PATH_PREFIX}{}", r.id);
        let c = Call {
            destination: MM_NAME,
            path: &path,
            interface: IFACE_SIGNAL,
            member: "Setup",
        };
        let rate = self.signal_rate;
        match call(conn, c, &[Arg::U32(rate)]).await? {
            Ok(_) => {
                log::info!(collector = "modem", modem = r.label.as_str(); "extended signal readings every {rate} s");
            }
            Err((name, text)) if is_denied(&name) => {
                if !self.denied_logged {
                    log::warn!(collector = "modem", modem = r.label.as_str(), error_type = "denied";
                        "Signal.Setup({rate}) denied ({name}: {text}): the agent's user needs the polkit action {POLKIT_DEVICE_CONTROL} (docs/metrics.md, \"modem\"); signal quality, technology, registration and bytes go on");
                    self.denied_logged = true;
                }
            }
            Err((name, text)) => {
                log::warn!(collector = "modem", modem = r.label.as_str(), error_type = "dbus";
                    "Signal.Setup({rate}) failed: {name}: {text}");
            }
        }
        Ok(())
    }
}

/// An error reply that means "not authorised" (ModemManager's `Core.Unauthorized`, or the bus
/// refusing the call).
fn is_denied(name: &str) -> bool {
    name.ends_with(".Unauthorized")
        || name == "org.freedesktop.DBus.Error.AccessDenied"
        || name.ends_with(".NotAuthorized")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::model::sample::Sample;

    fn reading(id: u32, label: &str) -> Reading {
        let mut r = Reading::new(id);
        r.label = convert::text(label);
        r.operator = convert::text("Telekom");
        r.quality = Some(50.0);
        r.access = Some(0x4000);
        r.registration = Some(1);
        r.state = Some(STATE_CONNECTED);
        r.signal[2] = [-60.0, -90.0, -10.0, 12.0];
        r.rx_bytes = Some(1.0);
        r.tx_bytes = Some(2.0);
        r
    }

    fn collector(table: Table) -> ModemCollector {
        ModemCollector {
            table: Arc::new(Mutex::new(table)),
            task: None,
        }
    }

    /// Every series carries its row's labels in order; the bound holds; appearing and
    /// vanishing modems are counted and leave no series.
    #[test]
    fn samples_follow_the_table() {
        let mut t = Table::default();
        t.publish(
            &[reading(0, "wwan0"), reading(1, "wwan1")],
            Counts::default(),
        );
        let mut c = collector(t);
        let mut out: Vec<Sample> = Vec::new();
        let o = c.collect(1, &mut [], &mut out).unwrap();
        assert_eq!(o.emitted as usize, out.len());
        // 2 × (1 + 4 + 6 + 7 + 1 + 1 + 2) + 3.
        assert_eq!(out.len(), 2 * 22 + 3);
        assert!(out.len() <= ModemCollector::max_samples(&Config::default()));
        for s in &out {
            let keys: Vec<LabelKey> = s.labels.iter().map(|l| l.key).collect();
            assert_eq!(keys, s.metric.labels(), "{:?}", s.metric);
            assert_eq!(s.metric.collector(), CollectorKind::Modem);
        }
        let value = |out: &[Sample], m: Metric| out.iter().find(|s| s.metric == m).map(|s| s.value);
        assert_eq!(value(&out, Metric::ModemAddedTotal), Some(2.0));

        // wwan1 replugged as a new index, wwan0 gone.
        lock(&c.table).publish(
            &[reading(2, "wwan1")],
            Counts {
                skipped: 4,
                dropped: 1,
            },
        );
        out.clear();
        let o = c.collect(2, &mut [], &mut out).unwrap();
        assert_eq!(o.skipped, 4);
        assert_eq!(out.len(), 22 + 3);
        assert!(
            out.iter()
                .all(|s| s.labels.is_empty() || s.labels[0].value.as_str() == "wwan1")
        );
        assert_eq!(value(&out, Metric::ModemAddedTotal), Some(3.0));
        assert_eq!(value(&out, Metric::ModemRemovedTotal), Some(2.0));
        assert_eq!(value(&out, Metric::ModemDroppedTotal), Some(1.0));
        // The skips are per tick.
        out.clear();
        assert_eq!(c.collect(3, &mut [], &mut out).unwrap().skipped, 0);
    }

    /// configs/belabox.toml loads, reports every kind of link of a bond and arms the extended
    /// signal readings.
    #[test]
    fn the_board_profile() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/belabox.toml");
        let config = Config::load(&path).unwrap();
        let mut filter =
            super::super::filter::NameFilter::new(&config.network.include, &config.network.exclude)
                .unwrap();
        for link in ["wwan0", "wwp0s20f0u3i4", "usb0", "eth1", "wlan0"] {
            assert!(filter.allows(link), "{link}");
        }
        for not in ["lo", "docker0", "veth12"] {
            assert!(!filter.allows(not), "{not}");
        }
        assert!(config.collect.enabled(CollectorKind::Modem));
        assert_eq!(config.modem.signal_rate, 10);
        assert_eq!(
            config.collect.interval_for(CollectorKind::Modem),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn denial_names() {
        assert!(is_denied(
            "org.freedesktop.ModemManager1.Error.Core.Unauthorized"
        ));
        assert!(is_denied("org.freedesktop.DBus.Error.AccessDenied"));
        assert!(!is_denied(
            "org.freedesktop.ModemManager1.Error.Core.Unsupported"
        ));
    }
}
