//! rtalert: evaluates rules over the RtDetectionMeta of each frame and emits throttled
//! alerts to the bus and the configured outputs. Buffers pass through untouched.

use crate::alert::Alert;
use crate::alerter::Alerter;
use crate::outputs::{self, Level, Message, Mqtt, Output, OutputError, OutputProps, Report};
use crate::rules::{self, RateLimit, RuleSet, RulesError};
use crate::snapshot;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use rtmeta::Detections;
use rtmeta::mask::mask_uri;
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtalert",
        gst::DebugColorFlags::empty(),
        Some("Alert rules"),
    )
});

#[derive(Clone, Debug)]
struct Settings {
    rules_file: Option<PathBuf>,
    rules: String,
    /// The outputs the properties name, grouped by output.
    outputs: OutputProps,
    snapshot_dir: Option<String>,
    rate_limit: f64,
    rate_burst: u32,
    stats_interval_ms: u32,
    reload_interval_ms: u32,
    flush_timeout_ms: u32,
    regions_meta: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rules_file: None,
            rules: String::new(),
            outputs: OutputProps::default(),
            snapshot_dir: None,
            rate_limit: 0.0,
            rate_burst: 10,
            stats_interval_ms: 10_000,
            reload_interval_ms: 1000,
            flush_timeout_ms: 2000,
            regions_meta: true,
        }
    }
}

/// The rules file (if any) plus the inline rules.
fn load_rules(s: &Settings) -> Result<RuleSet, RulesError> {
    let mut set = match &s.rules_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| RulesError::Unreadable {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            rules::parse_yaml(&text, &path.display().to_string())?
        }
        None => RuleSet::default(),
    };
    set.merge(rules::parse_inline(&s.rules)?)?;
    if set.rules.is_empty() {
        return Err(RulesError::Empty);
    }
    Ok(set)
}

/// The GStreamer error for rules that cannot be used: a rules file that cannot be read is a
/// resource error, anything in the rules a settings error.
fn rules_error(e: &RulesError) -> gst::ErrorMessage {
    match e {
        RulesError::Unreadable { .. } => gst::error_msg!(gst::ResourceError::OpenRead, ("{e}")),
        _ => gst::error_msg!(gst::LibraryError::Settings, ("{e}")),
    }
}

/// The GStreamer error for an output that cannot be set up: a wrong URL is a settings error,
/// a connection or TLS setup that fails a resource error.
fn output_error(e: &OutputError) -> gst::ErrorMessage {
    if e.is_settings() {
        gst::error_msg!(gst::LibraryError::Settings, ("{e}"))
    } else {
        gst::error_msg!(gst::ResourceError::OpenWrite, ("{e}"))
    }
}

fn mtime(path: &Option<PathBuf>) -> Option<SystemTime> {
    path.as_ref()
        .and_then(|p| std::fs::metadata(p).ok()?.modified().ok())
}

/// Bus messages are posted, and files read or written, with this lock released: an app may
/// read `stats` (which takes it) from a synchronous bus handler.
struct State {
    alerter: Alerter,
    /// The labels of the detectors upstream (`rt-model-labels`), once they said.
    upstream_labels: Vec<rtmeta::labels::ModelLabels>,
    /// New labels came: the rules are checked against them at the next frame, once every
    /// detector of a cascade has added its own.
    labels_pending: bool,
    /// The last warning about rule classes no model has (said once per change).
    labels_warning: Option<String>,
    /// Shared so that alerts are handed to the outputs without the lock.
    outputs: Arc<[Box<dyn Output>]>,
    snapshot_dir: Option<PathBuf>,
    /// What the rules file said besides rules at the start (outputs, snapshot folder, rate
    /// limit): a reload does not change these, and says so when they differ.
    file_extras: (rules::Outputs, Option<RateLimit>),
    segment: gst::FormattedSegment<gst::ClockTime>,
    info: Option<gst_video::VideoInfo>,
    rules_mtime: Option<SystemTime>,
    last_reload_check: Instant,
    last_stats: Instant,
    snapshot_failures: u64,
}

impl State {
    /// Rules naming a class that no model upstream has (they never match): said once, at the
    /// first frame after the labels changed.
    fn labels_warning(&mut self) -> Option<String> {
        if !std::mem::take(&mut self.labels_pending) {
            return None;
        }
        let why = rules::unknown_labels(self.alerter.engine().rules(), &self.upstream_labels);
        if why.is_none() || why == self.labels_warning {
            return None;
        }
        self.labels_warning = why.clone();
        why
    }

