//! The running service: one pipeline with one shared, batched `rtinfer`, and a branch per
//! source that is added and removed while it plays:
//!
//! ```text
//! bin "src-ID":  rturisrcbin ! videoconvert ! (ghost src)  ->  rtinfer.sink_N
//! bin "out-ID":  rtinfer.src_N -> (ghost sink) rttrack ! rtalert ! appsink
//!                with recording, re-streaming or HLS: ... rtalert ! tee ! queue ! appsink
//!                  tee. ! queue leaky ! rtoverlay ! videoconvert ! x264enc ! h264parse
//!                       ! (tee) ! rtrecord name=ID  /  appsink -> RTSP feed (restream.rs)
//!                                               /  appsink -> HLS writer (hls.rs)
//! ```
//!
//! The appsink hands each frame's detections to the detection outputs; `rtalert` posts its
//! alerts on the bus, and the bus thread hands them to the alert outputs. Everything that
//! reaches a log, the API or the metrics shows URIs masked.
//!
//! Locking: `sources` is held only for bookkeeping; element state changes, pad releases and
//! joins happen after it is released (a branch is taken out of the map first, so two callers
//! never tear down the same branch).

use crate::config::{Config, SourceConfig};
use crate::events::AlertLog;
use crate::hls::HlsWriter;
use crate::restream::{Feed, Restream};
use crate::shard::Shard;
use gst::prelude::*;
use gstrtalert::outputs::{self, Level, Message, Output, Report, Worker, jsonl_file};
use rtmeta::mask::{mask_in, mask_uri};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// Why a request to add or remove a source failed.
#[derive(Debug, PartialEq)]
pub enum SourceError {
    /// The request itself is wrong (bad id, URI, rules): 400.
    Invalid(String),
    /// The id is taken: 409.
    Duplicate(String),
    /// No such source: 404.
    Unknown(String),
    /// The source could not start (no element for its scheme, missing file): 422.
    CannotStart(String),
    /// The service is stopping: 503.
    Stopping,
    /// The source is not running, or recording is off: 409.
    NotNow(String),
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::Invalid(e) | SourceError::CannotStart(e) | SourceError::NotNow(e) => {
                f.write_str(e)
            }
            SourceError::Duplicate(id) => write!(f, "a source with id '{id}' exists already"),
            SourceError::Unknown(id) => write!(f, "there is no source with id '{id}'"),
            SourceError::Stopping => f.write_str("the service is stopping"),
        }
    }
}

/// Counted by the appsink callback (streaming thread), read by the API and metrics.
#[derive(Default)]
pub struct Counters {
    pub frames: AtomicU64,
    pub stale: AtomicU64,
    pub detections: AtomicU64,
    pub ended: AtomicBool,
    /// When the source's stream ended by itself (its appsink's EOS).
    pub ended_at: Mutex<Option<Instant>>,
}

/// The elements of a running source.
struct Branch {
    input: gst::Bin,
    output: gst::Bin,
    sinkpad: gst::Pad,
    source: gst::Element,
    alert: Option<gst::Element>,
    /// The source's rtrecord, when recording is on.
    recorder: Option<gst::Element>,
    /// The source's RTSP mount, when re-streaming is on.
    mount: Option<String>,
    /// The source's HLS writer, when HLS is on; ended when the branch is torn down.
    hls: Option<Arc<HlsWriter>>,
    /// This source's own detections file, when the file name has "{source}".
    file: Option<Arc<OutputSet>>,
}

/// The encoder branch of a source: `main` from the queue after the first tee to its last
/// element (a tee when there are `branches`, each linked from it).
struct Encoded {
    main: Vec<gst::Element>,
    branches: Vec<Vec<gst::Element>>,
    recorder: Option<gst::Element>,
    feed: Option<Arc<Feed>>,
    hls: Option<Arc<HlsWriter>>,
}

struct Source {
    config: SourceConfig,
    pad: u32,
    branch: Option<Branch>,
    counters: Arc<Counters>,
    /// Set when the source failed for good; the branch is then gone.
    failed: Option<String>,
    last_error: Option<String>,
    /// Alerts emitted, by (rule, kind).
    alerts: BTreeMap<(String, String), u64>,
    /// Frames at the last fps sample, and the rate then.
    sampled_frames: u64,
    fps: f64,
    /// Reconnects of the branch's source when it was stopped.
    reconnects: u64,
}

/// A snapshot of one source for the API and the metrics.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SourceStatus {
    pub id: String,
    /// Masked.
    pub uri: String,
    pub enabled: bool,
    /// connecting, playing, retrying, ended, failed, stopped (disabled) or starting.
    pub state: String,
    pub fps: f64,
    pub frames: u64,
    pub stale_frames: u64,
    pub detections: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
    /// The rtinfer pad number, which is the `source_id` inside detections and alerts.
    pub source_id: u32,
    /// The live HLS playlist's URL path, when HLS is on.
    pub hls: Option<String>,
    #[serde(skip)]
    pub alerts: BTreeMap<(String, String), u64>,
    #[serde(skip)]
    pub alert_stats: Option<gst::Structure>,
}

impl SourceStatus {
    pub fn ready(&self) -> bool {
        !self.enabled || matches!(self.state.as_str(), "playing" | "ended")
    }
}

/// Outputs that messages go to together. The streaming threads hold them weakly, so the
/// stop can take them back and drain them.
#[derive(Default)]
pub struct OutputSet(Vec<Box<dyn Output>>);

impl OutputSet {
    fn send(&self, m: &Message) {
        for o in &self.0 {
            o.send(m);
        }
    }

    /// (name, delivered, dropped) of each output.
    fn stats(&self) -> impl Iterator<Item = (&str, u64, u64)> {
        self.0.iter().map(|o| {
            let s = o.stats();
            (
                o.name(),
                s.delivered.load(Ordering::Relaxed),
                s.dropped.load(Ordering::Relaxed),
            )
        })
    }
}

/// Delivers what the outputs have queued within `grace`, once nothing else holds them;
/// returns their final (name, delivered, dropped).
fn drain(set: Arc<OutputSet>, grace: Duration) -> Vec<(String, u64, u64)> {
    let set = match Arc::try_unwrap(set) {
        Ok(mut set) => {
            for o in &mut set.0 {
                o.shutdown(grace);
            }
            Arc::new(set)
        }
        Err(set) => {
            tracing::warn!("outputs still in use at the stop; not drained");
            set
        }
    };
    set.stats()
        .map(|(name, delivered, dropped)| (name.to_string(), delivered, dropped))
        .collect()
}

