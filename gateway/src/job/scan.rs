//! The fast path of [`from_faktory_json`](super::from_faktory_json): one pass over a fetched
//! job in the shape Faktory writes it (an object whose string fields have no escapes and
//! whose numeric fields are plain integers), with no allocation but the job's own strings.
//!
//! It only ever answers for input the serde path (`IncomingJob`) reads to the very same job:
//! every value it passes over is checked against the JSON grammar as strictly as serde_json
//! checks it, and whatever it does not handle itself (an escape in a string field or a key, a
//! number that is not a small integer, a `failure` that does not parse on its own, a known
//! field given twice, no jid, deep nesting, anything malformed) makes it answer `None`, and
//! the serde path decides, errors included. A property test in `job.rs` holds the two to that.

/// Nesting beyond which the scan leaves the value to serde_json (whose limit is 128 levels).
const MAX_DEPTH: usize = 100;

/// The fields of a fetched job the gateway reads, borrowed from the job's text. `None`: the
/// field is absent or `null`.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Fields<'a> {
    pub(super) jid: Option<&'a str>,
    pub(super) jobtype: Option<&'a str>,
    pub(super) queue: Option<&'a str>,
    /// The JSON text of `args` and `custom` (`null` included, as serde's `RawValue` keeps it).
    pub(super) args: Option<&'a str>,
    pub(super) custom: Option<&'a str>,
    pub(super) retry: Option<i64>,
    pub(super) reserve_for: Option<i64>,
    pub(super) at: Option<&'a str>,
    pub(super) backtrace: Option<i64>,
    pub(super) created_at: Option<&'a str>,
    pub(super) enqueued_at: Option<&'a str>,
    /// The JSON text of a `failure` that is not `null`.
    pub(super) failure: Option<&'a str>,
}

/// Scans `raw` as a job Faktory wrote; `None` when the serde path must decide.
pub(super) fn scan(raw: &[u8]) -> Option<Fields<'_>> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut s = Scanner {
        text,
        bytes: raw,
        at: 0,
    };
    let fields = s.object()?;
    s.skip_whitespace();
    (s.at == raw.len() && fields.jid.is_some_and(|j| !j.is_empty())).then_some(fields)
}

/// Which kind of value a known field holds.
enum Kind {
    Str,
    Int,
    Raw,
    Failure,
}

