//! Checks shared by the parser targets. A failed assertion is a crash, as a panic in
//! a parser would be.

#![allow(dead_code)]

use std::fmt::Debug;

use belabox_proc::ParseError;

pub fn newlines(data: &[u8]) -> usize {
    data.iter().filter(|&&b| b == b'\n').count()
}

/// `Incomplete` only for a cut last line; `Malformed` names a real line and a rule,
/// and displays.
pub fn check_error(err: ParseError, data: &[u8]) {
    match err {
        ParseError::Incomplete => {
            assert!(
                !data.ends_with(b"\n"),
                "Incomplete for a buffer that ends in a newline"
            );
        }
        ParseError::Malformed { line, what } => {
            assert!(
                line >= 1 && line <= newlines(data) + 1,
                "line {line} out of range"
            );
            assert!(!what.is_empty());
        }
    }
    assert!(!err.to_string().is_empty());
}

/// Drains an iterator of parse results: `Incomplete` must be the last item.
pub fn drain<T>(
    iter: impl Iterator<Item = Result<T, ParseError>>,
    data: &[u8],
    check_item: impl FnMut(T),
) {
    drain_after_header(iter, data, 0, check_item);
}

/// [`drain`] for a file with `header` lines before the items: a buffer that ends
/// before they are all there is cut short even when it ends in a newline.
pub fn drain_after_header<T>(
    iter: impl Iterator<Item = Result<T, ParseError>>,
    data: &[u8],
    header: usize,
    mut check_item: impl FnMut(T),
) {
    let mut ended = false;
    for item in iter {
        assert!(!ended, "an item after Incomplete");
        match item {
            Ok(value) => check_item(value),
            Err(ParseError::Incomplete) if newlines(data) < header => ended = true,
            Err(err) => {
                ended = err == ParseError::Incomplete;
                check_error(err, data);
            }
        }
    }
}

/// A filtering parser's plain form (`all`) against the reference's (`reference`), and
/// its `_where` form against the plain one and the reference: the accept-all filter
/// changes nothing; a selective filter parses only the lines it accepts (or
/// whose head is malformed), each as the plain form does, and is asked at most once
/// a line; the reject-all filter yields no `Ok`.
pub fn check_where<T: PartialEq + Debug>(
    data: &[u8],
    all: &[Result<T, ParseError>],
    reference: Vec<Result<T, ParseError>>,
    parse_where: impl Fn(&mut dyn FnMut(&str) -> bool) -> Vec<Result<T, ParseError>>,
    reference_where: impl Fn(&dyn Fn(&str) -> bool) -> Vec<Result<T, ParseError>>,
    name: impl Fn(&T) -> &str,
) {
    assert_eq!(all, reference.as_slice(), "plain form != reference");
    assert_eq!(
        parse_where(&mut |_| true),
        all,
        "accept-all filter != plain form"
    );
    let mut asked = 0usize;
    let filter = |name: &str| name.len() % 2 == 0;
    let some = parse_where(&mut |name| {
        asked += 1;
        filter(name)
    });
    assert!(asked <= newlines(data));
    assert_eq!(some, reference_where(&filter));
    assert!(some.iter().flatten().all(|item| filter(name(item))));
    assert!(
        parse_where(&mut |_| false).iter().all(Result::is_err),
        "a rejected line yielded Ok"
    );
}

/// A whole-buffer parser: the same result as the reference; an error per
/// [`check_error`], and `Ok` handed to `check_ok`.
pub fn check_parse<T: PartialEq + Debug>(
    got: Result<T, ParseError>,
    reference: Result<T, ParseError>,
    data: &[u8],
    check_ok: impl FnOnce(T),
) {
    assert_eq!(got, reference, "differs from the reference");
    match got {
        Ok(value) => check_ok(value),
        Err(err) => check_error(err, data),
    }
}

/// What a one-line file parser accepts: exactly one line, `'\n'`-terminated.
pub fn check_single_line(data: &[u8]) {
    assert!(
        data.ends_with(b"\n") && newlines(data) == 1,
        "Ok for a cut buffer"
    );
}

/// Values parsed from plain decimals: finite and `>= 0`.
pub fn check_non_negative(values: &[f64]) {
    for v in values {
        assert!(v.is_finite() && *v >= 0.0, "value {v}");
    }
}

/// A name slice: non-empty, borrowed from the input, no whitespace or control chars.
pub fn check_name(name: &str, data: &[u8]) {
    assert!(!name.is_empty());
    assert!(!name.chars().any(|c| c.is_whitespace() || c.is_control()));
    let start = name.as_ptr() as usize;
    let base = data.as_ptr() as usize;
    assert!(
        start >= base && start + name.len() <= base + data.len(),
        "name not borrowed from input"
    );
}

/// A row iterator's items (`all`): no more than one per line, `Incomplete` last;
/// `check_row` sees each `Ok` row (and prints it back to check the round trip).
pub fn check_rows<T>(all: Vec<Result<T, ParseError>>, data: &[u8], check_row: impl FnMut(T)) {
    assert!(all.len() <= newlines(data) + 1, "more rows than lines");
    drain(all.into_iter(), data, check_row);
}

/// `part` is a piece of `outer` (a parser's view borrows the input, never a copy).
pub fn inside(outer: &[u8], part: &[u8]) -> bool {
    let (o, p) = (outer.as_ptr() as usize, part.as_ptr() as usize);
    p >= o && p + part.len() <= o + outer.len()
}
