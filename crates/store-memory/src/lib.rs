//! In-memory adapters for every port. Behaviour matches the durable stores
//! exactly (the conformance suite proves it); only durability differs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use cpis_domain::ports::{
    AccessLog, AccessWrite, AsnOutbox, AsnQueue, AuditReader, AuditTrail, AuthorityDirectory,
    CheckLedger, CheckReceipts, CheckWrite, DeliveryStart, LinkError, MailboxMap,
    NotificationInbox, Page, PlanStore, PurgeReport, QueueError, Retention, StoreError, StoredPlan,
    UploadHistory, UploadLedger, UploadReceipt,
};
use cpis_domain::{
    AccessRecord, AckNote, Asn, AsnCutoffs, AuditEvent, Authority, InboxCursor, LedgerHead,
    MailboxId, NhsNumber, OdsCode, Plan, PlanCursor, PlanKey, PlanType,
};
use time::{Date, Duration, OffsetDateTime};

mod portal;

#[derive(Debug, Clone)]
struct OutboxState {
    asn: Asn,
    claimed_until: Option<OffsetDateTime>,
    delivery_lease_until: Option<OffsetDateTime>,
    delivered_at: Option<OffsetDateTime>,
}

#[derive(Debug, Default)]
struct State {
    plans: BTreeMap<PlanSortKey, StoredPlan>,
    /// The keys of each child's plans: a check reads one child, not every plan.
    plans_by_child: HashMap<NhsNumber, BTreeSet<PlanSortKey>>,
    receipts: HashMap<(OdsCode, u64), UploadReceipt>,
    ledger_heads: HashMap<OdsCode, LedgerHead>,
    authorities: HashMap<OdsCode, Authority>,
    accesses: HashMap<NhsNumber, Vec<AccessRecord>>,
    check_receipts: HashMap<(NhsNumber, OdsCode), OffsetDateTime>,
    asns: BTreeMap<String, OutboxState>,
    audit: Vec<AuditEvent>,
    /// The operator's council ↔ MESH mailbox map, both ways, changed
    /// together under the one lock.
    mailboxes: HashMap<OdsCode, MailboxId>,
    councils_by_mailbox: HashMap<MailboxId, OdsCode>,
}

impl State {
    fn insert_plan(&mut self, stored: StoredPlan) {
        let key = sort_key(&stored.plan.key());
        self.plans_by_child
            .entry(stored.plan.nhs_number)
            .or_default()
            .insert(key.clone());
        self.plans.insert(key, stored);
    }

    fn remove_plan(&mut self, key: &PlanSortKey) -> bool {
        if self.plans.remove(key).is_none() {
            return false;
        }
        if let Some(keys) = self.plans_by_child.get_mut(&key.1) {
            keys.remove(key);
            if keys.is_empty() {
                self.plans_by_child.remove(&key.1);
            }
        }
        true
    }
}

/// Plans sort by council, then child, type and start: the listing order.
type PlanSortKey = (OdsCode, NhsNumber, PlanType, Date);

fn sort_key(key: &PlanKey) -> PlanSortKey {
    (
        key.authority.clone(),
        key.nhs_number,
        key.plan_type,
        key.start_date,
    )
}

/// Every port, in memory. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    /// Each council's last accepted full snapshot (`cpis_domain::FeedLog`).
    feeds: Arc<Mutex<BTreeMap<OdsCode, OffsetDateTime>>>,
    /// The portal's sessions, tickets and check results (`portal.rs`).
    portal: Arc<Mutex<portal::PortalState>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the store down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PlanStore for MemoryStore {
    async fn plans_for_child(&self, nhs_number: &NhsNumber) -> Result<Vec<Plan>, StoreError> {
        let state = self.state();
        Ok(state
            .plans_by_child
            .get(nhs_number)
            .into_iter()
            .flatten()
            .filter_map(|key| state.plans.get(key))
            .map(|p| p.plan.clone())
            .collect())
    }

    async fn plans_for_authority(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Plan>, StoreError> {
        let after = cursor
            .map(PlanCursor::parse)
            .transpose()?
            .map(|c| (authority.clone(), c.nhs_number, c.plan_type, c.start_date));
        let state = self.state();
        let items: Vec<Plan> = state
            .plans
            .iter()
            .filter(|(k, _)| &k.0 == authority)
            .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a))
            .take(limit + 1)
            .map(|(_, p)| p.plan.clone())
            .collect();
        Ok(Page::of_plans(items, limit))
    }

    async fn plan_keys_for_authority(
        &self,
        authority: &OdsCode,
    ) -> Result<Vec<PlanKey>, StoreError> {
        Ok(self
            .state()
            .plans
            .values()
            .filter(|p| &p.plan.authority == authority)
            .map(|p| p.plan.key())
            .collect())
    }

    async fn apply_changes(
        &self,
        authority: &OdsCode,
        upserts: &[StoredPlan],
        withdrawals: &[PlanKey],
    ) -> Result<usize, StoreError> {
        let mut state = self.state();
        for stored in upserts.iter().filter(|s| &s.plan.authority == authority) {
            state.insert_plan(stored.clone());
        }
        let withdrawn = withdrawals
            .iter()
            .filter(|k| &k.authority == authority)
            .filter(|k| state.remove_plan(&sort_key(k)))
            .count();
        Ok(withdrawn)
    }
}

