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
//!   recording delivery (the one documented duplicate window); after
//!   recording delivery and before the message is deleted. A crash kills the
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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Mutex;

use cpis_domain::nhs_number::check_digit;
use cpis_domain::ports::{
    AccessLog, AsnQueue, AuthorityDirectory, CheckReceipts, DeliveryError, NotificationChannel,
    PlanStore, StoreError, UploadLedger,
};
use cpis_domain::{
    check, process_upload, AccessEffect, AccessorKind, Authority, Clinician, NhsNumber, NoticeText,
    OdsCode, Rbac, VisibilityPolicy,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::macros::datetime;
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
    fn send_raw(&self, body: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
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

#[derive(Debug, Default)]
struct ChannelState {
    crashes: HashMap<String, CrashPoint>,
    fired: HashSet<String>,
    /// The invocation has crashed: nothing more in its batch has an effect.
    dead: bool,
    published: BTreeMap<String, usize>,
}

/// The real channel with crashes injected around it; counts every publish
/// that reached the real channel.
pub struct FaultyChannel<C> {
    inner: C,
    state: Mutex<ChannelState>,
}

impl<C> FaultyChannel<C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, ChannelState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn crashed() -> DeliveryError {
    DeliveryError::Transient("the dispatcher crashed (injected)".to_owned())
}

impl<C: NotificationChannel> NotificationChannel for FaultyChannel<C> {
    async fn deliver(
        &self,
        authority: &Authority,
        notice: &NoticeText,
    ) -> Result<(), DeliveryError> {
        let id = &notice.reference;
        {
            let mut state = self.lock();
            if state.dead {
                return Err(crashed());
            }
            if state.crashes.get(id) == Some(&CrashPoint::AfterLeaseBeforePublish)
                && state.fired.insert(id.clone())
            {
                state.dead = true;
                return Err(crashed());
            }
        }
        self.inner.deliver(authority, notice).await?;
        let mut state = self.lock();
        *state.published.entry(id.clone()).or_default() += 1;
        if state.crashes.get(id) == Some(&CrashPoint::AfterPublishBeforeRecord)
            && state.fired.insert(id.clone())
        {
            state.dead = true;
            return Err(crashed());
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct QueueState {
    generated: Vec<String>,
    /// Poison body -> the ASN it should have carried.
    poison: HashMap<String, String>,
    late_duplicates: Vec<String>,
    duplicate_messages: usize,
}

/// What the check hands its ASN ids to: the transport, with duplicates and
/// poison injected and crashes planned.
struct FaultyQueue<'a, T> {
    transport: &'a T,
    config: FaultConfig,
    rng: &'a Mutex<StdRng>,
    channel_state: &'a Mutex<ChannelState>,
    state: Mutex<QueueState>,
}

enum Fate {
    Normal,
    Duplicate { later: bool },
    Poison(String),
}

impl<T: Transport> AsnQueue for FaultyQueue<'_, T> {
    async fn enqueue(&self, ids: &[String]) -> Result<(), StoreError> {
        let fates: Vec<(String, Fate)> = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let mut channel = self.channel_state.lock().unwrap_or_else(|e| e.into_inner());
            ids.iter()
                .map(|id| {
                    state.generated.push(id.clone());
                    if rng.gen_bool(self.config.crash_rate) {
                        let point = match rng.gen_range(0..3) {
                            0 => CrashPoint::AfterLeaseBeforePublish,
                            1 => CrashPoint::AfterPublishBeforeRecord,
                            _ => CrashPoint::AfterRecordBeforeAck,
                        };
                        channel.crashes.insert(id.clone(), point);
                    }
                    let fate = if rng.gen_bool(self.config.poison_rate) {
                        // Half unparseable, half well-formed naming no ASN.
                        let body = if rng.gen_bool(0.5) {
                            format!("{{\"asn_id\":\"{id}")
                        } else {
                            format!("{{\"asn_id\":\"{}-0000\"}}", &id[..id.len().min(24)])
                        };
                        state.poison.insert(body.clone(), id.clone());
                        Fate::Poison(body)
                    } else if rng.gen_bool(self.config.duplicate_rate) {
                        state.duplicate_messages += 1;
                        Fate::Duplicate {
                            later: rng.gen_bool(0.5),
                        }
                    } else {
                        Fate::Normal
                    };
                    (id.clone(), fate)
                })
                .collect()
        };
        for (id, fate) in fates {
            match fate {
                Fate::Poison(body) => self.transport.send_raw(&body).await?,
                Fate::Normal => self.transport.enqueue(&[id]).await?,
                Fate::Duplicate { later: false } => {
                    self.transport.enqueue(&[id.clone(), id]).await?;
                }
                Fate::Duplicate { later: true } => {
                    self.transport.enqueue(std::slice::from_ref(&id)).await?;
                    self.state
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .late_duplicates
                        .push(id);
                }
            }
        }
        Ok(())
    }
}

/// The figures one run produces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultReport {
    pub seed: u64,
    pub accesses: usize,
    pub recorded: usize,
    pub collapsed: usize,
    pub silent: usize,
    pub no_plan: usize,
    /// ASNs the rules created.
    pub generated: usize,
    /// Messages the transport carried: one per ASN, plus duplicates.
    pub messages: usize,
    pub duplicate_messages: usize,
    pub poison_messages: usize,
    pub crashes: BTreeMap<String, usize>,
    /// ASNs published by the dispatcher from their queued message.
    pub delivered: usize,
    /// ASNs whose message ended in the dead-letter store undelivered.
    pub dead_lettered: usize,
    pub dead_letter_messages: usize,
    /// Dead-lettered ASNs the relay then delivered from the outbox.
    pub relayed_and_delivered: usize,
    /// ASNs the duty team received in the end (distinct).
    pub received_by_duty_teams: usize,
    /// ASNs published more than once, all inside the documented window.
    pub duplicated: usize,
    pub duplicates_outside_window: usize,
    pub dispatcher_rounds: usize,
}

impl FaultReport {
    /// Adds another run's figures (a long run made of independent parts).
    pub fn merge(&mut self, other: &FaultReport) {
        self.accesses += other.accesses;
        self.recorded += other.recorded;
        self.collapsed += other.collapsed;
        self.silent += other.silent;
        self.no_plan += other.no_plan;
        self.generated += other.generated;
        self.messages += other.messages;
        self.duplicate_messages += other.duplicate_messages;
        self.poison_messages += other.poison_messages;
        for (point, n) in &other.crashes {
            *self.crashes.entry(point.clone()).or_default() += n;
        }
        self.delivered += other.delivered;
        self.dead_lettered += other.dead_lettered;
        self.dead_letter_messages += other.dead_letter_messages;
        self.relayed_and_delivered += other.relayed_and_delivered;
        self.received_by_duty_teams += other.received_by_duty_teams;
        self.duplicated += other.duplicated;
        self.duplicates_outside_window += other.duplicates_outside_window;
        self.dispatcher_rounds += other.dispatcher_rounds;
    }
}

impl std::fmt::Display for FaultReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {:#x}: accesses {} (recorded {}, collapsed {}, silent {}, no plan {}); \
             ASNs generated {}; messages {} (duplicates {}, poison {}); crashes {:?}; \
             delivered {} + dead-lettered {} = {}; dead-letter messages {}; \
             relayed and delivered {}; received by duty teams {}; duplicated {} \
             (outside the window {}); rounds {}",
            self.seed,
            self.accesses,
            self.recorded,
            self.collapsed,
            self.silent,
            self.no_plan,
            self.generated,
            self.messages,
            self.duplicate_messages,
            self.poison_messages,
            self.crashes,
            self.delivered,
            self.dead_lettered,
            self.delivered + self.dead_lettered,
            self.dead_letter_messages,
            self.relayed_and_delivered,
            self.received_by_duty_teams,
            self.duplicated,
            self.duplicates_outside_window,
            self.dispatcher_rounds,
        )
    }
}

