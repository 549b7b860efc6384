//! rtwhepsrc: a WHEP client (WebRTC-HTTP Egress Protocol) around `webrtcbin`.
//!
//! On READY→PAUSED a new `webrtcbin` is built and a signalling thread creates a receive-only
//! offer, waits for ICE gathering to finish (WHEP without trickle), POSTs the offer to
//! `location`, applies the answer and waits for ICE to connect. Received RTP goes through
//! `decodebin`; decoded video leaves on the `src` ghost pad. On PAUSED→READY the session is
//! DELETEd on the server and webrtcbin removed, so the next PAUSED is a new session. Failures become
//! element errors with the reason; wrap the element in `rturisrcbin uri=whep://...` to have
//! it rebuilt with backoff instead.

use super::whep;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_webrtc::{WebRTCICEConnectionState as Ice, WebRTCICEGatheringState as Gathering};
use rtmeta::mask::{mask_in, mask_uri};
use std::sync::Condvar;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtwhepsrc",
        gst::DebugColorFlags::empty(),
        Some("WHEP client source"),
    )
});

/// Codecs offered, in order of preference, with the payload types the offer uses.
const CODECS: &[(&str, i32)] = &[("VP8", 96), ("H264", 102), ("VP9", 98)];

#[derive(Clone, Debug)]
struct Settings {
    location: Option<String>,
    auth_token: Option<String>,
    stun_server: Option<String>,
    timeout_ms: u32,
    latency_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: None,
            auth_token: None,
            stun_server: None,
            timeout_ms: 10_000,
            latency_ms: 200,
        }
    }
}

/// A running session: the signalling thread and what it learned.
struct Session {
    webrtc: gst::Element,
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
    resource: Arc<Mutex<Option<String>>>,
}

pub struct RtWhepSrc {
    srcpad: gst::GhostPad,
    settings: Mutex<Settings>,
    session: Mutex<Option<Session>>,
}

#[glib::object_subclass]
impl ObjectSubclass for RtWhepSrc {
    const NAME: &'static str = "GstRtWhepSrc";
    type Type = super::RtWhepSrc;
    type ParentType = gst::Bin;
    type Interfaces = (gst::URIHandler,);

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("src").expect("src template");
        RtWhepSrc {
            srcpad: gst::GhostPad::builder_from_template(&templ)
                .name("src")
                .build(),
            settings: Mutex::new(Settings::default()),
            session: Mutex::new(None),
        }
    }
}

fn missing(factory: &str, package: &str) -> Option<String> {
    gst::ElementFactory::find(factory)
        .is_none()
        .then(|| format!("the GStreamer element '{factory}' is missing: install {package}"))
}

/// The offer's receive-only video transceiver, with every codec we can decode.
fn add_transceiver(webrtc: &gst::Element) {
    let mut caps = gst::Caps::new_empty();
    for (name, pt) in CODECS {
        let dec_present = match *name {
            "VP8" => gst::ElementFactory::find("vp8dec").is_some(),
            "VP9" => gst::ElementFactory::find("vp9dec").is_some(),
            _ => gst::ElementFactory::find("avdec_h264").is_some(),
        };
        if !dec_present {
            continue;
        }
        let mut s = gst::Structure::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", *name)
            .field("payload", *pt)
            .field("clock-rate", 90_000i32);
        if *name == "H264" {
            s = s
                .field("packetization-mode", "1")
                .field("profile-level-id", "42e01f");
        }
        caps.get_mut()
            .expect("new caps")
            .append_structure(s.build());
    }
    webrtc.emit_by_name::<glib::Object>(
        "add-transceiver",
        &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
    );
}