impl UploadLedger for MemoryStore {
    async fn receipt(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> Result<Option<UploadReceipt>, StoreError> {
        Ok(self
            .state()
            .receipts
            .get(&(authority.clone(), sequence))
            .cloned())
    }

    async fn record_receipt(
        &self,
        authority: &OdsCode,
        receipt: &UploadReceipt,
    ) -> Result<UploadReceipt, StoreError> {
        Ok(self
            .state()
            .receipts
            .entry((authority.clone(), receipt.sequence))
            .or_insert_with(|| receipt.clone())
            .clone())
    }

    async fn ledger_head(&self, authority: &OdsCode) -> Result<Option<LedgerHead>, StoreError> {
        Ok(self.state().ledger_heads.get(authority).cloned())
    }

    async fn swap_ledger_head(
        &self,
        authority: &OdsCode,
        expected: Option<&LedgerHead>,
        new: &LedgerHead,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let current = state.ledger_heads.get(authority).map(|h| h.version);
        if current != expected.map(|h| h.version) {
            return Ok(false);
        }
        state.ledger_heads.insert(authority.clone(), new.clone());
        Ok(true)
    }

    async fn retire_receipts_above(
        &self,
        authority: &OdsCode,
        sequence: u64,
    ) -> Result<usize, StoreError> {
        let mut state = self.state();
        let before = state.receipts.len();
        state
            .receipts
            .retain(|(council, s), _| council != authority || *s <= sequence);
        Ok(before - state.receipts.len())
    }
}

impl UploadHistory for MemoryStore {
    async fn recent_receipts(
        &self,
        authority: &OdsCode,
        limit: usize,
    ) -> Result<Vec<UploadReceipt>, StoreError> {
        let state = self.state();
        let mut receipts: Vec<UploadReceipt> = state
            .receipts
            .iter()
            .filter(|((council, _), _)| council == authority)
            .map(|(_, receipt)| receipt.clone())
            .collect();
        receipts.sort_by_key(|r| std::cmp::Reverse(r.sequence));
        receipts.truncate(limit);
        Ok(receipts)
    }
}

impl AuthorityDirectory for MemoryStore {
    async fn authority(&self, ods_code: &OdsCode) -> Result<Option<Authority>, StoreError> {
        Ok(self.state().authorities.get(ods_code).cloned())
    }

    async fn put_authority(&self, authority: &Authority) -> Result<(), StoreError> {
        self.state()
            .authorities
            .insert(authority.ods_code.clone(), authority.clone());
        Ok(())
    }
}

impl MailboxMap for MemoryStore {
    async fn link_mailbox(
        &self,
        council: &OdsCode,
        mailbox: &MailboxId,
    ) -> Result<Option<MailboxId>, LinkError> {
        let mut state = self.state();
        match state.councils_by_mailbox.get(mailbox) {
            Some(holder) if holder != council => {
                return Err(LinkError::MailboxTaken {
                    mailbox: mailbox.clone(),
                    council: holder.clone(),
                })
            }
            _ => {}
        }
        let previous = state.mailboxes.insert(council.clone(), mailbox.clone());
        if let Some(old) = previous.as_ref().filter(|old| *old != mailbox) {
            state.councils_by_mailbox.remove(old);
        }
        state
            .councils_by_mailbox
            .insert(mailbox.clone(), council.clone());
        Ok(previous)
    }

    async fn unlink_mailbox(&self, council: &OdsCode) -> Result<Option<MailboxId>, StoreError> {
        let mut state = self.state();
        let previous = state.mailboxes.remove(council);
        if let Some(old) = &previous {
            state.councils_by_mailbox.remove(old);
        }
        Ok(previous)
    }

    async fn mailbox_of(&self, council: &OdsCode) -> Result<Option<MailboxId>, StoreError> {
        Ok(self.state().mailboxes.get(council).cloned())
    }

    async fn council_of(&self, mailbox: &MailboxId) -> Result<Option<OdsCode>, StoreError> {
        Ok(self.state().councils_by_mailbox.get(mailbox).cloned())
    }
}

impl AccessLog for MemoryStore {
    async fn record_access(
        &self,
        access: &AccessRecord,
        asns: &[Asn],
        collapse_since: OffsetDateTime,
    ) -> Result<AccessWrite, StoreError> {
        Ok(self.state().record_access(access, asns, collapse_since))
    }

