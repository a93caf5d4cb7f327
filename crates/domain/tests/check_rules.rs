//! Check, history and notification rules, against the in-memory store with
//! the clock moved across each boundary.

use cpis_domain::ports::{
    AccessLog, AsnOutbox, AuditReader, AuditTrail, AuthorityDirectory, DeliveryError,
    DeliveryStart, NotificationChannel, NotificationInbox, PlanStore, StoreError, StoredPlan,
};
use cpis_domain::{
    check, deliver_pending, dispatch, dispatch_batch_with, find_nhs_numbers, history, AccessEffect,
    AccessorKind, Asn, AuditAction, AuditEvent, AuditOutcome, Authority, Clinician, DispatchError,
    DispatchOutcome, Dispatched, FileDelivery, FileLeg, HistoryAnswer, NhsNumber, NoticeText,
    OdsCode, Plan, PlanType, Principal, Rbac, VisibilityPolicy, DISPATCHER_ACTOR,
};
use cpis_store_memory::{MemoryStore, RecordingQueue};
use std::sync::{Arc, Mutex};
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-25 10:00 UTC);
const CHILD: &str = "9990000018";
const VIEW_URL: &str = "https://cpis.example/notifications";

fn la(code: &str) -> OdsCode {
    OdsCode::parse(code).unwrap()
}

fn nhs(n: &str) -> NhsNumber {
    NhsNumber::parse(n).unwrap()
}

fn clinician(user: &str, org: &str, rbac: Rbac) -> Clinician {
    Clinician {
        job_role: None,
        kind: AccessorKind::User,
        user_id: user.into(),
        rbac,
        organisation_ods: la(org),
        organisation_name: format!("Hospital {org}"),
        setting: "emergency-department".into(),
    }
}

fn plan(authority: &str, child: &str, plan_type: PlanType) -> Plan {
    Plan {
        upload_sequence: None,
        authority: la(authority),
        nhs_number: nhs(child),
        plan_type,
        start_date: date!(2026 - 01 - 01),
        end_date: None,
        delete_date: None,
        due_date: None,
        local_id: Some(format!("CASE-{authority}")),
    }
}

async fn store_with(plans: Vec<Plan>) -> MemoryStore {
    let store = MemoryStore::new();
    for p in plans {
        let authority = p.authority.clone();
        let stored = StoredPlan {
            purge_from: p.purge_from(&VisibilityPolicy::default()),
            plan: p,
        };
        store
            .apply_changes(&authority, &[stored], &[])
            .await
            .unwrap();
    }
    store
        .put_authority(&Authority {
            ods_code: la("E09000033"),
            name: "Example Borough".into(),
            office_hours_phone: "020 7946 0000".into(),
            emergency_duty_phone: "020 7946 0999".into(),
            notify_emails: vec!["duty@example.gov.uk".into()],
            notify_sms: vec!["+447700900123".into()],
        })
        .await
        .unwrap();
    store
}

async fn run_check(
    store: &MemoryStore,
    who: &Clinician,
    unscheduled: bool,
    at: OffsetDateTime,
) -> cpis_domain::CheckResult {
    let event = cpis_domain::AuditEvent::check_allowed(who, None, at, "check-rules");
    let result = check(
        store,
        &RecordingQueue::default(),
        who,
        &nhs(CHILD),
        unscheduled,
        at,
        &VisibilityPolicy::default(),
        &event,
    )
    .await
    .unwrap();
    // The event goes with the check's writes whenever there are any; with
    // no plan there are none, and the caller appends it.
    let trail = cpis_domain::ports::AuditReader::audit_events(store, usize::MAX)
        .await
        .unwrap();
    let written = trail.iter().any(|e| e.id == event.id);
    assert_eq!(result.audit_written, result.effect != AccessEffect::NoPlan);
    assert_eq!(written, result.audit_written, "{:?}", result.effect);
    result
}

async fn asn_count(store: &MemoryStore, authority: &str) -> usize {
    store
        .notifications(&la(authority), None, 100)
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test]
async fn a_child_with_no_plan_gets_an_empty_answer_and_nothing_is_stored() {
    let store = store_with(vec![]).await;
    let result = run_check(&store, &clinician("u1", "RJ1", Rbac::B0107), true, NOW).await;
    assert_eq!(result.effect, AccessEffect::NoPlan);
    assert!(result.plans.is_empty() && result.access_history.is_empty());
    assert!(store
        .recent_accesses(&nhs(CHILD), 25)
        .await
        .unwrap()
        .is_empty());
    let receipts = cpis_domain::ports::CheckReceipts::last_check(&store, &nhs(CHILD), &la("RJ1"))
        .await
        .unwrap();
    assert_eq!(receipts, None);
}

