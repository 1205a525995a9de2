// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//! ARENA PATCH 5 (vendor/README.md): idle upstream connections kept without a task per connection.
//!
//! Stock pingora parks every released connection in `pingora_pool::ConnectionPool` behind an
//! `Arc<Mutex<Stream>>` and spawns a task that watches it (read readiness, the idle timeout, a
//! oneshot for reuse and a `Notify` for eviction): per proxied request one task spawn, a oneshot
//! and a `Notify` allocated, a timer armed and two extra task wake-ups. Here an idle connection is
//! a plain entry in a per-peer stack. Reuse pops the most recently released one and checks it on
//! the spot: its idle deadline, then the caller's test (the same non-blocking one-byte read stock
//! pingora does — a peer's FIN or stray bytes were already recorded by the reactor while nobody
//! watched). One sweeper per pool closes the connections whose idle timeout passed or whose peer
//! hung up, at the earliest deadline and at least once a second; the least recently released
//! connection is pushed out when the pool is full, as with stock pingora's LRU.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a connection whose peer hung up may stay parked at most before the sweeper closes it.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(1);

struct Parked<S> {
    stream: S,
    since: Instant,
    deadline: Option<Instant>,
}

struct Inner<S> {
    /// Per reuse key, oldest first: reuse takes from the back (the warmest connection), the LRU
    /// and the sweeper from the front.
    by_key: HashMap<u64, VecDeque<Parked<S>>>,
    len: usize,
    /// The earliest idle deadline the sweeper is due at (None: none known).
    due: Option<Instant>,
    /// Whether a sweeper task is running for this pool.
    sweeping: bool,
}

/// What [IdlePool::put] did beyond parking the connection.
pub(crate) struct Put<S> {
    /// The least recently released connection, pushed out because the pool was full, and how
    /// long it had been idle (stock pingora reports eviction to the keep-alive pool callback).
    pub evicted: Option<(S, Duration)>,
    /// No sweeper runs yet: the caller starts one (and calls [IdlePool::sweeper_ended] when
    /// it ends).
    pub start_sweeper: bool,
}

/// Idle connections by reuse key, at most `capacity` in all.
pub(crate) struct IdlePool<S> {
    inner: Mutex<Inner<S>>,
    capacity: usize,
    /// Woken when a connection's deadline is earlier than the one the sweeper sleeps until.
    pub(crate) wake: Notify,
}

impl<S> IdlePool<S> {
    pub(crate) fn new(capacity: usize) -> Self {
        IdlePool {
            inner: Mutex::new(Inner {
                by_key: HashMap::new(),
                len: 0,
                due: None,
                sweeping: false,
            }),
            capacity,
            wake: Notify::new(),
        }
    }

    /// Parks `stream` under `key`, idle from `now`, closed by the sweeper after `timeout`.
    pub(crate) fn put(
        &self,
        key: u64,
        stream: S,
        now: Instant,
        timeout: Option<Duration>,
    ) -> Put<S> {
        if self.capacity == 0 {
            return Put {
                evicted: Some((stream, Duration::ZERO)),
                start_sweeper: false,
            };
        }
        let deadline = timeout.map(|t| now + t);
        let mut inner = self.inner.lock();
        let evicted = if inner.len >= self.capacity {
            inner
                .pop_oldest()
                .map(|p| (p.stream, now.saturating_duration_since(p.since)))
        } else {
            None
        };
        inner.by_key.entry(key).or_default().push_back(Parked {
            stream,
            since: now,
            deadline,
        });
        inner.len += 1;
        let earlier = match (deadline, inner.due) {
            (Some(d), Some(due)) => d < due,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier {
            inner.due = deadline;
        }
        let start_sweeper = !inner.sweeping;
        inner.sweeping = true;
        drop(inner);
        if earlier && !start_sweeper {
            self.wake.notify_one();
        }
        Put {
            evicted,
            start_sweeper,
        }
    }

    /// The most recently released connection under `key` that is within its idle timeout and
    /// passes `usable`; the ones that fail are closed (dropped) on the way.
    pub(crate) fn take(
        &self,
        key: u64,
        now: Instant,
        mut usable: impl FnMut(&mut S) -> bool,
    ) -> Option<S> {
        loop {
            let parked = {
                let mut inner = self.inner.lock();
                let list = inner.by_key.get_mut(&key)?;
                let parked = list.pop_back();
                if list.is_empty() {
                    inner.by_key.remove(&key);
                }
                let parked = parked?;
                inner.len -= 1;
                parked
            };
            // checked (and dropped when stale) outside the lock: the test may read the socket
            let Parked {
                mut stream,
                deadline,
                ..
            } = parked;
            if deadline.is_none_or(|d| now < d) && usable(&mut stream) {
                return Some(stream);
            }
        }
    }

    /// Closes every connection past its idle deadline or failing `usable`; returns when the
    /// sweeper should look again (the earliest remaining deadline, at most [SWEEP_EVERY] away).
    pub(crate) fn sweep(&self, now: Instant, mut usable: impl FnMut(&mut S) -> bool) -> Instant {
        let mut closed = Vec::new();
        let mut inner = self.inner.lock();
        let mut due: Option<Instant> = None;
        let mut removed = 0;
        inner.by_key.retain(|_, list| {
            let before = list.len();
            let kept: VecDeque<Parked<S>> = list
                .drain(..)
                .filter_map(|mut p| {
                    if p.deadline.is_none_or(|d| now < d) && usable(&mut p.stream) {
                        if let Some(d) = p.deadline {
                            due = Some(due.map_or(d, |e| e.min(d)));
                        }
                        Some(p)
                    } else {
                        closed.push(p);
                        None
                    }
                })
                .collect();
            removed += before - kept.len();
            *list = kept;
            !list.is_empty()
        });
        inner.len -= removed;
        inner.due = due;
        drop(inner);
        drop(closed); // the sockets close outside the lock
        let cap = now + SWEEP_EVERY;
        due.map_or(cap, |d| d.min(cap))
    }

    /// The sweeper task ended (its runtime shut down): the next `put` starts another.
    pub(crate) fn sweeper_ended(&self) {
        self.inner.lock().sweeping = false;
    }

    /// Connections parked now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().len
    }
}

