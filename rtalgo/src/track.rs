//! Multi-object tracking of one source, ByteTrack-style.
//!
//! Per frame ([`Tracker::update`]):
//! 1. every track's box is predicted to the frame's time (Kalman filter, [`Mode::ByteTrack`])
//!    or kept where it was last seen ([`Mode::Iou`]); tracks lost for longer than
//!    `lost_timeout` end;
//! 2. confirmed tracks (followed or lost) are matched with the high-confidence detections;
//! 3. followed tracks still unmatched are matched with the low-confidence detections, which
//!    keeps an object whose confidence dips (occlusion, blur); tracks unmatched now are lost;
//! 4. tentative tracks (still on probation) are matched with the high-confidence detections
//!    left; a tentative track that misses a frame is dropped, one matched `probation` frames
//!    in a row is confirmed and gets its id;
//! 5. high-confidence detections left over start tentative tracks.
//!
//! Matching minimises 1 - IoU (Hungarian method; greedy in [`Mode::Iou`]). Ids start at 1,
//! are given on confirmation and are never reused by a tracker. Time is stream time in
//! seconds, so lifetimes hold when frames are skipped or the frame rate changes.

use crate::assign::Assignment;
use crate::geometry::Rect;
use crate::kalman::BoxFilter;

/// How tracks are predicted and matched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Kalman-filter prediction, two-stage Hungarian matching.
    #[default]
    ByteTrack,
    /// The cheapest: last box, greedy matching, no prediction.
    Iou,
}

/// Tracker settings; the defaults are ByteTrack's.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub mode: Mode,
    /// Detections at or above this confidence are matched first and may start tracks.
    pub high_threshold: f32,
    /// Detections below this confidence are ignored; those between this and
    /// `high_threshold` only keep existing tracks alive.
    pub low_threshold: f32,
    /// A detection left unmatched starts a track only at or above this confidence.
    pub new_track_threshold: f32,
    /// The least IoU at which a confirmed track and a high-confidence detection match.
    pub match_iou: f32,
    /// The least IoU at which a track and a low-confidence detection match.
    pub low_match_iou: f32,
    /// The least IoU at which a tentative track and a detection match.
    pub tentative_match_iou: f32,
    /// Frames in a row a new track must be matched before it is confirmed and reported.
    pub probation: u32,
    /// Seconds a lost track is kept for its object to come back.
    pub lost_timeout: f64,
    /// Match only detections of the track's class.
    pub per_class: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::ByteTrack,
            high_threshold: 0.5,
            low_threshold: 0.1,
            new_track_threshold: 0.6,
            match_iou: 0.2,
            low_match_iou: 0.5,
            tentative_match_iou: 0.3,
            probation: 2,
            lost_timeout: 1.0,
            per_class: true,
        }
    }
}

/// One detection of a frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    pub rect: Rect,
    pub confidence: f32,
    pub class_id: u32,
}

/// A track started (was confirmed) or ended. Times are stream times in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    Started {
        track_id: u64,
        class_id: u32,
        /// When its object was first seen.
        time: f64,
    },
    Ended {
        track_id: u64,
        class_id: u32,
        /// When its object was last seen.
        time: f64,
        /// From first to last sight.
        duration: f64,
    },
}

/// A followed track's box predicted for a frame without detections of its own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Predicted {
    pub track_id: u64,
    pub class_id: u32,
    /// The confidence of its last detection.
    pub confidence: f32,
    pub rect: Rect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Tentative,
    Tracked,
    Lost,
}

#[derive(Debug)]
struct Track {
    id: Option<u64>,
    class_id: u32,
    confidence: f32,
    state: State,
    filter: BoxFilter,
    /// Last detected box (the prediction in [`Mode::Iou`]).
    last: Rect,
    /// The time the filter state is at.
    filter_time: f64,
    hits: u32,
    first_seen: f64,
    last_seen: f64,
    /// The `update` call that last matched it: "matched this frame" does not rely on
    /// frames having distinct times (untimed buffers may all carry the same one).
    matched: u64,
}

/// Counters since the tracker was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Confirmed tracks that are following their object now.
    pub active: usize,
    pub started: u64,
    pub ended: u64,
}

