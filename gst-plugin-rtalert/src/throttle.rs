//! Alert throttling: cooldown per key, burst detection per rule and a global rate limit,
//! all in stream time. Nothing is dropped silently: every suppression is counted, and the
//! next alert emitted for a key says how many were suppressed for it since the last one.

use crate::engine::Key;
use crate::rules::{RateLimit, Rule};
use std::collections::{BTreeMap, HashMap, VecDeque};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub emitted: u64,
    pub suppressed_cooldown: u64,
    pub suppressed_burst: u64,
    pub suppressed_rate: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the alert; `suppressed` alerts of its key were held back since the last one.
    Emit { suppressed: u64 },
    /// Send one burst alert instead: `count` alerts of the rule within its window.
    Burst { count: u32, suppressed: u64 },
    /// Held back (and counted).
    Suppress,
}

#[derive(Default)]
struct KeyState {
    last_emit: Option<u64>,
    suppressed: u64,
    /// Whether the current activation's start went out (its end goes out only then).
    start_emitted: bool,
}

#[derive(Default)]
struct BurstState {
    times: VecDeque<u64>,
    until: u64,
}

struct Bucket {
    tokens: f64,
    capacity: f64,
    per_ns: f64,
    last: u64,
}

impl Bucket {
    fn take(&mut self, t: u64) -> bool {
        let t = t.max(self.last);
        self.tokens = (self.tokens + (t - self.last) as f64 * self.per_ns).min(self.capacity);
        self.last = t;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Default)]
pub struct Throttle {
    keys: BTreeMap<Key, KeyState>,
    bursts: HashMap<usize, BurstState>,
    bucket: Option<Bucket>,
    pub counters: Counters,
}

impl Throttle {
    pub fn new(rate: Option<RateLimit>) -> Self {
        Throttle {
            bucket: rate.map(|r| Bucket {
                tokens: r.burst as f64,
                capacity: r.burst as f64,
                per_ns: r.per_minute / 60e9,
                last: 0,
            }),
            ..Default::default()
        }
    }

    /// Keeps counters and rate-limit tokens but forgets per-rule state (after a reload).
    pub fn reset_rules(&mut self) {
        self.keys.clear();
        self.bursts.clear();
    }

    /// Forgets every time it holds (cooldowns, burst windows, the rate limit's last refill)
    /// but keeps counts and tokens: running time went back to 0 (a flush).
    pub fn restart_clock(&mut self) {
        for ks in self.keys.values_mut() {
            ks.last_emit = None;
        }
        self.bursts.clear();
        if let Some(b) = self.bucket.as_mut() {
            b.last = 0;
        }
    }

    fn suppress(&mut self, key: &Key) -> Verdict {
        let ks = self.keys.entry(key.clone()).or_default();
        ks.suppressed += 1;
        ks.start_emitted = false;
        Verdict::Suppress
    }

    /// A condition of `rule` started holding at `t`.
    pub fn start(&mut self, key: &Key, rule: &Rule, t: u64) -> Verdict {
        let ks = self.keys.entry(key.clone()).or_default();
        if ks
            .last_emit
            .is_some_and(|last| t < last.saturating_add(rule.cooldown.ns()))
        {
            self.counters.suppressed_cooldown += 1;
            return self.suppress(key);
        }
        let mut burst_count = None;
        if let Some(b) = rule.burst {
            let bs = self.bursts.entry(key.0).or_default();
            if t < bs.until {
                self.counters.suppressed_burst += 1;
                return self.suppress(key);
            }
            let window = b.window.ns();
            while bs
                .times
                .front()
                .is_some_and(|&s| s.saturating_add(window) <= t)
            {
                bs.times.pop_front();
            }
            if bs.times.len() as u32 + 1 > b.count {
                burst_count = Some(bs.times.len() as u32 + 1);
                bs.times.clear();
                bs.until = t.saturating_add(window);
            }
        }
        if !self.bucket.as_mut().is_none_or(|b| b.take(t)) {
            self.counters.suppressed_rate += 1;
            return self.suppress(key);
        }
        if burst_count.is_none()
            && let Some(bs) = self.bursts.get_mut(&key.0)
        {
            bs.times.push_back(t);
        }
        let ks = self.keys.get_mut(key).expect("inserted above");
        ks.last_emit = Some(t);
        ks.start_emitted = true;
        let suppressed = std::mem::take(&mut ks.suppressed);
        self.counters.emitted += 1;
        match burst_count {
            Some(count) => Verdict::Burst { count, suppressed },
            None => Verdict::Emit { suppressed },
        }
    }