#[derive(Default)]
struct Shared {
    detections: Arc<OutputSet>,
    alerts: Arc<OutputSet>,
}

pub struct Service {
    pipeline: gst::Pipeline,
    infer: gst::Element,
    config: Config,
    pub shard: Option<Shard>,
    sources: Mutex<BTreeMap<String, Source>>,
    /// Ids of removed sources whose branch is still being torn down (taken after `sources`):
    /// their bins, HLS folder and RTSP mount are not free for a new source of that id yet.
    retiring: Mutex<BTreeSet<String>>,
    /// The outputs' figures after the stop drained them (they are gone then).
    final_outputs: Mutex<Option<BTreeMap<String, (u64, u64)>>>,
    /// When a source's branch was last torn down (see `ended_by_its_sources`).
    last_teardown: Mutex<Option<Instant>>,
    next_pad: AtomicU32,
    shared: Mutex<Shared>,
    started: Instant,
    stopping: AtomicBool,
    /// Set by the bus thread: the pipeline ended (EOS) or failed (the error).
    finished: (Mutex<Option<Result<(), String>>>, Condvar),
    /// The RTSP server, when re-streaming is on.
    restream: Option<Restream>,
    /// The newest alerts and their live feed (dashboard, /api/v1/alerts, /api/v1/events).
    pub alert_log: AlertLog,
}

fn report() -> Report {
    Arc::new(|level, text| match level {
        Level::Problem => tracing::warn!("{text}"),
        Level::Recovered => tracing::info!("{text}"),
    })
}

/// A JSON-lines output on standard output (one line per message, never interleaved).
fn stdout_worker(what: &str) -> Worker {
    outputs::stdout(format!("stdout:{what}"), 4096, report())
}

/// Where a bus message comes from (`Service::origin`).
enum Origin {
    /// A source's branch: its id.
    Source(String),
    /// The shared part (rtinfer, the pipeline itself).
    Shared,
    /// An element no longer in the pipeline: a torn-down branch.
    Gone,
}

impl Service {
    /// Builds the pipeline and starts it (the model loads here: a bad model is an error that
    /// says what to fix), then starts the configured sources this instance owns.
    pub fn start(config: Config, shard: Option<Shard>) -> Result<Arc<Service>, String> {
        let m = &config.model;
        let infer = gst::ElementFactory::make("rtinfer")
            .name("infer")
            .property("model-file", m.file.to_string_lossy().as_ref())
            .property_from_str("backend", &m.backend)
            .property("device", &m.device)
            .property_from_str("precision", &m.precision)
            .property("batch-size", m.batch_size)
            .property("batch-timeout", m.batch_timeout_ms)
            .property("interval", m.interval)
            .property("requests", m.requests)
            .property("threads", m.threads)
            .property("max-latency", m.max_latency_ms)
            .property("classes", m.classes.as_deref().unwrap_or(""))
            .build()
            .map_err(|e| format!("Cannot create rtinfer ({e}): is GST_PLUGIN_PATH set?"))?;
        if let Some(c) = m.confidence_threshold {
            infer.set_property("confidence-threshold", c);
        }
        let pipeline = gst::Pipeline::with_name("rtanalytics");
        pipeline.add(&infer).map_err(|e| e.to_string())?;

        let shared = shared_outputs(&config.outputs)?;
        let restream = config
            .restream
            .as_ref()
            .map(|r| {
                let viewer = r.password.as_deref().map(|p| (r.user.as_str(), p));
                Restream::start(&r.listen, viewer)
            })
            .transpose()?;

        let service = Arc::new(Service {
            pipeline,
            infer,
            config,
            shard,
            sources: Mutex::new(BTreeMap::new()),
            retiring: Mutex::new(BTreeSet::new()),
            last_teardown: Mutex::new(None),
            final_outputs: Mutex::new(None),
            next_pad: AtomicU32::new(0),
            shared: Mutex::new(shared),
            started: Instant::now(),
            stopping: AtomicBool::new(false),
            finished: (Mutex::new(None), Condvar::new()),
            restream,
            alert_log: AlertLog::default(),
        });

        // The model loads on the way to PLAYING; its errors are on the bus.
        if service.pipeline.set_state(gst::State::Playing).is_err() {
            let bus = service.pipeline.bus().expect("pipelines have a bus");
            let why = bus
                .pop_filtered(&[gst::MessageType::Error])
                .and_then(|m| match m.view() {
                    gst::MessageView::Error(e) => {
                        Some(format!("{} ({})", e.error(), e.debug().unwrap_or_default()))
                    }
                    _ => None,
                })
                .unwrap_or_else(|| "the pipeline did not start".into());
            let _ = service.pipeline.set_state(gst::State::Null);
            return Err(format!("Cannot start the model: {why}"));
        }
        let weak = Arc::downgrade(&service);
        std::thread::Builder::new()
            .name("rtanalytics-bus".into())
            .spawn(move || bus_loop(weak))
            .map_err(|e| e.to_string())?;

        let configured: Vec<SourceConfig> = service
            .config
            .sources
            .iter()
            .filter(|s| service.shard.is_none_or(|sh| sh.owns(&s.id)))
            .cloned()
            .collect();
        if let Some(sh) = service.shard {
            tracing::info!(
                shard = %sh,
                "shard {sh}: {} of {} configured sources",
                configured.len(),
                service.config.sources.len()
            );
        }
        for s in configured {
            let id = s.id.clone();
            match service.add_source(s) {
                Ok(_) | Err(SourceError::CannotStart(_)) => {}
                Err(e) => return Err(format!("sources: {id}: {e}")),
            }
        }
        Ok(service)
    }

