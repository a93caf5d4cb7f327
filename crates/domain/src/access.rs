//! Unscheduled accesses: the child's access history.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::{Clinician, NhsNumber, OdsCode};

/// How many accesses a check or history query shows.
pub const HISTORY_LIMIT: usize = 25;

/// A repeat access by the same author within this window is collapsed: no new
/// entry and no new notification (the DMS QueryResponse rule).
pub const COLLAPSE_WINDOW: Duration = Duration::hours(24);

/// One unscheduled access to a child's CP-IS information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    pub id: String,
    pub nhs_number: NhsNumber,
    pub accessed_at: OffsetDateTime,
    pub accessor: Accessor,
}

/// Who accessed: user or system, role, organisation and setting; exactly
/// the signed-in [`Clinician`], so the same type (it was a field-for-field
/// copy). Stored forms are unchanged: both serialised the same six fields.
pub type Accessor = Clinician;

impl Clinician {
    /// The author for the 24-hour collapse: the same user at the same organisation.
    pub fn author_key(&self) -> String {
        format!("{}|{}", self.organisation_ods, self.user_id)
    }

    /// Whether both have the same [`author_key`](Self::author_key), without
    /// building either (the in-memory store compares every stored access).
    pub fn same_author(&self, other: &Accessor) -> bool {
        self.user_id == other.user_id && self.organisation_ods == other.organisation_ods
    }
}

/// What both sides see of an access: organisation, setting and time only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessSummary {
    pub organisation_ods: OdsCode,
    pub organisation_name: String,
    pub setting: String,
    #[serde(with = "time::serde::rfc3339")]
    pub accessed_at: OffsetDateTime,
}

impl AccessRecord {
    /// What both sides see of it. Moves the strings out (the check and the
    /// history drop the record anyway), so nothing is copied.
    pub fn into_summary(self) -> AccessSummary {
        AccessSummary {
            organisation_ods: self.accessor.organisation_ods,
            organisation_name: self.accessor.organisation_name,
            setting: self.accessor.setting,
            accessed_at: self.accessed_at,
        }
    }
}

/// The history rule: the `HISTORY_LIMIT` most recent, newest first. Stores
/// may return more or in any order; every path to a caller goes through this.
pub fn most_recent(mut records: Vec<AccessRecord>) -> Vec<AccessRecord> {
    if records.len() > HISTORY_LIMIT {
        // Only the newest matter: partition them out before sorting.
        records.select_nth_unstable_by(HISTORY_LIMIT - 1, newest_first);
        records.truncate(HISTORY_LIMIT);
    }
    records.sort_by(newest_first);
    records
}

/// Newest first; ties broken by id so the order is stable across stores.
pub fn newest_first(a: &AccessRecord, b: &AccessRecord) -> std::cmp::Ordering {
    b.accessed_at
        .cmp(&a.accessed_at)
        .then_with(|| b.id.cmp(&a.id))
}
