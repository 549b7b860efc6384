//! rtinfer: runs a YOLO-family ONNX model on each frame and attaches the detections as
//! `RtDetectionMeta`. Uses the `RtTensorMeta` of an upstream rtpreprocess when it fits the
//! model, and otherwise preprocesses the frame itself with the same code.

use crate::backend::{self, Backend, ErrorKind, OnnxBackend, TensorData};
use crate::convert::{self, Converter};
use crate::decode::{self, Candidate, Decoder, FormatProp};
use crate::spec::{QUERY_NAME, TensorSpec};
use crate::stats::Stats;
use crate::{labels, nms};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use rtmeta::{DType, Detection, Detections, TensorMeta, Transform};
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtinfer",
        gst::DebugColorFlags::empty(),
        Some("YOLO inference"),
    )
});

const STATS_NAME: &str = "rtinfer-stats";

/// Settings read when the model loads.
#[derive(Clone, Debug, Default)]
struct Settings {
    model_file: Option<PathBuf>,
    label_file: Option<PathBuf>,
    model_format: FormatProp,
    classes: String,
    threads: u32,
    library: Option<PathBuf>,
    live: Live,
}

/// Settings read on every frame (they may change while playing); cheap to copy.
#[derive(Clone, Copy, Debug)]
struct Live {
    confidence: f64,
    iou: f64,
    max_detections: u32,
    interval: u32,
    source_id: u32,
    stats_interval_ms: u32,
    keep_tensor: bool,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            confidence: 0.25,
            iou: 0.45,
            max_detections: 300,
            interval: 1,
            source_id: 0,
            stats_interval_ms: 5000,
            keep_tensor: false,
        }
    }
}

/// The loaded model and everything derived from it.
struct Model {
    backend: Box<dyn Backend>,
    decoder: Decoder,
    spec: TensorSpec,
    labels: Vec<String>,
    /// Classes to keep, if filtered.
    class_mask: Option<Vec<bool>>,
}

/// Per-stream state, reused from frame to frame.
struct Stream {
    info: Option<gst_video::VideoInfo>,
    /// Used when frames come without a matching tensor.
    converter: Option<Converter>,
    scratch: Vec<f32>,
    candidates: Vec<Candidate>,
    keep: Vec<usize>,
    last: Option<Detections>,
    frame_number: u64,
    stats: Stats,
    last_stats_post: Instant,
    warned_tensor: bool,
}

struct State {
    model: Model,
    stream: Stream,
}

#[derive(Default)]
pub struct RtInfer {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Copy of the statistics for the `stats` property, updated when they are posted.
    stats: Mutex<Option<gst::Structure>>,
}

#[glib::object_subclass]
impl ObjectSubclass for RtInfer {
    const NAME: &'static str = "GstRtInfer";
    type Type = super::RtInfer;
    type ParentType = gst_base::BaseTransform;
}

fn error_message(e: &backend::Error) -> gst::ErrorMessage {
    match e.kind {
        ErrorKind::ModelNotFound => {
            gst::error_msg!(gst::ResourceError::NotFound, ("{}", e.message))
        }
        ErrorKind::BadModel => gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e.message)),
        ErrorKind::Library => gst::error_msg!(gst::LibraryError::Init, ("{}", e.message)),
        ErrorKind::Run => gst::error_msg!(gst::StreamError::Failed, ("{}", e.message)),
    }
}

/// Preprocessing the model expects, from its family and input.
fn model_spec(format: decode::Format, info: &backend::ModelInfo) -> TensorSpec {
    let mut spec = match format {
        decode::Format::Yolox => TensorSpec::yolox(info.width, info.height),
        _ => TensorSpec::ultralytics(info.width, info.height),
    };
    spec.layout = info.layout;
    spec.dtype = info.dtype;
    if info.dtype == DType::U8 {
        // An 8-bit input takes pixel values as they are.
        spec.scale = 1.0;
    }
    spec
}

/// Parses the `classes` property: ids or labels, comma-separated.
fn class_mask(text: &str, labels: &[String], classes: usize) -> Result<Option<Vec<bool>>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let mut mask = vec![false; classes];
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let id = match item.parse::<usize>() {
            Ok(id) => id,
            Err(_) => labels
                .iter()
                .position(|l| l == item)
                .ok_or_else(|| format!("classes: \"{item}\" is neither a class id nor a label"))?,
        };
        if id >= classes {
            return Err(format!(
                "classes: id {id} is out of range (the model has {classes})"
            ));
        }
        mask[id] = true;
    }
    Ok(Some(mask))
}

