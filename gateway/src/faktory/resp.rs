//! An incremental parser for the RESP replies Faktory sends: simple strings (`+`), errors (`-`),
//! integers (`:`) and bulk strings (`$n`, including the null bulk `$-1`).
//!
//! [`ReplyParser::parse`] looks at the front of a read buffer and either takes one complete reply
//! off it, says it needs more bytes (`Ok(None)`, buffer untouched), or rejects the input. It never
//! panics and never waits for more bytes than [`ReplyParser::max_reply`] allows: a bulk length
//! larger than the limit is refused as soon as its header line is complete, before anything is
//! allocated. Payloads are split off the buffer without copying.

use bytes::{Buf, Bytes, BytesMut};

/// Default largest reply accepted: 64 MiB.
pub const DEFAULT_MAX_REPLY: usize = 64 << 20;

/// Longest header line of a bulk string (`$` + sign + 20 digits fit easily).
const MAX_LENGTH_LINE: usize = 24;
/// Longest integer line (`-9223372036854775808` is 20 characters).
const MAX_INTEGER_LINE: usize = 24;

/// One reply from Faktory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text` — the text without `+` and CRLF.
    Simple(Bytes),
    /// `-KIND message` — the line without `-` and CRLF.
    Error(Bytes),
    /// `:123`.
    Integer(i64),
    /// `$n` followed by `n` bytes, or `None` for `$-1`.
    Bulk(Option<Bytes>),
}

impl Reply {
    /// Appends the wire form of this reply to `out` (used by tests and fuzzers to build streams).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(s) => {
                out.push(b'+');
                out.extend_from_slice(s);
            }
            Reply::Error(s) => {
                out.push(b'-');
                out.extend_from_slice(s);
            }
            Reply::Integer(i) => out.extend_from_slice(format!(":{i}").as_bytes()),
            Reply::Bulk(None) => out.extend_from_slice(b"$-1"),
            Reply::Bulk(Some(b)) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The payload of a simple string or non-null bulk string.
    pub fn text(&self) -> Option<&Bytes> {
        match self {
            Reply::Simple(b) | Reply::Bulk(Some(b)) => Some(b),
            _ => None,
        }
    }

    /// A short printable rendering for error messages (at most ~100 characters).
    pub(crate) fn summary(&self) -> String {
        const LIMIT: usize = 100;
        let (tag, body): (&str, &[u8]) = match self {
            Reply::Simple(b) => ("+", b),
            Reply::Error(b) => ("-", b),
            Reply::Integer(i) => return format!(":{i}"),
            Reply::Bulk(None) => return "$-1".to_owned(),
            Reply::Bulk(Some(b)) => ("$", b),
        };
        let text = String::from_utf8_lossy(&body[..body.len().min(LIMIT)]);
        let more = if body.len() > LIMIT { "..." } else { "" };
        format!("{tag}{text}{more}")
    }
}

/// Why bytes from Faktory are not a valid reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The first byte is not one of `+ - : $`.
    #[error("unknown reply type byte 0x{0:02x}")]
    UnknownType(u8),
    /// A line ends in a bare `\n`, or a bulk payload is not followed by `\r\n`.
    #[error("reply line not terminated by crlf")]
    MissingCrlf,
    /// A line is longer than allowed without a terminator.
    #[error("reply line longer than {max} bytes")]
    LineTooLong {
        /// The limit that was exceeded.
        max: usize,
    },
    /// A bulk length is not a number.
    #[error("invalid bulk length")]
    InvalidLength,
    /// A bulk length is negative but not `-1`.
    #[error("negative bulk length {0}")]
    NegativeLength(i64),
    /// An integer reply is not a number.
    #[error("invalid integer reply")]
    InvalidInteger,
    /// A bulk string is larger than the configured maximum.
    #[error("reply of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
}

/// Parses replies from the front of a buffer; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct ReplyParser {
    max_reply: usize,
}

impl Default for ReplyParser {
    fn default() -> Self {
        ReplyParser::new(DEFAULT_MAX_REPLY)
    }
}

impl ReplyParser {
    /// A parser that refuses replies (bulk payloads and lines) larger than `max_reply` bytes.
    pub fn new(max_reply: usize) -> ReplyParser {
        ReplyParser { max_reply }
    }

    /// The largest reply this parser accepts.
    pub fn max_reply(&self) -> usize {
        self.max_reply
    }

