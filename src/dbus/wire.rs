//! The D-Bus wire format (the D-Bus specification's "Message Protocol"): values decoded from a
//! message by their signature, and the method calls the agent sends, encoded.
//!
//! Pure and self-contained (no I/O, no other module of the crate): the fuzz target
//! `fuzz/fuzz_targets/dbus_modem.rs` includes this file by path. Every length, depth and count
//! read from the peer is bounded before it is used, so a hostile or broken message is an error,
//! never a panic or an unbounded allocation: at most [`MAX_MESSAGE`] bytes, [`MAX_DEPTH`] nested
//! containers and [`MAX_VALUES`] values per message.

use std::fmt;

/// Largest message accepted (header and body, bytes). ModemManager's GetManagedObjects for 8
/// modems is a few tens of KiB; the specification allows 128 MiB, which a board cannot spare.
pub const MAX_MESSAGE: usize = 1 << 20;
/// Most containers nested in one value (the specification's limit: 32 arrays + 32 structs).
pub const MAX_DEPTH: usize = 64;
/// Most values decoded from one message (each costs ≥ 32 bytes of heap once decoded).
pub const MAX_VALUES: usize = 16_384;
/// Longest signature (the specification's limit).
pub const MAX_SIGNATURE: usize = 255;

/// Message types (header byte 1).
pub const METHOD_CALL: u8 = 1;
pub const METHOD_RETURN: u8 = 2;
pub const ERROR: u8 = 3;
pub const SIGNAL: u8 = 4;

/// One decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Double(f64),
    Str(String),
    Path(String),
    Sig(String),
    /// A unix fd index (`h`); the agent never passes fds.
    Fd(u32),
    Array(Vec<Value>),
    /// An array of dict entries, `a{kv}`, in wire order (keys are not deduplicated).
    Dict(Vec<(Value, Value)>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    /// The string of a `s`, `o` or `g`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }

    /// Through any number of variants to the value inside.
    pub fn unwrap_variant(&self) -> &Value {
        let mut v = self;
        while let Value::Variant(inner) = v {
            v = inner;
        }
        v
    }
}

/// Why bytes are not a valid message or value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The data ends inside a value.
    Truncated,
    /// A signature that is not one of complete types (or longer than 255).
    BadSignature,
    /// A value its type does not allow (a boolean of 2, a string without its nul, not UTF-8…).
    BadValue(&'static str),
    /// More than [`MAX_DEPTH`] nested containers.
    TooDeep,
    /// More than [`MAX_VALUES`] values.
    TooMany,
    /// A message or array longer than [`MAX_MESSAGE`].
    TooLarge,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("message truncated"),
            WireError::BadSignature => f.write_str("invalid signature"),
            WireError::BadValue(what) => write!(f, "invalid value: {what}"),
            WireError::TooDeep => write!(f, "more than {MAX_DEPTH} nested containers"),
            WireError::TooMany => write!(f, "more than {MAX_VALUES} values"),
            WireError::TooLarge => write!(f, "longer than {MAX_MESSAGE} bytes"),
        }
    }
}

impl std::error::Error for WireError {}

/// Alignment of the type whose signature starts with `code`.
fn alignment(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 4,
    }
}

/// The end (exclusive) of the one complete type starting at `sig[i]`.
fn type_end(sig: &[u8], i: usize, depth: usize) -> Result<usize, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep);
    }
    let code = *sig.get(i).ok_or(WireError::BadSignature)?;
    match code {
        b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'd' | b's' | b'o' | b'g'
        | b'h' | b'v' => Ok(i + 1),
        b'a' => {
            if sig.get(i + 1) == Some(&b'{') {
                // A dict entry: a basic key, one complete value type, then '}'.
                let key = *sig.get(i + 2).ok_or(WireError::BadSignature)?;
                if !b"ybnqiuxtdsogh".contains(&key) {
                    return Err(WireError::BadSignature);
                }
                let value_end = type_end(sig, i + 3, depth + 1)?;
                if sig.get(value_end) != Some(&b'}') {
                    return Err(WireError::BadSignature);
                }
                Ok(value_end + 1)
            } else {
                type_end(sig, i + 1, depth + 1)
            }
        }
        b'(' => {
            let mut j = i + 1;
            if sig.get(j) == Some(&b')') {
                return Err(WireError::BadSignature);
            }
            while sig.get(j) != Some(&b')') {
                j = type_end(sig, j, depth + 1)?;
            }
            Ok(j + 1)
        }
        _ => Err(WireError::BadSignature),
    }
}