impl RtInfer {
    fn load(&self, s: &Settings) -> Result<Model, gst::ErrorMessage> {
        let Some(path) = s.model_file.clone() else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("No model: set the model-file property to an ONNX file")
            ));
        };
        let opts = backend::Options {
            threads: s.threads,
            library: s.library.clone(),
        };
        let backend = OnnxBackend::open(&path, &opts).map_err(|e| error_message(&e))?;
        let info = backend.info().clone();
        let layout = decode::layout(
            &info.output_shape,
            info.width,
            info.height,
            s.model_format.get(),
        )
        .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ("{}: {e}", path.display())))?;
        let labels = match &s.label_file {
            Some(file) => labels::from_file(file)
                .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ("{e}")))?,
            None => info
                .names
                .as_deref()
                .and_then(labels::from_names_metadata)
                .unwrap_or_else(|| labels::COCO.iter().map(|s| s.to_string()).collect()),
        };
        let class_mask = class_mask(&s.classes, &labels, layout.classes)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{e}")))?;
        let spec = model_spec(layout.format, &info);
        gst::info!(
            CAT,
            imp = self,
            "loaded {} with {}: {} output {:?}, {} classes, input {}",
            path.display(),
            backend.describe(),
            layout.format.as_str(),
            info.output_shape,
            layout.classes,
            spec.describe()
        );
        Ok(Model {
            decoder: Decoder::new(layout, info.width, info.height),
            backend: Box::new(backend),
            spec,
            labels,
            class_mask,
        })
    }

    fn post_stats(&self, stream: &mut Stream, source_id: u32) {
        let mut s = stream.stats.to_structure(STATS_NAME);
        s.set("source-id", source_id);
        *self.stats.lock().unwrap() = Some(s.clone());
        stream.last_stats_post = Instant::now();
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }
}

/// Runs the model on one frame and returns its detections.
fn infer(
    model: &mut Model,
    stream: &mut Stream,
    input: TensorData<'_>,
    transform: &Transform,
    s: &Live,
) -> Result<Vec<Detection>, backend::Error> {
    let Model {
        backend,
        decoder,
        labels,
        class_mask,
        ..
    } = model;
    let conf = s.confidence as f32;
    let keep_class = |c: u32| class_mask.as_ref().is_none_or(|m| m[c as usize]);
    stream.candidates.clear();
    let candidates = &mut stream.candidates;
    let start = Instant::now();
    backend.run(input, &mut |_, data| {
        decoder.candidates(data, conf, &keep_class, candidates)
    })?;
    nms::per_class(
        candidates,
        s.iou as f32,
        s.max_detections as usize,
        &mut stream.keep,
    );
    let (fw, fh) = (transform.frame_width as f64, transform.frame_height as f64);
    let objects: Vec<Detection> = stream
        .keep
        .iter()
        .map(|&i| {
            let c = &candidates[i];
            let (x1, y1) = transform.to_frame(c.x1 as f64, c.y1 as f64);
            let (x2, y2) = transform.to_frame(c.x2 as f64, c.y2 as f64);
            let (x1, x2) = (x1.clamp(0.0, fw), x2.clamp(0.0, fw));
            let (y1, y2) = (y1.clamp(0.0, fh), y2.clamp(0.0, fh));
            Detection {
                class_id: c.class,
                label: labels
                    .get(c.class as usize)
                    .cloned()
                    .unwrap_or_else(|| c.class.to_string()),
                confidence: c.score,
                x: x1 as f32,
                y: y1 as f32,
                w: (x2 - x1) as f32,
                h: (y2 - y1) as f32,
                track_id: None,
            }
        })
        .collect();
    stream
        .stats
        .record_inference(start.elapsed().as_secs_f64() * 1000.0, objects.len());
    Ok(objects)
}