    /// Takes one complete reply off the front of `buf`.
    ///
    /// Returns `Ok(None)` and leaves `buf` untouched when more bytes are needed.
    ///
    /// # Errors
    /// A [`ParseError`] when the front of `buf` cannot be the start of a valid reply; the
    /// stream is then out of step and the connection should be dropped.
    pub fn parse(&self, buf: &mut BytesMut) -> Result<Option<Reply>, ParseError> {
        let Some(&tag) = buf.first() else {
            return Ok(None);
        };
        match tag {
            b'+' | b'-' => {
                let Some(end) = find_line(buf, self.max_reply)? else {
                    return Ok(None);
                };
                let line = take_line(buf, end);
                Ok(Some(if tag == b'+' {
                    Reply::Simple(line)
                } else {
                    Reply::Error(line)
                }))
            }
            b':' => {
                let Some(end) = find_line(buf, MAX_INTEGER_LINE)? else {
                    return Ok(None);
                };
                let value = parse_i64(&buf[1..end]).ok_or(ParseError::InvalidInteger)?;
                buf.advance(end + 2);
                Ok(Some(Reply::Integer(value)))
            }
            b'$' => self.parse_bulk(buf),
            other => Err(ParseError::UnknownType(other)),
        }
    }

    /// After [`ReplyParser::parse`] asked for more: how many more bytes the reply at the front
    /// of `buf` needs at least. Once a bulk string's length line is in, the rest of its payload
    /// and the CRLF after it; otherwise 1. Never more than the reply can still bring, so a
    /// reader may wait for that many without waiting on any later reply.
    pub fn missing(&self, buf: &[u8]) -> usize {
        if buf.first() != Some(&b'$') {
            return 1;
        }
        match self.bulk_header(buf) {
            Ok(Some((end, Some(len)))) => (end + 2 + len + 2).saturating_sub(buf.len()).max(1),
            _ => 1,
        }
    }

    /// The length line of the bulk string at the front of `buf`: where its `\r` is and the
    /// payload's length (`None` for the null string); `Ok(None)` while the line is incomplete.
    fn bulk_header(&self, buf: &[u8]) -> Result<Option<(usize, Option<usize>)>, ParseError> {
        let Some(end) = find_line(buf, MAX_LENGTH_LINE)? else {
            return Ok(None);
        };
        let digits = &buf[1..end];
        if digits == b"-1" {
            return Ok(Some((end, None)));
        }
        if digits.first() == Some(&b'-') {
            return Err(match parse_i64(digits) {
                Some(n) => ParseError::NegativeLength(n),
                None => ParseError::InvalidLength,
            });
        }
        let len = parse_u64(digits).ok_or(ParseError::InvalidLength)?;
        if len > self.max_reply as u64 {
            return Err(ParseError::TooLarge {
                len,
                max: self.max_reply,
            });
        }
        // fits: len <= max_reply, a usize
        Ok(Some((end, Some(len as usize))))
    }

    fn parse_bulk(&self, buf: &mut BytesMut) -> Result<Option<Reply>, ParseError> {
        let Some((end, len)) = self.bulk_header(buf)? else {
            return Ok(None);
        };
        let Some(len) = len else {
            buf.advance(end + 2);
            return Ok(Some(Reply::Bulk(None)));
        };
        let start = end + 2;
        let payload_end = start + len;
        // Check the terminator bytes that have arrived so garbage is refused early.
        for (i, want) in [(payload_end, b'\r'), (payload_end + 1, b'\n')] {
            match buf.get(i) {
                Some(&b) if b != want => return Err(ParseError::MissingCrlf),
                Some(_) => {}
                None => return Ok(None),
            }
        }
        buf.advance(start);
        let payload = buf.split_to(len).freeze();
        buf.advance(2);
        Ok(Some(Reply::Bulk(Some(payload))))
    }
}

/// Finds the `\r` of the first line's `\r\n` (the line starts after the type byte at 0).
/// `Ok(None)` means no terminator yet and the line is still within `max` bytes.
fn find_line(buf: &[u8], max: usize) -> Result<Option<usize>, ParseError> {
    // The line plus its CRLF, after the type byte.
    let window = &buf[1..buf.len().min(max.saturating_add(3))];
    match window.iter().position(|&b| b == b'\n') {
        Some(0) => Err(ParseError::MissingCrlf),
        Some(i) if window[i - 1] != b'\r' => Err(ParseError::MissingCrlf),
        Some(i) => Ok(Some(i)), // window index i-1 is buffer index i
        None if window.len() > max + 1 => Err(ParseError::LineTooLong { max }),
        None => Ok(None),
    }
}

