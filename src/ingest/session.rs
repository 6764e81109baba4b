//! Application sessions (docs/ingest.md "Sessions"): a `session_id` label ties a producer's
//! samples to the store's session table. Pure decisions, table-tested here; the sink
//! (`sink.rs`) writes what [`new_sessions`] returns before the samples, both before the 204.
//!
//! - [`check_value`]: a `session_id` value must be a UUID in its canonical form (lowercase,
//!   hyphenated: what `uuidgen`, `/proc/sys/kernel/random/uuid`, Python's `str(uuid4())` and
//!   `store stats` print). Anything else is the request's 400 naming the line (the builder calls
//!   it with the other label rules), so the label's value always equals the session table's id
//!   as printed: `store export --session` matches it byte for byte, and one session never
//!   becomes two series by its spelling.
//! - [`new_sessions`]: the distinct session ids of a batch that the [`Seen`] cache does not hold,
//!   each with the earliest time among its samples in the batch (the session's start when it
//!   is new to the store too). A stream of events of a known session costs no extra write.

use std::collections::HashSet;

use belabox_store::Uuid;

use super::series::Batch;

/// The label that names an application's session.
pub const LABEL: &str = "session_id";

/// Session ids remembered as recorded; past it the cache starts empty again (the store's
/// check then answers for each id once more: one scan, no write).
pub const MAX_SEEN: usize = 1024;

/// The canonical (lowercase, hyphenated) UUID `value` names.
pub fn check_value(value: &str) -> Result<Uuid, String> {
    // 36 bytes is the hyphenated form only (simple 32, braced 38, urn 45).
    let lower = value.len() == 36 && !value.bytes().any(|b| b.is_ascii_uppercase());
    match Uuid::try_parse(value) {
        Ok(id) if lower => Ok(id),
        _ => Err(format!(
            "label \"session_id\": expected a UUID in lowercase hyphenated form (like \
             0f6c3b9e-2d4a-4c1b-9a57-3e2f1d0c8b7a), got {:?}",
            value.get(..value.len().min(64)).unwrap_or(value)
        )),
    }
}

/// Session ids known to be in the store (recorded by this process, or found there).
#[derive(Debug, Default)]
pub struct Seen {
    ids: HashSet<Uuid>,
}

impl Seen {
    pub fn contains(&self, id: &Uuid) -> bool {
        self.ids.contains(id)
    }