    /// Adds a source and starts it. A source that cannot start is kept as failed (so that
    /// /readyz and the API show it) and the error is returned.
    pub fn add_source(&self, config: SourceConfig) -> Result<SourceStatus, SourceError> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(SourceError::Stopping);
        }
        config.check().map_err(SourceError::Invalid)?;
        if let Some(r) = &config.rules {
            // Without the parser's quotes: an API client names the file, and must not get
            // back the text of one that is not a rules file (a token, a password file).
            crate::config::check_rules_file(r)
                .map_err(|e| SourceError::Invalid(format!("rules: {}", without_quotes(&e))))?;
        }
        let id = config.id.clone();
        let counters = Arc::new(Counters::default());
        let pad = {
            let mut sources = self.sources.lock().unwrap();
            if sources.contains_key(&id) {
                return Err(SourceError::Duplicate(id));
            }
            if self.retiring.lock().unwrap().contains(&id) {
                return Err(SourceError::NotNow(format!(
                    "the source '{id}' is still being removed; try again in a few seconds"
                )));
            }
            let pad = self.next_pad.fetch_add(1, Ordering::Relaxed);
            sources.insert(
                id.clone(),
                Source {
                    config: config.clone(),
                    pad,
                    branch: None,
                    counters: counters.clone(),
                    failed: None,
                    last_error: None,
                    alerts: BTreeMap::new(),
                    sampled_frames: 0,
                    fps: 0.0,
                    reconnects: 0,
                },
            );
            pad
        };
        let masked = mask_uri(&config.uri);
        if !config.enabled {
            tracing::info!(source = %id, uri = %masked, "source {id} is disabled");
            // A DELETE may already have taken it.
            return self.status(&id).ok_or(SourceError::Unknown(id));
        }
        let result = gstrtsrc::check_uri(&config.uri)
            .map_err(|e| e.to_string())
            .and_then(|()| self.build_branch(&config, pad, counters));
        match result {
            Ok(branch) => {
                let mut sources = self.sources.lock().unwrap();
                // Checked under the lock `stop` takes the branches with: a branch stored
                // after that would never be stopped.
                let stopping = self.stopping.load(Ordering::SeqCst);
                match sources.get_mut(&id) {
                    // Still this request's entry (not one added again after a removal).
                    Some(s) if s.pad == pad && !stopping && s.failed.is_none() => {
                        s.branch = Some(branch)
                    }
                    // It failed while starting (its error came before it was stored here):
                    // the running branch goes, the entry stays failed.
                    Some(s) if s.pad == pad && !stopping => {
                        let why = s.failed.clone().unwrap_or_default();
                        drop(sources);
                        self.teardown(branch);
                        return Err(SourceError::CannotStart(why));
                    }
                    // Removed meanwhile, or the service is stopping: undo. A removal marked
                    // the id retiring until this teardown is done (see `remove_source`).
                    _ => {
                        drop(sources);
                        self.teardown(branch);
                        self.retiring.lock().unwrap().remove(&id);
                        return Err(if stopping {
                            SourceError::Stopping
                        } else {
                            SourceError::Unknown(id)
                        });
                    }
                }
                drop(sources);
                tracing::info!(source = %id, uri = %masked, "source {id} added: {masked}");
                // A DELETE may already have taken it.
                self.status(&id).ok_or(SourceError::Unknown(id))
            }
            Err(e) => {
                tracing::error!(source = %id, uri = %masked, "source {id} cannot start: {e}");
                match self.sources.lock().unwrap().get_mut(&id) {
                    Some(s) if s.pad == pad => {
                        s.failed = Some(e.clone());
                        s.last_error = Some(e.clone());
                    }
                    // Removed while this request built it: nothing is left to tear down.
                    _ => drop(self.retiring.lock().unwrap().remove(&id)),
                }
                Err(SourceError::CannotStart(e))
            }
        }
    }

    /// Stops a source, releases its rtinfer pad and forgets it.
    /// Whether the pipeline's EOS means that its sources ended by themselves: every source
    /// ended, the last one after any branch was torn down. After a DELETE (or a failed
    /// source's teardown) leaves only ended sources, or none, the service serves on.
    fn ended_by_its_sources(&self) -> bool {
        let last_teardown = *self.last_teardown.lock().unwrap();
        let sources = self.sources.lock().unwrap();
        let mut latest_end = None;
        for s in sources.values().filter(|s| s.branch.is_some()) {
            match *s.counters.ended_at.lock().unwrap() {
                Some(t) => latest_end = latest_end.max(Some(t)),
                None => return false,
            }
        }
        match (latest_end, last_teardown) {
            (None, _) => false,
            (Some(end), Some(teardown)) => end > teardown,
            (Some(_), None) => true,
        }
    }

    pub fn remove_source(&self, id: &str) -> Result<(), SourceError> {
        let source = {
            let mut sources = self.sources.lock().unwrap();
            let source = sources
                .remove(id)
                .ok_or_else(|| SourceError::Unknown(id.to_string()))?;
            // A request still building its branch (enabled, not failed, no branch yet)
            // tears it down when it finds the entry gone, and clears the mark then: until
            // both are done, the same id cannot be added again (its bins would collide).
            let building =
                source.branch.is_none() && source.config.enabled && source.failed.is_none();
            if source.branch.is_some() || building {
                self.retiring.lock().unwrap().insert(id.to_string());
            }
            source
        };
        if let Some(b) = source.branch {
            self.teardown(b);
            self.retiring.lock().unwrap().remove(id);
        }
        tracing::info!(source = %id, "source {id} removed");
        Ok(())
    }

    fn build_branch(
        &self,
        config: &SourceConfig,
        pad: u32,
        counters: Arc<Counters>,
    ) -> Result<Branch, String> {
        let id = &config.id;
        let input = gst::Bin::with_name(&format!("src-{id}"));
        let source = gst::ElementFactory::make("rturisrcbin")
            .property("uri", &config.uri)
            .property("restart-on-eos", config.loop_)
            .build()
            .map_err(|e| format!("Cannot create rturisrcbin: {e}"))?;
        let convert = make("videoconvert")?;
        input
            .add_many([&source, &convert])
            .and_then(|_| source.link(&convert))
            .map_err(|e| e.to_string())?;
        let ghost = gst::GhostPad::with_target(&convert.static_pad("src").expect("src"))
            .map_err(|e| e.to_string())?;
        input.add_pad(&ghost).map_err(|e| e.to_string())?;

        let output = gst::Bin::with_name(&format!("out-{id}"));
        let mut chain: Vec<gst::Element> = Vec::new();
        let tracker = &self.config.tracker;
        if tracker.enabled {
            let t = make("rttrack")?;
            if let Some(mode) = &tracker.mode {
                t.set_property_from_str("mode", mode);
            }
            chain.push(t);
        }
        let rules = config.rules.as_ref().or(self.config.rules.as_ref());
        let alert = match rules {
            Some(r) => {
                let a = gst::ElementFactory::make("rtalert")
                    .name(format!("alert-{id}"))
                    .property("rules-file", r.to_string_lossy().as_ref())
                    .property("stdout", false)
                    .build()
                    .map_err(|e| format!("Cannot create rtalert: {e}"))?;
                a.set_property(
                    "flush-timeout",
                    self.config.stop_timeout_ms.min(u32::MAX as u64) as u32,
                );
                chain.push(a.clone());
                Some(a)
            }
            None => None,
        };
        let encoded = if self.config.recording.is_some()
            || self.restream.is_some()
            || self.config.hls.is_some()
        {
            let tee = make("tee")?;
            chain.push(tee.clone());
            chain.push(make("queue")?);
            Some((tee, self.encoded_branch(id)?))
        } else {
            None
        };
        // Not async: a sink that waits for preroll would pause the playing pipeline it joins.
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .async_(false)
            .max_buffers(4)
            .build();
        chain.push(sink.clone().upcast());
        output.add_many(&chain).map_err(|e| e.to_string())?;
        gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
        if let Some((tee, e)) = &encoded {
            let linked = std::iter::once(&e.main)
                .chain(&e.branches)
                .try_for_each(|c| output.add_many(c).and_then(|_| gst::Element::link_many(c)))
                .and_then(|_| tee.link(&e.main[0]))
                .and_then(|_| {
                    let last = e.main.last().expect("an encoder");
                    e.branches.iter().try_for_each(|b| last.link(&b[0]))
                });
            linked.map_err(|err| format!("linking the encoder branch: {err}"))?;
        }
        let ghost = gst::GhostPad::with_target(&chain[0].static_pad("sink").expect("sink"))
            .map_err(|e| e.to_string())?;
        output.add_pad(&ghost).map_err(|e| e.to_string())?;

        let file = self
            .config
            .outputs
            .detections
            .file
            .as_ref()
            .filter(|f| f.contains("{source}"))
            .map(|f| {
                let file = jsonl_file(f.replace("{source}", id).into(), 0, 0, report());
                Arc::new(OutputSet(vec![Box::new(file)]))
            });
        let mut outputs = vec![Arc::downgrade(&self.shared.lock().unwrap().detections)];
        outputs.extend(file.iter().map(Arc::downgrade));
        sink.set_callbacks(frame_callbacks(id.clone(), counters, outputs));

        self.pipeline
            .add_many([input.upcast_ref::<gst::Element>(), output.upcast_ref()])
            .map_err(|e| e.to_string())?;
        let branch = |sinkpad| Branch {
            input: input.clone(),
            output: output.clone(),
            sinkpad,
            source: source.clone(),
            alert: alert.clone(),
            recorder: encoded.as_ref().and_then(|(_, e)| e.recorder.clone()),
            mount: encoded
                .as_ref()
                .and_then(|(_, e)| e.feed.as_ref())
                .map(|_| id.clone()),
            hls: encoded.as_ref().and_then(|(_, e)| e.hls.clone()),
            file: file.clone(),
        };
        let sinkpad = match self.infer.request_pad_simple(&format!("sink_{pad}")) {
            Some(p) => p,
            None => {
                let _ = self.pipeline.remove_many([&input, &output]);
                return Err("rtinfer gave no request pad".into());
            }
        };
        let linked = input
            .static_pad("src")
            .expect("ghost")
            .link(&sinkpad)
            .map_err(|e| format!("linking to rtinfer: {e}"))
            .and_then(|_| {
                let srcpad = self
                    .infer
                    .static_pad(&format!("src_{pad}"))
                    .ok_or("rtinfer has no src pad for the stream")?;
                srcpad
                    .link(&output.static_pad("sink").expect("ghost"))
                    .map_err(|e| format!("linking from rtinfer: {e}"))
            })
            .and_then(|_| {
                output
                    .sync_state_with_parent()
                    .map_err(|_| "the outputs did not start".to_string())?;
                input
                    .sync_state_with_parent()
                    .map_err(|_| "the source did not start".to_string())
            });
        match linked {
            Ok(_) => {
                if let (Some(rs), Some((_, e))) = (&self.restream, &encoded)
                    && let Some(feed) = &e.feed
                {
                    rs.mount(id, feed.clone());
                }
                Ok(branch(sinkpad))
            }
            Err(e) => {
                self.teardown(branch(sinkpad));
                Err(e)
            }
        }
    }

    /// The elements after the tee that encode `id` for recording and re-streaming: boxes
    /// drawn, H.264 once, then rtrecord (named after the source, so its clips are
    /// ID-UTCTIME.mp4 in FOLDER/ID) and the RTSP feed's appsink, behind a tee when both are
    /// on. rtalert's `rt-record` queries reach rtrecord through the tees; the leaky queue
    /// keeps a slow encoder from holding up the detections.
    fn encoded_branch(&self, id: &str) -> Result<Encoded, String> {
        let queue = gst::ElementFactory::make("queue")
            .property_from_str("leaky", "downstream")
            .property("max-size-buffers", 30u32)
            .property("max-size-bytes", 0u32)
            .property("max-size-time", 0u64)
            .build()
            .map_err(|e| format!("Cannot create queue: {e}"))?;
        let enc = &self.config.encoder;
        let encoder = gst::ElementFactory::make("x264enc")
            .property_from_str("tune", "zerolatency")
            .property_from_str("speed-preset", "veryfast")
            .property("bitrate", enc.bitrate_kbps)
            .property("key-int-max", enc.keyframe_interval)
            .build()
            .map_err(|e| {
                format!("Cannot create x264enc ({e}): encoding needs gstreamer1.0-plugins-ugly")
            })?;
        let mut main = vec![
            queue,
            make("rtoverlay")?,
            make("videoconvert")?,
            encoder,
            make("h264parse")?,
        ];
        let recorder = match &self.config.recording {
            Some(r) => Some(
                gst::ElementFactory::make("rtrecord")
                    .name(id)
                    .property("location", r.folder.join(id).to_string_lossy().as_ref())
                    .property("pre-capture", r.pre_capture)
                    .property("post-capture", r.post_capture)
                    .property("max-duration", r.max_duration)
                    .property("max-clips", r.max_clips)
                    // Not async, as the appsink: it joins a playing pipeline.
                    .property("async", false)
                    .build()
                    .map_err(|e| format!("Cannot create rtrecord: {e}"))?,
            ),
            None => None,
        };
        let feed = self.restream.as_ref().map(|_| Arc::new(Feed::default()));
        let feed_sink = feed.as_ref().map(|f| {
            let f = f.clone();
            encoded_sink(move |sample| f.push(&sample))
        });
        let hls = match &self.config.hls {
            Some(h) => Some(Arc::new(HlsWriter::start(h, id)?)),
            None => None,
        };
        let hls_sink = hls.as_ref().map(|w| {
            let w = Arc::downgrade(w);
            encoded_sink(move |sample| {
                if let Some(w) = w.upgrade() {
                    w.push(sample);
                }
            })
        });
        let sinks: Vec<gst::Element> = recorder
            .iter()
            .cloned()
            .chain(feed_sink)
            .chain(hls_sink)
            .collect();
        let mut branches = Vec::new();
        if let [one] = sinks.as_slice() {
            main.push(one.clone());
        } else {
            main.push(make("tee")?);
            for sink in sinks {
                branches.push(vec![make("queue")?, sink]);
            }
        }
        Ok(Encoded {
            main,
            branches,
            recorder,
            feed,
            hls,
        })
    }

    /// Records around the newest frame of `id` (POST /api/v1/streams/{id}/record): the
    /// clip's path and the recorder's stats.
    pub fn record(&self, id: &str) -> Result<(String, gst::Structure), SourceError> {
        let recorder = {
            let sources = self.sources.lock().unwrap();
            let s = sources
                .get(id)
                .ok_or_else(|| SourceError::Unknown(id.to_string()))?;
            s.branch.as_ref().map(|b| b.recorder.clone())
        };
        let recorder = match recorder {
            None => {
                return Err(SourceError::NotNow(format!(
                    "the source '{id}' is not running"
                )));
            }
            Some(None) => {
                return Err(SourceError::NotNow(
                    "recording is off: add a recording section to the config".into(),
                ));
            }
            Some(Some(r)) => r,
        };
        // Emitted without the lock: the signal takes rtrecord's own.
        match recorder.emit_by_name::<Option<String>>("record", &[]) {
            Some(path) => Ok((path, recorder.property::<gst::Structure>("stats"))),
            None => Err(SourceError::NotNow(format!(
                "the source '{id}' has not started recording yet"
            ))),
        }
    }

    /// Tears a branch down; returns its detection file's final output figures.
    fn teardown(&self, b: Branch) -> Vec<(String, u64, u64)> {
        // Removing the last playing branch makes the pipeline post EOS if the others ended.
        *self.last_teardown.lock().unwrap() = Some(Instant::now());
        if let (Some(rs), Some(id)) = (&self.restream, &b.mount) {
            rs.unmount(id);
        }
        let _ = b.input.set_state(gst::State::Null);
        let _ = b.output.set_state(gst::State::Null);
        self.infer.release_request_pad(&b.sinkpad);
        let _ = self.pipeline.remove_many([&b.input, &b.output]);
        // Closes and lists the last segment.
        drop(b.hls);
        b.file.map_or_else(Vec::new, |f| {
            drain(f, Duration::from_millis(self.config.stop_timeout_ms))
        })
    }

    /// Where a message's element is: in a source's `src-ID` or `out-ID` bin, in the shared
    /// part of the pipeline, or no longer in the pipeline at all.
    fn origin(&self, obj: &gst::Object) -> Origin {
        if obj == self.pipeline.upcast_ref::<gst::Object>() {
            return Origin::Shared;
        }
        let mut cur = Some(obj.clone());
        while let Some(o) = cur {
            let parent = o.parent();
            if parent.as_ref() == Some(self.pipeline.upcast_ref()) {
                let name = o.name();
                return match name
                    .strip_prefix("src-")
                    .or_else(|| name.strip_prefix("out-"))
                {
                    Some(id) => Origin::Source(id.to_string()),
                    None => Origin::Shared,
                };
            }
            cur = parent;
        }
        Origin::Gone
    }

    pub fn status(&self, id: &str) -> Option<SourceStatus> {
        let sources = self.sources.lock().unwrap();
        let s = sources.get(id)?;
        let elements = s
            .branch
            .as_ref()
            .map(|b| (b.source.clone(), b.alert.clone()));
        let mut st = SourceStatus {
            id: id.to_string(),
            uri: mask_uri(&s.config.uri),
            enabled: s.config.enabled,
            state: String::new(),
            fps: s.fps,
            frames: s.counters.frames.load(Ordering::Relaxed),
            stale_frames: s.counters.stale.load(Ordering::Relaxed),
            detections: s.counters.detections.load(Ordering::Relaxed),
            reconnects: s.reconnects,
            last_error: s.last_error.clone(),
            source_id: s.pad,
            hls: self
                .config
                .hls
                .as_ref()
                .filter(|_| s.config.enabled)
                .map(|_| format!("/hls/{id}/{}", crate::hls::PLAYLIST)),
            alerts: s.alerts.clone(),
            alert_stats: None,
        };
        if let Some(e) = s.branch.as_ref().and_then(|b| b.hls.as_ref()?.error()) {
            st.last_error = Some(e);
        }
        let failed = s.failed.is_some();
        let ended = s.counters.ended.load(Ordering::Relaxed);
        drop(sources);
        // Element properties are read without the lock.
        st.state = match (&elements, failed) {
            (_, true) => "failed".into(),
            (None, false) if !st.enabled || self.is_stopping() => "stopped".into(),
            (None, false) => "starting".into(),
            (Some(_), false) if ended => "ended".into(),
            (Some((src, _)), false) => src.property::<String>("source-state"),
        };
        if let Some((src, alert)) = elements {
            st.reconnects = src.property::<u64>("reconnects");
            st.alert_stats = alert.map(|a| a.property::<gst::Structure>("stats"));
        }
        Some(st)
    }

    pub fn statuses(&self) -> Vec<SourceStatus> {
        let ids: Vec<String> = self.sources.lock().unwrap().keys().cloned().collect();
        ids.iter().filter_map(|id| self.status(id)).collect()
    }

    /// Whether the pipeline plays and every enabled source is connected (or has ended);
    /// otherwise the sources that are not.
    pub fn readiness(&self) -> Result<(), Vec<SourceStatus>> {
        let (_, state, _) = self.pipeline.state(gst::ClockTime::ZERO);
        let not_ready: Vec<SourceStatus> =
            self.statuses().into_iter().filter(|s| !s.ready()).collect();
        if state == gst::State::Playing && not_ready.is_empty() && !self.is_stopping() {
            Ok(())
        } else {
            Err(not_ready)
        }
    }

    pub fn inference_stats(&self) -> gst::Structure {
        self.infer.property::<gst::Structure>("stats")
    }

    /// Delivered and dropped counts of every output (names masked), by "what:name".
    pub fn output_stats(&self) -> BTreeMap<String, (u64, u64)> {
        if let Some(last) = &*self.final_outputs.lock().unwrap() {
            return last.clone();
        }
        let mut out = BTreeMap::new();
        let (detections, alerts) = {
            let shared = self.shared.lock().unwrap();
            (shared.detections.clone(), shared.alerts.clone())
        };
        let files: Vec<Arc<OutputSet>> = self
            .sources
            .lock()
            .unwrap()
            .values()
            .filter_map(|s| s.branch.as_ref()?.file.clone())
            .collect();
        let sets = [("detections", &detections), ("alerts", &alerts)]
            .into_iter()
            .chain(files.iter().map(|f| ("detections", f)));
        for (what, set) in sets {
            let stats = set.stats().map(|(n, a, b)| (n.to_string(), a, b));
            add_stats(&mut out, what, stats);
        }
        out
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// All figures as one JSON document (GET /api/v1/stats, and the final stats).
    pub fn stats_json(&self) -> Value {
        let sources: serde_json::Map<String, Value> = self
            .statuses()
            .into_iter()
            .map(|s| {
                let mut v = serde_json::to_value(&s).expect("serializable");
                let alerts: Vec<Value> = s
                    .alerts
                    .iter()
                    .map(|((rule, kind), n)| json!({"rule": rule, "kind": kind, "count": n}))
                    .collect();
                v["alerts"] = alerts.into();
                if let Some(a) = &s.alert_stats {
                    v["alert_stats"] = structure_to_json(a);
                }
                (s.id.clone(), v)
            })
            .collect();
        let outputs: serde_json::Map<String, Value> = self
            .output_stats()
            .into_iter()
            .map(|(k, (d, x))| (k, json!({"delivered": d, "dropped": x})))
            .collect();
        let p = crate::procstat::sample();
        json!({
            "uptime_seconds": self.uptime().as_secs_f64(),
            "shard": self.shard.map(|s| s.to_string()),
            "sources": sources,
            "inference": structure_to_json(&self.inference_stats()),
            "outputs": outputs,
            "process": {
                "resident_memory_bytes": p.rss_bytes,
                "cpu_seconds": p.cpu_seconds,
                "threads": p.threads,
            },
        })
    }

    /// Waits until the pipeline ends or fails (the bus thread says so) or `timeout` passes.
    pub fn wait_finished(&self, timeout: Duration) -> Option<Result<(), String>> {
        let (lock, cv) = &self.finished;
        let guard = lock.lock().unwrap();
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |f| f.is_none())
            .unwrap();
        guard.clone()
    }

    fn finish(&self, result: Result<(), String>) {
        let (lock, cv) = &self.finished;
        let mut f = lock.lock().unwrap();
        if f.is_none() {
            *f = Some(result);
        }
        cv.notify_all();
    }

    /// The clean stop: end every source (EOS), let in-flight frames and alerts drain for up
    /// to the stop timeout, stop the pipeline, then drain our outputs.
    pub fn stop(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        let timeout = Duration::from_millis(self.config.stop_timeout_ms);
        let deadline = Instant::now() + timeout;
        let running = self
            .sources
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.branch.is_some())
            .count();
        tracing::info!("stopping: ending {running} sources (at most {timeout:?})");
        if running > 0 {
            let inputs: Vec<gst::Bin> = self
                .sources
                .lock()
                .unwrap()
                .values()
                .filter_map(|s| s.branch.as_ref().map(|b| b.input.clone()))
                .collect();
            for i in inputs {
                i.send_event(gst::event::Eos::new());
            }
            // The pipeline posts EOS once every branch's appsink has it.
            let _ = self.wait_finished(timeout);
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        let branches: Vec<(String, Branch)> = self
            .sources
            .lock()
            .unwrap()
            .iter_mut()
            .filter_map(|(id, s)| Some((id.clone(), s.branch.take()?)))
            .collect();
        // The final reconnect counts, read from the elements without the lock.
        let counts: Vec<(&str, u64)> = branches
            .iter()
            .map(|(id, b)| (id.as_str(), b.source.property::<u64>("reconnects")))
            .collect();
        {
            let mut sources = self.sources.lock().unwrap();
            for (id, n) in counts {
                if let Some(s) = sources.get_mut(id) {
                    s.reconnects = n;
                    s.fps = 0.0;
                }
            }
        }
        let mut last = BTreeMap::new();
        for (_, b) in branches {
            add_stats(&mut last, "detections", self.teardown(b));
        }
        let shared = std::mem::take(&mut *self.shared.lock().unwrap());
        let left = deadline.saturating_duration_since(Instant::now());
        let grace = left.max(Duration::from_millis(500));
        add_stats(&mut last, "detections", drain(shared.detections, grace));
        add_stats(&mut last, "alerts", drain(shared.alerts, grace));
        // The outputs are gone now: the final stats report these.
        *self.final_outputs.lock().unwrap() = Some(last);
        self.alert_log.close();
        self.finish(Ok(()));
    }

    /// Samples each source's frame rate; called once a second.
    fn sample_fps(&self, dt: f64) {
        for s in self.sources.lock().unwrap().values_mut() {
            let frames = s.counters.frames.load(Ordering::Relaxed);
            s.fps = (frames - s.sampled_frames.min(frames)) as f64 / dt;
            s.sampled_frames = frames;
        }
    }

    /// An alert from `id`'s rtalert: counted, tagged with the source id, and handed to the
    /// alert outputs.
    fn on_alert(&self, id: &str, s: &gst::StructureRef) {
        let rule = s.get::<String>("rule").unwrap_or_default();
        let kind = s.get::<String>("kind").unwrap_or_default();
        let Ok(text) = s.get::<String>("json") else {
            return;
        };
        let mut doc: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) => return,
        };
        doc["source"] = id.into();
        let message = Message {
            id: s.get::<String>("id").unwrap_or_default().into(),
            json: doc.to_string().into(),
            source: id.into(),
        };
        if let Some(src) = self.sources.lock().unwrap().get_mut(id) {
            *src.alerts.entry((rule, kind)).or_insert(0) += 1;
        }
        self.alert_log.push(&doc, message.json.clone());
        let outputs = self.shared.lock().unwrap().alerts.clone();
        outputs.send(&message);
    }

    /// A source failed for good: keep it listed as failed, stop its branch, go on.
    fn fail_source(&self, id: &str, why: String) {
        let branch = {
            let mut sources = self.sources.lock().unwrap();
            let Some(s) = sources.get_mut(id) else { return };
            if s.failed.is_some() {
                return;
            }
            s.failed = Some(why.clone());
            s.last_error = Some(why.clone());
            s.branch.take()
        };
        tracing::error!(source = %id, "source {id} failed: {why}; the other sources go on");
        if let Some(b) = branch {
            // Kept, as at a stop: a counter that fell to 0 would read as a reset.
            let reconnects = b.source.property::<u64>("reconnects");
            if let Some(s) = self.sources.lock().unwrap().get_mut(id) {
                s.reconnects = reconnects;
            }
            self.teardown(b);
        }
    }

    fn note_error(&self, id: &str, why: &str) {
        if let Some(s) = self.sources.lock().unwrap().get_mut(id) {
            s.last_error = Some(why.to_string());
        }
    }

    fn uri_of(&self, id: &str) -> String {
        self.sources
            .lock()
            .unwrap()
            .get(id)
            .map(|s| s.config.uri.clone())
            .unwrap_or_default()
    }
}

