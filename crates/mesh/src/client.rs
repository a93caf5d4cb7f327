//! [`MeshClient`]: the MESH API over HTTPS (MESH API specification,
//! `mesh-api.yaml`; `shared/domain/council-interface.md` §9.1), implementing
//! [`Mailbox`]. One `reqwest` client (connection pool, TLS identity) per
//! mailbox, built once; a fresh `NHSMESH` token on every request.

use std::io::Write;

use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use sha2::{Digest, Sha256};

use crate::auth::fresh_token;
use crate::wire::{self, status_error, transport_error};
use crate::{InboxPage, Mailbox, MeshConfig, MeshError, Message, MessageType, Outgoing, Tracked};

/// v2 JSON shapes (inbox `links.next`, send `message_id`).
const MESH_V2: &str = "application/vnd.mesh.v2+json";

/// A MESH mailbox reached over the MESH API. Cheap to share (`&self`
/// methods; the connection pool is inside, and a clone shares it).
#[derive(Clone)]
pub struct MeshClient {
    http: reqwest::Client,
    base: Url,
    mailbox: String,
    config: MeshConfig,
}

impl std::fmt::Debug for MeshClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshClient")
            .field("base", &self.base.as_str())
            .field("mailbox", &self.mailbox)
            .finish_non_exhaustive()
    }
}

impl MeshClient {
    /// Builds the HTTP client once. Errors ([`MeshError::Refused`]) for a
    /// base URL that is not http(s), an empty or odd mailbox id, a chunk
    /// size of 0, or PEM that does not parse; the error never quotes a
    /// secret.
    pub fn new(config: MeshConfig) -> Result<Self, MeshError> {
        let refused = |what: &str| MeshError::Refused(format!("MESH configuration: {what}"));
        let base = Url::parse(config.base_url.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
            .ok_or_else(|| refused("the base URL is not an http(s) URL"))?;
        let mailbox = config.mailbox.trim().to_ascii_uppercase();
        if !wire::valid_id(&mailbox) {
            return Err(refused("the mailbox id is empty or not letters and digits"));
        }
        if config.chunk_bytes == 0 {
            return Err(refused("the chunk size is 0"));
        }
        crate::use_ring_for_tls();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .timeout(config.request_timeout)
            // A redirect would carry the Authorization token elsewhere; MESH
            // never redirects.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cpis-mesh/", env!("CARGO_PKG_VERSION")));
        if let Some(identity) = &config.client_identity {
            let mut pem = identity.certificate_pem.clone();
            pem.push(b'\n');
            pem.extend_from_slice(identity.private_key_pem.expose());
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|_| refused("the client certificate or key PEM does not parse"))?;
            builder = builder.identity(identity);
        }
        if let Some(bundle) = &config.ca_bundle_pem {
            let certs = reqwest::Certificate::from_pem_bundle(bundle)
                .map_err(|_| refused("the CA bundle PEM does not parse"))?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|_| refused("the HTTP client could not be built (TLS settings)"))?;
        Ok(Self {
            http,
            base,
            mailbox,
            config,
        })
    }

    /// Validates the mailbox (`POST /messageexchange/{mailbox}` with the
    /// `mex-*` client headers). Live MESH wants it once every 24 hours; it
    /// also proves the credentials and the TLS identity.
    pub async fn handshake(&self) -> Result<(), MeshError> {
        let call = "handshake";
        let request = self
            .request(Method::POST, &[])
            .header(
                "mex-ClientVersion",
                concat!("cpis-mesh==", env!("CARGO_PKG_VERSION")),
            )
            .header("mex-OSName", std::env::consts::OS)
            .header("mex-OSVersion", "unknown")
            .header("mex-OSArchitecture", std::env::consts::ARCH)
            .header("mex-JavaVersion", "N/A");
        let response = self.send_request(call, request).await?;
        match response.status() {
            StatusCode::OK => Ok(()),
            status => Err(status_error(call, status)),
        }
    }

