//! The fault harness for the notification path (issue 7, suite 1): no ASN
//! lost, none sent twice outside the documented window.
//!
//! Unscheduled accesses are generated across many children and councils and
//! made through the domain's own [`check`], so the rules decide which ASNs
//! exist (collapse, silent reads, children without a plan, one ASN per
//! council). The hand-off and the delivery are then faulted, with a seeded
//! RNG so a failure can be replayed:
//!
//! - **duplicate deliveries** (20 % of ASN messages): the transport delivers
//!   the message twice, sometimes at once, sometimes a round later;
//! - **crashes after the side effect, before acknowledgement** (5 % of ASNs),
//!   spread over the three points where a dispatcher can die holding work:
//!   after taking the lease and before publishing; after publishing and before
//!   recording delivery (the one documented duplicate window: for a
//!   dispatcher that publishes a batch in one call, every ASN of that call);
//!   after recording delivery and before the message is deleted. A crash kills the
//!   whole invocation: nothing in its batch is acknowledged, and anything
//!   after the crash in the batch fails without a side effect;
//! - **poison** (1 % of ASN messages): the message is mangled in transit (a
//!   truncated body, or a well-formed one naming no ASN), so the dispatcher
//!   can never act on it. It must reach the dead-letter store after the
//!   receive limit without holding anything else up, and the ASN it was
//!   meant to carry must still be delivered from the outbox by the relay.
//!
//! The transport (real SQS on moto, or [`MemoryTransport`] in front of the
//! embedded dispatcher) has SQS semantics: a received message is invisible
//! until it is deleted or released, and a message received
//! [`MAX_RECEIVES`] times moves to the dead-letter store on its next receive.
//! Time is simulated: each round handles everything visible, then the clock
//! moves by the queue's visibility timeout (longer than the delivery lease,
//! as the deployment requires) before the failures come back.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;

use cpis_domain::ports::{
    AccessLog, AsnQueue, AuthorityDirectory, CheckLedger, NotificationChannel, PlanStore,
    QueueError, StoreError, UploadLedger,
};
use cpis_domain::{check, AccessEffect, AuditEvent, NhsNumber, OdsCode, VisibilityPolicy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::{Duration, OffsetDateTime};

/// Receives after which a message goes to the dead-letter store (the
/// deployment's maxReceiveCount).
pub const MAX_RECEIVES: u32 = 5;
/// The ASN queue's visibility timeout in the deployment: what a failed or
/// crashed message waits before it is received again.
pub const VISIBILITY_TIMEOUT: Duration = Duration::seconds(180);
/// The dispatcher's batch size (the event source mapping's).
pub const BATCH_SIZE: usize = 10;
/// The size the issue asks for; CI runs a shorter one.
pub const FULL_ACCESSES: usize = 10_000;
/// The view link in every notice.
pub const VIEW_URL: &str = "https://council.cpis.example/notifications";

/// What to generate and how hard to fault it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultConfig {
    pub accesses: usize,
    pub seed: u64,
    pub duplicate_rate: f64,
    pub crash_rate: f64,
    pub poison_rate: f64,
    /// Checks between two dispatcher rounds.
    pub checks_per_round: usize,
}

impl FaultConfig {
    /// The rates with `accesses` checks.
    pub fn new(accesses: usize, seed: u64) -> Self {
        Self {
            accesses,
            seed,
            duplicate_rate: 0.20,
            crash_rate: 0.05,
            poison_rate: 0.01,
            checks_per_round: 100,
        }
    }

    /// `ci_accesses` checks, or [`FULL_ACCESSES`] when `CPIS_ASSURANCE_FULL=1`;
    /// the seed from `CPIS_FAULT_SEED` (to replay a failure), else a fixed one.
    pub fn from_env(ci_accesses: usize) -> Self {
        let full = std::env::var("CPIS_ASSURANCE_FULL").is_ok_and(|v| v.trim() == "1");
        let seed = std::env::var("CPIS_FAULT_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0x0C15_2026);
        Self::new(if full { FULL_ACCESSES } else { ci_accesses }, seed)
    }
}

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub message_id: String,
    pub body: String,
    /// What deletes or releases this receipt (an SQS receipt handle).
    pub handle: String,
}