/// An appsink that hands each encoded frame to `push` (the RTSP feed, the HLS writer): not
/// synchronised, not prerolling (it joins a playing pipeline), dropping the oldest frames
/// when `push` falls behind.
fn encoded_sink(push: impl Fn(gst::Sample) + Send + Sync + 'static) -> gst::Element {
    gst_app::AppSink::builder()
        .sync(false)
        .async_(false)
        .max_buffers(8)
        .drop(true)
        // No last sample: it would hold a second reference to each frame, and the HLS
        // writer's retiming would then copy the buffer.
        .enable_last_sample(false)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    if let Ok(sample) = sink.pull_sample() {
                        push(sample);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build()
        .upcast()
}

/// The outputs every source shares, from the config.
fn shared_outputs(c: &crate::config::OutputsConfig) -> Result<Shared, String> {
    let mut detections: Vec<Box<dyn Output>> = Vec::new();
    let d = &c.detections;
    if d.stdout {
        detections.push(Box::new(stdout_worker("detections")));
    }
    if let Some(f) = d.file.as_ref().filter(|f| !f.contains("{source}")) {
        detections.push(Box::new(jsonl_file(f.into(), 0, 0, report())));
    }
    if let Some(url) = &d.nats_url {
        detections.push(Box::new(
            outputs::nats(url, 10_000, report()).map_err(|e| e.to_string())?,
        ));
    }
    let mut alerts: Vec<Box<dyn Output>> = Vec::new();
    let a = &c.alerts;
    if a.stdout {
        alerts.push(Box::new(stdout_worker("alerts")));
    }
    if let Some(f) = &a.file {
        alerts.push(Box::new(jsonl_file(f.clone(), 0, 0, report())));
    }
    if let Some(url) = &a.webhook_url {
        let settings = outputs::webhook_settings(url, 5000, 3, 1000);
        alerts.push(Box::new(outputs::webhook(settings, report())));
    }
    if let Some(url) = &a.mqtt_url {
        let id = format!("rtanalytics-{:x}", rand_nonce());
        alerts.push(Box::new(
            outputs::Mqtt::new(url, 1000, &id, report()).map_err(|e| e.to_string())?,
        ));
    }
    if let Some(url) = &a.nats_url {
        alerts.push(Box::new(
            outputs::nats(url, 1000, report()).map_err(|e| e.to_string())?,
        ));
    }
    Ok(Shared {
        detections: Arc::new(OutputSet(detections)),
        alerts: Arc::new(OutputSet(alerts)),
    })
}

/// Differs between runs: the time and the process id.
fn rand_nonce() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ ((std::process::id() as u64) << 40)
}

