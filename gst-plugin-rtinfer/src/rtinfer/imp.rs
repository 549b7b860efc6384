//! rtinfer: runs a YOLO-family ONNX model on the frames of one or many streams and attaches
//! the detections as `RtDetectionMeta`.
//!
//! Streams: the always pads `sink`/`src` for a single stream, and request pads
//! `sink_%u`/`src_%u` (source id `%u`) for many. Frames from all streams are batched for one
//! model (see `batcher`); each frame leaves on its own stream's src pad, unchanged but for
//! the metadata. Each stream uses the `RtTensorMeta` of an upstream rtpreprocess when it
//! fits the model, and otherwise preprocesses the frame itself with the same code.

use super::batcher::Batcher;
use super::model::{LoadSettings, Model, Thresholds};
use super::stream::Stream;
use crate::backend::{self, TensorData};
use crate::convert;
use crate::decode::FormatProp;
use crate::device::{self, DeviceRequest};
use crate::spec::{QUERY_NAME, TensorSpec};
use crate::stats::Stats;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use rtmeta::Detections;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtinfer",
        gst::DebugColorFlags::empty(),
        Some("YOLO inference"),
    )
});

const STATS_NAME: &str = "rtinfer-stats";

#[derive(Clone, Debug, Default)]
struct Settings {
    load: LoadSettings,
    /// The `device` property as set; parsed when the element starts.
    device: String,
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
    batch_size: u32,
    batch_timeout_ms: u32,
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
            batch_size: 4,
            batch_timeout_ms: 40,
        }
    }
}

impl Live {
    fn thresholds(&self) -> Thresholds {
        Thresholds {
            confidence: self.confidence as f32,
            iou: self.iou as f32,
            max_detections: self.max_detections as usize,
        }
    }
}

/// What exists while the element is PAUSED or PLAYING.
struct Running {
    spec: TensorSpec,
    batcher: Arc<Batcher>,
    thread: JoinHandle<()>,
}

pub struct RtInfer {
    settings: Mutex<Settings>,
    /// The always-pad stream first, then the request-pad streams.
    streams: Mutex<Vec<Arc<Stream>>>,
    running: Mutex<Option<Running>>,
    stats: Mutex<Stats>,
    last_stats_post: Mutex<Instant>,
    /// `active-device`: where the model runs.
    active_device: Mutex<String>,
}

#[glib::object_subclass]
impl ObjectSubclass for RtInfer {
    const NAME: &'static str = "GstRtInfer";
    type Type = super::RtInfer;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sink = klass.pad_template("sink").expect("sink template");
        let src = klass.pad_template("src").expect("src template");
        let stream = make_stream(None, &sink, "sink", &src, "src");
        RtInfer {
            settings: Mutex::new(Settings {
                device: "auto".into(),
                ..Default::default()
            }),
            streams: Mutex::new(vec![stream]),
            running: Mutex::new(None),
            stats: Mutex::new(Stats::default()),
            last_stats_post: Mutex::new(Instant::now()),
            active_device: Mutex::new(String::new()),
        }
    }
}

/// A stream with its two pads, their functions bound to it.
fn make_stream(
    index: Option<u32>,
    sink_templ: &gst::PadTemplate,
    sink_name: &str,
    src_templ: &gst::PadTemplate,
    src_name: &str,
) -> Arc<Stream> {
    let flags = gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION;
    Arc::new_cyclic(|weak: &std::sync::Weak<Stream>| {
        let (w1, w2, w3, w4) = (weak.clone(), weak.clone(), weak.clone(), weak.clone());
        let sinkpad = gst::Pad::builder_from_template(sink_templ)
            .name(sink_name)
            .flags(flags)
            .chain_function(move |_, parent, buffer| {
                RtInfer::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| {
                        let stream = w1.upgrade().ok_or(gst::FlowError::Flushing)?;
                        imp.chain(&stream, buffer)
                    },
                )
            })
            .event_function(move |pad, parent, event| {
                RtInfer::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| match w2.upgrade() {
                        Some(stream) => imp.sink_event(&stream, pad, event),
                        None => false,
                    },
                )
            })
            .query_function(move |pad, parent, query| {
                RtInfer::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_query(pad, query),
                )
            })
            .iterate_internal_links_function(move |_, _| {
                gst::Iterator::from_vec(
                    w3.upgrade()
                        .map(|s| vec![s.srcpad.clone()])
                        .unwrap_or_default(),
                )
            })
            .build();
        let srcpad = gst::Pad::builder_from_template(src_templ)
            .name(src_name)
            .flags(flags)
            .iterate_internal_links_function(move |_, _| {
                gst::Iterator::from_vec(
                    w4.upgrade()
                        .map(|s| vec![s.sinkpad.clone()])
                        .unwrap_or_default(),
                )
            })
            .build();
        Stream::new(index, sinkpad, srcpad)
    })
}