#[tokio::test]
async fn an_unscheduled_b0107_check_records_one_access_and_one_asn_per_council() {
    let store = store_with(vec![
        plan("E09000033", CHILD, PlanType::ChildProtection),
        plan("E09000033", CHILD, PlanType::LookedAfter),
        plan("E06000001", CHILD, PlanType::LookedAfter),
    ])
    .await;
    let result = run_check(&store, &clinician("u1", "RJ1", Rbac::B0107), true, NOW).await;
    assert_eq!(
        result.effect,
        AccessEffect::Recorded {
            notifications: 2,
            queued: true
        }
    );
    assert_eq!(result.plans.len(), 3);
    assert_eq!(result.access_history.len(), 1);
    assert_eq!(asn_count(&store, "E09000033").await, 1);
    assert_eq!(asn_count(&store, "E06000001").await, 1);
    let asn = &store
        .notifications(&la("E09000033"), None, 10)
        .await
        .unwrap()
        .items[0];
    let first = asn.first_plan().expect("the ASN's plan");
    assert_eq!(first.plan_type, PlanType::ChildProtection);
    assert_eq!(asn.plans.len(), 2);
    assert_eq!(first.local_id.as_deref(), Some("CASE-E09000033"));
}

#[tokio::test]
async fn contacts_come_from_the_directory_or_say_the_council_is_unlisted() {
    let store = store_with(vec![
        plan("E09000033", CHILD, PlanType::ChildProtection),
        plan("E06000001", CHILD, PlanType::LookedAfter),
    ])
    .await;
    let result = run_check(&store, &clinician("u1", "RJ1", Rbac::B0107), false, NOW).await;
    let listed = result
        .plans
        .iter()
        .find(|p| p.authority.ods_code == la("E09000033"))
        .unwrap();
    assert_eq!(listed.authority.emergency_duty_phone, "020 7946 0999");
    let unlisted = result
        .plans
        .iter()
        .find(|p| p.authority.ods_code == la("E06000001"))
        .unwrap();
    assert!(unlisted.authority.name.contains("E06000001"));
}

