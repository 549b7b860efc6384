//! The alerting core, with no GStreamer in it: the rules (`engine`) and the throttle over
//! the detections of each frame, alerts out, numbered with ids unique across runs. The
//! element hands it each frame's detections and running time, and sends what comes out.

use crate::alert::Alert;
use crate::engine::{Engine, Event, Group, Kind};
use crate::rules::{Direction, RateLimit, Rule};
use crate::throttle::{Counters, Throttle, Verdict};
use rtmeta::Detections;

pub struct Alerter {
    engine: Engine,
    throttle: Throttle,
    /// Makes alert ids unique across runs; `seq` numbers them within one.
    nonce: String,
    seq: u64,
    /// The running time of the last frame (ns).
    last_time: u64,
}

impl Alerter {
    pub fn new(rules: Vec<Rule>, rate: Option<RateLimit>, nonce: String) -> Self {
        Alerter {
            engine: Engine::new(rules),
            throttle: Throttle::new(rate),
            nonce,
            seq: 0,
            last_time: 0,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn counters(&self) -> Counters {
        self.throttle.counters
    }

    /// The running time of the last frame (ns).
    pub fn last_time(&self) -> u64 {
        self.last_time
    }

    /// The alerts a frame raises at running time `t` (ns; `None`: that of the frame before),
    /// after throttling.
    pub fn frame(&mut self, dets: &Detections, t: Option<u64>) -> Vec<Alert> {
        let t = t.unwrap_or(self.last_time);
        self.last_time = t;
        let events = self.engine.evaluate(dets, t);
        events
            .into_iter()
            .filter_map(|event| self.alert(event, dets.frame_number, t, None))
            .collect()
    }

    /// Replaces the rules. The conditions the old rules had active end with `ended` alerts
    /// (reason `reloaded`, after throttling); their state goes with them.
    pub fn replace_rules(&mut self, rules: Vec<Rule>) -> Vec<Alert> {
        let alerts = self.end_all("reloaded");
        self.throttle.reset_rules();
        self.engine = Engine::new(rules);
        alerts
    }

    /// Ends every open condition with an `ended` alert carrying `reason` (for rules with
    /// `ended: true`, after throttling), so consumers are never left with an open alert: at
    /// a reload, EOS, a stop or a flush.
    pub fn end_all(&mut self, reason: &'static str) -> Vec<Alert> {
        let t = self.last_time;
        let ended = self.engine.end_all(t);
        ended
            .into_iter()
            .filter_map(|(event, frame)| self.alert(event, frame, t, Some(reason)))
            .collect()
    }

    /// After a flush, running time starts again from the new segment: open conditions end
    /// (reason `flushed`) and cooldowns, burst windows and the rate limit's clock start
    /// afresh, or they would hold alerts back until running time caught up with the old one.
    pub fn restart_clock(&mut self) -> Vec<Alert> {
        let alerts = self.end_all("flushed");
        self.throttle.restart_clock();
        self.last_time = 0;
        alerts
    }

    /// The alert for one event of frame `frame` at running time `t`, unless throttled.
    fn alert(
        &mut self,
        event: Event,
        frame: u64,
        t: u64,
        reason: Option<&'static str>,
    ) -> Option<Alert> {
        let rule = &self.engine.rules()[event.key.0];
        let verdict = match event.kind {
            Kind::Start | Kind::Crossed(_) => self.throttle.start(&event.key, rule, t),
            Kind::Ended => self.throttle.ended(&event.key, t),
        };
        let (kind, suppressed, burst_count) = match (verdict, event.kind) {
            (Verdict::Suppress, _) => return None,
            (Verdict::Burst { count, suppressed }, _) => ("burst", suppressed, Some(count)),
            (Verdict::Emit { suppressed }, Kind::Start) => ("start", suppressed, None),
            (Verdict::Emit { suppressed }, Kind::Ended) => ("ended", suppressed, None),
            (Verdict::Emit { suppressed }, Kind::Crossed(_)) => ("crossing", suppressed, None),
        };
        let source_id = event.key.1;
        let counts = self.engine.source_counts(event.key.0, source_id);
        let track_id = match event.key.2 {
            Group::Track(t) => t,
            _ => None,
        };
        self.seq += 1;
        Some(Alert {
            id: format!("{}-{:06}", self.nonce, self.seq),
            kind,
            reason,
            rule: rule.name.clone(),
            source_id,
            stream_time: t,
            frame,
            wall_time: rtalgo::time::Utc::now().iso(),
            count: event.count,
            burst_count,
            suppressed,
            objects: event.objects,
            track_id,
            direction: match event.kind {
                Kind::Crossed(Direction::In) => Some("in"),
                Kind::Crossed(_) => Some("out"),
                _ => None,
            },
            duration: matches!(event.kind, Kind::Start | Kind::Ended)
                .then_some(event.held as f64 / 1e9),
            crossed: rule
                .line
                .is_some()
                .then_some((counts.crossed_in, counts.crossed_out)),
            unique_tracks: (counts.unique_tracks > 0).then_some(counts.unique_tracks),
            snapshot: None,
            clip: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules;
    use rtmeta::Detection;

    const S: u64 = 1_000_000_000;

    fn frame(number: u64, people: usize) -> Detections {
        Detections {
            source_id: 0,
            frame_number: number,
            width: 640,
            height: 480,
            stale: false,
            objects: (0..people)
                .map(|i| Detection {
                    class_id: 0,
                    label: "person".into(),
                    confidence: 0.9,
                    x: 10.0 + 50.0 * i as f32,
                    y: 10.0,
                    w: 40.0,
                    h: 80.0,
                    track_id: None,
                    producer: None,
                })
                .collect(),
        }
    }

    fn alerter(rules: &str) -> Alerter {
        let set = rules::parse_inline(rules).unwrap();
        Alerter::new(set.rules, None, "abc".into())
    }

    #[test]
    fn a_frame_in_alerts_out_numbered_and_throttled() {
        let mut a = alerter("p: class=person cooldown=10");
        let alerts = a.frame(&frame(0, 1), Some(0));
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            (alerts[0].id.as_str(), alerts[0].kind),
            ("abc-000001", "start")
        );
        assert!(a.frame(&frame(1, 1), Some(S)).is_empty(), "still active");
        // Gone, and back within the cooldown: suppressed and counted.
        a.frame(&frame(2, 0), Some(2 * S));
        assert!(a.frame(&frame(3, 1), Some(3 * S)).is_empty());
        assert_eq!(a.counters().suppressed_cooldown, 1);
        assert_eq!(a.last_time(), 3 * S);
        // No running time: the frame counts at the last one.
        a.frame(&frame(4, 1), None);
        assert_eq!(a.last_time(), 3 * S);
    }

    #[test]
    fn after_a_flush_running_time_starts_again_and_nothing_is_held_back() {
        let mut a = alerter(
            "p: class=person cooldown=30 ended=true; r: class=person burst=2/60 cooldown=0",
        );
        assert_eq!(a.frame(&frame(0, 1), Some(100 * S)).len(), 2);
        a.frame(&frame(1, 1), Some(120 * S));
        let ended = a.restart_clock();
        assert_eq!(ended.len(), 1, "p was open: {ended:?}");
        assert_eq!((ended[0].kind, ended[0].reason), ("ended", Some("flushed")));
        // Running time restarts near 0: a new activation is neither in p's cooldown (which
        // would last until 130 s) nor in r's burst window.
        let alerts = a.frame(&frame(0, 1), Some(S));
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert!(alerts.iter().all(|al| al.kind == "start"));
        assert_eq!(a.counters().suppressed_cooldown, 0);
        // The cooldown runs again from the new start.
        a.frame(&frame(1, 0), Some(2 * S));
        assert!(
            a.frame(&frame(2, 1), Some(3 * S))
                .iter()
                .all(|al| al.rule != "p")
        );
        assert_eq!(a.counters().suppressed_cooldown, 1);
    }

    #[test]
    fn end_all_closes_open_conditions_once_with_the_reason() {
        let mut a = alerter("p: class=person ended=true");
        a.frame(&frame(0, 1), Some(0));
        a.frame(&frame(1, 1), Some(3 * S));
        let ended = a.end_all("eos");
        assert_eq!(ended.len(), 1);
        assert_eq!(
            (ended[0].kind, ended[0].reason, ended[0].duration),
            ("ended", Some("eos"), Some(3.0))
        );
        assert!(a.end_all("stopped").is_empty(), "ended once");
    }

    #[test]
    fn replacing_the_rules_ends_what_the_old_ones_had_open() {
        let mut a = alerter("p: class=person ended=true");
        assert_eq!(a.frame(&frame(7, 1), Some(0)).len(), 1);
        a.frame(&frame(8, 1), Some(2 * S));
        let ended = a.replace_rules(rules::parse_inline("q: class=car").unwrap().rules);
        assert_eq!(ended.len(), 1);
        let e = &ended[0];
        assert_eq!((e.kind, e.reason, e.frame), ("ended", Some("reloaded"), 8));
        assert_eq!(e.id, "abc-000002");
        assert_eq!(a.engine().rules()[0].name, "q");
        assert!(a.replace_rules(Vec::new()).is_empty(), "nothing open");
    }
}
