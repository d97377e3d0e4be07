//! The frames of `/ws` as a client writes and reads them: a request from its typed call
//! ([`request_frame`]), an answer read back into the call's answer type ([`read_answer`]). The
//! typed client (feature `client`) and the supervisor's own in-process sessions (WHIP and
//! WHEP) use them; no I/O here.

use serde::Deserialize;
use serde_json::Value;

use crate::{Call, Method};

/// How long a caller waits for an answer before giving up on it.
pub const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Why a request did not get its success answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The SFU refused the request.
    #[error("{code}: {message}")]
    Refused {
        /// The error code (docs/protocol.md).
        code: String,
        /// Its explanation.
        message: String,
    },
    /// The connection could not be opened, failed or closed.
    #[error("signaling: {0}")]
    Connection(String),
    /// The server answered the WebSocket upgrade with an HTTP error (403, 429, 503, …).
    #[error("signaling: the WebSocket upgrade was refused with HTTP {status}")]
    Upgrade {
        /// The HTTP status.
        status: u16,
    },
    /// No answer in time.
    #[error("no answer to {} within {ANSWER_TIMEOUT:?}", .0.name())]
    Timeout(Method),
    /// The answer did not have the documented shape.
    #[error("malformed answer to {}: {reason}", method.name())]
    Malformed {
        /// The request.
        method: Method,
        /// Why.
        reason: String,
    },
}

impl CallError {
    /// The error code of a refusal, or what kind of failure it was (`connection`,
    /// `timeout`, `malformed`; a refused upgrade is a `connection` failure).
    pub fn code(&self) -> &str {
        match self {
            CallError::Refused { code, .. } => code,
            CallError::Connection(_) | CallError::Upgrade { .. } => "connection",
            CallError::Timeout(_) => "timeout",
            CallError::Malformed { .. } => "malformed",
        }
    }

    /// The explanation of a refusal (`None` for the other failures).
    pub fn message(&self) -> Option<&str> {
        match self {
            CallError::Refused { message, .. } => Some(message),
            _ => None,
        }
    }

    /// The HTTP status of a refused upgrade.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            CallError::Upgrade { status } => Some(*status),
            _ => None,
        }
    }
}

/// A request frame: `{"id","method","data"}`.
#[derive(serde::Serialize)]
struct RequestFrame<'a, T> {
    id: u64,
    method: Method,
    data: &'a T,
}

/// The text of request `id` sending `call`, for a client that writes its own frames (a test
/// whose client never reads, a fuzzer); [`Client::call`] and [`Client::send`] number theirs.
pub fn request_frame<C: Call>(id: u64, call: &C) -> Result<String, CallError> {
    let method = C::METHOD;
    serde_json::to_string(&RequestFrame {
        id,
        method,
        data: call,
    })
    .map_err(|e| CallError::Malformed {
        method,
        reason: format!("cannot serialize the request: {e}"),
    })
}

/// An answer frame: `{"id","ok":true,"data"}` or `{"id","ok":false,"error"}`.
#[derive(Debug, Deserialize)]
pub(crate) struct AnswerFrame {
    pub(crate) id: Option<u64>,
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    data: Value,
    error: Option<ErrorBody>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

impl AnswerFrame {
    /// Its `data`, or its refusal.
    pub(crate) fn outcome(self) -> Result<Value, CallError> {
        if self.ok {
            return Ok(self.data);
        }
        let error = self.error.unwrap_or(ErrorBody {
            code: "malformed".into(),
            message: "an error answer without its error".into(),
        });
        Err(CallError::Refused {
            code: error.code,
            message: error.message,
        })
    }
}

/// An answer frame read: the id it answers (`None`: `null`) and its `data` or refusal; `None`
/// when `text` is not an answer (a notification, or not the protocol).
pub fn read_answer(text: &str) -> Option<(Option<u64>, Result<Value, CallError>)> {
    if text.starts_with(r#"{"notification":"#) {
        return None;
    }
    let frame: AnswerFrame = serde_json::from_str(text).ok()?;
    Some((frame.id, frame.outcome()))
}

/// A success answer's `data` as `C`'s answer type.
pub fn typed_answer<C: Call>(data: Value) -> Result<C::Answer, CallError> {
    serde_json::from_value(data).map_err(|e| CallError::Malformed {
        method: C::METHOD,
        reason: e.to_string(),
    })
}
