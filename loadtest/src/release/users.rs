//! Per-user version tracking: for every user id (a dense range, e.g. 1–100 000), the version
//! that answered their latest request and how often they moved between versions.
//!
//! A sticky cohort must never move a user from canary back to stable while the weight only
//! grows; moving stable → canary is what a growing weight does. Memory is one `u64` per user
//! id (the whole sequence is never kept), updated lock-free from every worker thread.
//!
//! Requests of one user can be in flight at once and finish out of order, so observations are
//! ordered by the time the request was *sent*: an answer to a request sent before the user's
//! latest recorded one is not a move (it is counted as reordered instead).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::header::Version;

/// Most user ids a tracker holds (8 MB of state).
pub const MAX_USER_IDS: u32 = 1_000_000;

/// Bits of a user's state: send time of the latest request (ms since the start, +1 so that
/// 0 means never seen), its version, and the two move counters (saturating).
const TIME_BITS: u32 = 32;
const VERSION_SHIFT: u32 = 32;
const TO_STABLE_SHIFT: u32 = 34;
const TO_CANARY_SHIFT: u32 = 49;
const COUNT_MAX: u64 = (1 << 15) - 1;

/// What one observation did to its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// First answer of the user, or the same version as before.
    Stay,
    ToCanary,
    ToStable,
    /// Sent before the user's latest recorded request: not a move.
    Reordered,
    /// The id is outside the tracked range.
    Untracked,
}

/// Totals over every tracked user at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    /// Distinct users with at least one answer of the release.
    pub users_seen: u64,
    /// Distinct users who ever moved stable → canary.
    pub moved_to_canary: u64,
    /// Distinct users who ever moved canary → stable.
    pub moved_to_stable: u64,
    /// Moves in all (a user can move more than once).
    pub moves_to_canary: u64,
    pub moves_to_stable: u64,
    /// Users whose latest answer came from each version.
    pub on_canary_at_end: u64,
    pub on_stable_at_end: u64,
    /// Answers to requests sent before the user's latest recorded one (not counted as moves).
    pub reordered: u64,
    /// Answers whose user id was outside the tracked range.
    pub untracked: u64,
}

/// Per-user state of one release, shared by every worker.
#[derive(Debug)]
pub struct UserTracker {
    release: String,
    slots: Box<[AtomicU64]>,
    reordered: AtomicU64,
    untracked: AtomicU64,
}

fn version_bits(v: Version) -> u64 {
    match v {
        Version::Stable => 1,
        Version::Canary => 2,
    }
}

impl UserTracker {
    /// A tracker of release `release` for user ids `0..ids` (capped at [`MAX_USER_IDS`]).
    pub fn new(release: &str, ids: u32) -> UserTracker {
        let n = ids.min(MAX_USER_IDS) as usize;
        UserTracker {
            release: release.to_string(),
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            reordered: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
        }
    }

    /// The release whose answers count.
    pub fn release(&self) -> &str {
        &self.release
    }

