//! Local ingest (issue 33, docs/ingest.md): applications on the board push their own metrics to
//! an `[ingest]` listener (off by default, loopback only by default), and they take the agent's
//! durable path off the board — the store (fsynced before the 204), the pending queue, the
//! uploader (exactly once).
//!
//! One concern a file:
//! - [`listener`]: the socket, the HTTP exchange (heads through `health::http`'s parser), the
//!   time and size bounds, the answers;
//! - [`decode`]: gzip and snappy bodies, bounded before decompressing;
//! - the parsers, each a view over the bytes (no allocation, no `crate::` paths, fuzzed by
//!   `fuzz/fuzz_targets/ingest_*.rs`): [`vm_json`] (`/api/v1/import`), [`prom_text`]
//!   (`/api/v1/import/prometheus`), [`influx`] (`/write`, `/api/v2/write`), [`remote_write`]
//!   (`/api/v1/write`, the protobuf `WriteRequest`);
//! - [`formats`]: each parser's output into a [`series::Batch`] through the rules of
//!   [`series`] (names, labels, the device's labels, the time window, the sample cap);
//! - [`textfile`]: node_exporter's textfile directory, read through the same rules;
//! - [`session`]: the `session_id` label's rule and which sessions a batch introduces;
//! - [`limits`]: the cardinality caps; [`sink`]: the store hand-off. The counters are
//!   `model::ingest` (in the agent's state: `/metrics` shows them).

pub mod decode;
pub mod formats;
pub mod influx;
pub mod limits;
pub mod lines;
pub mod listener;
pub mod prom_text;
pub mod remote_write;
pub mod series;
pub mod session;
pub mod sink;
pub mod textfile;
pub mod vm_json;

use std::future::Future;
use std::io;
use std::sync::Arc;

use crate::config::Config;
use crate::model::state::AgentState;
use crate::upload::store_worker::SharedStore;

/// A bound listener, ready to serve.
#[derive(Debug)]
pub struct Ingest {
    listener: smol::net::TcpListener,
    shared: Arc<listener::Shared>,
    textfile: Option<(std::path::PathBuf, std::time::Duration)>,
}

impl Ingest {
    /// `None` when `[ingest]` is off. Binds `ingest.address`, reads `ingest.token_file` and
    /// starts the store worker; every error names its key.
    pub fn start(
        config: &Config,
        store: &SharedStore,
        state: &Arc<AgentState>,
    ) -> io::Result<Option<Ingest>> {
        let c = &config.ingest;
        if !c.enabled {
            return Ok(None);
        }
        let auth = match &c.token_file {
            Some(path) => Some(crate::upload::read_token(path).map_err(|e| {
                io::Error::other(format!(
                    "ingest.token_file {}: {}",
                    path.display(),
                    // The uploader's wording names remote.token_file; the reason is the same.
                    e.to_string().replace("remote.token_file ", "")
                ))
            })?),
            None => None,
        };
        let std_listener = std::net::TcpListener::bind(c.address)
            .map_err(|e| io::Error::new(e.kind(), format!("ingest.address {}: {e}", c.address)))?;
        let listener = smol::net::TcpListener::try_from(std_listener)
            .map_err(|e| io::Error::new(e.kind(), format!("ingest.address {}: {e}", c.address)))?;
        let mut own_labels = vec!["device_id".to_owned()];
        own_labels.extend(config.device.labels.keys().cloned());
        let rules = series::Rules {
            own_labels,
            max_samples: usize::try_from(c.max_samples_per_request).unwrap_or(usize::MAX),
            retention_ms: i64::try_from(config.storage.retention.as_millis()).unwrap_or(i64::MAX),
            max_future_ms: i64::try_from(c.max_future.as_millis()).unwrap_or(i64::MAX),
        };
        // The board's boot, for the application sessions the sink records ("" when unreadable:
        // the session is still recorded).
        let boot_id =
            std::fs::read_to_string(config.paths.procfs.join("sys/kernel/random/boot_id"))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default();
        let sink = sink::Sink::new(
            store.clone(),
            &config.device.id,
            &config.device.labels,
            &boot_id,
        )?;
        let shared = listener::Shared::new(
            rules,
            usize::try_from(c.max_body_size).unwrap_or(usize::MAX),
            auth,
            sink,
            limits::Cardinality::new(c.max_series, c.max_series_per_producer),
            state.clone(),
        );
        Ok(Some(Ingest {
            listener,
            shared: Arc::new(shared),
            textfile: c.textfile_dir.clone().map(|d| (d, c.textfile_interval)),
        }))
    }

    /// The bound address (tests bind port 0).
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` completes.
    pub async fn serve(self, stop: impl Future) {
        listener::serve(self.listener, self.shared, self.textfile, stop).await;
    }
}
