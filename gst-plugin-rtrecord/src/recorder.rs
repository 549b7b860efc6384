//! What to keep and what to write: the pre-capture ring and the span of the clip being
//! recorded, over encoded frames in decode order. No GStreamer here; times are nanoseconds of
//! running time, and `T` is whatever the element keeps per frame (a `gst::Buffer`).
//!
//! The ring is a queue of GOPs, so it always starts at a keyframe and trimming is dropping
//! whole GOPs: it keeps the newest keyframe at or before `pre` seconds ago and everything
//! after it, within `max_bytes`. A trigger at time `t` asks for `[t - pre, t + post)`. The clip
//! starts at the newest keyframe at or before `t - pre` (so it has at least the pre-capture
//! asked for when the ring holds it), and ends at the first frame at or after its end. A
//! trigger while a clip is open moves its end instead of starting another one; `max_duration`
//! ends a clip whatever the triggers ask, and a trigger past that gets a clip of its own.

use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Nanoseconds kept before a trigger.
    pub pre: u64,
    /// Nanoseconds recorded after a trigger.
    pub post: u64,
    /// Longest clip, in nanoseconds.
    pub max_duration: u64,
    /// Most bytes the ring holds.
    pub max_bytes: usize,
}

/// One encoded frame.
pub struct Frame<T> {
    /// Running time in nanoseconds (decode order, so never decreasing).
    pub time: u64,
    pub key: bool,
    pub bytes: usize,
    pub data: T,
}

/// What the element does with a frame, in order.
#[derive(Debug, PartialEq)]
pub enum Action<T> {
    /// Open a clip and write these frames, the first a keyframe, to it.
    Start(Vec<T>),
    /// Write this frame to the open clip.
    Write(T),
    /// Close the open clip.
    Finish,
}

/// What a trigger did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Triggered {
    /// It asks for a new clip, which starts when the frames reach its start.
    New,
    /// It moved the end of the clip that is open or waiting to start.
    Extended,
}

struct Gop<T> {
    /// Time of its keyframe.
    time: u64,
    bytes: usize,
    frames: Vec<Frame<T>>,
}

#[derive(Clone, Copy, Debug)]
struct Span {
    end: u64,
    /// Start plus the longest duration.
    limit: u64,
}

pub struct Recorder<T> {
    limits: Limits,
    ring: VecDeque<Gop<T>>,
    bytes: usize,
    open: Option<Span>,
    /// A clip asked for but not started: `(from, until)`.
    waiting: Option<(u64, u64)>,
    newest: Option<u64>,
    /// Frames dropped from the ring for `max_bytes` while still within the pre-capture time.
    dropped: u64,
}

impl<T: Clone> Recorder<T> {
    pub fn new(limits: Limits) -> Self {
        Recorder {
            limits,
            ring: VecDeque::new(),
            bytes: 0,
            open: None,
            waiting: None,
            newest: None,
            dropped: 0,
        }
    }

    /// Whether a clip is open or waiting to start.
    pub fn busy(&self) -> bool {
        self.open.is_some() || self.waiting.is_some()
    }

    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Bytes and nanoseconds the ring holds.
    pub fn buffered(&self) -> (usize, u64) {
        let span = match (self.ring.front(), self.newest) {
            (Some(g), Some(n)) => n.saturating_sub(g.time),
            _ => 0,
        };
        (self.bytes, span)
    }

