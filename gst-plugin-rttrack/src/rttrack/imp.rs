//! rttrack: gives the objects of `RtDetectionMeta` a `track-id`, per source.
//!
//! Thin glue over `rtalgo::track::Tracker`: one tracker per source id (frames of several
//! sources may pass one element), fed with each frame's detections at the frame's stream time.
//! Frames flagged `stale` (rtinfer's `interval`) get the followed tracks' predicted boxes.
//! Bus messages are posted after the state lock is released.

use super::TrackMode;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use rtalgo::geometry::Rect;
use rtalgo::track::{Config, Detection as TrackInput, Event, Tracker};
use rtmeta::{Detection, Detections};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rttrack",
        gst::DebugColorFlags::empty(),
        Some("Multi-object tracking"),
    )
});

/// The frame period assumed when a buffer has no timestamp and the caps no frame rate.
const FALLBACK_PERIOD: f64 = 1.0 / 30.0;

#[derive(Clone, Debug, Default)]
struct Settings {
    config: Config,
    track_messages: bool,
}

/// One source's tracker and what the meta needs that the tracker does not keep.
struct Source {
    tracker: Tracker,
    /// Label of each class seen, for predicted boxes and messages.
    labels: HashMap<u32, String>,
    inputs: Vec<TrackInput>,
    /// The objects of the last fresh frame, with their ids: what a stale frame shows.
    last: Vec<Detection>,
    /// The frame size the boxes refer to: a change (a camera switching profile) ends
    /// every track, whose boxes would not compare with the new ones.
    size: (u32, u32),
}

#[derive(Default)]
struct State {
    sources: HashMap<u32, Source>,
    /// Frame period from the caps, for buffers without timestamps.
    period: Option<f64>,
    config: Config,
}

/// A started or ended track, to post once the lock is released.
struct Message {
    source_id: u32,
    label: String,
    event: Event,
}

#[derive(Default)]
pub struct RtTrack {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

#[glib::object_subclass]
impl ObjectSubclass for RtTrack {
    const NAME: &'static str = "GstRtTrack";
    type Type = super::RtTrack;
    type ParentType = gst_base::BaseTransform;
}

impl RtTrack {
    /// Stream time of the buffer in seconds: its pts in the segment, or its frame number at
    /// the caps' frame rate.
    fn frame_time(&self, buffer: &gst::BufferRef, frame_number: u64, period: Option<f64>) -> f64 {
        let segment = self.obj().segment();
        buffer
            .pts()
            .and_then(|pts| {
                segment
                    .downcast_ref::<gst::ClockTime>()?
                    .to_stream_time(pts)
            })
            .map(|t| t.nseconds() as f64 / 1e9)
            .unwrap_or_else(|| frame_number as f64 * period.unwrap_or(FALLBACK_PERIOD))
    }

    /// Tracks the detections of `buf` in place; adds the started and ended tracks to
    /// `messages`.
    fn track(&self, buf: &gst::BufferRef, dets: &mut Detections, messages: &mut Vec<Message>) {
        let mut state = self.state.lock().unwrap();
        let time = self.frame_time(buf, dets.frame_number, state.period);
        let config = state.config.clone();
        let source = state
            .sources
            .entry(dets.source_id)
            .or_insert_with(|| Source {
                tracker: Tracker::new(config),
                labels: HashMap::new(),
                inputs: Vec::new(),
                last: Vec::new(),
                size: (dets.width, dets.height),
            });
        if source.size != (dets.width, dets.height) {
            source.size = (dets.width, dets.height);
            source.tracker.end_all();
            source.last.clear();
        }
        for o in &dets.objects {
            source
                .labels
                .entry(o.class_id)
                .or_insert_with(|| o.label.clone());
        }
        if dets.stale {
            // Copied detections say nothing new: the last fresh frame's objects (each one,
            // tracked or not, with its label and producer), the followed tracks moved to
            // where they are predicted now.
            dets.objects.clone_from(&source.last);
            for p in source.tracker.predict(time) {
                if let Some(o) = dets
                    .objects
                    .iter_mut()
                    .find(|o| o.track_id == Some(p.track_id))
                {
                    (o.x, o.y, o.w, o.h) = (p.rect.x, p.rect.y, p.rect.w, p.rect.h);
                }
            }
        } else {
            source.inputs.clear();
            source
                .inputs
                .extend(dets.objects.iter().map(|o| TrackInput {
                    rect: Rect::new(o.x, o.y, o.w, o.h),
                    confidence: o.confidence,
                    class_id: o.class_id,
                }));
            let ids = source.tracker.update(time, &source.inputs);
            for (o, id) in dets.objects.iter_mut().zip(ids) {
                o.track_id = *id;
            }
            source.last.clone_from(&dets.objects);
        }
        Self::collect(dets.source_id, source, messages);
    }

