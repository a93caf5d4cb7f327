//! Pages of a listing and where the next one starts. A cursor's text is
//! opaque to callers (the HTTP layer wraps it again); its one form and its
//! one parser live here, so that every store resumes a listing alike.

use std::fmt;

use time::{Date, OffsetDateTime};

use crate::dates::{iso_date, parse_iso_date};
use crate::{NhsNumber, Plan, PlanType};

/// One page of a listing; `next_cursor` is opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The page of `limit` from up to `limit + 1` items read in listing
    /// order: the one over the limit only says that another page follows,
    /// which starts after the page's last item (`cursor_of`).
    pub fn from_overfetch(
        items: Vec<T>,
        limit: usize,
        cursor_of: impl FnOnce(&T) -> String,
    ) -> Self {
        match Self::try_from_overfetch(items, limit, |last| {
            Ok::<_, std::convert::Infallible>(cursor_of(last))
        }) {
            Ok(page) => page,
            Err(never) => match never {},
        }
    }

    /// As [`Page::from_overfetch`], for a cursor that can fail to be made.
    pub fn try_from_overfetch<E>(
        mut items: Vec<T>,
        limit: usize,
        cursor_of: impl FnOnce(&T) -> Result<String, E>,
    ) -> Result<Self, E> {
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor_of).transpose()?
        } else {
            None
        };
        Ok(Self { items, next_cursor })
    }
}

impl Page<Plan> {
    /// A page of a council's plan listing, from up to `limit + 1` plans in
    /// the listing's order.
    pub fn of_plans(plans: Vec<Plan>, limit: usize) -> Self {
        Self::from_overfetch(plans, limit, |last| PlanCursor::after(last).to_string())
    }
}

/// A cursor that no listing of ours could have made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the page cursor is not valid")]
pub struct InvalidCursor;

/// Where a council's plan listing resumes: after this plan identity within
/// the council, in the listing's order (child, plan type, start date).
/// Text form: `<NHS number>.<plan type code>.<YYYY-MM-DD>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlanCursor {
    pub nhs_number: NhsNumber,
    pub plan_type: PlanType,
    pub start_date: Date,
}

impl PlanCursor {
    /// The cursor after `plan`.
    pub fn after(plan: &Plan) -> Self {
        Self {
            nhs_number: plan.nhs_number,
            plan_type: plan.plan_type,
            start_date: plan.start_date,
        }
    }

    pub fn parse(text: &str) -> Result<Self, InvalidCursor> {
        let mut parts = text.split('.');
        let (Some(nhs), Some(plan_type), Some(start), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidCursor);
        };
        Ok(Self {
            nhs_number: NhsNumber::parse(nhs).map_err(|_| InvalidCursor)?,
            plan_type: PlanType::parse(plan_type).ok_or(InvalidCursor)?,
            start_date: parse_iso_date(start).ok_or(InvalidCursor)?,
        })
    }
}

impl fmt::Display for PlanCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            self.nhs_number.expose(),
            self.plan_type.code(),
            iso_date(self.start_date)
        )
    }
}

/// Where a council's inbox resumes: after this ASN, in the inbox's order
/// (newest access first, then id descending). Text form:
/// `<access time in Unix nanoseconds>.<ASN id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxCursor {
    pub at: OffsetDateTime,
    pub id: String,
}

impl InboxCursor {
    /// The cursor after the ASN accessed `at` with `id`.
    pub fn after(at: OffsetDateTime, id: impl Into<String>) -> Self {
        Self { at, id: id.into() }
    }

    /// An instant the calendar holds and a non-empty id (ours are uuids).
    pub fn parse(text: &str) -> Result<Self, InvalidCursor> {
        let (nanos, id) = text.split_once('.').ok_or(InvalidCursor)?;
        let nanos: i128 = nanos.parse().map_err(|_| InvalidCursor)?;
        let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| InvalidCursor)?;
        if id.is_empty() {
            return Err(InvalidCursor);
        }
        Ok(Self::after(at, id))
    }

    /// Whether an ASN accessed `at` with `id` comes after the cursor in the
    /// inbox's order (newest first, then id descending).
    pub fn precedes(&self, at: OffsetDateTime, id: &str) -> bool {
        at < self.at || (at == self.at && id < self.id.as_str())
    }
}

impl fmt::Display for InboxCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.at.unix_timestamp_nanos(), self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn plan_cursors_round_trip_and_bad_ones_are_refused() {
        let cursor = PlanCursor {
            nhs_number: NhsNumber::parse("9990000018").unwrap(),
            plan_type: PlanType::LookedAfter,
            start_date: date!(2024 - 01 - 10),
        };
        assert_eq!(cursor.to_string(), "9990000018.LAC.2024-01-10");
        assert_eq!(PlanCursor::parse(&cursor.to_string()), Ok(cursor));
        for bad in [
            "",
            "x.y.z",
            "9990000018.LAC",
            "9990000010.LAC.2024-01-10",
            "9990000018.LAC.2024-01-10.x",
            "9990000018.XYZ.2024-01-10",
            "9990000018.LAC.2024-1-10",
        ] {
            assert_eq!(PlanCursor::parse(bad), Err(InvalidCursor), "{bad}");
        }
    }

    #[test]
    fn inbox_cursors_round_trip_and_bad_ones_are_refused() {
        let cursor = InboxCursor::after(datetime!(2026-03-02 10:00:00.5 UTC), "a.b");
        assert_eq!(InboxCursor::parse(&cursor.to_string()), Ok(cursor));
        for bad in [
            "",
            "123",
            "x.id",
            "123.",
            "99999999999999999999999999999.id",
        ] {
            assert_eq!(InboxCursor::parse(bad), Err(InvalidCursor), "{bad}");
        }
    }

    #[test]
    fn a_page_ends_where_the_overfetch_says() {
        let page = Page::from_overfetch(vec![1, 2, 3], 2, |last| last.to_string());
        assert_eq!(page.items, [1, 2]);
        assert_eq!(page.next_cursor.as_deref(), Some("2"));
        let last = Page::from_overfetch(vec![1, 2], 2, |last| last.to_string());
        assert_eq!(last.next_cursor, None);
    }
}
