//! API Gateway (HTTP API, payload v2) support for the Lambda functions: the
//! JWT authorizer has verified the token; its claims become [`GatewayClaims`]
//! and go through the same claims-to-principal mapping as local tokens.
//! [`run`] serves a router: each event becomes a request by `lambda_http`'s
//! own conversion, and each answer becomes the payload 2.0 response written
//! once ([`envelope`]).

use axum::extract::Request;
use axum::http::{header, response, HeaderValue};
use base64::Engine as _;
use lambda_http::request::{LambdaRequest, RequestContext};
use lambda_http::tower::ServiceExt as _;
use lambda_http::{LambdaEvent, RequestExt};
use serde_json::value::RawValue;

use crate::auth::{CallerClaims, GatewayClaims};

/// The claims the authorizer verified, if the request carries a complete set.
pub fn gateway_claims(request: &Request) -> Option<CallerClaims> {
    let RequestContext::ApiGatewayV2(context) = request.request_context_ref()? else {
        return None;
    };
    let claims = &context.authorizer.as_ref()?.jwt.as_ref()?.claims;
    let get = |name: &str| claims.get(name).cloned();
    Some(CallerClaims {
        sub: get("sub")?,
        role: get("role")?,
        ods_code: get("ods_code")?,
        rbac: get("rbac"),
        org_name: get("org_name"),
        setting: get("setting"),
        job_role: get("job_role"),
        job_role_name: get("job_role_name"),
    })
}

/// Middleware for Lambda routers: moves the authorizer's claims into the
/// request extensions, where [`crate::Authenticator::Gateway`] reads them.
pub async fn attach_gateway_claims(
    mut request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(claims) = gateway_claims(&request) {
        request.extensions_mut().insert(GatewayClaims(claims));
    }
    next.run(request).await
}

/// Serves `app` until the Lambda runtime stops, each invocation through
/// [`respond`]. In place of `lambda_http::run`, whose answer costs the body
/// a copy into a `String`, a clone of the headers and a second pass of
/// serde's string escaping (BENCHMARKS.md, 1).
///
/// # Errors
/// The runtime's, when it cannot reach the Lambda runtime API.
pub async fn run(app: axum::Router) -> Result<(), lambda_http::Error> {
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |event| {
        respond(app.clone(), event)
    }))
    .await
}

/// One invocation: the event as `lambda_http::run` hands it to a router
/// (its own conversion, the Lambda context in the extensions and the
/// X-Ray trace id as `x-amzn-trace-id`), through `app`, and the answer as
/// the HTTP API's payload 2.0 response ([`envelope`]), which the runtime
/// writes out as it is.
///
/// # Errors
/// Only if the answer's body cannot be read (never for this crate's
/// routers: their bodies are whole buffers); the runtime then reports the
/// invocation as failed, and API Gateway answers 500.
pub async fn respond(
    app: axum::Router,
    event: LambdaEvent<LambdaRequest>,
) -> Result<Box<RawValue>, lambda_http::Error> {
    let LambdaEvent { payload, context } = event;
    let mut request = lambda_http::Request::from(payload);
    if let Some(trace) = context.xray_trace_id.as_deref() {
        if let Ok(value) = HeaderValue::from_str(trace) {
            request.headers_mut().insert("x-amzn-trace-id", value);
        }
    }
    let request = request
        .with_lambda_context(context)
        .map(axum::body::Body::new);
    let response = match app.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await?;
    let envelope = envelope(&parts, &body);
    // SAFETY: `envelope` writes one JSON object: literals, and every string
    // through `push_escaped` (its tests hold every byte class, and in debug
    // builds serde_json re-parses each one here). Re-parsing it in release,
    // as `RawValue::from_string` does, cost more than writing it.
    Ok(unsafe { RawValue::from_string_unchecked(envelope) })
}