impl<S> Inner<S> {
    /// Removes the least recently released connection of all keys (each key's list is oldest
    /// first, so it is the oldest of the fronts; the pool is full only now and then, and keys
    /// are peers: a scan is cheap).
    fn pop_oldest(&mut self) -> Option<Parked<S>> {
        let key = *self
            .by_key
            .iter()
            .filter_map(|(k, list)| list.front().map(|p| (k, p.since)))
            .min_by_key(|(_, since)| *since)?
            .0;
        let list = self.by_key.get_mut(&key)?;
        let oldest = list.pop_front();
        if list.is_empty() {
            self.by_key.remove(&key);
        }
        if oldest.is_some() {
            self.len -= 1;
        }
        oldest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: &mut u32) -> bool {
        true
    }

    #[test]
    fn reuse_takes_the_warmest_connection_of_the_key() {
        let pool = IdlePool::new(8);
        let t = Instant::now();
        assert!(pool.put(1, 10, t, None).start_sweeper);
        assert!(!pool.put(1, 11, t, None).start_sweeper);
        pool.put(2, 20, t, None);
        assert_eq!(pool.take(1, t, ok), Some(11));
        assert_eq!(pool.take(1, t, ok), Some(10));
        assert_eq!(pool.take(1, t, ok), None);
        assert_eq!(pool.take(2, t, ok), Some(20));
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn stale_or_broken_connections_are_never_handed_out() {
        let pool = IdlePool::new(8);
        let t = Instant::now();
        pool.put(1, 1, t, Some(Duration::from_secs(5)));
        pool.put(1, 2, t, None);
        pool.put(1, 3, t, Some(Duration::from_secs(60)));
        // 3 fails its test (the peer hung up), 2 passes
        assert_eq!(pool.take(1, t, |s| *s != 3), Some(2));
        // 1 is past its deadline: closed, not returned
        assert_eq!(pool.take(1, t + Duration::from_secs(5), ok), None);
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn a_full_pool_pushes_out_the_least_recently_released() {
        let pool = IdlePool::new(2);
        let t = Instant::now();
        pool.put(1, 1, t, None);
        pool.put(2, 2, t + Duration::from_millis(1), None);
        let put = pool.put(1, 3, t + Duration::from_millis(5), None);
        assert_eq!(put.evicted, Some((1, Duration::from_millis(5))));
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.take(1, t, ok), Some(3));
        assert_eq!(pool.take(2, t, ok), Some(2));
        let none = IdlePool::new(0);
        assert_eq!(none.put(1, 9, t, None).evicted, Some((9, Duration::ZERO)));
    }

    #[test]
    fn the_sweeper_closes_expired_and_hung_up_connections_and_says_when_to_look_again() {
        let pool = IdlePool::new(8);
        let t = Instant::now();
        pool.put(1, 1, t, Some(Duration::from_millis(100)));
        pool.put(1, 2, t, Some(Duration::from_millis(300)));
        pool.put(2, 3, t, None);
        pool.put(2, 4, t, None);
        // nothing due yet: look again at the earliest deadline
        assert_eq!(pool.sweep(t, ok), t + Duration::from_millis(100));
        assert_eq!(pool.len(), 4);
        // 1 expired, 4's peer hung up
        let next = pool.sweep(t + Duration::from_millis(100), |s| *s != 4);
        assert_eq!(next, t + Duration::from_millis(300));
        assert_eq!(pool.len(), 2);
        // no deadline left: at most a second away
        let later = t + Duration::from_millis(300);
        assert_eq!(pool.sweep(later, ok), later + SWEEP_EVERY);
        assert_eq!(pool.take(2, later, ok), Some(3));
        assert_eq!(pool.take(1, later, ok), None);
    }

    #[test]
    fn an_earlier_deadline_wakes_a_running_sweeper() {
        let pool = IdlePool::new(8);
        let t = Instant::now();
        assert!(
            pool.put(1, 1, t, Some(Duration::from_secs(10)))
                .start_sweeper
        );
        // a later deadline does not, an earlier one does (a stored permit)
        pool.put(1, 2, t, Some(Duration::from_secs(20)));
        assert!(futures::FutureExt::now_or_never(pool.wake.notified()).is_none());
        pool.put(1, 3, t, Some(Duration::from_secs(1)));
        assert!(futures::FutureExt::now_or_never(pool.wake.notified()).is_some());
        pool.sweeper_ended();
        assert!(pool.put(1, 4, t, None).start_sweeper);
    }
}
