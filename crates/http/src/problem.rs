//! RFC 9457 problem details: every error the JSON API returns.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cpis_domain::ports::StoreError;
use cpis_domain::{FieldError, RewindError, UploadError};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";
const TYPE_BASE: &str = "https://cpis.example/problems/";

/// A problem response. `detail` texts are written by us and never repeat
/// what the caller sent. The rarely used members sit behind one box so that
/// `Result<_, Problem>` stays small on the happy path.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub status: StatusCode,
    /// Stable machine-readable code; the `type` URI is derived from it.
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    extensions: Option<Box<Extensions>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Extensions {
    errors: Vec<FieldError>,
    pointer: Option<String>,
    file_outcome: Option<&'static str>,
    /// Seconds, sent as `Retry-After` (RFC 9110 section 10.2.3).
    retry_after: Option<u64>,
}

/// The wire shape (RFC 9457 members, then ours).
#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
    /// JSON pointer to the part of the body at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pointer: Option<&'a str>,
    /// CP-IS file outcome, for upload problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    file_outcome: Option<&'a str>,
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let extensions = self.extensions.as_deref();
        Wire {
            type_uri: self.type_uri(),
            title: self.title,
            status: self.status.as_u16(),
            code: self.code,
            detail: &self.detail,
            errors: extensions.map_or(&[], |e| e.errors.as_slice()),
            pointer: extensions.and_then(|e| e.pointer.as_deref()),
            file_outcome: extensions.and_then(|e| e.file_outcome),
        }
        .serialize(serializer)
    }
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            extensions: None,
        }
    }

    /// `https://cpis.example/problems/<code in kebab case>`.
    pub fn type_uri(&self) -> String {
        format!("{TYPE_BASE}{}", self.code.to_lowercase().replace('_', "-"))
    }

    fn extensions_mut(&mut self) -> &mut Extensions {
        self.extensions.get_or_insert_with(Box::default)
    }

    pub fn with_file_outcome(mut self, file_outcome: &'static str) -> Self {
        self.extensions_mut().file_outcome = Some(file_outcome);
        self
    }

    pub fn with_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.extensions_mut().pointer = Some(pointer.into());
        self
    }

    /// Asks the client to retry after `seconds` (the `Retry-After` header).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.extensions_mut().retry_after = Some(seconds);
        self
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.extensions_mut().errors = errors;
        self
    }

    pub fn unauthenticated(detail: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Authentication required",
            detail,
        )
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "ACCESS_DENIED",
            "Access denied",
            "your role may not use this route",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Not found",
            format!("no such {what}"),
        )
    }

    /// 400 `INVALID_CURSOR`: a page cursor this service did not issue.
    pub fn invalid_cursor() -> Self {
        Self::bad_request(
            "INVALID_CURSOR",
            "the cursor is not one this service issued",
        )
    }

    /// 409 `UPLOAD_IN_PROGRESS`: another upload of the council is being
    /// applied (uploads and rewinds run one at a time per council);
    /// `Retry-After` says when to try again.
    pub fn in_progress(detail: String, retry_after_seconds: u64) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "UPLOAD_IN_PROGRESS",
            "Upload in progress",
            detail,
        )
        .with_retry_after(retry_after_seconds)
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, "Bad request", detail)
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "Service unavailable",
            "the service could not complete the request; it is safe to retry",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status;
        let unauthenticated = status == StatusCode::UNAUTHORIZED;
        let retry_after = self.extensions.as_ref().and_then(|e| e.retry_after);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if unauthenticated {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A store that could not answer: 503, logged (the error names no person).
/// A page cursor the store could not read is the caller's: 400.
impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::InvalidCursor => Problem::invalid_cursor(),
            error => {
                tracing::error!(%error, "store error");
                Problem::unavailable()
            }
        }
    }
}

/// An upload refused: CPF01 for a malformed batch, 413 past the record
/// limit, 409 for a sequence conflict or an upload already being applied.
impl From<UploadError> for Problem {
    fn from(error: UploadError) -> Self {
        match error {
            UploadError::Malformed { detail, pointer } => Problem::bad_request("CPF01", detail)
                .with_pointer(pointer)
                .with_file_outcome("CPF01"),
            error @ UploadError::TooManyRecords => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "TOO_MANY_RECORDS",
                "Batch too large",
                error.to_string(),
            ),
            error @ (UploadError::SequenceReused { .. } | UploadError::StaleSequence { .. }) => {
                Problem::new(
                    StatusCode::CONFLICT,
                    "SEQUENCE_CONFLICT",
                    "Sequence conflict",
                    error.to_string(),
                )
            }
            error @ UploadError::InProgress {
                retry_after_seconds,
            } => Problem::in_progress(error.to_string(), retry_after_seconds),
            UploadError::Store(error) => error.into(),
        }
    }
}

impl From<RewindError> for Problem {
    fn from(error: RewindError) -> Self {
        match error {
            error @ RewindError::AboveLatest { .. } => Problem::new(
                StatusCode::CONFLICT,
                "REWIND_ABOVE_LATEST",
                "Nothing to rewind",
                error.to_string(),
            ),
            error @ RewindError::InProgress {
                retry_after_seconds,
            } => Problem::in_progress(error.to_string(), retry_after_seconds),
            RewindError::Store(error) => error.into(),
        }
    }
}
