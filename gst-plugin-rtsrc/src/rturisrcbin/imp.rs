//! rturisrcbin: decoded video from any URI, rebuilt with backoff when it fails.
//!
//! The source runs in an inner pipeline of its own (`uridecodebin ! appsink`), so its errors
//! never reach the outer pipeline's bus. Decoded frames are pushed into a live `appsrc` behind
//! the bin's ghost pad and timestamped on arrival: downstream sees a gap while the source is
//! being rebuilt, never an error. A supervisor thread watches the inner bus and the flow of
//! frames, and posts element messages: `rturisrcbin-connected`, `-lost`, `-retrying`,
//! `-restored`.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use rtmeta::mask::{mask_in, mask_uri};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rturisrcbin",
        gst::DebugColorFlags::empty(),
        Some("Reconnecting source"),
    )
});

#[derive(Clone, Debug)]
struct Settings {
    uri: Option<String>,
    initial_ms: u32,
    max_ms: u32,
    max_attempts: u32,
    connect_ms: u32,
    stall_ms: u32,
    restart_on_eos: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            uri: None,
            initial_ms: 1000,
            max_ms: 30_000,
            max_attempts: 0,
            connect_ms: 10_000,
            stall_ms: 5000,
            restart_on_eos: true,
        }
    }
}

/// What the supervisor, the inner appsink and the element share.
#[derive(Debug)]
struct Shared {
    /// When the last frame arrived (or the current attempt began).
    last_frame: Mutex<Instant>,
    frames: AtomicU64,
    reconnects: AtomicU64,
    state: Mutex<&'static str>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            last_frame: Mutex::new(Instant::now()),
            frames: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            state: Mutex::new("stopped"),
        }
    }
}

impl Shared {
    fn touch(&self) {
        *self.last_frame.lock().unwrap() = Instant::now();
    }
    fn set_state(&self, s: &'static str) {
        *self.state.lock().unwrap() = s;
    }
}

struct Supervisor {
    thread: JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

pub struct RtUriSrcBin {
    appsrc: gst_app::AppSrc,
    settings: Mutex<Settings>,
    shared: Arc<Shared>,
    supervisor: Mutex<Option<Supervisor>>,
}

#[glib::object_subclass]
impl ObjectSubclass for RtUriSrcBin {
    const NAME: &'static str = "GstRtUriSrcBin";
    type Type = super::RtUriSrcBin;
    type ParentType = gst::Bin;

    fn new() -> Self {
        let appsrc = gst_app::AppSrc::builder()
            .name("src")
            .format(gst::Format::Time)
            .is_live(true)
            .do_timestamp(true)
            .max_buffers(5)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        RtUriSrcBin {
            appsrc,
            settings: Mutex::new(Settings::default()),
            shared: Arc::new(Shared::default()),
            supervisor: Mutex::new(None),
        }
    }
}

/// The inner pipeline: `uridecodebin` (video only) into an appsink that feeds `appsrc`.
fn build_inner(
    uri: &str,
    appsrc: &gst_app::AppSrc,
    shared: &Arc<Shared>,
) -> Result<(gst::Pipeline, gst_app::AppSink), String> {
    let raw = gst::Caps::builder("video/x-raw").build();
    let pipeline = gst::Pipeline::with_name("rturisrcbin-inner");
    let dec = gst::ElementFactory::make("uridecodebin")
        .property("uri", uri)
        .property("caps", &raw)
        .build()
        .map_err(|e| format!("uridecodebin is missing: {e}"))?;
    let sink = gst_app::AppSink::builder()
        .caps(&raw)
        .sync(true)
        .max_buffers(2)
        .drop(true)
        .build();
    pipeline
        .add_many([&dec, sink.upcast_ref()])
        .map_err(|e| e.to_string())?;
    let sinkpad = sink.static_pad("sink").expect("appsink has a sink pad");
    let weak = pipeline.downgrade();
    dec.connect_pad_added(move |_, pad| {
        let is_video = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/x-raw")))
            .unwrap_or(false);
        if is_video && !sinkpad.is_linked() {
            let _ = pad.link(&sinkpad);
        } else if let Some(p) = weak.upgrade() {
            // Audio, subtitles, a second video: consumed, so they cannot stall the source.
            let Ok(sink) = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
            else {
                return;
            };
            if p.add(&sink).is_ok() {
                let _ = sink.sync_state_with_parent();
                let _ = pad.link(&sink.static_pad("sink").expect("fakesink has a sink pad"));
            }
        }
    });
    let (appsrc, shared) = (appsrc.clone(), shared.clone());
    let callbacks_sink = sink.clone();
    callbacks_sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                shared.touch();
                shared.frames.fetch_add(1, Ordering::Relaxed);
                // Flushing (the outer pipeline stopping) is not the source's problem.
                let _ = appsrc.push_sample(&sample);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok((pipeline, sink))
}

/// Sleeps up to `d`, returning early (true) if asked to stop.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20).min(d));
    }
    stop.load(Ordering::Relaxed)
}