/// A council for the harness: one duty-team email and one SMS number, so
/// every delivery is one email and one SMS.
pub fn council(ods: &OdsCode, index: usize) -> Authority {
    Authority {
        ods_code: ods.clone(),
        name: format!("Fault Harness Council {index}"),
        office_hours_phone: "020 7946 0000".to_owned(),
        emergency_duty_phone: "020 7946 0999".to_owned(),
        notify_emails: vec![format!("duty{index}@council.example")],
        notify_sms: vec![format!("+4477009{index:05}")],
    }
}

/// The `n`th synthetic NHS number of the harness (999 range, valid check digit).
fn synthetic_child(mut n: usize) -> NhsNumber {
    loop {
        let body = format!("999{:06}", n % 1_000_000);
        let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
        if let Some(check) = check_digit(&digits) {
            if let Ok(number) = NhsNumber::parse(&format!("{body}{check}")) {
                return number;
            }
        }
        n += 1_000_000 / 3 + 1;
    }
}

const START: OffsetDateTime = datetime!(2025-03-01 08:00 UTC);

/// Plans for the children, uploaded by each council through the domain's
/// upload: most children have one council, a quarter two (two ASNs per
/// access), and a tenth none (their checks store nothing).
async fn upload_plans<S>(
    store: &S,
    councils: &[OdsCode],
    children: &[NhsNumber],
    rng: &mut StdRng,
) -> Result<(), String>
where
    S: PlanStore + UploadLedger,
{
    let mut records: Vec<Vec<serde_json::Value>> = vec![Vec::new(); councils.len()];
    for (index, child) in children.iter().enumerate() {
        if rng.gen_bool(0.1) {
            continue;
        }
        let first = rng.gen_range(0..councils.len());
        let mut holders = vec![first];
        if councils.len() > 1 && rng.gen_bool(0.25) {
            holders.push((first + rng.gen_range(1..councils.len())) % councils.len());
        }
        for holder in holders {
            let plan_type = if rng.gen_bool(0.6) { "LAC" } else { "CPP" };
            records[holder].push(serde_json::json!({
                "nhs_number": child.expose(),
                "plan_type": plan_type,
                "start_date": "2024-06-01",
                "local_id": format!("FH-{index}"),
            }));
        }
    }
    for (council, records) in councils.iter().zip(records) {
        if records.is_empty() {
            continue;
        }
        let body = serde_json::json!({"sequence": 1, "mode": "delta", "records": records});
        let result = process_upload(
            store,
            council,
            body.to_string().as_bytes(),
            START,
            &VisibilityPolicy::default(),
        )
        .await
        .map_err(|e| format!("upload for {council}: {e}"))?;
        if result.acknowledgement.rejected != 0 {
            return Err(format!("upload for {council} rejected records"));
        }
    }
    Ok(())
}

