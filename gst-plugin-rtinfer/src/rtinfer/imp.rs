//! rtinfer: runs a YOLO-family ONNX model on the frames of one or many streams and attaches
//! the detections as `RtDetectionMeta`.
//!
//! Streams: the always pads `sink`/`src` for a single stream, and request pads
//! `sink_%u`/`src_%u` (source id `%u`) for many. Each stream's streaming thread prepares the
//! model input (the `RtTensorMeta` of an upstream rtpreprocess when it fits the model, else
//! the same conversion here) and submits the frame to the `scheduler`, which runs it on one
//! of several model requests at once. Each src pad has a task that takes the stream's frames
//! and events back from the scheduler in order, attaches the detections and pushes them.

use super::model::{BackendProp, LoadSettings, Loaded, MAX_BATCH, Model, Thresholds};
use super::scheduler::{Limits, Next, NotReplaced, Outcome, Scheduler, Work, plan};
use super::stream::{Item, OutputState, Stream, StreamState};
use crate::convert;
use crate::decode::FormatProp;
use crate::device::{self, DeviceRequest};
use crate::spec::{QUERY_NAME, SpecStructure};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use rtmeta::Detections;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
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
    /// Model requests run at once (0 = auto).
    requests: u32,
    live: Live,
}

/// Settings read while playing (they may change then); cheap to copy.
#[derive(Clone, Copy, Debug)]
struct Live {
    confidence: f64,
    iou: f64,
    max_detections: u32,
    interval: u32,
    source_id: u32,
    stats_interval_ms: u32,
    keep_tensor: bool,
    roi_meta: bool,
    batch_size: u32,
    batch_timeout_ms: u32,
    max_latency_ms: u32,
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
            roi_meta: false,
            batch_size: 4,
            batch_timeout_ms: 40,
            max_latency_ms: 0,
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

    fn limits(&self) -> Limits {
        Limits {
            batch_size: self.batch_size as usize,
            batch_timeout: Duration::from_millis(self.batch_timeout_ms as u64),
            max_latency: (self.max_latency_ms > 0)
                .then(|| Duration::from_millis(self.max_latency_ms as u64)),
        }
    }
}

pub type Sched = Scheduler<Model, Item>;

pub struct RtInfer {
    settings: Mutex<Settings>,
    /// The always-pad stream first, then the request-pad streams.
    streams: Mutex<Vec<Arc<Stream>>>,
    scheduler: Sched,
    /// The model running, while running.
    running: Mutex<Option<Running>>,
    /// A model being loaded to replace the running one.
    swap: Mutex<Swap>,
    last_stats_post: Mutex<Instant>,
    /// `active-device`: where the model runs.
    active_device: Mutex<String>,
    /// A forced `model-format` is watched over the first frames: the inferred frames with no
    /// detection so far, or `FORMAT_WATCH_DONE`.
    format_watch: AtomicU32,
    /// This element's name while running: each detection says which element produced it.
    producer: Mutex<Arc<str>>,
    /// The latency this element last added to a LATENCY query, in nanoseconds (0: none yet).
    reported_latency: AtomicU64,
}

/// How much the latency may grow past what was reported before the pipeline is asked to
/// query it again (`gst::message::Latency`): often enough that frames stay on time, rarely
/// enough that sinks are not readjusted for every wobble of the run time.
fn latency_outgrown(now: Duration, reported: Duration) -> bool {
    !reported.is_zero() && now > reported + reported / 4
}

/// What the running model was loaded with: a model swapped in while running is loaded the
/// same way, and a failing one puts these settings back.
struct Running {
    load: LoadSettings,
    requests: usize,
    /// The scheduler's run it serves.
    run: u64,
    loaded: Arc<Loaded>,
}

/// Model swaps asked for while running (`model-file`, `label-file`, `model-format`).
#[derive(Default)]
struct Swap {
    /// Counts the changes, so that a load whose settings changed meanwhile starts again.
    wanted: u64,
    /// A loading thread is at work.
    loading: bool,
}

/// Settings changed within this time load as one model (a model file and its label file).
const SWAP_SETTLE: Duration = Duration::from_millis(50);
const MODEL_CHANGED: &str = "rtinfer-model-changed";

/// Inferred frames with no detection at all after which a forced `model-format` is doubted.
const FORMAT_WATCH_FRAMES: u32 = 30;
const FORMAT_WATCH_DONE: u32 = u32::MAX;

#[glib::object_subclass]
impl ObjectSubclass for RtInfer {
    const NAME: &'static str = "GstRtInfer";
    type Type = super::RtInfer;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sink = klass.pad_template("sink").expect("sink template");
        let src = klass.pad_template("src").expect("src template");
        let scheduler = Sched::default();
        let stream = make_stream(None, scheduler.register(), &sink, "sink", &src, "src");
        RtInfer {
            settings: Mutex::new(Settings {
                device: "auto".into(),
                ..Default::default()
            }),
            streams: Mutex::new(vec![stream]),
            scheduler,
            running: Mutex::new(None),
            swap: Mutex::new(Swap::default()),
            last_stats_post: Mutex::new(Instant::now()),
            active_device: Mutex::new(String::new()),
            format_watch: AtomicU32::new(FORMAT_WATCH_DONE),
            producer: Mutex::new(Arc::from("")),
            reported_latency: AtomicU64::new(0),
        }
    }
}

