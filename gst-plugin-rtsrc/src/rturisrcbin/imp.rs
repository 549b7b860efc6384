//! rturisrcbin: decoded video from any URI, rebuilt with backoff when it fails.
//!
//! The source runs in an inner pipeline of its own (`uridecodebin ! appsink`), so its errors
//! never reach the outer pipeline's bus. Decoded frames are pushed into a live `appsrc` behind
//! the bin's ghost pad and timestamped on arrival: downstream sees a gap while the source is
//! being rebuilt, never an error. A supervisor thread watches the inner bus and the flow of
//! frames, and posts element messages: `rturisrcbin-connected`, `-lost`, `-retrying`,
//! `-restored`.

use crate::reconnect::{Next, Outcome, Policy, State, Supervisor};
use crate::uri::check_uri;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use rtmeta::mask::{mask_in, mask_uri};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
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

impl Settings {
    fn policy(&self) -> Policy {
        let ms = |v: u32| Duration::from_millis(v as u64);
        Policy {
            initial: ms(self.initial_ms),
            max: ms(self.max_ms),
            max_attempts: self.max_attempts,
            connect_timeout: ms(self.connect_ms),
            stall_timeout: ms(self.stall_ms),
            restart_on_eos: self.restart_on_eos,
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
    state: Mutex<State>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            last_frame: Mutex::new(Instant::now()),
            frames: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            state: Mutex::new(State::Stopped),
        }
    }
}

impl Shared {
    fn touch(&self) {
        *self.last_frame.lock().unwrap() = Instant::now();
    }
    fn set_state(&self, s: State) {
        *self.state.lock().unwrap() = s;
    }
}

/// The supervisor thread while running.
struct Running {
    thread: JoinHandle<()>,
    stop: Arc<Stop>,
}

pub struct RtUriSrcBin {
    appsrc: gst_app::AppSrc,
    settings: Mutex<Settings>,
    shared: Arc<Shared>,
    supervisor: Mutex<Option<Running>>,
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

/// Tells the supervisor to stop, waking it from a backoff wait at once.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    fn set(&self) {
        *self.stopped.lock().unwrap() = true;
        self.wake.notify_all();
    }

    fn is_set(&self) -> bool {
        *self.stopped.lock().unwrap()
    }

    /// Waits up to `d`; true if asked to stop.
    fn wait(&self, d: Duration) -> bool {
        let guard = self.stopped.lock().unwrap();
        let (guard, _) = self.wake.wait_timeout_while(guard, d, |s| !*s).unwrap();
        *guard
    }
}

/// How an attempt's inner pipeline ended, as far as the element can tell.
enum Played {
    Stopped,
    Over(Outcome),
}

/// Plays one attempt until it ends, fails, stalls or the element stops; `frames` is told
/// when frames flow.
fn play(
    uri: &str,
    appsrc: &gst_app::AppSrc,
    shared: &Arc<Shared>,
    stop: &Stop,
    sup: &mut Supervisor,
    mut frames: impl FnMut(bool),
) -> Played {
    let start_frames = shared.frames.load(Ordering::Relaxed);
    let (p, sink) = match build_inner(uri, appsrc, shared) {
        Err(e) => return Played::Over(Outcome::Failed(e)),
        Ok(inner) => inner,
    };
    let played = match p.set_state(gst::State::Playing) {
        Err(_) => {
            // The reason is on the inner bus.
            let why = p
                .bus()
                .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
                .and_then(|m| match m.view() {
                    gst::MessageView::Error(e) => Some(e.error().to_string()),
                    _ => None,
                });
            Played::Over(Outcome::Failed(mask_in(
                why.as_deref().unwrap_or("the source did not start"),
                uri,
            )))
        }
        Ok(success) => {
            // Live sources pace themselves; syncing again would only add latency.
            if success == gst::StateChangeSuccess::NoPreroll {
                sink.set_sync(false);
            }
            watch(&p, uri, shared, stop, sup, start_frames, &mut frames)
        }
    };
    let _ = p.set_state(gst::State::Null);
    played
}