    /// A condition stopped holding at `t`: its end goes out if its start did.
    pub fn ended(&mut self, key: &Key, t: u64) -> Verdict {
        let Some(ks) = self.keys.get_mut(key).filter(|k| k.start_emitted) else {
            return Verdict::Suppress;
        };
        ks.start_emitted = false;
        if !self.bucket.as_mut().is_none_or(|b| b.take(t)) {
            self.counters.suppressed_rate += 1;
            return self.suppress(key);
        }
        self.counters.emitted += 1;
        Verdict::Emit { suppressed: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Group;
    use crate::rules::parse_inline;

    const S: u64 = 1_000_000_000;

    fn rule(text: &str) -> Rule {
        parse_inline(text).unwrap().rules.remove(0)
    }

    #[test]
    fn cooldown_per_key_counts_suppressed() {
        let r = rule("r: cooldown=10");
        let (a, b) = ((0, 0, Group::All), (0, 1, Group::All));
        let mut t = Throttle::new(None);
        assert_eq!(t.start(&a, &r, 0), Verdict::Emit { suppressed: 0 });
        assert_eq!(t.start(&a, &r, 3 * S), Verdict::Suppress);
        assert_eq!(
            t.start(&b, &r, 4 * S),
            Verdict::Emit { suppressed: 0 },
            "other key"
        );
        assert_eq!(t.start(&a, &r, 9 * S), Verdict::Suppress);
        assert_eq!(t.start(&a, &r, 10 * S), Verdict::Emit { suppressed: 2 });
        assert_eq!(t.counters.suppressed_cooldown, 2);
        assert_eq!(t.counters.emitted, 3);
    }

    #[test]
    fn burst_becomes_one_alert_then_suppresses_for_the_window() {
        let r = rule("r: cooldown=0 burst=3/10 key=class");
        let mut t = Throttle::new(None);
        let k = |c| (0, 0, Group::Class(c));
        for i in 0..3 {
            assert_eq!(
                t.start(&k(i), &r, i as u64 * S),
                Verdict::Emit { suppressed: 0 }
            );
        }
        assert_eq!(
            t.start(&k(3), &r, 3 * S),
            Verdict::Burst {
                count: 4,
                suppressed: 0
            }
        );
        assert_eq!(t.start(&k(4), &r, 5 * S), Verdict::Suppress);
        assert_eq!(t.start(&k(4), &r, 12 * S), Verdict::Suppress);
        assert_eq!(t.counters.suppressed_burst, 2);
        // After the window, alerts flow again and carry what was held back.
        assert_eq!(t.start(&k(4), &r, 13 * S), Verdict::Emit { suppressed: 2 });
    }

    #[test]
    fn rate_limit_is_a_token_bucket_across_rules() {
        let r = rule("r: cooldown=0 key=class");
        let mut t = Throttle::new(Some(RateLimit {
            per_minute: 60.0,
            burst: 2,
        }));
        let k = |c| (0, 0, Group::Class(c));
        assert!(matches!(t.start(&k(0), &r, 0), Verdict::Emit { .. }));
        assert!(matches!(t.start(&k(1), &r, 0), Verdict::Emit { .. }));
        assert_eq!(t.start(&k(2), &r, S / 2), Verdict::Suppress);
        // One token per second comes back.
        assert_eq!(t.start(&k(2), &r, S), Verdict::Emit { suppressed: 1 });
        assert_eq!(t.counters.suppressed_rate, 1);
    }

    #[test]
    fn ended_follows_an_emitted_start_only() {
        let r = rule("r: cooldown=100");
        let k = (0, 0, Group::All);
        let mut t = Throttle::new(None);
        assert!(matches!(t.start(&k, &r, 0), Verdict::Emit { .. }));
        assert!(matches!(t.ended(&k, S), Verdict::Emit { .. }));
        assert_eq!(t.start(&k, &r, 2 * S), Verdict::Suppress);
        assert_eq!(
            t.ended(&k, 3 * S),
            Verdict::Suppress,
            "its start was suppressed"
        );
        assert_eq!(t.counters.emitted, 2);
    }
}