/// Wakes the signalling thread when webrtcbin's ICE states change and when the element
/// stops.
#[derive(Default)]
struct Signal {
    stopped: AtomicBool,
    /// Counts the changes, so that one between a check and the wait is not missed.
    changes: AtomicU64,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Signal {
    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        let _guard = self.lock.lock().unwrap();
        self.wake.notify_all();
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.changed();
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Waits until `done` (checked at each change; webrtcbin is never called under the
    /// lock), the deadline or a stop.
    fn wait_until(
        &self,
        deadline: Instant,
        mut done: impl FnMut() -> Result<bool, String>,
    ) -> Result<(), Ended> {
        loop {
            let seen = self.changes.load(Ordering::SeqCst);
            if self.stopped() {
                return Err(Ended::Stopped);
            }
            if done()? {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Ended::TimedOut);
            }
            let guard = self.lock.lock().unwrap();
            if self.changes.load(Ordering::SeqCst) == seen {
                let _ = self.wake.wait_timeout(guard, deadline - now).unwrap();
            }
        }
    }
}

/// Why a negotiation did not connect.
#[derive(Debug)]
enum Ended {
    /// The element stopped: nothing to report.
    Stopped,
    TimedOut,
    /// The server refused or could not be reached.
    Whep(whep::WhepError),
    /// webrtcbin or ICE did not get there.
    Failed(String),
}

impl From<whep::WhepError> for Ended {
    fn from(e: whep::WhepError) -> Self {
        Ended::Whep(e)
    }
}

impl From<String> for Ended {
    fn from(e: String) -> Self {
        Ended::Failed(e)
    }
}

impl From<&str> for Ended {
    fn from(e: &str) -> Self {
        Ended::Failed(e.to_string())
    }
}

/// A timeout named for what did not happen in time.
fn timed_out(e: Ended, what: &str) -> Ended {
    match e {
        Ended::TimedOut => Ended::Failed(what.to_string()),
        e => e,
    }
}

/// The whole negotiation; returns only when ICE is connected (or on stop).
fn negotiate(
    webrtc: &gst::Element,
    s: &Settings,
    endpoint: &str,
    signal: &Signal,
    resource: &Mutex<Option<String>>,
) -> Result<(), Ended> {
    let timeout = Duration::from_millis(s.timeout_ms as u64);
    let deadline = Instant::now() + timeout;
    let promise = gst::Promise::new();
    webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
    let offer = match promise.wait() {
        gst::PromiseResult::Replied => promise
            .get_reply()
            .and_then(|r| r.get::<gst_webrtc::WebRTCSessionDescription>("offer").ok())
            .ok_or("webrtcbin could not create an offer (no decodable codec?)")?,
        other => return Err(format!("webrtcbin did not create an offer: {other:?}").into()),
    };
    let offer = as_dtls_client(&offer)?;
    webrtc.emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
    signal
        .wait_until(deadline, || {
            Ok(webrtc.property::<Gathering>("ice-gathering-state") == Gathering::Complete)
        })
        .map_err(|e| timed_out(e, "ICE candidate gathering did not finish"))?;
    let local = webrtc
        .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
        .ok_or("webrtcbin lost its local description")?;
    let sdp = local.sdp().as_text().map_err(|e| e.to_string())?;
    gst::debug!(CAT, "offer:\n{sdp}");

    let session = whep::post_offer(endpoint, s.auth_token.as_deref(), &sdp, timeout)?;
    *resource.lock().unwrap() = session.resource.clone();
    gst::debug!(CAT, "answer:\n{}", session.answer);
    let answer = gst_sdp::SDPMessage::parse_buffer(session.answer.as_bytes())
        .map_err(|_| format!("the answer from {} is not valid SDP", mask_uri(endpoint)))?;
    let answer =
        gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, answer);
    let promise = gst::Promise::new();
    webrtc.emit_by_name::<()>("set-remote-description", &[&answer, &promise]);
    promise.wait();
    if let Some(Ok(Some(err))) = promise
        .get_reply()
        .map(|r| r.get_optional::<glib::Error>("error"))
    {
        return Err(format!("the server's answer was rejected: {err}").into());
    }

