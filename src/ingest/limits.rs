//! The cardinality caps: distinct series per producer and in total, since the agent started.
//!
//! A series is known by the 64-bit hash of its name and sorted labels ([`super::series`]); a
//! series not pushed for [`SERIES_IDLE_MS`] is forgotten when a cap would otherwise refuse a
//! request, so a producer that renamed its series gets room back (hence 429 + Retry-After, not a
//! permanent 400, for a cap reached across requests). A request whose new series alone exceed the
//! per-producer cap can never fit: 400. Memory: ≤ `max_series` entries of 24 bytes, plus at most
//! [`MAX_PRODUCERS`] producer names (longer names are cut, later producers share "other").

use std::collections::HashMap;

use super::series::Refusal;

/// A series not pushed for this long may be forgotten to make room (1 h).
pub const SERIES_IDLE_MS: i64 = 3_600_000;
/// Distinct producers tracked by name; later ones are counted together as `other`.
pub const MAX_PRODUCERS: usize = 64;
/// Longest producer name kept.
pub const MAX_PRODUCER_NAME: usize = 32;
/// What a 429 asks the client to wait.
pub const RETRY_AFTER_S: u32 = 60;

#[derive(Debug, Clone, Copy)]
struct Seen {
    producer: u16,
    last_ms: i64,
}

#[derive(Debug)]
pub struct Cardinality {
    max_total: usize,
    max_per_producer: usize,
    seen: HashMap<u64, Seen>,
    /// Name and live series count, by index.
    producers: Vec<(String, usize)>,
    /// Scratch: the request's new series.
    new: Vec<u64>,
}

impl Cardinality {
    pub fn new(max_total: u64, max_per_producer: u64) -> Cardinality {
        Cardinality {
            max_total: usize::try_from(max_total).unwrap_or(usize::MAX),
            max_per_producer: usize::try_from(max_per_producer).unwrap_or(usize::MAX),
            seen: HashMap::new(),
            producers: Vec::new(),
            new: Vec::new(),
        }
    }

    /// Distinct series known.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn producer_index(&mut self, name: &str) -> usize {
        let cut = name
            .char_indices()
            .nth(MAX_PRODUCER_NAME)
            .map_or(name, |(i, _)| name.get(..i).unwrap_or(name));
        if let Some(i) = self.producers.iter().position(|(n, _)| n == cut) {
            return i;
        }
        if self.producers.len() < MAX_PRODUCERS - 1 {
            self.producers.push((cut.to_owned(), 0));
            return self.producers.len() - 1;
        }
        match self.producers.iter().position(|(n, _)| n == "other") {
            Some(i) => i,
            None => {
                self.producers.push(("other".to_owned(), 0));
                self.producers.len() - 1
            }
        }
    }

    /// Admits the request's series (`hashes`, duplicates allowed) for `producer` at `now_ms`,
    /// or says which cap it would pass. Admitted series are remembered.
    pub fn admit(
        &mut self,
        producer: &str,
        hashes: impl Iterator<Item = u64>,
        now_ms: i64,
    ) -> Result<(), Refusal> {
        let p = self.producer_index(producer);
        let mut new = std::mem::take(&mut self.new);
        new.clear();
        for h in hashes {
            match self.seen.get_mut(&h) {
                Some(s) => s.last_ms = now_ms,
                None => new.push(h),
            }
        }
        new.sort_unstable();
        new.dedup();
        let result = self.fit(p, producer, new.len(), now_ms);
        if result.is_ok() {
            let pid = u16::try_from(p).unwrap_or(u16::MAX);
            for &h in &new {
                self.seen.insert(
                    h,
                    Seen {
                        producer: pid,
                        last_ms: now_ms,
                    },
                );
            }
            if let Some(c) = self.producers.get_mut(p) {
                c.1 += new.len();
            }
        }
        self.new = new;
        result
    }

    fn fit(&mut self, p: usize, producer: &str, n: usize, now_ms: i64) -> Result<(), Refusal> {
        if n == 0 {
            return Ok(());
        }
        if n > self.max_per_producer {
            return Err(Refusal::new(
                400,
                format!(
                    "the request has {n} new series, more than ingest.max_series_per_producer ({})",
                    self.max_per_producer
                ),
            ));
        }
        let fits = |c: &Cardinality| {
            let mine = c.producers.get(p).map_or(0, |x| x.1);
            (
                mine + n <= c.max_per_producer,
                c.seen.len() + n <= c.max_total,
            )
        };
        if fits(self) != (true, true) {
            self.forget_idle(now_ms);
        }
        let refuse = |what: String| Refusal {
            status: 429,
            message: what,
            retry_after: Some(RETRY_AFTER_S),
        };
        match fits(self) {
            (false, _) => Err(refuse(format!(
                "producer {producer:?} would pass ingest.max_series_per_producer ({}) with {n} new series",
                self.max_per_producer
            ))),
            (_, false) => Err(refuse(format!(
                "the agent would pass ingest.max_series ({}) with {n} new series",
                self.max_total
            ))),
            (true, true) => Ok(()),
        }
    }

    fn forget_idle(&mut self, now_ms: i64) {
        let producers = &mut self.producers;
        self.seen.retain(|_, s| {
            let keep = now_ms.saturating_sub(s.last_ms) < SERIES_IDLE_MS;
            if !keep {
                if let Some(c) = producers.get_mut(usize::from(s.producer)) {
                    c.1 = c.1.saturating_sub(1);
                }
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_producer_and_in_total() {
        let mut c = Cardinality::new(5, 3);
        c.admit("a", [1, 2, 2, 3].into_iter(), 0).unwrap();
        // Known series pass whatever the caps.
        c.admit("a", [1, 2, 3].into_iter(), 1).unwrap();
        let e = c.admit("a", [4].into_iter(), 2).unwrap_err();
        assert_eq!((e.status, e.retry_after), (429, Some(RETRY_AFTER_S)));
        assert!(
            e.message.contains("ingest.max_series_per_producer (3)"),
            "{e:?}"
        );
        c.admit("b", [10, 11].into_iter(), 3).unwrap();
        let e = c.admit("c", [20].into_iter(), 4).unwrap_err();
        assert!(e.message.contains("ingest.max_series (5)"), "{e:?}");
        let e = c.admit("d", [30, 31, 32, 33].into_iter(), 5).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(c.len(), 5);
        // An hour later the idle series make room.
        c.admit("a", [4].into_iter(), SERIES_IDLE_MS + 10).unwrap();
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn producers_are_bounded() {
        let mut c = Cardinality::new(1000, 1000);
        for i in 0..200 {
            c.admit(&format!("p{i}"), [i].into_iter(), 0).unwrap();
        }
        assert!(c.producers.len() <= MAX_PRODUCERS);
    }
}