impl ObjectImpl for RtInfer {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model-file")
                    .nick("Model file")
                    .blurb("ONNX model to run (YOLOX, YOLOv5 or Ultralytics YOLOv8/YOLO11 detection export)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("label-file")
                    .nick("Label file")
                    .blurb("Class names, one per line (default: the model's 'names' metadata, else the 80 COCO names)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("model-format", FormatProp::Auto)
                    .nick("Model format")
                    .blurb("Output layout and matching preprocessing; auto tells them from the output shape")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("confidence-threshold")
                    .nick("Confidence threshold")
                    .blurb("Detections scoring below this are dropped (score = objectness x class score where the model has objectness)")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(0.25)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("iou-threshold")
                    .nick("IoU threshold")
                    .blurb("Non-maximum suppression: a box overlapping a better box of the same class by more than this is dropped")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(0.45)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-detections")
                    .nick("Maximum detections")
                    .blurb("At most this many detections per frame, best first")
                    .minimum(1)
                    .maximum(100_000)
                    .default_value(300)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("classes")
                    .nick("Classes")
                    .blurb("Only report these classes: comma-separated ids or labels, e.g. \"person,car\" or \"0,2\" (empty = all)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("Inference threads (0 = ONNX Runtime's default: one per core)")
                    .maximum(256)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("interval")
                    .nick("Interval")
                    .blurb("Run the model on every Nth frame; frames in between carry the last detections, flagged stale")
                    .minimum(1)
                    .maximum(1000)
                    .default_value(1)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("source-id")
                    .nick("Source id")
                    .blurb("Source id written into the detection metadata of this stream")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("stats-interval")
                    .nick("Stats interval")
                    .blurb("Post an 'rtinfer-stats' element message on the bus every this many milliseconds, and at EOS (0 = only at EOS)")
                    .maximum(3_600_000)
                    .default_value(5000)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("onnxruntime-library")
                    .nick("ONNX Runtime library")
                    .blurb("Path of libonnxruntime.so (default: ORT_DYLIB_PATH, then the setup's and Python's onnxruntime packages, then the system)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("keep-tensor")
                    .nick("Keep tensor")
                    .blurb("Leave the RtTensorMeta on buffers after inference (default: remove it so its memory is reused at once)")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("frames, inferences, detections, mean-inference-ms and p95-inference-ms so far")
                    .read_only()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        let path = |v: &glib::Value| {
            v.get::<Option<String>>()
                .unwrap()
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        };
        match pspec.name() {
            "model-file" => s.model_file = path(value),
            "label-file" => s.label_file = path(value),
            "model-format" => s.model_format = value.get().unwrap(),
            "confidence-threshold" => s.live.confidence = value.get().unwrap(),
            "iou-threshold" => s.live.iou = value.get().unwrap(),
            "max-detections" => s.live.max_detections = value.get().unwrap(),
            "classes" => s.classes = value.get::<Option<String>>().unwrap().unwrap_or_default(),
            "threads" => s.threads = value.get().unwrap(),
            "interval" => s.live.interval = value.get().unwrap(),
            "source-id" => s.live.source_id = value.get().unwrap(),
            "stats-interval" => s.live.stats_interval_ms = value.get().unwrap(),
            "onnxruntime-library" => s.library = path(value),
            "keep-tensor" => s.live.keep_tensor = value.get().unwrap(),
            _ => unreachable!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).to_value();
        match pspec.name() {
            "model-file" => path(&s.model_file),
            "label-file" => path(&s.label_file),
            "model-format" => s.model_format.to_value(),
            "confidence-threshold" => s.live.confidence.to_value(),
            "iou-threshold" => s.live.iou.to_value(),
            "max-detections" => s.live.max_detections.to_value(),
            "classes" => s.classes.to_value(),
            "threads" => s.threads.to_value(),
            "interval" => s.live.interval.to_value(),
            "source-id" => s.live.source_id.to_value(),
            "stats-interval" => s.live.stats_interval_ms.to_value(),
            "onnxruntime-library" => path(&s.library),
            "keep-tensor" => s.live.keep_tensor.to_value(),
            "stats" => {
                drop(s);
                let current = self.state.lock().unwrap().as_ref().map(|st| {
                    let mut s = st.stream.stats.to_structure(STATS_NAME);
                    s.set("source-id", self.settings.lock().unwrap().live.source_id);
                    s
                });
                current
                    .or_else(|| self.stats.lock().unwrap().clone())
                    .unwrap_or_else(|| Stats::default().to_structure(STATS_NAME))
                    .to_value()
            }
            _ => unreachable!(),
        }
    }
}

impl GstObjectImpl for RtInfer {}

impl ElementImpl for RtInfer {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "YOLO object detection",
                "Filter/Analyzer/Video",
                "Runs a YOLOX, YOLOv5 or Ultralytics YOLOv8/YOLO11 ONNX model with ONNX Runtime and \
                 attaches the detections to each frame as RtDetectionMeta (readable from C, Python \
                 and Rust). Uses the tensor of an upstream rtpreprocess, or preprocesses itself.",
                "rt analytics developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = convert::caps();
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

impl BaseTransformImpl for RtInfer {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let model = self.load(&settings)?;
        *self.state.lock().unwrap() = Some(State {
            model,
            stream: Stream {
                info: None,
                converter: None,
                scratch: Vec::new(),
                candidates: Vec::with_capacity(1024),
                keep: Vec::with_capacity(settings.live.max_detections as usize),
                last: None,
                frame_number: 0,
                stats: Stats::default(),
                last_stats_post: Instant::now(),
                warned_tensor: false,
            },
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(state) = self.state.lock().unwrap().take() {
            let mut s = state.stream.stats.to_structure(STATS_NAME);
            s.set("source-id", self.settings.lock().unwrap().live.source_id);
            *self.stats.lock().unwrap() = Some(s);
        }
        Ok(())
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Sink
            && let gst::QueryViewMut::Custom(q) = query.view_mut()
            && q.structure().is_some_and(|s| s.name() == QUERY_NAME)
        {
            let Some(spec) = self
                .state
                .lock()
                .unwrap()
                .as_ref()
                .map(|s| s.model.spec.clone())
            else {
                return false;
            };
            let answer = q.structure_mut();
            for (field, value) in spec.to_structure().iter() {
                answer.set_value(field, value.clone());
            }
            return true;
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse caps {incaps}"))?;
        if let Some(state) = self.state.lock().unwrap().as_mut() {
            state.stream.info = Some(info);
            state.stream.converter = None; // rebuilt for the new caps if needed
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            let source_id = self.settings.lock().unwrap().live.source_id;
            if let Some(state) = self.state.lock().unwrap().as_mut() {
                self.post_stats(&mut state.stream, source_id);
            }
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self.settings.lock().unwrap().live;
        let mut guard = self.state.lock().unwrap();
        let Some(State { model, stream }) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let n = stream.frame_number;
        stream.frame_number += 1;
        stream.stats.frames += 1;

        let reuse_last = n % settings.interval as u64 != 0;
        let detections = match (&mut stream.last, reuse_last) {
            (Some(last), true) => {
                last.frame_number = n;
                last.stale = true;
                last.clone()
            }
            _ => {
                let objects = match self.run_model(model, stream, buf, &settings) {
                    Ok(objects) => objects,
                    Err(e) => {
                        gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e.message));
                        return Err(gst::FlowError::Error);
                    }
                };
                let info = stream.info.as_ref().ok_or(gst::FlowError::NotNegotiated)?;
                let d = Detections {
                    source_id: settings.source_id,
                    frame_number: n,
                    width: info.width(),
                    height: info.height(),
                    stale: false,
                    objects,
                };
                stream.last = Some(d.clone());
                d
            }
        };
        detections.attach(buf).map_err(|_| gst::FlowError::Error)?;
        if !settings.keep_tensor {
            remove_tensor(buf);
        }
        if settings.stats_interval_ms > 0
            && stream.last_stats_post.elapsed().as_millis() >= settings.stats_interval_ms as u128
        {
            self.post_stats(stream, settings.source_id);
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

fn remove_tensor(buf: &mut gst::BufferRef) {
    if let Ok(meta) = gst::meta::CustomMeta::from_mut_buffer(buf, rtmeta::TENSOR_META) {
        let _ = meta.remove();
    }
}

impl RtInfer {
    /// Gets the input tensor (upstream's if it fits, else our own) and runs the model.
    fn run_model(
        &self,
        model: &mut Model,
        stream: &mut Stream,
        buf: &gst::BufferRef,
        settings: &Live,
    ) -> Result<Vec<Detection>, backend::Error> {
        let run_err = |m: String| backend::Error::new(ErrorKind::Run, m);
        let spec = &model.spec;
        if let Some(t) = TensorMeta::from_buffer(buf) {
            let fits = t.width == spec.width
                && t.height == spec.height
                && t.dtype == spec.dtype
                && t.layout == spec.layout;
            if fits {
                let map = t
                    .data
                    .map_readable()
                    .map_err(|_| run_err("cannot map tensor".into()))?;
                let bytes = &map[..t.byte_size()];
                let input = TensorData::from_bytes(bytes, t.dtype)
                    .ok_or_else(|| run_err("upstream tensor is misaligned".into()))?;
                return infer(model, stream, input, &t.transform, settings);
            }
            if !stream.warned_tensor {
                stream.warned_tensor = true;
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Format,
                    (
                        "Upstream tensor ({}x{} {} {}) does not fit the model ({}); preprocessing here instead",
                        t.width,
                        t.height,
                        t.layout.as_str(),
                        t.dtype.as_str(),
                        spec.describe()
                    )
                );
            }
        }
        let info = stream
            .info
            .as_ref()
            .ok_or_else(|| run_err("no caps".into()))?;
        if stream.converter.is_none() {
            let conv = Converter::new(spec, info).map_err(run_err)?;
            stream.scratch = vec![0.0; conv.byte_size().div_ceil(4)];
            stream.converter = Some(conv);
        }
        let conv = stream.converter.as_mut().expect("converter was just built");
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, info)
            .map_err(|_| run_err("cannot map the video frame".into()))?;
        let n = conv.byte_size();
        let bytes = &mut convert::as_bytes_mut(&mut stream.scratch)[..n];
        conv.convert(&frame, bytes).map_err(run_err)?;
        let transform = conv.geometry().transform;
        let dtype = conv.spec().dtype;
        // Move the scratch out while `infer` borrows the stream mutably.
        let scratch = std::mem::take(&mut stream.scratch);
        let input = TensorData::from_bytes(&convert::as_bytes(&scratch)[..n], dtype)
            .ok_or_else(|| run_err("tensor is misaligned".into()));
        let result = input.and_then(|input| infer(model, stream, input, &transform, settings));
        stream.scratch = scratch;
        result
    }
}