#[tokio::test]
async fn b0170_and_scheduled_checks_are_silent_reads() {
    let store = store_with(vec![plan("E09000033", CHILD, PlanType::ChildProtection)]).await;
    for (who, unscheduled) in [
        (clinician("u1", "RJ1", Rbac::B0170), true),
        (clinician("u2", "RJ1", Rbac::B0107), false),
    ] {
        let result = run_check(&store, &who, unscheduled, NOW).await;
        assert_eq!(result.effect, AccessEffect::SilentRead);
        assert_eq!(result.plans.len(), 1, "the flag is still shown");
    }
    assert!(store
        .recent_accesses(&nhs(CHILD), 25)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(asn_count(&store, "E09000033").await, 0);
}

#[tokio::test]
async fn the_same_author_within_24_hours_is_collapsed() {
    let store = store_with(vec![plan("E09000033", CHILD, PlanType::ChildProtection)]).await;
    let doctor = clinician("u1", "RJ1", Rbac::B0107);
    run_check(&store, &doctor, true, NOW).await;
    let again = run_check(&store, &doctor, true, NOW + Duration::hours(23)).await;
    assert_eq!(again.effect, AccessEffect::Collapsed);
    let at_boundary = run_check(&store, &doctor, true, NOW + Duration::hours(24)).await;
    assert_eq!(at_boundary.effect, AccessEffect::Collapsed);
    assert_eq!(asn_count(&store, "E09000033").await, 1);
    let after = run_check(
        &store,
        &doctor,
        true,
        NOW + Duration::hours(24) + Duration::seconds(1),
    )
    .await;
    assert!(matches!(after.effect, AccessEffect::Recorded { .. }));
    assert_eq!(asn_count(&store, "E09000033").await, 2);
}

#[tokio::test]
async fn another_author_or_organisation_is_not_collapsed() {
    let store = store_with(vec![plan("E09000033", CHILD, PlanType::ChildProtection)]).await;
    run_check(&store, &clinician("u1", "RJ1", Rbac::B0107), true, NOW).await;
    let colleague = run_check(&store, &clinician("u2", "RJ1", Rbac::B0107), true, NOW).await;
    let same_id_elsewhere =
        run_check(&store, &clinician("u1", "RX1", Rbac::B0107), true, NOW).await;
    assert!(matches!(colleague.effect, AccessEffect::Recorded { .. }));
    assert!(matches!(
        same_id_elsewhere.effect,
        AccessEffect::Recorded { .. }
    ));
    assert_eq!(asn_count(&store, "E09000033").await, 3);
}

#[tokio::test]
async fn history_shows_the_25_most_recent_newest_first() {
    let store = store_with(vec![plan("E09000033", CHILD, PlanType::ChildProtection)]).await;
    for i in 0..30 {
        run_check(
            &store,
            &clinician(&format!("u{i}"), "RJ1", Rbac::B0107),
            true,
            NOW + Duration::minutes(i),
        )
        .await;
    }
    let result = run_check(
        &store,
        &clinician("viewer", "RJ1", Rbac::B0170),
        true,
        NOW + Duration::hours(1),
    )
    .await;
    assert_eq!(result.access_history.len(), 25);
    let times: Vec<_> = result
        .access_history
        .iter()
        .map(|a| a.accessed_at)
        .collect();
    assert_eq!(times[0], NOW + Duration::minutes(29));
    assert_eq!(times[24], NOW + Duration::minutes(5));
    assert!(times.windows(2).all(|w| w[0] > w[1]));
}

#[tokio::test]
async fn an_ended_plan_stops_flagging_the_day_after_its_tail() {
    let ended = Plan {
        end_date: Some(date!(2025 - 11 - 25)),
        ..plan("E09000033", CHILD, PlanType::LookedAfter)
    };
    let store = store_with(vec![ended]).await;
    let doctor = clinician("u1", "RJ1", Rbac::B0107);
    // 2026-11-25 is day 365 after the end date: still shown.
    assert_eq!(run_check(&store, &doctor, true, NOW).await.plans.len(), 1);
    let day_366 = run_check(
        &store,
        &clinician("u2", "RJ1", Rbac::B0107),
        true,
        NOW + Duration::days(1),
    )
    .await;
    assert_eq!(day_366.effect, AccessEffect::NoPlan);
    assert_eq!(asn_count(&store, "E09000033").await, 1);
}

#[tokio::test]
async fn history_is_for_the_plan_holding_council_and_organisations_that_just_checked() {
    let store = store_with(vec![plan("E09000033", CHILD, PlanType::ChildProtection)]).await;
    run_check(&store, &clinician("u1", "RJ1", Rbac::B0170), false, NOW).await;
    run_check(&store, &clinician("u2", "RX1", Rbac::B0107), true, NOW).await;

    let council = Principal::Council {
        authority: la("E09000033"),
        client_id: "c1".into(),
    };
    let other_council = Principal::Council {
        authority: la("E06000001"),
        client_id: "c2".into(),
    };
    let silent_checker = Principal::Clinician(clinician("u9", "RJ1", Rbac::B0107));
    let stranger = Principal::Clinician(clinician("u3", "RQ1", Rbac::B0107));

    let at = NOW + Duration::hours(23);
    let child = nhs(CHILD);
    assert!(
        matches!(history(&store, &council, &child, at).await.unwrap(), HistoryAnswer::Permitted(h) if h.len() == 1)
    );
    assert!(matches!(
        history(&store, &silent_checker, &child, at).await.unwrap(),
        HistoryAnswer::Permitted(_)
    ));
    assert_eq!(
        history(&store, &other_council, &child, at).await.unwrap(),
        HistoryAnswer::NotPermitted
    );
    assert_eq!(
        history(&store, &stranger, &child, at).await.unwrap(),
        HistoryAnswer::NotPermitted
    );
    let too_late = NOW + Duration::hours(24) + Duration::seconds(1);
    assert_eq!(
        history(&store, &silent_checker, &child, too_late)
            .await
            .unwrap(),
        HistoryAnswer::NotPermitted
    );
    assert_eq!(HistoryAnswer::NotPermitted.into_entries(), Vec::new());
}

/// A channel that records what it was asked to send and can be told to fail.
#[derive(Clone, Default)]
struct TestChannel {
    sent: Arc<Mutex<Vec<NoticeText>>>,
    failing: Arc<Mutex<bool>>,
}

impl NotificationChannel for TestChannel {
    async fn deliver(
        &self,
        _authority: &Authority,
        notice: &NoticeText,
    ) -> Result<(), DeliveryError> {
        if *self.failing.lock().unwrap() {
            return Err(DeliveryError::Transient("injected".into()));
        }
        self.sent.lock().unwrap().push(notice.clone());
        Ok(())
    }
}

async fn one_asn(store: &MemoryStore) -> String {
    run_check(store, &clinician("u1", "RJ1", Rbac::B0107), true, NOW).await;
    store
        .notifications(&la("E09000033"), None, 1)
        .await
        .unwrap()
        .items[0]
        .id
        .clone()
}

#[tokio::test]
async fn an_asn_is_delivered_once_however_often_it_is_dispatched() {
    let store = store_with(vec![plan("E09000033", CHILD, PlanType::ChildProtection)]).await;
    let id = one_asn(&store).await;
    let channel = TestChannel::default();
    assert_eq!(
        dispatch(&store, &channel, &id, NOW, VIEW_URL)
            .await
            .unwrap(),
        DispatchOutcome::Delivered
    );
    assert_eq!(
        dispatch(&store, &channel, &id, NOW, VIEW_URL)
            .await
            .unwrap(),
        DispatchOutcome::AlreadyDelivered
    );
    assert_eq!(
        dispatch(&store, &channel, "no-such-id", NOW, VIEW_URL)
            .await
            .unwrap(),
        DispatchOutcome::Unknown
    );
    assert_eq!(channel.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_delivery_is_retried_after_its_lease_and_then_delivered() {
    let store = store_with(vec![plan("E09000033", CHILD, PlanType::ChildProtection)]).await;
    let id = one_asn(&store).await;
    let channel = TestChannel::default();
    *channel.failing.lock().unwrap() = true;
    assert!(dispatch(&store, &channel, &id, NOW, VIEW_URL)
        .await
        .is_err());
    *channel.failing.lock().unwrap() = false;
    assert_eq!(
        dispatch(&store, &channel, &id, NOW, VIEW_URL)
            .await
            .unwrap(),
        DispatchOutcome::InProgress
    );
    let later = NOW + cpis_domain::dispatch::DELIVERY_LEASE;
    assert_eq!(
        dispatch(&store, &channel, &id, later, VIEW_URL)
            .await
            .unwrap(),
        DispatchOutcome::Delivered
    );
    assert_eq!(channel.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_sweep_delivers_every_pending_asn_and_the_text_identifies_no_one() {
    let store = store_with(vec![plan("E09000033", CHILD, PlanType::ChildProtection)]).await;
    for i in 0..3 {
        run_check(
            &store,
            &clinician(&format!("u{i}"), "RJ1", Rbac::B0107),
            true,
            NOW,
        )
        .await;
    }
    let channel = TestChannel::default();
    let report = deliver_pending(&store, &channel, NOW, 10, VIEW_URL)
        .await
        .unwrap();
    assert_eq!((report.claimed, report.delivered, report.failed), (3, 3, 0));
    let again = deliver_pending(&store, &channel, NOW + Duration::hours(1), 10, VIEW_URL)
        .await
        .unwrap();
    assert_eq!(again.claimed, 0);
    for notice in channel.sent.lock().unwrap().iter() {
        let all = format!(
            "{} {} {} {}",
            notice.sms, notice.email_subject, notice.email_body, notice.reference
        );
        assert!(find_nhs_numbers(&all).is_empty());
        for forbidden in [
            "CASE-",
            "Hospital",
            "RJ1",
            "CPP",
            "emergency-department",
            "u1",
        ] {
            assert!(!all.contains(forbidden), "{forbidden} leaked into {all}");
        }
        assert!(notice.sms.contains(VIEW_URL));
    }
}

#[tokio::test]
async fn a_council_without_channels_keeps_the_asn_in_its_inbox() {
    let store = MemoryStore::new();
    let p = plan("E06000001", CHILD, PlanType::ChildProtection);
    store
        .apply_changes(
            &la("E06000001"),
            &[StoredPlan {
                plan: p,
                purge_from: None,
            }],
            &[],
        )
        .await
        .unwrap();
    run_check(&store, &clinician("u1", "RJ1", Rbac::B0107), true, NOW).await;
    let id = store
        .notifications(&la("E06000001"), None, 1)
        .await
        .unwrap()
        .items[0]
        .id
        .clone();
    let channel = TestChannel::default();
    assert_eq!(
        dispatch(&store, &channel, &id, NOW, VIEW_URL)
            .await
            .unwrap(),
        DispatchOutcome::NoChannels
    );
    assert!(store
        .claim_undelivered(NOW + Duration::hours(1), Duration::minutes(1), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .notification(&la("E06000001"), &id)
        .await
        .unwrap()
        .is_some());
}

/// The delivery events in the audit trail, oldest first.
async fn delivery_audit(store: &MemoryStore) -> Vec<AuditEvent> {
    let mut events: Vec<AuditEvent> = store
        .audit_events(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == AuditAction::DeliverNotification)
        .collect();
    events.sort_by_key(|e| e.at);
    events
}

#[tokio::test]
async fn each_delivery_is_audited_once_for_the_council_and_names_no_child() {
    let store = store_with(vec![plan("E09000033", CHILD, PlanType::ChildProtection)]).await;
    let id = one_asn(&store).await;
    let channel = TestChannel::default();
    for _ in 0..3 {
        dispatch(&store, &channel, &id, NOW, VIEW_URL)
            .await
            .unwrap();
    }
    let events = delivery_audit(&store).await;
    assert_eq!(events.len(), 1, "duplicates send nothing and audit nothing");
    let event = &events[0];
    assert_eq!(event.outcome, AuditOutcome::Allowed);
    assert_eq!(event.organisation, "E09000033");
    assert_eq!(event.actor_id, DISPATCHER_ACTOR);
    assert_eq!(
        event.trace_id, id,
        "the ASN id joins the event to the notification"
    );
    assert_eq!(event.subject, None);
    let json = serde_json::to_string(event).unwrap();
    assert!(find_nhs_numbers(&json).is_empty(), "{json}");
}

#[tokio::test]
async fn a_failed_attempt_and_a_council_without_channels_are_audited_as_failures() {
    let store = store_with(vec![
        plan("E09000033", CHILD, PlanType::ChildProtection),
        plan("E06000001", CHILD, PlanType::LookedAfter),
    ])
    .await;
    run_check(&store, &clinician("u1", "RJ1", Rbac::B0107), true, NOW).await;
    let asn_of = |la_code: &'static str| {
        let store = &store;
        async move {
            store
                .notifications(&la(la_code), None, 1)
                .await
                .unwrap()
                .items[0]
                .id
                .clone()
        }
    };
    let (with_channels, without) = (asn_of("E09000033").await, asn_of("E06000001").await);
    let channel = TestChannel::default();
    *channel.failing.lock().unwrap() = true;
    assert!(dispatch(&store, &channel, &with_channels, NOW, VIEW_URL)
        .await
        .is_err());
    *channel.failing.lock().unwrap() = false;
    let later = NOW + cpis_domain::dispatch::DELIVERY_LEASE;
    dispatch(&store, &channel, &with_channels, later, VIEW_URL)
        .await
        .unwrap();
    dispatch(&store, &channel, &without, later, VIEW_URL)
        .await
        .unwrap();
    let seen: Vec<(String, String, AuditOutcome)> = delivery_audit(&store)
        .await
        .into_iter()
        .map(|e| (e.trace_id, e.organisation, e.outcome))
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        seen[0],
        (
            with_channels.clone(),
            "E09000033".into(),
            AuditOutcome::Failed
        )
    );
    assert!(seen[1..].contains(&(with_channels, "E09000033".into(), AuditOutcome::Allowed)));
    assert!(seen[1..].contains(&(without, "E06000001".into(), AuditOutcome::Failed)));
}

/// The in-memory store with an audit trail that refuses every write.
struct AuditDown<'a>(&'a MemoryStore);

impl AsnOutbox for AuditDown<'_> {
    async fn claim_undelivered(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Asn>, StoreError> {
        self.0.claim_undelivered(now, lease, limit).await
    }
    async fn begin_delivery(
        &self,
        id: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<DeliveryStart, StoreError> {
        self.0.begin_delivery(id, now, lease).await
    }
    async fn finish_delivery(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        self.0.finish_delivery(id, at).await
    }
}

impl AuthorityDirectory for AuditDown<'_> {
    async fn authority(&self, ods_code: &OdsCode) -> Result<Option<Authority>, StoreError> {
        self.0.authority(ods_code).await
    }
    async fn put_authority(&self, authority: &Authority) -> Result<(), StoreError> {
        self.0.put_authority(authority).await
    }
}

impl AuditTrail for AuditDown<'_> {
    async fn append(&self, _: &AuditEvent) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("injected".into()))
    }
}