impl RtInfer {
    fn post_stats(&self) {
        *self.last_stats_post.lock().unwrap() = Instant::now();
        let s = self.stats.lock().unwrap().to_structure(STATS_NAME);
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }

    /// How many frames make a full batch now: one per stream still playing whose frame goes
    /// to the model next (see `Stream::due`), at most `max`.
    fn full_batch(&self, max: u32) -> usize {
        let active = self
            .streams
            .lock()
            .unwrap()
            .iter()
            .filter(|s| {
                s.sinkpad.is_linked()
                    && !s.eos.load(Ordering::Relaxed)
                    && s.due.load(Ordering::Relaxed)
            })
            .count();
        active.clamp(1, max.max(1) as usize)
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let (mut load, device) = {
            let s = self.settings.lock().unwrap();
            (s.load.clone(), s.device.clone())
        };
        load.device = device
            .parse()
            .map_err(|e: String| gst::error_msg!(gst::LibraryError::Settings, ("{e}")))?;
        let (model, description) = Model::load(&load)?;
        gst::info!(CAT, imp = self, "loaded {description}");
        self.report_device(load.device, &model);
        let spec = model.spec.clone();
        let batcher = Arc::new(Batcher::default());
        *self.stats.lock().unwrap() = Stats::default();
        *self.last_stats_post.lock().unwrap() = Instant::now();
        let (weak, b) = (self.obj().downgrade(), batcher.clone());
        let thread = std::thread::Builder::new()
            .name("rtinfer".into())
            .spawn(move || run_batches(weak, b, model))
            .map_err(|e| {
                gst::error_msg!(
                    gst::CoreError::Thread,
                    ("Cannot start the inference thread: {e}")
                )
            })?;
        *self.running.lock().unwrap() = Some(Running {
            spec,
            batcher,
            thread,
        });
        Ok(())
    }

    fn report_device(&self, request: DeviceRequest, model: &Model) {
        let active = model.device();
        *self.active_device.lock().unwrap() = active.clone();
        device::report(self.obj().upcast_ref(), request, &active, &model.fallbacks);
    }

    /// Releases every waiting streaming thread (before pads deactivate).
    fn cancel_all(&self) {
        if let Some(r) = self.running.lock().unwrap().as_ref() {
            r.batcher.stop();
        }
        for s in self.streams.lock().unwrap().iter() {
            s.cancel();
        }
    }

    fn stop(&self) {
        if let Some(r) = self.running.lock().unwrap().take() {
            r.batcher.stop();
            let _ = r.thread.join();
        }
        for s in self.streams.lock().unwrap().iter() {
            s.state.lock().unwrap().reset_converter();
        }
    }

