//! rtrecord: a sink for encoded video that keeps the last `pre-capture` seconds and writes an
//! MP4 clip around each trigger.
//!
//! Glue over `recorder::Recorder` (what to keep and write) and `clip::Writer` (the MP4).
//! Triggers come from the `rt-record` query (rtalert sends it for each alert; it answers with
//! the clip's path) and the `record` action signal. Locks: `state` (recorder, names, counters)
//! is held only for bookkeeping; `stream` (caps, the open writer) by the streaming thread for
//! one frame, and by `stop` after it has ended. Warnings are posted after both are released. Clips are finished (mp4mux writing its index, the rename, retention) on a thread of
//! their own, `rtrecord-finish`, which posts the `rtrecord-clip` message; EOS and stop wait for
//! them, so every clip is complete when the pipeline says it is done.

use crate::clip::{self, Clip, ClipError, Writer};
use crate::recorder::{Action, Frame, Limits, Recorder, Triggered};
use crate::retention;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::thread::JoinHandle;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtrecord",
        gst::DebugColorFlags::empty(),
        Some("Clips around alerts"),
    )
});

#[derive(Clone, Debug)]
struct Settings {
    location: PathBuf,
    pre_capture: f64,
    post_capture: f64,
    max_duration: f64,
    max_clips: u32,
    max_bytes: u64,
    max_buffer_bytes: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: PathBuf::from("clips"),
            pre_capture: 5.0,
            post_capture: 5.0,
            max_duration: 60.0,
            max_clips: 0,
            max_bytes: 0,
            max_buffer_bytes: 64 << 20,
        }
    }
}

impl Settings {
    fn limits(&self) -> Limits {
        let ns = |s: f64| (s * 1e9) as u64;
        Limits {
            pre: ns(self.pre_capture),
            post: ns(self.post_capture),
            max_duration: ns(self.max_duration),
            max_bytes: self.max_buffer_bytes as usize,
        }
    }
}

#[derive(Default)]
struct Counters {
    triggers: u64,
    clips: u64,
    failed: u64,
    removed: u64,
    bytes_written: u64,
}

struct State {
    recorder: Recorder<gst::Buffer>,
    /// Path of the clip that is open or waiting to start.
    clip: Option<PathBuf>,
    /// The name given last and how many clips had it, so two clips asked for in the same
    /// millisecond differ.
    last_name: (String, u32),
    counters: Counters,
}

/// A clip given up, reported once the stream lock is released.
struct Failure {
    path: Option<PathBuf>,
    /// "written" or "finished".
    stage: &'static str,
    error: ClipError,
}

#[derive(Default)]
struct Stream {
    caps: Option<gst::Caps>,
    writer: Option<Writer>,
}

#[derive(Default)]
pub struct RtRecord {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    stream: Mutex<Stream>,
    finishers: Mutex<Vec<JoinHandle<()>>>,
    /// `stats` of the last run, for reading after the element stopped.
    last_stats: Mutex<Option<gst::Structure>>,
}

#[glib::object_subclass]
impl ObjectSubclass for RtRecord {
    const NAME: &'static str = "GstRtRecord";
    type Type = super::RtRecord;
    type ParentType = gst_base::BaseSink;
}

impl RtRecord {
    /// Asks for the moment `at` (running time; the newest frame's when None) to be recorded;
    /// returns the path of the clip that will hold it.
    fn trigger(&self, at: Option<gst::ClockTime>, reason: &str) -> Option<String> {
        let dir = self.settings.lock().unwrap().location.clone();
        let mut guard = self.state.lock().unwrap();
        let state = guard.as_mut()?;
        let t = at.map_or_else(|| state.recorder.newest().unwrap_or(0), |t| t.nseconds());
        state.counters.triggers += 1;
        if state.recorder.trigger(t) == Triggered::New || state.clip.is_none() {
            state.clip = Some(self.new_clip_path(state, &dir));
        }
        let path = state.clip.as_ref().map(|p| p.display().to_string());
        gst::debug!(CAT, imp = self, "{reason} at {t} ns: {path:?}");
        path
    }