    /// Remembers `ids` (after the store recorded them); bounded by [`MAX_SEEN`].
    pub fn extend(&mut self, ids: impl ExactSizeIterator<Item = Uuid>) {
        if self.ids.len().saturating_add(ids.len()) > MAX_SEEN {
            self.ids.clear();
        }
        self.ids.extend(ids.take(MAX_SEEN));
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The sessions of `batch` not in `seen`: (id, earliest sample time in the batch), in the
/// order first met. A series whose `session_id` does not parse (the builder refused it before)
/// or that has no sample here gives none.
pub fn new_sessions(batch: &Batch, seen: &Seen) -> Vec<(Uuid, i64)> {
    let ids: Vec<Option<Uuid>> = batch
        .series
        .iter()
        .map(|s| {
            batch
                .labels
                .get(s.labels.start as usize..s.labels.end as usize)
                .unwrap_or_default()
                .iter()
                .find(|(k, _)| batch.str(k) == LABEL)
                .and_then(|(_, v)| check_value(batch.str(v)).ok())
                .filter(|id| !seen.contains(id))
        })
        .collect();
    if ids.iter().all(Option::is_none) {
        return Vec::new();
    }
    let mut out: Vec<(Uuid, i64)> = Vec::new();
    for s in &batch.samples {
        let Some(Some(id)) = ids.get(s.series as usize) else {
            continue;
        };
        match out.iter_mut().find(|(known, _)| known == id) {
            Some((_, first)) => *first = (*first).min(s.ts_ms),
            None => out.push((*id, s.ts_ms)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::series::{Builder, Rules};

    #[test]
    fn only_the_canonical_form_is_a_session_id() {
        let table: [(&str, bool); 9] = [
            ("0f6c3b9e-2d4a-4c1b-9a57-3e2f1d0c8b7a", true),
            ("00000000-0000-0000-0000-000000000000", true),
            ("0F6C3B9E-2D4A-4C1B-9A57-3E2F1D0C8B7A", false),
            ("0f6c3b9e2d4a4c1b9a573e2f1d0c8b7a", false),
            ("{0f6c3b9e-2d4a-4c1b-9a57-3e2f1d0c8b7a}", false),
            ("urn:uuid:0f6c3b9e-2d4a-4c1b-9a57-3e2f1d0c8b7a", false),
            ("0f6c3b9e-2d4a-4c1b-9a57-3e2f1d0c8b7", false),
            ("stream-42", false),
            ("", false),
        ];
        for (value, ok) in table {
            match check_value(value) {
                Ok(id) => {
                    assert!(ok, "{value:?} accepted");
                    assert_eq!(id.to_string(), value);
                }
                Err(e) => {
                    assert!(!ok, "{value:?} refused: {e}");
                    assert!(e.contains("session_id") && e.contains("lowercase"), "{e}");
                }
            }
        }
    }

    fn rules() -> Rules {
        Rules {
            own_labels: vec!["device_id".into()],
            max_samples: 100,
            retention_ms: 1_000_000,
            max_future_ms: 1_000,
        }
    }

    const A: &str = "0f6c3b9e-2d4a-4c1b-9a57-3e2f1d0c8b7a";
    const B: &str = "7d1e2c3b-4a59-4687-9abc-def012345678";

    /// A batch of (name, session label, sample times).
    fn batch(rows: &[(&str, Option<&str>, &[i64])]) -> Batch {
        let r = rules();
        let mut b = Builder::new(&r, 100_000, "line");
        for (i, (name, sess, times)) in rows.iter().enumerate() {
            b.start(i + 1);
            b.name(|a| a.extend_from_slice(name.as_bytes()));
            b.label(
                |a| a.extend_from_slice(b"stream"),
                |a| {
                    a.extend_from_slice(b"main");
                    Ok(())
                },
            )
            .unwrap();
            if let Some(s) = sess {
                b.label(
                    |a| a.extend_from_slice(LABEL.as_bytes()),
                    |a| {
                        a.extend_from_slice(s.as_bytes());
                        Ok(())
                    },
                )
                .unwrap();
            }
            let idx = b.finish().unwrap();
            for &t in *times {
                b.text(idx, Some(t), |a| a.extend_from_slice(b"x")).unwrap();
            }
        }
        b.into_batch()
    }

    #[test]
    fn new_sessions_are_each_distinct_unseen_id_at_its_earliest_sample() {
        let a = Uuid::try_parse(A).unwrap();
        let b = Uuid::try_parse(B).unwrap();
        let mut seen_a = Seen::default();
        seen_a.extend([a].into_iter());
        type Row<'a> = (&'a str, Option<&'a str>, &'a [i64]);
        type Case<'a> = (&'a str, Vec<Row<'a>>, &'a Seen, Vec<(Uuid, i64)>);
        let cases: [Case<'_>; 6] = [
            (
                "no label",
                vec![("ui", None, &[99_000])],
                &Seen::default(),
                vec![],
            ),
            (
                "one id, earliest time over two series",
                vec![
                    ("ui", Some(A), &[99_500, 99_100]),
                    ("enc", Some(A), &[99_300]),
                ],
                &Seen::default(),
                vec![(a, 99_100)],
            ),
            (
                "two ids in the order met",
                vec![("ui", Some(B), &[99_900]), ("enc", Some(A), &[99_000])],
                &Seen::default(),
                vec![(b, 99_900), (a, 99_000)],
            ),
            (
                "a seen id costs nothing",
                vec![("ui", Some(A), &[99_000]), ("enc", Some(B), &[99_200])],
                &seen_a,
                vec![(b, 99_200)],
            ),
            (
                "only seen ids",
                vec![("ui", Some(A), &[99_000])],
                &seen_a,
                vec![],
            ),
            (
                "a series without samples names no session",
                vec![("ui", Some(A), &[])],
                &Seen::default(),
                vec![],
            ),
        ];
        for (what, rows, seen, want) in cases {
            assert_eq!(new_sessions(&batch(&rows), seen), want, "{what}");
        }
    }

    #[test]
    fn the_builder_refuses_a_bad_session_id_naming_the_line() {
        let r = rules();
        let mut b = Builder::new(&r, 100_000, "line");
        b.start(3);
        b.name(|a| a.extend_from_slice(b"ui"));
        b.label(
            |a| a.extend_from_slice(LABEL.as_bytes()),
            |a| {
                a.extend_from_slice(b"stream-42");
                Ok(())
            },
        )
        .unwrap();
        let e = b.finish().unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.starts_with("line 3: label \"session_id\""),
            "{e:?}"
        );
    }

    #[test]
    fn the_seen_cache_is_bounded() {
        let mut seen = Seen::default();
        for i in 0..(MAX_SEEN as u128 + 10) {
            seen.extend([Uuid::from_u128(i)].into_iter());
            assert!(seen.len() <= MAX_SEEN);
        }
        assert!(seen.contains(&Uuid::from_u128(MAX_SEEN as u128 + 9)));
        assert!(!seen.is_empty());
    }
}