    async fn recent_accesses(
        &self,
        nhs_number: &NhsNumber,
        limit: usize,
    ) -> Result<Vec<AccessRecord>, StoreError> {
        let state = self.state();
        let Some(records) = state.accesses.get(nhs_number) else {
            return Ok(Vec::new());
        };
        // Clone only the newest, not the child's whole history.
        let mut newest: Vec<&AccessRecord> = records.iter().collect();
        newest.sort_unstable_by(|a, b| cpis_domain::access::newest_first(a, b));
        Ok(newest.into_iter().take(limit).cloned().collect())
    }
}

impl CheckReceipts for MemoryStore {
    async fn note_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.state().note_check(nhs_number, organisation, at);
        Ok(())
    }

    async fn last_check(
        &self,
        nhs_number: &NhsNumber,
        organisation: &OdsCode,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(self
            .state()
            .check_receipts
            .get(&(*nhs_number, organisation.clone()))
            .copied())
    }
}

fn inbox_order(a: &Asn, b: &Asn) -> std::cmp::Ordering {
    b.accessed_at
        .cmp(&a.accessed_at)
        .then_with(|| b.id.cmp(&a.id))
}

impl NotificationInbox for MemoryStore {
    async fn notifications(
        &self,
        authority: &OdsCode,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Asn>, StoreError> {
        let after = cursor.map(InboxCursor::parse).transpose()?;
        let mut all: Vec<Asn> = self
            .state()
            .asns
            .values()
            .filter(|o| &o.asn.authority == authority)
            .map(|o| o.asn.clone())
            .collect();
        all.sort_by(inbox_order);
        let items: Vec<Asn> = all
            .into_iter()
            .filter(|a| {
                after
                    .as_ref()
                    .is_none_or(|after| after.precedes(a.accessed_at, &a.id))
            })
            .take(limit + 1)
            .collect();
        Ok(Page::from_overfetch(items, limit, |last| {
            InboxCursor::after(last.accessed_at, last.id.as_str()).to_string()
        }))
    }

    async fn notification(&self, authority: &OdsCode, id: &str) -> Result<Option<Asn>, StoreError> {
        Ok(self
            .state()
            .asns
            .get(id)
            .filter(|o| &o.asn.authority == authority)
            .map(|o| o.asn.clone()))
    }

    async fn acknowledge(
        &self,
        authority: &OdsCode,
        id: &str,
        at: OffsetDateTime,
        note: Option<&AckNote>,
    ) -> Result<Option<Asn>, StoreError> {
        let mut state = self.state();
        let Some(entry) = state
            .asns
            .get_mut(id)
            .filter(|o| &o.asn.authority == authority)
        else {
            return Ok(None);
        };
        entry.asn.acknowledged_at.get_or_insert(at);
        if let (None, Some(note)) = (&entry.asn.acknowledgement_note, note) {
            entry.asn.acknowledgement_note = Some(note.as_str().to_owned());
        }
        Ok(Some(entry.asn.clone()))
    }
}

impl AsnOutbox for MemoryStore {
    async fn claim_undelivered(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Asn>, StoreError> {
        let mut state = self.state();
        let mut claimed = Vec::new();
        let mut pending: Vec<&mut OutboxState> = state
            .asns
            .values_mut()
            .filter(|o| {
                o.delivered_at.is_none() && o.claimed_until.is_none_or(|until| until <= now)
            })
            .collect();
        pending.sort_by_key(|o| o.asn.accessed_at);
        for entry in pending.into_iter().take(limit) {
            entry.claimed_until = Some(now + lease);
            claimed.push(entry.asn.clone());
        }
        Ok(claimed)
    }

    async fn begin_delivery(
        &self,
        id: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<DeliveryStart, StoreError> {
        let mut state = self.state();
        let Some(entry) = state.asns.get_mut(id) else {
            return Ok(DeliveryStart::Unknown);
        };
        if entry.delivered_at.is_some() {
            return Ok(DeliveryStart::AlreadyDelivered);
        }
        if entry.delivery_lease_until.is_some_and(|until| until > now) {
            return Ok(DeliveryStart::InProgress);
        }
        entry.delivery_lease_until = Some(now + lease);
        Ok(DeliveryStart::Proceed(Box::new(entry.asn.clone())))
    }

    async fn finish_delivery(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        if let Some(entry) = self.state().asns.get_mut(id) {
            entry.delivered_at.get_or_insert(at);
        }
        Ok(())
    }
}

impl Retention for MemoryStore {
    async fn purge(&self, today: Date) -> Result<PurgeReport, StoreError> {
        let mut state = self.state();
        let expired: Vec<PlanSortKey> = state
            .plans
            .iter()
            .filter(|(_, p)| p.purge_from.is_some_and(|from| from <= today))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            state.remove_plan(key);
        }
        let mut report = PurgeReport {
            plans: expired.len(),
            ..Default::default()
        };
        let with_plans: std::collections::HashSet<NhsNumber> =
            state.plans.values().map(|p| p.plan.nhs_number).collect();
        let orphaned: Vec<NhsNumber> = state
            .accesses
            .keys()
            .filter(|n| !with_plans.contains(n))
            .copied()
            .collect();
        for nhs in orphaned {
            report.accesses += state.accesses.remove(&nhs).map_or(0, |v| v.len());
        }
        let receipts_before = state.check_receipts.len();
        state
            .check_receipts
            .retain(|(nhs, _), _| with_plans.contains(nhs));
        report.receipts = receipts_before - state.check_receipts.len();
        let asns_before = state.asns.len();
        let cutoffs = AsnCutoffs::on(today);
        state.asns.retain(|_, o| {
            with_plans.contains(&o.asn.nhs_number)
                || o.delivered_at.is_none()
                || !cutoffs.purges(o.asn.accessed_at, o.asn.acknowledged_at.is_some())
        });
        report.notifications = asns_before - state.asns.len();
        Ok(report)
    }
}

impl CheckLedger for MemoryStore {
    async fn record_check(
        &self,
        write: &CheckWrite<'_>,
    ) -> Result<Option<AccessWrite>, StoreError> {
        let mut state = self.state();
        let (nhs_number, organisation, at) = write.receipt;
        state.note_check(nhs_number, organisation, at);
        let written = write
            .access
            .map(|new| state.record_access(new.record, new.asns, new.collapse_since));
        if let Some(event) = write.audit {
            state.audit.push(event.clone());
        }
        Ok(written)
    }
}

impl State {
    /// `AccessLog::record_access` under the caller's lock.
    fn record_access(
        &mut self,
        access: &AccessRecord,
        asns: &[Asn],
        collapse_since: OffsetDateTime,
    ) -> AccessWrite {
        let collapsed = self
            .accesses
            .get(&access.nhs_number)
            .is_some_and(|records| {
                records.iter().any(|r| {
                    r.accessed_at >= collapse_since && r.accessor.same_author(&access.accessor)
                })
            });
        if collapsed {
            return AccessWrite::Collapsed;
        }
        self.accesses
            .entry(access.nhs_number)
            .or_default()
            .push(access.clone());
        for asn in asns {
            self.asns.insert(
                asn.id.clone(),
                OutboxState {
                    asn: asn.clone(),
                    claimed_until: None,
                    delivery_lease_until: None,
                    delivered_at: None,
                },
            );
        }
        AccessWrite::Recorded
    }

