//! Each format's parser view into a [`Batch`]: the names, labels and samples of the body in
//! its order, through the [`Builder`]'s rules.

use super::series::{Batch, Builder, Refusal, Rules};
use super::{influx, prom_text, remote_write, vm_json};

/// A body format, by the path it was posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `/api/v1/import`.
    VmJson,
    /// `/api/v1/import/prometheus`.
    PromText,
    /// `/write`, `/api/v2/write`; timestamps in units of this many nanoseconds.
    Influx { unit_ns: i64 },
    /// `/api/v1/write` (snappy + protobuf).
    RemoteWrite,
}

impl Format {
    /// The format served at `path` (`query`: the request's query string, for Influx'
    /// `precision`). `Err`: a known path with a bad query (→ 400).
    pub fn of(path: &[u8], query: &[u8]) -> Option<Result<Format, String>> {
        Some(Ok(match path {
            b"/api/v1/import" => Format::VmJson,
            b"/api/v1/import/prometheus" => Format::PromText,
            b"/api/v1/write" => Format::RemoteWrite,
            b"/write" | b"/api/v2/write" => {
                let unit_ns = match query_param(query, b"precision") {
                    None | Some(b"ns" | b"n") => 1,
                    Some(b"us" | b"u") => 1_000,
                    Some(b"ms") => 1_000_000,
                    Some(b"s") => 1_000_000_000,
                    Some(other) => {
                        return Some(Err(format!(
                            "precision must be ns, us, ms or s, got {:?}",
                            String::from_utf8_lossy(other)
                        )));
                    }
                };
                Format::Influx { unit_ns }
            }
            _ => return None,
        }))
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::VmJson => "vm-json",
            Format::PromText => "prometheus-text",
            Format::Influx { .. } => "influx",
            Format::RemoteWrite => "remote-write",
        }
    }
}

/// The value of `key` in a query string (no percent-decoding: the values read are plain).
pub fn query_param<'q>(query: &'q [u8], key: &[u8]) -> Option<&'q [u8]> {
    query.split(|&b| b == b'&').find_map(|kv| {
        let eq = kv.iter().position(|&b| b == b'=')?;
        (kv.get(..eq)? == key).then(|| kv.get(eq + 1..).unwrap_or_default())
    })
}

/// Parses a decoded body of `format`.
pub fn build(format: Format, body: &[u8], rules: &Rules, now_ms: i64) -> Result<Batch, Refusal> {
    match format {
        Format::PromText => prom(body, rules, now_ms),
        Format::Influx { unit_ns } => influx_lines(body, unit_ns, rules, now_ms),
        Format::VmJson => vm(body, rules, now_ms),
        Format::RemoteWrite => rw(body, rules, now_ms),
    }
}

fn copy(raw: &[u8]) -> impl FnOnce(&mut Vec<u8>) + '_ {
    move |a| a.extend_from_slice(raw)
}

fn prom(body: &[u8], rules: &Rules, now_ms: i64) -> Result<Batch, Refusal> {
    let mut b = Builder::new(rules, now_ms, "line");
    for line in prom_text::lines(body) {
        let line = line.map_err(|e| {
            b.start(e.line);
            b.bad(e.what)
        })?;
        b.start(line.number);
        b.name(copy(line.name));
        for l in line.labels() {
            let (k, v) = l.map_err(|e| b.bad(e))?;
            b.label(copy(k), |a| {
                prom_text::unescape(v, a);
                Ok(())
            })?;
        }
        let s = b.finish()?;
        b.sample(s, line.timestamp_ms, line.value)?;
    }
    Ok(b.into_batch())
}

