//! The HTTP API's responses: JSON bodies, JSON errors
//! (`{"error": {"code": "...", "message": "..."}}`), and the HTTP status of
//! a gRPC whole-call error from the submit path.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use tonic::{Code, Status};

/// What every handler answers.
pub(crate) type Reply = Response<Full<Bytes>>;

/// `body` as JSON with `status`.
pub(crate) fn json(status: StatusCode, body: &impl Serialize) -> Reply {
    match serde_json::to_vec(body) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            with_type(status, "application/json", bytes)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an http reply");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal gateway error",
            )
        }
    }
}

/// Plain text (the Prometheus exposition format, for one).
pub(crate) fn text(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    with_type(status, content_type, body.into_bytes())
}

fn with_type(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

/// A JSON error: `code` is a stable snake_case word for programs, `message`
/// a sentence for people.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    let mut reply = json(
        status,
        &ErrorBody {
            error: ErrorDetail { code, message },
        },
    );
    if status == StatusCode::UNAUTHORIZED {
        reply
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    reply
}

/// `405 Method Not Allowed` naming the one method `path` takes.
pub(crate) fn wrong_method(path: &str, allowed: &'static str) -> Reply {
    let mut reply = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("{path} takes {allowed} only"),
    );
    reply
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allowed));
    reply
}

/// The HTTP answer to a whole-call gRPC error (auth, limits, shutdown).
pub(crate) fn status(status: &Status) -> Reply {
    let (http, code) = match status.code() {
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Code::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_request"),
        Code::OutOfRange => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    error(http, code, status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_json_and_401_asks_for_a_bearer_token() {
        let reply = status(&Status::unauthenticated("no token"));
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(reply.headers()[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(reply.headers()[CONTENT_TYPE], "application/json");
        let reply = wrong_method("/v1/jobs", "POST");
        assert_eq!(reply.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(reply.headers()[http::header::ALLOW], "POST");
        assert_eq!(
            status(&Status::invalid_argument("x")).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
