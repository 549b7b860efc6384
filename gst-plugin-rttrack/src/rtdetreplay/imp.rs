//! rtdetreplay: attaches the detections that rtjsonenc recorded to the frames of a video.
//!
//! Frames are numbered as rtinfer numbers them (from 0, from the start of the stream), and a
//! frame takes the recorded line with its number and the `source-id` property's source; a
//! frame whose timestamp was recorded takes that line instead, so a seek or a loop finds the
//! right detections. The file is read whole when the element starts, so nothing is read on
//! the streaming thread.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use rtmeta::Detections;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtdetreplay",
        gst::DebugColorFlags::empty(),
        Some("Detections from a JSON-lines file"),
    )
});

#[derive(Clone, Debug, Default)]
struct Settings {
    location: Option<PathBuf>,
    source_id: u32,
}

#[derive(Default)]
struct State {
    location: PathBuf,
    source_id: u32,
    /// The recorded detections of this source by frame number.
    frames: HashMap<u64, Detections>,
    /// Frame numbers by recorded timestamp (ns).
    by_pts: HashMap<u64, u64>,
    next_frame: u64,
    /// Frame size from the caps.
    size: Option<(u32, u32)>,
}

#[derive(Default)]
pub struct RtDetReplay {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

#[glib::object_subclass]
impl ObjectSubclass for RtDetReplay {
    const NAME: &'static str = "GstRtDetReplay";
    type Type = super::RtDetReplay;
    type ParentType = gst_base::BaseTransform;
}

/// What a file holds: the lines of `source_id` by frame number, and every source id seen.
struct Recording {
    frames: HashMap<u64, Detections>,
    by_pts: HashMap<u64, u64>,
    sources: Vec<u32>,
}

/// Reads a JSON-lines file; an error names the file and line.
fn read_recording(path: &Path, source_id: u32) -> Result<Recording, gst::ErrorMessage> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        gst::error_msg!(
            gst::ResourceError::OpenRead,
            ("Could not read the detections file {shown}: {e}")
        )
    })?;
    let mut frames = HashMap::new();
    let mut by_pts = HashMap::new();
    let mut sources = Vec::new();
    for (k, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: String| {
            gst::error_msg!(
                gst::StreamError::Decode,
                ("{shown}:{}: {what}", k + 1),
                ["rtdetreplay reads the lines that rtjsonenc writes"]
            )
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let (dets, pts) = Detections::from_json(&value).map_err(|e| bad(e.to_string()))?;
        if !sources.contains(&dets.source_id) {
            sources.push(dets.source_id);
        }
        if dets.source_id != source_id {
            continue;
        }
        let frame = dets.frame_number;
        if let Some(pts) = pts {
            by_pts.insert(pts, frame);
        }
        if frames.insert(frame, dets).is_some() {
            return Err(bad(format!(
                "frame {frame} of source {source_id} is recorded twice"
            )));
        }
    }
    Ok(Recording {
        frames,
        by_pts,
        sources,
    })
}

impl ObjectImpl for RtDetReplay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("Location")
                    .blurb(
                        "JSON-lines file of detections as rtjsonenc writes them (one frame per \
                         line); read when the element starts",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("source-id")
                    .nick("Source id")
                    .blurb(
                        "The source whose recorded detections this stream's frames take (the \
                         file may hold several)",
                    )
                    .default_value(Settings::default().source_id)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "location" => s.location = value.get::<Option<String>>().unwrap().map(PathBuf::from),
            "source-id" => s.source_id = value.get().unwrap(),
            _ => unreachable!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "location" => s
                .location
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            "source-id" => s.source_id.to_value(),
            _ => unreachable!(),
        }
    }
}

impl GstObjectImpl for RtDetReplay {}

impl ElementImpl for RtDetReplay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Detection replay",
                "Filter/Analyzer/Video",
                "Attaches detections recorded by rtjsonenc to the frames with the same source \
                 id and timestamp, or frame number (counted from 0, as rtinfer does) for lines \
                 without one, so tracking, rules and drawing can run again without the model. Frames without a recorded line \
                 pass without detections.",
                "rt analytics developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("video/x-raw").any_features().build();
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

impl BaseTransformImpl for RtDetReplay {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let Some(location) = settings.location else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("No detections file: set the location property")
            ));
        };
        let recording = read_recording(&location, settings.source_id)?;
        if recording.frames.is_empty() {
            gst::element_warning!(
                self.obj(),
                gst::ResourceError::Read,
                (
                    "{} has no detections of source {} (it has sources {:?}); frames will pass \
                     without detections",
                    location.display(),
                    settings.source_id,
                    recording.sources
                )
            );
        }
        gst::info!(
            CAT,
            imp = self,
            "{} frames of source {} from {}",
            recording.frames.len(),
            settings.source_id,
            location.display()
        );
        *self.state.lock().unwrap() = State {
            location,
            source_id: settings.source_id,
            frames: recording.frames,
            by_pts: recording.by_pts,
            ..State::default()
        };
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = State::default();
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let s = incaps
            .structure(0)
            .ok_or_else(|| gst::loggable_error!(CAT, "empty caps"))?;
        let size = match (s.get::<i32>("width"), s.get::<i32>("height")) {
            (Ok(w), Ok(h)) if w > 0 && h > 0 => (w as u32, h as u32),
            _ => {
                return Err(gst::loggable_error!(
                    CAT,
                    "caps without a frame size: {incaps}"
                ));
            }
        };
        self.state.lock().unwrap().size = Some(size);
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut state = self.state.lock().unwrap();
        let number = buf
            .pts()
            .and_then(|t| state.by_pts.get(&t.nseconds()).copied())
            .unwrap_or(state.next_frame);
        state.next_frame = number.saturating_add(1);
        // Kept, not taken: a seek back or a loop asks for it again.
        let Some(mut dets) = state.frames.get(&number).cloned() else {
            drop(state);
            Detections::remove(buf);
            return Ok(gst::FlowSuccess::Ok);
        };
        let size = state.size;
        // The same video scaled (a videoscale before this element): the boxes scale with it.
        if let Some(to) = size.filter(|&to| same_aspect(to, (dets.width, dets.height))) {
            dets.scale(rtmeta::Scale {
                from: (dets.width, dets.height),
                to,
            });
        } else {
            let location = state.location.display().to_string();
            let source = state.source_id;
            drop(state);
            let (w, h) = size.unwrap_or_default();
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                (
                    "Frame {number} of source {source} in {location} was recorded at {}x{}, but \
                     this video is {w}x{h}: its boxes would land in the wrong place",
                    dets.width,
                    dets.height
                ),
                [
                    "Replay detections on the video they were recorded from, at its size or \
                  scaled without changing its aspect ratio"
                ]
            );
            return Err(gst::FlowError::Error);
        }
        drop(state);
        if let Err(e) = dets.attach(buf) {
            gst::warning!(CAT, imp = self, "could not attach the detections: {e}");
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

/// Whether two frame sizes have the same aspect ratio, to within a pixel's rounding.
fn same_aspect(a: (u32, u32), b: (u32, u32)) -> bool {
    if a.0 == 0 || a.1 == 0 || b.0 == 0 || b.1 == 0 {
        return false;
    }
    let (ra, rb) = (a.0 as f64 / a.1 as f64, b.0 as f64 / b.1 as f64);
    // A pixel of rounding on the smaller side.
    let tolerance = 1.0 / a.0.min(a.1).min(b.0).min(b.1) as f64 + 1e-9;
    (ra / rb - 1.0).abs() <= tolerance
}