/// Checks that `sig` is a sequence of complete types (at most [`MAX_SIGNATURE`] bytes).
pub fn check_signature(sig: &[u8]) -> Result<(), WireError> {
    if sig.len() > MAX_SIGNATURE {
        return Err(WireError::BadSignature);
    }
    let mut i = 0;
    while i < sig.len() {
        i = type_end(sig, i, 0)?;
    }
    Ok(())
}

/// A cursor over a message; positions (and so alignment) count from the message's first byte.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    little: bool,
    values: usize,
}

impl<'a> Reader<'a> {
    /// A reader at `pos` of `buf`; `little`: the message's byte order ('l').
    pub fn new(buf: &'a [u8], pos: usize, little: bool) -> Reader<'a> {
        Reader {
            buf,
            pos,
            little,
            values: 0,
        }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    fn align(&mut self, n: usize) -> Result<(), WireError> {
        let p = self.pos.div_ceil(n) * n;
        if p > self.buf.len() {
            return Err(WireError::Truncated);
        }
        self.pos = p;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        self.align(N)?;
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        if !self.little {
            b.reverse();
        }
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.fixed::<4>()?))
    }

    fn string(&mut self, len: usize) -> Result<String, WireError> {
        let bytes = self.take(len)?;
        if self.take(1)? != [0] {
            return Err(WireError::BadValue("string without its nul"));
        }
        let s = std::str::from_utf8(bytes).map_err(|_| WireError::BadValue("string not UTF-8"))?;
        if s.contains('\0') {
            return Err(WireError::BadValue("nul inside a string"));
        }
        Ok(s.to_owned())
    }

    /// The values of the complete types of `sig`, in order.
    pub fn values(&mut self, sig: &[u8]) -> Result<Vec<Value>, WireError> {
        check_signature(sig)?;
        let mut out = Vec::new();
        let mut i = 0;
        while i < sig.len() {
            let end = type_end(sig, i, 0)?;
            out.push(self.value(&sig[i..end], 0)?);
            i = end;
        }
        Ok(out)
    }