/// A stream with its two pads, their functions bound to it.
fn make_stream(
    index: Option<u32>,
    id: u64,
    sink_templ: &gst::PadTemplate,
    sink_name: &str,
    src_templ: &gst::PadTemplate,
    src_name: &str,
) -> Arc<Stream> {
    let flags = gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION;
    Arc::new_cyclic(|weak: &std::sync::Weak<Stream>| {
        let (w1, w2, w3, w4, w5) = (
            weak.clone(),
            weak.clone(),
            weak.clone(),
            weak.clone(),
            weak.clone(),
        );
        let w6 = weak.clone();
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
                    |imp| imp.sink_query(w6.upgrade().as_ref(), pad, query),
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
            .query_function(|pad, parent, query| {
                RtInfer::catch_panic_pad_function(parent, || false, |imp| imp.src_query(pad, query))
            })
            .activatemode_function(move |pad, parent, mode, active| {
                RtInfer::catch_panic_pad_function(
                    parent,
                    || Err(gst::loggable_error!(CAT, "panic activating {}", pad.name())),
                    |imp| match w5.upgrade() {
                        Some(stream) => imp.src_activate(&stream, mode, active),
                        None => Err(gst::loggable_error!(CAT, "stream released")),
                    },
                )
            })
            .build();
        Stream::new(index, id, sinkpad, srcpad)
    })
}

impl RtInfer {
    fn post_stats(&self) {
        *self.last_stats_post.lock().unwrap() = Instant::now();
        let s = self.stats();
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }

