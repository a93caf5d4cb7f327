//! Benchmark 3's load generator: HTTP/1.1 keep-alive connections to a
//! `cpis serve` on this machine. Bounded in requests and in time, and it
//! refuses any address that is not loopback (an IP literal: no name is ever
//! resolved), so it cannot be pointed at someone else's service.
//!
//! Fixed rate is open loop: request `i` is due at `start + i / rate`, and its
//! latency runs from when it was due, so a stalled server is charged for the
//! requests queued behind the stall (no coordinated omission). Saturation is
//! closed loop: every connection sends its next request as soon as the last
//! one is answered, and latency runs from the send.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::upload::Failure;

/// Refuses every address that is not on this machine.
pub fn loopback_only(addr: &str) -> Result<SocketAddr, Failure> {
    let parsed: SocketAddr = addr
        .parse()
        .map_err(|_| format!("{addr} is not an IP:port (names are not resolved)"))?;
    if parsed.ip().is_loopback() {
        Ok(parsed)
    } else {
        Err(format!("refusing {addr}: the load generator only targets loopback").into())
    }
}

/// What one run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// `GET /health`: the floor every other figure is compared with.
    Health,
    /// 90 % `POST /v1/checks` (30 % of them for a flagged child) and 10 %
    /// `POST /v1/history`.
    Service,
}

/// One request of the service mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Health,
    /// A check of flagged child `child` by clinician `clinician`.
    FlaggedCheck {
        clinician: usize,
        child: usize,
    },
    /// A check of a child on no plan (index into the unflagged pool).
    UnflaggedCheck {
        child: usize,
    },
    /// A history read of flagged child `child` by clinician `clinician`.
    History {
        clinician: usize,
        child: usize,
    },
}

/// SplitMix64: a fixed, seedable sequence, so every run sends the same mix.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The children and clinicians a service-mix run draws on.
#[derive(Debug, Clone, Copy)]
pub struct Population {
    /// Flagged children (uploaded by `setup`).
    pub flagged: usize,
    /// Children on no plan.
    pub unflagged: usize,
    /// Clinician tokens.
    pub clinicians: usize,
    /// Flagged checks made by earlier runs against the same server.
    pub flagged_before: u64,
}

impl Population {
    /// Distinct (clinician, child) pairs: each flagged check takes the next
    /// one, so none is a repeat within 24 hours and each writes one history
    /// entry and one ASN.
    pub fn pairs(&self) -> u64 {
        (self.flagged * self.clinicians) as u64
    }

    /// Request `i` of the mix. `next_flagged` hands out pair numbers.
    pub fn pick(&self, mix: Mix, i: u64, next_flagged: &AtomicU64) -> Pick {
        if mix == Mix::Health {
            return Pick::Health;
        }
        let roll = mix64(i);
        let (kind, detail) = (roll % 100, (roll >> 8) % 100);
        let flagged = self.flagged as u64;
        if kind < 10 {
            // A child someone at the clinicians' organisation has checked.
            let checked = (self.flagged_before + next_flagged.load(Ordering::Relaxed)).min(flagged);
            let child = (roll >> 16) % checked.max(1);
            let clinician = (roll >> 40) % self.clinicians as u64;
            Pick::History {
                clinician: clinician as usize,
                child: child as usize,
            }
        } else if detail < 30 {
            let pair = self.flagged_before + next_flagged.fetch_add(1, Ordering::Relaxed);
            Pick::FlaggedCheck {
                clinician: (pair / flagged) as usize % self.clinicians,
                child: (pair % flagged) as usize,
            }
        } else {
            Pick::UnflaggedCheck {
                child: ((roll >> 16) % self.unflagged as u64) as usize,
            }
        }
    }
}

/// How fast to send.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Requests per second, open loop.
    Fixed(f64),
    /// As fast as the connections are answered.
    Saturate,
}

/// The bounds and shape of one run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub addr: SocketAddr,
    pub mix: Mix,
    pub pace: Pace,
    pub connections: usize,
    pub max_requests: u64,
    pub max_duration: Duration,
}