    /// `DIR/NAME-STAMP.mp4` for the next clip (`-N` after clips named in the same millisecond).
    fn new_clip_path(&self, state: &mut State, dir: &Path) -> PathBuf {
        let base = format!(
            "{}-{}",
            self.obj().name(),
            rtalgo::time::Utc::now().compact()
        );
        let name = if base == state.last_name.0 {
            state.last_name.1 += 1;
            format!("{base}-{}", state.last_name.1)
        } else {
            state.last_name = (base.clone(), 1);
            base
        };
        dir.join(format!("{name}.mp4"))
    }

    /// Does what the recorder asked, on the streaming thread; `path` is the clip a `Start`
    /// opens. Returns the failures to report once the stream lock is released.
    fn apply(
        &self,
        stream: &mut Stream,
        actions: Vec<Action<gst::Buffer>>,
        path: Option<PathBuf>,
    ) -> Vec<Failure> {
        let mut failures = Vec::new();
        for action in actions {
            let written = match action {
                Action::Start(frames) => self.start_clip(stream, frames, path.clone()),
                Action::Write(buf) => match &mut stream.writer {
                    Some(w) => w.write(buf),
                    None => Ok(()),
                },
                Action::Finish => {
                    if let Some(w) = stream.writer.take() {
                        self.finish_clip(w);
                    }
                    Ok(())
                }
            };
            if let Err(error) = written {
                failures.push(self.fail_clip(stream, path.clone(), error));
            }
        }
        // A full disk shows up on the clip's own bus; catch it before the next frame.
        if let Some(error) = stream.writer.as_ref().and_then(|w| w.failure()) {
            failures.push(self.fail_clip(stream, None, error));
        }
        failures
    }

    /// Posts a warning per failed clip: the clip pipeline's own error when it has one
    /// (`NoSpaceLeft` for a full disk). Called with no lock held.
    fn warn(&self, failures: Vec<Failure>) {
        for Failure { path, stage, error } in failures {
            let what = path.map_or_else(String::new, |p| format!(" {}", p.display()));
            let text = format!("The clip{what} could not be {stage} and was removed: {error}");
            let debug = "Recording goes on with the next trigger";
            match error.resource_error() {
                Some(kind) => gst::element_imp_warning!(self, kind, ("{text}"), ["{debug}"]),
                None => gst::element_imp_warning!(
                    self,
                    gst::CoreError::MissingPlugin,
                    ("{text}"),
                    ["{debug}"]
                ),
            }
        }
    }