/// Problems with a URI that retrying cannot fix: no element handles its scheme, or a local
/// file that is missing, empty or not a file.
pub fn check_uri(uri: &str) -> Result<(), String> {
    let scheme = uri
        .split_once("://")
        .map_or("", |(s, _)| s)
        .to_ascii_lowercase();
    if gst::Element::make_from_uri(gst::URIType::Src, uri, None).is_err() {
        return Err(format!(
            "No GStreamer element reads {scheme}:// URIs: check the URI, or install the plugin \
             for it (rtsp and http are in gstreamer1.0-plugins-good)"
        ));
    }
    if scheme == "file" {
        let (path, _) = glib::filename_from_uri(uri)
            .map_err(|e| format!("{uri} is not a valid file URI: {e}"))?;
        let shown = path.display();
        let meta = std::fs::metadata(&path).map_err(|e| format!("Cannot read {shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{shown} is not a file"));
        }
        if meta.len() == 0 {
            return Err(format!("{shown} is empty"));
        }
    }
    Ok(())
}

/// How one attempt ended.
enum Outcome {
    Stopped,
    Ended,
    Failed(String),
    /// No retry can fix this (a missing plugin or codec).
    Fatal(String),
}

fn supervise(
    element: glib::WeakRef<super::RtUriSrcBin>,
    appsrc: gst_app::AppSrc,
    s: Settings,
    uri: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) {
    let masked = mask_uri(&uri);
    let post = |name: &str, fields: &[(&str, glib::SendValue)]| {
        let Some(e) = element.upgrade() else { return };
        let mut st = gst::Structure::builder(name)
            .field("uri", masked.as_str())
            .build();
        for (k, v) in fields {
            st.set_value(*k, v.clone());
        }
        st.set("reconnects", shared.reconnects.load(Ordering::Relaxed));
        gst::info!(CAT, obj = e, "{st}");
        let _ = e.post_message(gst::message::Element::builder(st).src(&e).build());
    };
    let initial = Duration::from_millis(s.initial_ms as u64);
    let stall = Duration::from_millis(s.stall_ms as u64);
    let connect = Duration::from_millis(s.connect_ms as u64);
    let mut delay = initial;
    let mut attempt = 0u32;
    let mut ever_connected = false;
    loop {
        shared.set_state("connecting");
        shared.touch();
        let start_frames = shared.frames.load(Ordering::Relaxed);
        let mut connected = false;
        let inner = build_inner(&uri, &appsrc, &shared);
        let outcome = match &inner {
            Err(e) => Outcome::Failed(e.clone()),
            Ok((p, sink)) => match p.set_state(gst::State::Playing) {
                Err(_) => {
                    // The reason is on the inner bus.
                    let why = p
                        .bus()
                        .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
                        .and_then(|m| match m.view() {
                            gst::MessageView::Error(e) => Some(e.error().to_string()),
                            _ => None,
                        });
                    Outcome::Failed(mask_in(
                        why.as_deref().unwrap_or("the source did not start"),
                        &uri,
                    ))
                }
                Ok(success) => {
                    // Live sources pace themselves; syncing again would only add latency.
                    if success == gst::StateChangeSuccess::NoPreroll {
                        sink.set_sync(false);
                    }
                    let bus = p.bus().expect("pipelines have a bus");
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            break Outcome::Stopped;
                        }
                        let msg = bus.timed_pop_filtered(
                            gst::ClockTime::from_mseconds(50),
                            &[gst::MessageType::Error, gst::MessageType::Eos],
                        );
                        match msg.as_ref().map(|m| m.view()) {
                            Some(gst::MessageView::Error(err)) => {
                                let text = mask_in(
                                    &format!(
                                        "{} ({})",
                                        err.error(),
                                        err.debug().unwrap_or_default()
                                    ),
                                    &uri,
                                );
                                let e = err.error();
                                let fatal = e.matches(gst::CoreError::MissingPlugin)
                                    || e.matches(gst::StreamError::CodecNotFound);
                                break if fatal {
                                    Outcome::Fatal(text)
                                } else {
                                    Outcome::Failed(text)
                                };
                            }
                            Some(gst::MessageView::Eos(_)) => break Outcome::Ended,
                            _ => {}
                        }
                        if !connected && shared.frames.load(Ordering::Relaxed) > start_frames {
                            connected = true;
                            attempt = 0;
                            delay = initial;
                            shared.set_state("playing");
                            let name = if ever_connected {
                                "rturisrcbin-restored"
                            } else {
                                "rturisrcbin-connected"
                            };
                            ever_connected = true;
                            post(name, &[]);
                        }
                        let (limit, ms) = if connected {
                            (stall, s.stall_ms)
                        } else {
                            (connect, s.connect_ms)
                        };
                        if shared.last_frame.lock().unwrap().elapsed() > limit {
                            break Outcome::Failed(format!("no frames for {ms} ms"));
                        }
                    }
                }
            },
        };
        if let Ok((p, _)) = &inner {
            let _ = p.set_state(gst::State::Null);
        }
        let restarting = matches!(outcome, Outcome::Ended);
        let reason = match outcome {
            Outcome::Stopped => break,
            Outcome::Ended if !s.restart_on_eos => {
                shared.set_state("ended");
                let _ = appsrc.end_of_stream();
                break;
            }
            Outcome::Ended => "end of stream".to_string(),
            Outcome::Failed(r) => r,
            Outcome::Fatal(r) => {
                shared.set_state("failed");
                if let Some(e) = element.upgrade() {
                    gst::element_error!(
                        e,
                        gst::CoreError::MissingPlugin,
                        ("Cannot play {masked}: {r}")
                    );
                }
                let _ = appsrc.end_of_stream();
                break;
            }
        };
        if connected {
            post("rturisrcbin-lost", &[("reason", reason.to_send_value())]);
        }
        attempt += 1;
        if s.max_attempts > 0 && attempt >= s.max_attempts {
            shared.set_state("failed");
            if let Some(e) = element.upgrade() {
                gst::element_error!(
                    e,
                    gst::ResourceError::OpenRead,
                    (
                        "Gave up on {masked} after {} attempts: {reason}",
                        s.max_attempts
                    )
                );
            }
            let _ = appsrc.end_of_stream();
            break;
        }
        // Once per outage (the count restarts when frames flow), so a gst-launch user sees it.
        if attempt == 1
            && !restarting
            && let Some(e) = element.upgrade()
        {
            gst::element_warning!(
                e,
                gst::ResourceError::Read,
                (
                    "{} {masked}: {reason}; retrying in {} ms, then with backoff",
                    if connected { "Lost" } else { "Cannot reach" },
                    delay.as_millis()
                )
            );
        }
        shared.reconnects.fetch_add(1, Ordering::Relaxed);
        shared.set_state("retrying");
        post(
            "rturisrcbin-retrying",
            &[
                ("attempt", attempt.to_send_value()),
                ("delay-ms", (delay.as_millis() as u64).to_send_value()),
                ("reason", reason.to_send_value()),
            ],
        );
        if sleep_unless_stopped(delay, &stop) {
            break;
        }
        delay = (delay * 2).min(Duration::from_millis(s.max_ms as u64));
    }
    shared.set_state("stopped");
}

