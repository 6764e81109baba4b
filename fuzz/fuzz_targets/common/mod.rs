//! Checks shared by the parser targets. A failed assertion is a crash, as a panic in
//! a parser would be.

#![allow(dead_code)]

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
    mut check_item: impl FnMut(T),
) {
    let mut ended = false;
    for item in iter {
        assert!(!ended, "an item after Incomplete");
        match item {
            Ok(value) => check_item(value),
            Err(err) => {
                ended = err == ParseError::Incomplete;
                check_error(err, data);
            }
        }
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