    fn chain(
        &self,
        stream: &Arc<Stream>,
        mut buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let live = self.settings.lock().unwrap().live;
        let (spec, batcher) = {
            let running = self.running.lock().unwrap();
            let r = running.as_ref().ok_or(gst::FlowError::Flushing)?;
            (r.spec.clone(), r.batcher.clone())
        };
        self.stats.lock().unwrap().frames += 1;
        let source_id = stream.index.unwrap_or(live.source_id);

        let mut st = stream.state.lock().unwrap();
        let n = st.frame_number;
        st.frame_number += 1;
        let stale = match st.last.as_mut() {
            Some(last) if !n.is_multiple_of(live.interval as u64) => {
                last.frame_number = n;
                last.stale = true;
                Some(last.clone())
            }
            _ => None,
        };
        let detections = match stale {
            Some(d) => {
                drop(st);
                d
            }
            None => {
                let input = st.input(&buffer, &spec, |msg| {
                    gst::element_imp_warning!(self, gst::StreamError::Format, ("{msg}"));
                });
                let (width, height) = st.info.as_ref().map_or((0, 0), |i| (i.width(), i.height()));
                drop(st);
                let input = input.map_err(|e| {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Failed,
                        ("Cannot prepare the model input: {e}")
                    );
                    gst::FlowError::Error
                })?;
                stream.begin(n);
                // Due while in flight, also when it runs off the interval (no detections yet).
                stream.due.store(true, Ordering::Relaxed);
                if !batcher.submit(stream.clone(), n, input) {
                    stream.cancel(); // stopping: wait() below returns at once
                }
                let objects = match stream.wait() {
                    None => return Err(gst::FlowError::Flushing),
                    Some(Err(e)) => {
                        gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e.message));
                        return Err(gst::FlowError::Error);
                    }
                    Some(Ok(objects)) => objects,
                };
                let d = Detections {
                    source_id,
                    frame_number: n,
                    width,
                    height,
                    stale: false,
                    objects,
                };
                // Kept only for the frames in between when the model skips some.
                stream.state.lock().unwrap().last = (live.interval > 1).then(|| d.clone());
                d
            }
        };
        // A batch waits only for streams whose next frame goes to the model (not for one
        // that `interval` skips).
        let next_is_due = (n + 1).is_multiple_of(live.interval as u64);
        stream.due.store(next_is_due, Ordering::Relaxed);
        {
            let b = buffer.make_mut();
            detections.attach(b).map_err(|_| gst::FlowError::Error)?;
            if !live.keep_tensor
                && let Ok(meta) = gst::meta::CustomMeta::from_mut_buffer(b, rtmeta::TENSOR_META)
            {
                let _ = meta.remove();
            }
        }
        if live.stats_interval_ms > 0
            && self.last_stats_post.lock().unwrap().elapsed()
                >= Duration::from_millis(live.stats_interval_ms as u64)
        {
            self.post_stats();
        }
        stream.srcpad.push(buffer)
    }

    fn sink_event(&self, stream: &Arc<Stream>, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) => {
                let mut st = stream.state.lock().unwrap();
                st.info = gst_video::VideoInfo::from_caps(c.caps()).ok();
                st.reset_converter();
            }
            gst::EventView::FlushStart(_) => {
                if let Some(r) = self.running.lock().unwrap().as_ref() {
                    r.batcher.withdraw(stream);
                }
                stream.cancel();
            }
            gst::EventView::StreamStart(_) | gst::EventView::FlushStop(_) => {
                stream.eos.store(false, Ordering::Relaxed);
            }
            gst::EventView::Eos(_) => {
                // Only this stream ends; the others go on.
                stream.eos.store(true, Ordering::Relaxed);
                self.post_stats();
            }
            _ => {}
        }
        gst::Pad::event_default(pad, Some(&*self.obj()), event)
    }

    fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Custom(q) = query.view_mut()
            && q.structure().is_some_and(|s| s.name() == QUERY_NAME)
        {
            let Some(spec) = self
                .running
                .lock()
                .unwrap()
                .as_ref()
                .map(|r| r.spec.clone())
            else {
                return false;
            };
            let answer = q.structure_mut();
            for (field, value) in spec.to_structure().iter() {
                answer.set_value(field, value.clone());
            }
            return true;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }
}

/// The inference thread: runs batches until the batcher stops.
fn run_batches(element: glib::WeakRef<super::RtInfer>, batcher: Arc<Batcher>, mut model: Model) {
    loop {
        let Some(obj) = element.upgrade() else { return };
        let imp = obj.imp();
        let live = imp.settings.lock().unwrap().live;
        drop(obj);
        let full = || {
            element
                .upgrade()
                .map_or(1, |o| o.imp().full_batch(live.batch_size))
        };
        let Some(batch) =
            batcher.next_batch(full, Duration::from_millis(live.batch_timeout_ms as u64))
        else {
            return;
        };
        // Models with a dynamic batch run the frames as one [N, ...] tensor; the shared
        // models have a fixed batch of 1, so theirs run one after another on the one session
        // (on 2 cores ONNX Runtime already uses both, so parallel sessions would not help).
        let maps: Vec<_> = batch
            .iter()
            .map(|j| j.input.tensor.map_readable().ok())
            .collect();
        let inputs: Option<Vec<TensorData>> = maps
            .iter()
            .zip(&batch)
            .map(|(m, j)| {
                m.as_ref()
                    .and_then(|m| TensorData::from_bytes(m, j.input.dtype))
            })
            .collect();
        let transforms: Vec<_> = batch.iter().map(|j| j.input.transform).collect();
        let results: Vec<Result<(Vec<rtmeta::Detection>, f64), backend::Error>> = match inputs {
            None => vec![
                Err(backend::Error::new(
                    backend::ErrorKind::Run,
                    "a tensor cannot be read"
                ));
                batch.len()
            ],
            Some(inputs) => match model.detect_batch(&inputs, &transforms, live.thresholds()) {
                Ok(per_image) => per_image.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e); batch.len()],
            },
        };
        drop(maps);
        let runs = if model.batches() {
            1
        } else {
            batch.len() as u64
        };
        // Count before releasing the streams, so that stats posted at their EOS are complete.
        if let Some(obj) = element.upgrade() {
            let mut stats = obj.imp().stats.lock().unwrap();
            stats.batches += 1;
            stats.model_runs += runs;
            for (objects, ms) in results.iter().flatten() {
                stats.record_inference(*ms, objects.len());
            }
        }
        for (job, result) in batch.into_iter().zip(results) {
            job.stream
                .finish(job.frame, result.map(|(objects, _)| objects));
        }
    }
}

