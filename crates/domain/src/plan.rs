//! Plans and the rules that decide when health can see them.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, Duration};

use crate::{NhsNumber, OdsCode};

/// The three groups councils share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PlanType {
    /// Child protection plan.
    #[serde(rename = "CPP")]
    ChildProtection,
    /// Looked-after child.
    #[serde(rename = "LAC")]
    LookedAfter,
    /// Unborn child protection plan, held against the mother's NHS number.
    #[serde(rename = "UCPP")]
    UnbornChildProtection,
}

impl PlanType {
    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "CPP" => Some(Self::ChildProtection),
            "LAC" => Some(Self::LookedAfter),
            "UCPP" => Some(Self::UnbornChildProtection),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::ChildProtection => "CPP",
            Self::LookedAfter => "LAC",
            Self::UnbornChildProtection => "UCPP",
        }
    }

    /// The plan type's name as people read it (and FHIR's `display`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ChildProtection => "Child Protection Plan",
            Self::LookedAfter => "Looked After Child",
            Self::UnbornChildProtection => "Unborn Child Protection Plan",
        }
    }
}

impl fmt::Display for PlanType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A plan's identity (our decision): council, NHS number, plan type, start date.
/// Re-uploading the same identity updates the plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlanKey {
    pub authority: OdsCode,
    pub nhs_number: NhsNumber,
    pub plan_type: PlanType,
    pub start_date: Date,
}

/// One plan as a council shared it. Nothing else about the child is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub authority: OdsCode,
    pub nhs_number: NhsNumber,
    pub plan_type: PlanType,
    pub start_date: Date,
    pub end_date: Option<Date>,
    pub delete_date: Option<Date>,
    /// UCPP only: expected date of delivery.
    pub due_date: Option<Date>,
    /// The council's own case reference; returned only to that council.
    pub local_id: Option<String>,
    /// The sequence (the LA Upload file id) of the upload that last stored
    /// the plan: what an ASN file names as `referredToLAUploadFile`. `None`
    /// for a plan stored before it was kept.
    pub upload_sequence: Option<u64>,
}

/// How long plans stay visible after they end. Configuration, not code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisibilityPolicy {
    /// CPP and LAC stay visible this many days after the end date (default 365).
    pub tail_days: i64,
    /// UCPP stays visible this many days after the earlier of due date and end date (default 28).
    pub unborn_tail_days: i64,
}

impl Default for VisibilityPolicy {
    fn default() -> Self {
        Self {
            tail_days: 365,
            unborn_tail_days: 28,
        }
    }
}

impl Plan {
    pub fn key(&self) -> PlanKey {
        PlanKey {
            authority: self.authority.clone(),
            nhs_number: self.nhs_number,
            plan_type: self.plan_type,
            start_date: self.start_date,
        }
    }

    /// The last day on which this plan is visible, or `None` while it is open
    /// (visible until withdrawn or deleted).
    ///
    /// Boundaries: a CPP/LAC ended on day E is visible through E + tail_days and
    /// not on the day after; a delete date D hides the plan from D itself.
    pub fn last_visible_day(&self, policy: &VisibilityPolicy) -> Option<Date> {
        let tail_end = match self.plan_type {
            PlanType::ChildProtection | PlanType::LookedAfter => {
                self.end_date.map(|end| add_days(end, policy.tail_days))
            }
            PlanType::UnbornChildProtection => {
                let anchor = match (self.due_date, self.end_date) {
                    (Some(due), Some(end)) => Some(due.min(end)),
                    (one, other) => one.or(other),
                };
                anchor.map(|a| add_days(a, policy.unborn_tail_days))
            }
        };
        let before_delete = self.delete_date.map(|d| d.previous_day().unwrap_or(d));
        match (tail_end, before_delete) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (one, other) => one.or(other),
        }
    }

    /// Whether a check made on `today` shows this plan.
    pub fn is_visible_on(&self, today: Date, policy: &VisibilityPolicy) -> bool {
        if today < self.start_date {
            return false;
        }
        if self.delete_date.is_some_and(|d| today >= d) {
            return false;
        }
        self.last_visible_day(policy)
            .is_none_or(|last| today <= last)
    }

    /// The first day on which the plan can never become visible again: from then
    /// on a store must purge it (DynamoDB TTL, or the embedded sweep).
    pub fn purge_from(&self, policy: &VisibilityPolicy) -> Option<Date> {
        self.last_visible_day(policy).map(|last| add_days(last, 1))
    }
}