    /// `CheckReceipts::note_check` under the caller's lock: the latest time wins.
    fn note_check(&mut self, nhs_number: &NhsNumber, organisation: &OdsCode, at: OffsetDateTime) {
        let slot = self
            .check_receipts
            .entry((*nhs_number, organisation.clone()))
            .or_insert(at);
        *slot = (*slot).max(at);
    }
}

impl AuditTrail for MemoryStore {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.state().audit.push(event.clone());
        Ok(())
    }
}

impl cpis_domain::FeedLog for MemoryStore {
    fn tracks_feeds(&self) -> bool {
        true
    }

    async fn record_full_snapshot(
        &self,
        authority: &OdsCode,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        let last = feeds.entry(authority.clone()).or_insert(at);
        *last = (*last).max(at);
        Ok(())
    }

    async fn last_full_snapshot(
        &self,
        authority: &OdsCode,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        Ok(feeds.get(authority).copied())
    }

    async fn last_full_snapshots(&self) -> Result<Vec<(OdsCode, OffsetDateTime)>, StoreError> {
        let feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        Ok(feeds.iter().map(|(c, at)| (c.clone(), *at)).collect())
    }
}

impl AuditReader for MemoryStore {
    async fn audit_events(&self, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let state = self.state();
        let skip = state.audit.len().saturating_sub(limit);
        Ok(state.audit[skip..].to_vec())
    }
}

/// A queue that only remembers what it was given (tests; the embedded
/// dispatcher sweeps the outbox itself).
#[derive(Debug, Clone, Default)]
pub struct RecordingQueue {
    sent: Arc<Mutex<Vec<String>>>,
}

impl RecordingQueue {
    pub fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl AsnQueue for RecordingQueue {
    async fn enqueue(&self, ids: &[String]) -> Result<(), QueueError> {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(ids);
        Ok(())
    }
}