/// Watches a playing attempt: its bus for errors and the end, its frames for stalls.
fn watch(
    p: &gst::Pipeline,
    uri: &str,
    shared: &Shared,
    stop: &Stop,
    sup: &mut Supervisor,
    start_frames: u64,
    frames: &mut impl FnMut(bool),
) -> Played {
    let bus = p.bus().expect("pipelines have a bus");
    loop {
        if stop.is_set() {
            return Played::Stopped;
        }
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(50),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        );
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Error(err)) => {
                let text = mask_in(
                    &format!("{} ({})", err.error(), err.debug().unwrap_or_default()),
                    uri,
                );
                let e = err.error();
                let fatal = e.matches(gst::CoreError::MissingPlugin)
                    || e.matches(gst::StreamError::CodecNotFound);
                return Played::Over(if fatal {
                    Outcome::Fatal(text)
                } else {
                    Outcome::Failed(text)
                });
            }
            Some(gst::MessageView::Eos(_)) => return Played::Over(Outcome::Ended),
            _ => {}
        }
        if shared.frames.load(Ordering::Relaxed) > start_frames
            && let Some(restored) = sup.frames()
        {
            frames(restored);
        }
        let limit = sup.frame_timeout();
        if shared.last_frame.lock().unwrap().elapsed() > limit {
            return Played::Over(Outcome::Failed(format!(
                "no frames for {} ms",
                limit.as_millis()
            )));
        }
    }
}

/// Posts the error that ends the source.
fn fail<T: gst::MessageErrorDomain>(
    element: &glib::WeakRef<super::RtUriSrcBin>,
    domain: T,
    message: &str,
) {
    if let Some(e) = element.upgrade() {
        gst::element_error!(e, domain, ("{message}"));
    }
}

/// The supervisor thread: plays attempts and follows the reconnect policy until stopped,
/// given up or ended.
fn supervise(
    element: glib::WeakRef<super::RtUriSrcBin>,
    appsrc: gst_app::AppSrc,
    policy: Policy,
    uri: String,
    shared: Arc<Shared>,
    stop: Arc<Stop>,
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
    let mut sup = Supervisor::new(policy);
    loop {
        shared.set_state(sup.attempt());
        shared.touch();
        let played = play(&uri, &appsrc, &shared, &stop, &mut sup, |restored| {
            shared.set_state(State::Playing);
            let name = if restored {
                "rturisrcbin-restored"
            } else {
                "rturisrcbin-connected"
            };
            post(name, &[]);
        });
        let Played::Over(outcome) = played else { break };
        let lost = sup.connected();
        let (next, state) = sup.ended(outcome.clone());
        shared.set_state(state);
        if lost && !matches!(next, Next::End | Next::Fatal(_)) {
            let reason = match &outcome {
                Outcome::Ended => "end of stream",
                Outcome::Failed(r) | Outcome::Fatal(r) => r.as_str(),
            };
            post("rturisrcbin-lost", &[("reason", reason.to_send_value())]);
        }
        let retry = match next {
            Next::Retry(retry) => retry,
            // These keep `source-state` at ended or failed; only a stop makes it stopped.
            Next::End => {
                let _ = appsrc.end_of_stream();
                return;
            }
            Next::GiveUp { attempts, reason } => {
                let message = format!("Gave up on {masked} after {attempts} attempts: {reason}");
                fail(&element, gst::ResourceError::OpenRead, &message);
                let _ = appsrc.end_of_stream();
                return;
            }
            Next::Fatal(reason) => {
                let message = format!("Cannot play {masked}: {reason}");
                fail(&element, gst::CoreError::MissingPlugin, &message);
                let _ = appsrc.end_of_stream();
                return;
            }
        };
        // Once per outage (the count restarts when frames flow), so a gst-launch user sees it.
        if retry.warn
            && let Some(e) = element.upgrade()
        {
            gst::element_warning!(
                e,
                gst::ResourceError::Read,
                (
                    "{} {masked}: {}; retrying in {} ms, then with backoff",
                    if retry.lost { "Lost" } else { "Cannot reach" },
                    retry.reason,
                    retry.delay.as_millis()
                )
            );
        }
        shared.reconnects.fetch_add(1, Ordering::Relaxed);
        post(
            "rturisrcbin-retrying",
            &[
                ("attempt", retry.attempt.to_send_value()),
                ("delay-ms", (retry.delay.as_millis() as u64).to_send_value()),
                ("reason", retry.reason.to_send_value()),
            ],
        );
        if stop.wait(retry.delay) {
            break;
        }
    }
    shared.set_state(State::Stopped);
}

