//! Upload sequencing: which of a council's uploads may be applied, decided
//! before anything is applied, so that uploads are linearizable per council.
//!
//! Each council has one ledger head: the newest sequence claimed, the digest
//! of its body, and whether it is still being applied (with a lease) or done.
//! Stores keep the head and swap it atomically on its `version` (a conditional
//! write on DynamoDB, a transaction on SQLite); every rule about it is here.
//!
//! The rules (our decision, README "Uploads"):
//! - one upload per council is applied at a time: a newer sequence waits
//!   ([`Decision::Busy`]) while an earlier one holds a live lease;
//! - a sequence below the head is never applied: it is a replay (same body),
//!   a reuse (another body) or stale;
//! - the same sequence and body as a pending head resumes it: a crash between
//!   claim and completion neither loses the upload nor locks the sequence,
//!   and applying the same batch twice gives the state applying it once gives;
//! - a lease that ran out belongs to a holder that is gone (it is longer than
//!   any Lambda may run), so a newer sequence may take over.

use time::{Duration, OffsetDateTime};

/// How long a claimed upload may take before another sequence may take the
/// council over: longer than Lambda's hard 15-minute limit, so a holder past
/// its lease is certainly dead, not slow.
pub const UPLOAD_LEASE: Duration = Duration::minutes(16);

/// The largest sequence accepted: 2^53 - 1, the largest integer every JSON
/// client can send exactly (RFC 8259 section 6; IEEE 754 doubles).
pub const MAX_SEQUENCE: u64 = (1 << 53) - 1;

/// A council's ledger head, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerHead {
    /// The newest sequence claimed (0 after a rewind to the start).
    pub sequence: u64,
    /// SHA-256 of the claimed body, hex; empty after a rewind.
    pub digest: String,
    pub state: HeadState,
    /// Bumped by every swap; stores compare it to swap atomically.
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadState {
    /// Being applied; another sequence waits until the lease ends.
    Pending {
        lease_until: OffsetDateTime,
    },
    Done,
}

/// What to do with an upload of `sequence` given the council's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Swap the head for this one (from the head that was read), then apply.
    Claim(LedgerHead),
    /// The sequence is below or at a finished head: answer from its receipt
    /// (a replay if the digests match, a reuse if not, stale if none).
    FromReceipt { latest: u64 },
    /// Another sequence is being applied; retry after the lease.
    Busy { retry_after: Duration },
    /// The same sequence with another body is pending or done.
    Reused,
}

/// Decides an upload of `sequence` with body `digest` at `now`.
pub fn decide(
    head: Option<&LedgerHead>,
    sequence: u64,
    digest: &str,
    now: OffsetDateTime,
) -> Decision {
    let claim = |version: u64| {
        Decision::Claim(LedgerHead {
            sequence,
            digest: digest.to_owned(),
            state: HeadState::Pending {
                lease_until: now + UPLOAD_LEASE,
            },
            version,
        })
    };
    let Some(head) = head else {
        return claim(1);
    };
    let live_lease = match head.state {
        HeadState::Pending { lease_until } if lease_until > now => Some(lease_until - now),
        _ => None,
    };
    if sequence == head.sequence && !head.digest.is_empty() {
        return match (head.digest == digest, head.state) {
            (false, _) => Decision::Reused,
            // Resuming renews the lease, so a resumed upload is not taken over.
            (true, HeadState::Pending { .. }) => claim(head.version + 1),
            (true, HeadState::Done) => Decision::FromReceipt {
                latest: head.sequence,
            },
        };
    }
    if sequence <= head.sequence {
        return Decision::FromReceipt {
            latest: head.sequence,
        };
    }
    match live_lease {
        Some(retry_after) => Decision::Busy { retry_after },
        None => claim(head.version + 1),
    }
}

/// The head once `claimed` has been applied and its receipt stored.
pub fn completed(claimed: &LedgerHead) -> LedgerHead {
    LedgerHead {
        state: HeadState::Done,
        version: claimed.version + 1,
        ..claimed.clone()
    }
}

/// What a rewind may do with the council's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewindDecision {
    /// Swap to this pending head (which holds off uploads), retire receipts
    /// above the target, then swap to [`rewound`].
    Claim(LedgerHead),
    Busy {
        retry_after: Duration,
    },
    /// The target is above the newest sequence: nothing to rewind.
    AboveHead {
        latest: u64,
    },
}

/// Decides a rewind of the council's sequence to `to` (the next upload must
/// be above `to`; receipts above it are retired).
pub fn decide_rewind(head: Option<&LedgerHead>, to: u64, now: OffsetDateTime) -> RewindDecision {
    let latest = head.map_or(0, |h| h.sequence);
    if to > latest {
        return RewindDecision::AboveHead { latest };
    }
    let head = head.cloned().unwrap_or(LedgerHead {
        sequence: 0,
        digest: String::new(),
        state: HeadState::Done,
        version: 0,
    });
    if let HeadState::Pending { lease_until } = head.state {
        // A rewind that crashed holds this lease too; its retry takes over.
        if lease_until > now && !head.digest.starts_with(REWIND_MARK) {
            return RewindDecision::Busy {
                retry_after: lease_until - now,
            };
        }
    }
    RewindDecision::Claim(LedgerHead {
        sequence: head.sequence,
        digest: format!("{REWIND_MARK}{to}"),
        state: HeadState::Pending {
            lease_until: now + UPLOAD_LEASE,
        },
        version: head.version + 1,
    })
}

