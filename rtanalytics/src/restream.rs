//! RTSP re-streaming: each source's overlaid, H.264-encoded video at rtsp://LISTEN/ID, served
//! by gst-rtsp-server from the service's own encoder, so a source is encoded once however
//! many clients watch it.
//!
//! Each mount is a shared media factory `appsrc ! h264parse ! rtph264pay`; when a client
//! starts the media, its appsrc joins the source's [`Feed`], which the service's appsink
//! callback pushes every encoded frame to (timestamps cleared: appsrc stamps them with the
//! media's clock). The server runs on a GLib main loop of its own thread,
//! `rtanalytics-rtsp`.

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The encoded frames of one source, fanned out to the RTSP media playing it.
#[derive(Default)]
pub struct Feed {
    /// The appsrc of each prepared media (one while the media is shared); replaced whole
    /// when a client comes or goes, so a frame takes the list with one `Arc` clone.
    clients: Mutex<Arc<Vec<gst_app::AppSrc>>>,
}

impl Feed {
    /// Hands one encoded frame to every client; frames without a client go nowhere.
    pub fn push(&self, sample: &gst::Sample) {
        let clients = self.clients.lock().unwrap().clone();
        if clients.is_empty() {
            return;
        }
        let (Some(buffer), caps) = (sample.buffer_owned(), sample.caps()) else {
            return;
        };
        for src in clients.iter() {
            if let Some(caps) = caps
                && src.caps().as_deref() != Some(caps)
            {
                src.set_caps(Some(&caps.to_owned()));
            }
            let mut buf = buffer.clone();
            {
                // Shares the memory; only the header is copied.
                let b = buf.make_mut();
                b.set_pts(gst::ClockTime::NONE);
                b.set_dts(gst::ClockTime::NONE);
            }
            // A client going away mid-push is not an error of the source.
            let _ = src.push_buffer(buf);
        }
    }

    fn add(&self, src: gst_app::AppSrc) {
        let mut clients = self.clients.lock().unwrap();
        let mut list = Vec::clone(&clients);
        list.push(src);
        *clients = Arc::new(list);
    }

    fn remove(&self, src: &gst_app::AppSrc) {
        let mut clients = self.clients.lock().unwrap();
        *clients = Arc::new(clients.iter().filter(|s| *s != src).cloned().collect());
    }

    /// Ends every client's stream (the source was removed).
    fn end(&self) {
        let clients = std::mem::take(&mut *self.clients.lock().unwrap());
        for src in clients.iter() {
            let _ = src.end_of_stream();
        }
    }
}

/// The role a signed-in viewer gets, and every mount allows.
const VIEWER_ROLE: &str = "viewer";

pub struct Restream {
    server: gst_rtsp_server::RTSPServer,
    /// Whether viewers must sign in.
    auth: bool,
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
    feeds: Mutex<Vec<(String, Arc<Feed>)>>,
}

impl Restream {
    /// Starts the server on `listen` (ADDRESS:PORT), for anyone or only for `viewer` (user,
    /// password); an error says why it cannot listen.
    pub fn start(listen: &str, viewer: Option<(&str, &str)>) -> Result<Self, String> {
        let addr: std::net::SocketAddr = listen
            .parse()
            .map_err(|_| format!("restream.listen: '{listen}' is not ADDRESS:PORT"))?;
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address(&addr.ip().to_string());
        server.set_service(&addr.port().to_string());
        if let Some((user, password)) = viewer {
            let auth = gst_rtsp_server::RTSPAuth::new();
            let token = gst_rtsp_server::RTSPToken::builder()
                .field(gst_rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, VIEWER_ROLE)
                .build();
            auth.add_digest(user, password, &token);
            auth.set_supported_methods(gst_rtsp_server::gst_rtsp::RTSPAuthMethod::Digest);
            auth.set_realm(Some("rtanalytics"));
            server.set_auth(Some(&auth));
        }
        let context = glib::MainContext::new();
        server
            .attach(Some(&context))
            .map_err(|e| format!("restream: cannot listen on {listen}: {e}"))?;
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let run = main_loop.clone();
        let thread = std::thread::Builder::new()
            .name("rtanalytics-rtsp".into())
            .spawn(move || {
                let ctx = run.context();
                let _ = ctx.with_thread_default(|| run.run());
            })
            .map_err(|e| e.to_string())?;
        tracing::info!(
            "RTSP re-stream on rtsp://{listen}/ID{}",
            match viewer {
                Some((user, _)) => format!(" for user {user} (Digest authentication)"),
                None => " for anyone who can reach it".into(),
            }
        );
        Ok(Restream {
            server,
            auth: viewer.is_some(),
            main_loop,
            thread: Some(thread),
            feeds: Mutex::new(Vec::new()),
        })
    }

    /// Serves `feed` at /ID.
    pub fn mount(&self, id: &str, feed: Arc<Feed>) {
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        // Bounded like the HLS writer's: a viewer that pauses (RTSP PAUSE stops the shared
        // media) must not make the source's frames pile up; the oldest go first.
        factory.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=true max-bytes=4000000 \
             leaky-type=downstream ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )",
        );
        factory.set_shared(true);
        if self.auth {
            factory.add_role_from_structure(
                &gst::Structure::builder(VIEWER_ROLE)
                    .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                    .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                    .build(),
            );
        }
        let f = feed.clone();
        factory.connect_media_configure(move |_, media| {
            let Some(src) = media
                .element()
                .downcast_ref::<gst::Bin>()
                .and_then(|b| b.by_name_recurse_up("src"))
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            else {
                return;
            };
            f.add(src.clone());
            let f = f.clone();
            media.connect_unprepared(move |_| f.remove(&src));
        });
        if let Some(mounts) = self.server.mount_points() {
            mounts.add_factory(&format!("/{id}"), factory);
        }
        self.feeds.lock().unwrap().push((id.to_string(), feed));
    }

    /// Stops serving /ID; its clients get the end of the stream.
    pub fn unmount(&self, id: &str) {
        if let Some(mounts) = self.server.mount_points() {
            mounts.remove_factory(&format!("/{id}"));
        }
        let gone: Vec<Arc<Feed>> = {
            let mut feeds = self.feeds.lock().unwrap();
            let (gone, kept) = std::mem::take(&mut *feeds)
                .into_iter()
                .partition(|(f, _)| f == id);
            *feeds = kept;
            gone.into_iter().map(|(_, f)| f).collect()
        };
        for f in gone {
            f.end();
        }
    }
}

impl Drop for Restream {
    fn drop(&mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