    /// The alerts a frame raises, after throttling.
    fn alerts(&mut self, dets: &Detections, pts: Option<gst::ClockTime>) -> Vec<Alert> {
        let t = self.segment.to_running_time(pts).map(|t| t.nseconds());
        self.alerter.frame(dets, t)
    }
}

/// An alert ready to go out, with the frame its snapshot is taken from.
struct Pending {
    alert: Alert,
    /// The frame, the snapshot folder and the frame's format.
    frame: Option<(gst::Buffer, PathBuf, gst_video::VideoInfo)>,
    outputs: Arc<[Box<dyn Output>]>,
}

/// A frame's alerts before they have the frame: the snapshot folder and frame format (when
/// snapshots are on), and the outputs.
struct Raised {
    alerts: Vec<Alert>,
    snapshot: Option<(PathBuf, gst_video::VideoInfo)>,
    outputs: Arc<[Box<dyn Output>]>,
}

enum Job {
    Emit(Box<Pending>),
    /// Answers once every alert queued before it has gone out.
    Drain(SyncSender<()>),
}

/// Alerts queued before their snapshot is taken.
const SNAPSHOT_QUEUE: usize = 16;
/// Alerts waiting for standard output; more are dropped (and counted) while it is blocked.
const STDOUT_QUEUE: usize = 1024;

/// With snapshots, alerts go out from a thread of their own, `rtalert-snapshot`: it encodes
/// and writes the frame's JPEG, then posts the alert and hands it to the outputs, in order.
/// The streaming thread only queues them, and waits when `SNAPSHOT_QUEUE` are queued.
struct Emitter {
    tx: SyncSender<Job>,
    thread: JoinHandle<()>,
}

#[derive(Default)]
pub struct RtAlert {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Held only to clone the sender or take the emitter.
    emitter: Mutex<Option<Emitter>>,
    /// One reload at a time, so that the last one reads the latest settings (the rules file
    /// is read without the state lock).
    reloading: Mutex<()>,
    /// Final statistics of the last run, for the `stats` property after stopping.
    last_stats: Mutex<Option<gst::Structure>>,
}

#[glib::object_subclass]
impl ObjectSubclass for RtAlert {
    const NAME: &'static str = "GstRtAlert";
    type Type = super::RtAlert;
    type ParentType = gst_base::BaseTransform;
}

fn nonce() -> String {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{:012x}",
        (t ^ ((std::process::id() as u64) << 40)) & 0xffff_ffff_ffff
    )
}

impl RtAlert {
    fn report(&self) -> Report {
        let weak = self.obj().downgrade();
        Arc::new(move |level, msg: &str| {
            let Some(e) = weak.upgrade() else { return };
            match level {
                Level::Problem => gst::element_warning!(e, gst::ResourceError::Write, ("{}", msg)),
                // gst-launch prints only the debug text of INFO messages.
                Level::Recovered => {
                    gst::element_info!(e, gst::ResourceError::Write, ("{}", msg), ["{}", msg])
                }
            }
        })
    }

    fn build_outputs(
        &self,
        s: &Settings,
        set: &RuleSet,
    ) -> Result<Vec<Box<dyn Output>>, OutputError> {
        let plan = outputs::plan(&s.outputs, &set.outputs)?;
        let report = self.report();
        let mut outputs: Vec<Box<dyn Output>> = Vec::new();
        if plan.stdout {
            outputs.push(Box::new(outputs::stdout(
                "stdout".into(),
                STDOUT_QUEUE,
                report.clone(),
            )));
        }
        if let Some((path, max_bytes, max_files)) = plan.jsonl {
            outputs.push(Box::new(outputs::jsonl_file(
                path.into(),
                max_bytes,
                max_files,
                report.clone(),
            )));
        }
        if let Some(w) = plan.webhook {
            outputs.push(Box::new(outputs::webhook(w, report.clone())));
        }
        if let Some((url, queue)) = plan.mqtt {
            let id = format!("rtalert-{}", nonce());
            outputs.push(Box::new(Mqtt::new(
                &url,
                queue as usize,
                &id,
                report.clone(),
            )?));
        }
        if let Some((url, queue)) = plan.nats {
            outputs.push(Box::new(outputs::nats(&url, queue as usize, report)?));
        }
        Ok(outputs)
    }