    fn collect(source_id: u32, source: &mut Source, messages: &mut Vec<Message>) {
        let labels = &source.labels;
        messages.extend(source.tracker.take_events().map(|event| {
            let class_id = match event {
                Event::Started { class_id, .. } | Event::Ended { class_id, .. } => class_id,
            };
            Message {
                source_id,
                label: labels.get(&class_id).cloned().unwrap_or_default(),
                event,
            }
        }));
    }

    /// Ends every track of every source (end of stream, flush).
    fn end_all(&self) -> Vec<Message> {
        let mut messages = Vec::new();
        let mut state = self.state.lock().unwrap();
        for (id, source) in state.sources.iter_mut() {
            source.tracker.end_all();
            Self::collect(*id, source, &mut messages);
        }
        messages
    }

    fn post(&self, messages: Vec<Message>) {
        if messages.is_empty() || !self.settings.lock().unwrap().track_messages {
            return;
        }
        let seconds = |t: f64| gst::ClockTime::from_nseconds((t.max(0.0) * 1e9) as u64);
        for m in messages {
            let s = match m.event {
                Event::Started {
                    track_id,
                    class_id,
                    time,
                } => gst::Structure::builder("rttrack-track")
                    .field("event", "started")
                    .field("source-id", m.source_id)
                    .field("track-id", track_id)
                    .field("class-id", class_id)
                    .field("label", m.label)
                    .field("time", seconds(time))
                    .build(),
                Event::Ended {
                    track_id,
                    class_id,
                    time,
                    duration,
                } => gst::Structure::builder("rttrack-track")
                    .field("event", "ended")
                    .field("source-id", m.source_id)
                    .field("track-id", track_id)
                    .field("class-id", class_id)
                    .field("label", m.label)
                    .field("time", seconds(time))
                    .field("duration", seconds(duration))
                    .build(),
            };
            let _ = self
                .obj()
                .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
        }
    }