    signal
        .wait_until(deadline, || {
            match webrtc.property::<Ice>("ice-connection-state") {
                Ice::Connected | Ice::Completed => Ok(true),
                Ice::Failed => Err("ICE failed: no network path to the server's candidates (behind NAT? set stun-server)".into()),
                _ => Ok(false),
            }
        })
        .map_err(|e| {
            timed_out(
                e,
                "ICE did not connect within timeout (firewall or NAT between client and server? set stun-server)",
            )
        })
}

/// Offers `a=setup:active` instead of `actpass`, so that webrtcbin is the DTLS client.
/// As a DTLS server, GStreamer 1.22 presents an RSA certificate, and clients that offer only
/// ECDSA suites (aiortc, so every aiortc-based WHEP server) fail with "no shared cipher". As a
/// client it accepts either kind of server certificate.
fn as_dtls_client(
    offer: &gst_webrtc::WebRTCSessionDescription,
) -> Result<gst_webrtc::WebRTCSessionDescription, String> {
    let text = offer.sdp().as_text().map_err(|e| e.to_string())?;
    let sdp = gst_sdp::SDPMessage::parse_buffer(
        text.replace("a=setup:actpass", "a=setup:active").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    Ok(gst_webrtc::WebRTCSessionDescription::new(
        gst_webrtc::WebRTCSDPType::Offer,
        sdp,
    ))
}

impl RtWhepSrc {
    /// What a session needs, checked at NULL→READY so that a wrong setting fails early.
    fn check(&self) -> Result<(), gst::ErrorMessage> {
        if self
            .settings
            .lock()
            .unwrap()
            .location
            .as_deref()
            .unwrap_or("")
            .is_empty()
        {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("No WHEP endpoint: set location (e.g. http://host:8889/whep)")
            ));
        }
        if let Some(why) = missing("webrtcbin", "gstreamer1.0-plugins-bad")
            .or_else(|| missing("nicesrc", "gstreamer1.0-nice"))
            .or_else(|| missing("decodebin", "gstreamer1.0-plugins-base"))
        {
            return Err(gst::error_msg!(gst::CoreError::MissingPlugin, ("{}", why)));
        }
        Ok(())
    }

    /// Builds a new webrtcbin for one session (READY→PAUSED, before the children change
    /// state); `start` then signals. Each PAUSED gets a new session: a webrtcbin that has
    /// negotiated once is not offered again.
    fn prepare(&self) -> Result<(), gst::ErrorMessage> {
        self.check()?;
        let s = self.settings.lock().unwrap().clone();
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .name("webrtc")
            .property_from_str("bundle-policy", "max-bundle")
            .property("latency", s.latency_ms)
            .build()
            .map_err(|e| gst::error_msg!(gst::CoreError::MissingPlugin, ("{}", e)))?;
        if let Some(stun) = &s.stun_server {
            webrtc.set_property("stun-server", stun);
        }
        add_transceiver(&webrtc);
        let signal = Arc::new(Signal::default());
        for state in ["ice-gathering-state", "ice-connection-state"] {
            let signal = signal.clone();
            webrtc.connect_notify(Some(state), move |_, _| signal.changed());
        }
        let weak = self.obj().downgrade();
        webrtc.connect_pad_added(move |_, pad| {
            if let Some(obj) = weak.upgrade() {
                obj.imp().on_rtp_pad(pad);
            }
        });
        self.obj()
            .add(&webrtc)
            .map_err(|e| gst::error_msg!(gst::CoreError::Failed, ("{}", e)))?;
        *self.session.lock().unwrap() = Some(Session {
            webrtc,
            signal,
            thread: None,
            resource: Arc::new(Mutex::new(None)),
        });
        Ok(())
    }

    /// RTP from webrtcbin: decode it and expose the video on the ghost pad.
    fn on_rtp_pad(&self, pad: &gst::Pad) {
        if pad.direction() != gst::PadDirection::Src {
            return;
        }
        let Ok(decodebin) = gst::ElementFactory::make("decodebin").build() else {
            return;
        };
        let weak = self.obj().downgrade();
        decodebin.connect_pad_added(move |_, dpad| {
            let Some(obj) = weak.upgrade() else { return };
            let ghost = &obj.imp().srcpad;
            let is_video = dpad
                .current_caps()
                .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/x-raw")))
                .unwrap_or(false);
            if is_video && ghost.target().is_none() {
                gst::info!(CAT, obj = obj, "decoded video: {:?}", dpad.current_caps());
                let _ = ghost.set_target(Some(dpad));
            }
        });
        let obj = self.obj();
        if obj.add(&decodebin).is_err() {
            return;
        }
        let _ = decodebin.sync_state_with_parent();
        if let Err(e) = pad.link(&decodebin.static_pad("sink").expect("decodebin sink")) {
            gst::warning!(CAT, imp = self, "could not link {}: {e:?}", pad.name());
        }
    }

    /// Starts the signalling thread (READY→PAUSED).
    fn start(&self) {
        let s = self.settings.lock().unwrap().clone();
        let mut guard = self.session.lock().unwrap();
        let Some(session) = guard.as_mut() else {
            return;
        };
        let location = s.location.clone().unwrap_or_default();
        let endpoint = whep::http_url(&location);
        let (webrtc, signal, resource) = (
            session.webrtc.clone(),
            session.signal.clone(),
            session.resource.clone(),
        );
        let weak = self.obj().downgrade();
        session.thread = Some(std::thread::spawn(move || {
            let result = negotiate(&webrtc, &s, &endpoint, &signal, &resource);
            let Some(obj) = weak.upgrade() else { return };
            match result {
                Ok(()) if signal.stopped() => {}
                Ok(()) => {
                    let res = resource.lock().unwrap().clone();
                    gst::info!(CAT, obj = obj, "connected to {}", mask_uri(&endpoint));
                    let mut st = gst::Structure::builder("rtwhepsrc-connected")
                        .field("location", mask_uri(&location));
                    if let Some(r) = res {
                        st = st.field("resource", mask_uri(&r));
                    }
                    let _ = obj
                        .post_message(gst::message::Element::builder(st.build()).src(&obj).build());
                }
                Err(Ended::Stopped) => {}
                Err(e) => {
                    let (kind, e) = match e {
                        Ended::Whep(e) => (e.resource_error(), e.to_string()),
                        Ended::Failed(e) => (gst::ResourceError::OpenRead, e),
                        _ => (
                            gst::ResourceError::OpenRead,
                            "the session timed out".to_string(),
                        ),
                    };
                    gst::element_error!(
                        obj,
                        kind,
                        ("WHEP session failed: {}", mask_in(&e, &location)),
                        ["endpoint {}", mask_uri(&endpoint)]
                    );
                }
            }
        }));
    }

    /// Ends the session: stops the signalling thread and DELETEs the resource.
    fn stop(&self) {
        let Some(mut session) = self.session.lock().unwrap().take() else {
            return;
        };
        session.signal.stop();
        if let Some(t) = session.thread.take() {
            let _ = t.join();
        }
        let token = self.settings.lock().unwrap().auth_token.clone();
        if let Some(res) = session.resource.lock().unwrap().take() {
            // Short: a dead server must not hold up the state change.
            match whep::delete(&res, token.as_deref(), Duration::from_secs(2)) {
                Ok(()) => gst::info!(CAT, imp = self, "session {} ended", mask_uri(&res)),
                Err(e) => gst::warning!(
                    CAT,
                    imp = self,
                    "could not end session {}: {e}",
                    mask_uri(&res)
                ),
            }
        }
    }

    /// Removes webrtcbin and the decoders (PAUSED→READY, and READY→NULL after a failed
    /// start), so the next start is a new session.
    fn teardown(&self) {
        let _ = self.srcpad.set_target(None::<&gst::Pad>);
        let obj = self.obj();
        for child in obj.children() {
            let _ = child.set_state(gst::State::Null);
            let _ = obj.remove(&child);
        }
        self.session.lock().unwrap().take();
    }
}

