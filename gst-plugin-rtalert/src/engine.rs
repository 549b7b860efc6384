//! Rule evaluation: which conditions start or stop holding on each frame.
//!
//! A condition is tracked per rule, source and group (the whole rule, a class or a track,
//! as the rule's `key` says). It fires a `Start` event once it has held for the rule's
//! minimum duration and frames, and an `Ended` event when it stops holding. Time is the
//! buffer's running time, so a file gives the same events on every run.
//!
//! A rule with a `line` instead fires a `Crossed` event each time a tracked object's anchor
//! point crosses the line, and counts crossings per direction. Every rule counts the
//! distinct tracks that matched it.

use crate::rules::{ClassRef, Direction, KeyBy, Line, Rule};
use rtmeta::{Detection, Detections};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A track's last anchor point is forgotten after this long unseen (ns of running time).
const CROSSING_MEMORY: u64 = 10_000_000_000;
/// An anchor closer to a line than this (fraction of the frame) is on neither side yet, so
/// box jitter around the line does not count as crossings back and forth.
const CROSSING_MARGIN: f64 = 0.02;

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
    /// A tracked object crossed the rule's line: `Direction::In` or `Direction::Out`.
    Crossed(Direction),
}

#[derive(Clone, Debug)]
pub struct Event {
    pub kind: Kind,
    pub key: Key,
    /// Matching objects; for a crossing, the crossings so far in its direction.
    pub count: u32,
    pub objects: Vec<Detection>,
    /// How long the condition has held (ns); 0 for crossings.
    pub held: u64,
}

/// What a rule has counted on one source (or all, from [`Engine::counts`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub crossed_in: u64,
    pub crossed_out: u64,
    pub unique_tracks: u64,
}

#[derive(Default)]
struct RuleCounts {
    crossed_in: u64,
    crossed_out: u64,
    tracks: HashSet<u64>,
    /// Running time of the last crossing.
    last_crossing: Option<u64>,
}

/// How long a line shows as active after a crossing (ns).
const CROSSING_HIGHLIGHT: u64 = 1_000_000_000;

/// Where a track's anchor was last seen off the line.
struct LastPoint {
    point: (f64, f64),
    seen: u64,
}

#[derive(Debug)]
struct Condition {
    since: u64,
    frames: u32,
    active: bool,
    /// The last frame it held on, for an end that comes without a frame (a reload).
    frame: u64,
}

pub struct Engine {
    rules: Vec<Rule>,
    conditions: BTreeMap<Key, Condition>,
    /// Per rule, source and track.
    last_points: HashMap<(usize, u32, u64), LastPoint>,
    /// Per rule and source.
    counts: BTreeMap<(usize, u32), RuleCounts>,
}

/// Which side of the line `p` is on: > 0 right of a→b on screen (y down), < 0 left.
fn side(line: &Line, p: (f64, f64)) -> f64 {
    let (a, b) = (line.0, line.1);
    (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0)
}

