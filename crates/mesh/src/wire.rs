//! What MESH puts on the wire, read defensively: `Mex-*` headers into
//! [`MessageMeta`], chunk ranges, bounded bodies and bounded gzip, HTTP
//! statuses into [`MeshError`]. Errors name the call and the status, never a
//! message's content, a URL's query or a credential.

use std::io::Read;

use flate2::read::MultiGzDecoder;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use crate::{MeshError, MessageMeta, MessageType};

/// Most chunks a message may claim: 20 GB (MESH's ceiling) in 20 MB chunks
/// is 1,000; more is a response MESH should never give.
pub(crate) const MAX_CHUNKS: u32 = 10_000;

/// Most bytes of a JSON answer (an inbox page of 5,000 ids is ~200 kB).
pub(crate) const MAX_JSON_BYTES: u64 = 4 << 20;

/// The error for a status the call did not expect: 429 and 5xx are worth
/// retrying, the rest will fail again as configured.
pub(crate) fn status_error(call: &str, status: StatusCode) -> MeshError {
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        MeshError::Transient(format!("{call}: HTTP {}", status.as_u16()))
    } else {
        MeshError::Refused(format!("{call}: HTTP {}", status.as_u16()))
    }
}

/// A transport error: timeouts, refused connections and broken bodies are
/// transient; a request that could not even be built is not.
pub(crate) fn transport_error(call: &str, error: &reqwest::Error) -> MeshError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the response body broke off"
    } else if error.is_builder() {
        return MeshError::Refused(format!("{call}: the request could not be built"));
    } else {
        "the request failed"
    };
    MeshError::Transient(format!("{call}: {what}"))
}

/// A header as text; absent or empty is `None`. Non-ASCII is refused.
pub(crate) fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, MeshError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                MeshError::Refused(format!("download: header {name} is not visible ASCII"))
            })?;
            let text = text.trim();
            Ok((!text.is_empty()).then(|| text.to_owned()))
        }
    }
}

/// `Mex-*` headers of a downloaded message (or its first chunk). The id is
/// the one asked for: MESH's `Mex-MessageID` echoes it.
pub(crate) fn message_meta(id: &str, headers: &HeaderMap) -> Result<MessageMeta, MeshError> {
    let message_type = match header(headers, "mex-messagetype")? {
        Some(t) if t.eq_ignore_ascii_case("DATA") => MessageType::Data,
        Some(t) if t.eq_ignore_ascii_case("REPORT") => MessageType::Report,
        _ => {
            return Err(MeshError::Refused(
                "download: Mex-MessageType is neither DATA nor REPORT".into(),
            ))
        }
    };
    let report = message_type == MessageType::Report;
    let from = match header(headers, "mex-from")? {
        Some(from) => from,
        // MESH's own reports may name no sender (mesh-sandbox sends none).
        None if report => String::new(),
        None => {
            return Err(MeshError::Refused(
                "download: a DATA message without Mex-From".into(),
            ))
        }
    };
    let report_only = |name: &str| -> Result<Option<String>, MeshError> {
        if report {
            header(headers, name)
        } else {
            Ok(None)
        }
    };
    Ok(MessageMeta {
        id: id.to_owned(),
        message_type,
        from,
        workflow_id: header(headers, "mex-workflowid")?,
        file_name: header(headers, "mex-filename")?,
        local_id: header(headers, "mex-localid")?,
        linked_message_id: report_only("mex-linkedmsgid")?,
        status_code: report_only("mex-statuscode")?,
        status_description: report_only("mex-statusdescription")?,
    })
}

/// `Mex-Chunk-Range: k:n` (absent: `1:1`). Must be chunk `expected` of a
/// sensible `n`.
pub(crate) fn chunk_range(headers: &HeaderMap, expected: u32) -> Result<u32, MeshError> {
    let Some(range) = header(headers, "mex-chunk-range")? else {
        return if expected == 1 {
            Ok(1)
        } else {
            Err(MeshError::Refused(format!(
                "download: chunk {expected} has no Mex-Chunk-Range"
            )))
        };
    };
    let bad = || {
        MeshError::Refused(format!(
            "download: chunk {expected} has a bad Mex-Chunk-Range"
        ))
    };
    let (k, n) = range.split_once(':').ok_or_else(bad)?;
    let k: u32 = k.trim().parse().map_err(|_| bad())?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    if k != expected || n < k || n > MAX_CHUNKS {
        return Err(bad());
    }
    Ok(n)
}