impl RtUriSrcBin {
    fn start(&self) -> Result<(), gst::StateChangeError> {
        let s = self.settings.lock().unwrap().clone();
        let uri = s.uri.clone().unwrap_or_default();
        // What no retry can fix is an error at once.
        if let Err(e) = check_uri(&uri) {
            if e.is_missing_plugin() {
                gst::element_imp_error!(self, gst::CoreError::MissingPlugin, ("{e}"));
            } else {
                gst::element_imp_error!(self, e.resource_error(), ("{e}"));
            }
            // Until the next start: it says why nothing plays.
            self.shared.set_state(State::Failed);
            return Err(gst::StateChangeError);
        }
        let stop = Arc::new(Stop::default());
        let (weak, appsrc, shared, stop2) = (
            self.obj().downgrade(),
            self.appsrc.clone(),
            self.shared.clone(),
            stop.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("rturisrcbin".into())
            .spawn(move || supervise(weak, appsrc, s.policy(), uri, shared, stop2))
            .map_err(|_| gst::StateChangeError)?;
        *self.supervisor.lock().unwrap() = Some(Running { thread, stop });
        Ok(())
    }

    fn stop(&self) {
        let running = self.supervisor.lock().unwrap().take();
        if let Some(sup) = running {
            sup.stop.set();
            let _ = sup.thread.join();
        }
        self.shared.set_state(State::Stopped);
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
            let d = Settings::default();
            vec![
                glib::ParamSpecString::builder("uri")
                    .nick("URI")
                    .blurb("What to play: file://, rtsp:// (rtspt:// forces TCP, rtspu:// UDP), http://... \
                            Credentials in it (passwords, tokens) are masked in every log line and message")
                    .mutable_ready()
                    .build(),
                ms("initial-retry-interval", "Initial retry interval", "Milliseconds before the first retry; doubles after each failed attempt", 1, d.initial_ms),
                ms("max-retry-interval", "Maximum retry interval", "The retry interval stops doubling here (milliseconds)", 1, d.max_ms),
                glib::ParamSpecUInt::builder("max-attempts")
                    .nick("Maximum attempts")
                    .blurb("Failed attempts in a row before giving up with an error (0 = retry forever)")
                    .mutable_ready()
                    .build(),
                ms("connect-timeout", "Connect timeout", "An attempt that brings no first frame within this many milliseconds is retried", 100, d.connect_ms),
                ms("stall-timeout", "Stall timeout", "A playing source that delivers no frame for this many milliseconds is rebuilt", 100, d.stall_ms),
                glib::ParamSpecBoolean::builder("restart-on-eos")
                    .nick("Restart on EOS")
                    .blurb("Rebuild the source when it ends (live streams); false passes the end on (files)")
                    .default_value(d.restart_on_eos)
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
                    .blurb("stopped, connecting, playing, retrying, ended or failed (ended and failed stay until the \
                            element stops; a URI that cannot work fails at once and stays failed until the next start)")
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
            "source-state" => self.shared.state.lock().unwrap().as_str().to_value(),
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
