//! Back-off after repeated failures, and budgets per identity: the arithmetic of rate limits,
//! with the clock passed in so every decision is a pure function of its inputs.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Failures counted in a sliding window; past the threshold, the key is blocked for a back-off
/// that doubles with each further trip, up to a maximum.
#[derive(Debug)]
pub struct FailureTracker<K> {
    window: Duration,
    threshold: u32,
    base_backoff: Duration,
    max_backoff: Duration,
    entries: HashMap<K, Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    window_start: Instant,
    failures: u32,
    trips: u32,
    blocked_until: Option<Instant>,
}

/// A threshold was crossed: the key is blocked until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trip {
    pub until: Instant,
    pub trips: u32,
}

/// Keys remembered at most; the oldest quiet ones are forgotten first, so a flood of source
/// addresses cannot grow the table without bound.
const MAX_KEYS: usize = 65_536;

impl<K: Eq + Hash + Clone> FailureTracker<K> {
    pub fn new(
        window: Duration,
        threshold: u32,
        base_backoff: Duration,
        max_backoff: Duration,
    ) -> Self {
        FailureTracker {
            window,
            threshold: threshold.max(1),
            base_backoff,
            max_backoff,
            entries: HashMap::new(),
        }
    }

    /// Whether `key` is blocked at `now`.
    pub fn blocked(&self, key: &K, now: Instant) -> bool {
        self.blocked_for(key, now).is_some()
    }

    /// How much longer `key` stays blocked at `now`, if it is (for a `Retry-After`).
    pub fn blocked_for(&self, key: &K, now: Instant) -> Option<Duration> {
        self.entries
            .get(key)
            .and_then(|e| e.blocked_until)
            .filter(|&until| now < until)
            .map(|until| until - now)
    }

    /// Counts a failure; returns the trip when this failure crosses the threshold.
    pub fn failure(&mut self, key: K, now: Instant) -> Option<Trip> {
        if self.entries.len() >= MAX_KEYS && !self.entries.contains_key(&key) {
            self.forget_quiet(now);
        }
        let window = self.window;
        let entry = self.entries.entry(key).or_insert(Entry {
            window_start: now,
            failures: 0,
            trips: 0,
            blocked_until: None,
        });
        if now.saturating_duration_since(entry.window_start) > window {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures < self.threshold {
            return None;
        }
        entry.failures = 0;
        entry.window_start = now;
        entry.trips = entry.trips.saturating_add(1);
        let factor = 1u32
            .checked_shl(entry.trips.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX);
        let backoff = self
            .base_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let until = now + backoff;
        entry.blocked_until = Some(until);
        Some(Trip {
            until,
            trips: entry.trips,
        })
    }

    /// A success clears the key's failures (not an ongoing block).
    pub fn success(&mut self, key: &K) {
        if let Some(e) = self.entries.get_mut(key) {
            e.failures = 0;
        }
    }

    fn forget_quiet(&mut self, now: Instant) {
        let window = self.window;
        self.entries.retain(|_, e| {
            e.blocked_until.is_some_and(|u| now < u)
                || now.saturating_duration_since(e.window_start) <= window
        });
        if self.entries.len() >= MAX_KEYS {
            // Everything is recent: drop the lot rather than grow; the next failures rebuild it.
            self.entries.clear();
        }
    }
}

/// A budget of units (matches returned) per key per fixed period.
#[derive(Debug)]
pub struct Budget<K> {
    period: Duration,
    limit: u64,
    spent: HashMap<K, (Instant, u64)>,
}

impl<K: Eq + Hash + Clone> Budget<K> {
    pub fn new(period: Duration, limit: u64) -> Self {
        Budget {
            period,
            limit,
            spent: HashMap::new(),
        }
    }

    /// What `key` may still spend in its current period.
    pub fn remaining(&self, key: &K, now: Instant) -> u64 {
        match self.spent.get(key) {
            Some((start, spent)) if now.saturating_duration_since(*start) <= self.period => {
                self.limit.saturating_sub(*spent)
            }
            _ => self.limit,
        }
    }

    /// Records `units` spent by `key`.
    pub fn spend(&mut self, key: K, units: u64, now: Instant) {
        if self.spent.len() >= MAX_KEYS && !self.spent.contains_key(&key) {
            let period = self.period;
            self.spent
                .retain(|_, (start, _)| now.saturating_duration_since(*start) <= period);
        }
        let period = self.period;
        let entry = self.spent.entry(key).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) > period {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(units);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> FailureTracker<&'static str> {
        FailureTracker::new(
            Duration::from_secs(60),
            3,
            Duration::from_secs(10),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn blocks_after_the_threshold_and_backs_off_exponentially() {
        let mut t = tracker();
        let t0 = Instant::now();
        assert_eq!(t.failure("a", t0), None);
        assert_eq!(t.failure("a", t0), None);
        let trip = t.failure("a", t0).unwrap();
        assert_eq!(trip.until, t0 + Duration::from_secs(10));
        assert!(t.blocked(&"a", t0 + Duration::from_secs(9)));
        assert_eq!(
            t.blocked_for(&"a", t0 + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
        assert!(!t.blocked(&"a", t0 + Duration::from_secs(10)));
        assert_eq!(t.blocked_for(&"a", t0 + Duration::from_secs(10)), None);
        assert!(!t.blocked(&"b", t0), "keys are independent");
        let t1 = t0 + Duration::from_secs(11);
        t.failure("a", t1);
        t.failure("a", t1);
        assert_eq!(
            t.failure("a", t1).unwrap().until,
            t1 + Duration::from_secs(20)
        );
        let t2 = t1 + Duration::from_secs(21);
        for _ in 0..2 {
            t.failure("a", t2);
        }
        assert_eq!(
            t.failure("a", t2).unwrap().until,
            t2 + Duration::from_secs(40)
        );
        let t3 = t2 + Duration::from_secs(41);
        for _ in 0..2 {
            t.failure("a", t3);
        }
        assert_eq!(
            t.failure("a", t3).unwrap().until,
            t3 + Duration::from_secs(60),
            "capped"
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let mut t = tracker();
        let t0 = Instant::now();
        t.failure("a", t0);
        t.failure("a", t0);
        assert_eq!(t.failure("a", t0 + Duration::from_secs(61)), None);
        t.success(&"a");
        assert_eq!(t.failure("a", t0 + Duration::from_secs(62)), None);
    }

    #[test]
    fn budgets_reset_each_period() {
        let mut b = Budget::new(Duration::from_secs(3600), 100);
        let t0 = Instant::now();
        assert_eq!(b.remaining(&"ae", t0), 100);
        b.spend("ae", 60, t0);
        b.spend("ae", 30, t0 + Duration::from_secs(10));
        assert_eq!(b.remaining(&"ae", t0 + Duration::from_secs(20)), 10);
        assert_eq!(b.remaining(&"other", t0), 100);
        assert_eq!(b.remaining(&"ae", t0 + Duration::from_secs(3601)), 100);
        b.spend("ae", 5, t0 + Duration::from_secs(3601));
        assert_eq!(b.remaining(&"ae", t0 + Duration::from_secs(3602)), 95);
    }
}