/// The HTTP API's payload 2.0 response (the fields and order of
/// `lambda_http`'s `ApiGatewayV2httpResponse`): `statusCode`; `headers`,
/// each name once with its values joined by `,` (RFC 9110 §5.3) except
/// `set-cookie`, whose values are `cookies`; an empty `multiValueHeaders`;
/// and the body as JSON text when its media type is text (the
/// `lambda_http` rule: no `content-encoding`, and `text/*`, JSON, XML,
/// YAML or JavaScript, or no `content-type`) and it is UTF-8, otherwise
/// base64 with `isBase64Encoded`. The body is escaped in one pass into the
/// one buffer.
pub fn envelope(parts: &response::Parts, body: &[u8]) -> String {
    let text = is_text(&parts.headers)
        .then(|| std::str::from_utf8(body).ok())
        .flatten();
    // Escaping a JSON body adds a backslash per quote: about one byte in eight.
    let mut out = Vec::with_capacity(body.len() + body.len() / 4 + 64 * parts.headers.len());
    out.extend_from_slice("{\"statusCode\":".as_bytes());
    out.extend_from_slice(parts.status.as_u16().to_string().as_bytes());
    out.extend_from_slice(",\"headers\":{".as_bytes());
    let mut first = true;
    for name in parts.headers.keys() {
        if name == header::SET_COOKIE {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        push_json_string(&mut out, name.as_str());
        out.extend_from_slice(":\"".as_bytes());
        for (i, value) in parts.headers.get_all(name).iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_escaped(&mut out, &String::from_utf8_lossy(value.as_bytes()));
        }
        out.push(b'"');
    }
    out.extend_from_slice("},\"multiValueHeaders\":{},\"body\":".as_bytes());
    match text {
        Some(text) => push_json_string(&mut out, text),
        None => push_json_string(
            &mut out,
            &base64::engine::general_purpose::STANDARD.encode(body),
        ),
    }
    out.extend_from_slice(",\"isBase64Encoded\":".as_bytes());
    out.extend_from_slice(if text.is_some() { "false" } else { "true" }.as_bytes());
    out.extend_from_slice(",\"cookies\":[".as_bytes());
    for (i, cookie) in parts.headers.get_all(header::SET_COOKIE).iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_string(&mut out, &String::from_utf8_lossy(cookie.as_bytes()));
    }
    out.extend_from_slice("]}".as_bytes());
    // Every byte written is ASCII or comes from a `&str`, copied whole.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Whether `lambda_http` would send a body with these headers as text.
fn is_text(headers: &axum::http::HeaderMap) -> bool {
    if headers.contains_key(header::CONTENT_ENCODING) {
        return false;
    }
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let content_type = content_type.to_str().unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    [
        "text",
        "application/json",
        "application/javascript",
        "application/xml",
        "application/yaml",
    ]
    .iter()
    .any(|prefix| content_type.starts_with(prefix))
        || ["+xml", "+yaml", "+json"]
            .iter()
            .any(|suffix| essence.ends_with(suffix))
}

/// Bytes a JSON string may not hold as they are (RFC 8259 §7): `"`, `\\`
/// and the C0 controls.
const fn needs_escape() -> [bool; 256] {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
}

const NEEDS_ESCAPE: [bool; 256] = needs_escape();

/// `text` as a JSON string.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    push_escaped(out, text);
    out.push(b'"');
}

/// `text` escaped for a JSON string, a byte at a time into room reserved
/// for the worst common case (one escape in four bytes): JSON bodies escape
/// a quote every few bytes, so copying runs between them costs more.
fn push_escaped(out: &mut Vec<u8>, text: &str) {
    // Only control characters reach `\u00XX`, so both nibbles are digits or a-f.
    let hex = |nibble: u8| match nibble {
        0..=9 => b'0' + nibble,
        _ => b'a' + nibble - 10,
    };
    out.reserve(text.len() + text.len() / 4);
    for &byte in text.as_bytes() {
        if !NEEDS_ESCAPE[usize::from(byte)] {
            out.push(byte);
            continue;
        }
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex(byte >> 4), hex(byte & 0x0f)])
            }
        }
    }
}

