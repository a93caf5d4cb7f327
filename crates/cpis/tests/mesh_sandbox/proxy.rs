//! A forwarding proxy in front of the MESH sandbox that holds one request:
//! the crash points, placed without any hook in the service.

use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// A MESH in front of the sandbox that forwards every request, except the
/// first one `hold` picks: that one is never forwarded nor answered, and
/// its method and path are sent on `held`.
pub struct Proxy {
    pub addr: SocketAddr,
    pub held: mpsc::Receiver<String>,
}

type Hold = dyn Fn(&Method, &str, &HeaderMap) -> bool + Send + Sync;

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    hold: Arc<Hold>,
    held: Arc<Mutex<Option<mpsc::Sender<String>>>>,
}

impl Proxy {
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        upstream: &str,
        hold: impl Fn(&Method, &str, &HeaderMap) -> bool + Send + Sync + 'static,
    ) -> Self {
        let (tx, held) = mpsc::channel();
        cpis_mesh::use_ring_for_tls();
        let state = ProxyState {
            upstream: upstream.to_owned(),
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            hold: Arc::new(hold),
            held: Arc::new(Mutex::new(Some(tx))),
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(forward).with_state(state);
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self { addr, held }
    }
}

async fn forward(State(state): State<ProxyState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if (state.hold)(&parts.method, &path, &parts.headers) {
        // Only the first: a later one (a retry) is forwarded.
        let first = state.held.lock().unwrap().take();
        if let Some(tx) = first {
            let _ = tx.send(format!("{} {path}", parts.method));
            std::future::pending::<()>().await;
        }
    }
    let Ok(body) = axum::body::to_bytes(body, 200_000_000).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let target = format!(
        "{}{}",
        state.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut upstream = state.client.request(parts.method, target);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            upstream = upstream.header(name, value);
        }
    }
    let Ok(answer) = upstream.body(body).send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let Ok(bytes) = answer.bytes().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != header::TRANSFER_ENCODING
            && name != header::CONNECTION
            && name != header::CONTENT_LENGTH
        {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}