/// The tokens and children requests are built from.
pub struct Cast {
    pub clinician_tokens: Vec<String>,
    pub flagged: Vec<String>,
    pub unflagged: Vec<String>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Nearest-rank percentiles of `samples` (sorted here).
pub fn latency(samples: &mut [u64]) -> Option<Latency> {
    samples.sort_unstable();
    let last = samples.len().checked_sub(1)?;
    let rank = |q: f64| samples[((last as f64) * q).round() as usize];
    Some(Latency {
        p50_us: rank(0.50),
        p99_us: rank(0.99),
        max_us: samples[last],
    })
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub mix: &'static str,
    pub pace: String,
    pub connections: usize,
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub seconds: f64,
    pub throughput_per_s: f64,
    pub checks_per_s: f64,
    /// From when each request was due (fixed rate) or sent (saturation).
    pub latency: Option<Latency>,
    /// From when each request was actually sent: the server's share, without
    /// the generator's timer lateness (tokio's timer has 1 ms granularity).
    pub sent_to_answer: Option<Latency>,
    pub check_latency: Option<Latency>,
    pub history_latency: Option<Latency>,
    /// Flagged checks answered 200 with a plan: each wrote one ASN.
    pub flagged_ok: u64,
    /// The fixed rate could not be kept: requests started this late or later (p99, µs).
    pub start_lag_p99_us: Option<u64>,
}

#[derive(Default)]
struct Tally {
    all: Vec<u64>,
    from_send: Vec<u64>,
    checks: Vec<u64>,
    history: Vec<u64>,
    lag: Vec<u64>,
    ok: u64,
    failed: u64,
    flagged_ok: u64,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, Failure> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends with the connection; its error is seen by the next send.
        let _ = connection.await;
    });
    Ok(sender)
}

fn request(
    addr: SocketAddr,
    pick: Pick,
    cast: &Cast,
) -> Result<http::Request<Full<Bytes>>, Failure> {
    let (path, token, body) = match pick {
        Pick::Health => {
            return Ok(http::Request::get("/health")
                .header(http::header::HOST, addr.to_string())
                .body(Full::new(Bytes::new()))?)
        }
        Pick::FlaggedCheck { clinician, child } => (
            "/v1/checks",
            &cast.clinician_tokens[clinician],
            serde_json::json!({ "nhs_number": cast.flagged[child], "unscheduled": true }),
        ),
        Pick::UnflaggedCheck { child } => (
            "/v1/checks",
            &cast.clinician_tokens[0],
            serde_json::json!({ "nhs_number": cast.unflagged[child], "unscheduled": true }),
        ),
        Pick::History { clinician, child } => (
            "/v1/history",
            &cast.clinician_tokens[clinician],
            serde_json::json!({ "nhs_number": cast.flagged[child] }),
        ),
    };
    Ok(http::Request::post(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?)
}

/// Whether a flagged check's answer carries a plan (so it wrote an ASN).
fn has_plan(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["plans"].as_array().map(|p| !p.is_empty()))
        .unwrap_or(false)
}