    fn start_clip(
        &self,
        stream: &mut Stream,
        frames: Vec<gst::Buffer>,
        path: Option<PathBuf>,
    ) -> Result<(), ClipError> {
        if let Some(w) = stream.writer.take() {
            self.finish_clip(w);
        }
        let (Some(path), Some(caps)) = (path, stream.caps.as_ref()) else {
            return Err(ClipError::Unready);
        };
        // location may have been changed to a folder that is not there yet.
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ClipError::Folder {
                dir: dir.to_path_buf(),
                source: e,
            })?;
        }
        // The ring's frames carry running times (see `render`).
        let start = frames
            .first()
            .and_then(|b| b.dts_or_pts())
            .unwrap_or_default();
        let mut writer = Writer::open(caps, path.clone(), start).inspect_err(|_| {
            let _ = std::fs::remove_file(clip::part_path(&path));
        })?;
        gst::info!(CAT, imp = self, "clip {} from {start}", path.display());
        for buf in frames {
            if let Err(e) = writer.write(buf) {
                writer.abort();
                return Err(e);
            }
        }
        stream.writer = Some(writer);
        Ok(())
    }

    /// The open clip (or the one `path` names) cannot be written: it is dropped and counted.
    fn fail_clip(&self, stream: &mut Stream, path: Option<PathBuf>, error: ClipError) -> Failure {
        let path = stream.writer.as_ref().map(|w| w.path().to_owned()).or(path);
        if let Some(w) = stream.writer.take() {
            w.abort();
        }
        if let Some(state) = self.state.lock().unwrap().as_mut() {
            state.recorder.abort();
            if !state.recorder.busy() {
                state.clip = None;
            }
            state.counters.failed += 1;
        }
        Failure {
            path,
            stage: "written",
            error,
        }
    }

    /// Finishes a clip on its own thread, which reports it.
    fn finish_clip(&self, writer: Writer) {
        let weak = self.obj().downgrade();
        let finish = move || {
            let result = writer.finish();
            if let Some(obj) = weak.upgrade() {
                obj.imp().finished(result);
            }
        };
        let mut finishers = self.finishers.lock().unwrap();
        finishers.retain(|h| !h.is_finished());
        match std::thread::Builder::new()
            .name("rtrecord-finish".into())
            .spawn(finish)
        {
            Ok(h) => finishers.push(h),
            Err(e) => gst::error!(
                CAT,
                imp = self,
                "cannot start a thread to finish a clip: {e}"
            ),
        }
    }

    /// Counts and reports a finished clip, then applies retention. No lock is held.
    fn finished(&self, result: Result<Clip, (PathBuf, ClipError)>) {
        let clip = match result {
            Ok(clip) => clip,
            Err((path, error)) => {
                if let Some(state) = self.state.lock().unwrap().as_mut() {
                    state.counters.failed += 1;
                }
                self.warn(vec![Failure {
                    path: Some(path),
                    stage: "finished",
                    error,
                }]);
                return;
            }
        };
        gst::info!(
            CAT,
            imp = self,
            "finished {} ({} bytes)",
            clip.path.display(),
            clip.bytes
        );
        if let Some(state) = self.state.lock().unwrap().as_mut() {
            state.counters.clips += 1;
            state.counters.bytes_written += clip.bytes;
        }
        let s = gst::Structure::builder("rtrecord-clip")
            .field("location", clip.path.display().to_string())
            .field("start", clip.start)
            .field("duration", clip.duration)
            .field("frames", clip.frames)
            .field("bytes", clip.bytes)
            .build();
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
        let (max_clips, max_bytes) = {
            let s = self.settings.lock().unwrap();
            (s.max_clips, s.max_bytes)
        };
        // The folder this clip went to (location may have changed since).
        let dir = clip
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let name = self.obj().name();
        match retention::prune(&dir, &name, max_clips, max_bytes) {
            Ok(removed) => {
                for p in &removed {
                    gst::info!(CAT, imp = self, "removed {} (retention)", p.display());
                }
                if let Some(state) = self.state.lock().unwrap().as_mut() {
                    state.counters.removed += removed.len() as u64;
                }
            }
            Err(e) => gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("Cannot remove old clips in {}: {e}", dir.display())
            ),
        }
    }

    /// Closes the open clip (or writes the one waiting) and waits until every clip is finished.
    fn end_clips(&self) {
        let mut stream = self.stream.lock().unwrap();
        let (actions, path) = match self.state.lock().unwrap().as_mut() {
            Some(state) => {
                let path = state.clip.take();
                (state.recorder.finish(), path)
            }
            None => (Vec::new(), None),
        };
        let failures = self.apply(&mut stream, actions, path);
        if let Some(w) = stream.writer.take() {
            self.finish_clip(w);
        }
        drop(stream);
        self.warn(failures);
        let finishers = std::mem::take(&mut *self.finishers.lock().unwrap());
        for h in finishers {
            let _ = h.join();
        }
    }

    /// `buffer` with its timestamps as running times, or `None` when it has none. Clips are
    /// written from these, so frames kept across a new segment (a concatenation, a looping
    /// source) stay in order and without gaps; only the header is copied.
    fn in_running_time(&self, buffer: &gst::Buffer) -> Option<(gst::ClockTime, gst::Buffer)> {
        let segment = self.obj().segment();
        let segment = segment.downcast_ref::<gst::ClockTime>()?;
        let time = segment.to_running_time(buffer.dts_or_pts()?)?;
        let running = |t: Option<gst::ClockTime>| t.and_then(|t| segment.to_running_time(t));
        let (dts, pts) = (running(buffer.dts()), running(buffer.pts()));
        let mut data = buffer.clone();
        // The usual segment (from 0, base 0) changes nothing: no header copy per frame then.
        if (dts, pts) != (buffer.dts(), buffer.pts()) {
            let b = data.make_mut();
            b.set_dts(dts);
            b.set_pts(pts);
        }
        Some((time, data))
    }

    /// The live statistics while started, the last run's after it stopped.
    fn stats(&self) -> gst::Structure {
        let guard = self.state.lock().unwrap();
        let Some(state) = guard.as_ref() else {
            return self
                .last_stats
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| gst::Structure::new_empty("rtrecord-stats"));
        };
        let c = &state.counters;
        let (bytes, span) = state.recorder.buffered();
        gst::Structure::builder("rtrecord-stats")
            .field("triggers", c.triggers)
            .field("clips", c.clips)
            .field("failed", c.failed)
            .field("removed", c.removed)
            .field("bytes-written", c.bytes_written)
            .field("recording", state.recorder.is_open())
            .field("buffered-bytes", bytes as u64)
            .field("buffered-time", gst::ClockTime::from_nseconds(span))
            .field("dropped-frames", state.recorder.dropped())
            .build()
    }
}