/// The index of the first byte at or after `from` that ends a plain run of string text: a
/// quote, a backslash or a control character. Eight bytes at a time (job text is mostly
/// strings).
fn special_from(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of each byte of the result is set where `word` has a byte below `n`
    // (exact for bytes below 0x80, and no byte of 0x80 or more is special).
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH;
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let hits = below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1)
            | below(word, 0x20);
        if hits != 0 {
            break;
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| at + i)
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Takes `byte` (after whitespace) or fails.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The top-level object, its known fields picked out.
    fn object(&mut self) -> Option<Fields<'a>> {
        let mut fields = Fields::default();
        let mut seen = 0u16;
        self.expect(b'{')?;
        self.skip_whitespace();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(fields);
        }
        loop {
            self.skip_whitespace();
            let key = self.plain_string()?;
            self.expect(b':')?;
            self.skip_whitespace();
            let (bit, kind) = match key {
                "jid" => (0, Kind::Str),
                "jobtype" => (1, Kind::Str),
                "queue" => (2, Kind::Str),
                "args" => (3, Kind::Raw),
                "custom" => (4, Kind::Raw),
                "retry" => (5, Kind::Int),
                "reserve_for" => (6, Kind::Int),
                "at" => (7, Kind::Str),
                "backtrace" => (8, Kind::Int),
                "created_at" => (9, Kind::Str),
                "enqueued_at" => (10, Kind::Str),
                "failure" => (11, Kind::Failure),
                _ => {
                    self.value(1)?;
                    if self.next_member()? {
                        continue;
                    }
                    return Some(fields);
                }
            };
            // serde refuses a known field given twice.
            if seen & (1 << bit) != 0 {
                return None;
            }
            seen |= 1 << bit;
            match kind {
                Kind::Str => {
                    let value = self.string_or_null()?;
                    match bit {
                        0 => fields.jid = value,
                        1 => fields.jobtype = value,
                        2 => fields.queue = value,
                        7 => fields.at = value,
                        9 => fields.created_at = value,
                        _ => fields.enqueued_at = value,
                    }
                }
                Kind::Int => {
                    let value = self.int_or_null()?;
                    match bit {
                        5 => fields.retry = value,
                        6 => fields.reserve_for = value,
                        _ => fields.backtrace = value,
                    }
                }
                Kind::Raw => {
                    let start = self.at;
                    self.value(1)?;
                    let value = Some(&self.text[start..self.at]);
                    if bit == 3 {
                        fields.args = value;
                    } else {
                        fields.custom = value;
                    }
                }
                Kind::Failure => {
                    if self.null()? {
                        fields.failure = None;
                    } else {
                        let start = self.at;
                        self.value(1)?;
                        fields.failure = Some(&self.text[start..self.at]);
                    }
                }
            }
            if !self.next_member()? {
                return Some(fields);
            }
        }
    }

    /// After a member: `true` at a comma (another member follows), `false` at the closing
    /// brace.
    fn next_member(&mut self) -> Option<bool> {
        self.skip_whitespace();
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(true)
            }
            b'}' => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// Takes `null` if it comes next (`true`); `false` when something else does.
    fn null(&mut self) -> Option<bool> {
        if self.peek()? != b'n' {
            return Some(false);
        }
        self.literal(b"null")?;
        Some(true)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A string without escapes, or `null`.
    fn string_or_null(&mut self) -> Option<Option<&'a str>> {
        if self.null()? {
            return Some(None);
        }
        self.plain_string().map(Some)
    }

    /// A string without escapes (and so without control characters either), without its
    /// quotes. Fails at a backslash: decoding is the serde path's.
    fn plain_string(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let end = special_from(self.bytes, start)?;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        Some(&self.text[start..end])
    }

    /// An integer of at most 18 digits (so within `i64`), not `-0`, not followed by a
    /// fraction or exponent; or `null`.
    fn int_or_null(&mut self) -> Option<Option<i64>> {
        if self.null()? {
            return Some(None);
        }
        let negative = self.peek()? == b'-';
        if negative {
            self.at += 1;
        }
        let start = self.at;
        let mut value: i64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            if self.at - start == 18 {
                return None;
            }
            value = value * 10 + i64::from(digit - b'0');
            self.at += 1;
        }
        let digits = self.at - start;
        let leading_zero = digits > 1 && self.bytes[start] == b'0';
        if digits == 0 || leading_zero || (negative && value == 0) {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        Some(Some(if negative { -value } else { value }))
    }

    /// Passes over one JSON value, checked as serde_json checks a value it ignores.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.any_string(),
            b'{' => {
                if depth > MAX_DEPTH {
                    return None;
                }
                self.at += 1;
                self.skip_whitespace();
                if self.peek()? == b'}' {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.skip_whitespace();
                    self.any_string()?;
                    self.expect(b':')?;
                    self.skip_whitespace();
                    self.value(depth + 1)?;
                    if !self.next_member()? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                if depth > MAX_DEPTH {
                    return None;
                }
                self.at += 1;
                self.skip_whitespace();
                if self.peek()? == b']' {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.skip_whitespace();
                    self.value(depth + 1)?;
                    self.skip_whitespace();
                    match self.peek()? {
                        b',' => self.at += 1,
                        b']' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A string, escapes included: `\" \\ \/ \b \f \n \r \t` and `\u` with four hex digits;
    /// no raw control characters.
    fn any_string(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        self.at += 1;
        loop {
            self.at = special_from(self.bytes, self.at)?;
            match self.bytes[self.at] {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => {
                    self.at += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                        b'u' => {
                            let hex = self.bytes.get(self.at + 1..self.at + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.at += 5;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek()? == b'-' {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => {
                self.at += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return None;
                }
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }

    /// At least one digit.
    fn some_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }
}