pub(crate) fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| format!("Cannot create {factory}: {e} (is its plugin installed?)"))
}

/// Per frame, on the branch's streaming thread: count, and hand the detections (as a JSON
/// line with the source id) to the detection outputs.
fn frame_callbacks(
    id: String,
    counters: Arc<Counters>,
    outputs: Vec<Weak<OutputSet>>,
) -> gst_app::AppSinkCallbacks {
    let ended = counters.clone();
    let source: Arc<str> = Arc::from(id.as_str());
    // Message ids (NATS de-duplication) must not repeat across runs or re-added sources.
    let run = format!("{:x}", rand_nonce());
    gst_app::AppSinkCallbacks::builder()
        .new_sample(move |sink| {
            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
            let Some(buffer) = sample.buffer() else {
                return Ok(gst::FlowSuccess::Ok);
            };
            counters.frames.fetch_add(1, Ordering::Relaxed);
            let Some(dets) = rtmeta::Detections::from_buffer(buffer) else {
                return Ok(gst::FlowSuccess::Ok);
            };
            if dets.stale {
                counters.stale.fetch_add(1, Ordering::Relaxed);
            } else {
                counters
                    .detections
                    .fetch_add(dets.objects.len() as u64, Ordering::Relaxed);
            }
            let sets: Vec<Arc<OutputSet>> = outputs
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|s| !s.0.is_empty())
                .collect();
            if !sets.is_empty() {
                let mut doc = dets.to_json(buffer.pts().map(|t| t.nseconds()));
                doc["source"] = id.as_str().into();
                let message = Message {
                    id: format!("{run}-{id}-{}", dets.frame_number).into(),
                    json: doc.to_string().into(),
                    source: source.clone(),
                };
                for set in sets {
                    set.send(&message);
                }
            }
            Ok(gst::FlowSuccess::Ok)
        })
        .eos(move |_| {
            *ended.ended_at.lock().unwrap() = Some(Instant::now());
            ended.ended.store(true, Ordering::Relaxed);
        })
        .build()
}

