//! The check a care setting makes, and the history query.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::access::{most_recent, COLLAPSE_WINDOW, HISTORY_LIMIT};
use crate::ports::{
    AccessLog, AccessWrite, AsnQueue, AuthorityDirectory, CheckLedger, CheckReceipts, CheckWrite,
    NewAccess, PlanStore, StoreError,
};
use crate::{
    AccessRecord, AccessSummary, Asn, AsnPlan, AuditEvent, Authority, AuthorityContact, Clinician,
    NhsNumber, OdsCode, Plan, PlanType, Principal, VisibilityPolicy,
};

/// What a clinician sees of one plan: type, dates and whom to ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisiblePlan {
    pub plan_type: PlanType,
    pub start_date: Date,
    pub end_date: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<Date>,
    pub authority: AuthorityContact,
}

/// What happened to the access itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessEffect {
    /// No visible plan: nothing stored.
    NoPlan,
    /// Scheduled setting or B0170: flag shown, nothing recorded, nobody told.
    SilentRead,
    /// An access entry and one ASN per council were written. `queued` is
    /// false when the hand-off to the dispatcher failed: the durable outbox
    /// still holds the ASNs and the sweep delivers them, later.
    Recorded { notifications: usize, queued: bool },
    /// Same author within 24 hours: no new entry, no new ASN.
    Collapsed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub plans: Vec<VisiblePlan>,
    pub access_history: Vec<AccessSummary>,
    pub effect: AccessEffect,
    /// Whether the request's `Allowed` audit event was written with the
    /// check's own writes. When false (no plan, or an audit trail that could
    /// not take it) the caller appends it.
    pub audit_written: bool,
}

/// Checks a patient at the instant `now`; plans are judged on its UK civil
/// date ([`crate::uk_date`]). `unscheduled` is the caller's statement that
/// this is an unscheduled access; only B0107 callers notify. `audit` is the
/// request's `Allowed` event, written with the check's receipt and access in
/// one [`CheckLedger::record_check`] (one commit per check). Every read comes
/// before that write, so once it is durable nothing is left to fail and the
/// event is true. If the write with the event fails, the check's own writes
/// are tried without it (the H10/H11 decision: an audit trail that cannot
/// take events must not hide the flag) and the caller appends the event.
#[allow(clippy::too_many_arguments)]
pub async fn check<S, Q>(
    store: &S,
    queue: &Q,
    clinician: &Clinician,
    nhs_number: &NhsNumber,
    unscheduled: bool,
    now: OffsetDateTime,
    policy: &VisibilityPolicy,
    audit: &AuditEvent,
) -> Result<CheckResult, StoreError>
where
    S: PlanStore + AuthorityDirectory + AccessLog + CheckLedger,
    Q: AsnQueue,
{
    let today = crate::clock::uk_date(now);
    let visible = visible_plans(store.plans_for_child(nhs_number).await?, today, policy);
    if visible.is_empty() {
        return Ok(CheckResult {
            plans: Vec::new(),
            access_history: Vec::new(),
            effect: AccessEffect::NoPlan,
            audit_written: false,
        });
    }

    let mut contacts: BTreeMap<OdsCode, AuthorityContact> = BTreeMap::new();
    for plan in &visible {
        if !contacts.contains_key(&plan.authority) {
            let contact = store.authority(&plan.authority).await?.map_or_else(
                || Authority::unlisted_contact(&plan.authority),
                |a| a.contact(),
            );
            contacts.insert(plan.authority.clone(), contact);
        }
    }
    let mut history = store.recent_accesses(nhs_number, HISTORY_LIMIT).await?;

    let access = (unscheduled && clinician.rbac.may_notify()).then(|| AccessRecord {
        id: uuid::Uuid::new_v4().to_string(),
        nhs_number: *nhs_number,
        accessed_at: now,
        accessor: clinician.clone(),
    });
    let asns = access
        .as_ref()
        .map(|access| notifications_for(access, &visible))
        .unwrap_or_default();
    let write = CheckWrite {
        receipt: (nhs_number, &clinician.organisation_ods, now),
        access: access.as_ref().map(|record| NewAccess {
            record,
            asns: &asns,
            collapse_since: now - COLLAPSE_WINDOW,
        }),
        audit: Some(audit),
    };
    let (written, audit_written) = match store.record_check(&write).await {
        Ok(written) => (written, true),
        Err(_) => {
            let without_audit = CheckWrite {
                audit: None,
                ..write
            };
            (store.record_check(&without_audit).await?, false)
        }
    };
    let effect = match (written, access) {
        (Some(AccessWrite::Recorded), Some(access)) => {
            history.push(access);
            let ids: Vec<String> = asns.iter().map(|a| a.id.clone()).collect();
            // Best effort: the outbox is durable and the relay/dispatcher
            // sweeps it, so a failed hand-off delays but never loses an ASN.
            let queued = queue.enqueue(&ids).await.is_ok();
            AccessEffect::Recorded {
                notifications: asns.len(),
                queued,
            }
        }
        (Some(AccessWrite::Collapsed), _) => AccessEffect::Collapsed,
        _ => AccessEffect::SilentRead,
    };

    let plans = visible
        .iter()
        .map(|plan| VisiblePlan {
            plan_type: plan.plan_type,
            start_date: plan.start_date,
            end_date: plan.end_date,
            due_date: plan.due_date,
            authority: contacts
                .get(&plan.authority)
                .cloned()
                .unwrap_or_else(|| Authority::unlisted_contact(&plan.authority)),
        })
        .collect();
    Ok(CheckResult {
        plans,
        access_history: summaries(history),
        effect,
        audit_written,
    })
}