#[tokio::test]
async fn a_delivery_whose_audit_fails_is_reported_and_never_sent_again() {
    let store = store_with(vec![plan("E09000033", CHILD, PlanType::ChildProtection)]).await;
    let id = one_asn(&store).await;
    let channel = TestChannel::default();
    let down = AuditDown(&store);
    match dispatch(&down, &channel, &id, NOW, VIEW_URL).await {
        Err(DispatchError::Audit {
            outcome: DispatchOutcome::Delivered,
            ..
        }) => {}
        other => panic!("expected an audit failure after delivery, got {other:?}"),
    }
    let later = NOW + Duration::hours(1);
    assert_eq!(
        dispatch(&down, &channel, &id, later, VIEW_URL)
            .await
            .unwrap(),
        DispatchOutcome::AlreadyDelivered
    );
    assert_eq!(channel.sent.lock().unwrap().len(), 1);
    // A second ASN, from another author, goes through the sweep.
    run_check(&store, &clinician("u2", "RJ2", Rbac::B0107), true, NOW).await;
    let report = deliver_pending(&down, &channel, later, 10, VIEW_URL)
        .await
        .unwrap();
    assert_eq!(
        (report.delivered, report.unaudited, report.failed),
        (1, 1, 0)
    );
    assert_eq!(channel.sent.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_batch_whose_audit_fails_is_reported_delivered_and_never_sent_again() {
    let store = store_with(vec![plan("E09000033", CHILD, PlanType::ChildProtection)]).await;
    let first = one_asn(&store).await;
    run_check(&store, &clinician("u2", "RJ2", Rbac::B0107), true, NOW).await;
    let second = store
        .claim_undelivered(NOW, Duration::ZERO, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .find(|id| id != &first)
        .expect("a second ASN");
    let channel = TestChannel::default();
    let down = AuditDown(&store);
    let ids = [first.as_str(), second.as_str(), first.as_str()];
    let answers = cpis_domain::dispatch_batch(&down, &channel, &ids, NOW, VIEW_URL).await;
    assert!(matches!(
        answers[0],
        Err(DispatchError::Audit {
            outcome: DispatchOutcome::Delivered,
            ..
        })
    ));
    assert!(matches!(
        answers[1],
        Err(DispatchError::Audit {
            outcome: DispatchOutcome::Delivered,
            ..
        })
    ));
    assert!(
        matches!(answers[2], Ok(DispatchOutcome::AlreadyDelivered)),
        "a repeated id is delivered once: {:?}",
        answers[2]
    );
    let later = NOW + Duration::hours(1);
    let again = cpis_domain::dispatch_batch(&down, &channel, &ids[..2], later, VIEW_URL).await;
    assert!(again
        .iter()
        .all(|a| matches!(a, Ok(DispatchOutcome::AlreadyDelivered))));
    assert_eq!(channel.sent.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_batch_across_councils_answers_each_asn_as_dispatch_would() {
    let store = store_with(vec![
        plan("E09000033", CHILD, PlanType::ChildProtection),
        plan("E06000001", CHILD, PlanType::LookedAfter),
    ])
    .await;
    run_check(&store, &clinician("u1", "RJ1", Rbac::B0107), true, NOW).await;
    let asn_of = |la_code: &'static str| {
        let store = &store;
        async move {
            store
                .notifications(&la(la_code), None, 1)
                .await
                .unwrap()
                .items[0]
                .id
                .clone()
        }
    };
    let (with_channels, without) = (asn_of("E09000033").await, asn_of("E06000001").await);
    let channel = TestChannel::default();
    let ids = [without.as_str(), "no-such-asn", with_channels.as_str()];
    let answers = cpis_domain::dispatch_batch(&store, &channel, &ids, NOW, VIEW_URL).await;
    assert!(
        matches!(answers[0], Ok(DispatchOutcome::NoChannels)),
        "{answers:?}"
    );
    assert!(
        matches!(answers[1], Ok(DispatchOutcome::Unknown)),
        "{answers:?}"
    );
    assert!(
        matches!(answers[2], Ok(DispatchOutcome::Delivered)),
        "{answers:?}"
    );
    assert_eq!(
        channel.sent.lock().unwrap().len(),
        1,
        "only the council with channels"
    );
    let seen: Vec<(String, String, AuditOutcome)> = delivery_audit(&store)
        .await
        .into_iter()
        .map(|e| (e.trace_id, e.organisation, e.outcome))
        .collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.contains(&(with_channels, "E09000033".into(), AuditOutcome::Allowed)));
    assert!(seen.contains(&(without, "E06000001".into(), AuditOutcome::Failed)));
}

/// What the test file leg does with one ASN.
#[derive(Clone)]
enum FileScript {
    Sends,
    /// MESH unavailable: worth retrying.
    Fails,
    /// This ASN cannot be a file.
    Impossible,
}

/// A MESH leg scripted per ASN id (anything else is sent), writing each
/// attempt to `log` beside the duty team's notices, so the order of the
/// legs can be read back.
#[derive(Clone, Default)]
struct ScriptedFiles {
    script: Arc<Mutex<Vec<(String, FileScript)>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl ScriptedFiles {
    fn set(&self, id: &str, what: FileScript) {
        let mut script = self.script.lock().unwrap();
        script.retain(|(i, _)| i != id);
        script.push((id.to_owned(), what));
    }
}

impl FileLeg for ScriptedFiles {
    async fn deliver_file(
        &self,
        asn: &Asn,
        _authority: Option<&Authority>,
        _now: OffsetDateTime,
    ) -> Result<FileDelivery, DispatchError> {
        self.log.lock().unwrap().push(format!("file {}", asn.id));
        let what = self
            .script
            .lock()
            .unwrap()
            .iter()
            .find(|(id, _)| id == &asn.id)
            .map_or(FileScript::Sends, |(_, what)| what.clone());
        match what {
            FileScript::Sends => Ok(FileDelivery::Sent),
            FileScript::Fails => Err(DeliveryError::Transient("MESH unavailable".into()).into()),
            FileScript::Impossible => Ok(FileDelivery::Impossible("no job role".into())),
        }
    }
}

/// A channel that writes each notice to the file leg's log.
struct LoggedChannel(Arc<Mutex<Vec<String>>>);

impl NotificationChannel for LoggedChannel {
    async fn deliver(&self, _: &Authority, notice: &NoticeText) -> Result<(), DeliveryError> {
        self.0
            .lock()
            .unwrap()
            .push(format!("sms {}", notice.reference));
        Ok(())
    }
}

/// Three ASNs for `E09000033` (three clinicians checked the child), and as
/// many for `E06000001` when it has a plan too.
async fn three_checks(store: &MemoryStore) -> Vec<String> {
    for i in 0..3 {
        run_check(
            store,
            &clinician(&format!("u{i}"), "RJ1", Rbac::B0107),
            true,
            NOW,
        )
        .await;
    }
    let mut ids: Vec<String> = store
        .notifications(&la("E09000033"), None, 10)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.id)
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 3);
    ids
}

fn sent_in(log: &[String], id: &str, leg: &str) -> usize {
    log.iter().filter(|l| *l == &format!("{leg} {id}")).count()
}

#[tokio::test]
async fn a_batch_whose_file_fails_for_one_asn_retries_it_alone_and_sends_it_no_sms() {
    let store = store_with(vec![plan("E09000033", CHILD, PlanType::ChildProtection)]).await;
    let ids = three_checks(&store).await;
    let files = ScriptedFiles::default();
    files.set(&ids[1], FileScript::Fails);
    let channel = LoggedChannel(files.log.clone());
    let batch: Vec<&str> = ids.iter().map(String::as_str).collect();
    let answers = dispatch_batch_with(&store, &channel, &files, &batch, NOW, VIEW_URL).await;
    for i in [0, 2] {
        match &answers[i] {
            Ok(Dispatched {
                outcome: DispatchOutcome::Delivered,
                file: FileDelivery::Sent,
            }) => {}
            other => panic!("ASN {i}: {other:?}"),
        }
    }
    assert!(
        matches!(
            answers[1],
            Err(DispatchError::Delivery(DeliveryError::Transient(_)))
        ),
        "{:?}",
        answers[1]
    );
    {
        let log = files.log.lock().unwrap();
        assert_eq!(
            sent_in(&log, &ids[1], "sms"),
            0,
            "no SMS after a failed file"
        );
        for id in [&ids[0], &ids[2]] {
            assert_eq!(sent_in(&log, id, "sms"), 1, "{log:?}");
            let file = log.iter().position(|l| l == &format!("file {id}"));
            let sms = log.iter().position(|l| l == &format!("sms {id}"));
            assert!(file < sms, "the file goes first: {log:?}");
        }
    }
    // The failed attempt is audited; the ASN is not recorded as delivered.
    let failed: Vec<String> = delivery_audit(&store)
        .await
        .into_iter()
        .filter(|e| e.outcome == AuditOutcome::Failed)
        .map(|e| e.trace_id)
        .collect();
    assert_eq!(failed, [ids[1].clone()]);

    // The whole batch again after the lease: only the one that failed goes,
    // its file now sent, then its SMS; the others send nothing.
    files.set(&ids[1], FileScript::Sends);
    let later = NOW + cpis_domain::dispatch::DELIVERY_LEASE;
    let again = dispatch_batch_with(&store, &channel, &files, &batch, later, VIEW_URL).await;
    let outcomes: Vec<DispatchOutcome> =
        again.iter().map(|a| a.as_ref().unwrap().outcome).collect();
    assert_eq!(
        outcomes,
        [
            DispatchOutcome::AlreadyDelivered,
            DispatchOutcome::Delivered,
            DispatchOutcome::AlreadyDelivered
        ]
    );
    let log = files.log.lock().unwrap();
    for id in &ids {
        assert_eq!(sent_in(&log, id, "sms"), 1, "{log:?}");
    }
    assert_eq!(sent_in(&log, &ids[1], "file"), 2, "tried, then retried");
    assert_eq!(sent_in(&log, &ids[0], "file"), 1, "{log:?}");
}

#[tokio::test]
async fn a_batch_with_an_impossible_file_still_sends_that_asns_sms() {
    let store = store_with(vec![
        plan("E09000033", CHILD, PlanType::ChildProtection),
        plan("E06000001", CHILD, PlanType::LookedAfter),
    ])
    .await;
    let ids = three_checks(&store).await;
    // E06000001 has no duty-team channels: its ASNs count as delivered by
    // their file alone, or stay in its inbox when the file is impossible.
    let mut elsewhere: Vec<String> = store
        .notifications(&la("E06000001"), None, 10)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.id)
        .collect();
    elsewhere.sort();
    let files = ScriptedFiles::default();
    files.set(&ids[1], FileScript::Impossible);
    files.set(&elsewhere[0], FileScript::Impossible);
    let channel = LoggedChannel(files.log.clone());
    let batch = [
        ids[0].as_str(),
        elsewhere[0].as_str(),
        ids[1].as_str(),
        elsewhere[1].as_str(),
        ids[2].as_str(),
    ];
    let answers = dispatch_batch_with(&store, &channel, &files, &batch, NOW, VIEW_URL).await;
    let got: Vec<(DispatchOutcome, FileDelivery)> = answers
        .into_iter()
        .map(|a| {
            let d = a.unwrap();
            (d.outcome, d.file)
        })
        .collect();
    let impossible = FileDelivery::Impossible("no job role".into());
    assert_eq!(
        got,
        [
            (DispatchOutcome::Delivered, FileDelivery::Sent),
            (DispatchOutcome::NoChannels, impossible.clone()),
            (DispatchOutcome::Delivered, impossible),
            (DispatchOutcome::Delivered, FileDelivery::Sent),
            (DispatchOutcome::Delivered, FileDelivery::Sent),
        ]
    );
    let log = files.log.lock().unwrap().clone();
    for id in &ids {
        assert_eq!(sent_in(&log, id, "sms"), 1, "{log:?}");
        let file = log.iter().position(|l| l == &format!("file {id}"));
        let sms = log.iter().position(|l| l == &format!("sms {id}"));
        assert!(file.is_some() && file < sms, "the file goes first: {log:?}");
    }
    let audited: Vec<(String, AuditOutcome)> = delivery_audit(&store)
        .await
        .into_iter()
        .map(|e| (e.trace_id, e.outcome))
        .collect();
    assert_eq!(audited.len(), 5, "{audited:?}");
    assert!(audited.contains(&(ids[1].clone(), AuditOutcome::Allowed)));
    assert!(audited.contains(&(elsewhere[0].clone(), AuditOutcome::Failed)));
    assert!(audited.contains(&(elsewhere[1].clone(), AuditOutcome::Allowed)));
    // All five are recorded: nothing is sent again.
    let later = NOW + Duration::hours(1);
    let again = dispatch_batch_with(&store, &channel, &files, &batch, later, VIEW_URL).await;
    assert!(again.iter().all(|a| matches!(
        a,
        Ok(Dispatched {
            outcome: DispatchOutcome::AlreadyDelivered,
            ..
        })
    )));
    assert_eq!(files.log.lock().unwrap().len(), 5 + 3);
}