/// The bus thread: source events to the log, alerts to the outputs, errors to the source
/// they belong to (or, from the shared part, to the whole service), fps once a second.
fn bus_loop(service: Weak<Service>) {
    let Some(bus) = service.upgrade().and_then(|s| s.pipeline.bus()) else {
        return;
    };
    let mut last_sample = Instant::now();
    loop {
        let msg = bus.timed_pop(gst::ClockTime::from_mseconds(200));
        let Some(svc) = service.upgrade() else { return };
        if last_sample.elapsed() >= Duration::from_secs(1) {
            svc.sample_fps(last_sample.elapsed().as_secs_f64());
            last_sample = Instant::now();
        }
        let Some(msg) = msg else {
            if svc.finished.0.lock().unwrap().is_some() {
                return;
            }
            continue;
        };
        let origin = msg.src().map_or(Origin::Shared, |o| svc.origin(o));
        let source = match origin {
            Origin::Source(id) => Some(id),
            Origin::Shared => None,
            Origin::Gone => {
                // A branch already torn down (its first error failed it, or it was removed)
                // still had messages queued: they are about nothing that runs now.
                tracing::debug!("from a removed source: {:?}", msg.structure());
                continue;
            }
        };
        match msg.view() {
            gst::MessageView::Element(e) => {
                let (Some(s), Some(id)) = (e.structure(), source.as_deref()) else {
                    continue;
                };
                match s.name().as_str() {
                    "rtalert" => svc.on_alert(id, s),
                    "rtrecord-clip" => {
                        let clip = s.get::<String>("location").unwrap_or_default();
                        let secs = s
                            .get::<gst::ClockTime>("duration")
                            .map_or(0.0, |d| d.seconds_f64());
                        tracing::info!(source = %id, "source {id}: clip {clip} ({secs:.1} s)");
                    }
                    "rturisrcbin-connected" => {
                        tracing::info!(source = %id, "source {id} connected")
                    }
                    "rturisrcbin-restored" => {
                        tracing::info!(source = %id, "source {id} recovered")
                    }
                    "rturisrcbin-lost" => {
                        let why = s.get::<String>("reason").unwrap_or_default();
                        if why == "end of stream" {
                            // A looping file starting again.
                            tracing::debug!(source = %id, "source {id} ended; playing it again");
                        } else {
                            svc.note_error(id, &why);
                            tracing::warn!(source = %id, "source {id} dropped: {why}");
                        }
                    }
                    "rturisrcbin-retrying" => {
                        let attempt = s.get::<u32>("attempt").unwrap_or(0);
                        let delay = s.get::<u64>("delay-ms").unwrap_or(0);
                        let why = s.get::<String>("reason").unwrap_or_default();
                        if why != "end of stream" {
                            tracing::info!(
                                source = %id,
                                "source {id}: retry {attempt} in {delay} ms ({why})"
                            );
                        }
                    }
                    _ => {}
                }
            }
            gst::MessageView::Warning(w) => {
                let text = format!("{}", w.error());
                match source {
                    Some(id) => {
                        let text = mask_in(&text, &svc.uri_of(&id));
                        svc.note_error(&id, &text);
                        tracing::warn!(source = %id, "source {id}: {text}");
                    }
                    None => tracing::warn!("{text}"),
                }
            }
            gst::MessageView::Error(err) => {
                let text = format!("{} ({})", err.error(), err.debug().unwrap_or_default());
                match source {
                    Some(id) => {
                        let text = mask_in(&text, &svc.uri_of(&id));
                        svc.fail_source(&id, text);
                    }
                    None => {
                        tracing::error!("the pipeline failed: {text}");
                        svc.finish(Err(text));
                    }
                }
            }
            gst::MessageView::Eos(_) if svc.ended_by_its_sources() => svc.finish(Ok(())),
            gst::MessageView::Eos(_) => {
                tracing::info!("no source is playing after a removal: serving the API on")
            }
            _ => {}
        }
    }
}