    /// The value of `ty`, exactly one complete type (checked by the caller).
    fn value(&mut self, ty: &[u8], depth: usize) -> Result<Value, WireError> {
        if depth > MAX_DEPTH {
            return Err(WireError::TooDeep);
        }
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(WireError::TooMany);
        }
        let code = *ty.first().ok_or(WireError::BadSignature)?;
        Ok(match code {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => return Err(WireError::BadValue("boolean not 0 or 1")),
            },
            b'n' => Value::I16(i16::from_le_bytes(self.fixed()?)),
            b'q' => Value::U16(u16::from_le_bytes(self.fixed()?)),
            b'i' => Value::I32(i32::from_le_bytes(self.fixed()?)),
            b'u' => Value::U32(self.u32()?),
            b'h' => Value::Fd(self.u32()?),
            b'x' => Value::I64(i64::from_le_bytes(self.fixed()?)),
            b't' => Value::U64(u64::from_le_bytes(self.fixed()?)),
            b'd' => Value::Double(f64::from_le_bytes(self.fixed()?)),
            b's' | b'o' => {
                let len = self.u32()? as usize;
                if len > MAX_MESSAGE {
                    return Err(WireError::TooLarge);
                }
                let s = self.string(len)?;
                if code == b'o' {
                    Value::Path(s)
                } else {
                    Value::Str(s)
                }
            }
            b'g' => {
                let len = usize::from(self.take(1)?[0]);
                let s = self.string(len)?;
                check_signature(s.as_bytes())?;
                Value::Sig(s)
            }
            b'v' => {
                let len = usize::from(self.take(1)?[0]);
                let sig = self.string(len)?;
                let sig = sig.as_bytes();
                if sig.is_empty() || type_end(sig, 0, depth + 1)? != sig.len() {
                    return Err(WireError::BadSignature);
                }
                Value::Variant(Box::new(self.value(sig, depth + 1)?))
            }
            b'a' => {
                let len = self.u32()? as usize;
                if len > MAX_MESSAGE {
                    return Err(WireError::TooLarge);
                }
                let elem = ty.get(1..).ok_or(WireError::BadSignature)?;
                let first = *elem.first().ok_or(WireError::BadSignature)?;
                // The padding to the first element is there even for an empty array.
                self.align(alignment(first))?;
                let end = self.pos.checked_add(len).ok_or(WireError::Truncated)?;
                if end > self.buf.len() {
                    return Err(WireError::Truncated);
                }
                if first == b'{' {
                    let inner = elem
                        .get(1..elem.len().saturating_sub(1))
                        .ok_or(WireError::BadSignature)?;
                    let key_ty = inner.get(..1).ok_or(WireError::BadSignature)?;
                    let value_ty = inner.get(1..).ok_or(WireError::BadSignature)?;
                    let mut entries = Vec::new();
                    while self.pos < end {
                        self.align(8)?;
                        let k = self.value(key_ty, depth + 1)?;
                        let v = self.value(value_ty, depth + 1)?;
                        entries.push((k, v));
                    }
                    if self.pos != end {
                        return Err(WireError::BadValue("array length"));
                    }
                    Value::Dict(entries)
                } else {
                    let mut items = Vec::new();
                    while self.pos < end {
                        items.push(self.value(elem, depth + 1)?);
                    }
                    if self.pos != end {
                        return Err(WireError::BadValue("array length"));
                    }
                    Value::Array(items)
                }
            }
            b'(' => {
                self.align(8)?;
                let inner = ty
                    .get(1..ty.len().saturating_sub(1))
                    .ok_or(WireError::BadSignature)?;
                let mut fields = Vec::new();
                let mut i = 0;
                while i < inner.len() {
                    let end = type_end(inner, i, depth + 1)?;
                    fields.push(self.value(&inner[i..end], depth + 1)?);
                    i = end;
                }
                Value::Struct(fields)
            }
            _ => return Err(WireError::BadSignature),
        })
    }
}

/// The fixed 16-byte start of a message: byte order, type, flags, body length, serial, and the
/// header-field array's length. [`Prefix::total`] is the whole message's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub little: bool,
    pub kind: u8,
    pub body_len: usize,
    pub fields_len: usize,
}

impl Prefix {
    pub const LEN: usize = 16;

    pub fn parse(b: &[u8; 16]) -> Result<Prefix, WireError> {
        let little = match b[0] {
            b'l' => true,
            b'B' => false,
            _ => return Err(WireError::BadValue("byte order")),
        };
        if b[3] != 1 {
            return Err(WireError::BadValue("protocol version"));
        }
        let word = |i: usize| {
            let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
            (if little {
                u32::from_le_bytes(w)
            } else {
                u32::from_be_bytes(w)
            }) as usize
        };
        let p = Prefix {
            little,
            kind: b[1],
            body_len: word(4),
            fields_len: word(12),
        };
        if p.total().is_none_or(|t| t > MAX_MESSAGE) {
            return Err(WireError::TooLarge);
        }
        Ok(p)
    }

    /// Header (padded to 8) plus body; `None` on overflow.
    pub fn total(&self) -> Option<usize> {
        let header = Prefix::LEN
            .checked_add(self.fields_len)?
            .checked_next_multiple_of(8)?;
        header.checked_add(self.body_len)
    }
}

/// A received message: what the agent looks at in its header, and its body.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: u8,
    pub serial: u32,
    pub reply_serial: Option<u32>,
    pub error_name: Option<String>,
    pub member: Option<String>,
    pub body: Vec<Value>,
}