fn influx_lines(body: &[u8], unit_ns: i64, rules: &Rules, now_ms: i64) -> Result<Batch, Refusal> {
    let mut b = Builder::new(rules, now_ms, "line");
    let per_ms = 1_000_000 / unit_ns.max(1);
    for line in influx::lines(body) {
        let line = line.map_err(|e| {
            b.start(e.line);
            b.bad(e.what)
        })?;
        let ts_ms = line.timestamp.map(|t| {
            if per_ms >= 1 {
                t.div_euclid(per_ms)
            } else {
                t.saturating_mul(unit_ns / 1_000_000)
            }
        });
        for field in line.fields() {
            let (key, value) = field.map_err(|e| b.bad(e))?;
            b.start(line.number);
            b.name(|a| {
                influx::unescape(line.measurement, a);
                a.push(b'_');
                influx::unescape(key, a);
            });
            for tag in line.tags() {
                let (k, v) = tag.map_err(|e| b.bad(e))?;
                b.label(
                    |a| influx::unescape(k, a),
                    |a| {
                        influx::unescape(v, a);
                        Ok(())
                    },
                )?;
            }
            let s = b.finish()?;
            match value {
                influx::FieldValue::Float(f) => b.sample(s, ts_ms, f)?,
                influx::FieldValue::Int(i) => b.sample(s, ts_ms, i as f64)?,
                influx::FieldValue::UInt(u) => b.sample(s, ts_ms, u as f64)?,
                influx::FieldValue::Bool(t) => b.sample(s, ts_ms, if t { 1.0 } else { 0.0 })?,
                influx::FieldValue::Str(raw) => b.text(s, ts_ms, |a| influx::unescape(raw, a))?,
            }
        }
    }
    Ok(b.into_batch())
}

fn vm(body: &[u8], rules: &Rules, now_ms: i64) -> Result<Batch, Refusal> {
    let mut b = Builder::new(rules, now_ms, "line");
    for line in vm_json::lines(body) {
        let line = line.map_err(|e| {
            b.start(e.line);
            b.bad(e.what)
        })?;
        b.start(line.number);
        let mut named = false;
        for m in line.metric() {
            let (k, v) = m.map_err(|e| b.bad(e))?;
            if k == b"__name__" {
                named = true;
                let mut err = Ok(());
                b.name(|a| err = vm_json::unescape(v, a));
                err.map_err(|e| b.bad(e))?;
            } else {
                let mut key_err = Ok(());
                b.label(
                    |a| key_err = vm_json::unescape(k, a),
                    |a| vm_json::unescape(v, a),
                )?;
                key_err.map_err(|e| b.bad(e))?;
            }
        }
        if !named {
            return Err(b.bad("the metric has no __name__"));
        }
        let s = b.finish()?;
        for (v, t) in line.values().zip(line.timestamps()) {
            let (v, t) = (v.map_err(|e| b.bad(e))?, t.map_err(|e| b.bad(e))?);
            let t = t.unwrap_or(f64::NAN);
            if t.fract() != 0.0 || !(-9.0e15..9.0e15).contains(&t) {
                return Err(b.bad("a timestamp must be an integer number of milliseconds"));
            }
            b.sample(s, Some(t as i64), v.unwrap_or(f64::NAN))?;
        }
    }
    Ok(b.into_batch())
}