/// Whether the move p → q crosses the segment (not merely its extension).
fn crosses(line: &Line, p: (f64, f64), q: (f64, f64)) -> bool {
    let cross = |o: (f64, f64), a: (f64, f64), b: (f64, f64)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let (s1, s2) = (side(line, p), side(line, q));
    let (t1, t2) = (cross(p, q, line.0), cross(p, q, line.1));
    s1 * s2 < 0.0 && t1 * t2 <= 0.0
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
            last_points: HashMap::new(),
            counts: BTreeMap::new(),
        }
    }

    /// What rule `rule` has counted, over every source.
    pub fn counts(&self, rule: usize) -> Counts {
        let mut total = Counts::default();
        for ((r, _), c) in self.counts.range((rule, 0)..=(rule, u32::MAX)) {
            debug_assert_eq!(*r, rule);
            total.crossed_in += c.crossed_in;
            total.crossed_out += c.crossed_out;
            total.unique_tracks += c.tracks.len() as u64;
        }
        total
    }

    /// What rule `rule` has counted on `source`.
    pub fn source_counts(&self, rule: usize, source: u32) -> Counts {
        self.counts
            .get(&(rule, source))
            .map_or_else(Counts::default, |c| Counts {
                crossed_in: c.crossed_in,
                crossed_out: c.crossed_out,
                unique_tracks: c.tracks.len() as u64,
            })
    }

    /// The zones and lines of the rules that apply to `source`, each active when its rule's
    /// condition holds there at running time `t` (for a line: a crossing in the last second).
    pub fn regions(&self, source: u32, t: u64) -> rtmeta::Regions {
        use rtmeta::{Region, RegionKind};
        let mut regions = Vec::new();
        for (ri, rule) in self.rules.iter().enumerate() {
            if !rule.sources.is_empty() && !rule.sources.contains(&source) {
                continue;
            }
            let (kind, points, active) = if let Some(line) = rule.line {
                let last = self.counts.get(&(ri, source)).and_then(|c| c.last_crossing);
                let active = last.is_some_and(|l| t.saturating_sub(l) < CROSSING_HIGHLIGHT);
                (RegionKind::Line, vec![line.0, line.1], active)
            } else if let Some(zone) = &rule.zone {
                let active = self
                    .conditions
                    .range((ri, source, Group::All)..)
                    .take_while(|(k, _)| k.0 == ri && k.1 == source)
                    .any(|(_, c)| c.active);
                (RegionKind::Zone, zone.0.clone(), active)
            } else {
                continue;
            };
            regions.push(Region {
                rule: rule.name.clone(),
                kind,
                points,
                active,
            });
        }
        rtmeta::Regions(regions)
    }

    /// Whether any rule has a zone or a line to show.
    pub fn has_regions(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.zone.is_some() || r.line.is_some())
    }

    /// Crossings of rule `ri`'s line on one frame.
    fn cross(&mut self, ri: usize, line: Line, d: &Detections, t: u64, events: &mut Vec<Event>) {
        let rule = &self.rules[ri];
        let source = d.source_id;
        for o in d
            .objects
            .iter()
            .filter(|o| object_matches(rule, o, d.width, d.height))
        {
            let Some(track) = o.track_id else {
                continue; // only tracked objects can cross
            };
            if d.width == 0 || d.height == 0 {
                continue;
            }
            let (x, y) = rule.anchor.point(o.x, o.y, o.w, o.h);
            let p = (x / d.width as f64, y / d.height as f64);
            let counts = self.counts.entry((ri, source)).or_default();
            counts.tracks.insert(track);
            let length = ((line.1.0 - line.0.0).powi(2) + (line.1.1 - line.0.1).powi(2)).sqrt();
            if (side(&line, p) / length).abs() < CROSSING_MARGIN {
                continue; // near the line: wait until it is clearly on one side
            }
            let crossed = match self
                .last_points
                .insert((ri, source, track), LastPoint { point: p, seen: t })
            {
                Some(last) => crosses(&line, last.point, p),
                None => false,
            };
            if !crossed {
                continue;
            }
            counts.last_crossing = Some(t);
            let direction = if side(&line, p) > 0.0 {
                counts.crossed_in += 1;
                Direction::In
            } else {
                counts.crossed_out += 1;
                Direction::Out
            };
            let count = match direction {
                Direction::In => counts.crossed_in,
                _ => counts.crossed_out,
            };
            if rule.direction == Direction::Both || rule.direction == direction {
                events.push(Event {
                    kind: Kind::Crossed(direction),
                    key: (ri, source, Group::Track(Some(track))),
                    count: count as u32,
                    objects: vec![o.clone()],
                    held: 0,
                });
            }
        }
        self.last_points.retain(|k, v| {
            k.0 != ri || k.1 != source || t.saturating_sub(v.seen) <= CROSSING_MEMORY
        });
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Ends every active condition, because the rules are being replaced: an `Ended` event
    /// for each whose rule sends them, with the frame it last held on, so that consumers
    /// pairing `start` and `ended` are never left with an open alert.
    pub fn end_all(&mut self, t: u64) -> Vec<(Event, u64)> {
        let conditions = std::mem::take(&mut self.conditions);
        conditions
            .into_iter()
            .filter(|(key, c)| c.active && self.rules[key.0].ended)
            .map(|(key, c)| {
                let event = Event {
                    kind: Kind::Ended,
                    key,
                    count: 0,
                    objects: Vec::new(),
                    held: t.saturating_sub(c.since),
                };
                (event, c.frame)
            })
            .collect()
    }

    /// Evaluates every rule on one frame at running time `t` (ns).
    pub fn evaluate(&mut self, d: &Detections, t: u64) -> Vec<Event> {
        let mut events = Vec::new();
        for ri in 0..self.rules.len() {
            let rule = &self.rules[ri];
            if !rule.sources.is_empty() && !rule.sources.contains(&d.source_id) {
                continue;
            }
            if let Some(line) = rule.line {
                self.cross(ri, line, d, t, &mut events);
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
                if let Some(track) = o.track_id {
                    self.counts
                        .entry((ri, d.source_id))
                        .or_default()
                        .tracks
                        .insert(track);
                }
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
                let key = (ri, d.source_id, g);
                self.step(key, &d.objects, &matched, (t, d.frame_number), &mut events);
            }
        }
        events
    }

    fn step(
        &mut self,
        key: Key,
        all: &[Detection],
        matched: &[usize],
        (t, frame): (u64, u64),
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
                    held: t.saturating_sub(c.since),
                });
            }
            return;
        }
        let c = self.conditions.entry(key.clone()).or_insert(Condition {
            since: t,
            frames: 0,
            active: false,
            frame,
        });
        c.frames += 1;
        c.frame = frame;
        let held = t.saturating_sub(c.since);
        if !c.active && held >= rule.min_duration.ns() && c.frames >= rule.min_frames.max(1) {
            c.active = true;
            events.push(Event {
                kind: Kind::Start,
                key,
                count,
                objects: objects(),
                held,
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
                    producer: None,
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

    /// One tracked person per frame at `(x, y)` (bottom-centre anchor at x + 5, y + 10).
    fn tracked(track: u64, x: f32, y: f32) -> Detections {
        let mut d = dets(0, &[("person", 0.9, x, y)]);
        d.objects[0].track_id = Some(track);
        d
    }

    #[test]
    fn line_crossings_are_counted_per_direction_and_alert_per_track() {
        // A horizontal line across the middle: "in" is downwards.
        let rules = parse_inline("door: class=person line=0,0.5,1,0.5 direction=in")
            .unwrap()
            .rules;
        let mut e = Engine::new(rules);
        let mut t = 0;
        let mut step = |e: &mut Engine, d: Detections| {
            t += S / 10;
            e.evaluate(&d, t)
        };
        // Track 1 walks down across the line (anchor y 0.3 -> 0.6): one "in" alert.
        assert!(step(&mut e, tracked(1, 10.0, 20.0)).is_empty());
        let ev = step(&mut e, tracked(1, 10.0, 50.0));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, Kind::Crossed(Direction::In));
        assert_eq!(ev[0].key.2, Group::Track(Some(1)));
        assert_eq!((ev[0].count, ev[0].objects[0].track_id), (1, Some(1)));
        // ...and back up: counted "out", but this rule alerts only on "in".
        assert!(step(&mut e, tracked(1, 10.0, 20.0)).is_empty());
        // An untracked object and a track moving along one side never cross.
        assert!(step(&mut e, dets(0, &[("person", 0.9, 10.0, 60.0)])).is_empty());
        assert!(step(&mut e, tracked(2, 10.0, 60.0)).is_empty());
        assert!(step(&mut e, tracked(2, 80.0, 70.0)).is_empty());
        // Track 3 is missed for a few frames and reappears below: still a crossing.
        assert!(step(&mut e, tracked(3, 30.0, 10.0)).is_empty());
        for _ in 0..5 {
            step(&mut e, dets(0, &[]));
        }
        assert_eq!(step(&mut e, tracked(3, 30.0, 70.0)).len(), 1);
        // Passing beside the segment (a line across the left half only) does not count.
        let mut half = Engine::new(parse_inline("half: line=0,0.5,0.4,0.5").unwrap().rules);
        assert!(half.evaluate(&tracked(4, 70.0, 20.0), 0).is_empty());
        assert!(half.evaluate(&tracked(4, 70.0, 50.0), S).is_empty());
        assert_eq!(
            e.counts(0),
            Counts {
                crossed_in: 2,
                crossed_out: 1,
                unique_tracks: 3
            }
        );
    }

    #[test]
    fn regions_show_which_rules_hold() {
        let rules = parse_inline(
            "z: zone=0,0,0.5,0,0.5,1,0,1 duration=1; l: line=0,0.5,1,0.5; plain: class=car; other: zone=0,0,1,0,1,1 source=3",
        )
        .unwrap()
        .rules;
        let mut e = Engine::new(rules);
        let r = e.regions(0, 0);
        let names: Vec<&str> = r.0.iter().map(|r| r.rule.as_str()).collect();
        assert_eq!(
            names,
            vec!["z", "l"],
            "rules without geometry or for other sources: none"
        );
        assert_eq!(r.0[1].points, vec![(0.0, 0.5), (1.0, 0.5)]);
        assert!(!r.0[0].active && !r.0[1].active);
        // In the zone for 1 s: the zone holds; a crossing lights the line for a second.
        e.evaluate(&tracked(1, 10.0, 20.0), 0);
        e.evaluate(&tracked(1, 10.0, 60.0), S);
        let r = e.regions(0, S);
        assert!(r.0[0].active && r.0[1].active);
        e.evaluate(&tracked(1, 10.0, 60.0), 2 * S + 1);
        let r = e.regions(0, 2 * S + 1);
        assert!(r.0[0].active && !r.0[1].active);
    }

    #[test]
    fn jitter_around_the_line_is_not_a_crossing() {
        let mut e = Engine::new(parse_inline("l: line=0,0.5,1,0.5").unwrap().rules);
        // Anchor y 0.30, then 0.51, 0.49, 0.515, 0.49 (within the 0.02 margin), then 0.7.
        let mut t = 0;
        for y in [20.0, 41.0, 39.0, 41.5, 39.0] {
            t += S / 10;
            assert!(e.evaluate(&tracked(1, 10.0, y), t).is_empty(), "y {y}");
        }
        assert_eq!(e.evaluate(&tracked(1, 10.0, 60.0), t + S).len(), 1);
        assert_eq!(e.counts(0).crossed_in, 1);
        assert_eq!(e.counts(0).crossed_out, 0);
    }

    #[test]
    fn a_track_touching_the_line_counts_once_it_is_across() {
        let mut e = Engine::new(parse_inline("l: line=0,0.5,1,0.5").unwrap().rules);
        // Anchor y: 0.3, exactly 0.5 (on the line), 0.5 again, then 0.7.
        assert!(e.evaluate(&tracked(1, 10.0, 20.0), 0).is_empty());
        assert!(e.evaluate(&tracked(1, 10.0, 40.0), S).is_empty());
        assert!(e.evaluate(&tracked(1, 10.0, 40.0), 2 * S).is_empty());
        let ev = e.evaluate(&tracked(1, 10.0, 60.0), 3 * S);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(ev[0].kind, Kind::Crossed(Direction::In));
    }

    #[test]
    fn dwell_per_track_carries_the_time_held_and_unique_tracks_are_counted() {
        let rules = parse_inline("dwell: key=track zone=0,0,1,0,1,1,0,1 duration=2 ended=true")
            .unwrap()
            .rules;
        let mut e = Engine::new(rules);
        for k in 0..=20u64 {
            let ev = e.evaluate(&tracked(5, 10.0, 10.0), k * S / 10);
            if k == 20 {
                assert_eq!(ev.len(), 1);
                assert_eq!((ev[0].kind, ev[0].held), (Kind::Start, 2 * S));
                assert_eq!(ev[0].key.2, Group::Track(Some(5)));
            } else {
                assert!(ev.is_empty(), "frame {k}");
            }
        }
        let ev = e.evaluate(&tracked(6, 10.0, 10.0), 3 * S);
        assert_eq!((ev[0].kind, ev[0].held), (Kind::Ended, 3 * S));
        assert_eq!(e.source_counts(0, 0).unique_tracks, 2);
        assert_eq!(e.source_counts(0, 9), Counts::default());
    }

    #[test]
    fn end_all_ends_the_active_conditions_of_rules_that_send_ended() {
        let rules =
            parse_inline("p: class=person ended=true; q: class=person; c: class=car ended=true")
                .unwrap()
                .rules;
        let mut e = Engine::new(rules);
        let mut d = dets(3, &[("person", 0.9, 10.0, 10.0)]);
        d.frame_number = 41;
        assert_eq!(e.evaluate(&d, S).len(), 2, "p and q start; c never held");
        d.frame_number = 42;
        assert!(e.evaluate(&d, 2 * S).is_empty());
        let ended = e.end_all(5 * S);
        assert_eq!(ended.len(), 1, "q sends no ended alerts: {ended:?}");
        let (ev, frame) = &ended[0];
        assert_eq!(
            (ev.kind, &ev.key, ev.held, *frame),
            (Kind::Ended, &(0, 3, Group::All), 4 * S, 42)
        );
        assert!(e.end_all(6 * S).is_empty(), "each condition ends once");
    }
}
