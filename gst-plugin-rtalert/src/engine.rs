//! Rule evaluation: which conditions start or stop holding on each frame.
//!
//! A condition is tracked per rule, source and group (the whole rule, a class or a track,
//! as the rule's `key` says). It fires a `Start` event once it has held for the rule's
//! minimum duration and frames, and an `Ended` event when it stops holding. Time is the
//! buffer's running time, so a file gives the same events on every run.

use crate::rules::{ClassRef, KeyBy, Rule};
use rtmeta::{Detection, Detections};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    All,
    Class(u32),
    Track(Option<u64>),
}

/// Identifies one condition: rule index, source id and group.
pub type Key = (usize, u32, Group);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Start,
    Ended,
}

#[derive(Clone, Debug)]
pub struct Event {
    pub kind: Kind,
    pub key: Key,
    pub count: u32,
    pub objects: Vec<Detection>,
}

#[derive(Debug)]
struct Condition {
    since: u64,
    frames: u32,
    active: bool,
}

pub struct Engine {
    rules: Vec<Rule>,
    conditions: BTreeMap<Key, Condition>,
}

fn class_matches(rule: &Rule, o: &Detection) -> bool {
    rule.classes.is_empty()
        || rule.classes.iter().any(|c| match c {
            ClassRef::Id(id) => o.class_id == *id,
            ClassRef::Label(l) => o.label == *l,
        })
}

fn object_matches(rule: &Rule, o: &Detection, width: u32, height: u32) -> bool {
    if o.confidence < rule.min_confidence.0 || !class_matches(rule, o) {
        return false;
    }
    match &rule.zone {
        None => true,
        Some(zone) if width > 0 && height > 0 => {
            let (x, y) = rule.anchor.point(o.x, o.y, o.w, o.h);
            zone.contains(x / width as f64, y / height as f64)
        }
        Some(_) => false,
    }
}