fn clinician(rng: &mut StdRng) -> Clinician {
    let hospital = rng.gen_range(0..40);
    Clinician {
        kind: if rng.gen_bool(0.1) {
            AccessorKind::System
        } else {
            AccessorKind::User
        },
        user_id: format!("fh-user-{hospital}-{}", rng.gen_range(0..5)),
        // A few scheduled-care callers: a silent read, no ASN.
        rbac: if rng.gen_bool(0.05) {
            Rbac::B0170
        } else {
            Rbac::B0107
        },
        organisation_ods: OdsCode::parse(&format!("RF{hospital:02}"))
            .expect("a valid harness ODS code"),
        organisation_name: format!("Harness Hospital {hospital}"),
        setting: "Emergency department".to_owned(),
    }
}

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
    S: PlanStore + UploadLedger + AuthorityDirectory + AccessLog + CheckReceipts,
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
        let result = check(store, &queue, &who, &child, true, run.now, &policy).await;
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
    // recording the delivery, and then exactly one.
    let crashes = channel.lock().crashes.clone();
    let fired = channel.lock().fired.clone();
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
            let in_window = crashes.get(id) == Some(&CrashPoint::AfterPublishBeforeRecord)
                && fired.contains(id)
                && *count == 2;
            if !in_window {
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

async fn send_late<T: Transport>(queue: &FaultyQueue<'_, T>) -> usize {
    let late = std::mem::take(
        &mut queue
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .late_duplicates,
    );
    if !late.is_empty() {
        if let Err(e) = queue.transport.enqueue(&late).await {
            panic!("sending late duplicates: {e}");
        }
    }
    late.len()
}

#[derive(Debug)]
struct MemoryMessage {
    id: String,
    body: String,
    receives: u32,
}

#[derive(Debug, Default)]
struct MemoryQueue {
    visible: VecDeque<MemoryMessage>,
    in_flight: HashMap<String, MemoryMessage>,
    dead: Vec<String>,
    next: u64,
}

/// An in-memory transport with SQS's semantics (see the module docs): what
/// stands between the check and the embedded dispatcher in the harness. The
/// body of a message is the ASN id.
#[derive(Debug, Default)]
pub struct MemoryTransport {
    queue: Mutex<MemoryQueue>,
}

impl MemoryTransport {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, body: String) {
        let mut q = self.lock();
        q.next += 1;
        let id = format!("m-{}", q.next);
        q.visible.push_back(MemoryMessage {
            id,
            body,
            receives: 0,
        });
    }
}

impl AsnQueue for MemoryTransport {
    async fn enqueue(&self, ids: &[String]) -> Result<(), StoreError> {
        for id in ids {
            self.push(id.clone());
        }
        Ok(())
    }
}

impl Transport for MemoryTransport {
    async fn send_raw(&self, body: &str) -> Result<(), StoreError> {
        self.push(body.to_owned());
        Ok(())
    }

    async fn receive(&self, max: usize) -> Vec<Received> {
        let mut q = self.lock();
        let mut out = Vec::new();
        while out.len() < max {
            let Some(mut m) = q.visible.pop_front() else {
                break;
            };
            if m.receives >= MAX_RECEIVES {
                q.dead.push(m.body);
                continue;
            }
            m.receives += 1;
            out.push(Received {
                message_id: m.id.clone(),
                body: m.body.clone(),
                handle: m.id.clone(),
            });
            q.in_flight.insert(m.id.clone(), m);
        }
        out
    }

    async fn delete(&self, message: &Received) {
        self.lock().in_flight.remove(&message.handle);
    }

    async fn release(&self, message: &Received) {
        let mut q = self.lock();
        if let Some(m) = q.in_flight.remove(&message.handle) {
            q.visible.push_back(m);
        }
    }

    async fn dead_letters(&self) -> Vec<String> {
        self.lock().dead.clone()
    }
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