fn add_days(date: Date, days: i64) -> Date {
    date.checked_add(Duration::days(days)).unwrap_or(Date::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn plan(plan_type: PlanType) -> Plan {
        Plan {
            upload_sequence: None,
            authority: OdsCode::parse("E09000033").unwrap(),
            nhs_number: NhsNumber::parse("9990000018").unwrap(),
            plan_type,
            start_date: date!(2024 - 01 - 10),
            end_date: None,
            delete_date: None,
            due_date: None,
            local_id: None,
        }
    }

    fn day(base: Date, n: i64) -> Date {
        base + Duration::days(n)
    }

    #[test]
    fn open_plans_are_visible_from_start_with_no_end() {
        let p = plan(PlanType::ChildProtection);
        let policy = VisibilityPolicy::default();
        assert!(!p.is_visible_on(date!(2024 - 01 - 09), &policy));
        assert!(p.is_visible_on(date!(2024 - 01 - 10), &policy));
        assert!(p.is_visible_on(date!(2099 - 01 - 10), &policy));
        assert_eq!(p.purge_from(&policy), None);
    }

    #[test]
    fn cpp_and_lac_visible_through_day_365_after_end_not_366() {
        let policy = VisibilityPolicy::default();
        for t in [PlanType::ChildProtection, PlanType::LookedAfter] {
            let end = date!(2024 - 06 - 30);
            let p = Plan {
                end_date: Some(end),
                ..plan(t)
            };
            assert!(p.is_visible_on(day(end, 364), &policy), "{t} day 364");
            assert!(p.is_visible_on(day(end, 365), &policy), "{t} day 365");
            assert!(!p.is_visible_on(day(end, 366), &policy), "{t} day 366");
            assert_eq!(p.purge_from(&policy), Some(day(end, 366)));
        }
    }

    #[test]
    fn tail_is_configurable() {
        let policy = VisibilityPolicy {
            tail_days: 30,
            ..Default::default()
        };
        let end = date!(2024 - 06 - 30);
        let p = Plan {
            end_date: Some(end),
            ..plan(PlanType::LookedAfter)
        };
        assert!(p.is_visible_on(day(end, 30), &policy));
        assert!(!p.is_visible_on(day(end, 31), &policy));
    }

    #[test]
    fn ucpp_visible_through_day_28_after_due_date_not_29() {
        let policy = VisibilityPolicy::default();
        let due = date!(2024 - 09 - 01);
        let p = Plan {
            due_date: Some(due),
            ..plan(PlanType::UnbornChildProtection)
        };
        assert!(p.is_visible_on(day(due, 27), &policy));
        assert!(p.is_visible_on(day(due, 28), &policy));
        assert!(!p.is_visible_on(day(due, 29), &policy));
    }

    #[test]
    fn ucpp_uses_the_earlier_of_due_and_end_date() {
        let policy = VisibilityPolicy::default();
        let end = date!(2024 - 08 - 01);
        let due = date!(2024 - 09 - 01);
        let p = Plan {
            due_date: Some(due),
            end_date: Some(end),
            ..plan(PlanType::UnbornChildProtection)
        };
        assert!(p.is_visible_on(day(end, 28), &policy));
        assert!(!p.is_visible_on(day(end, 29), &policy));
        let late_end = Plan {
            end_date: Some(day(due, 10)),
            ..p.clone()
        };
        assert!(late_end.is_visible_on(day(due, 28), &policy));
        assert!(!late_end.is_visible_on(day(due, 29), &policy));
        let end_only = Plan {
            due_date: None,
            end_date: Some(end),
            ..p
        };
        assert!(end_only.is_visible_on(day(end, 28), &policy));
        assert!(!end_only.is_visible_on(day(end, 29), &policy));
    }

    #[test]
    fn delete_date_hides_the_plan_from_that_day() {
        let policy = VisibilityPolicy::default();
        let delete = date!(2024 - 03 - 01);
        let p = Plan {
            delete_date: Some(delete),
            ..plan(PlanType::ChildProtection)
        };
        assert!(p.is_visible_on(day(delete, -1), &policy));
        assert!(!p.is_visible_on(delete, &policy));
        assert!(!p.is_visible_on(day(delete, 1), &policy));
        assert_eq!(p.purge_from(&policy), Some(delete));
    }

    #[test]
    fn delete_date_wins_over_a_longer_tail() {
        let policy = VisibilityPolicy::default();
        let end = date!(2024 - 03 - 01);
        let delete = date!(2024 - 04 - 01);
        let p = Plan {
            end_date: Some(end),
            delete_date: Some(delete),
            ..plan(PlanType::LookedAfter)
        };
        assert!(!p.is_visible_on(delete, &policy));
        assert_eq!(p.purge_from(&policy), Some(delete));
    }
}