fn take_line(buf: &mut BytesMut, end: usize) -> Bytes {
    let mut line = buf.split_to(end + 2);
    line.advance(1);
    line.truncate(end - 1);
    line.freeze()
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn parse_i64(text: &[u8]) -> Option<i64> {
    match text.strip_prefix(b"-") {
        Some(digits) => {
            let v = parse_u64(digits)?;
            0i64.checked_sub_unsigned(v)
        }
        None => i64::try_from(parse_u64(text)?).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(parser: &ReplyParser, input: &[u8]) -> Result<(Vec<Reply>, usize), ParseError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(r) = parser.parse(&mut buf)? {
            out.push(r);
        }
        Ok((out, buf.len()))
    }

    fn one(input: &[u8]) -> Result<Option<Reply>, ParseError> {
        ReplyParser::default().parse(&mut BytesMut::from(input))
    }

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Some(Bytes::copy_from_slice(s.as_bytes())))
    }

    #[test]
    fn each_reply_kind() {
        let (replies, rest) = parse_all(
            &ReplyParser::default(),
            b"+OK\r\n-ERR Job not found\r\n:42\r\n:-7\r\n$5\r\nhe\r\no\r\n$0\r\n\r\n$-1\r\n+",
        )
        .unwrap();
        assert_eq!(
            replies,
            vec![
                Reply::Simple(Bytes::from_static(b"OK")),
                Reply::Error(Bytes::from_static(b"ERR Job not found")),
                Reply::Integer(42),
                Reply::Integer(-7),
                bulk("he\r\no"),
                bulk(""),
                Reply::Bulk(None),
            ]
        );
        assert_eq!(rest, 1, "the trailing partial reply stays in the buffer");
    }

    #[test]
    fn one_gib_length_prefix_rejected_before_payload() {
        assert_eq!(
            one(b"$1073741824\r\n"),
            Err(ParseError::TooLarge {
                len: 1 << 30,
                max: DEFAULT_MAX_REPLY
            })
        );
        assert_eq!(
            one(b"$99999999999999999999999\r\n"),
            Err(ParseError::InvalidLength)
        );
        let small = ReplyParser::new(4);
        assert!(
            small
                .parse(&mut BytesMut::from(&b"$4\r\nabcd\r\n"[..]))
                .is_ok()
        );
        assert_eq!(
            small.parse(&mut BytesMut::from(&b"$5\r\n"[..])),
            Err(ParseError::TooLarge { len: 5, max: 4 })
        );
    }

    #[test]
    fn long_lines_without_terminator_rejected() {
        let small = ReplyParser::new(8);
        let mut buf = BytesMut::from(&b"+12345678"[..]);
        assert_eq!(small.parse(&mut buf), Ok(None));
        buf.extend_from_slice(b"\r");
        assert_eq!(small.parse(&mut buf), Ok(None));
        buf.extend_from_slice(b"\n");
        assert_eq!(
            small.parse(&mut buf),
            Ok(Some(Reply::Simple(Bytes::from_static(b"12345678"))))
        );
        let mut buf = BytesMut::from(&b"+123456789\r"[..]);
        assert_eq!(
            small.parse(&mut buf),
            Err(ParseError::LineTooLong { max: 8 })
        );
        let mut buf = BytesMut::from(&b"+123456789\r\n"[..]);
        assert_eq!(
            small.parse(&mut buf),
            Err(ParseError::LineTooLong { max: 8 })
        );
        assert_eq!(
            one(&[b"$".as_slice(), &[b'1'; 40]].concat()),
            Err(ParseError::LineTooLong {
                max: MAX_LENGTH_LINE
            })
        );
    }

    #[test]
    fn malformed_lengths_and_terminators() {
        assert_eq!(one(b"$-2\r\n"), Err(ParseError::NegativeLength(-2)));
        assert_eq!(one(b"$-0\r\n"), Err(ParseError::NegativeLength(0)));
        assert_eq!(one(b"$--1\r\n"), Err(ParseError::InvalidLength));
        assert_eq!(one(b"$abc\r\n"), Err(ParseError::InvalidLength));
        assert_eq!(one(b"$+3\r\n"), Err(ParseError::InvalidLength));
        assert_eq!(one(b"$\r\n"), Err(ParseError::InvalidLength));
        assert_eq!(one(b"$3\r\nabcde"), Err(ParseError::MissingCrlf));
        assert_eq!(one(b"$3\r\nabc\rX"), Err(ParseError::MissingCrlf));
        assert_eq!(one(b"+OK\n"), Err(ParseError::MissingCrlf));
        assert_eq!(one(b"+\n"), Err(ParseError::MissingCrlf));
        assert_eq!(one(b":12a\r\n"), Err(ParseError::InvalidInteger));
        assert_eq!(one(b":\r\n"), Err(ParseError::InvalidInteger));
        assert_eq!(
            one(b":99999999999999999999\r\n"),
            Err(ParseError::InvalidInteger)
        );
        assert_eq!(one(b"*1\r\n"), Err(ParseError::UnknownType(b'*')));
        assert_eq!(
            one(b":-9223372036854775808\r\n"),
            Ok(Some(Reply::Integer(i64::MIN)))
        );
    }

    #[test]
    fn missing_counts_a_bulk_payload_once_its_length_is_in() {
        let parser = ReplyParser::default();
        for (input, missing) in [
            (&b""[..], 1),
            (b"+OK", 1),
            (b"$", 1),
            (b"$12", 1),
            (b"$-1\r", 1),
            (b"$12\r\n", 14),
            (b"$12\r\n{\"jid\"", 8),
            (b"$12\r\n{\"jid\":\"ab\"}", 2),
            (b"$12\r\n{\"jid\":\"ab\"}\r", 1),
        ] {
            assert_eq!(
                parser.missing(input),
                missing,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // A length over the limit is refused by `parse`, never waited for.
        assert_eq!(ReplyParser::new(4).missing(b"$12\r\n"), 1);
    }

    #[test]
    fn truncated_input_waits() {
        for input in [
            &b""[..],
            b"+",
            b"+OK",
            b"+OK\r",
            b"$",
            b"$1",
            b"$-",
            b"$-1\r",
            b"$3\r\nab",
            b"$3\r\nabc",
            b"$3\r\nabc\r",
            b":-",
        ] {
            assert_eq!(one(input), Ok(None), "{:?}", String::from_utf8_lossy(input));
        }
    }

    fn arb_reply() -> impl Strategy<Value = Reply> {
        // Simple and error lines cannot contain CR or LF.
        let line = proptest::collection::vec(
            any::<u8>().prop_filter("no cr/lf", |b| *b != b'\r' && *b != b'\n'),
            0..40,
        )
        .prop_map(Bytes::from);
        prop_oneof![
            line.clone().prop_map(Reply::Simple),
            line.prop_map(Reply::Error),
            any::<i64>().prop_map(Reply::Integer),
            Just(Reply::Bulk(None)),
            proptest::collection::vec(any::<u8>(), 0..300)
                .prop_map(|v| Reply::Bulk(Some(Bytes::from(v)))),
        ]
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_all(&ReplyParser::new(64), &input);
            let _ = parse_all(&ReplyParser::default(), &input);
        }

        #[test]
        fn random_bytes_after_a_valid_prefix_never_panic(
            reply in arb_reply(),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut input = Vec::new();
            reply.encode(&mut input);
            input.extend_from_slice(&tail);
            let _ = parse_all(&ReplyParser::default(), &input);
        }

        #[test]
        fn corrupted_valid_streams_never_panic(
            replies in proptest::collection::vec(arb_reply(), 1..10),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut wire = Vec::new();
            for r in &replies {
                r.encode(&mut wire);
            }
            for (at, byte) in flips {
                let i = at.index(wire.len());
                wire[i] = byte;
            }
            // Ends (every successful parse consumes bytes) and never panics.
            let _ = parse_all(&ReplyParser::new(256), &wire);
        }

        #[test]
        fn any_split_parses_identically(
            replies in proptest::collection::vec(arb_reply(), 0..20),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let mut wire = Vec::new();
            for r in &replies {
                r.encode(&mut wire);
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            cuts.push(wire.len());
            cuts.sort_unstable();
            let parser = ReplyParser::default();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut fed = 0;
            for cut in cuts {
                buf.extend_from_slice(&wire[fed..cut]);
                fed = cut;
                while let Some(r) = parser.parse(&mut buf).unwrap() {
                    got.push(r);
                }
            }
            prop_assert_eq!(got, replies);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn every_proper_prefix_asks_for_more(reply in arb_reply()) {
            let mut wire = Vec::new();
            reply.encode(&mut wire);
            let parser = ReplyParser::default();
            for len in 0..wire.len() {
                let mut buf = BytesMut::from(&wire[..len]);
                prop_assert_eq!(parser.parse(&mut buf), Ok(None));
                prop_assert_eq!(buf.len(), len);
                let missing = parser.missing(&buf);
                prop_assert!(
                    (1..=wire.len() - len).contains(&missing),
                    "{} missing of {} bytes after {}", missing, wire.len(), len
                );
            }
            let mut buf = BytesMut::from(&wire[..]);
            prop_assert_eq!(parser.parse(&mut buf), Ok(Some(reply)));
        }
    }
}
