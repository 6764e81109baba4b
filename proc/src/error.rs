use core::fmt;

/// Why a buffer could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The buffer ends in the middle of a line (no trailing newline where one is required).
    Incomplete,
    /// `line` is 1-based; `what` names the field or rule that failed.
    Malformed { line: usize, what: &'static str },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Incomplete => f.write_str("buffer ends in the middle of a line"),
            Self::Malformed { line, what } => write!(f, "line {line}: malformed {what}"),
        }
    }
}

impl core::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::ParseError;

    #[test]
    fn display() {
        assert_eq!(
            ParseError::Incomplete.to_string(),
            "buffer ends in the middle of a line"
        );
        let e = ParseError::Malformed {
            line: 3,
            what: "rx_bytes",
        };
        assert_eq!(e.to_string(), "line 3: malformed rx_bytes");
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert!(boxed.source().is_none());
    }
}
