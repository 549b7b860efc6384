//! One clip being written: `appsrc ! mp4mux ! filesink` in a pipeline of its own, into
//! `<name>.mp4.part`, renamed to `<name>.mp4` once mp4mux has written its index on EOS. So a
//! `.mp4` in the clip folder is always a finished, playable file, and a clip that cannot be
//! finished (a full disk) is removed rather than left truncated.
//!
//! The clip's pipeline has its own streaming threads: the element's streaming thread only
//! queues buffers into appsrc, so a slow disk does not stall the video.

use gst::{glib, prelude::*};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How long finishing a clip (mp4mux writing its index) may take.
const FINISH_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(30);

/// Why a clip could not be started, written or finished.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("the element {0} is missing (gstreamer1.0-plugins-good)")]
    MissingElement(&'static str),
    #[error("cannot build the clip pipeline: {0}")]
    Build(glib::BoolError),
    #[error("mp4mux does not take {caps}: {why}")]
    Caps { caps: gst::Caps, why: String },
    /// The first error the clip's pipeline posted (filesink's, when there is one: a full disk).
    #[error("{}", match .debug { Some(d) => format!("{error} ({d})"), None => error.to_string() })]
    Pipeline {
        error: glib::Error,
        debug: Option<String>,
    },
    #[error("it does not start")]
    NotStarted,
    #[error("the stream has no caps or the clip no name yet")]
    Unready,
    #[error("the clip stopped taking frames ({0:?})")]
    Stopped(gst::FlowError),
    #[error("it did not finish within {0}")]
    Timeout(gst::ClockTime),
    #[error("cannot create the folder {}: {source}", dir.display())]
    Folder {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot rename {} to {}: {source}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
}

impl ClipError {
    fn from_message(e: &gst::message::Error) -> Self {
        ClipError::Pipeline {
            error: e.error(),
            debug: e.debug().map(|d| d.to_string()),
        }
    }

    /// The resource error an element reports this as: the clip pipeline's own when it has
    /// one (`NoSpaceLeft` for a full disk), else what failed. `None` for a missing element,
    /// which is a `CoreError::MissingPlugin`.
    pub fn resource_error(&self) -> Option<gst::ResourceError> {
        match self {
            ClipError::MissingElement(_) => None,
            ClipError::Pipeline { error, .. } => Some(
                error
                    .kind::<gst::ResourceError>()
                    .unwrap_or(gst::ResourceError::Write),
            ),
            ClipError::NotStarted | ClipError::Folder { .. } => Some(gst::ResourceError::OpenWrite),
            ClipError::Build(_) | ClipError::Caps { .. } | ClipError::Unready => {
                Some(gst::ResourceError::Failed)
            }
            ClipError::Stopped(_) | ClipError::Timeout(_) | ClipError::Rename { .. } => {
                Some(gst::ResourceError::Write)
            }
        }
    }
}

/// A finished clip.
#[derive(Clone, Debug)]
pub struct Clip {
    pub path: PathBuf,
    pub bytes: u64,
    pub frames: u64,
    /// From the first frame's timestamp to the end of the last one.
    pub duration: gst::ClockTime,
    /// Running time of the first frame in the stream.
    pub start: gst::ClockTime,
}

/// An error message of the clip's pipeline: the error and its debug text.
type PipelineFailure = (glib::Error, Option<String>);

pub struct Writer {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    path: PathBuf,
    part: PathBuf,
    /// The first frame's DTS (or PTS), subtracted from every timestamp so the clip starts at 0.
    offset: Option<gst::ClockTime>,
    start: gst::ClockTime,
    end: gst::ClockTime,
    frames: u64,
    /// The first error the clip's pipeline posted.
    failure: Arc<Mutex<Option<PipelineFailure>>>,
}

/// Where a clip's frames go while it is written.
pub fn part_path(path: &Path) -> PathBuf {
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    part.into()
}

impl Writer {
    /// Starts writing a clip of `caps` (an encoded video stream mp4mux takes) to `path`;
    /// `start` is the running time of its first frame.
    pub fn open(caps: &gst::Caps, path: PathBuf, start: gst::ClockTime) -> Result<Self, ClipError> {
        let part = part_path(&path);
        let make = |factory: &'static str| {
            gst::ElementFactory::make(factory)
                .build()
                .map_err(|_| ClipError::MissingElement(factory))
        };
        let src = gst_app::AppSrc::builder()
            .caps(caps)
            .format(gst::Format::Time)
            .max_bytes(0)
            .block(false)
            .build();
        let mux = make("mp4mux")?;
        let sink = make("filesink")?;
        sink.set_property("name", "file");
        sink.set_property("location", part.to_string_lossy().as_ref());
        sink.set_property("async", false);
        let pipeline = gst::Pipeline::with_name("rtrecord-clip");
        pipeline
            .add_many([src.upcast_ref(), &mux, &sink])
            .and_then(|_| mux.link(&sink))
            .map_err(ClipError::Build)?;
        // Linked by name: left to choose, link() takes mp4mux's first free pad, audio_0.
        let video = mux
            .request_pad_simple("video_%u")
            .ok_or_else(|| ClipError::Caps {
                caps: caps.clone(),
                why: "mp4mux has no video pad".into(),
            })?;
        src.static_pad("src")
            .unwrap()
            .link(&video)
            .map_err(|e| ClipError::Caps {
                caps: caps.clone(),
                why: format!("{e:?}"),
            })?;
        let failure = Arc::new(Mutex::new(None));
        let seen = failure.clone();
        pipeline.bus().unwrap().set_sync_handler(move |_, msg| {
            if let gst::MessageView::Error(e) = msg.view() {
                // filesink's error says why (no space left); mp4mux's only that it failed.
                let mut seen = seen.lock().unwrap();
                if seen.is_none() || msg.src().is_some_and(|s| s.name() == "file") {
                    *seen = Some((e.error(), e.debug().map(|d| d.to_string())));
                }
            }
            gst::BusSyncReply::Pass
        });
        let writer = Writer {
            pipeline,
            src,
            path,
            part,
            offset: None,
            start,
            end: start,
            frames: 0,
            failure,
        };
        if writer.pipeline.set_state(gst::State::Playing).is_err() {
            let why = writer.failure().unwrap_or(ClipError::NotStarted);
            writer.abort();
            return Err(why);
        }
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first error of the clip's pipeline (a full disk), if any.
    pub fn failure(&self) -> Option<ClipError> {
        let (error, debug) = self.failure.lock().unwrap().clone()?;
        Some(ClipError::Pipeline { error, debug })
    }

    /// Queues one frame.
    pub fn write(&mut self, mut buf: gst::Buffer) -> Result<(), ClipError> {
        if let Some(why) = self.failure() {
            return Err(why);
        }
        let offset = *self
            .offset
            .get_or_insert_with(|| buf.dts_or_pts().unwrap_or(gst::ClockTime::ZERO));
        {
            // Shares the memory with the ring; only the buffer's header is copied.
            let b = buf.make_mut();
            b.set_pts(b.pts().map(|t| t.saturating_sub(offset)));
            b.set_dts(b.dts().map(|t| t.saturating_sub(offset)));
            if let Some(end) = b.pts().map(|p| p + b.duration().unwrap_or_default()) {
                self.end = self.end.max(self.start + end);
            }
        }
        self.frames += 1;
        self.src
            .push_buffer(buf)
            .map(|_| ())
            .map_err(ClipError::Stopped)
    }

    /// Ends the clip and waits for mp4mux to write its index: the finished clip, or why it
    /// failed (the partial file is removed then).
    pub fn finish(self) -> Result<Clip, (PathBuf, ClipError)> {
        let _ = self.src.end_of_stream();
        let bus = self.pipeline.bus().unwrap();
        let ended = match bus.timed_pop_filtered(
            FINISH_TIMEOUT,
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            Some(msg) => match msg.view() {
                gst::MessageView::Error(e) => Err(ClipError::from_message(e)),
                _ => Ok(()),
            },
            None => Err(ClipError::Timeout(FINISH_TIMEOUT)),
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        let finished = ended
            .and_then(|()| self.failure().map_or(Ok(()), Err))
            .and_then(|()| {
                std::fs::rename(&self.part, &self.path).map_err(|source| ClipError::Rename {
                    from: self.part.clone(),
                    to: self.path.clone(),
                    source,
                })
            });
        match finished {
            Ok(()) => Ok(Clip {
                bytes: std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0),
                frames: self.frames,
                duration: self.end.saturating_sub(self.start),
                start: self.start,
                path: self.path.clone(),
            }),
            Err(why) => {
                let _ = std::fs::remove_file(&self.part);
                Err((self.path.clone(), why))
            }
        }
    }

    /// Stops at once and removes the partial file.
    pub fn abort(self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        let _ = std::fs::remove_file(&self.part);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