/// An at-least-once queue with a dead-letter store: SQS, or [`MemoryTransport`].
/// As an [`AsnQueue`] it is what the check hands ASN ids to.
pub trait Transport: AsnQueue {
    /// Sends a body as it is (a poison message).
    fn send_raw(&self, body: &str) -> impl Future<Output = Result<(), QueueError>> + Send;
    /// Up to `max` visible messages, each then invisible until deleted or released.
    fn receive(&self, max: usize) -> impl Future<Output = Vec<Received>> + Send;
    fn delete(&self, message: &Received) -> impl Future<Output = ()> + Send;
    /// Visible again now (its visibility timeout has lapsed).
    fn release(&self, message: &Received) -> impl Future<Output = ()> + Send;
    /// Every body in the dead-letter store.
    fn dead_letters(&self) -> impl Future<Output = Vec<String>> + Send;
}

/// The dispatcher under test and its relay.
pub trait Dispatcher {
    /// Handles one batch; returns the message ids to retry (the partial
    /// batch response).
    fn handle_batch<C: NotificationChannel>(
        &self,
        channel: &C,
        batch: &[Received],
        now: OffsetDateTime,
    ) -> impl Future<Output = Vec<String>> + Send;

    /// One sweep of the outbox for what is still undelivered: it delivers
    /// (embedded) or queues it again (the production relay). Returns how many
    /// ASNs it took up.
    fn relay<C: NotificationChannel>(
        &self,
        channel: &C,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// Where a dispatcher dies holding an ASN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CrashPoint {
    AfterLeaseBeforePublish,
    AfterPublishBeforeRecord,
    AfterRecordBeforeAck,
}

mod inject;
mod memory;
mod population;
mod report;

pub use inject::FaultyChannel;
pub use memory::MemoryTransport;
pub use population::council;
pub use report::FaultReport;

use inject::{send_late, ChannelState, FaultyQueue, QueueState};
use population::{clinician, synthetic_child, upload_plans, START};

struct Run<'a, T, D, C> {
    transport: &'a T,
    dispatcher: &'a D,
    channel: &'a FaultyChannel<C>,
    now: OffsetDateTime,
    rounds: usize,
}

impl<T: Transport, D: Dispatcher, C: NotificationChannel> Run<'_, T, D, C> {
    fn asn_in(&self, body: &str, ids: &BTreeSet<String>) -> Option<String> {
        ids.iter().find(|id| body.contains(id.as_str())).cloned()
    }

    /// One round: every visible message, in batches, then the failures come
    /// back after the visibility timeout. Returns how many messages it saw.
    async fn round(&mut self) -> usize {
        self.rounds += 1;
        let mut seen = 0;
        let mut to_release = Vec::new();
        loop {
            let batch = self.transport.receive(BATCH_SIZE).await;
            if batch.is_empty() {
                break;
            }
            seen += batch.len();
            self.channel.lock().dead = false;
            let failed = self
                .dispatcher
                .handle_batch(self.channel, &batch, self.now)
                .await;
            let crashed = {
                let mut state = self.channel.lock();
                let mut crashed = state.dead;
                if !crashed {
                    // A crash after delivery was recorded: the invocation dies
                    // before the Lambda service deletes anything.
                    let pending: BTreeSet<String> = state
                        .crashes
                        .iter()
                        .filter(|(id, point)| {
                            **point == CrashPoint::AfterRecordBeforeAck
                                && !state.fired.contains(*id)
                        })
                        .map(|(id, _)| id.clone())
                        .collect();
                    for m in &batch {
                        if failed.contains(&m.message_id) {
                            continue;
                        }
                        if let Some(id) = self.asn_in(&m.body, &pending) {
                            state.fired.insert(id);
                            crashed = true;
                        }
                    }
                }
                crashed
            };
            for m in batch {
                if crashed || failed.contains(&m.message_id) {
                    to_release.push(m);
                } else {
                    self.transport.delete(&m).await;
                }
            }
            self.now += Duration::milliseconds(200);
        }
        self.now += VISIBILITY_TIMEOUT;
        for m in &to_release {
            self.transport.release(m).await;
        }
        seen
    }
}