/// A body of at most `limit` bytes; `Ok(None)` when it is longer (reading
/// stops at the first byte past the limit, so memory stays bounded).
pub(crate) async fn read_bounded(
    call: &str,
    mut response: reqwest::Response,
    limit: u64,
) -> Result<Option<Vec<u8>>, MeshError> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(piece) = response
        .chunk()
        .await
        .map_err(|e| transport_error(call, &e))?
    {
        if (body.len() + piece.len()) as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&piece);
    }
    Ok(Some(body))
}

/// gzip (one or more members) undone, at most `limit` bytes of output;
/// `Ok(None)` when the output would be longer.
pub(crate) fn gunzip_bounded(data: &[u8], limit: u64) -> Result<Option<Vec<u8>>, MeshError> {
    let mut out = Vec::new();
    MultiGzDecoder::new(data)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|_| MeshError::Refused("download: the body is not valid gzip".into()))?;
    Ok((out.len() as u64 <= limit).then_some(out))
}

/// True when the bytes start as a gzip member does (RFC 1952: 1f 8b).
pub(crate) fn looks_gzipped(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
}

/// A header value's yes: `Y`, `YES`, `TRUE` (any case).
pub(crate) fn is_yes(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        ["y", "yes", "true"]
            .iter()
            .any(|yes| v.trim().eq_ignore_ascii_case(yes))
    })
}

/// The id MESH gave a sent message: v2 `message_id`, v1 `messageID`.
pub(crate) fn sent_message_id(body: &[u8]) -> Result<String, MeshError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| MeshError::Refused("send: MESH's answer is not JSON".into()))?;
    ["message_id", "messageID", "messageId"]
        .iter()
        .find_map(|key| value.get(key).and_then(|v| v.as_str()))
        .map(str::to_owned)
        .filter(|id| valid_id(id))
        .ok_or_else(|| MeshError::Refused("send: MESH's answer carries no message id".into()))
}