    fn stats_structure(state: &State) -> gst::Structure {
        let c = state.alerter.counters();
        let outputs: Vec<gst::Structure> = state
            .outputs
            .iter()
            .map(|o| {
                let (delivered, dropped, queued) = o.stats().counts();
                gst::Structure::builder("output")
                    .field("name", o.name())
                    .field("delivered", delivered)
                    .field("dropped", dropped)
                    .field("queued", queued)
                    .build()
            })
            .collect();
        let dropped: u64 = state.outputs.iter().map(|o| o.stats().counts().1).sum();
        // Per rule, over every source: line crossings and distinct tracks.
        let engine = state.alerter.engine();
        let rules = engine.rules().iter().enumerate().map(|(k, r)| {
            let counts = engine.counts(k);
            gst::Structure::builder("rule")
                .field("name", r.name.as_str())
                .field("unique-tracks", counts.unique_tracks)
                .field("crossed-in", counts.crossed_in)
                .field("crossed-out", counts.crossed_out)
                .build()
        });
        gst::Structure::builder("rtalert-stats")
            .field("emitted", c.emitted)
            .field("suppressed-cooldown", c.suppressed_cooldown)
            .field("suppressed-burst", c.suppressed_burst)
            .field("suppressed-rate", c.suppressed_rate)
            .field("dropped-outputs", dropped)
            .field("snapshot-failures", state.snapshot_failures)
            .field("outputs", gst::Array::new(outputs))
            .field("rules", gst::Array::new(rules))
            .build()
    }

    /// The stats to post now; the next interval starts.
    fn take_stats(state: &mut State) -> gst::Structure {
        state.last_stats = Instant::now();
        Self::stats_structure(state)
    }

    fn post_element(&self, s: gst::Structure) {
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }

    /// Reads the rules without the state lock, swaps them in under it and posts the outcome;
    /// the old rules stay if the new ones are bad.
    fn reload(&self, why: &str) {
        let (count, ended) = {
            let _one = self.reloading.lock().unwrap();
            let settings = self.settings.lock().unwrap().clone();
            // Taken first: a change while reading is seen at the next check.
            let mtime = mtime(&settings.rules_file);
            let loaded = load_rules(&settings);
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else { return };
            state.rules_mtime = mtime;
            // With the models' labels known, a class none of them has is an error.
            let loaded = loaded.and_then(|set| {
                match rules::unknown_labels(&set.rules, &state.upstream_labels) {
                    Some(why) if !state.upstream_labels.is_empty() => {
                        Err(RulesError::UnknownLabels(why))
                    }
                    _ => Ok(set),
                }
            });
            match loaded {
                Ok(set) => {
                    let n = set.rules.len();
                    let extras_changed = (set.outputs, set.rate_limit) != state.file_extras;
                    let ended = state.alerter.replace_rules(set.rules);
                    let regions = settings.regions_meta && state.alerter.engine().has_regions();
                    (
                        Ok((n, regions, extras_changed)),
                        (ended, state.outputs.clone()),
                    )
                }
                Err(e) => (Err(e), (Vec::new(), state.outputs.clone())),
            }
        };
        // The conditions the old rules had open end before the new rules' first alert.
        let (ended, outputs) = ended;
        self.send(ended.into_iter().map(|alert| Pending {
            alert,
            frame: None,
            outputs: outputs.clone(),
        }));
        match count {
            Ok((n, regions, extras_changed)) => {
                // Outside our locks: it takes the element's.
                self.obj().set_passthrough(!regions);
                if extras_changed {
                    gst::element_imp_warning!(
                        self,
                        gst::LibraryError::Settings,
                        ("The rules file's outputs, snapshot-dir or rate-limit changed: they \
                          apply when the element restarts; the new rules apply now")
                    );
                }
                gst::info!(CAT, imp = self, "{why}: {n} rules");
                gst::element_imp_info!(
                    self,
                    gst::LibraryError::Settings,
                    ("Rules reloaded ({why})"),
                    ["Rules reloaded ({why}): {n} rules"]
                );
            }
            Err(e) => {
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Settings,
                    ("New rules rejected, keeping the previous ones: {e}")
                );
            }
        }
    }

    /// The detectors upstream said which labels they have.
    fn labels_upstream(&self, models: Vec<rtmeta::labels::ModelLabels>) {
        if let Some(state) = self.state.lock().unwrap().as_mut() {
            state.upstream_labels = models;
            state.labels_pending = true;
        }
    }

    fn maybe_reload(&self) {
        let interval =
            Duration::from_millis(self.settings.lock().unwrap().reload_interval_ms as u64);
        let known = {
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else { return };
            if interval.is_zero() || state.last_reload_check.elapsed() < interval {
                return;
            }
            state.last_reload_check = Instant::now();
            state.rules_mtime
        };
        // Without a rules file both are None. The file is looked at without the lock.
        let file = self.settings.lock().unwrap().rules_file.clone();
        if mtime(&file) != known {
            self.reload("rules file changed");
        }
    }

    /// Sends alerts out: through the snapshot thread when there is one (in order behind the
    /// alerts it holds), else at once. Called with no lock held.
    fn send(&self, alerts: impl IntoIterator<Item = Pending>) {
        let tx = self.emitter.lock().unwrap().as_ref().map(|e| e.tx.clone());
        for p in alerts {
            match &tx {
                Some(tx) => {
                    if let Err(std::sync::mpsc::SendError(Job::Emit(p))) =
                        tx.send(Job::Emit(Box::new(p)))
                    {
                        self.emit(*p);
                    }
                }
                None => self.emit(p),
            }
        }
    }

    /// Sends the `ended` alerts of the conditions `end` closes (no frame, so no snapshot).
    fn end_open(&self, end: impl FnOnce(&mut Alerter) -> Vec<Alert>) {
        let pending: Vec<Pending> = {
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else { return };
            let outputs = &state.outputs;
            end(&mut state.alerter)
                .into_iter()
                .map(|alert| Pending {
                    alert,
                    frame: None,
                    outputs: outputs.clone(),
                })
                .collect()
        };
        self.send(pending);
    }

    /// Waits until the snapshot thread has sent out every alert queued so far.
    fn drain(&self) {
        let tx = self.emitter.lock().unwrap().as_ref().map(|e| e.tx.clone());
        if let Some(tx) = tx {
            let (done, wait) = sync_channel(1);
            if tx.send(Job::Drain(done)).is_ok() {
                let _ = wait.recv();
            }
        }
    }

    /// Starts the snapshot thread.
    fn start_emitter(&self) -> Result<(), gst::ErrorMessage> {
        let (tx, rx) = sync_channel::<Job>(SNAPSHOT_QUEUE);
        let weak = self.obj().downgrade();
        let thread = std::thread::Builder::new()
            .name("rtalert-snapshot".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::Emit(p) => match weak.upgrade() {
                            Some(obj) => obj.imp().emit(*p),
                            None => break,
                        },
                        Job::Drain(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(|e| {
                gst::error_msg!(
                    gst::CoreError::Failed,
                    ("Cannot start the snapshot thread: {e}")
                )
            })?;
        *self.emitter.lock().unwrap() = Some(Emitter { tx, thread });
        Ok(())
    }

    /// Sends out what the snapshot thread holds and ends it.
    fn stop_emitter(&self) {
        let emitter = self.emitter.lock().unwrap().take();
        if let Some(Emitter { tx, thread }) = emitter {
            drop(tx);
            let _ = thread.join();
        }
    }

    /// Writes the snapshot, posts the alert and hands it to the outputs. Called without the
    /// state lock, on the snapshot thread when the alert has a snapshot: the encode is slow.
    fn emit(&self, p: Pending) {
        let Pending {
            mut alert,
            frame,
            outputs,
        } = p;
        if let Some((buf, dir, info)) = frame {
            let path = dir.join(format!("{}.jpg", alert.id));
            match snapshot::write_jpeg(&buf, &info, &path) {
                Ok(()) => alert.snapshot = Some(path.display().to_string()),
                Err(e) => {
                    // Counted before the warning, for apps that read `stats` on it.
                    if let Some(state) = self.state.lock().unwrap().as_mut() {
                        state.snapshot_failures += 1;
                    }
                    gst::element_imp_warning!(
                        self,
                        e.resource_error(),
                        ("Snapshot for alert {} failed: {e}", alert.id)
                    );
                }
            }
        }
        // An rtrecord downstream (after the encoder) records around the alert and names the
        // clip; without one the query goes unanswered.
        alert.clip = rtmeta::record::RecordRequest {
            running_time: gst::ClockTime::from_nseconds(alert.stream_time),
            reason: alert.id.clone(),
        }
        .send(self.obj().src_pad());
        let json = alert.to_json();
        self.post_element(alert.to_structure(&json));
        let msg = Message {
            id: alert.id.as_str().into(),
            json: json.into(),
            source: alert.source_id.to_string().into(),
        };
        for o in outputs.iter() {
            o.send(&msg);
        }
    }
}

impl ObjectImpl for RtAlert {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            let o = &d.outputs;
            let uint = |name: &'static str,
                        nick: &'static str,
                        blurb: &'static str,
                        min: u32,
                        max: u32,
                        def: u32| {
                glib::ParamSpecUInt::builder(name)
                    .nick(nick)
                    .blurb(blurb)
                    .minimum(min)
                    .maximum(max)
                    .default_value(def)
                    .mutable_ready()
                    .build()
            };
            let string = |name: &'static str, nick: &'static str, blurb: &'static str| {
                glib::ParamSpecString::builder(name)
                    .nick(nick)
                    .blurb(blurb)
                    .mutable_ready()
                    .build()
            };
            vec![
                glib::ParamSpecString::builder("rules-file")
                    .nick("Rules file")
                    .blurb("YAML rules file (see the README); re-read when it changes, a bad new version keeps the old rules")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("rules")
                    .nick("Inline rules")
                    .blurb("Rules in short form: \"NAME: key=value ...; NAME2: ...\" with keys class, conf, count, max-count, \
                            zone (x,y pairs 0..1), line (x1,y1,x2,y2: alerts on crossings), direction, anchor, duration (s), frames, ended, source, cooldown (s), key (rule|class|track), \
                            burst (COUNT/SECONDS). E.g. \"people: class=person count=3 duration=2 cooldown=30\"")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("regions-meta")
                    .nick("Regions meta")
                    .blurb(
                        "Attach RtRegionMeta to each frame: the zones and lines of the rules and \
                         whether each rule holds, for rtoverlay to draw (only when a rule has a \
                         zone or a line; otherwise buffers pass untouched)",
                    )
                    .default_value(d.regions_meta)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("stdout")
                    .nick("Standard output")
                    .blurb("Print each alert as a JSON line on standard output")
                    .default_value(o.stdout)
                    .mutable_ready()
                    .build(),
                string("jsonl-file", "JSON lines file", "Append each alert as a JSON line to this file (rotated by size)"),
                glib::ParamSpecUInt64::builder("jsonl-max-bytes")
                    .nick("JSON lines file size")
                    .blurb("Rotate the JSON lines file before it grows past this many bytes (0 = never)")
                    .default_value(o.jsonl.max_bytes)
                    .mutable_ready()
                    .build(),
                uint("jsonl-max-files", "Rotated files kept", "How many rotated files (FILE.1 ... FILE.N) to keep", 0, 1000, o.jsonl.max_files),
                string("webhook-url", "Webhook URL", "POST each alert's JSON here (http:// or https://), with the alert id as Idempotency-Key"),
                uint("webhook-timeout", "Webhook timeout", "Milliseconds one webhook request may take", 1, 600_000, o.webhook.timeout_ms),
                uint("webhook-retries", "Webhook retries", "Attempts after the first, with exponential backoff and jitter", 0, 100, o.webhook.retries),
                uint("webhook-queue", "Webhook queue", "Alerts waiting for the webhook; more are dropped and counted", 1, 1_000_000, o.webhook.queue),
                string("mqtt-url", "MQTT URL", "Publish each alert with QoS 1: mqtt://[user:password@]host[:1883]/topic, or mqtts://...[:8883] for TLS checked against the system CA store (SSL_CERT_FILE overrides)"),
                uint("mqtt-queue", "MQTT queue", "Alerts waiting for the broker; more are dropped and counted", 1, 1_000_000, o.mqtt.queue),
                string("nats-url", "NATS JetStream URL", "Publish each alert to NATS JetStream and wait for its acknowledgement: nats://[user:password@]host:port/SUBJECT[?stream=NAME] publishes to SUBJECT.SOURCE_ID with the alert id as Nats-Msg-Id (JetStream drops retried copies); the stream (default: SUBJECT in capitals) is created when missing"),
                uint("nats-queue", "NATS queue", "Alerts waiting for the NATS server; more are dropped and counted", 1, 1_000_000, o.nats.queue),
                string("snapshot-dir", "Snapshot folder", "Write a JPEG of the frame of each alert here; the alert names the file"),
                glib::ParamSpecDouble::builder("rate-limit")
                    .nick("Rate limit")
                    .blurb("At most this many alerts per minute over all rules (0 = no limit; a rules file may set rate-limit too)")
                    .minimum(0.0)
                    .maximum(1e6)
                    .default_value(d.rate_limit)
                    .mutable_ready()
                    .build(),
                uint("rate-burst", "Rate burst", "Alerts that may go out at once before the rate limit applies", 1, 100_000, d.rate_burst),
                uint("stats-interval", "Stats interval", "Post an rtalert-stats message every this many milliseconds (0 = only at EOS)", 0, 3_600_000, d.stats_interval_ms),
                uint("reload-interval", "Reload interval", "Check the rules file for changes every this many milliseconds (0 = never)", 0, 3_600_000, d.reload_interval_ms),
                uint("flush-timeout", "Flush timeout", "When stopping, milliseconds to finish delivering queued alerts; the rest count as dropped", 0, 600_000, d.flush_timeout_ms),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("emitted, suppressed-cooldown, suppressed-burst, suppressed-rate, dropped-outputs, snapshot-failures, delivered/dropped/queued per output (each output's add up to emitted), and per rule unique-tracks, crossed-in, crossed-out")
                    .read_only()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let opt = |v: &glib::Value| v.get::<Option<String>>().unwrap().filter(|s| !s.is_empty());
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "rules-file" => s.rules_file = opt(value).map(PathBuf::from),
            "rules" => s.rules = opt(value).unwrap_or_default(),
            "stdout" => s.outputs.stdout = value.get().unwrap(),
            "regions-meta" => s.regions_meta = value.get().unwrap(),
            "jsonl-file" => s.outputs.jsonl.file = opt(value),
            "jsonl-max-bytes" => s.outputs.jsonl.max_bytes = value.get().unwrap(),
            "jsonl-max-files" => s.outputs.jsonl.max_files = value.get().unwrap(),
            "webhook-url" => s.outputs.webhook.url = opt(value),
            "webhook-timeout" => s.outputs.webhook.timeout_ms = value.get().unwrap(),
            "webhook-retries" => s.outputs.webhook.retries = value.get().unwrap(),
            "webhook-queue" => s.outputs.webhook.queue = value.get().unwrap(),
            "mqtt-url" => s.outputs.mqtt.url = opt(value),
            "mqtt-queue" => s.outputs.mqtt.queue = value.get().unwrap(),
            "nats-url" => s.outputs.nats.url = opt(value),
            "nats-queue" => s.outputs.nats.queue = value.get().unwrap(),
            "snapshot-dir" => s.snapshot_dir = opt(value),
            "rate-limit" => s.rate_limit = value.get().unwrap(),
            "rate-burst" => s.rate_burst = value.get().unwrap(),
            "stats-interval" => s.stats_interval_ms = value.get().unwrap(),
            "reload-interval" => s.reload_interval_ms = value.get().unwrap(),
            "flush-timeout" => s.flush_timeout_ms = value.get().unwrap(),
            _ => unreachable!(),
        }
        // Rules changed while running take effect now.
        if matches!(pspec.name(), "rules" | "rules-file") {
            drop(s);
            if self.state.lock().unwrap().is_some() {
                self.reload(&format!("{} property changed", pspec.name()));
            }
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).to_value();
        match pspec.name() {
            "rules-file" => path(&s.rules_file),
            "rules" => s.rules.to_value(),
            "stdout" => s.outputs.stdout.to_value(),
            "regions-meta" => s.regions_meta.to_value(),
            "jsonl-file" => s.outputs.jsonl.file.to_value(),
            "jsonl-max-bytes" => s.outputs.jsonl.max_bytes.to_value(),
            "jsonl-max-files" => s.outputs.jsonl.max_files.to_value(),
            // Shown masked, as everywhere else (dot files and tools print properties).
            "webhook-url" => s
                .outputs
                .webhook
                .url
                .as_deref()
                .map(rtmeta::mask::mask_webhook)
                .to_value(),
            "webhook-timeout" => s.outputs.webhook.timeout_ms.to_value(),
            "webhook-retries" => s.outputs.webhook.retries.to_value(),
            "webhook-queue" => s.outputs.webhook.queue.to_value(),
            "mqtt-url" => s.outputs.mqtt.url.as_deref().map(mask_uri).to_value(),
            "mqtt-queue" => s.outputs.mqtt.queue.to_value(),
            "nats-url" => s.outputs.nats.url.as_deref().map(mask_uri).to_value(),
            "nats-queue" => s.outputs.nats.queue.to_value(),
            "snapshot-dir" => s.snapshot_dir.to_value(),
            "rate-limit" => s.rate_limit.to_value(),
            "rate-burst" => s.rate_burst.to_value(),
            "stats-interval" => s.stats_interval_ms.to_value(),
            "reload-interval" => s.reload_interval_ms.to_value(),
            "flush-timeout" => s.flush_timeout_ms.to_value(),
            "stats" => {
                drop(s);
                let live = self
                    .state
                    .lock()
                    .unwrap()
                    .as_ref()
                    .map(Self::stats_structure);
                live.or_else(|| self.last_stats.lock().unwrap().clone())
                    .unwrap_or_else(|| gst::Structure::new_empty("rtalert-stats"))
                    .to_value()
            }
            _ => unreachable!(),
        }
    }
}