fn rw(body: &[u8], rules: &Rules, now_ms: i64) -> Result<Batch, Refusal> {
    let mut b = Builder::new(rules, now_ms, "time series");
    let mut n = 0;
    for ts in remote_write::Series::new(body) {
        let ts = ts.map_err(|e| {
            b.start(e.series);
            b.bad(e.what)
        })?;
        n += 1;
        b.start(n);
        let mut named = false;
        for (k, v) in ts.labels() {
            if k == b"__name__" {
                named = true;
                b.name(copy(v));
            } else {
                b.label(copy(k), |a| {
                    a.extend_from_slice(v);
                    Ok(())
                })?;
            }
        }
        if !named {
            return Err(b.bad("the time series has no __name__ label"));
        }
        let s = b.finish()?;
        for (v, t) in ts.samples() {
            b.sample(s, Some(t), v)?;
        }
        b.unsupported(ts.histograms);
    }
    Ok(b.into_batch())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            own_labels: vec!["device_id".into()],
            max_samples: 100,
            retention_ms: 86_400_000,
            max_future_ms: 600_000,
        }
    }

    const NOW: i64 = 1_700_000_000_000;

    fn names(b: &Batch) -> Vec<String> {
        b.samples
            .iter()
            .map(|s| {
                let ser = &b.series[s.series as usize];
                let mut out = b.str(&ser.name).to_owned();
                for l in &b.labels[ser.labels.start as usize..ser.labels.end as usize] {
                    out += &format!(",{}={}", b.str(&l.0), b.str(&l.1));
                }
                out += &format!("@{}", s.ts_ms - NOW);
                out
            })
            .collect()
    }

    #[test]
    fn each_format_gives_the_same_shape() {
        let r = rules();
        let prom = format!("a{{x=\"1\"}} 1 {}\nb 2\n", NOW - 5);
        let b = build(Format::PromText, prom.as_bytes(), &r, NOW).unwrap();
        assert_eq!(names(&b), ["a,x=1@-5", "b@0"]);

        let influx = format!("srt,link=w0 rtt=1,state=\"up\" {}\n", (NOW - 5) * 1_000_000);
        let b = build(Format::Influx { unit_ns: 1 }, influx.as_bytes(), &r, NOW).unwrap();
        assert_eq!(names(&b), ["srt_rtt,link=w0@-5", "srt_state,link=w0@-5"]);
        assert!(matches!(
            b.samples[1].value,
            super::super::series::SampleValue::Text(..)
        ));
        let influx = format!("m v=1 {}\n", (NOW - 5000) / 1000);
        let b = build(
            Format::Influx {
                unit_ns: 1_000_000_000,
            },
            influx.as_bytes(),
            &r,
            NOW,
        )
        .unwrap();
        assert_eq!(names(&b), ["m_v@-5000"]);

        let json = format!(
            "{{\"metric\":{{\"__name__\":\"c\",\"y\":\"2\"}},\"values\":[1,2],\"timestamps\":[{},{}]}}\n",
            NOW - 2,
            NOW - 1
        );
        let b = build(Format::VmJson, json.as_bytes(), &r, NOW).unwrap();
        assert_eq!(names(&b), ["c,y=2@-2", "c,y=2@-1"]);

        let rw_body =
            remote_write::tests::encode(&[(&[("__name__", "d"), ("job", "j")], &[(1.0, NOW - 3)])]);
        let b = build(Format::RemoteWrite, &rw_body, &r, NOW).unwrap();
        assert_eq!(names(&b), ["d,job=j@-3"]);
    }

    #[test]
    fn the_first_bad_line_is_named() {
        let r = rules();
        let e = build(Format::PromText, b"a 1\nb{device_id=\"x\"} 2\n", &r, NOW).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message
                .starts_with("line 2: label \"device_id\" is the agent's own"),
            "{e:?}"
        );
        let e = build(Format::Influx { unit_ns: 1 }, b"m v=1\nm v=x\n", &r, NOW).unwrap_err();
        assert_eq!(e.message, "line 2: invalid field value");
        let e = build(
            Format::VmJson,
            b"{\"metric\":{},\"values\":[],\"timestamps\":[]}",
            &r,
            NOW,
        )
        .unwrap_err();
        assert_eq!(e.message, "line 1: the metric has no __name__");
        let body =
            remote_write::tests::encode(&[(&[("__name__", "ok")], &[]), (&[("job", "j")], &[])]);
        let e = build(Format::RemoteWrite, &body, &r, NOW).unwrap_err();
        assert_eq!(
            e.message,
            "time series 2: the time series has no __name__ label"
        );
        let e = build(Format::PromText, b"a 1\nb{x=\"\xff\"} 2\n", &r, NOW).unwrap_err();
        assert_eq!(
            e.message,
            "line 2: label \"x\": the value is not valid UTF-8"
        );
    }

    #[test]
    fn query_params() {
        assert_eq!(
            query_param(b"db=x&precision=ms", b"precision"),
            Some(&b"ms"[..])
        );
        assert_eq!(query_param(b"db=x", b"precision"), None);
        assert!(matches!(
            Format::of(b"/write", b"precision=h"),
            Some(Err(_))
        ));
        assert_eq!(Format::of(b"/health", b""), None);
    }
}
