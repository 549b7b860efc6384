//! Live HLS of a source's overlaid video: FOLDER/ID/index.m3u8 and its MPEG-TS segments,
//! written by `hlssink2` from the service's own H.264 encoder.
//!
//! hlssink2 runs in a small pipeline of its own, `appsrc ! h264parse ! hlssink2`, fed from an
//! appsink in the source's branch (as the RTSP feed is). Inside the service's pipeline it
//! would not work: its splitmuxsink changes state asynchronously until a whole segment is in,
//! which takes the playing pipeline back to PAUSED (every source waits) while the paused
//! branch holds up the frames the segment needs. On its own, a full disk or a slow write
//! costs HLS frames (the appsrc drops the oldest) and never stalls detection.

use crate::config::HlsConfig;
use gst::prelude::*;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The playlist's name in each source's HLS folder.
pub const PLAYLIST: &str = "index.m3u8";

/// Queued bytes before the oldest frames are dropped (about 16 s at the default 2 Mbit/s).
const MAX_QUEUED_BYTES: u64 = 4 << 20;

pub struct HlsWriter {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    /// The writer's first error: it has stopped, and the source's status says why.
    error: Arc<OnceLock<String>>,
}

impl HlsWriter {
    /// Empties FOLDER/ID (a playlist left from an earlier run would send players to old
    /// segments) and starts the writer; it waits for the first frame.
    pub fn start(h: &HlsConfig, id: &str) -> Result<HlsWriter, String> {
        let dir = h.folder.join(id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("hls.folder: cannot create {}: {e}", dir.display()))?;
        clear(&dir);
        let src = gst_app::AppSrc::builder()
            .format(gst::Format::Time)
            .max_bytes(MAX_QUEUED_BYTES)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let sink = gst::ElementFactory::make("hlssink2")
            .property(
                "location",
                dir.join("segment%05d.ts").to_string_lossy().as_ref(),
            )
            .property(
                "playlist-location",
                dir.join(PLAYLIST).to_string_lossy().as_ref(),
            )
            .property("target-duration", h.segment_seconds)
            .property("playlist-length", h.playlist_length)
            .property("max-files", h.max_files)
            .build()
            .map_err(|e| {
                format!("Cannot create hlssink2 ({e}): HLS needs gstreamer1.0-plugins-bad")
            })?;
        let parse = crate::service::make("h264parse")?;
        let pipeline = gst::Pipeline::with_name(&format!("hls-{id}"));
        pipeline
            .add_many([src.upcast_ref(), &parse, &sink])
            .and_then(|_| gst::Element::link_many([src.upcast_ref(), &parse, &sink]))
            .map_err(|e| format!("HLS writer: {e}"))?;
        // Errors (a full disk, a removed folder) stop the writer, are logged and shown in
        // the source's status; the analytics go on. The handler only formats, logs and
        // stores: it runs on the writer's streaming threads.
        let source = id.to_string();
        let error = Arc::new(OnceLock::new());
        let first = error.clone();
        pipeline
            .bus()
            .expect("pipelines have a bus")
            .set_sync_handler(move |_, msg| {
                if let gst::MessageView::Error(e) = msg.view() {
                    tracing::warn!(source = %source, "source {source}: HLS: {}", e.error());
                    let _ = first.set(format!("HLS stopped: {}", e.error()));
                }
                gst::BusSyncReply::Drop
            });
        if pipeline.set_state(gst::State::Playing).is_err() {
            let _ = pipeline.set_state(gst::State::Null);
            return Err("the HLS writer did not start".into());
        }
        Ok(HlsWriter {
            pipeline,
            src,
            error,
        })
    }

    /// Why the writer stopped, if it did.
    pub fn error(&self) -> Option<String> {
        self.error.get().cloned()
    }

    /// One encoded frame from the source's appsink; its times become running times, which
    /// is what hlssink2 splits on. The sample is dropped first, so retiming the buffer
    /// copies nothing when no other branch (rtrecord's ring) holds it too.
    pub fn push(&self, sample: gst::Sample) {
        if self.error.get().is_some() {
            return;
        }
        if let Some(caps) = sample.caps()
            && self.src.caps().as_deref() != Some(caps)
        {
            self.src.set_caps(Some(&caps.to_owned()));
        }
        let segment = sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>())
            .cloned();
        let Some(mut buffer) = sample.buffer_owned() else {
            return;
        };
        drop(sample);
        if let Some(segment) = segment {
            let b = buffer.make_mut();
            b.set_pts(b.pts().and_then(|t| segment.to_running_time(t)));
            b.set_dts(b.dts().and_then(|t| segment.to_running_time(t)));
        }
        // Full (dropped) or stopped: neither is the source's error.
        let _ = self.src.push_buffer(buffer);
    }
}

impl Drop for HlsWriter {
    /// Ends the writer (the source was removed or the service stops): the segment being
    /// written is closed and listed.
    fn drop(&mut self) {
        let bus = self.pipeline.bus();
        if let Some(bus) = &bus {
            bus.unset_sync_handler();
        }
        let _ = self.src.end_of_stream();
        // A writer that stopped on an error has no segment to close.
        if let Some(bus) = bus.filter(|_| self.error().is_none()) {
            let _ = bus.timed_pop_filtered(
                gst::ClockTime::from_seconds(2),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            );
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn clear(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "ts" || x == "m3u8") {
            let _ = std::fs::remove_file(p);
        }
    }
}