/// The head after a rewind to `to` finished.
pub fn rewound(claimed: &LedgerHead, to: u64) -> LedgerHead {
    LedgerHead {
        sequence: to,
        digest: String::new(),
        state: HeadState::Done,
        version: claimed.version + 1,
    }
}

/// Marks a head held by a rewind (never a hex digest).
const REWIND_MARK: &str = "rewind:";

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn head(sequence: u64, digest: &str, state: HeadState) -> LedgerHead {
        LedgerHead {
            sequence,
            digest: digest.to_owned(),
            state,
            version: 7,
        }
    }

    fn pending(until: OffsetDateTime) -> HeadState {
        HeadState::Pending { lease_until: until }
    }

    #[test]
    fn the_first_upload_claims_version_one() {
        let Decision::Claim(h) = decide(None, 5, "d", NOW) else {
            panic!("claim")
        };
        assert_eq!((h.sequence, h.version), (5, 1));
        assert_eq!(h.state, pending(NOW + UPLOAD_LEASE));
    }

    #[test]
    fn a_newer_sequence_waits_for_a_live_lease_and_takes_over_a_lapsed_one() {
        let live = head(5, "d", pending(NOW + Duration::seconds(30)));
        assert_eq!(
            decide(Some(&live), 6, "e", NOW),
            Decision::Busy {
                retry_after: Duration::seconds(30)
            }
        );
        let lapsed = head(5, "d", pending(NOW));
        assert!(matches!(decide(Some(&lapsed), 6, "e", NOW), Decision::Claim(h) if h.version == 8));
        let done = head(5, "d", HeadState::Done);
        assert!(matches!(
            decide(Some(&done), 6, "e", NOW),
            Decision::Claim(_)
        ));
    }

    #[test]
    fn an_older_sequence_is_answered_from_its_receipt_even_while_another_is_pending() {
        for state in [HeadState::Done, pending(NOW + Duration::minutes(1))] {
            assert_eq!(
                decide(Some(&head(5, "d", state)), 4, "x", NOW),
                Decision::FromReceipt { latest: 5 }
            );
        }
    }

    #[test]
    fn the_same_sequence_resumes_with_its_body_and_is_reused_with_another() {
        let live = head(5, "d", pending(NOW + Duration::minutes(1)));
        assert!(matches!(decide(Some(&live), 5, "d", NOW), Decision::Claim(h) if h.version == 8));
        assert_eq!(decide(Some(&live), 5, "x", NOW), Decision::Reused);
        let done = head(5, "d", HeadState::Done);
        assert_eq!(decide(Some(&done), 5, "x", NOW), Decision::Reused);
        assert_eq!(
            decide(Some(&done), 5, "d", NOW),
            Decision::FromReceipt { latest: 5 }
        );
    }

    #[test]
    fn after_a_rewind_the_rewound_sequence_is_answered_from_receipts() {
        let rewound = head(3, "", HeadState::Done);
        assert_eq!(
            decide(Some(&rewound), 3, "d", NOW),
            Decision::FromReceipt { latest: 3 }
        );
        assert!(matches!(
            decide(Some(&rewound), 4, "d", NOW),
            Decision::Claim(_)
        ));
    }

    #[test]
    fn a_rewind_waits_for_an_upload_and_refuses_a_target_above_the_head() {
        let live = head(9, "d", pending(NOW + Duration::seconds(5)));
        assert_eq!(
            decide_rewind(Some(&live), 2, NOW),
            RewindDecision::Busy {
                retry_after: Duration::seconds(5)
            }
        );
        assert_eq!(
            decide_rewind(Some(&head(9, "d", HeadState::Done)), 10, NOW),
            RewindDecision::AboveHead { latest: 9 }
        );
        assert_eq!(
            decide_rewind(None, 1, NOW),
            RewindDecision::AboveHead { latest: 0 }
        );
        let RewindDecision::Claim(claim) =
            decide_rewind(Some(&head(9, "d", HeadState::Done)), 2, NOW)
        else {
            panic!("claim")
        };
        // A crashed rewind's retry takes its own lease over.
        assert!(matches!(
            decide_rewind(Some(&claim), 2, NOW),
            RewindDecision::Claim(_)
        ));
        // An upload cannot slip in while the rewind holds the head.
        assert!(matches!(
            decide(Some(&claim), 10, "e", NOW),
            Decision::Busy { .. }
        ));
        assert_eq!(rewound(&claim, 2).sequence, 2);
    }

    #[test]
    fn the_sequence_bound_is_the_largest_exact_json_integer() {
        assert_eq!(MAX_SEQUENCE, 9_007_199_254_740_991);
    }
}
