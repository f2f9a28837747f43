//! Parsing one command line into a [`Command`].
//!
//! Like Faktory, the verb is everything before the first space and is case-sensitive; the rest
//! of the line is the argument (a JSON document for PUSH, PUSHB, ACK, FAIL, BEAT; queue names
//! for FETCH). Parsing never fails: an unknown verb is [`Command::Unknown`], and a missing or
//! malformed argument is reported by the command's handler with Faktory's own message.

/// One parsed command line, borrowing from the line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    /// `END`: close the connection, no reply.
    End,
    /// `PUSH {job}`; `None` when the line is the bare verb (no space), which Faktory 1.10.0
    /// slices past the end of and answers from its panic recovery.
    Push(Option<&'a [u8]>),
    /// `PUSHB [job,...]`.
    PushBulk(&'a [u8]),
    /// `FETCH q1 q2 ...` (queue names split on single spaces, exactly like Go's `strings.Split`).
    Fetch(Vec<&'a str>),
    /// `ACK {"jid":..}`.
    Ack(&'a [u8]),
    /// `FAIL {"jid":..,"errtype":..,"message":..,"backtrace":[..]}`.
    Fail(&'a [u8]),
    /// `BEAT {"wid":..}`.
    Beat(&'a [u8]),
    /// `INFO`.
    Info,
    /// `FLUSH`.
    Flush,
    /// `QUEUE PAUSE|RESUME|REMOVE name...|*`: the words after the verb.
    Queue(Vec<&'a str>),
    /// `BATCH ...` or `TRACK ...`: Faktory Enterprise only; carries the subsystem name.
    Enterprise(&'static str),
    /// Anything else; carries the verb.
    Unknown(String),
}

impl<'a> Command<'a> {
    /// Parses a line with its line terminator already removed.
    pub(crate) fn parse(line: &'a [u8]) -> Command<'a> {
        let (verb, arg) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &line[line.len()..]),
        };
        match verb {
            b"END" => Command::End,
            b"PUSH" => Command::Push((line.len() > verb.len()).then_some(arg)),
            b"PUSHB" => Command::PushBulk(arg),
            b"FETCH" => Command::Fetch(split_queues(line, arg)),
            b"ACK" => Command::Ack(arg),
            b"FAIL" => Command::Fail(arg),
            b"BEAT" => Command::Beat(arg),
            b"INFO" => Command::Info,
            b"FLUSH" => Command::Flush,
            b"QUEUE" => Command::Queue(words(arg)),
            b"BATCH" => Command::Enterprise("batch"),
            b"TRACK" => Command::Enterprise("tracking"),
            _ => Command::Unknown(String::from_utf8_lossy(verb).into_owned()),
        }
    }
}

fn words(arg: &[u8]) -> Vec<&str> {
    arg.split(|&b| b == b' ')
        .map(|w| std::str::from_utf8(w).unwrap_or(""))
        .collect()
}

fn split_queues<'a>(line: &'a [u8], arg: &'a [u8]) -> Vec<&'a str> {
    if arg.len() == line.len() || line.len() == b"FETCH".len() {
        return Vec::new();
    }
    words(arg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_arguments() {
        assert_eq!(Command::parse(b"END"), Command::End);
        assert_eq!(Command::parse(b"PUSH {}"), Command::Push(Some(b"{}")));
        assert_eq!(Command::parse(b"PUSH "), Command::Push(Some(b"")));
        assert_eq!(Command::parse(b"PUSH"), Command::Push(None));
        assert_eq!(Command::parse(b"FETCH a b"), Command::Fetch(vec!["a", "b"]));
        assert_eq!(Command::parse(b"FETCH"), Command::Fetch(vec![]));
        assert_eq!(Command::parse(b"FETCH "), Command::Fetch(vec![""]));
        assert_eq!(Command::parse(b"INFO"), Command::Info);
        assert_eq!(
            Command::parse(b"QUEUE PAUSE a b"),
            Command::Queue(vec!["PAUSE", "a", "b"])
        );
        assert_eq!(Command::parse(b"info"), Command::Unknown("info".to_owned()));
        assert_eq!(Command::parse(b""), Command::Unknown(String::new()));
    }
}