    /// Time of the newest frame.
    pub fn newest(&self) -> Option<u64> {
        self.newest
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Asks for the moment `t` to be recorded.
    pub fn trigger(&mut self, t: u64) -> Triggered {
        let (from, until) = (
            t.saturating_sub(self.limits.pre),
            t.saturating_add(self.limits.post),
        );
        // Past the open clip's longest duration, which cannot show it, a trigger gets a clip
        // of its own, starting when this one ends.
        if let Some(span) = &mut self.open
            && t < span.limit
        {
            span.end = span.end.max(until);
            return Triggered::Extended;
        }
        match &mut self.waiting {
            Some((f, u)) => {
                *f = (*f).min(from);
                *u = (*u).max(until);
                Triggered::Extended
            }
            None => {
                self.waiting = Some((from, until));
                Triggered::New
            }
        }
    }

    /// Takes a frame; returns what to do with it and with the ring.
    pub fn push(&mut self, frame: Frame<T>) -> Vec<Action<T>> {
        let mut actions = Vec::new();
        let time = frame.time;
        self.newest = Some(time);
        if let Some(span) = self.open {
            if time >= span.end.min(span.limit) {
                actions.push(Action::Finish);
                self.open = None;
            } else {
                actions.push(Action::Write(frame.data.clone()));
            }
        }
        self.keep(frame);
        if self.open.is_none()
            && let Some((from, until)) = self.waiting
            && time >= from
            && !self.ring.is_empty()
        {
            self.waiting = None;
            actions.extend(self.start(from, until, time));
        }
        self.trim(time);
        actions
    }

    /// Ends the stream: closes the open clip, or writes the one waiting from what the ring has.
    pub fn finish(&mut self) -> Vec<Action<T>> {
        if self.open.take().is_some() {
            return vec![Action::Finish];
        }
        match (self.waiting.take(), self.newest) {
            (Some((from, until)), Some(newest)) if !self.ring.is_empty() => {
                let mut actions = self.start(from, until, newest);
                if self.open.take().is_some() {
                    actions.push(Action::Finish);
                }
                actions
            }
            _ => Vec::new(),
        }
    }

    /// What the open or waiting clip still asks for past the newest frame, as `(newest,
    /// end)`: after a reset (new caps) the recording goes on with `resume`.
    pub fn unfinished(&self) -> Option<(u64, u64)> {
        let newest = self.newest?;
        let end = match (self.open, self.waiting) {
            (Some(span), _) => span.end.min(span.limit),
            (None, Some((_, until))) => until,
            (None, None) => return None,
        };
        (end > newest).then_some((newest, end))
    }

    /// Asks for `[from, until)` again (see `unfinished`).
    pub fn resume(&mut self, from: u64, until: u64) {
        self.waiting = Some((from, until));
    }

    /// Forgets the open clip (its writer failed); the ring stays.
    pub fn abort(&mut self) {
        self.open = None;
    }

    /// Empties the ring and forgets the clips asked for (a flush or new caps, after `finish`).
    pub fn reset(&mut self) {
        self.ring.clear();
        self.bytes = 0;
        self.open = None;
        self.waiting = None;
        self.newest = None;
    }

    fn keep(&mut self, frame: Frame<T>) {
        if frame.key {
            self.ring.push_back(Gop {
                time: frame.time,
                bytes: 0,
                frames: Vec::new(),
            });
        }
        // Frames before the first keyframe cannot be decoded from the ring: not kept.
        let Some(gop) = self.ring.back_mut() else {
            return;
        };
        gop.bytes += frame.bytes;
        self.bytes += frame.bytes;
        gop.frames.push(frame);
    }

    /// Opens the clip `[from, until)` with the ring from the newest keyframe at or before
    /// `from` (the oldest one if the ring does not reach back that far).
    fn start(&mut self, from: u64, until: u64, now: u64) -> Vec<Action<T>> {
        let first = self.ring.iter().rposition(|g| g.time <= from).unwrap_or(0);
        let start = self.ring[first].time;
        let frames: Vec<T> = self
            .ring
            .range(first..)
            .flat_map(|g| &g.frames)
            .filter(|f| f.time < until.max(start + 1))
            .map(|f| f.data.clone())
            .collect();
        let span = Span {
            end: until,
            limit: start + self.limits.max_duration.max(1),
        };
        let mut actions = vec![Action::Start(frames)];
        if now >= span.end.min(span.limit) {
            actions.push(Action::Finish);
        } else {
            self.open = Some(span);
        }
        actions
    }

    /// Drops the oldest GOPs while the next one starts at or before the pre-capture time, or
    /// while the ring is over its byte limit. (A clip waiting to start needs nothing older:
    /// it starts, in `push`, before the ring is trimmed past its start.)
    fn trim(&mut self, newest: u64) {
        let keep_from = newest.saturating_sub(self.limits.pre);
        while self.ring.len() > 1 {
            let old_enough = self.ring[1].time <= keep_from;
            let too_big = self.bytes > self.limits.max_bytes;
            if !old_enough && !too_big {
                break;
            }
            let gop = self.ring.pop_front().unwrap();
            self.bytes -= gop.bytes;
            if !old_enough {
                self.dropped += gop.frames.len() as u64;
            }
        }
        // One GOP over the limit: nothing can be kept until the next keyframe.
        if self.bytes > self.limits.max_bytes
            && let Some(gop) = self.ring.pop_front()
        {
            self.bytes = 0;
            self.dropped += gop.frames.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn limits(pre: u64, post: u64) -> Limits {
        Limits {
            pre,
            post,
            max_duration: 60 * S,
            max_bytes: usize::MAX,
        }
    }

    /// Frame `i` of a 10 fps stream with a keyframe every 10 frames; the data is its index.
    fn frame(i: u64) -> Frame<u64> {
        Frame {
            time: i * 100 * MS,
            key: i.is_multiple_of(10),
            bytes: 1000,
            data: i,
        }
    }

    /// Pushes frames `range` and returns the clips written: the frame indices of each.
    fn run(r: &mut Recorder<u64>, range: std::ops::Range<u64>, clips: &mut Vec<Vec<u64>>) {
        for i in range {
            apply(r.push(frame(i)), clips);
        }
    }

    fn apply(actions: Vec<Action<u64>>, clips: &mut Vec<Vec<u64>>) {
        for a in actions {
            match a {
                Action::Start(frames) => clips.push(frames),
                Action::Write(f) => clips.last_mut().unwrap().push(f),
                Action::Finish => clips.push(Vec::new()),
            }
        }
    }

    /// The clips of `run`/`apply`: each Start opens one, each Finish seals it (an empty
    /// entry marks the seal and is dropped here).
    fn sealed(clips: Vec<Vec<u64>>) -> Vec<Vec<u64>> {
        clips.into_iter().filter(|c| !c.is_empty()).collect()
    }

    #[test]
    fn the_ring_keeps_the_pre_capture_from_a_keyframe() {
        let mut r = Recorder::new(limits(2 * S, S));
        let mut clips = Vec::new();
        run(&mut r, 0..57, &mut clips);
        // Newest frame 56 (5.6 s): keep from the newest keyframe at or before 3.6 s (frame 30).
        assert_eq!(r.buffered(), (27_000, 2600 * MS));
        assert!(clips.is_empty());
    }

    #[test]
    fn a_clip_runs_from_the_keyframe_before_the_pre_capture_to_the_post_capture() {
        let mut r = Recorder::new(limits(2 * S, S));
        let mut clips = Vec::new();
        run(&mut r, 0..57, &mut clips);
        // At 5.65 s: from 3.65 s (keyframe 30) until 6.65 s (frames before 6.7 s).
        assert_eq!(r.trigger(5650 * MS), Triggered::New);
        assert!(r.busy());
        run(&mut r, 57..80, &mut clips);
        assert!(!r.busy());
        let clips = sealed(clips);
        assert_eq!(clips, vec![(30..67).collect::<Vec<_>>()]);
    }

    #[test]
    fn a_trigger_ahead_of_the_frames_waits_for_them() {
        // The encoder's latency: the trigger names a time the recorder has not seen yet.
        let mut r = Recorder::new(limits(S, S));
        let mut clips = Vec::new();
        run(&mut r, 0..20, &mut clips);
        assert_eq!(r.trigger(4 * S), Triggered::New);
        run(&mut r, 20..30, &mut clips);
        assert!(clips.is_empty(), "nothing before 3 s");
        run(&mut r, 30..60, &mut clips);
        assert_eq!(sealed(clips), vec![(30..50).collect::<Vec<_>>()]);
    }

    #[test]
    fn triggers_during_a_clip_extend_it_and_max_duration_ends_it() {
        let mut r = Recorder::new(limits(S, S));
        let mut clips = Vec::new();
        run(&mut r, 0..25, &mut clips);
        assert_eq!(r.trigger(2500 * MS), Triggered::New);
        run(&mut r, 25..30, &mut clips);
        assert_eq!(r.trigger(3 * S), Triggered::Extended);
        run(&mut r, 30..60, &mut clips);
        // From keyframe 10 (at or before 1.5 s) to 4 s.
        assert_eq!(sealed(clips), vec![(10..40).collect::<Vec<_>>()]);

        let mut r = Recorder::new(Limits {
            max_duration: 2 * S,
            ..limits(S, S)
        });
        let mut clips = Vec::new();
        run(&mut r, 0..25, &mut clips);
        r.trigger(2500 * MS);
        run(&mut r, 25..28, &mut clips);
        assert_eq!(r.trigger(2800 * MS), Triggered::Extended);
        run(&mut r, 28..80, &mut clips);
        // Asked until 3.8 s; it started at 1 s, so it ends at 3 s.
        assert_eq!(sealed(clips), vec![(10..30).collect::<Vec<_>>()]);
    }

    #[test]
    fn what_a_clip_still_asks_for_survives_a_reset() {
        let mut r = Recorder::new(limits(S, 2 * S));
        let mut clips = Vec::new();
        run(&mut r, 0..25, &mut clips);
        assert_eq!(r.unfinished(), None);
        r.trigger(2500 * MS); // [1.5 s, 4.5 s)
        run(&mut r, 25..30, &mut clips);
        // New caps at 3 s: the clip closes, and what it still asked for starts afresh.
        let (from, until) = r.unfinished().unwrap();
        assert_eq!((from, until), (2900 * MS, 4500 * MS));
        apply(r.finish(), &mut clips);
        r.reset();
        r.resume(from, until);
        run(&mut r, 30..60, &mut clips);
        assert_eq!(
            sealed(clips),
            vec![(10..30).collect::<Vec<_>>(), (30..45).collect::<Vec<_>>()]
        );
    }

    #[test]
    fn a_trigger_past_the_open_clips_longest_duration_gets_a_clip_of_its_own() {
        let mut r = Recorder::new(Limits {
            max_duration: 2 * S,
            ..limits(S, S)
        });
        let mut clips = Vec::new();
        run(&mut r, 0..25, &mut clips);
        r.trigger(2500 * MS); // from keyframe 10: the clip may run until 3 s
        run(&mut r, 25..28, &mut clips);
        // At 3.2 s, ahead of the frames (the encoder's latency): the open clip ends at 3 s.
        assert_eq!(r.trigger(3200 * MS), Triggered::New);
        run(&mut r, 28..80, &mut clips);
        // The second runs from the keyframe at or before 2.2 s (frame 20), asked until 4.2 s
        // and held to its own 2 s.
        assert_eq!(
            sealed(clips),
            vec![(10..30).collect::<Vec<_>>(), (20..40).collect::<Vec<_>>()]
        );
    }

    #[test]
    fn triggers_before_the_clip_starts_merge_into_one() {
        let mut r = Recorder::new(limits(S, S));
        let mut clips = Vec::new();
        run(&mut r, 0..10, &mut clips);
        assert_eq!(r.trigger(3 * S), Triggered::New);
        assert_eq!(r.trigger(2500 * MS), Triggered::Extended);
        run(&mut r, 10..60, &mut clips);
        assert_eq!(sealed(clips), vec![(10..40).collect::<Vec<_>>()]);
    }

    #[test]
    fn finish_closes_the_open_clip_or_writes_the_waiting_one_from_the_ring() {
        let mut r = Recorder::new(limits(S, 5 * S));
        let mut clips = Vec::new();
        run(&mut r, 0..25, &mut clips);
        r.trigger(2 * S);
        run(&mut r, 25..30, &mut clips);
        apply(r.finish(), &mut clips);
        assert_eq!(sealed(clips), vec![(10..30).collect::<Vec<_>>()]);
        assert!(!r.busy());
        assert!(r.finish().is_empty());

        // Waiting for frames up to 9 s when the stream ends: the ring is written as it is.
        let mut r = Recorder::new(limits(S, S));
        let mut clips = Vec::new();
        run(&mut r, 0..25, &mut clips);
        r.trigger(10 * S);
        apply(r.finish(), &mut clips);
        assert_eq!(sealed(clips), vec![(20..25).collect::<Vec<_>>()]);
    }

    #[test]
    fn the_byte_limit_drops_whole_gops_and_counts_them() {
        let mut r = Recorder::new(Limits {
            max_bytes: 12_000,
            ..limits(5 * S, S)
        });
        let mut clips = Vec::new();
        run(&mut r, 0..25, &mut clips);
        // Only the GOP of frame 20 fits with 10 s of pre-capture asked for.
        assert_eq!(r.buffered(), (5000, 400 * MS));
        assert_eq!(r.dropped(), 20);
        // A GOP alone over the limit is not kept either.
        let mut r = Recorder::new(Limits {
            max_bytes: 5000,
            ..limits(5 * S, S)
        });
        run(&mut r, 0..8, &mut clips);
        assert_eq!(r.buffered().0, 0);
        assert_eq!(r.dropped(), 6);
    }

    #[test]
    fn frames_before_the_first_keyframe_are_not_kept() {
        let mut r = Recorder::new(limits(S, S));
        let mut clips = Vec::new();
        run(&mut r, 5..12, &mut clips);
        assert_eq!(r.buffered(), (2000, 100 * MS));
        r.trigger(1100 * MS);
        run(&mut r, 12..30, &mut clips);
        assert_eq!(sealed(clips), vec![(10..21).collect::<Vec<_>>()]);
    }

    #[test]
    fn without_pre_capture_a_clip_starts_at_the_keyframe_before_the_trigger() {
        let mut r = Recorder::new(limits(0, S));
        let mut clips = Vec::new();
        run(&mut r, 0..12, &mut clips);
        assert_eq!(r.buffered(), (2000, 100 * MS));
        r.trigger(2500 * MS);
        run(&mut r, 12..40, &mut clips);
        assert_eq!(sealed(clips), vec![(20..35).collect::<Vec<_>>()]);
    }
}
