//! Feed freshness (hazard H2's residual, issue 17 finding 7): a council whose
//! uploads stop goes unnoticed while its plans go stale both ways (new plans
//! missing, ended plans still shown). Each council's last accepted full
//! snapshot is recorded; the council sees the time since it
//! (`GET /v1/authority`), and the embedded service logs a warning for every
//! council past a threshold (default [`DEFAULT_STALE_AFTER`]).
//!
//! A full snapshot, not any upload: only a full snapshot proves the council's
//! whole caseload was sent (a trickle of deltas can hide a broken extract).

use std::future::Future;

use time::{Duration, OffsetDateTime};

use crate::acknowledgement::{Acknowledgement, FileOutcome, UploadMode};
use crate::ports::StoreError;
use crate::OdsCode;

/// How long a council may go without an accepted full snapshot before the
/// embedded service warns: two days, so that one missed nightly extract is
/// tolerated and a second is not. Configurable (`cpis serve
/// --feed-stale-after-hours`).
pub const DEFAULT_STALE_AFTER: Duration = Duration::hours(48);

/// Whether an upload counts as the council's feed arriving: a full snapshot
/// that loaded at least one record (`CPF02` or `CPF03`), and not a replay of
/// one already counted. A malformed (`CPF01`) or wholly rejected (`CPF04`)
/// snapshot says the feed is broken, not fresh.
pub fn is_accepted_full_snapshot(acknowledgement: &Acknowledgement, replayed: bool) -> bool {
    !replayed
        && acknowledgement.mode == UploadMode::Full
        && matches!(
            acknowledgement.file_outcome,
            FileOutcome::AllLoaded | FileOutcome::Partial
        )
}

/// The time since `last` at `now`, never negative (a clock stepped back).
pub fn age(last: OffsetDateTime, now: OffsetDateTime) -> Duration {
    (now - last).max(Duration::ZERO)
}

/// How fresh one council's feed is at some instant: its last accepted full
/// snapshot and the time since (what `GET /v1/authority` and the portal's
/// uploads page show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub last_full_snapshot_at: Option<OffsetDateTime>,
    /// [`age`] of the last full snapshot; `None` if there has been none.
    pub age: Option<Duration>,
}

impl Freshness {
    /// The feed whose last accepted full snapshot was `last`, at `now`.
    pub fn at(last: Option<OffsetDateTime>, now: OffsetDateTime) -> Self {
        Self {
            last_full_snapshot_at: last,
            age: last.map(|at| age(at, now)),
        }
    }

    /// Whether the council should be told its feed has stopped: no
    /// accepted full snapshot yet, or the last one older than
    /// `stale_after` (the rule of [`stale_feeds`]: at the threshold itself
    /// it is still fresh).
    pub fn is_stale(&self, stale_after: Duration) -> bool {
        self.age.is_none_or(|age| age > stale_after)
    }
}

/// The councils among `feeds` (council, last accepted full snapshot) whose
/// feed is older than `stale_after` at `now`, with its age, oldest first.
pub fn stale_feeds(
    feeds: &[(OdsCode, OffsetDateTime)],
    now: OffsetDateTime,
    stale_after: Duration,
) -> Vec<(OdsCode, Duration)> {
    let mut stale: Vec<(OdsCode, Duration)> = feeds
        .iter()
        .map(|(council, last)| (council.clone(), age(*last, now)))
        .filter(|(_, age)| *age > stale_after)
        .collect();
    stale.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    stale
}

/// When each council last sent an accepted full snapshot.
///
/// The default methods are for a store that does not keep the log yet (the
/// DynamoDB store): it says so through [`FeedLog::tracks_feeds`], records
/// nothing, and reports nothing, so no caller mistakes "not tracked" for
/// "never sent".
pub trait FeedLog: Send + Sync {
    /// Whether this store keeps the log.
    fn tracks_feeds(&self) -> bool {
        false
    }

    /// Records an accepted full snapshot at `at`; an earlier `at` than the
    /// one recorded leaves the later one.
    fn record_full_snapshot(
        &self,
        _authority: &OdsCode,
        _at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// The council's last accepted full snapshot, if any.
    fn last_full_snapshot(
        &self,
        _authority: &OdsCode,
    ) -> impl Future<Output = Result<Option<OffsetDateTime>, StoreError>> + Send {
        async { Ok(None) }
    }

    /// Every council with a recorded full snapshot, and its last one.
    fn last_full_snapshots(
        &self,
    ) -> impl Future<Output = Result<Vec<(OdsCode, OffsetDateTime)>, StoreError>> + Send {
        async { Ok(Vec::new()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn ack(mode: UploadMode, file_outcome: FileOutcome) -> Acknowledgement {
        Acknowledgement {
            sequence: 1,
            mode,
            file_outcome,
            loaded: 0,
            rejected: 0,
            withdrawn: 0,
            records: Vec::new(),
            withdrawals: Vec::new(),
            withdrawals_held_back: None,
        }
    }

    #[test]
    fn only_a_full_snapshot_that_loaded_something_counts_and_only_once() {
        use FileOutcome::*;
        for (mode, outcome, replayed, counts) in [
            (UploadMode::Full, AllLoaded, false, true),
            (UploadMode::Full, Partial, false, true),
            (UploadMode::Full, AllLoaded, true, false),
            (UploadMode::Full, NoneLoaded, false, false),
            (UploadMode::Full, Malformed, false, false),
            (UploadMode::Delta, AllLoaded, false, false),
            (UploadMode::Delta, Partial, false, false),
        ] {
            assert_eq!(
                is_accepted_full_snapshot(&ack(mode, outcome), replayed),
                counts,
                "{mode:?} {outcome:?} replayed={replayed}"
            );
        }
    }

    #[test]
    fn a_feed_is_stale_only_past_the_threshold() {
        let a = OdsCode::parse("E09000033").unwrap();
        let b = OdsCode::parse("E06000001").unwrap();
        let c = OdsCode::parse("E08000025").unwrap();
        let now = datetime!(2026-03-04 10:00 UTC);
        let feeds = [
            (a.clone(), now - Duration::hours(48)), // exactly at the threshold: fresh
            (b.clone(), now - Duration::hours(48) - Duration::seconds(1)),
            (c.clone(), now - Duration::days(9)),
        ];
        assert_eq!(
            stale_feeds(&feeds, now, DEFAULT_STALE_AFTER),
            vec![
                (c, Duration::days(9)),
                (b, Duration::hours(48) + Duration::seconds(1))
            ]
        );
        // A clock stepped back is not a negative age.
        assert_eq!(age(now + Duration::hours(1), now), Duration::ZERO);
        // One council's view holds to the same threshold; never sent is stale.
        let at_threshold = Freshness::at(Some(now - Duration::hours(48)), now);
        assert!(!at_threshold.is_stale(DEFAULT_STALE_AFTER));
        let past = Freshness::at(Some(now - Duration::hours(48) - Duration::seconds(1)), now);
        assert!(past.is_stale(DEFAULT_STALE_AFTER));
        assert!(Freshness::at(None, now).is_stale(DEFAULT_STALE_AFTER));
    }
}