/// The visible plans, in a stable order (council, type, start).
pub fn visible_plans(plans: Vec<Plan>, today: Date, policy: &VisibilityPolicy) -> Vec<Plan> {
    let mut visible: Vec<Plan> = plans
        .into_iter()
        .filter(|p| p.is_visible_on(today, policy))
        .collect();
    visible.sort_by(|a, b| {
        (&a.authority, a.plan_type, a.start_date).cmp(&(&b.authority, b.plan_type, b.start_date))
    });
    visible
}

/// One ASN per council holding a visible plan for the child.
pub fn notifications_for(access: &AccessRecord, visible: &[Plan]) -> Vec<Asn> {
    let mut by_council: BTreeMap<&OdsCode, Vec<&Plan>> = BTreeMap::new();
    for plan in visible {
        by_council.entry(&plan.authority).or_default().push(plan);
    }
    by_council
        .into_iter()
        .filter_map(|(authority, plans)| {
            // A council with no plan here gets no ASN.
            plans.first()?;
            Some(Asn {
                id: uuid::Uuid::new_v4().to_string(),
                authority: authority.clone(),
                nhs_number: access.nhs_number,
                plans: plans
                    .iter()
                    .map(|p| AsnPlan {
                        plan_type: p.plan_type,
                        local_id: p.local_id.clone(),
                        upload_sequence: p.upload_sequence,
                    })
                    .collect(),
                accessed_at: access.accessed_at,
                accessor: access.accessor.clone(),
                access_id: access.id.clone(),
                acknowledged_at: None,
                acknowledgement_note: None,
            })
        })
        .collect()
}

async fn history_summaries<S: AccessLog>(
    store: &S,
    nhs_number: &NhsNumber,
) -> Result<Vec<AccessSummary>, StoreError> {
    Ok(summaries(
        store.recent_accesses(nhs_number, HISTORY_LIMIT).await?,
    ))
}

/// The history rule ([`most_recent`]) as callers see it.
fn summaries(records: Vec<AccessRecord>) -> Vec<AccessSummary> {
    most_recent(records)
        .into_iter()
        .map(AccessRecord::into_summary)
        .collect()
}

/// The answer to a history query. A caller who may not see the history gets
/// `NotPermitted`, which the API answers exactly as it answers a child with
/// no history; the distinction exists only for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryAnswer {
    Permitted(Vec<AccessSummary>),
    NotPermitted,
}

impl HistoryAnswer {
    pub fn into_entries(self) -> Vec<AccessSummary> {
        match self {
            Self::Permitted(entries) => entries,
            Self::NotPermitted => Vec::new(),
        }
    }
}

/// How long after its check a care-setting organisation may read a child's history.
pub const HISTORY_READ_WINDOW: time::Duration = time::Duration::hours(24);

/// Reads a child's access history: a council holding a plan for the child, or
/// a care-setting organisation that checked the child in the last 24 hours.
pub async fn history<S>(
    store: &S,
    principal: &Principal,
    nhs_number: &NhsNumber,
    now: OffsetDateTime,
) -> Result<HistoryAnswer, StoreError>
where
    S: PlanStore + AccessLog + CheckReceipts,
{
    let permitted = match principal {
        Principal::Council { authority, .. } => store
            .plans_for_child(nhs_number)
            .await?
            .iter()
            .any(|plan| &plan.authority == authority),
        Principal::Clinician(clinician) => store
            .last_check(nhs_number, &clinician.organisation_ods)
            .await?
            .is_some_and(|at| at >= now - HISTORY_READ_WINDOW),
    };
    if !permitted {
        return Ok(HistoryAnswer::NotPermitted);
    }
    Ok(HistoryAnswer::Permitted(
        history_summaries(store, nhs_number).await?,
    ))
}