impl ObjectImpl for RtRecord {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            let seconds = |name: &str, nick: &str, blurb: &str, max: f64, default: f64| {
                glib::ParamSpecDouble::builder(name)
                    .nick(nick)
                    .blurb(blurb)
                    .minimum(0.0)
                    .maximum(max)
                    .default_value(default)
                    .mutable_ready()
                    .build()
            };
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("Clip folder")
                    .blurb("Folder the clips are written to (created if missing; a change applies to the next clip), as <element name>-<UTC time>.mp4; while a clip is written it is <name>.mp4.part")
                    .default_value(d.location.to_str())
                    .mutable_playing()
                    .build(),
                seconds("pre-capture", "Pre-capture", "Seconds kept before a trigger; the clip starts at the keyframe at or before them", 3600.0, d.pre_capture),
                seconds("post-capture", "Post-capture", "Seconds recorded after a trigger; a trigger during a clip extends it", 3600.0, d.post_capture),
                seconds("max-duration", "Longest clip", "Seconds after which a clip ends whatever the triggers ask", 86_400.0, d.max_duration),
                glib::ParamSpecUInt::builder("max-clips")
                    .nick("Most clips")
                    .blurb("Clips of this element (NAME-STAMP.mp4) kept in the folder; its oldest are removed after each new clip, other files never (0: no limit)")
                    .default_value(d.max_clips)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("max-bytes")
                    .nick("Most bytes")
                    .blurb("Bytes of this element's clips kept in the folder; its oldest are removed after each new clip, other files never (0: no limit)")
                    .default_value(d.max_bytes)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("max-buffer-bytes")
                    .nick("Pre-capture memory")
                    .blurb("Most bytes of encoded video kept for the pre-capture; whole GOPs beyond it are dropped (counted in stats as dropped-frames)")
                    .minimum(1)
                    .default_value(d.max_buffer_bytes)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("triggers, clips (finished), failed, removed (retention), bytes-written, recording, buffered-bytes, buffered-time (ns), dropped-frames")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "location" => {
                s.location = value
                    .get::<Option<String>>()
                    .unwrap()
                    .map_or_else(|| Settings::default().location, PathBuf::from)
            }
            "pre-capture" => s.pre_capture = value.get().unwrap(),
            "post-capture" => s.post_capture = value.get().unwrap(),
            "max-duration" => s.max_duration = value.get().unwrap(),
            "max-clips" => s.max_clips = value.get().unwrap(),
            "max-bytes" => s.max_bytes = value.get().unwrap(),
            "max-buffer-bytes" => s.max_buffer_bytes = value.get().unwrap(),
            _ => unreachable!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats().to_value();
        }
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "location" => s.location.display().to_string().to_value(),
            "pre-capture" => s.pre_capture.to_value(),
            "post-capture" => s.post_capture.to_value(),
            "max-duration" => s.max_duration.to_value(),
            "max-clips" => s.max_clips.to_value(),
            "max-bytes" => s.max_bytes.to_value(),
            "max-buffer-bytes" => s.max_buffer_bytes.to_value(),
            _ => unreachable!(),
        }
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![
                // Records around the newest frame; returns the clip's path (NULL before the
                // element has started).
                glib::subclass::Signal::builder("record")
                    .action()
                    .return_type::<Option<String>>()
                    .class_handler(|args| {
                        let element = args[0].get::<super::RtRecord>().unwrap();
                        Some(element.imp().trigger(None, "record signal").to_value())
                    })
                    .build(),
            ]
        });
        SIGNALS.as_ref()
    }

    fn constructed(&self) {
        self.parent_constructed();
        // A recorder writes what it gets as it gets it; waiting on the clock would only delay
        // a file source. A live source paces itself.
        self.obj().set_sync(false);
        // The ring holds what is needed; a last sample would only pin one more buffer.
        self.obj().set_enable_last_sample(false);
    }
}

