#[test]
fn t() {
    let mut buf = b"GET /health HTTP/1.1\r\nHost: t\r\nX: ".to_vec();
    buf.resize(8191, b'a');
    let t0 = std::time::Instant::now();
    let mut n = 0;
    for i in 1..=buf.len() { if belabox_metrics::health::http::parse_head(&buf[..i]).is_ok() { n += 1; } }
    println!("{n} parses, {:?}", t0.elapsed());
}