/// A GStreamer structure as JSON: numbers, strings, booleans, nested structures and lists.
pub fn structure_to_json(s: &gst::StructureRef) -> Value {
    s.iter()
        .map(|(k, v)| (k.replace('-', "_"), value_to_json(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn value_to_json(v: &gst::glib::Value) -> Value {
    if let Ok(x) = v.get::<u64>() {
        x.into()
    } else if let Ok(x) = v.get::<i64>() {
        x.into()
    } else if let Ok(x) = v.get::<u32>() {
        x.into()
    } else if let Ok(x) = v.get::<i32>() {
        x.into()
    } else if let Ok(x) = v.get::<f64>() {
        if x.is_finite() { x.into() } else { Value::Null }
    } else if let Ok(x) = v.get::<bool>() {
        x.into()
    } else if let Ok(x) = v.get::<String>() {
        x.into()
    } else if let Ok(x) = v.get::<gst::Structure>() {
        structure_to_json(&x)
    } else if let Ok(x) = v.get::<gst::Array>() {
        x.iter()
            .map(|e| value_to_json(e))
            .collect::<Vec<_>>()
            .into()
    } else if let Ok(x) = v.get::<gst::List>() {
        x.iter()
            .map(|e| value_to_json(e))
            .collect::<Vec<_>>()
            .into()
    } else {
        v.serialize()
            .map(|s| s.to_string())
            .unwrap_or_default()
            .into()
    }
}

/// Adds (name, delivered, dropped) figures to `out` under `what:name`.
fn add_stats(
    out: &mut BTreeMap<String, (u64, u64)>,
    what: &str,
    stats: impl IntoIterator<Item = (String, u64, u64)>,
) {
    for (name, delivered, dropped) in stats {
        let e = out.entry(format!("{what}:{name}")).or_insert((0, 0));
        e.0 += delivered;
        e.1 += dropped;
    }
}

/// `text` with every double-quoted part replaced by `"…"`.
fn without_quotes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut parts = text.split('"');
    out.push_str(parts.next().unwrap_or_default());
    for (i, part) in parts.enumerate() {
        // Odd parts were inside quotes; an unclosed quote hides the rest.
        out.push_str(if i % 2 == 0 { "\"…\"" } else { part });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::without_quotes;

    #[test]
    fn quoted_text_is_left_out() {
        assert_eq!(
            without_quotes(r#"x.yaml: invalid type: string "root:x:0:0 SECRET", expected a map"#),
            r#"x.yaml: invalid type: string "…", expected a map"#
        );
        assert_eq!(without_quotes(r#"a "b" c "d"#), r#"a "…" c "…""#);
        assert_eq!(without_quotes("plain"), "plain");
    }
}
