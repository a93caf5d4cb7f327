//! `cpis serve`'s HTTP/1.1 listener, bounded: a slow or silent client can
//! hold a connection only so long, and only so many connections are open.
//!
//! Built on hyper's own connection builder (`header_read_timeout`, its one
//! slow-client guard) rather than `axum::serve`, which exposes none of these.
//! What hyper does not offer (a body-read deadline, an idle timeout, a
//! connection limit) is added here in the smallest form: a body wrapper, an
//! I/O wrapper that notes activity, and a semaphore.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use http_body::{Body as HttpBody, Frame};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// The bounds, each a `cpis serve` flag.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A client must send a whole request head within this, counted from
    /// when the server is ready for one (the connection opening, or the
    /// previous answer sent).
    pub header_read: Duration,
    /// A client must send a whole request body within this.
    pub body_read: Duration,
    /// A connection with no bytes either way and no request in progress for
    /// this long is closed.
    pub idle: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// Counts for the warning lines (never an address or anything a client sent).
#[derive(Default)]
struct Tally {
    evicted: AtomicU64,
    refused: AtomicU64,
    descriptor_limit: AtomicU64,
}

struct Entry {
    /// Set once hyper has read a whole request head on the connection.
    served: Arc<AtomicBool>,
    activity: Arc<Activity>,
    task: tokio::task::AbortHandle,
}

/// Open connections, oldest first.
#[derive(Default)]
struct Registry {
    next: u64,
    open: BTreeMap<u64, Entry>,
}

impl Registry {
    /// Closes the oldest connection that has not yet sent a request head:
    /// under pressure a half-open connection gives way to a new one, so that
    /// silent clients cannot keep real ones out.
    fn evict_one(&mut self) -> bool {
        let oldest = self
            .open
            .iter()
            .find(|(_, e)| !e.served.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        match oldest.and_then(|id| self.open.remove(&id)) {
            Some(entry) => {
                entry.task.abort();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes;
/// then stops accepting and lets open connections finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let registry = Arc::new(Mutex::new(Registry::default()));
    let tally = Arc::new(Tally::default());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                // At the limit: make room by closing a half-open connection.
                let evicted = lock(&registry).evict_one();
                if evicted {
                    let n = tally.evicted.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        evicted_total = n,
                        "connection limit reached: closed the oldest connection that had sent no request"
                    );
                }
                None
            }
        };
        let permit = match permit {
            Some(permit) => permit,
            // Wait for the evicted (or any) connection to give its slot back.
            None => tokio::select! {
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return Ok(()),
                },
                () = &mut shutdown => break,
            },
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) if is_descriptor_limit(&error) => {
                // Out of file descriptors: the same remedy as the limit. An
                // aborted connection frees its descriptor only when its task
                // is dropped, so wait for that (its permit comes back) before
                // accepting again: evicting again at once would close more
                // connections than needed, a new one among them.
                drop(permit);
                let before = permits.available_permits();
                let evicted = lock(&registry).evict_one();
                if evicted {
                    let freed = async {
                        while permits.available_permits() <= before {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_millis(200), freed).await;
                }
                let n = tally.descriptor_limit.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    times = n,
                    evicted,
                    "out of file descriptors accepting a connection; lower --max-connections below the descriptor limit"
                );
                if !evicted {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
            Err(error) => {
                let n = tally.refused.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(times = n, kind = ?error.kind(), "could not accept a connection");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        spawn_connection(stream, router.clone(), limits, permit, &registry);
    }
    // Shutting down: close connections with no request in progress, and give
    // the others a while to answer.
    drop(listener);
    {
        let mut guard = lock(&registry);
        guard.open.retain(|_, entry| {
            let busy = entry.activity.in_flight.load(Ordering::Relaxed) > 0;
            if !busy {
                entry.task.abort();
            }
            busy
        });
    }
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(all)).await;
    Ok(())
}

/// How long open requests may run on after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn lock(registry: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    registry
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn is_descriptor_limit(error: &std::io::Error) -> bool {
    // EMFILE (24) and ENFILE (23) on Linux and the BSDs.
    matches!(error.raw_os_error(), Some(23 | 24))
}

fn spawn_connection(
    stream: tokio::net::TcpStream,
    router: Router,
    limits: Limits,
    permit: OwnedSemaphorePermit,
    registry: &Arc<Mutex<Registry>>,
) {
    let served = Arc::new(AtomicBool::new(false));
    let activity = Arc::new(Activity::new());
    let io = ActiveIo {
        inner: TokioIo::new(stream),
        activity: activity.clone(),
    };
    let service_served = served.clone();
    let activity_entry = activity.clone();
    let service_activity = activity.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        service_served.store(true, Ordering::Relaxed);
        let guard = service_activity.begin();
        let request = request.map(|body| {
            Body::new(TimedBody {
                inner: body,
                deadline: Box::pin(tokio::time::sleep(limits.body_read)),
            })
        });
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await;
            drop(guard);
            response
        }
    });
    let registry_for_task = registry.clone();
    let mut guard = lock(registry);
    let id = guard.next;
    guard.next += 1;
    let task = tokio::spawn(async move {
        let _permit = permit;
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read)
            .serve_connection(io, service);
        tokio::select! {
            _ = connection => {}
            () = activity.idle_for(limits.idle) => {}
        }
        lock(&registry_for_task).open.remove(&id);
    });
    guard.open.insert(
        id,
        Entry {
            served,
            activity: activity_entry,
            task: task.abort_handle(),
        },
    );
}

/// When bytes last moved on a connection, and how many requests are in
/// progress on it.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Completes once the connection has been idle for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let idle = self.started.elapsed().saturating_sub(last);
            if idle >= limit && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            tokio::time::sleep(limit.saturating_sub(idle).max(Duration::from_millis(100))).await;
        }
    }
}

/// The connection's I/O, noting activity.
struct ActiveIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for ActiveIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if result.is_ready() {
            self.activity.touch();
        }
        result
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for ActiveIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if result.is_ready() {
            self.activity.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that fails once its deadline passes: the handler sees an
/// unreadable body (400), and the connection is released.
struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within the body-read timeout")]
struct BodyTimeout;

impl HttpBody for TimedBody {
    type Data = hyper::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            tracing::warn!("a request body was not received within the body-read timeout");
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