    /// The scheduler's figures and where the model runs.
    fn stats(&self) -> gst::Structure {
        let mut s = self.scheduler.stats().to_structure(STATS_NAME);
        s.set("active-device", self.active_device.lock().unwrap().as_str());
        s
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let (mut load, device, requests, live) = {
            let s = self.settings.lock().unwrap();
            (s.load.clone(), s.device.clone(), s.requests, s.live)
        };
        load.device = device.parse().map_err(|e: rtalgo::device::DeviceError| {
            gst::error_msg!(gst::LibraryError::Settings, ("{e}"))
        })?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (requests, threads) = plan(requests, load.threads, cores);
        load.threads = threads;
        if requests * threads as usize > cores {
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                (
                    "{requests} requests x {threads} threads need {} cores but {cores} are \
                     available: inference runs much slower when threads compete for cores; \
                     set requests and threads so that their product is at most {cores} (0 = auto)",
                    requests * threads as usize
                )
            );
        }
        // (Neither a GPU nor the CPU's bf16 changes the choice for a reduced precision.)
        if load
            .backend
            .resolve(load.device, load.precision, false, false)
            == BackendProp::OnnxRuntime
            && load.precision.is_reduced()
        {
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                (
                    "precision={}: ONNX Runtime runs the model in its own precision (f32 on the \
                     CPU, tensorrt-fp16 for f16 on TensorRT); bf16 and f16 run on OpenVINO \
                     (backend=openvino or auto, on the CPU or an OpenVINO device)",
                    load.precision.as_str()
                )
            );
        }
        let (models, description) = Model::load(&load, requests).map_err(|e| error_message(&e))?;
        gst::info!(
            CAT,
            imp = self,
            "loaded {description}; {requests} requests of {threads} threads"
        );
        self.report_device(load.device, &models[0]);
        for w in &models[0].warnings {
            gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{w}"));
        }
        self.watch_format_of(&load);
        let name = self.obj().name();
        *self.producer.lock().unwrap() = Arc::from(name.as_str());
        let file = load.model_file.clone().unwrap_or_default();
        let loaded = Arc::new(Loaded::new(&models[0], &file, &name, None));
        *self.last_stats_post.lock().unwrap() = Instant::now();
        let run = self
            .scheduler
            .start(models, loaded.clone(), live.limits())
            .map_err(|e| {
                gst::error_msg!(
                    gst::CoreError::Thread,
                    ("Cannot start the inference threads: {e}")
                )
            })?;
        *self.running.lock().unwrap() = Some(Running {
            load,
            requests,
            run,
            loaded,
        });
        Ok(())
    }

    /// Watches the first frames of a model loaded with a forced `model-format`.
    fn watch_format_of(&self, load: &LoadSettings) {
        let watch = match load.model_format.get() {
            Some(_) => 0,
            None => FORMAT_WATCH_DONE,
        };
        self.format_watch.store(watch, Ordering::Relaxed);
    }

    /// A model setting changed: while running, the new model is loaded on a thread of its
    /// own while the old one goes on, and swapped in when ready.
    fn request_swap(&self) {
        if self.running.lock().unwrap().is_none() {
            return;
        }
        let mut swap = self.swap.lock().unwrap();
        swap.wanted += 1;
        if swap.loading {
            return; // that thread sees the new settings
        }
        swap.loading = true;
        drop(swap);
        let weak = self.obj().downgrade();
        let spawned = std::thread::Builder::new()
            .name("rtinfer-load".into())
            .spawn(move || {
                while let Some(obj) = weak.upgrade() {
                    std::thread::sleep(SWAP_SETTLE);
                    if obj.imp().load_for_swap() {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            self.swap.lock().unwrap().loading = false;
            self.restore_model_settings();
            gst::element_imp_warning!(
                self,
                gst::CoreError::Thread,
                ("Cannot start a thread to load the new model ({e}); the running model stays")
            );
        }
    }

    /// Loads the model the settings name now and swaps it in; false when the settings
    /// changed while loading (load again).
    fn load_for_swap(&self) -> bool {
        let wanted = self.swap.lock().unwrap().wanted;
        let running = self
            .running
            .lock()
            .unwrap()
            .as_ref()
            .map(|r| (r.load.clone(), r.requests, r.run, r.loaded.clone()));
        let Some((running_load, requests, run, previous)) = running else {
            self.swap.lock().unwrap().loading = false;
            return true;
        };
        // The running model's load settings with the model settings as they are now.
        let load = {
            let s = self.settings.lock().unwrap();
            LoadSettings {
                model_file: s.load.model_file.clone(),
                label_file: s.load.label_file.clone(),
                model_format: s.load.model_format,
                ..running_load
            }
        };
        let result = Model::load(&load, requests);
        {
            let mut swap = self.swap.lock().unwrap();
            if swap.wanted != wanted {
                return false;
            }
            swap.loading = false;
        }
        let file = load.model_file.clone().unwrap_or_default();
        let refused = match result {
            Ok((models, description)) => {
                let name = self.producer.lock().unwrap().clone();
                let loaded = Arc::new(Loaded::new(
                    &models[0],
                    &file,
                    &name,
                    Some(previous.spec.clone()),
                ));
                let device = models[0].device();
                let warnings = models[0].warnings.clone();
                let fallbacks = models[0].fallbacks.clone();
                match self.scheduler.replace(run, models, loaded.clone()) {
                    Ok(()) => {
                        gst::info!(CAT, imp = self, "swapping in {description}");
                        if let Some(r) = self.running.lock().unwrap().as_mut() {
                            r.load = load.clone();
                            r.loaded = loaded;
                        }
                        let moved = std::mem::replace(
                            &mut *self.active_device.lock().unwrap(),
                            device.clone(),
                        ) != device;
                        // The new model may run elsewhere (backend=auto may not run it on
                        // OpenVINO, say): the bus says why, as at start.
                        if moved {
                            device::report(
                                self.obj().upcast_ref(),
                                load.device,
                                &device,
                                &fallbacks,
                            );
                        }
                        self.watch_format_of(&load);
                        for w in warnings {
                            gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{w}"));
                        }
                        // Upstream rtpreprocess asks again for the input to make (pushed
                        // with the stream list unlocked).
                        let streams = self.streams.lock().unwrap().clone();
                        for s in streams {
                            s.sinkpad.push_event(gst::event::Reconfigure::new());
                        }
                        return true;
                    }
                    Err(NotReplaced::Stopped) => return true, // a new start loads the settings
                    Err(NotReplaced::NoThread(e)) => {
                        format!("no inference thread could be started ({e})")
                    }
                }
            }
            Err(e) => e.message,
        };
        self.restore_model_settings();
        gst::element_imp_warning!(
            self,
            gst::ResourceError::OpenRead,
            (
                "Cannot swap in the model {}: {refused}; {} keeps running",
                file.display(),
                previous.model_file
            )
        );
        true
    }

    /// Puts the running model's settings back (after a failed swap) and says so.
    fn restore_model_settings(&self) {
        let Some(load) = self
            .running
            .lock()
            .unwrap()
            .as_ref()
            .map(|r| r.load.clone())
        else {
            return;
        };
        {
            let mut s = self.settings.lock().unwrap();
            s.load.model_file = load.model_file;
            s.load.label_file = load.label_file;
            s.load.model_format = load.model_format;
        }
        let obj = self.obj();
        for name in ["model-file", "label-file", "model-format"] {
            obj.notify(name);
        }
    }

    fn report_device(&self, request: DeviceRequest, model: &Model) {
        let active = model.device();
        *self.active_device.lock().unwrap() = active.clone();
        device::report(self.obj().upcast_ref(), request, &active, &model.fallbacks);
    }

    fn stop(&self) {
        self.scheduler.stop();
        *self.running.lock().unwrap() = None;
        // A restart is a new stream: frames numbered from 0 again (rtdetreplay and apps
        // match on them), nothing of the last run's detections, labels or warnings.
        for s in self.streams.lock().unwrap().iter() {
            *s.state.lock().unwrap() = StreamState::default();
            *s.output.lock().unwrap() = OutputState::default();
            s.eos.store(false, Ordering::Relaxed);
        }
    }

    fn chain(
        &self,
        stream: &Arc<Stream>,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        stream.flow()?;
        let live = self.settings.lock().unwrap().live;
        // The model this frame is prepared for (a swap takes the frames after it).
        let model = self
            .scheduler
            .begin(stream.id)
            .map_err(|_| stream.flow().err().unwrap_or(gst::FlowError::Flushing))?;
        let mut st = stream.state.lock().unwrap();
        let number = st.frame_number;
        st.frame_number += 1;
        // A lowered interval counts from now, not from the end of the old countdown.
        st.until_next = st.until_next.min(live.interval.max(1) - 1);
        let infer = st.until_next == 0;
        st.until_next = if infer {
            live.interval.max(1) - 1
        } else {
            st.until_next - 1
        };
        let next_due = st.until_next == 0;
        let (width, height) = st.info.as_ref().map_or((0, 0), |i| (i.width(), i.height()));
        let mut warning = None;
        let work = if infer {
            let input = st.input(&buffer, &model, live.thresholds(), |m| warning = Some(m));
            drop(st);
            if let Some(msg) = warning {
                gst::element_imp_warning!(self, gst::StreamError::Format, ("{msg}"));
            }
            Work::Infer(input.map_err(|e| {
                self.post_error_message(e.to_gst("Cannot prepare the model input"));
                gst::FlowError::Error
            })?)
        } else {
            drop(st);
            Work::Stale
        };
        let item = Item::Frame {
            buffer,
            number,
            width,
            height,
            model,
        };
        match self.scheduler.submit(stream.id, item, work, next_due) {
            Ok(()) => stream.flow(),
            Err(_) => Err(stream.flow().err().unwrap_or(gst::FlowError::Flushing)),
        }
    }

    /// Warns once when a forced `model-format` gives nothing on the first inferred frames
    /// (a wrong format often decodes to nothing rather than failing).
    fn watch_format(&self, empty: bool) {
        let seen = self.format_watch.load(Ordering::Relaxed);
        if seen == FORMAT_WATCH_DONE {
            return;
        }
        if !empty {
            self.format_watch
                .store(FORMAT_WATCH_DONE, Ordering::Relaxed);
            return;
        }
        if seen + 1 < FORMAT_WATCH_FRAMES {
            self.format_watch.store(seen + 1, Ordering::Relaxed);
            return;
        }
        // Once, even when several streams get here together.
        if self.format_watch.swap(FORMAT_WATCH_DONE, Ordering::Relaxed) == FORMAT_WATCH_DONE {
            return;
        }
        let (format, file) = {
            let s = self.settings.lock().unwrap();
            (s.load.model_format.get(), s.load.model_file.clone())
        };
        let format = format.map_or("auto", |f| f.as_str());
        let file = file.map(|f| f.display().to_string()).unwrap_or_default();
        gst::element_imp_warning!(
            self,
            gst::LibraryError::Settings,
            ("model-format={format} is forced and the first {FORMAT_WATCH_FRAMES} inferred \
                 frames gave no detection: if {file} does not have the {format} layout, set \
                 model-format=auto (or check confidence-threshold and classes)")
        );
    }

    /// `rt-model-labels` for the stream's downstream: the labels of the detectors upstream
    /// and of the model whose detections its frames carry.
    fn labels_event(&self, stream: &Stream) -> gst::Event {
        let out = stream.output.lock().unwrap();
        let mine = match &out.model {
            Some(m) => m.labels.clone(),
            None => self
                .scheduler
                .spec()
                .map(|m| m.labels.clone())
                .unwrap_or_default(),
        };
        rtmeta::labels::event(&out.upstream_labels, &mine)
    }

    /// Notes the model a frame was prepared for; at the first frame of a swapped-in model,
    /// tells downstream its labels and posts `rtinfer-model-changed`.
    fn follow_model(&self, stream: &Stream, model: Arc<Loaded>, number: u64, source_id: u32) {
        {
            let mut out = stream.output.lock().unwrap();
            let changed = out.model.as_ref().is_some_and(|m| !Arc::ptr_eq(m, &model));
            let first = out.model.is_none();
            if !changed && !first {
                return;
            }
            out.model = Some(model.clone());
            if first {
                return;
            }
            // The old model's class ids mean other things under the new labels.
            out.last = None;
        }
        gst::info!(
            CAT,
            imp = self,
            "stream {source_id}: frames from {number} on go to {}",
            model.model_file
        );
        stream.srcpad.push_event(self.labels_event(stream));
        let s = gst::Structure::builder(MODEL_CHANGED)
            .field("source-id", stream.index.unwrap_or(source_id))
            .field("frame-number", number)
            .field("model-file", model.model_file.as_str())
            .field("model-format", model.format)
            .field("input", model.spec.describe())
            .build();
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }

    /// The src pad task: pushes the stream's next item once the scheduler has it.
    fn push_next(&self, stream: &Stream) {
        let live = self.settings.lock().unwrap().live;
        let (payload, outcome) = match self.scheduler.next(stream.id) {
            Next::Flushing => {
                let _ = stream.srcpad.pause_task();
                return;
            }
            Next::Item(payload, outcome) => (payload, outcome),
        };
        let (mut buffer, number, width, height) = match payload {
            Item::Event(event) => {
                if let Some(upstream) = rtmeta::labels::from_event(&event) {
                    // Detectors upstream: this one's labels join theirs.
                    stream.output.lock().unwrap().upstream_labels = upstream;
                    stream.srcpad.push_event(self.labels_event(stream));
                    return;
                }
                let caps = event.type_() == gst::EventType::Caps;
                let eos = event.type_() == gst::EventType::Eos;
                if matches!(
                    event.type_(),
                    gst::EventType::Caps | gst::EventType::Segment | gst::EventType::StreamStart
                ) {
                    let mut out = stream.output.lock().unwrap();
                    // Detections of another size, time or stream must not reach these frames.
                    out.last = None;
                    if !caps {
                        out.downstream_eos = false;
                    }
                }
                if eos {
                    // Complete now (every frame before it has left), and before the EOS
                    // message the sink posts.
                    self.post_stats();
                }
                stream.srcpad.push_event(event);
                if caps {
                    stream.srcpad.push_event(self.labels_event(stream));
                }
                return;
            }
            // Downstream is done with this stream (it returned EOS): like queue, frames
            // are dropped and events still go out, until a new segment or stream.
            Item::Frame { .. } if stream.output.lock().unwrap().downstream_eos => return,
            Item::Frame {
                buffer,
                number,
                width,
                height,
                model,
            } => {
                self.follow_model(stream, model, number, live.source_id);
                (buffer, number, width, height)
            }
        };
        if let Outcome::Ran(Ok(objects)) = &outcome {
            self.watch_format(objects.is_empty());
        }
        let source_id = stream.index.unwrap_or(live.source_id);
        let producer = self.producer.lock().unwrap().clone();
        let mut out = stream.output.lock().unwrap();
        let detections = match outcome {
            Outcome::Ran(Ok(mut objects)) => {
                for o in &mut objects {
                    o.producer = Some(producer.to_string());
                }
                Detections {
                    source_id,
                    frame_number: number,
                    width,
                    height,
                    stale: false,
                    objects,
                }
            }
            Outcome::Ran(Err(e)) => {
                drop(out);
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e.message));
                self.stop_stream(stream, gst::FlowError::Error);
                return;
            }
            Outcome::Stale | Outcome::Skipped | Outcome::Passed => {
                let mut d = out.last.clone().unwrap_or(Detections {
                    source_id,
                    frame_number: number,
                    width,
                    height,
                    stale: true,
                    objects: Vec::new(),
                });
                d.frame_number = number;
                d.stale = true;
                d
            }
        };
        {
            let b = buffer.make_mut();
            // Detections of another detector upstream stay: this one's are added to them.
            let merged = Detections::from_buffer(b).map(|upstream| {
                let mut merged = detections.clone();
                merged.merge_from(upstream, &producer);
                merged
            });
            let frame = merged.as_ref().unwrap_or(&detections);
            let _ = frame.attach(b);
            if live.roi_meta {
                rtmeta::roi::attach_roi(frame, b);
            }
            if !live.keep_tensor
                && let Ok(meta) = gst::meta::CustomMeta::from_mut_buffer(b, rtmeta::TENSOR_META)
            {
                let _ = meta.remove();
            }
        }
        // Kept only for frames that may not be inferred: this element's own detections.
        out.last = (live.interval > 1 || live.max_latency_ms > 0).then_some(detections);
        drop(out);
        match stream.srcpad.push(buffer) {
            Ok(_) => {}
            Err(gst::FlowError::Eos) => {
                // Upstream's next chain returns EOS; queued frames are dropped above.
                stream.output.lock().unwrap().downstream_eos = true;
                stream.set_flow(Err(gst::FlowError::Eos));
                self.scheduler.set_active(stream.id, false);
            }
            Err(e) => {
                // A downstream error after EOS reaches nobody unless posted here.
                if stream.eos.load(Ordering::Relaxed) {
                    self.post_flow_error(e);
                }
                self.stop_stream(stream, e);
            }
        }
        if number % 30 == 0 {
            self.repost_latency(false);
        }
        if live.stats_interval_ms > 0
            && self.last_stats_post.lock().unwrap().elapsed()
                >= Duration::from_millis(live.stats_interval_ms as u64)
        {
            self.post_stats();
        }
    }

    /// Stops a stream's output after `flow` went wrong: its submitter (which may be waiting
    /// for room) returns `flow` upstream at once, as queue's does, and what is queued is
    /// dropped. A flush or restart resumes it.
    fn stop_stream(&self, stream: &Stream, flow: gst::FlowError) {
        stream.set_flow(Err(flow));
        self.withdraw(stream);
        let _ = stream.srcpad.pause_task();
    }

    /// Drops what the stream has queued or in flight (a flush, a stopped output). Like
    /// queue, sticky events among it other than segment and EOS are kept on the src pad, so
    /// they still reach downstream before the next frame.
    fn withdraw(&self, stream: &Stream) {
        for item in self.scheduler.flush_start(stream.id) {
            if let Item::Event(e) = item
                && e.is_sticky()
                && !matches!(e.type_(), gst::EventType::Segment | gst::EventType::Eos)
            {
                let _ = stream.srcpad.store_sticky_event(&e);
            }
        }
    }

    /// What queue posts when a stream stops on an error that upstream will not report: no
    /// data flow follows an EOS.
    fn post_flow_error(&self, flow: gst::FlowError) {
        if matches!(flow, gst::FlowError::Flushing | gst::FlowError::Eos) {
            return;
        }
        gst::element_imp_error!(
            self,
            gst::StreamError::Failed,
            ("Internal data stream error."),
            ["streaming stopped, reason {flow:?}"]
        );
    }

    fn start_task(&self, stream: &Arc<Stream>) -> Result<(), glib::BoolError> {
        let (element, weak) = (self.obj().downgrade(), Arc::downgrade(stream));
        let pad = stream.srcpad.downgrade();
        stream
            .srcpad
            .start_task(move || match (element.upgrade(), weak.upgrade()) {
                (Some(e), Some(s)) => e.imp().push_next(&s),
                _ => {
                    if let Some(p) = pad.upgrade() {
                        let _ = p.pause_task();
                    }
                }
            })
    }

    fn src_activate(
        &self,
        stream: &Arc<Stream>,
        mode: gst::PadMode,
        active: bool,
    ) -> Result<(), gst::LoggableError> {
        if mode != gst::PadMode::Push {
            return Err(gst::loggable_error!(CAT, "only push mode is supported"));
        }
        if active {
            stream.set_flow(Ok(gst::FlowSuccess::Ok));
            stream.output.lock().unwrap().downstream_eos = false;
            // Batches wait for every linked stream from the start (not only once its first
            // event arrives, or a fast stream would run alone before the others start).
            self.scheduler
                .set_active(stream.id, stream.sinkpad.is_linked());
            self.start_task(stream)
                .map_err(|e| gst::loggable_error!(CAT, "cannot start the src task: {e}"))
        } else {
            stream.set_flow(Err(gst::FlowError::Flushing));
            drop(self.scheduler.flush_start(stream.id));
            stream
                .srcpad
                .stop_task()
                .map_err(|e| gst::loggable_error!(CAT, "cannot stop the src task: {e}"))
        }
    }

    fn sink_event(&self, stream: &Arc<Stream>, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::FlushStart(_) => {
                let ok = stream.srcpad.push_event(event);
                stream.set_flow(Err(gst::FlowError::Flushing));
                self.withdraw(stream);
                let _ = stream.srcpad.pause_task();
                return ok;
            }
            gst::EventView::FlushStop(_) => {
                let ok = stream.srcpad.push_event(event);
                self.scheduler.flush_stop(stream.id);
                stream.state.lock().unwrap().until_next = 0;
                stream.output.lock().unwrap().downstream_eos = false;
                stream.eos.store(false, Ordering::Relaxed);
                stream.set_flow(Ok(gst::FlowSuccess::Ok));
                // After an EOS (a seek back to loop) batches wait for this stream again.
                self.scheduler.set_active(stream.id, true);
                if stream.srcpad.is_active() {
                    let _ = self.start_task(stream);
                }
                return ok;
            }
            _ if !event.is_serialized() => {
                return gst::Pad::event_default(pad, Some(&*self.obj()), event);
            }
            gst::EventView::Caps(c) => {
                let mut st = stream.state.lock().unwrap();
                st.info = gst_video::VideoInfo::from_caps(c.caps()).ok();
                st.reset_converter();
                st.until_next = 0;
            }
            gst::EventView::Segment(_) => {
                stream.state.lock().unwrap().until_next = 0;
                if stream.clear_eos_flow() {
                    self.scheduler.set_active(stream.id, true);
                }
            }
            gst::EventView::StreamStart(_) => {
                stream.state.lock().unwrap().until_next = 0;
                stream.eos.store(false, Ordering::Relaxed);
                stream.clear_eos_flow();
                self.scheduler.set_active(stream.id, true);
            }
            gst::EventView::Eos(_) => {
                // Only this stream ends; the others go on.
                stream.eos.store(true, Ordering::Relaxed);
                self.scheduler.set_active(stream.id, false);
                if let Err(e) = stream.flow() {
                    // The output stopped on an error: nothing else will report it.
                    self.post_flow_error(e);
                }
            }
            _ => {}
        }
        let next_due = stream.state.lock().unwrap().until_next == 0;
        // In order with the frames: the src task pushes it after the frames before it.
        self.scheduler
            .submit(stream.id, Item::Event(event), Work::Pass, next_due)
            .is_ok()
    }

    /// Upstream's latency plus what a frame waits here, so that a live pipeline's sinks wait
    /// long enough for the detections (`Scheduler::latency`).
    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if !gst::Pad::query_default(pad, Some(&*self.obj()), query) {
            return false;
        }
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let (live, min, max) = q.result();
            let own = gst::ClockTime::from_nseconds(self.scheduler.latency().as_nanos() as u64);
            self.reported_latency
                .store(own.nseconds(), Ordering::Relaxed);
            gst::debug!(CAT, obj = pad, "adding {own} to upstream's latency {min}");
            q.set(live, min + own, max.map(|m| m + own));
        }
        true
    }

    /// Asks the pipeline to query the latency again when this element's has changed
    /// (`always`, after a limit changed) or grown well past what was reported.
    fn repost_latency(&self, always: bool) {
        let reported = Duration::from_nanos(self.reported_latency.load(Ordering::Relaxed));
        let now = self.scheduler.latency();
        let changed = if always {
            now != reported
        } else {
            latency_outgrown(now, reported)
        };
        if reported.is_zero() || !changed {
            return;
        }
        // Once per change: the query that follows stores what it reports.
        self.reported_latency
            .store(now.as_nanos() as u64, Ordering::Relaxed);
        gst::info!(
            CAT,
            imp = self,
            "latency now {now:?} (reported {reported:?})"
        );
        let obj = self.obj();
        let _ = obj.post_message(gst::message::Latency::builder().src(&*obj).build());
    }

    fn sink_query(
        &self,
        stream: Option<&Arc<Stream>>,
        pad: &gst::Pad,
        query: &mut gst::QueryRef,
    ) -> bool {
        match query.view_mut() {
            gst::QueryViewMut::Custom(q)
                if q.structure().is_some_and(|s| s.name() == QUERY_NAME) =>
            {
                let Some(model) = self.scheduler.spec() else {
                    return false;
                };
                let answer = q.structure_mut();
                for (field, value) in model.spec.to_structure().iter() {
                    answer.set_value(field, value.clone());
                }
                true
            }
            gst::QueryViewMut::Allocation(_) => {
                // Downstream's answer, plus the frames that wait here.
                let _ = gst::Pad::query_default(pad, Some(&*self.obj()), query);
                let interval = self.settings.lock().unwrap().live.interval;
                let held = self.scheduler.frames_held(interval) as u32;
                if let gst::QueryViewMut::Allocation(q) = query.view_mut() {
                    reserve(q, held);
                    rtmeta::refuse_crop_meta(q);
                }
                true
            }
            gst::QueryViewMut::Drain(_) => {
                // Everything before it must have left.
                if let Some(s) = stream {
                    self.scheduler.drain(s.id);
                }
                gst::Pad::query_default(pad, Some(&*self.obj()), query)
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }
}

/// Asks upstream for `held` more buffers in an ALLOCATION query: frames wait here while
/// they are inferred, so a pool of a few buffers (hardware decoders, cameras) would run dry,
/// or its element fall back to copying, if it were sized for downstream alone.
fn reserve(q: &mut gst::query::Allocation, held: u32) {
    let pools: Vec<_> = q.allocation_pools().collect();
    if pools.is_empty() {
        let size = q
            .get()
            .0
            .and_then(|caps| gst_video::VideoInfo::from_caps(caps).ok())
            .map_or(0, |info| info.size() as u32);
        q.add_allocation_pool(None::<&gst::BufferPool>, size, held, 0);
    }
    for (i, (pool, size, min, max)) in pools.into_iter().enumerate() {
        let min = min + held;
        // 0 is no limit; a limit below the new minimum would make the pool unusable.
        let max = if max == 0 { 0 } else { max.max(min) };
        q.set_nth_allocation_pool(i as u32, pool.as_ref(), size, min, max);
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
                    .blurb("ONNX model to run (YOLOX, YOLOv5 or Ultralytics YOLOv8/YOLO11 detection export). \
                            Set while playing, the new model loads in the background and takes over at a frame \
                            boundary (element message 'rtinfer-model-changed' per stream); one that fails to load \
                            leaves the running model and this setting as they were, with a warning")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("label-file")
                    .nick("Label file")
                    .blurb("Class names, one per line (default: the model's 'names' metadata, else the 80 COCO names); \
                            set while playing, like model-file")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("model-format", FormatProp::Auto)
                    .nick("Model format")
                    .blurb("Output layout and matching preprocessing; auto tells them from the output shape; \
                            set while playing, like model-file")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("confidence-threshold")
                    .nick("Confidence threshold")
                    .blurb("Detections scoring below this are dropped (score = objectness x class score where the model has objectness)")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(Live::default().confidence)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("iou-threshold")
                    .nick("IoU threshold")
                    .blurb("Non-maximum suppression: a box overlapping a better box of the same class by more than this is dropped")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(Live::default().iou)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-detections")
                    .nick("Maximum detections")
                    .blurb("At most this many detections per frame, best first")
                    .minimum(1)
                    .maximum(100_000)
                    .default_value(Live::default().max_detections)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("classes")
                    .nick("Classes")
                    .blurb("Only report these classes: comma-separated ids or labels, e.g. \"person,car\" or \"0,2\" (empty = all)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("requests")
                    .nick("Requests")
                    .blurb("Model executions run at once, each with its own threads; frames of one stream or of \
                            many run in parallel and leave in order (0 = auto: one per core, at most 8; with \
                            threads set, the cores divided by threads)")
                    .maximum(64)
                    .default_value(Settings::default().requests)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("Inference threads of each request (0 = auto: the cores divided among the requests). \
                            A warning says when requests x threads exceed the cores")
                    .maximum(256)
                    .default_value(Settings::default().load.threads)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-latency")
                    .nick("Maximum latency")
                    .blurb("Milliseconds a frame may spend in rtinfer: a frame that would wait longer for a free \
                            request is not inferred and leaves with the last detections (stale), counted as \
                            'skipped' in stats; for live sources faster than the model (0 = infer every frame). \
                            The latency rtinfer reports to the pipeline is this plus one run, else two runs")
                    .maximum(60_000)
                    .default_value(Live::default().max_latency_ms)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("interval")
                    .nick("Interval")
                    .blurb("Run the model on every Nth frame of each stream; frames in between carry the last detections, flagged stale (a change applies from the next frame)")
                    .minimum(1)
                    .maximum(1000)
                    .default_value(Live::default().interval)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("batch-size")
                    .nick("Batch size")
                    .blurb("Models with a dynamic batch dimension: most frames (of all streams) run as one [N,...] batch, \
                            which goes as soon as every playing stream has a frame in it (not counting streams whose \
                            next frame interval skips) or it is full. Models with a fixed batch of 1 run each frame \
                            on the next free request")
                    .minimum(1)
                    .maximum(MAX_BATCH as u32)
                    .default_value(Live::default().batch_size)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("batch-timeout")
                    .nick("Batch timeout")
                    .blurb("Models with a dynamic batch dimension: milliseconds a frame waits for a batch to fill before it \
                            runs anyway, the most latency a slow or stalled stream adds to the others")
                    .maximum(10_000)
                    .default_value(Live::default().batch_timeout_ms)
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
                    .default_value(Live::default().stats_interval_ms)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("backend", Settings::default().load.backend)
                    .nick("Backend")
                    .blurb("Inference library: onnxruntime, openvino, or auto (the faster here: ONNX Runtime with \
                            CUDA/TensorRT on NVIDIA GPUs; on the CPU, OpenVINO in bf16 for float models where the CPU \
                            computes bf16 natively (AVX-512 BF16 or AMX), else ONNX Runtime (exact f32; faster on \
                            int8-quantized models), which precision=f32 \
                            and onnxruntime-library also choose; OpenVINO when device names an OpenVINO device or \
                            precision is bf16 or f16; ONNX Runtime stands in, with a message, where OpenVINO \
                            cannot run). \
                            active-device says which runs")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("precision", Settings::default().load.precision)
                    .nick("Precision")
                    .blurb("Inference precision: f32 (exact on the CPU; backend=auto then runs ONNX Runtime, the \
                            faster in f32, unless device names an OpenVINO device), bf16 or f16 (run by \
                            OpenVINO, which backend=auto then chooses; faster, detections may differ slightly), or \
                            auto (the backend's default: f32 for ONNX Runtime on the CPU, bf16 for OpenVINO on CPUs \
                            with AVX-512 BF16 or AMX, where backend=auto runs OpenVINO; see active-device)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("openvino-library")
                    .nick("OpenVINO library")
                    .blurb("Path of libopenvino_c.so (default: OPENVINO_LIBRARY, then the setup's and Python's openvino packages, then the system)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("onnxruntime-library")
                    .nick("ONNX Runtime library")
                    .blurb("Path of libonnxruntime.so (default: ORT_DYLIB_PATH, then the setup's and Python's onnxruntime packages, then the system); setting it makes backend=auto choose ONNX Runtime")
                    .mutable_ready()
                    .build(),
                device::property(),
                glib::ParamSpecBoolean::builder("tensorrt")
                    .nick("TensorRT")
                    .blurb("On CUDA, try ONNX Runtime's TensorRT execution provider first (needs onnxruntime-gpu and TensorRT 10); the CUDA provider takes what TensorRT cannot run")
                    .default_value(Settings::default().load.tensorrt)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("tensorrt-fp16")
                    .nick("TensorRT FP16")
                    .blurb("Let TensorRT build FP16 engines (faster; detections may differ slightly from FP32)")
                    .default_value(Settings::default().load.trt_fp16)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("tensorrt-cache-dir")
                    .nick("TensorRT engine cache")
                    .blurb("Folder where TensorRT engines are kept, so each is built once (minutes) and then loaded \
                            (default: $XDG_CACHE_HOME/rtinfer/tensorrt, else ~/.cache/rtinfer/tensorrt; empty: no cache)")
                    .default_value(
                        Settings::default().load.trt_cache.map(|p| p.display().to_string()).as_deref(),
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("active-device")
                    .nick("Active device")
                    .blurb("Where the model runs once started: cpu (ONNX Runtime), cuda:N (CUDA) or cuda:N (TensorRT), \
                            or openvino:CPU (PRECISION)")
                    .read_only()
                    .build(),
                glib::ParamSpecBoolean::builder("roi-meta")
                    .nick("ROI meta")
                    .blurb(
                        "Also attach one standard GstVideoRegionOfInterestMeta per detection \
                         (roi-type = label, id = track id or -1, parameter structure \
                         \"rt-detection\" with class-id, confidence, track-id) for elements and \
                         apps that read only that meta; rttrack keeps their ids up to date",
                    )
                    .default_value(Live::default().roi_meta)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("keep-tensor")
                    .nick("Keep tensor")
                    .blurb("Leave the RtTensorMeta on buffers after inference (default: remove it so its memory is reused at once)")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("frames, inferences, detections, mean-inference-ms, p95-inference-ms, batches, model-runs, \
                            mean-batch-size, requests, mean-busy-requests, mean-queue-ms, mean-latency-ms (arrival to push), \
                            p95-latency-ms, skipped (max-latency), inference-ms-sum, inference-ms-bounds, \
                            inference-ms-buckets (a histogram of inference times: counts per bucket, the last above every bound) and active-device so far")
                    .read_only()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        let limits = s.live.limits();
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
            "requests" => s.requests = value.get().unwrap(),
            "max-latency" => s.live.max_latency_ms = value.get().unwrap(),
            "interval" => s.live.interval = value.get().unwrap(),
            "batch-size" => s.live.batch_size = value.get().unwrap(),
            "batch-timeout" => s.live.batch_timeout_ms = value.get().unwrap(),
            "source-id" => s.live.source_id = value.get().unwrap(),
            "stats-interval" => s.live.stats_interval_ms = value.get().unwrap(),
            "onnxruntime-library" => s.load.library = path(value),
            "backend" => s.load.backend = value.get().unwrap(),
            "precision" => s.load.precision = value.get().unwrap(),
            "openvino-library" => s.load.openvino_library = path(value),
            "keep-tensor" => s.live.keep_tensor = value.get().unwrap(),
            "roi-meta" => s.live.roi_meta = value.get().unwrap(),
            "device" => s.device = device::property_value(value),
            "tensorrt" => s.load.tensorrt = value.get().unwrap(),
            "tensorrt-fp16" => s.load.trt_fp16 = value.get().unwrap(),
            "tensorrt-cache-dir" => s.load.trt_cache = path(value),
            _ => unreachable!(),
        }
        let new = s.live.limits();
        let limits_changed = (new.batch_size, new.batch_timeout, new.max_latency)
            != (limits.batch_size, limits.batch_timeout, limits.max_latency);
        if limits_changed {
            // Under the settings lock (the scheduler's is a leaf lock): two threads setting
            // limits at once apply them in the order the properties show.
            self.scheduler.set_limits(new);
        }
        drop(s);
        if matches!(pspec.name(), "model-file" | "label-file" | "model-format") {
            self.request_swap();
        }
        if limits_changed {
            self.repost_latency(true);
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
            "requests" => s.requests.to_value(),
            "max-latency" => s.live.max_latency_ms.to_value(),
            "interval" => s.live.interval.to_value(),
            "batch-size" => s.live.batch_size.to_value(),
            "batch-timeout" => s.live.batch_timeout_ms.to_value(),
            "source-id" => s.live.source_id.to_value(),
            "stats-interval" => s.live.stats_interval_ms.to_value(),
            "onnxruntime-library" => path(&s.load.library),
            "backend" => s.load.backend.to_value(),
            "precision" => s.load.precision.to_value(),
            "openvino-library" => path(&s.load.openvino_library),
            "keep-tensor" => s.live.keep_tensor.to_value(),
            "roi-meta" => s.live.roi_meta.to_value(),
            "device" => s.device.to_value(),
            "tensorrt" => s.load.tensorrt.to_value(),
            "tensorrt-fp16" => s.load.trt_fp16.to_value(),
            "tensorrt-cache-dir" => path(&s.load.trt_cache),
            "active-device" => self.active_device.lock().unwrap().to_value(),
            "stats" => {
                drop(s);
                self.stats().to_value()
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
            self.scheduler.register(),
            templ,
            &format!("sink_{index}"),
            &src_templ,
            &format!("src_{index}"),
        );
        streams.push(stream.clone());
        drop(streams);
        let obj = self.obj();
        // Adding activates the pads (and starts the src task) when the element is running.
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
        self.scheduler.unregister(stream.id);
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
            // Releases every waiting streaming thread and src task before pads deactivate.
            gst::StateChange::PausedToReady => self.scheduler.stop(),
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

/// A model-layer error as the GStreamer error the element posts: the only place they meet.
fn error_message(e: &crate::backend::Error) -> gst::ErrorMessage {
    use crate::backend::ErrorKind;
    match e.kind {
        ErrorKind::ModelNotFound => {
            gst::error_msg!(gst::ResourceError::NotFound, ("{}", e.message))
        }
        ErrorKind::BadModel => gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e.message)),
        ErrorKind::Library => gst::error_msg!(gst::LibraryError::Init, ("{}", e.message)),
        ErrorKind::Run => gst::error_msg!(gst::StreamError::Failed, ("{}", e.message)),
        ErrorKind::Settings => gst::error_msg!(gst::LibraryError::Settings, ("{}", e.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::{latency_outgrown, reserve};
    use std::time::Duration;

    #[test]
    fn latency_is_outgrown_past_a_quarter_more_than_reported() {
        let ms = Duration::from_millis;
        assert!(!latency_outgrown(ms(125), ms(100)));
        assert!(latency_outgrown(ms(126), ms(100)));
        assert!(!latency_outgrown(ms(50), ms(100)), "shrinking is not");
        assert!(!latency_outgrown(ms(500), ms(0)), "nothing reported yet");
    }

    #[test]
    fn reserve_adds_the_held_frames_to_every_pool_downstream_proposed() {
        gst::init().unwrap();
        let caps = gst::Caps::builder("video/x-raw").build();
        let mut q = gst::query::Allocation::new(Some(&caps), true);
        q.add_allocation_pool(None::<&gst::BufferPool>, 1000, 2, 0);
        q.add_allocation_pool(None::<&gst::BufferPool>, 1000, 2, 4);
        q.add_allocation_pool(None::<&gst::BufferPool>, 1000, 1, 20);
        reserve(&mut q, 5);
        let pools: Vec<_> = q
            .allocation_pools()
            .map(|(_, size, min, max)| (size, min, max))
            .collect();
        // No limit stays none; a limit below the new minimum rises to it.
        assert_eq!(pools, vec![(1000, 7, 0), (1000, 7, 7), (1000, 6, 20)]);
    }
}