/// Runs the harness: plans, checks, faulted dispatch until the queue is
/// empty, then the relay until the outbox holds nothing undelivered.
/// `observed` reads, independently of the harness, how many times each ASN
/// reached a duty team (the outbox file, the SNS topics' subscribers).
/// Panics (fails the test) on any lost ASN or any duplicate outside the
/// documented window.
pub async fn run<S, T, D, C, O, F>(
    config: FaultConfig,
    store: &S,
    councils: &[OdsCode],
    transport: &T,
    dispatcher: &D,
    channel: C,
    observed: O,
) -> FaultReport
where
    S: PlanStore + UploadLedger + AuthorityDirectory + AccessLog + CheckLedger,
    T: Transport,
    D: Dispatcher,
    C: NotificationChannel,
    O: FnOnce() -> F,
    F: Future<Output = BTreeMap<String, usize>>,
{
    assert!(!councils.is_empty(), "the harness needs councils");
    crate::capture::tracing();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let children: Vec<NhsNumber> = (0..(config.accesses / 8).max(40))
        .map(|i| synthetic_child(i * 37 + 11))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if let Err(why) = upload_plans(store, councils, &children, &mut rng).await {
        panic!("{why}");
    }

    let channel = FaultyChannel {
        inner: channel,
        state: Mutex::new(ChannelState::default()),
    };
    let queue_rng = Mutex::new(StdRng::seed_from_u64(config.seed ^ 0x5EED));
    let queue = FaultyQueue {
        transport,
        config,
        rng: &queue_rng,
        channel_state: &channel.state,
        state: Mutex::new(QueueState::default()),
    };
    let mut report = FaultReport {
        seed: config.seed,
        accesses: config.accesses,
        ..FaultReport::default()
    };
    let mut run = Run {
        transport,
        dispatcher,
        channel: &channel,
        now: START + Duration::hours(1),
        rounds: 0,
    };
    let policy = VisibilityPolicy::default();

    for i in 0..config.accesses {
        let child = children[rng.gen_range(0..children.len())];
        let who = clinician(&mut rng);
        let event = AuditEvent::check_allowed(&who, None, run.now, "fault-harness");
        let result = check(store, &queue, &who, &child, true, run.now, &policy, &event).await;
        match result {
            Ok(result) => match result.effect {
                AccessEffect::Recorded { queued, .. } => {
                    assert!(queued, "the hand-off to the transport failed");
                    report.recorded += 1;
                }
                AccessEffect::Collapsed => report.collapsed += 1,
                AccessEffect::SilentRead => report.silent += 1,
                AccessEffect::NoPlan => report.no_plan += 1,
            },
            Err(e) => panic!("check {i} failed: {e}"),
        }
        run.now += Duration::seconds(rng.gen_range(1..60));
        if (i + 1) % config.checks_per_round == 0 {
            send_late(&queue).await;
            run.round().await;
        }
    }
    // Drain: rounds until a round sees nothing (poison needs MAX_RECEIVES + 1).
    loop {
        let late = send_late(&queue).await;
        if run.round().await == 0 && late == 0 {
            break;
        }
        assert!(run.rounds < 100_000, "the queue never drained");
    }

    let (generated, poison, duplicate_messages) = {
        let q = queue.state.lock().unwrap_or_else(|e| e.into_inner());
        (
            q.generated.iter().cloned().collect::<BTreeSet<String>>(),
            q.poison.clone(),
            q.duplicate_messages,
        )
    };
    assert_eq!(
        generated.len(),
        queue
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .generated
            .len(),
        "an ASN id was handed over twice by the check"
    );
    report.generated = generated.len();
    report.duplicate_messages = duplicate_messages;
    report.poison_messages = poison.len();
    report.messages = report.generated + duplicate_messages;

    // Before the relay: every ASN is delivered or its message is dead-lettered.
    let delivered_from_queue: BTreeSet<String> = channel.lock().published.keys().cloned().collect();
    let dead_letters = transport.dead_letters().await;
    report.dead_letter_messages = dead_letters.len();
    let mut dead_lettered_ids = BTreeSet::new();
    for body in &dead_letters {
        let id = poison
            .get(body)
            .cloned()
            .or_else(|| run.asn_in(body, &generated));
        match id {
            Some(id) => {
                dead_lettered_ids.insert(id);
            }
            None => panic!("the dead-letter store holds a message the harness never sent"),
        }
    }
    for body in poison.keys() {
        assert!(
            dead_letters.contains(body),
            "a poison message was not dead-lettered"
        );
    }
    let undelivered: BTreeSet<String> = generated
        .difference(&delivered_from_queue)
        .cloned()
        .collect();
    let lost: Vec<&String> = undelivered.difference(&dead_lettered_ids).collect();
    assert!(
        lost.is_empty(),
        "{} ASNs were neither delivered nor dead-lettered",
        lost.len()
    );
    assert!(
        delivered_from_queue.is_subset(&generated),
        "an ASN nobody generated was published"
    );
    report.delivered = delivered_from_queue.len();
    report.dead_lettered = undelivered.len();
    assert_eq!(report.delivered + report.dead_lettered, report.generated);

    // The relay finds the dead-lettered ASNs in the outbox and delivers them.
    let mut sweeps = 0;
    loop {
        run.now += Duration::minutes(10);
        channel.lock().dead = false;
        let taken = match dispatcher.relay(&channel, run.now).await {
            Ok(n) => n,
            Err(e) => panic!("the relay failed: {e}"),
        };
        while run.round().await > 0 {}
        if taken == 0 {
            break;
        }
        sweeps += 1;
        assert!(sweeps < 20, "the relay never emptied the outbox");
    }
    let published = channel.lock().published.clone();
    report.relayed_and_delivered = undelivered
        .iter()
        .filter(|id| published.contains_key(*id))
        .count();
    assert_eq!(
        report.relayed_and_delivered, report.dead_lettered,
        "a dead-lettered ASN was never delivered"
    );

    // Duplicates: only where the dispatcher died between publishing and
    // recording the delivery, and then one more send per such crash (for a
    // batched publish, every ASN of the call that crashed is in the window).
    let crashes = channel.lock().crashes.clone();
    let fired = channel.lock().fired.clone();
    let in_window = channel.lock().in_window.clone();
    for point in crashes
        .iter()
        .filter(|(id, _)| fired.contains(*id))
        .map(|(_, p)| p)
    {
        *report.crashes.entry(format!("{point:?}")).or_default() += 1;
    }
    for (id, count) in &published {
        if *count > 1 {
            report.duplicated += 1;
            let windows = in_window.get(id).copied().unwrap_or(0);
            if *count > 1 + windows {
                report.duplicates_outside_window += 1;
            }
        }
    }

    // What the duty teams actually received agrees with what was published.
    let received = observed().await;
    report.received_by_duty_teams = received.len();
    report.dispatcher_rounds = run.rounds;
    assert_eq!(
        received, published,
        "what reached the duty teams differs from what the dispatcher published"
    );
    assert_eq!(
        received.keys().cloned().collect::<BTreeSet<_>>(),
        generated,
        "not every ASN reached its duty team: {report}"
    );
    assert_eq!(report.duplicates_outside_window, 0, "{report}");
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_children_are_valid_and_in_the_999_range() {
        for n in [0, 1, 7, 999_999, 123_456] {
            let child = synthetic_child(n);
            assert!(child.expose().starts_with("999"));
        }
    }
}