/// Decodes one whole message (`buf` is exactly [`Prefix::total`] bytes).
pub fn parse_message(buf: &[u8]) -> Result<Message, WireError> {
    let head: &[u8; 16] = buf
        .get(..Prefix::LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(WireError::Truncated)?;
    let prefix = Prefix::parse(head)?;
    if prefix.total() != Some(buf.len()) {
        return Err(WireError::BadValue("message length"));
    }
    let mut r = Reader::new(buf, 8, prefix.little);
    let serial = r.u32()?;
    let fields = r.values(b"a(yv)")?;
    let mut msg = Message {
        kind: prefix.kind,
        serial,
        reply_serial: None,
        error_name: None,
        member: None,
        body: Vec::new(),
    };
    let mut signature = String::new();
    if let Some(Value::Array(fields)) = fields.first() {
        for f in fields {
            let Value::Struct(pair) = f else { continue };
            let (Some(Value::Byte(code)), Some(v)) = (pair.first(), pair.get(1)) else {
                continue;
            };
            match (code, v.unwrap_variant()) {
                (3, Value::Str(s)) => msg.member = Some(s.clone()),
                (4, Value::Str(s)) => msg.error_name = Some(s.clone()),
                (5, Value::U32(n)) => msg.reply_serial = Some(*n),
                (8, Value::Sig(s)) => signature.clone_from(s),
                _ => {}
            }
        }
    }
    r.align(8)?;
    if buf.len() - r.position() != prefix.body_len {
        return Err(WireError::BadValue("body length"));
    }
    msg.body = r.values(signature.as_bytes())?;
    if r.position() != buf.len() {
        return Err(WireError::BadValue("body longer than its signature"));
    }
    Ok(msg)
}

/// An argument of a call the agent sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    Str(&'a str),
    U32(u32),
}

/// Where a method call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<'a> {
    pub destination: &'a str,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
}

/// Little-endian writer (positions from the message's first byte).
struct Writer<'b> {
    buf: &'b mut Vec<u8>,
}

impl Writer<'_> {
    fn pad(&mut self, n: usize) {
        while self.buf.len() % n != 0 {
            self.buf.push(0);
        }
    }
    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    fn signature(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    /// One header field (`(yv)`): code, then a variant of type `sig`.
    fn field(&mut self, code: u8, sig: &str, value: &str) {
        self.pad(8);
        self.buf.push(code);
        self.signature(sig);
        if sig == "g" {
            self.signature(value);
        } else {
            self.string(value);
        }
    }
}

/// Encodes the method call `call(args)` with `serial` into `out` (cleared first). Names and
/// strings are the agent's own (short, valid); `destination` is left out when empty.
pub fn encode_call(out: &mut Vec<u8>, serial: u32, call: &Call<'_>, args: &[Arg<'_>]) {
    out.clear();
    let sig = signature_of(args);
    let mut body = Vec::new();
    {
        let mut w = Writer { buf: &mut body };
        for a in args {
            match a {
                Arg::Str(s) => w.string(s),
                Arg::U32(n) => w.u32(*n),
            }
        }
    }
    let mut w = Writer { buf: out };
    // Flags: NO_AUTO_START (0x2): a call never starts a service the administrator left off.
    w.buf.extend_from_slice(&[b'l', METHOD_CALL, 0x2, 1]);
    w.buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    w.buf.extend_from_slice(&serial.to_le_bytes());
    w.buf.extend_from_slice(&[0; 4]); // the fields' length, set below
    w.field(1, "o", call.path);
    if !call.interface.is_empty() {
        w.field(2, "s", call.interface);
    }
    w.field(3, "s", call.member);
    if !call.destination.is_empty() {
        w.field(6, "s", call.destination);
    }
    if !sig.is_empty() {
        w.field(8, "g", &sig);
    }
    let fields_len = (w.buf.len() - Prefix::LEN) as u32;
    w.buf[12..16].copy_from_slice(&fields_len.to_le_bytes());
    w.pad(8);
    w.buf.extend_from_slice(&body);
}