impl ObjectImpl for RtInfer {
    fn constructed(&self) {
        self.parent_constructed();
        let s = self.streams.lock().unwrap()[0].clone();
        let obj = self.obj();
        obj.add_pad(&s.sinkpad).expect("adding sink pad");
        obj.add_pad(&s.srcpad).expect("adding src pad");
    }

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
                    .blurb("Run the model on every Nth frame of each stream; frames in between carry the last detections, flagged stale")
                    .minimum(1)
                    .maximum(1000)
                    .default_value(1)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("batch-size")
                    .nick("Batch size")
                    .blurb("Most frames (from the sink_%u streams) run as one batch. A batch goes as soon as every playing \
                            stream has a frame in it (not counting streams whose next frame interval skips) or it is \
                            full; larger batches raise throughput when many streams share the model")
                    .minimum(1)
                    .maximum(256)
                    .default_value(4)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("batch-timeout")
                    .nick("Batch timeout")
                    .blurb("Milliseconds a frame waits for a batch to fill before it runs anyway: the most latency a slow or \
                            stalled stream adds to the others (lower = less latency, higher = fuller batches)")
                    .maximum(10_000)
                    .default_value(40)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("source-id")
                    .nick("Source id")
                    .blurb("Source id written into the detections of the always-pad stream (request pad sink_N uses N)")
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
                device::property(),
                glib::ParamSpecBoolean::builder("tensorrt")
                    .nick("TensorRT")
                    .blurb("On CUDA, try ONNX Runtime's TensorRT execution provider first (needs onnxruntime-gpu and TensorRT 10); the CUDA provider takes what TensorRT cannot run")
                    .default_value(true)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("tensorrt-fp16")
                    .nick("TensorRT FP16")
                    .blurb("Let TensorRT build FP16 engines (faster; detections may differ slightly from FP32)")
                    .default_value(true)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("tensorrt-cache-dir")
                    .nick("TensorRT engine cache")
                    .blurb("Folder where TensorRT engines are kept, so each is built once (minutes) and then loaded (default: ~/.cache/rtinfer/tensorrt; empty: no cache)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("active-device")
                    .nick("Active device")
                    .blurb("Where the model runs once started: cpu, cuda:N (CUDA) or cuda:N (TensorRT)")
                    .read_only()
                    .build(),
                glib::ParamSpecBoolean::builder("keep-tensor")
                    .nick("Keep tensor")
                    .blurb("Leave the RtTensorMeta on buffers after inference (default: remove it so its memory is reused at once)")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("frames, inferences, detections, mean-inference-ms, p95-inference-ms, batches and mean-batch-size so far")
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
            "model-file" => s.load.model_file = path(value),
            "label-file" => s.load.label_file = path(value),
            "model-format" => s.load.model_format = value.get().unwrap(),
            "confidence-threshold" => s.live.confidence = value.get().unwrap(),
            "iou-threshold" => s.live.iou = value.get().unwrap(),
            "max-detections" => s.live.max_detections = value.get().unwrap(),
            "classes" => {
                s.load.classes = value.get::<Option<String>>().unwrap().unwrap_or_default()
            }
            "threads" => s.load.threads = value.get().unwrap(),
            "interval" => s.live.interval = value.get().unwrap(),
            "batch-size" => s.live.batch_size = value.get().unwrap(),
            "batch-timeout" => s.live.batch_timeout_ms = value.get().unwrap(),
            "source-id" => s.live.source_id = value.get().unwrap(),
            "stats-interval" => s.live.stats_interval_ms = value.get().unwrap(),
            "onnxruntime-library" => s.load.library = path(value),
            "keep-tensor" => s.live.keep_tensor = value.get().unwrap(),
            "device" => s.device = device::property_value(value),
            "tensorrt" => s.load.tensorrt = value.get().unwrap(),
            "tensorrt-fp16" => s.load.trt_fp16 = value.get().unwrap(),
            "tensorrt-cache-dir" => s.load.trt_cache = path(value),
            _ => unreachable!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).to_value();
        match pspec.name() {
            "model-file" => path(&s.load.model_file),
            "label-file" => path(&s.load.label_file),
            "model-format" => s.load.model_format.to_value(),
            "confidence-threshold" => s.live.confidence.to_value(),
            "iou-threshold" => s.live.iou.to_value(),
            "max-detections" => s.live.max_detections.to_value(),
            "classes" => s.load.classes.to_value(),
            "threads" => s.load.threads.to_value(),
            "interval" => s.live.interval.to_value(),
            "batch-size" => s.live.batch_size.to_value(),
            "batch-timeout" => s.live.batch_timeout_ms.to_value(),
            "source-id" => s.live.source_id.to_value(),
            "stats-interval" => s.live.stats_interval_ms.to_value(),
            "onnxruntime-library" => path(&s.load.library),
            "keep-tensor" => s.live.keep_tensor.to_value(),
            "device" => s.device.to_value(),
            "tensorrt" => s.load.tensorrt.to_value(),
            "tensorrt-fp16" => s.load.trt_fp16.to_value(),
            "tensorrt-cache-dir" => path(&s.load.trt_cache),
            "active-device" => self.active_device.lock().unwrap().to_value(),
            "stats" => self
                .stats
                .lock()
                .unwrap()
                .to_structure(STATS_NAME)
                .to_value(),
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
                "Runs a YOLOX, YOLOv5 or Ultralytics YOLOv8/YOLO11 ONNX model with ONNX Runtime and attaches the \
                 detections to each frame as RtDetectionMeta (readable from C, Python and Rust). One stream on the \
                 sink/src pads, or many on request pads sink_%u/src_%u batched through one model. Uses the tensor of \
                 an upstream rtpreprocess, or preprocesses itself.",
                "rt analytics developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            use gst::{PadDirection::*, PadPresence::*};
            vec![
                convert::pad_template("sink", Sink, Always),
                convert::pad_template("src", Src, Always),
                convert::pad_template("sink_%u", Sink, Request),
                convert::pad_template("src_%u", Src, Sometimes),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn request_new_pad(
        &self,
        templ: &gst::PadTemplate,
        name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        let mut streams = self.streams.lock().unwrap();
        let used = |i: u32| streams.iter().any(|s| s.index == Some(i));
        let index = match name.and_then(|n| n.strip_prefix("sink_")) {
            Some(n) => n.parse::<u32>().ok().filter(|i| !used(*i))?,
            None => (0..).find(|i| !used(*i))?,
        };
        let src_templ = self.obj().class().pad_template("src_%u")?;
        let stream = make_stream(
            Some(index),
            templ,
            &format!("sink_{index}"),
            &src_templ,
            &format!("src_{index}"),
        );
        streams.push(stream.clone());
        drop(streams);
        let obj = self.obj();
        if obj.current_state() > gst::State::Ready {
            let _ = stream.srcpad.set_active(true);
        }
        obj.add_pad(&stream.srcpad).ok()?;
        obj.add_pad(&stream.sinkpad).ok()?;
        gst::debug!(CAT, imp = self, "new stream {index}");
        Some(stream.sinkpad.clone())
    }

    fn release_pad(&self, pad: &gst::Pad) {
        let stream = {
            let mut streams = self.streams.lock().unwrap();
            let Some(i) = streams
                .iter()
                .position(|s| s.index.is_some() && &s.sinkpad == pad)
            else {
                return;
            };
            streams.remove(i)
        };
        if let Some(r) = self.running.lock().unwrap().as_ref() {
            r.batcher.withdraw(&stream);
        }
        stream.cancel();
        let obj = self.obj();
        let _ = stream.sinkpad.set_active(false);
        let _ = stream.srcpad.set_active(false);
        let _ = obj.remove_pad(&stream.sinkpad);
        let _ = obj.remove_pad(&stream.srcpad);
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        match transition {
            gst::StateChange::ReadyToPaused => {
                if let Err(e) = self.start() {
                    self.post_error_message(e);
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::PausedToReady => self.cancel_all(),
            _ => {}
        }
        let result = self.parent_change_state(transition);
        if transition == gst::StateChange::PausedToReady
            || (transition == gst::StateChange::ReadyToPaused && result.is_err())
        {
            self.stop();
            if transition == gst::StateChange::PausedToReady {
                self.post_stats();
            }
        }
        result
    }
}