    /// `{base}/messageexchange/{mailbox}/{segments…}`, each segment
    /// percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .push("messageexchange")
                .push(&self.mailbox);
            path.extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.request_to(method, self.url(segments))
    }

    fn request_to(&self, method: Method, url: Url) -> RequestBuilder {
        let token = fresh_token(
            &self.mailbox,
            self.config.password.expose(),
            self.config.shared_key.expose(),
        );
        self.http
            .request(method, url)
            .header(reqwest::header::AUTHORIZATION, token)
            .header(ACCEPT, MESH_V2)
    }

    async fn send_request(
        &self,
        call: &str,
        request: RequestBuilder,
    ) -> Result<Response, MeshError> {
        request.send().await.map_err(|e| transport_error(call, &e))
    }

    async fn json(&self, call: &str, response: Response) -> Result<serde_json::Value, MeshError> {
        let body = wire::read_bounded(call, response, wire::MAX_JSON_BYTES)
            .await?
            .ok_or_else(|| MeshError::Refused(format!("{call}: MESH's answer is too long")))?;
        serde_json::from_slice(&body)
            .map_err(|_| MeshError::Refused(format!("{call}: MESH's answer is not JSON")))
    }

    /// One chunk (`k` = 1 is the message itself): status, headers and the
    /// body with transport gzip undone, within `allowance` bytes. `Ok(None)`
    /// when MESH no longer has the message.
    async fn chunk(
        &self,
        id: &str,
        k: u32,
        allowance: u64,
    ) -> Result<Option<(HeaderMap, Vec<u8>)>, MeshError> {
        let call = "download";
        let k_text = k.to_string();
        let segments: &[&str] = if k == 1 {
            &["inbox", id]
        } else {
            &["inbox", id, &k_text]
        };
        let request = self
            .request(Method::GET, segments)
            .header(ACCEPT_ENCODING, "gzip");
        let response = self.send_request(call, request).await?;
        let status = response.status();
        if matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE) {
            return Ok(None);
        }
        if !matches!(status, StatusCode::OK | StatusCode::PARTIAL_CONTENT) {
            return Err(status_error(call, status));
        }
        let headers = response.headers().clone();
        let gzipped = match wire::header(&headers, CONTENT_ENCODING.as_str())? {
            None => false,
            Some(e) if e.eq_ignore_ascii_case("gzip") => true,
            Some(e) if e.eq_ignore_ascii_case("identity") => false,
            Some(_) => {
                return Err(MeshError::Refused(format!(
                    "{call}: unknown Content-Encoding"
                )))
            }
        };
        let too_big = || {
            MeshError::Refused(format!(
                "{call}: message {id} is larger than the configured maximum of {} bytes",
                self.config.max_message_bytes
            ))
        };
        // Incompressible data grows a little under gzip (RFC 1951 stored
        // blocks: 5 bytes per 64 kB, plus the header): room for that.
        let raw_allowance = if gzipped {
            allowance.saturating_add(allowance / 1000 + 1024)
        } else {
            allowance
        };
        let raw = wire::read_bounded(call, response, raw_allowance)
            .await?
            .ok_or_else(too_big)?;
        let body = if gzipped {
            wire::gunzip_bounded(&raw, allowance)?.ok_or_else(too_big)?
        } else {
            raw
        };
        Ok(Some((headers, body)))
    }
}

impl Mailbox for MeshClient {
    fn mailbox_id(&self) -> &str {
        &self.mailbox
    }