impl ObjectImpl for RtWhepSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("WHEP endpoint")
                    .blurb(
                        "URL of the WHEP endpoint the offer is POSTed to \
                         (http://, https://, or whep:// / wheps:// for the same)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("auth-token")
                    .nick("Bearer token")
                    .blurb(
                        "Sent as 'Authorization: Bearer <token>' with the offer and the \
                         DELETE; never logged (write-only)",
                    )
                    .write_only()
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("stun-server")
                    .nick("STUN server")
                    .blurb(
                        "stun://host:port, for a server behind NAT; not needed on a LAN \
                         (default: none)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("timeout")
                    .nick("Timeout (ms)")
                    .blurb(
                        "Most time from start until ICE connects: gathering, the HTTP \
                         exchange and connectivity checks; then an error is posted",
                    )
                    .minimum(100)
                    .maximum(600_000)
                    .default_value(Settings::default().timeout_ms)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("latency")
                    .nick("Jitter buffer (ms)")
                    .blurb(
                        "Jitter buffer of the received RTP: more rides out network \
                         jitter and loss, less cuts delay",
                    )
                    .maximum(10_000)
                    .default_value(Settings::default().latency_ms)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "location" => s.location = value.get().expect("type checked"),
            "auth-token" => s.auth_token = value.get().expect("type checked"),
            "stun-server" => s.stun_server = value.get().expect("type checked"),
            "timeout" => s.timeout_ms = value.get().expect("type checked"),
            "latency" => s.latency_ms = value.get().expect("type checked"),
            _ => unreachable!("GObject checks property names"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "location" => s.location.as_deref().map(mask_uri).to_value(),
            "stun-server" => s.stun_server.to_value(),
            "timeout" => s.timeout_ms.to_value(),
            "latency" => s.latency_ms.to_value(),
            _ => unreachable!("GObject checks property names"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.srcpad).expect("adding the src pad");
        obj.set_suppressed_flags(gst::ElementFlags::SOURCE | gst::ElementFlags::SINK);
        obj.set_element_flags(gst::ElementFlags::SOURCE);
    }
}

impl GstObjectImpl for RtWhepSrc {}

impl ElementImpl for RtWhepSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "WHEP source",
                "Source/Network/WebRTC",
                "Receives video from a WHEP server (WebRTC-HTTP Egress Protocol) and decodes it",
                "rt-analytics developers",
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
                .expect("src template"),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        let prepared = match transition {
            gst::StateChange::NullToReady => self.check(),
            gst::StateChange::ReadyToPaused => self.prepare(),
            _ => Ok(()),
        };
        if let Err(err) = prepared {
            self.post_error_message(err);
            return Err(gst::StateChangeError);
        }
        if transition == gst::StateChange::PausedToReady {
            self.stop();
        }
        let mut ret = self.parent_change_state(transition)?;
        match transition {
            gst::StateChange::ReadyToPaused => {
                self.start();
                ret = gst::StateChangeSuccess::NoPreroll;
            }
            gst::StateChange::PlayingToPaused => ret = gst::StateChangeSuccess::NoPreroll,
            gst::StateChange::PausedToReady | gst::StateChange::ReadyToNull => self.teardown(),
            _ => {}
        }
        Ok(ret)
    }
}

impl BinImpl for RtWhepSrc {}

impl URIHandlerImpl for RtWhepSrc {
    const URI_TYPE: gst::URIType = gst::URIType::Src;

    fn protocols() -> &'static [&'static str] {
        &["whep", "wheps"]
    }

    fn uri(&self) -> Option<String> {
        self.settings
            .lock()
            .unwrap()
            .location
            .as_deref()
            .map(mask_uri)
    }

    fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
        self.settings.lock().unwrap().location = Some(uri.to_string());
        Ok(())
    }
}