/// A message id MESH could have given: opaque, but one URL path segment of
/// letters, digits, `_`, `-` or `.` (real MESH: `20200529155357895317_3573F8`,
/// mesh-sandbox: 32 hex digits).
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::io::Write;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn statuses_are_classified() {
        for (code, transient) in [
            (429, true),
            (500, true),
            (502, true),
            (503, true),
            (504, true),
            (400, false),
            (401, false),
            (403, false),
            (417, false),
            (422, false),
            (300, false),
        ] {
            let e = status_error("inbox", StatusCode::from_u16(code).unwrap());
            assert_eq!(matches!(e, MeshError::Transient(_)), transient, "{code}");
            assert!(e.to_string().contains(&code.to_string()));
        }
    }

    #[test]
    fn data_and_report_headers() {
        let data = headers(&[
            ("Mex-MessageType", "DATA"),
            ("Mex-From", "X26ABC1"),
            ("Mex-WorkflowID", "CPIS_LA_UPLOAD"),
            ("Mex-FileName", "upload.xml"),
            ("Mex-LocalID", "local-1"),
            ("Mex-StatusCode", "00"),
            ("Mex-LinkedMsgID", "NOT-FOR-DATA"),
        ]);
        let meta = message_meta("ID1", &data).unwrap();
        assert_eq!(meta.message_type, MessageType::Data);
        assert_eq!(meta.from, "X26ABC1");
        assert_eq!(meta.workflow_id.as_deref(), Some("CPIS_LA_UPLOAD"));
        assert_eq!(meta.file_name.as_deref(), Some("upload.xml"));
        assert_eq!(meta.local_id.as_deref(), Some("local-1"));
        assert_eq!(meta.status_code, None);
        assert_eq!(meta.linked_message_id, None);

        let report = headers(&[
            ("mex-messagetype", "report"),
            ("mex-linkedmsgid", "ID0"),
            ("mex-localid", "asn-7"),
            ("mex-statuscode", "14"),
            (
                "mex-statusdescription",
                "Message not collected by recipient after 5 days",
            ),
        ]);
        let meta = message_meta("ID2", &report).unwrap();
        assert_eq!(meta.message_type, MessageType::Report);
        assert_eq!(meta.from, "");
        assert_eq!(meta.linked_message_id.as_deref(), Some("ID0"));
        assert_eq!(meta.local_id.as_deref(), Some("asn-7"));
        assert_eq!(meta.status_code.as_deref(), Some("14"));
    }

    #[test]
    fn hostile_headers_are_refused() {
        for bad in [
            headers(&[("Mex-From", "X26ABC1")]),
            headers(&[("Mex-MessageType", "SPAM"), ("Mex-From", "X26ABC1")]),
            headers(&[("Mex-MessageType", "DATA")]),
        ] {
            assert!(matches!(
                message_meta("ID", &bad),
                Err(MeshError::Refused(_))
            ));
        }
        let mut non_ascii = headers(&[("Mex-MessageType", "DATA")]);
        non_ascii.insert("mex-from", HeaderValue::from_bytes(b"X26\xff").unwrap());
        assert!(matches!(
            message_meta("ID", &non_ascii),
            Err(MeshError::Refused(_))
        ));
    }

    #[test]
    fn chunk_ranges() {
        assert_eq!(chunk_range(&HeaderMap::new(), 1).unwrap(), 1);
        assert!(chunk_range(&HeaderMap::new(), 2).is_err());
        assert_eq!(
            chunk_range(&headers(&[("Mex-Chunk-Range", "1:3")]), 1).unwrap(),
            3
        );
        assert_eq!(
            chunk_range(&headers(&[("Mex-Chunk-Range", " 3 : 3 ")]), 3).unwrap(),
            3
        );
        for bad in ["2:3", "1", "a:b", "4:3", "1:-1", "1:10001", "1:99999999999"] {
            assert!(
                chunk_range(&headers(&[("Mex-Chunk-Range", bad)]), 1).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn gunzip_is_bounded() {
        let text = b"<File>hello</File>".repeat(10);
        let packed = gzip(&text);
        assert_eq!(gunzip_bounded(&packed, 1000).unwrap().unwrap(), text);
        assert_eq!(
            gunzip_bounded(&packed, text.len() as u64).unwrap().unwrap(),
            text
        );
        assert_eq!(
            gunzip_bounded(&packed, text.len() as u64 - 1).unwrap(),
            None
        );
        // Two members (independently compressed chunks) join.
        let mut two = gzip(b"ab");
        two.extend(gzip(b"cd"));
        assert_eq!(gunzip_bounded(&two, 10).unwrap().unwrap(), b"abcd");
        // A bomb: 20 MB of zeros packed 100-fold stops at the limit.
        let bomb = gzip(&vec![0u8; 20_000_000]);
        assert!(bomb.len() < 200_000, "{}", bomb.len());
        assert_eq!(gunzip_bounded(&bomb, 1_000_000).unwrap(), None);
        assert!(matches!(
            gunzip_bounded(b"not gzip", 10),
            Err(MeshError::Refused(_))
        ));
        assert!(looks_gzipped(&packed) && !looks_gzipped(b"<File/>"));
    }

    #[test]
    fn sent_ids_and_valid_ids() {
        assert_eq!(
            sent_message_id(br#"{"message_id":"ABC_1"}"#).unwrap(),
            "ABC_1"
        );
        assert_eq!(
            sent_message_id(br#"{"messageID":"ABC_2"}"#).unwrap(),
            "ABC_2"
        );
        assert!(sent_message_id(br#"{"message_id":"../x"}"#).is_err());
        assert!(sent_message_id(b"<html/>").is_err());
        assert!(valid_id("20200529155357895317_3573F8"));
        assert!(valid_id("FEDCBA98ABCDEF01FEDCBA98ABCDEF01"));
        for bad in ["", ".", "..", "a/b", "a b", "a?b", "a%2F"] {
            assert!(!valid_id(bad), "{bad}");
        }
        assert!(is_yes(Some("Y")) && is_yes(Some("true")) && !is_yes(Some("N")) && !is_yes(None));
    }
}