    async fn inbox(&self, continue_from: Option<&str>) -> Result<InboxPage, MeshError> {
        let call = "inbox";
        let mut url = self.url(&["inbox"]);
        if let Some(size) = self.config.page_size {
            url.query_pairs_mut()
                .append_pair("max_results", &size.to_string());
        }
        if let Some(from) = continue_from {
            url.query_pairs_mut().append_pair("continue_from", from);
        }
        let request = self.request_to(Method::GET, url);
        let response = self.send_request(call, request).await?;
        if response.status() != StatusCode::OK {
            return Err(status_error(call, response.status()));
        }
        let page = self.json(call, response).await?;
        let bad = || MeshError::Refused(format!("{call}: MESH's answer is not an inbox page"));
        let ids = page
            .get("messages")
            .and_then(|m| m.as_array())
            .ok_or_else(bad)?
            .iter()
            .map(|id| {
                id.as_str()
                    .filter(|id| wire::valid_id(id))
                    .map(str::to_owned)
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        let continue_from = match page.pointer("/links/next") {
            None | Some(serde_json::Value::Null) => None,
            Some(next) => {
                // links.next is a relative URL whose query holds the cursor.
                let next = next.as_str().ok_or_else(bad)?;
                let query = next.split_once('?').map(|(_, q)| q).unwrap_or("");
                let cursor = form_urlencoded::parse(query.as_bytes())
                    .find(|(k, _)| k == "continue_from")
                    .map(|(_, v)| v.into_owned())
                    .filter(|v| !v.is_empty())
                    .ok_or_else(bad)?;
                Some(cursor)
            }
        };
        Ok(InboxPage { ids, continue_from })
    }

    async fn download(&self, id: &str) -> Result<Option<Message>, MeshError> {
        if !wire::valid_id(id) {
            return Err(MeshError::Refused("download: not a MESH message id".into()));
        }
        let limit = self.config.max_message_bytes;
        let Some((headers, first)) = self.chunk(id, 1, limit).await? else {
            return Ok(None);
        };
        let meta = wire::message_meta(id, &headers)?;
        if meta.message_type == MessageType::Report {
            // A report's body is empty (and mesh-sandbox calls it chunk 1 of 0).
            return Ok(Some(Message {
                meta,
                body: Vec::new(),
            }));
        }
        let chunks = wire::chunk_range(&headers, 1)?;
        let mut body = first;
        for k in 2..=chunks {
            let allowance = limit.saturating_sub(body.len() as u64);
            let Some((headers, piece)) = self.chunk(id, k, allowance).await? else {
                return Ok(None);
            };
            if wire::chunk_range(&headers, k)? != chunks {
                return Err(MeshError::Refused(format!(
                    "download: chunk {k} disagrees on the chunk count"
                )));
            }
            body.extend_from_slice(&piece);
        }
        // Mex-Content-Compressed: the sender gzipped the file itself, not
        // only the transfer (mesh-sandbox also sets it on every gzip
        // transfer). Undo it when what is left after the transfer encoding
        // still is gzip: an XML file never starts with 1f 8b.
        let compressed = wire::header(&headers, "mex-content-compressed")?;
        if wire::is_yes(compressed.as_deref()) && wire::looks_gzipped(&body) {
            body = wire::gunzip_bounded(&body, limit)?.ok_or_else(|| {
                MeshError::Refused(format!(
                    "download: message {id} is larger than the configured maximum of {limit} bytes"
                ))
            })?;
        }
        Ok(Some(Message { meta, body }))
    }

    async fn acknowledge(&self, id: &str) -> Result<(), MeshError> {
        let call = "acknowledge";
        if !wire::valid_id(id) {
            return Err(MeshError::Refused(format!("{call}: not a MESH message id")));
        }
        let request = self.request(Method::PUT, &["inbox", id, "status", "acknowledged"]);
        let response = self.send_request(call, request).await?;
        match response.status() {
            s if s.is_success() => Ok(()),
            // Already acknowledged and gone, or never ours to see again.
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(()),
            s => Err(status_error(call, s)),
        }
    }

    async fn send(&self, file: &Outgoing<'_>) -> Result<String, MeshError> {
        let call = "send";
        if file.body.is_empty() {
            return Err(MeshError::Refused(format!("{call}: the file is empty")));
        }
        let pieces: Vec<&[u8]> = file.body.chunks(self.config.chunk_bytes).collect();
        let total = pieces.len();
        let checksum = format!("sha256:{}", hex::encode(Sha256::digest(file.body)));
        let mut mex = HeaderMap::new();
        for (name, value) in [
            ("mex-to", Some(file.to)),
            ("mex-from", Some(self.mailbox.as_str())),
            ("mex-workflowid", Some(file.workflow_id)),
            ("mex-filename", Some(file.file_name)),
            ("mex-localid", Some(file.local_id)),
            ("mex-subject", file.subject),
            ("mex-content-checksum", Some(checksum.as_str())),
            ("mex-content-type", Some("application/xml")),
        ] {
            let Some(value) = value else { continue };
            let value = HeaderValue::from_str(value)
                .ok()
                .filter(|_| !value.trim().is_empty())
                .ok_or_else(|| {
                    MeshError::Refused(format!("{call}: {name} is empty or not visible ASCII"))
                })?;
            mex.insert(name, value);
        }
        // One chunk carries the file's own type; chunks are bytes (the type
        // travels in Mex-Content-Type), as NHS England's clients send them.
        let content_type = if total == 1 {
            "application/xml"
        } else {
            "application/octet-stream"
        };
        let mut message_id: Option<String> = None;
        for (i, piece) in pieces.into_iter().enumerate() {
            let k = (i + 1).to_string();
            let request = match &message_id {
                None => self.request(Method::POST, &["outbox"]).headers(mex.clone()),
                Some(id) => self.request(Method::POST, &["outbox", id, &k]),
            };
            let request = request
                .header("mex-chunk-range", format!("{k}:{total}"))
                .header(CONTENT_TYPE, content_type);
            let request = if self.config.compress {
                request.header(CONTENT_ENCODING, "gzip").body(gzip(piece))
            } else {
                request.body(piece.to_vec())
            };
            let what = if total == 1 {
                call.to_owned()
            } else {
                format!("{call} (chunk {k} of {total})")
            };
            let response = self.send_request(&what, request).await?;
            let status = response.status();
            if !matches!(status, StatusCode::OK | StatusCode::ACCEPTED) {
                return Err(status_error(&what, status));
            }
            if message_id.is_none() {
                let body = wire::read_bounded(call, response, wire::MAX_JSON_BYTES)
                    .await?
                    .ok_or_else(|| {
                        MeshError::Refused(format!("{call}: MESH's answer is too long"))
                    })?;
                message_id = Some(wire::sent_message_id(&body)?);
            }
        }
        message_id.ok_or_else(|| MeshError::Refused(format!("{call}: nothing was sent")))
    }

    async fn track(&self, local_id: &str) -> Result<Option<Tracked>, MeshError> {
        let call = "track";
        if local_id.is_empty() || local_id == "." || local_id == ".." {
            return Err(MeshError::Refused(format!("{call}: not a local id")));
        }
        // Tracking by local id: `GET …/outbox/tracking/{local_id}` (v1; the
        // specification marks it deprecated in favour of `?messageID=`, but
        // only it finds a message whose id a crash lost).
        let request = self.request(Method::GET, &["outbox", "tracking", local_id]);
        let response = self.send_request(call, request).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND | StatusCode::GONE => return Ok(None),
            StatusCode::MULTIPLE_CHOICES => {
                return Err(MeshError::Refused(format!(
                    "{call}: more than one message carries this local id"
                )))
            }
            s => return Err(status_error(call, s)),
        }
        let json = self.json(call, response).await?;
        let text = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| json.get(k).and_then(|v| v.as_str()))
                .map(str::to_owned)
        };
        let message_id = text(&["messageId", "message_id", "messageID", "dtsId"])
            .filter(|id| wire::valid_id(id))
            .ok_or_else(|| {
                MeshError::Refused(format!("{call}: MESH's answer carries no message id"))
            })?;
        let status = text(&["status"]).unwrap_or_default();
        Ok(Some(Tracked { message_id, status }))
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}
