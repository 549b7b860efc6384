//! rtjsonenc: one JSON line per frame with detections, for files, pipes and sockets.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use rtmeta::Detections;
use std::sync::{LazyLock, Mutex};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtjsonenc",
        gst::DebugColorFlags::empty(),
        Some("Detections to JSON lines"),
    )
});

const OUT_CAPS: &str = "application/x-ndjson";

#[derive(Default)]
struct Settings {
    skip_empty: bool,
}

pub struct RtJsonEnc {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
}

impl RtJsonEnc {
    fn chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(d) = Detections::from_buffer(&buffer) else {
            gst::trace!(CAT, imp = self, "buffer without detections");
            return self.gap(&buffer);
        };
        if d.objects.is_empty() && self.settings.lock().unwrap().skip_empty {
            return self.gap(&buffer);
        }
        let mut line = d.to_json(buffer.pts().map(|t| t.nseconds())).to_string();
        line.push('\n');
        let mut out = gst::Buffer::from_mut_slice(line.into_bytes());
        {
            let out = out.get_mut().unwrap();
            out.set_pts(buffer.pts());
            out.set_dts(buffer.dts());
            out.set_duration(buffer.duration());
        }
        self.srcpad.push(out)
    }

    /// A frame that makes no line still moves time on downstream: without it a sink with
    /// `sync` (or a tee beside a playing branch) would wait to preroll for good.
    fn gap(&self, frame: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        if let Some(pts) = frame.pts() {
            let gap = gst::event::Gap::builder(pts)
                .duration(frame.duration())
                .build();
            self.srcpad.push_event(gap);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(_) => {
                let caps = gst::Caps::builder(OUT_CAPS).build();
                self.srcpad.push_event(gst::event::Caps::new(&caps))
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            // Any input will do; the output is always JSON lines.
            gst::QueryViewMut::Caps(q) => {
                let caps = q
                    .filter()
                    .map(|f| f.to_owned())
                    .unwrap_or_else(gst::Caps::new_any);
                q.set_result(&caps);
                true
            }
            gst::QueryViewMut::AcceptCaps(q) => {
                q.set_result(true);
                true
            }
            // Allocation queries describe video buffers, which we do not pass on.
            gst::QueryViewMut::Allocation(_) => false,
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RtJsonEnc {
    const NAME: &'static str = "GstRtJsonEnc";
    type Type = super::RtJsonEnc;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = gst::Pad::builder_from_template(&klass.pad_template("sink").unwrap())
            .chain_function(|_pad, parent, buffer| {
                RtJsonEnc::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |e| e.chain(buffer),
                )
            })
            .event_function(|pad, parent, event| {
                RtJsonEnc::catch_panic_pad_function(parent, || false, |e| e.sink_event(pad, event))
            })
            .query_function(|pad, parent, query| {
                RtJsonEnc::catch_panic_pad_function(parent, || false, |e| e.sink_query(pad, query))
            })
            .build();
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").unwrap()).build();
        RtJsonEnc {
            sinkpad,
            srcpad,
            settings: Mutex::new(Settings::default()),
        }
    }
}

impl ObjectImpl for RtJsonEnc {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecBoolean::builder("skip-empty")
                    .nick("Skip empty")
                    .blurb("Write no line for frames without detections")
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "skip-empty" => self.settings.lock().unwrap().skip_empty = value.get().unwrap(),
            _ => unreachable!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "skip-empty" => self.settings.lock().unwrap().skip_empty.to_value(),
            _ => unreachable!(),
        }
    }
}

impl GstObjectImpl for RtJsonEnc {}

impl ElementImpl for RtJsonEnc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Detections to JSON lines",
                "Encoder/Metadata",
                "Writes the RtDetectionMeta of each frame as one JSON line: source_id, frame, pts \
                 (ns), width, height, stale and objects (class_id, label, confidence, x, y, w, h, \
                 track_id, producer). Frames without detection metadata produce nothing.",
                "rt analytics developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &gst::Caps::builder(OUT_CAPS).build(),
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &gst::Caps::new_any(),
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }
}