impl RtUriSrcBin {
    fn start(&self) -> Result<(), gst::StateChangeError> {
        let s = self.settings.lock().unwrap().clone();
        let Some(uri) = s.uri.clone() else {
            gst::element_imp_error!(
                self,
                gst::ResourceError::NotFound,
                ("No URI: set the uri property")
            );
            return Err(gst::StateChangeError);
        };
        let has_scheme = uri.split_once("://").is_some_and(|(scheme, _)| {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if !has_scheme {
            gst::element_imp_error!(
                self,
                gst::ResourceError::NotFound,
                ("\"{}\" is not a URI", mask_uri(&uri))
            );
            return Err(gst::StateChangeError);
        }
        // What no retry can fix is an error at once.
        if let Err(why) = check_uri(&uri) {
            gst::element_imp_error!(self, gst::ResourceError::NotFound, ("{why}"));
            return Err(gst::StateChangeError);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (weak, appsrc, shared, stop2) = (
            self.obj().downgrade(),
            self.appsrc.clone(),
            self.shared.clone(),
            stop.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("rturisrcbin".into())
            .spawn(move || supervise(weak, appsrc, s, uri, shared, stop2))
            .map_err(|_| gst::StateChangeError)?;
        *self.supervisor.lock().unwrap() = Some(Supervisor { thread, stop });
        Ok(())
    }

    fn stop(&self) {
        if let Some(sup) = self.supervisor.lock().unwrap().take() {
            sup.stop.store(true, Ordering::Relaxed);
            let _ = sup.thread.join();
        }
    }
}

impl ObjectImpl for RtUriSrcBin {
    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add(&self.appsrc).expect("adding appsrc");
        let target = self.appsrc.static_pad("src").expect("appsrc has a src pad");
        let ghost = gst::GhostPad::builder_with_target(&target)
            .expect("ghost pad")
            .name("src")
            .build();
        obj.add_pad(&ghost).expect("adding the src pad");
        obj.set_suppressed_flags(gst::ElementFlags::SOURCE | gst::ElementFlags::SINK);
        obj.set_element_flags(gst::ElementFlags::SOURCE);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let ms = |name: &'static str,
                      nick: &'static str,
                      blurb: &'static str,
                      min: u32,
                      def: u32| {
                glib::ParamSpecUInt::builder(name)
                    .nick(nick)
                    .blurb(blurb)
                    .minimum(min)
                    .maximum(3_600_000)
                    .default_value(def)
                    .mutable_ready()
                    .build()
            };
            vec![
                glib::ParamSpecString::builder("uri")
                    .nick("URI")
                    .blurb("What to play: file://, rtsp:// (rtspt:// forces TCP, rtspu:// UDP), http://... \
                            Credentials in it (passwords, tokens) are masked in every log line and message")
                    .mutable_ready()
                    .build(),
                ms("initial-retry-interval", "Initial retry interval", "Milliseconds before the first retry; doubles after each failed attempt", 1, 1000),
                ms("max-retry-interval", "Maximum retry interval", "The retry interval stops doubling here (milliseconds)", 1, 30_000),
                glib::ParamSpecUInt::builder("max-attempts")
                    .nick("Maximum attempts")
                    .blurb("Failed attempts in a row before giving up with an error (0 = retry forever)")
                    .mutable_ready()
                    .build(),
                ms("connect-timeout", "Connect timeout", "An attempt that brings no first frame within this many milliseconds is retried", 100, 10_000),
                ms("stall-timeout", "Stall timeout", "A playing source that delivers no frame for this many milliseconds is rebuilt", 100, 5000),
                glib::ParamSpecBoolean::builder("restart-on-eos")
                    .nick("Restart on EOS")
                    .blurb("Rebuild the source when it ends (live streams); false passes the end on (files)")
                    .default_value(true)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("reconnects")
                    .nick("Reconnects")
                    .blurb("Retries so far")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames")
                    .nick("Frames")
                    .blurb("Frames delivered so far")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("source-state")
                    .nick("Source state")
                    .blurb("stopped, connecting, playing, retrying, ended or failed")
                    .read_only()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "uri" => {
                s.uri = value
                    .get::<Option<String>>()
                    .unwrap()
                    .filter(|u| !u.is_empty())
            }
            "initial-retry-interval" => s.initial_ms = value.get().unwrap(),
            "max-retry-interval" => s.max_ms = value.get().unwrap(),
            "max-attempts" => s.max_attempts = value.get().unwrap(),
            "connect-timeout" => s.connect_ms = value.get().unwrap(),
            "stall-timeout" => s.stall_ms = value.get().unwrap(),
            "restart-on-eos" => s.restart_on_eos = value.get().unwrap(),
            _ => unreachable!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "uri" => s.uri.to_value(),
            "initial-retry-interval" => s.initial_ms.to_value(),
            "max-retry-interval" => s.max_ms.to_value(),
            "max-attempts" => s.max_attempts.to_value(),
            "connect-timeout" => s.connect_ms.to_value(),
            "stall-timeout" => s.stall_ms.to_value(),
            "restart-on-eos" => s.restart_on_eos.to_value(),
            "reconnects" => self.shared.reconnects.load(Ordering::Relaxed).to_value(),
            "frames" => self.shared.frames.load(Ordering::Relaxed).to_value(),
            "source-state" => (*self.shared.state.lock().unwrap()).to_value(),
            _ => unreachable!(),
        }
    }
}

impl GstObjectImpl for RtUriSrcBin {}

impl ElementImpl for RtUriSrcBin {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Reconnecting URI source",
                "Source/Video",
                "Decoded video from any URI uridecodebin plays. When the source errors, ends or stalls it is \
                 rebuilt with exponential backoff while the pipeline keeps running: downstream sees a gap, \
                 not an error. Posts rturisrcbin-connected/-lost/-retrying/-restored messages.",
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
                    &gst::Caps::builder("video/x-raw").build(),
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            self.start()?;
        }
        if transition == gst::StateChange::PausedToReady {
            self.stop();
        }
        let result = self.parent_change_state(transition);
        if result.is_err() && transition == gst::StateChange::ReadyToPaused {
            self.stop();
        }
        result
    }
}

impl BinImpl for RtUriSrcBin {}
