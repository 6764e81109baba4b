//! The executor thread: health responder, clock-skew check and uploader on one smol executor.

use std::sync::Arc;

use super::RunError;
use crate::collect::BackgroundTask;
use crate::config::Config;
use crate::health::{self, HealthRules};
use crate::model::state::AgentState;
use crate::monitor::skew::{self, SkewConfig};
use crate::net;
use crate::upload::store_worker::SharedStore;
use crate::upload::{UploadControl, Uploader};

/// The executor thread and how to stop it.
#[derive(Debug)]
pub(super) struct AsyncTasks {
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Option<smol::channel::Sender<()>>,
    upload: Option<UploadControl>,
}

impl AsyncTasks {
    /// The uploader's control, when uploads are enabled.
    pub(super) fn upload(&self) -> Option<&UploadControl> {
        self.upload.as_ref()
    }

    /// Stops every task (uploads in flight are abandoned: their samples stay pending) and joins
    /// the thread.
    pub(super) fn stop(mut self) {
        if let Some(u) = &self.upload {
            u.stop();
        }
        // Closing the channel completes every task's `stop` future.
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!(error_type = "panic"; "the async task thread panicked");
            }
        }
    }
}

/// Binds the health listener (a bind error is fatal and clear), builds the uploader, and starts
/// one executor thread for the health responder, the clock-skew check and the uploader.
pub(super) fn start_async_tasks(
    config: &Config,
    store: &SharedStore,
    state: &Arc<AgentState>,
    rules: HealthRules,
    background: Vec<BackgroundTask>,
) -> Result<AsyncTasks, RunError> {
    // [ingest]: its own listener, bound here so a bad address or token fails the start.
    let ingest = crate::ingest::Ingest::start(config, store, state).map_err(RunError::Ingest)?;
    let listener = if config.health.enabled {
        Some(health::bind(config.health.address).map_err(RunError::HealthBind)?)
    } else {
        None
    };
    // One client for the uploader and the clock-skew check: one idle connection, and one trust
    // store (remote.ca_file, else the system roots), built on the first https request.
    let client = net::Client::with_ca_file(config.remote.as_ref().and_then(|r| r.ca_file.clone()));
    let uploader = match &config.remote {
        Some(remote) => Some(
            Uploader::new(remote, store.clone(), state.clone(), client.clone())
                .map_err(RunError::Uploader)?,
        ),
        None => None,
    };
    let upload = uploader.as_ref().map(Uploader::control);
    let skew = SkewConfig::from_config(config);
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let stopped = move || {
        let rx = stop_rx.clone();
        async move {
            let _ = rx.recv().await;
        }
    };
    let state = state.clone();
    let thread = std::thread::Builder::new()
        .name("bbm-async".into())
        .spawn(move || {
            let ex = smol::Executor::new();
            let mut tasks = Vec::new();
            if let Some(l) = listener {
                tasks.push(ex.spawn(health::serve(l, state.clone(), rules, stopped())));
            }
            if let Some(i) = ingest {
                tasks.push(ex.spawn(i.serve(stopped())));
            }
            if let Some(sc) = skew {
                tasks.push(ex.spawn(skew::skew_task(
                    sc,
                    client.clone(),
                    state.clone(),
                    stopped(),
                )));
            }
            if let Some(u) = uploader {
                tasks.push(ex.spawn(u.run()));
            }
            // The collectors' own tasks never end by themselves: each until the stop.
            for t in background {
                tasks.push(ex.spawn(smol::future::or(t, stopped())));
            }
            smol::block_on(ex.run(async {
                for t in tasks {
                    t.await;
                }
            }));
        })
        .map_err(RunError::AsyncThread)?;
    Ok(AsyncTasks {
        thread: Some(thread),
        stop: Some(stop_tx),
        upload,
    })
}