impl GstObjectImpl for RtRecord {}

impl ElementImpl for RtRecord {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Alert clip recorder",
                "Sink/Video",
                "Keeps the last seconds of encoded video and writes MP4 clips around triggers \
                 (rtalert alerts upstream, the record signal), from pre-capture before to \
                 post-capture after",
                "rt analytics",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder_full()
                .structure(
                    gst::Structure::builder("video/x-h264")
                        .field("stream-format", gst::List::new(["avc", "avc3"]))
                        .field("alignment", "au")
                        .build(),
                )
                .structure(
                    gst::Structure::builder("video/x-h265")
                        .field("stream-format", gst::List::new(["hvc1", "hev1"]))
                        .field("alignment", "au")
                        .build(),
                )
                .structure(gst::Structure::new_empty("video/x-vp9"))
                .build();
            vec![
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

impl BaseSinkImpl for RtRecord {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = self.settings.lock().unwrap().clone();
        std::fs::create_dir_all(&s.location).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenWrite,
                (
                    "Cannot create the clip folder {}: {e}",
                    s.location.display()
                )
            )
        })?;
        *self.state.lock().unwrap() = Some(State {
            recorder: Recorder::new(s.limits()),
            clip: None,
            last_name: (String::new(), 0),
            counters: Counters::default(),
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // Stopping mid-clip finishes it: what was recorded is kept, as a valid MP4.
        self.end_clips();
        *self.stream.lock().unwrap() = Stream::default();
        let stats = self.stats();
        *self.last_stats.lock().unwrap() = Some(stats);
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let changed = {
            let stream = self.stream.lock().unwrap();
            stream.caps.as_ref().is_some_and(|c| c != caps)
        };
        if changed {
            // New caps (another resolution, new codec data): the ring cannot go into one file
            // with what follows.
            gst::info!(
                CAT,
                imp = self,
                "caps changed to {caps}: clip ended, ring emptied; a recording asked for goes on in a new clip"
            );
            // What the clip still asked for goes on in a new clip, from the first keyframe
            // with the new caps.
            let unfinished = self
                .state
                .lock()
                .unwrap()
                .as_ref()
                .and_then(|s| s.recorder.unfinished());
            self.end_clips();
            let dir = self.settings.lock().unwrap().location.clone();
            if let Some(state) = self.state.lock().unwrap().as_mut() {
                state.recorder.reset();
                if let Some((from, until)) = unfinished {
                    state.recorder.resume(from, until);
                    state.clip = Some(self.new_clip_path(state, &dir));
                }
            }
        }
        self.stream.lock().unwrap().caps = Some(caps.clone());
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some((time, data)) = self.in_running_time(buffer) else {
            gst::debug!(CAT, imp = self, "buffer without a running time: not kept");
            return Ok(gst::FlowSuccess::Ok);
        };
        let frame = Frame {
            time: time.nseconds(),
            key: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            bytes: buffer.size(),
            data,
        };
        let mut stream = self.stream.lock().unwrap();
        let (actions, path) = {
            let mut guard = self.state.lock().unwrap();
            let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
            let path = state.clip.clone();
            let actions = state.recorder.push(frame);
            if !state.recorder.busy() {
                state.clip = None;
            }
            (actions, path)
        };
        let failures = self.apply(&mut stream, actions, path);
        drop(stream);
        self.warn(failures);
        Ok(gst::FlowSuccess::Ok)
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let Some(req) = rtmeta::record::RecordRequest::from_query(query) {
            return match self.trigger(Some(req.running_time), &req.reason) {
                Some(path) => {
                    rtmeta::record::answer(query, &path);
                    true
                }
                None => false,
            };
        }
        BaseSinkImplExt::parent_query(self, query)
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            // Before the EOS message: the clips are complete when the app sees it.
            gst::EventView::Eos(_) => self.end_clips(),
            gst::EventView::FlushStop(_) => {
                self.end_clips();
                if let Some(state) = self.state.lock().unwrap().as_mut() {
                    state.recorder.reset();
                }
            }
            _ => {}
        }
        self.parent_event(event)
    }
}
