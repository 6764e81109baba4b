//! Include/exclude name filters (disks, interfaces) with a decision cache.
//!
//! Regexes run once per distinct name; later ticks hit the fixed-capacity cache, so a steady tick
//! neither runs a regex nor allocates.

use regex_lite::Regex;

const CACHE_CAP: usize = 256;
const CACHED_NAME_CAP: usize = 32;

#[derive(Debug)]
pub struct NameFilter {
    /// Empty = every name is included.
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    cache: heapless::Vec<(heapless::String<CACHED_NAME_CAP, u8>, bool), CACHE_CAP>,
}

impl NameFilter {
    /// Patterns are validated by the config loader; an invalid one here is reported with its index.
    pub fn new(include: &[String], exclude: &[String]) -> Result<NameFilter, regex_lite::Error> {
        let compile = |ps: &[String]| {
            ps.iter()
                .map(|p| Regex::new(p))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(NameFilter {
            include: compile(include)?,
            exclude: compile(exclude)?,
            cache: heapless::Vec::new(),
        })
    }

    pub fn allows(&mut self, name: &str) -> bool {
        if let Some((_, ok)) = self.cache.iter().find(|(n, _)| n.as_str() == name) {
            return *ok;
        }
        let ok = (self.include.is_empty() || self.include.iter().any(|r| r.is_match(name)))
            && !self.exclude.iter().any(|r| r.is_match(name));
        let mut key = heapless::String::new();
        // Names that do not fit, or a full cache, are simply not cached.
        if key.push_str(name).is_ok() {
            let _ = self.cache.push((key, ok));
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_exclude_and_cache() {
        let mut f = NameFilter::new(&[], &["^(lo|docker.*)$".to_string()]).unwrap();
        assert!(f.allows("eth0"));
        assert!(!f.allows("lo"));
        assert!(!f.allows("docker0"));
        assert!(f.allows("eth0"), "cached answer is the same");
        let mut f = NameFilter::new(&["^eth".to_string()], &["^eth9$".to_string()]).unwrap();
        assert!(f.allows("eth1"));
        assert!(!f.allows("eth9"));
        assert!(!f.allows("wlan0"));
        let long = "e".repeat(100);
        assert!(!f.allows(&long));
        assert!(NameFilter::new(&["(".to_string()], &[]).is_err());
    }
}
