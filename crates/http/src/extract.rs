//! Reading a request: JSON bodies through the one strict reader, query
//! strings, and the NHS number. Every refusal is a [`Problem`] that says
//! where the request is at fault and never repeats what it sent.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};
use cpis_domain::NhsNumber;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// Requires `content-type: application/json`.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Unsupported media type",
            "send the body as application/json",
        ))
    }
}

/// A body that could not be read. 413 advice fits the route: only an
/// upload is told to split its batch.
pub(crate) fn body_problem(rejection: BytesRejection) -> Problem {
    body_problem_with(
        rejection,
        "the body is larger than this route accepts (16 KB); send only the fields it takes",
    )
}

/// [`body_problem`] for `POST /v1/uploads`.
pub(crate) fn upload_body_problem(rejection: BytesRejection) -> Problem {
    body_problem_with(
        rejection,
        "the body is larger than an upload accepts: at most 5 MB and 10,000 records; split it into several delta uploads with consecutive sequence numbers",
    )
}

fn body_problem_with(rejection: BytesRejection, advice: &'static str) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BODY_TOO_LARGE",
            "Body too large",
            advice,
        )
    } else {
        Problem::bad_request("UNREADABLE_BODY", "the request body could not be read")
    }
}

/// Parses a JSON body through the one strict reader
/// ([`cpis_domain::json::parse`]), then into `T`. 400 `INVALID_JSON` (line
/// and column), 400 `REPEATED_MEMBER` (a member name given twice at any
/// depth, with its pointer), or 400 `INVALID_BODY` (not an object of the
/// expected fields). Serde's messages can quote the input (an NHS number),
/// so they are never passed on: the caller is told where, not what.
pub(crate) fn parse_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    expected: &str,
) -> Result<T, Problem> {
    let body = body.map_err(body_problem)?;
    require_json(headers)?;
    let invalid_body = || {
        Problem::bad_request(
            "INVALID_BODY",
            format!("the body must be a JSON object with exactly: {expected}"),
        )
    };
    let value = cpis_domain::json::parse(&body).map_err(json_problem)?;
    // Serde's derived structs also take a JSON array (fields by position);
    // the contract is an object with named fields.
    if !value.is_object() {
        return Err(invalid_body());
    }
    serde_json::from_value(value).map_err(|_| invalid_body())
}

/// A body the strict reader refused, as a problem.
fn json_problem(error: cpis_domain::json::JsonError) -> Problem {
    use cpis_domain::json::JsonError;
    match error {
        JsonError::Syntax { .. } => Problem::bad_request("INVALID_JSON", error.to_string()),
        JsonError::RepeatedMember { pointer } => Problem::bad_request(
            "REPEATED_MEMBER",
            "a member name is given more than once in one object; give each once",
        )
        .with_pointer(pointer),
    }
}

/// The body's `nhs_number`, parsed (Modulus 11).
pub(crate) fn parse_nhs_number(raw: &str) -> Result<NhsNumber, Problem> {
    NhsNumber::parse(raw).map_err(|_| {
        Problem::bad_request(
            "INVALID_NHS_NUMBER",
            "nhs_number must be a valid 10-digit NHS number (Modulus 11 check digit)",
        )
        .with_pointer("/nhs_number")
    })
}

/// A query string's decoded `(name, value)` pairs (WHATWG
/// `application/x-www-form-urlencoded`, through `form_urlencoded`), or
/// `None` when a `%` is not followed by two hex digits: such a query is
/// refused rather than read as literal text.
pub(crate) fn query_pairs(raw: Option<&str>) -> Option<Vec<(String, String)>> {
    let raw = raw.unwrap_or_default();
    let bytes = raw.as_bytes();
    let escapes_ok = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    escapes_ok.then(|| {
        form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::query_pairs;

    #[test]
    fn query_pairs_decode_and_refuse_broken_escapes() {
        let pairs = query_pairs(Some("a=x%7Cy&b=1+2&&c")).unwrap();
        let expected = [("a", "x|y"), ("b", "1 2"), ("c", "")];
        assert_eq!(
            pairs,
            expected.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec()
        );
        for broken in ["a=%", "a=%2", "a=%ZZ", "%%%"] {
            assert_eq!(query_pairs(Some(broken)), None, "{broken}");
        }
        assert_eq!(query_pairs(None), Some(Vec::new()));
    }
}