fn signature_of(args: &[Arg<'_>]) -> String {
    args.iter()
        .map(|a| match a {
            Arg::Str(_) => 's',
            Arg::U32(_) => 'u',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A call the agent encodes decodes back, field by field.
    #[test]
    fn an_encoded_call_decodes() {
        let mut buf = Vec::new();
        let call = Call {
            destination: "org.freedesktop.ModemManager1",
            path: "/org/freedesktop/ModemManager1/Bearer/0",
            interface: "org.freedesktop.DBus.Properties",
            member: "Get",
        };
        encode_call(&mut buf, 7, &call, &[Arg::Str("a.b"), Arg::U32(5)]);
        let p = Prefix::parse(buf[..16].try_into().unwrap()).unwrap();
        assert_eq!(p.total(), Some(buf.len()));
        let m = parse_message(&buf).unwrap();
        assert_eq!(m.kind, METHOD_CALL);
        assert_eq!(m.serial, 7);
        assert_eq!(m.member.as_deref(), Some("Get"));
        assert_eq!(m.body, vec![Value::Str("a.b".into()), Value::U32(5)]);
    }

    /// A big-endian a{sv} with an empty array of doubles inside (its padding counts even when
    /// empty) and a variant holding a variant.
    #[test]
    fn containers_and_padding() {
        fn pad(b: &mut Vec<u8>, n: usize) {
            while b.len() % n != 0 {
                b.push(0);
            }
        }
        let be = |v: u32| v.to_be_bytes();
        let mut b = Vec::new();
        b.extend_from_slice(&be(0)); // the array's length, set below
        pad(&mut b, 8);
        let start = b.len();
        // {"x": v(ad) []}
        b.extend_from_slice(&be(1));
        b.extend_from_slice(b"x\0");
        b.extend_from_slice(&[2, b'a', b'd', 0]);
        pad(&mut b, 4);
        b.extend_from_slice(&be(0));
        pad(&mut b, 8);
        // {"y": v(v(u)) 3}
        b.extend_from_slice(&be(1));
        b.extend_from_slice(b"y\0");
        b.extend_from_slice(&[1, b'v', 0, 1, b'u', 0]);
        pad(&mut b, 4);
        b.extend_from_slice(&be(3));
        let len = (b.len() - start) as u32;
        b[..4].copy_from_slice(&len.to_be_bytes());
        let v = Reader::new(&b, 0, false).values(b"a{sv}").unwrap();
        let Value::Dict(d) = &v[0] else {
            panic!("{v:?}")
        };
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].1, Value::Variant(Box::new(Value::Array(vec![]))));
        assert_eq!(
            d[1].1,
            Value::Variant(Box::new(Value::Variant(Box::new(Value::U32(3)))))
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(check_signature(b"a"), Err(WireError::BadSignature));
        assert_eq!(check_signature(b"a{vs}"), Err(WireError::BadSignature));
        assert_eq!(check_signature(b"()"), Err(WireError::BadSignature));
        assert!(check_signature(&[b'a'; 200]).is_err());
        // An array claiming 2 GiB.
        let b = 0x8000_0000u32.to_le_bytes();
        assert_eq!(
            Reader::new(&b, 0, true).values(b"ay"),
            Err(WireError::TooLarge)
        );
        // A boolean of 2.
        assert!(matches!(
            Reader::new(&2u32.to_le_bytes(), 0, true).values(b"b"),
            Err(WireError::BadValue(_))
        ));
        // Too many values: 20 000 bytes.
        let mut b = 20_000u32.to_le_bytes().to_vec();
        b.resize(4 + 20_000, 0);
        assert_eq!(
            Reader::new(&b, 0, true).values(b"ay"),
            Err(WireError::TooMany)
        );
        // Variants nested past the depth bound.
        let mut b = Vec::new();
        for _ in 0..100 {
            b.extend_from_slice(&[1, b'v', 0]);
        }
        assert_eq!(
            Reader::new(&b, 0, true).values(b"v"),
            Err(WireError::TooDeep)
        );
        // A prefix announcing more than MAX_MESSAGE.
        let mut p = [0u8; 16];
        p[0] = b'l';
        p[3] = 1;
        p[4..8].copy_from_slice(&(MAX_MESSAGE as u32).to_le_bytes());
        assert_eq!(Prefix::parse(&p), Err(WireError::TooLarge));
    }
}
