//! RESP replies, written straight into a connection's output buffer.
//!
//! Faktory answers with a subset of Redis' RESP: `+OK`, `-ERR message`, bulk strings
//! (`$len\r\n...\r\n`) and the null bulk string `$-1`. Writers append to a `Vec<u8>` that the
//! connection flushes once per read batch, so a pipelined burst costs one `write` syscall.

/// Appends `+OK`.
pub(crate) fn ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"+OK\r\n");
}

/// Appends `-ERR message`. Line breaks in the message become spaces so the reply stays one line.
pub(crate) fn err(out: &mut Vec<u8>, message: &str) {
    out.extend_from_slice(b"-ERR ");
    out.extend(
        message
            .bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// Appends a bulk string.
pub(crate) fn bulk(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(b'$');
    push_decimal(out, payload.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// Appends the null bulk string `$-1` (Faktory's "nothing").
pub(crate) fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        let mut out = Vec::new();
        ok(&mut out);
        err(&mut out, "bad\r\nthing");
        bulk(&mut out, b"{}");
        bulk(&mut out, &[b'x'; 1234]);
        null(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("+OK\r\n-ERR bad  thing\r\n$2\r\n{}\r\n$1234\r\nxxx"));
        assert!(text.ends_with("\r\n$-1\r\n"));
    }
}