/// The tracks of one source.
pub struct Tracker {
    config: Config,
    tracks: Vec<Track>,
    next_id: u64,
    time: Option<f64>,
    /// Counts `update` calls.
    frame: u64,
    events: Vec<Event>,
    started: u64,
    ended: u64,
    // Per-frame buffers, kept to avoid allocating.
    assignment: Assignment,
    cost: Vec<f32>,
    ids: Vec<Option<u64>>,
    det_free: Vec<bool>,
    rows: Vec<usize>,
    cols: Vec<usize>,
}

impl Tracker {
    pub fn new(config: Config) -> Self {
        Tracker {
            config,
            tracks: Vec::new(),
            next_id: 1,
            time: None,
            frame: 0,
            events: Vec::new(),
            started: 0,
            ended: 0,
            assignment: Assignment::default(),
            cost: Vec::new(),
            ids: Vec::new(),
            det_free: Vec::new(),
            rows: Vec::new(),
            cols: Vec::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Tracks the detections of the frame at `time` (seconds). Returns the track id of each
    /// detection, `None` for detections not (yet) part of a confirmed track. A time earlier
    /// than the last frame's (a seek, a new segment) ends every track first.
    pub fn update(&mut self, time: f64, detections: &[Detection]) -> &[Option<u64>] {
        if self.time.is_some_and(|t| time < t) {
            self.end_all();
        }
        self.time = Some(time);
        self.frame += 1;
        let iou_mode = self.config.mode == Mode::Iou;
        for t in &mut self.tracks {
            if !iou_mode {
                t.filter
                    .predict((time - t.filter_time) as f32, t.state != State::Tracked);
            }
            t.filter_time = time;
        }
        self.expire(time);

        self.ids.clear();
        self.ids.resize(detections.len(), None);
        self.det_free.clear();
        self.det_free.resize(detections.len(), true);
        let high = self.config.high_threshold;
        let low = self.config.low_threshold;
        let is_high = |d: &Detection| d.confidence >= high;
        let is_low = |d: &Detection| d.confidence >= low && d.confidence < high;

        // 1. Confirmed tracks with high-confidence detections.
        self.match_stage(
            time,
            detections,
            |t| t.state != State::Tentative,
            is_high,
            self.config.match_iou,
        );
        // 2. Followed tracks left with low-confidence detections; the rest are lost.
        self.match_stage(
            time,
            detections,
            |t| t.state == State::Tracked,
            is_low,
            self.config.low_match_iou,
        );
        for t in &mut self.tracks {
            if t.state == State::Tracked && t.matched != self.frame {
                t.state = State::Lost;
            }
        }
        // 3. Tentative tracks with the high-confidence detections left; misses are dropped.
        self.match_stage(
            time,
            detections,
            |t| t.state == State::Tentative,
            is_high,
            self.config.tentative_match_iou,
        );
        self.tracks
            .retain(|t| t.state != State::Tentative || t.matched == self.frame);
        // 4. New tracks.
        for (k, d) in detections.iter().enumerate() {
            if self.det_free[k] && d.confidence >= self.config.new_track_threshold {
                self.tracks.push(Track {
                    id: None,
                    class_id: d.class_id,
                    confidence: d.confidence,
                    state: State::Tentative,
                    filter: BoxFilter::new(&d.rect),
                    last: d.rect,
                    filter_time: time,
                    hits: 1,
                    first_seen: time,
                    last_seen: time,
                    matched: self.frame,
                });
                let t = self.tracks.len() - 1;
                self.ids[k] = self.confirm_if_due(t);
            }
        }
        &self.ids
    }

    /// Matches the tracks that `track_filter` selects and that are not updated at `time` yet
    /// with the free detections that `det_filter` selects; updates the matched tracks.
    fn match_stage(
        &mut self,
        time: f64,
        detections: &[Detection],
        track_filter: impl Fn(&Track) -> bool,
        det_filter: impl Fn(&Detection) -> bool,
        min_iou: f32,
    ) {
        let mut rows = std::mem::take(&mut self.rows);
        let mut cols = std::mem::take(&mut self.cols);
        rows.clear();
        rows.extend(
            (0..self.tracks.len())
                .filter(|&i| self.tracks[i].matched != self.frame && track_filter(&self.tracks[i])),
        );
        cols.clear();
        cols.extend(
            (0..detections.len()).filter(|&k| self.det_free[k] && det_filter(&detections[k])),
        );
        if !rows.is_empty() && !cols.is_empty() {
            self.cost.clear();
            for &i in &rows {
                let t = &self.tracks[i];
                let predicted = self.predicted_rect(t);
                self.cost.extend(cols.iter().map(|&k| {
                    let d = &detections[k];
                    if self.config.per_class && d.class_id != t.class_id {
                        1.0
                    } else {
                        1.0 - predicted.iou(&d.rect)
                    }
                }));
            }
            let limit = 1.0 - min_iou;
            let mut assignment = std::mem::take(&mut self.assignment);
            let (n, m) = (rows.len(), cols.len());
            let matches = match self.config.mode {
                Mode::ByteTrack => assignment.hungarian(&self.cost, n, m, limit),
                Mode::Iou => assignment.greedy(&self.cost, n, m, limit),
            };
            for (r, c) in matches.iter().enumerate() {
                if let Some(c) = *c {
                    let (t, k) = (rows[r], cols[c]);
                    self.det_free[k] = false;
                    self.ids[k] = self.apply(t, &detections[k], time);
                }
            }
            self.assignment = assignment;
        }
        self.rows = rows;
        self.cols = cols;
    }

    fn predicted_rect(&self, t: &Track) -> Rect {
        match self.config.mode {
            Mode::ByteTrack => t.filter.rect(),
            Mode::Iou => t.last,
        }
    }

    /// Updates track `t` with detection `d`; returns its id if it is confirmed.
    fn apply(&mut self, t: usize, d: &Detection, time: f64) -> Option<u64> {
        let track = &mut self.tracks[t];
        if self.config.mode == Mode::ByteTrack {
            track.filter.update(&d.rect);
        }
        track.last = d.rect;
        track.confidence = d.confidence;
        track.class_id = d.class_id;
        track.last_seen = time;
        track.matched = self.frame;
        track.hits += 1;
        if track.state == State::Lost {
            track.state = State::Tracked;
        }
        self.confirm_if_due(t)
    }

    fn confirm_if_due(&mut self, t: usize) -> Option<u64> {
        let track = &mut self.tracks[t];
        if track.id.is_none() && track.hits >= self.config.probation {
            track.id = Some(self.next_id);
            track.state = State::Tracked;
            self.next_id += 1;
            self.started += 1;
            self.events.push(Event::Started {
                track_id: self.next_id - 1,
                class_id: track.class_id,
                time: track.first_seen,
            });
        }
        track.id
    }

    /// Ends the tracks whose object has not been seen for longer than `lost_timeout` (lost
    /// ones, and followed ones after a gap in the frames).
    fn expire(&mut self, time: f64) {
        let timeout = self.config.lost_timeout;
        let mut k = 0;
        while k < self.tracks.len() {
            let t = &self.tracks[k];
            if time - t.last_seen > timeout {
                let t = self.tracks.swap_remove(k);
                self.record_end(&t);
            } else {
                k += 1;
            }
        }
    }

    fn record_end(&mut self, t: &Track) {
        if let Some(track_id) = t.id {
            self.ended += 1;
            self.events.push(Event::Ended {
                track_id,
                class_id: t.class_id,
                time: t.last_seen,
                duration: t.last_seen - t.first_seen,
            });
        }
    }

    /// Ends every track (end of stream, flush, seek). Ids keep counting up.
    pub fn end_all(&mut self) {
        for t in std::mem::take(&mut self.tracks) {
            self.record_end(&t);
        }
        self.time = None;
    }

    /// The boxes of the followed, confirmed tracks predicted at `time`, for a frame whose
    /// detections were copied rather than computed. Changes nothing. Not before a track's
    /// last update (time went back) nor past its `lost_timeout` (a stalled source): no
    /// extrapolation into a gap.
    pub fn predict(&self, time: f64) -> impl Iterator<Item = Predicted> + '_ {
        let timeout = self.config.lost_timeout;
        self.tracks
            .iter()
            .filter(move |t| {
                t.state == State::Tracked && time >= t.filter_time && time - t.last_seen <= timeout
            })
            .filter_map(move |t| {
                let rect = match self.config.mode {
                    Mode::ByteTrack => t.filter.rect_after((time - t.filter_time) as f32),
                    Mode::Iou => t.last,
                };
                Some(Predicted {
                    track_id: t.id?,
                    class_id: t.class_id,
                    confidence: t.confidence,
                    rect,
                })
            })
    }

    /// Takes the tracks started and ended since the last call.
    pub fn take_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    pub fn counts(&self) -> Counts {
        Counts {
            active: self
                .tracks
                .iter()
                .filter(|t| t.id.is_some() && t.state == State::Tracked)
                .count(),
            started: self.started,
            ended: self.ended,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32, confidence: f32) -> Detection {
        Detection {
            rect: Rect::new(x, y, 40.0, 80.0),
            confidence,
            class_id: 0,
        }
    }

    const FRAME: f64 = 1.0 / 30.0;

    #[test]
    fn two_crossing_objects_keep_their_ids() {
        // Two people walk towards each other and pass, overlapping for a few frames.
        let mut tracker = Tracker::new(Config::default());
        let mut seen = Vec::new();
        for k in 0..60 {
            let a = det(100.0 + 4.0 * k as f32, 100.0, 0.9);
            let b = det(340.0 - 4.0 * k as f32, 110.0, 0.8);
            let ids = tracker.update(k as f64 * FRAME, &[a, b]).to_vec();
            seen.push(ids);
        }
        assert_eq!(seen[0], vec![None, None], "on probation in the first frame");
        assert_eq!(seen[1], vec![Some(1), Some(2)]);
        for (k, ids) in seen.iter().enumerate().skip(1) {
            assert_eq!(ids, &vec![Some(1), Some(2)], "frame {k}");
        }
        let events: Vec<Event> = tracker.take_events().collect();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(
            events[0],
            Event::Started {
                track_id: 1,
                time: 0.0,
                ..
            }
        ));
    }

    #[test]
    fn frames_with_one_time_are_tracked_like_any_others() {
        // Untimed buffers may all get the same time: each update is still one frame.
        let mut tracker = Tracker::new(Config::default());
        for k in 0..50 {
            let ids = tracker
                .update(0.0, &[det(100.0 + k as f32, 100.0, 0.9)])
                .to_vec();
            if k > 0 {
                assert_eq!(ids, vec![Some(1)], "frame {k}");
            }
        }
        assert_eq!(tracker.tracks.len(), 1);
        assert_eq!(tracker.counts().started, 1);
    }

    #[test]
    fn a_low_confidence_dip_keeps_the_track_and_a_gap_within_the_timeout_too() {
        let mut tracker = Tracker::new(Config::default());
        let mut t = 0.0;
        let mut step = |tracker: &mut Tracker, x: f32, c: Option<f32>| {
            t += FRAME;
            let dets: Vec<Detection> = c.map(|c| det(x, 50.0, c)).into_iter().collect();
            tracker.update(t, &dets).to_vec()
        };
        for k in 0..10 {
            step(&mut tracker, 10.0 + 3.0 * k as f32, Some(0.9));
        }
        // Stage 2: a 0.3 detection keeps track 1 rather than being dropped.
        assert_eq!(step(&mut tracker, 40.0, Some(0.3)), vec![Some(1)]);
        // 20 frames (0.67 s) with nothing: lost but not ended; the filter carries it on.
        for _ in 0..20 {
            assert_eq!(step(&mut tracker, 0.0, None), vec![]);
        }
        assert_eq!(tracker.counts().active, 0);
        assert_eq!(
            step(&mut tracker, 40.0 + 3.0 * 21.0, Some(0.9)),
            vec![Some(1)]
        );
        assert_eq!(
            tracker.counts(),
            Counts {
                active: 1,
                started: 1,
                ended: 0
            }
        );
    }

    #[test]
    fn tracks_end_after_the_lost_timeout_in_stream_time_and_ids_are_not_reused() {
        let config = Config {
            lost_timeout: 0.5,
            ..Config::default()
        };
        let mut tracker = Tracker::new(config);
        tracker.update(0.0, &[det(10.0, 10.0, 0.9)]);
        assert_eq!(tracker.update(0.1, &[det(12.0, 10.0, 0.9)]), &[Some(1)]);
        // One frame 0.45 s later (a skipped stretch): still within the timeout.
        tracker.update(0.55, &[]);
        assert_eq!(tracker.update(0.6, &[det(14.0, 10.0, 0.9)]), &[Some(1)]);
        tracker.update(1.2, &[]);
        let ended: Vec<Event> = tracker.take_events().collect();
        assert_eq!(
            ended.last(),
            Some(&Event::Ended {
                track_id: 1,
                class_id: 0,
                time: 0.6,
                duration: 0.6
            })
        );
        tracker.update(1.3, &[det(14.0, 10.0, 0.9)]);
        assert_eq!(
            tracker.update(1.4, &[det(14.0, 10.0, 0.9)]),
            &[Some(2)],
            "a new id"
        );
    }

    #[test]
    fn probation_drops_one_frame_false_positives() {
        let mut tracker = Tracker::new(Config {
            probation: 3,
            ..Config::default()
        });
        let mut t = 0.0;
        for k in 0..20 {
            t += FRAME;
            // A flicker every other frame at one place, a steady object at another.
            let mut dets = vec![det(300.0, 300.0, 0.9)];
            if k % 2 == 0 {
                dets.push(det(10.0, 10.0, 0.9));
            }
            let ids = tracker.update(t, &dets).to_vec();
            assert_eq!(ids[0], (k >= 2).then_some(1), "frame {k}");
            if k % 2 == 0 {
                assert_eq!(ids[1], None, "the flicker is never confirmed");
            }
        }
        assert_eq!(tracker.counts().started, 1);
    }

    #[test]
    fn per_class_matching_keeps_classes_apart() {
        let person = det(50.0, 50.0, 0.9);
        let bag = Detection {
            class_id: 24,
            ..person
        };
        let mut tracker = Tracker::new(Config::default());
        tracker.update(0.0, &[person]);
        tracker.update(FRAME, &[person]);
        // The person's box is now a bag: per class, that is a new object.
        assert_eq!(tracker.update(2.0 * FRAME, &[bag]), &[None]);
        let mut agnostic = Tracker::new(Config {
            per_class: false,
            ..Config::default()
        });
        agnostic.update(0.0, &[person]);
        agnostic.update(FRAME, &[person]);
        assert_eq!(agnostic.update(2.0 * FRAME, &[bag]), &[Some(1)]);
    }

    #[test]
    fn prediction_for_stale_frames_moves_with_the_object() {
        let mut tracker = Tracker::new(Config::default());
        for k in 0..30 {
            tracker.update(k as f64 * FRAME, &[det(100.0 + 6.0 * k as f32, 40.0, 0.9)]);
        }
        // 10 frames on, the object is 60 px further right (180 px/s).
        let p: Vec<Predicted> = tracker.predict(39.0 * FRAME).collect();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].track_id, 1);
        let expected = Rect::new(100.0 + 6.0 * 39.0, 40.0, 40.0, 80.0);
        assert!(
            p[0].rect.iou(&expected) > 0.85,
            "{:?} vs {expected:?}",
            p[0].rect
        );
        // The IoU mode has no motion model: the last box.
        let mut iou = Tracker::new(Config {
            mode: Mode::Iou,
            ..Config::default()
        });
        for k in 0..30 {
            iou.update(k as f64 * FRAME, &[det(100.0 + 6.0 * k as f32, 40.0, 0.9)]);
        }
        let p: Vec<Predicted> = iou.predict(39.0 * FRAME).collect();
        assert_eq!(p[0].rect, Rect::new(100.0 + 6.0 * 29.0, 40.0, 40.0, 80.0));
        // Not into a gap past lost_timeout (1 s), nor back in time.
        assert_eq!(tracker.predict(29.0 * FRAME + 1.5).count(), 0);
        assert_eq!(tracker.predict(10.0 * FRAME).count(), 0);
    }

    #[test]
    fn time_going_back_ends_every_track() {
        let mut tracker = Tracker::new(Config::default());
        tracker.update(5.0, &[det(10.0, 10.0, 0.9)]);
        tracker.update(5.1, &[det(10.0, 10.0, 0.9)]);
        tracker.update(0.0, &[det(10.0, 10.0, 0.9)]);
        assert_eq!(
            tracker.counts(),
            Counts {
                active: 0,
                started: 1,
                ended: 1
            }
        );
        assert_eq!(tracker.update(0.1, &[det(10.0, 10.0, 0.9)]), &[Some(2)]);
    }

    #[test]
    fn below_the_low_threshold_is_ignored_and_probation_one_confirms_at_once() {
        let mut tracker = Tracker::new(Config {
            probation: 1,
            ..Config::default()
        });
        assert_eq!(
            tracker.update(0.0, &[det(0.0, 0.0, 0.9), det(200.0, 0.0, 0.05)]),
            &[Some(1), None]
        );
    }
}
