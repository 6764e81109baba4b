//! The serde side of loading: a `Deserializer` over a parsed `toml::Value` with the config's own
//! error type, so that every message is worded for the config file (`expected true or false, got
//! "yes"`, `unknown key (expected one of: ...)`) rather than in serde's Rust terms, and names the
//! dotted key it is about.
//!
//! `toml`'s own deserializer cannot be used for this: its error type words serde's messages itself
//! (`invalid type: integer `7`, expected a string`) and loses the list of accepted keys.
//!
//! The key path is tracked here rather than by a wrapping deserializer (`serde_path_to_error`):
//! the table and array accessors below add their key or index to an error as it passes up
//! through them, which costs nothing until an error happens and, unlike a wrapper, does not
//! instantiate every `Deserialize` of the config a second time (≈ 120 KB of text, all of it
//! resident: docs/benchmarks.md).

use std::fmt;

use serde::de::{self, Deserializer, Expected, IntoDeserializer, Unexpected, Visitor};
use toml::Value;

use super::ConfigError;

/// Deserializes `T` from a parsed document; errors name the dotted key at fault.
pub(super) fn from_value<T: de::DeserializeOwned>(document: &Value) -> Result<T, ConfigError> {
    T::deserialize(ValueDe(document)).map_err(|e| {
        let key = dotted(&e.path);
        match e.kind {
            DeErrorKind::UnknownKey(expected) => ConfigError::UnknownKey { key, expected },
            DeErrorKind::Invalid(message) => ConfigError::Invalid { key, message },
        }
    })
}

/// One step of the path to the value at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// `remote.retry.jitter`, `network.exclude[1]`, `logging."my key"`; `path` is innermost first.
fn dotted(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path.iter().rev() {
        match segment {
            Segment::Index(index) => out.push_str(&format!("[{index}]")),
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&quote_key(key));
            }
        }
    }
    out
}

/// Renders a key as TOML would need it in a dotted path: bare if possible, else quoted.
fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// What went wrong, and where (the path grows as the error passes up through the tables).
#[derive(Debug)]
pub(super) struct DeError {
    kind: DeErrorKind,
    /// Innermost segment first.
    path: Vec<Segment>,
}

impl DeError {
    fn at(mut self, segment: Segment) -> DeError {
        self.path.push(segment);
        self
    }
}

impl From<DeErrorKind> for DeError {
    fn from(kind: DeErrorKind) -> DeError {
        DeError {
            kind,
            path: Vec::new(),
        }
    }
}

/// What went wrong at one key; the accessors add the key.
#[derive(Debug)]
pub(super) enum DeErrorKind {
    /// The key is not one of these.
    UnknownKey(&'static [&'static str]),
    /// Says what was expected and what was found.
    Invalid(String),
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl fmt::Display for DeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKey(expected) => {
                write!(f, "unknown key (expected one of: {})", expected.join(", "))
            }
            Self::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeErrorKind::Invalid(msg.to_string()).into()
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        // serde's own visitors name Rust types; say it in the words of the config docs.
        let exp = match exp.to_string() {
            e if e.starts_with("struct ") => "a table".to_owned(),
            e if e == "a boolean" => "true or false".to_owned(),
            e => e,
        };
        let got = match unexp {
            Unexpected::Str(s) => format!("{s:?}"),
            Unexpected::Signed(n) => n.to_string(),
            Unexpected::Float(f) => f.to_string(),
            Unexpected::Bool(b) => b.to_string(),
            Unexpected::Seq => "an array".to_owned(),
            Unexpected::Map => "a table".to_owned(),
            other => other.to_string(),
        };
        DeErrorKind::Invalid(format!("expected {exp}, got {got}")).into()
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::invalid_type(unexp, exp)
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeErrorKind::Invalid(format!(
            "expected one of {}, got {variant:?}",
            expected.join(", ")
        ))
        .into()
    }

    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        DeErrorKind::UnknownKey(expected).into()
    }
}

#[derive(Debug, Clone, Copy)]
struct ValueDe<'a>(&'a Value);

impl<'de> IntoDeserializer<'de, DeError> for ValueDe<'_> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for ValueDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::String(s) => visitor.visit_str(s),
            Value::Integer(n) => visitor.visit_i64(*n),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Boolean(b) => visitor.visit_bool(*b),
            // No option takes a datetime.
            Value::Datetime(d) => Err(de::Error::invalid_type(
                Unexpected::Other(&format!("a datetime ({d})")),
                &visitor,
            )),
            Value::Array(items) => visitor.visit_seq(ArrayAccess {
                items: items.iter().enumerate(),
            }),
            Value::Table(t) => visitor.visit_map(TableAccess {
                entries: t.iter(),
                pending: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    /// Unit variants only: a string naming the variant.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => match self.deserialize_any(ExpectString)? {},
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// An array's items; an error from item `i` gets `[i]` on its path.
struct ArrayAccess<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Value>>,
}

impl<'de> de::SeqAccess<'de> for ArrayAccess<'_> {
    type Error = DeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((i, v)) => seed
                .deserialize(ValueDe(v))
                .map(Some)
                .map_err(|e| e.at(Segment::Index(i))),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// A table's entries; an error from a key or its value gets the key on its path (an unknown
/// key is reported at itself, as `storage.foo`).
struct TableAccess<'a> {
    entries: toml::map::Iter<'a, String, Value>,
    /// The entry whose key was just handed out, for `next_value_seed`.
    pending: Option<(&'a str, &'a Value)>,
}

impl<'de> de::MapAccess<'de> for TableAccess<'_> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((k, v)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some((k.as_str(), v));
        let key: de::value::StrDeserializer<'_, DeError> = k.as_str().into_deserializer();
        seed.deserialize(key)
            .map(Some)
            .map_err(|e| e.at(Segment::Key(k.clone())))
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        match self.pending.take() {
            Some((k, v)) => seed
                .deserialize(ValueDe(v))
                .map_err(|e| e.at(Segment::Key(k.to_owned()))),
            // serde's contract: never called before `next_key_seed` returned a key.
            None => Err(de::Error::custom(
                "a table value was asked for before its key",
            )),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// Accepts nothing: turns any value into "expected a string, got ..." (for enums).
struct ExpectString;

impl<'de> Visitor<'de> for ExpectString {
    type Value = std::convert::Infallible;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
}

/// An integer option in `MIN..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Int<const MIN: u64, const MAX: u64>(pub u64);

impl<'de, const MIN: u64, const MAX: u64> de::Deserialize<'de> for Int<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_u64(IntVisitor::<MIN, MAX>)
    }
}

struct IntVisitor<const MIN: u64, const MAX: u64>;

impl<'de, const MIN: u64, const MAX: u64> Visitor<'de> for IntVisitor<MIN, MAX> {
    type Value = Int<MIN, MAX>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if MAX == u64::MAX {
            write!(f, "an integer of at least {MIN}")
        } else {
            write!(f, "an integer between {MIN} and {MAX}")
        }
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        u64::try_from(n)
            .ok()
            .filter(|n| (MIN..=MAX).contains(n))
            .map(Int)
            .ok_or_else(|| E::invalid_value(Unexpected::Signed(n), &self))
    }
}

/// A finite number; TOML integers are accepted (`multiplier = 2`).
pub(super) fn finite<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct Finite;
    impl Visitor<'_> for Finite {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a finite number")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            if v.is_finite() {
                Ok(v)
            } else {
                Err(E::invalid_value(Unexpected::Float(v), &self))
            }
        }
        #[allow(clippy::cast_precision_loss)] // config-sized integers are exact in f64
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
    }
    d.deserialize_f64(Finite)
}