/// A capability router made ready for [`run`]: the same 404/405
/// problems, request id and request log as the local server, with the
/// authorizer's claims attached before authentication runs. Build the
/// router's state with [`crate::Authenticator::Gateway`].
///
/// ```ignore
/// let app = cpis_http::lambda::gateway_app(cpis_http::check_router(state));
/// cpis_http::lambda::run(app).await
/// ```
pub fn gateway_app(router: axum::Router) -> axum::Router {
    crate::finish(router).layer(axum::middleware::from_fn(attach_gateway_claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Response, StatusCode};

    #[test]
    fn every_string_escapes_to_json_that_reads_back_as_itself() {
        // Every ASCII character, alone and in a run, and text beyond ASCII,
        // read back by serde_json (which refuses raw control characters).
        let mut texts: Vec<String> = (0u8..0x80).map(|b| char::from(b).to_string()).collect();
        texts.push((0u8..0x80).map(char::from).collect());
        texts.push("Ann O'Neill \"A&E\" — £5 \u{2028} 🙂".to_owned());
        for text in texts {
            let mut ours = Vec::new();
            push_json_string(&mut ours, &text);
            let back: String = serde_json::from_slice(&ours).expect("valid JSON");
            assert_eq!(back, text, "{text:?}");
        }
    }

    fn parts(status: StatusCode, headers: &[(&str, &str)]) -> response::Parts {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("a response").into_parts().0
    }

    /// The envelope, read back by serde_json (the independent parser).
    fn read(parts: &response::Parts, body: &[u8]) -> serde_json::Value {
        let text = envelope(parts, body);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    #[test]
    fn every_character_a_body_can_hold_comes_back_exactly() {
        // Every ASCII byte (each control, quote and backslash included),
        // then characters of two, three and four bytes.
        let mut body: String = (0u8..0x80).map(char::from).collect();
        body.push_str("é€𝄞\"\\\u{7f}end");
        let json = parts(StatusCode::OK, &[("content-type", "application/json")]);
        let plain = parts(StatusCode::OK, &[]);
        for parts in [json, plain] {
            let envelope = read(&parts, body.as_bytes());
            assert_eq!(envelope["body"], body.as_str());
            assert_eq!(envelope["isBase64Encoded"], false);
        }
    }

    #[test]
    fn the_fields_are_lambda_http_s_and_headers_are_joined_once() {
        let parts = parts(
            StatusCode::CREATED,
            &[
                ("content-type", "application/problem+json"),
                ("vary", "accept"),
                ("vary", "origin"),
                ("set-cookie", "a=1; HttpOnly"),
                ("set-cookie", "b=2"),
            ],
        );
        let envelope = read(&parts, b"{}");
        assert_eq!(
            envelope,
            serde_json::json!({
                "statusCode": 201,
                "headers": { "content-type": "application/problem+json", "vary": "accept,origin" },
                "multiValueHeaders": {},
                "body": "{}",
                "isBase64Encoded": false,
                "cookies": ["a=1; HttpOnly", "b=2"],
            })
        );
    }

    #[test]
    fn bodies_that_are_not_text_go_as_base64() {
        let bytes = [0u8, 159, 146, 150, 255, b'"'];
        for headers in [
            &[("content-type", "application/octet-stream")][..],
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ][..],
            // A text type whose bytes are not UTF-8 cannot be a JSON string.
            &[("content-type", "text/plain")][..],
        ] {
            let envelope = read(&parts(StatusCode::OK, headers), &bytes);
            assert_eq!(envelope["isBase64Encoded"], true, "{headers:?}");
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(envelope["body"].as_str().expect("a string"))
                .expect("base64");
            assert_eq!(decoded, bytes, "{headers:?}");
        }
    }

    #[test]
    fn text_media_types_are_text() {
        for content_type in [
            "text/html; charset=utf-8",
            "application/json",
            "application/fhir+json; fhirVersion=4.0",
            "application/problem+json",
            "application/xml",
            "application/hl7-v3+xml",
            "application/yaml",
            "application/javascript",
        ] {
            let envelope = read(
                &parts(StatusCode::OK, &[("content-type", content_type)]),
                b"ok",
            );
            assert_eq!(envelope["isBase64Encoded"], false, "{content_type}");
            assert_eq!(envelope["body"], "ok", "{content_type}");
        }
    }
}
