//! Application sessions (issue 33, docs/ingest.md "Sessions"): a pushed sample whose
//! `session_id` label is a UUID records that session in the `sessions` table beside the
//! agent's own runs, once (the first time seen), so that `store stats` lists it and
//! `store export --session` finds its events.
//!
//! No new field and no codec change: an application's session is a [`SessionRecord`] whose
//! `version` is [`APP_SESSION_PREFIX`] + the producer's name. An agent's version never starts
//! with it (it is the crate's semver), and an older agent reading the file shows it as a version.
//!
//! The agent's [`Store::record_session`] keeps the newest [`MAX_SESSIONS`] of all records; here
//! the applications' are held to [`MAX_APP_SESSIONS`] (their oldest go first), then the table
//! to [`MAX_SESSIONS`] (the oldest agent runs go, as `record_session` would drop them), so a
//! producer that makes a session per event cannot push the agent's runs out: at least
//! `MAX_SESSIONS - MAX_APP_SESSIONS` runs stay.

use crate::commit_policy::Kind;
use crate::tables::SESSIONS;
use crate::{InsertError, MAX_SESSIONS, SessionRecord, Store, codec, relock};
use redb::{ReadableTable, ReadableTableMetadata};

/// `version` of an application's session record: `app:<producer>`.
pub const APP_SESSION_PREFIX: &str = "app:";

/// Most application sessions kept (oldest go first).
pub const MAX_APP_SESSIONS: u64 = 128;

impl SessionRecord {
    /// The producer, when this is an application's session (`version` = `app:<producer>`);
    /// `None` for an agent run.
    pub fn application(&self) -> Option<&str> {
        self.version.strip_prefix(APP_SESSION_PREFIX)
    }
}

impl Store {
    /// Records each of `sessions` whose `session_id` is in no record yet (agent runs
    /// included: an application may tie its events to the agent's own run), in ONE durable
    /// commit; a call that finds them all recorded writes nothing. Returns how many were new.
    /// Each should be an application's ([`SessionRecord::application`]). Past
    /// [`MAX_APP_SESSIONS`] the applications' oldest records go; past [`MAX_SESSIONS`] in all,
    /// the oldest agent runs.
    pub fn record_app_sessions(&self, sessions: &[SessionRecord]) -> Result<usize, InsertError> {
        if sessions.is_empty() {
            return Ok(0);
        }
        let mut w = relock(self.writer.lock());
        self.write_if(&mut w, Kind::Data, |txn| {
            let mut t = txn.open_table(SESSIONS)?;
            // The table holds at most MAX_SESSIONS + a call's few records: a scan is cheap, and
            // it runs once per session id the ingest cache has not seen.
            let mut known = Vec::new();
            let (mut apps, mut runs) = (Vec::new(), Vec::new());
            for r in t.iter()? {
                let (k, v) = r?;
                let k = *k.value();
                if let Some(s) = codec::decode_session(&k, v.value()) {
                    known.push(s.session_id);
                    if s.application().is_some() {
                        apps.push(k);
                    } else {
                        runs.push(k);
                    }
                }
            }
            let mut added = 0usize;
            for s in sessions {
                if known.contains(&s.session_id) {
                    continue;
                }
                known.push(s.session_id);
                let key = codec::session_key(s);
                t.insert(&key, codec::session_bytes(s).as_slice())?;
                apps.push(key);
                added += 1;
            }
            if added == 0 {
                return Ok((0, false));
            }
            // Keys start with the start time: sorted keys are oldest first. The applications'
            // own cap first; then, past MAX_SESSIONS, the oldest agent runs (as
            // `record_session` would drop them), which leaves at least
            // MAX_SESSIONS - MAX_APP_SESSIONS runs.
            apps.sort_unstable();
            let excess = (apps.len() as u64).saturating_sub(MAX_APP_SESSIONS);
            for k in apps
                .iter()
                .take(usize::try_from(excess).unwrap_or(usize::MAX))
            {
                t.remove(k)?;
            }
            let excess = t.len()?.saturating_sub(MAX_SESSIONS);
            for k in runs
                .iter()
                .take(usize::try_from(excess).unwrap_or(usize::MAX))
            {
                t.remove(k)?;
            }
            Ok((added, true))
        })
        .map_err(|e| e.into_insert(&self.path))
    }
}