    fn stats(&self) -> gst::Structure {
        let state = self.state.lock().unwrap();
        let (mut active, mut started, mut ended) = (0u64, 0u64, 0u64);
        for source in state.sources.values() {
            let c = source.tracker.counts();
            active += c.active as u64;
            started += c.started;
            ended += c.ended;
        }
        gst::Structure::builder("rttrack-stats")
            .field("sources", state.sources.len() as u32)
            .field("active-tracks", active)
            .field("started", started)
            .field("ended", ended)
            .build()
    }
}

impl ObjectImpl for RtTrack {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecEnum::builder_with_default("mode", TrackMode::from(d.config.mode))
                    .nick("Mode")
                    .blurb("How tracks are predicted and matched with detections")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("high-threshold")
                    .nick("High threshold")
                    .blurb(
                        "Detections at or above this confidence are matched first and can \
                         start tracks",
                    )
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.config.high_threshold)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("low-threshold")
                    .nick("Low threshold")
                    .blurb(
                        "Detections below this confidence are ignored; between this and \
                         high-threshold they only keep existing tracks alive (occlusion, blur). \
                         Set rtinfer's confidence-threshold this low for them to reach the tracker",
                    )
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.config.low_threshold)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("new-track-threshold")
                    .nick("New track threshold")
                    .blurb("An unmatched detection starts a track only at or above this confidence")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.config.new_track_threshold)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFloat::builder("match-iou")
                    .nick("Match IoU")
                    .blurb(
                        "The least overlap (intersection over union) between a track's predicted \
                         box and a detection for them to match",
                    )
                    .minimum(0.01)
                    .maximum(1.0)
                    .default_value(d.config.match_iou)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("probation")
                    .nick("Probation")
                    .blurb(
                        "Frames in a row a new track must be matched before it gets an id and is \
                         reported (1: at once)",
                    )
                    .minimum(1)
                    .maximum(100)
                    .default_value(d.config.probation)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("lost-timeout")
                    .nick("Lost timeout")
                    .blurb(
                        "Milliseconds of stream time that a track whose object is not seen is \
                         kept for the object to come back with the same id",
                    )
                    .maximum(3_600_000)
                    .default_value((d.config.lost_timeout * 1000.0) as u32)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("per-class")
                    .nick("Per class")
                    .blurb("Match a track only with detections of its own class")
                    .default_value(d.config.per_class)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("track-messages")
                    .nick("Track messages")
                    .blurb(
                        "Post an element message \"rttrack-track\" when a track starts and ends \
                         (event, source-id, track-id, class-id, label, time, and duration when \
                         ended)",
                    )
                    .default_value(d.track_messages)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("sources, active-tracks (followed now), started, ended")
                    .read_only()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        let c = &mut s.config;
        match pspec.name() {
            "mode" => c.mode = value.get::<TrackMode>().unwrap().into(),
            "high-threshold" => c.high_threshold = value.get().unwrap(),
            "low-threshold" => c.low_threshold = value.get().unwrap(),
            "new-track-threshold" => c.new_track_threshold = value.get().unwrap(),
            "match-iou" => c.match_iou = value.get().unwrap(),
            "probation" => c.probation = value.get().unwrap(),
            "lost-timeout" => c.lost_timeout = value.get::<u32>().unwrap() as f64 / 1000.0,
            "per-class" => c.per_class = value.get().unwrap(),
            "track-messages" => s.track_messages = value.get().unwrap(),
            _ => unreachable!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats().to_value();
        }
        let s = self.settings.lock().unwrap();
        let c = &s.config;
        match pspec.name() {
            "mode" => TrackMode::from(c.mode).to_value(),
            "high-threshold" => c.high_threshold.to_value(),
            "low-threshold" => c.low_threshold.to_value(),
            "new-track-threshold" => c.new_track_threshold.to_value(),
            "match-iou" => c.match_iou.to_value(),
            "probation" => c.probation.to_value(),
            "lost-timeout" => ((c.lost_timeout * 1000.0).round() as u32).to_value(),
            "per-class" => c.per_class.to_value(),
            "track-messages" => s.track_messages.to_value(),
            _ => unreachable!(),
        }
    }
}

impl GstObjectImpl for RtTrack {}

impl ElementImpl for RtTrack {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Multi-object tracker",
                "Filter/Analyzer/Video",
                "Follows the objects of RtDetectionMeta from frame to frame and writes their \
                 track-id (ByteTrack: Kalman prediction, high- then low-confidence matching). \
                 Tracks are kept per source id; ids start at 1 and are never reused. Frames \
                 flagged stale get the predicted boxes of the followed tracks.",
                "rt analytics developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::new_any();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for RtTrack {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let config = self.settings.lock().unwrap().config.clone();
        if config.low_threshold > config.high_threshold {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                (
                    "low-threshold ({}) is above high-threshold ({})",
                    config.low_threshold,
                    config.high_threshold
                )
            ));
        }
        gst::debug!(CAT, imp = self, "starting with {config:?}");
        *self.state.lock().unwrap() = State {
            config,
            ..State::default()
        };
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // Keep the counters readable after stop, but end the tracks.
        let messages = self.end_all();
        self.post(messages);
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let period = incaps
            .structure(0)
            .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
            .filter(|f| f.numer() > 0 && f.denom() > 0)
            .map(|f| f.denom() as f64 / f.numer() as f64);
        self.state.lock().unwrap().period = period;
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if matches!(
            event.type_(),
            gst::EventType::FlushStop | gst::EventType::Eos
        ) {
            let messages = self.end_all();
            self.post(messages);
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(mut dets) = Detections::from_buffer(buf) else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let mut messages = Vec::new();
        self.track(buf, &mut dets, &mut messages);
        if let Err(e) = dets.attach(buf) {
            gst::warning!(CAT, imp = self, "could not attach the detections: {e}");
        }
        // ROI metas made from the detections upstream (rtinfer roi-meta=true) get the ids too.
        if rtmeta::roi::has_roi(buf) {
            rtmeta::roi::attach_roi(&dets, buf);
        }
        self.post(messages);
        Ok(gst::FlowSuccess::Ok)
    }
}