impl Engine {
    pub fn new(rules: Vec<Rule>) -> Self {
        Engine {
            rules,
            conditions: BTreeMap::new(),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Evaluates every rule on one frame at running time `t` (ns).
    pub fn evaluate(&mut self, d: &Detections, t: u64) -> Vec<Event> {
        let mut events = Vec::new();
        for ri in 0..self.rules.len() {
            let rule = &self.rules[ri];
            if !rule.sources.is_empty() && !rule.sources.contains(&d.source_id) {
                continue;
            }
            // Indices into d.objects: detections are cloned only into the events emitted.
            let mut groups: BTreeMap<Group, Vec<usize>> = BTreeMap::new();
            if rule.key == KeyBy::Rule {
                groups.insert(Group::All, Vec::new());
            }
            for (i, o) in d
                .objects
                .iter()
                .enumerate()
                .filter(|(_, o)| object_matches(rule, o, d.width, d.height))
            {
                let g = match rule.key {
                    KeyBy::Rule => Group::All,
                    KeyBy::Class => Group::Class(o.class_id),
                    KeyBy::Track => Group::Track(o.track_id),
                };
                groups.entry(g).or_default().push(i);
            }
            // Conditions seen before but with nothing matching now.
            let absent: Vec<Group> = self
                .conditions
                .keys()
                .filter(|(r, s, g)| *r == ri && *s == d.source_id && !groups.contains_key(g))
                .map(|(_, _, g)| g.clone())
                .collect();
            for g in absent {
                groups.insert(g, Vec::new());
            }
            for (g, matched) in groups {
                self.step((ri, d.source_id, g), &d.objects, &matched, t, &mut events);
            }
        }
        events
    }

    fn step(
        &mut self,
        key: Key,
        all: &[Detection],
        matched: &[usize],
        t: u64,
        events: &mut Vec<Event>,
    ) {
        let rule = &self.rules[key.0];
        let count = matched.len() as u32;
        let objects = || matched.iter().map(|&i| all[i].clone()).collect();
        let holds = count >= rule.min_count && rule.max_count.is_none_or(|m| count <= m);
        if !holds {
            if let Some(c) = self.conditions.remove(&key)
                && c.active
                && rule.ended
            {
                events.push(Event {
                    kind: Kind::Ended,
                    key,
                    count,
                    objects: objects(),
                });
            }
            return;
        }
        let c = self.conditions.entry(key.clone()).or_insert(Condition {
            since: t,
            frames: 0,
            active: false,
        });
        c.frames += 1;
        let held = t.saturating_sub(c.since);
        if !c.active && held >= rule.min_duration.ns() && c.frames >= rule.min_frames.max(1) {
            c.active = true;
            events.push(Event {
                kind: Kind::Start,
                key,
                count,
                objects: objects(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::parse_inline;

    fn dets(source: u32, objects: &[(&str, f32, f32, f32)]) -> Detections {
        Detections {
            source_id: source,
            frame_number: 0,
            width: 100,
            height: 100,
            stale: false,
            objects: objects
                .iter()
                .map(|(label, conf, x, y)| Detection {
                    class_id: if *label == "person" { 0 } else { 2 },
                    label: label.to_string(),
                    confidence: *conf,
                    x: *x,
                    y: *y,
                    w: 10.0,
                    h: 10.0,
                    track_id: None,
                })
                .collect(),
        }
    }

    fn kinds(events: &[Event]) -> Vec<Kind> {
        events.iter().map(|e| e.kind).collect()
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn presence_duration_then_ended() {
        let rules = parse_inline("p: class=person duration=2 ended=true")
            .unwrap()
            .rules;
        let mut e = Engine::new(rules);
        let person = dets(0, &[("person", 0.9, 10.0, 10.0)]);
        assert!(e.evaluate(&person, 0).is_empty());
        assert!(e.evaluate(&person, S).is_empty());
        assert_eq!(kinds(&e.evaluate(&person, 2 * S)), vec![Kind::Start]);
        assert!(
            e.evaluate(&person, 3 * S).is_empty(),
            "fires once per activation"
        );
        assert_eq!(kinds(&e.evaluate(&dets(0, &[]), 4 * S)), vec![Kind::Ended]);
        // A gap resets the presence timer.
        assert!(e.evaluate(&person, 5 * S).is_empty());
        assert!(e.evaluate(&dets(0, &[]), 6 * S).is_empty());
        assert!(e.evaluate(&person, 7 * S).is_empty());
    }

    #[test]
    fn counts_confidence_classes_zones_and_sources() {
        let rules = parse_inline(
            "crowd: class=person count=2 max-count=3 conf=0.5 zone=0,0,0.5,0,0.5,1,0,1 source=1",
        )
        .unwrap()
        .rules;
        let mut e = Engine::new(rules);
        let left = |conf| ("person", conf, 10.0f32, 10.0f32); // bottom-centre (15, 20): inside
        let right = ("person", 0.9, 70.0, 10.0); // outside the left half
        // Wrong source: ignored.
        assert!(e.evaluate(&dets(0, &[left(0.9), left(0.9)]), 0).is_empty());
        // One inside + one outside, or one below the confidence: not a crowd.
        assert!(e.evaluate(&dets(1, &[left(0.9), right]), 0).is_empty());
        assert!(e.evaluate(&dets(1, &[left(0.9), left(0.4)]), 0).is_empty());
        assert!(
            e.evaluate(&dets(1, &[left(0.9), ("car", 0.9, 10.0, 10.0)]), 0)
                .is_empty()
        );
        // Two inside: fires. Four inside: above max-count, so the condition ends.
        assert_eq!(e.evaluate(&dets(1, &[left(0.9), left(0.8)]), S).len(), 1);
        let four = [left(0.9), left(0.9), left(0.9), left(0.9)];
        assert!(e.evaluate(&dets(1, &four), 2 * S).is_empty());
        assert_eq!(
            e.evaluate(&dets(1, &[left(0.9), left(0.8)]), 3 * S).len(),
            1
        );
    }

    #[test]
    fn zone_edge_uses_the_bottom_centre() {
        // Box bottom-centre at exactly x = 0.5 lies on the zone's edge: inside.
        let rules = parse_inline("edge: zone=0,0,0.5,0,0.5,1,0,1")
            .unwrap()
            .rules;
        let mut e = Engine::new(rules);
        assert_eq!(
            e.evaluate(&dets(0, &[("person", 0.9, 45.0, 10.0)]), 0)
                .len(),
            1
        );
        let rules = parse_inline("edge: zone=0,0,0.5,0,0.5,1,0,1")
            .unwrap()
            .rules;
        let mut e = Engine::new(rules);
        assert!(
            e.evaluate(&dets(0, &[("person", 0.9, 46.0, 10.0)]), 0)
                .is_empty()
        );
    }

    #[test]
    fn key_by_track_follows_each_tracked_object() {
        let rules = parse_inline("t: key=track").unwrap().rules;
        let mut e = Engine::new(rules);
        let mut d = dets(0, &[("person", 0.9, 0.0, 0.0), ("person", 0.9, 50.0, 0.0)]);
        d.objects[0].track_id = Some(7);
        d.objects[1].track_id = Some(8);
        let ev = e.evaluate(&d, 0);
        let groups: Vec<&Group> = ev.iter().map(|e| &e.key.2).collect();
        assert_eq!(groups, vec![&Group::Track(Some(7)), &Group::Track(Some(8))]);
        // Track 7 stays, track 8 leaves, track 9 arrives: only 9 is new.
        d.objects[1].track_id = Some(9);
        let ev = e.evaluate(&d, S);
        assert_eq!((ev.len(), &ev[0].key.2), (1, &Group::Track(Some(9))));
    }

    #[test]
    fn key_by_class_tracks_each_class() {
        let rules = parse_inline("k: key=class ended=true").unwrap().rules;
        let mut e = Engine::new(rules);
        let both = dets(0, &[("person", 0.9, 0.0, 0.0), ("car", 0.9, 0.0, 0.0)]);
        let ev = e.evaluate(&both, 0);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].key.2, Group::Class(0));
        assert_eq!(ev[1].key.2, Group::Class(2));
        let ev = e.evaluate(&dets(0, &[("person", 0.9, 0.0, 0.0)]), S);
        assert_eq!(
            (ev.len(), ev[0].kind, &ev[0].key.2),
            (1, Kind::Ended, &Group::Class(2))
        );
    }
}