impl GstObjectImpl for RtAlert {}

impl ElementImpl for RtAlert {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Detection alerts",
                "Filter/Analyzer/Video",
                "Evaluates rules (classes, confidence, counts, zones, line crossings, presence time) over \
                 RtDetectionMeta and emits alerts with cooldown, burst detection and rate limiting to the bus, \
                 stdout, JSON-lines files, webhooks, MQTT and NATS. Suppressed and undeliverable alerts are always counted.",
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

impl BaseTransformImpl for RtAlert {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    // Passthrough is set in start (and on reload): on unless regions are attached.
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = true;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = self.settings.lock().unwrap().clone();
        let set = load_rules(&s).map_err(|e| rules_error(&e))?;
        let outputs = self.build_outputs(&s, &set).map_err(|e| output_error(&e))?;
        let rate = if s.rate_limit > 0.0 {
            Some(RateLimit {
                per_minute: s.rate_limit,
                burst: s.rate_burst,
            })
        } else {
            set.rate_limit
        };
        let snapshot_dir = s
            .snapshot_dir
            .clone()
            .or(set.outputs.snapshot_dir.clone())
            .map(PathBuf::from);
        if let Some(dir) = &snapshot_dir
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("Cannot create snapshot folder {}: {e}", dir.display())
            );
        }
        let names: Vec<&str> = outputs.iter().map(|o| o.name()).collect();
        gst::info!(
            CAT,
            imp = self,
            "{} rules, outputs: {names:?}",
            set.rules.len()
        );
        if snapshot_dir.is_some() {
            self.start_emitter()?;
        }
        let file_extras = (set.outputs.clone(), set.rate_limit);
        let alerter = Alerter::new(set.rules, rate, nonce());
        self.obj()
            .set_passthrough(!(s.regions_meta && alerter.engine().has_regions()));
        *self.state.lock().unwrap() = Some(State {
            alerter,
            outputs: outputs.into(),
            snapshot_dir,
            file_extras,
            segment: gst::FormattedSegment::new(),
            info: None,
            rules_mtime: mtime(&s.rules_file),
            last_reload_check: Instant::now(),
            last_stats: Instant::now(),
            snapshot_failures: 0,
            upstream_labels: Vec::new(),
            labels_pending: false,
            labels_warning: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // A stop without EOS still closes what is open (after EOS nothing is).
        self.end_open(|alerter| alerter.end_all("stopped"));
        // Before the state is taken: the snapshot thread takes its lock to count failures.
        self.stop_emitter();
        let grace = Duration::from_millis(self.settings.lock().unwrap().flush_timeout_ms as u64);
        let state = self.state.lock().unwrap().take();
        if let Some(mut state) = state {
            // Streaming has stopped, so no buffer holds the outputs any more.
            if let Some(outputs) = Arc::get_mut(&mut state.outputs) {
                for o in outputs {
                    o.shutdown(grace);
                }
            }
            let stats = Self::stats_structure(&state);
            *self.last_stats.lock().unwrap() = Some(stats.clone());
            self.post_element(stats);
        }
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        // Snapshots need raw video in system memory; other caps just pass through.
        let no_snapshots = self.state.lock().unwrap().as_mut().is_some_and(|state| {
            state.info = gst_video::VideoInfo::from_caps(incaps).ok();
            state.info.is_none() && state.snapshot_dir.is_some()
        });
        if no_snapshots {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Format,
                ("snapshot-dir is set but {incaps} is not raw video: alerts will have no snapshots")
            );
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let Some(models) = rtmeta::labels::from_event(&event) {
            self.labels_upstream(models);
        }
        match event.view() {
            gst::EventView::Segment(e) => {
                if let Some(state) = self.state.lock().unwrap().as_mut()
                    && let Ok(seg) = e.segment().clone().downcast::<gst::ClockTime>()
                {
                    state.segment = seg;
                }
            }
            gst::EventView::FlushStop(_) => self.end_open(Alerter::restart_clock),
            gst::EventView::Eos(_) => {
                self.end_open(|alerter| alerter.end_all("eos"));
                // Every alert is out (and on the bus) before EOS goes on.
                self.drain();
                let stats = self.state.lock().unwrap().as_mut().map(Self::take_stats);
                if let Some(s) = stats {
                    self.post_element(s);
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn transform_ip_passthrough(
        &self,
        buf: &gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (_, raised) = self.process(buf, false)?;
        self.send_with_frame(raised, buf);
        Ok(gst::FlowSuccess::Ok)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (regions, raised) = self.process(buf, true)?;
        if let Some(regions) = regions
            && let Err(e) = regions.attach(buf)
        {
            gst::warning!(CAT, imp = self, "could not attach the regions: {e}");
        }
        // After the regions, so that a snapshot's copy of the frame has them too.
        self.send_with_frame(raised, buf);
        Ok(gst::FlowSuccess::Ok)
    }
}

impl RtAlert {
    /// Sends out a frame's alerts, with a copy of the frame when snapshots are on.
    fn send_with_frame(&self, raised: Option<Raised>, buf: &gst::BufferRef) {
        let Some(Raised {
            alerts,
            snapshot,
            outputs,
        }) = raised
        else {
            return;
        };
        // A copy, not a reference: the snapshot thread may hold frames for a while (up to its
        // queue's length), which would drain an upstream pool of a few buffers (hardware
        // decoders, cameras) and make an in-place element downstream copy each frame anyway.
        // Memory that cannot be copied is referenced instead.
        let frame = snapshot.map(|(dir, info)| {
            (
                buf.copy_deep().unwrap_or_else(|_| buf.to_owned()),
                dir,
                info,
            )
        });
        self.send(alerts.into_iter().map(|alert| Pending {
            alert,
            frame: frame.clone(),
            outputs: outputs.clone(),
        }));
    }

    /// Evaluates the rules on one frame; returns the frame's regions when `regions` is asked
    /// for, and its alerts, if any, to send out.
    fn process(
        &self,
        buf: &gst::BufferRef,
        regions: bool,
    ) -> Result<(Option<rtmeta::Regions>, Option<Raised>), gst::FlowError> {
        let Some(dets) = Detections::from_buffer(buf) else {
            return Ok((None, None));
        };
        self.maybe_reload();
        // Only the rules and counters need the lock; snapshots, bus messages and outputs
        // come after it is released.
        let (alerts, outputs, snapshot, regions, labels_warning) = {
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            let labels_warning = state.labels_warning();
            let alerts = state.alerts(&dets, buf.pts());
            let regions = regions.then(|| {
                let alerter = &state.alerter;
                alerter
                    .engine()
                    .regions(dets.source_id, alerter.last_time())
            });
            let snapshot = state
                .snapshot_dir
                .as_ref()
                .zip(state.info.as_ref())
                .filter(|_| !alerts.is_empty())
                .map(|(dir, info)| (dir.clone(), info.clone()));
            (
                alerts,
                state.outputs.clone(),
                snapshot,
                regions,
                labels_warning,
            )
        };
        if let Some(why) = labels_warning {
            gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{why}"));
        }
        let raised = (!alerts.is_empty()).then_some(Raised {
            alerts,
            snapshot,
            outputs,
        });
        let interval =
            Duration::from_millis(self.settings.lock().unwrap().stats_interval_ms as u64);
        let stats = self
            .state
            .lock()
            .unwrap()
            .as_mut()
            .filter(|state| !interval.is_zero() && state.last_stats.elapsed() >= interval)
            .map(Self::take_stats);
        if let Some(s) = stats {
            self.post_element(s);
        }
        Ok((regions, raised))
    }
}