/// Runs one bounded run and reports it.
pub async fn run(plan: Plan, population: Population, cast: Arc<Cast>) -> Result<Report, Failure> {
    if plan.mix == Mix::Service {
        let needed = population.flagged_before + plan.max_requests;
        if needed > population.pairs() {
            return Err(format!(
                "up to {needed} flagged checks, but only {} distinct clinician-child pairs: add clinicians or flagged children",
                population.pairs()
            )
            .into());
        }
    }
    let next = Arc::new(AtomicU64::new(0));
    let next_flagged = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + plan.max_duration;
    let mut workers = Vec::new();
    for _ in 0..plan.connections {
        let (next, next_flagged, cast) = (next.clone(), next_flagged.clone(), cast.clone());
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut sender = connect(plan.addr).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= plan.max_requests || Instant::now() >= deadline {
                    break;
                }
                let due = match plan.pace {
                    Pace::Fixed(rate) => {
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        if due >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                        tally.lag.push(micros(due.elapsed()));
                        due
                    }
                    Pace::Saturate => Instant::now(),
                };
                let pick = population.pick(plan.mix, i, &next_flagged);
                let request = request(plan.addr, pick, &cast)?;
                if sender.ready().await.is_err() {
                    sender = connect(plan.addr).await?;
                }
                let sent = Instant::now();
                let answer = match sender.send_request(request).await {
                    Ok(response) => {
                        let status = response.status();
                        response
                            .into_body()
                            .collect()
                            .await
                            .map(|b| (status, b.to_bytes()))
                            .ok()
                    }
                    Err(_) => None,
                };
                let took = micros(due.elapsed());
                tally.all.push(took);
                tally.from_send.push(micros(sent.elapsed()));
                match pick {
                    Pick::History { .. } => tally.history.push(took),
                    Pick::FlaggedCheck { .. } | Pick::UnflaggedCheck { .. } => {
                        tally.checks.push(took)
                    }
                    Pick::Health => {}
                }
                match answer {
                    Some((status, body)) if status.is_success() => {
                        tally.ok += 1;
                        if matches!(pick, Pick::FlaggedCheck { .. }) && has_plan(&body) {
                            tally.flagged_ok += 1;
                        }
                    }
                    _ => tally.failed += 1,
                }
            }
            Ok::<Tally, Failure>(tally)
        }));
    }
    let mut total = Tally::default();
    for worker in workers {
        let tally = worker.await??;
        total.all.extend(tally.all);
        total.from_send.extend(tally.from_send);
        total.checks.extend(tally.checks);
        total.history.extend(tally.history);
        total.lag.extend(tally.lag);
        total.ok += tally.ok;
        total.failed += tally.failed;
        total.flagged_ok += tally.flagged_ok;
    }
    let seconds = started.elapsed().as_secs_f64();
    let sent = total.all.len() as u64;
    Ok(Report {
        mix: match plan.mix {
            Mix::Health => "health",
            Mix::Service => "service",
        },
        pace: match plan.pace {
            Pace::Fixed(rate) => format!("{rate} req/s"),
            Pace::Saturate => "saturation".into(),
        },
        connections: plan.connections,
        sent,
        ok: total.ok,
        failed: total.failed,
        seconds,
        throughput_per_s: total.ok as f64 / seconds,
        checks_per_s: total.checks.len() as f64 / seconds,
        latency: latency(&mut total.all),
        sent_to_answer: latency(&mut total.from_send),
        check_latency: latency(&mut total.checks),
        history_latency: latency(&mut total.history),
        flagged_ok: total.flagged_ok,
        start_lag_p99_us: latency(&mut total.lag).map(|l| l.p99_us),
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One request outside a timed run (setup and verification), answered whole.
pub async fn call(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    token: &str,
    body: Option<Vec<u8>>,
) -> Result<(http::StatusCode, Bytes), Failure> {
    let mut sender = connect(addr).await?;
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    if body.is_some() {
        builder = builder.header(http::header::CONTENT_TYPE, "application/json");
    }
    let request = builder.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_literals_are_accepted() {
        assert!(loopback_only("127.0.0.1:8080").is_ok());
        assert!(loopback_only("[::1]:8080").is_ok());
        assert!(loopback_only("10.0.0.1:8080").is_err());
        assert!(loopback_only("0.0.0.0:8080").is_err());
        assert!(loopback_only("localhost:8080").is_err());
        assert!(loopback_only("example.org:80").is_err());
    }

    #[test]
    fn the_service_mix_is_90_10_with_30_percent_flagged_and_never_repeats_a_pair() {
        let population = Population {
            flagged: 500,
            unflagged: 1000,
            clinicians: 4,
            flagged_before: 0,
        };
        let next = AtomicU64::new(0);
        let picks: Vec<Pick> = (0..2000)
            .map(|i| population.pick(Mix::Service, i, &next))
            .collect();
        let history = picks
            .iter()
            .filter(|p| matches!(p, Pick::History { .. }))
            .count();
        let flagged: Vec<(usize, usize)> = picks
            .iter()
            .filter_map(|p| match p {
                Pick::FlaggedCheck { clinician, child } => Some((*clinician, *child)),
                _ => None,
            })
            .collect();
        let checks = picks.len() - history;
        assert!((150..250).contains(&history), "{history}");
        let share = flagged.len() as f64 / checks as f64;
        assert!((0.25..0.35).contains(&share), "{share}");
        let distinct: std::collections::HashSet<_> = flagged.iter().collect();
        assert_eq!(distinct.len(), flagged.len());
        assert_eq!(next.load(Ordering::Relaxed), flagged.len() as u64);
        for pick in picks {
            match pick {
                Pick::History { clinician, child } | Pick::FlaggedCheck { clinician, child } => {
                    assert!(clinician < 4 && child < 500)
                }
                Pick::UnflaggedCheck { child } => assert!(child < 1000),
                Pick::Health => panic!("no health checks in the service mix"),
            }
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<u64> = (1..=100).rev().collect();
        let l = latency(&mut samples).unwrap();
        assert_eq!((l.p50_us, l.p99_us, l.max_us), (51, 99, 100));
        assert_eq!(latency(&mut []), None);
    }
}
