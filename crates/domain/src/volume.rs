//! The enumeration watch (hazard H6, brief section 8): one caller checking
//! far more children than any clinician or care-setting system would is told
//! to operators, once per window. It never refuses a check: a clinician in an
//! emergency must not be stopped by a counter, so the answer to enumeration
//! is detection and review against the audit trail, not a block.

use std::collections::HashMap;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// When one caller's checks are unusual.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumePolicy {
    /// More checks than this by one caller within `window` is unusual.
    pub threshold: u32,
    pub window: Duration,
}

impl Default for VolumePolicy {
    /// A busy emergency department registers a few dozen patients an hour;
    /// a hundred checks by one caller in ten minutes is not care.
    fn default() -> Self {
        Self {
            threshold: 100,
            window: Duration::minutes(10),
        }
    }
}

/// Callers tracked at most; past this, callers whose window has ended are forgotten.
const TRACKED_CALLERS: usize = 10_000;

/// Counts checks per caller in fixed windows.
#[derive(Debug)]
pub struct VolumeWatch {
    policy: VolumePolicy,
    callers: Mutex<HashMap<String, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: OffsetDateTime,
    checks: u32,
}

impl VolumeWatch {
    pub fn new(policy: VolumePolicy) -> Self {
        Self {
            policy,
            callers: Mutex::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> VolumePolicy {
        self.policy
    }

    /// Counts one check by `caller` at `now`. Returns the count exactly when
    /// it has just passed the threshold in the current window, so each
    /// unusual caller is reported once per window.
    pub fn observe(&self, caller: &str, now: OffsetDateTime) -> Option<u32> {
        let mut callers = self.callers.lock().unwrap_or_else(|e| e.into_inner());
        if callers.len() >= TRACKED_CALLERS && !callers.contains_key(caller) {
            let window = self.policy.window;
            callers.retain(|_, w| now - w.started < window);
        }
        let entry = callers.entry(caller.to_owned()).or_insert(Window {
            started: now,
            checks: 0,
        });
        if now - entry.started >= self.policy.window || now < entry.started {
            *entry = Window {
                started: now,
                checks: 0,
            };
        }
        entry.checks = entry.checks.saturating_add(1);
        (entry.checks == self.policy.threshold.saturating_add(1)).then_some(entry.checks)
    }
}

impl Default for VolumeWatch {
    fn default() -> Self {
        Self::new(VolumePolicy::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-25 10:00 UTC);

    fn watch(threshold: u32) -> VolumeWatch {
        VolumeWatch::new(VolumePolicy {
            threshold,
            window: Duration::minutes(10),
        })
    }

    #[test]
    fn a_caller_is_reported_once_when_passing_the_threshold_in_a_window() {
        let w = watch(3);
        let seen: Vec<Option<u32>> = (0..6)
            .map(|i| w.observe("dr-1", T0 + Duration::seconds(i)))
            .collect();
        assert_eq!(seen, [None, None, None, Some(4), None, None]);
    }

    #[test]
    fn callers_are_counted_apart_and_windows_start_again() {
        let w = watch(2);
        for i in 0..2 {
            assert_eq!(w.observe("dr-1", T0 + Duration::seconds(i)), None);
            assert_eq!(w.observe("dr-2", T0 + Duration::seconds(i)), None);
        }
        // A new window: the count starts again.
        let later = T0 + Duration::minutes(10);
        assert_eq!(w.observe("dr-1", later), None);
        assert_eq!(w.observe("dr-1", later), None);
        assert_eq!(w.observe("dr-1", later), Some(3));
        // dr-2 within its first window passes now.
        assert_eq!(w.observe("dr-2", T0 + Duration::minutes(9)), Some(3));
    }

    #[test]
    fn a_clock_moved_back_starts_a_new_window_instead_of_counting_forever() {
        let w = watch(1);
        assert_eq!(w.observe("dr-1", T0), None);
        assert_eq!(w.observe("dr-1", T0 - Duration::hours(1)), None);
        assert_eq!(w.observe("dr-1", T0 - Duration::hours(1)), Some(2));
    }

    #[test]
    fn the_watch_forgets_ended_windows_when_it_is_full() {
        let w = watch(5);
        for i in 0..TRACKED_CALLERS {
            w.observe(&format!("caller-{i}"), T0);
        }
        w.observe("newcomer", T0 + Duration::minutes(11));
        let tracked = w.callers.lock().unwrap().len();
        assert_eq!(tracked, 1, "only the newcomer's window is current");
    }
}