    /// Records that `user`'s request sent `sent_ms` after the start was answered by `version`.
    pub fn observe(&self, user: u32, sent_ms: u64, version: Version) -> Move {
        let Some(slot) = self.slots.get(user as usize) else {
            self.untracked.fetch_add(1, Ordering::Relaxed);
            return Move::Untracked;
        };
        let time = sent_ms.saturating_add(1).min(u64::from(u32::MAX));
        let mut outcome = Move::Stay;
        // Only this closure decides; it runs again if another worker changed the slot meanwhile.
        let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
            let last_time = old & ((1 << TIME_BITS) - 1);
            let last_version = (old >> VERSION_SHIFT) & 0b11;
            let mut to_stable = (old >> TO_STABLE_SHIFT) & COUNT_MAX;
            let mut to_canary = (old >> TO_CANARY_SHIFT) & COUNT_MAX;
            if last_time != 0 && time < last_time {
                outcome = Move::Reordered;
                return None;
            }
            let now = version_bits(version);
            outcome = match (last_version, version) {
                (1, Version::Canary) => {
                    to_canary = (to_canary + 1).min(COUNT_MAX);
                    Move::ToCanary
                }
                (2, Version::Stable) => {
                    to_stable = (to_stable + 1).min(COUNT_MAX);
                    Move::ToStable
                }
                _ => Move::Stay,
            };
            Some(time | (now << VERSION_SHIFT) | (to_stable << TO_STABLE_SHIFT) | (to_canary << TO_CANARY_SHIFT))
        });
        if outcome == Move::Reordered {
            self.reordered.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    /// Totals over every user (read once the workers are done).
    pub fn summary(&self) -> UserSummary {
        let mut s = UserSummary {
            reordered: self.reordered.load(Ordering::Relaxed),
            untracked: self.untracked.load(Ordering::Relaxed),
            ..UserSummary::default()
        };
        for slot in self.slots.iter() {
            let v = slot.load(Ordering::Acquire);
            if v == 0 {
                continue;
            }
            let to_stable = (v >> TO_STABLE_SHIFT) & COUNT_MAX;
            let to_canary = (v >> TO_CANARY_SHIFT) & COUNT_MAX;
            s.users_seen += 1;
            s.moved_to_stable += u64::from(to_stable > 0);
            s.moved_to_canary += u64::from(to_canary > 0);
            s.moves_to_stable += to_stable;
            s.moves_to_canary += to_canary;
            match (v >> VERSION_SHIFT) & 0b11 {
                2 => s.on_canary_at_end += 1,
                _ => s.on_stable_at_end += 1,
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use Version::{Canary, Stable};

    #[test]
    fn canary_to_stable_is_counted_stable_to_canary_is_the_other_way() {
        let t = UserTracker::new("r", 10);
        // User 1: stable, stable, canary (a growing weight took them).
        assert_eq!(t.observe(1, 0, Stable), Move::Stay);
        assert_eq!(t.observe(1, 10, Stable), Move::Stay);
        assert_eq!(t.observe(1, 20, Canary), Move::ToCanary);
        assert_eq!(t.observe(1, 30, Canary), Move::Stay);
        // User 2: canary, then stable (moved back), then canary again.
        assert_eq!(t.observe(2, 5, Canary), Move::Stay);
        assert_eq!(t.observe(2, 15, Stable), Move::ToStable);
        assert_eq!(t.observe(2, 25, Canary), Move::ToCanary);
        // User 3: only stable.
        t.observe(3, 7, Stable);
        let s = t.summary();
        assert_eq!(s.users_seen, 3);
        assert_eq!((s.moved_to_canary, s.moves_to_canary), (2, 2));
        assert_eq!((s.moved_to_stable, s.moves_to_stable), (1, 1));
        assert_eq!((s.on_canary_at_end, s.on_stable_at_end), (2, 1));
        assert_eq!((s.reordered, s.untracked), (0, 0));
    }

    #[test]
    fn a_stable_to_canary_walk_never_counts_a_move_back() {
        let t = UserTracker::new("r", 1000);
        // The cohort is a prefix of the users that grows with the weight.
        for step in 1..=10u64 {
            for user in 0..1000u32 {
                let v = if u64::from(user) < step * 100 { Canary } else { Stable };
                t.observe(user, step * 1000 + u64::from(user), v);
            }
        }
        let s = t.summary();
        assert_eq!(s.users_seen, 1000);
        assert_eq!(s.moved_to_stable, 0);
        assert_eq!(s.moved_to_canary, 900, "users 100.. were on stable first");
        assert_eq!(s.on_canary_at_end, 1000);
    }

    #[test]
    fn late_answers_are_reordered_not_moves() {
        let t = UserTracker::new("r", 4);
        assert_eq!(t.observe(0, 100, Canary), Move::Stay);
        // Sent earlier (before the weight grew), answered later: not canary → stable.
        assert_eq!(t.observe(0, 90, Stable), Move::Reordered);
        assert_eq!(t.observe(0, 100, Canary), Move::Stay, "same millisecond is in order");
        assert_eq!(t.observe(9, 1, Canary), Move::Untracked);
        let s = t.summary();
        assert_eq!((s.moved_to_stable, s.reordered, s.untracked), (0, 1, 1));
    }

    #[test]
    fn counters_saturate_and_threads_agree() {
        let t = UserTracker::new("r", 2);
        for i in 0..(2 * COUNT_MAX + 4) {
            t.observe(0, i, if i % 2 == 0 { Stable } else { Canary });
        }
        let s = t.summary();
        assert_eq!((s.moves_to_canary, s.moves_to_stable), (COUNT_MAX, COUNT_MAX));

        let t = std::sync::Arc::new(UserTracker::new("r", 100));
        let handles: Vec<_> = (0..4u64)
            .map(|k| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for user in 0..100u32 {
                        t.observe(user, k, Stable);
                        t.observe(user, 10 + k, Canary);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let s = t.summary();
        assert_eq!(s.users_seen, 100);
        assert_eq!(
            s.moved_to_stable, 0,
            "every stable answer was sent before every canary one"
        );
        assert_eq!(s.on_canary_at_end, 100);
    }
}
