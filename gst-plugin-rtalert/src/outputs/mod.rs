//! Where alerts go besides the bus. Every output counts what it delivered and what it had
//! to drop, and reports failures through a callback that posts on the bus. Every output
//! (standard output too: a reader may stop reading) works on its own thread behind a bounded
//! queue, so the streaming thread never waits for them; a stop waits for a delivery under
//! way at most `LEFT_BEHIND_AFTER` past its grace.

mod jsonl;
mod mqtt;
mod nats;
mod plan;
mod webhook;

pub use jsonl::jsonl_file;
pub use mqtt::{Mqtt, parse_url as parse_mqtt_url};
pub use nats::{NatsSettings, nats, parse_nats_url};
pub use plan::{JsonlProps, OutputProps, Plan, QueueProps, WebhookProps, plan};
pub use webhook::{WebhookSettings, webhook};

/// Why an output cannot be set up. URLs in it are masked (`rtmeta::mask`).
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A URL that does not say what the output needs (`kind`: MQTT, NATS, webhook).
    #[error("{kind} URL \"{url}\": {problem}")]
    BadUrl {
        kind: &'static str,
        url: String,
        problem: String,
    },
    /// `mqtts://` without a usable TLS setup (no CA certificates).
    #[error("mqtts: {0}")]
    Tls(String),
    /// The output's connection or I/O thread cannot be set up.
    #[error("{output}: {why}")]
    Connect { output: String, why: String },
}

impl OutputError {
    /// A URL's problem, shown with the URL masked.
    fn bad_url(kind: &'static str, url: &str, problem: impl Into<String>) -> Self {
        OutputError::BadUrl {
            kind,
            url: match kind {
                "webhook" => rtmeta::mask::mask_webhook(url),
                _ => rtmeta::mask::mask_uri(url),
            },
            problem: problem.into(),
        }
    }

    /// Whether the settings are wrong (rather than the machine or the network).
    pub fn is_settings(&self) -> bool {
        matches!(self, OutputError::BadUrl { .. })
    }
}

/// Why an alert was not delivered (reported on the bus; server texts masked).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A file (or standard output) could not be opened, rotated or written.
    #[error("cannot {action} {what}: {source}")]
    Io {
        action: &'static str,
        what: String,
        source: std::io::Error,
    },
    /// The server answered with an error status.
    #[error("HTTP {0}")]
    Status(u16),
    /// The server could not be reached, or refused the message.
    #[error("{0}")]
    Network(String),
    /// Retries ran out.
    #[error("{last} (after {attempts} attempts)")]
    GaveUp {
        last: Box<DeliveryError>,
        attempts: u32,
    },
    /// The element stopped while the server was away.
    #[error("stopped while the server was away: {0}")]
    Stopped(Box<DeliveryError>),
}

impl DeliveryError {
    pub fn io(action: &'static str, what: impl std::fmt::Display, source: std::io::Error) -> Self {
        DeliveryError::Io {
            action,
            what: what.to_string(),
            source,
        }
    }
}

/// Webhook settings from element properties: first retry after 250 ms, doubling to 30 s.
pub fn webhook_settings(url: &str, timeout_ms: u32, retries: u32, queue: u32) -> WebhookSettings {
    WebhookSettings {
        url: url.to_string(),
        timeout: Duration::from_millis(timeout_ms as u64),
        retries,
        queue: queue as usize,
        backoff: Duration::from_millis(250),
        max_backoff: Duration::from_secs(30),
    }
}

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How bad a reported event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Alerts may be lost or delayed (a warning on the bus).
    Problem,
    /// Things work again (an info message on the bus).
    Recovered,
}

/// Reports delivery problems and recoveries (posted on the bus).
pub type Report = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// What became of the alerts an output was given: every one is delivered, dropped or still
/// queued (taken by a worker and not yet settled counts as queued).
#[derive(Debug, Default)]
pub struct Stats {
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    pub queued: AtomicU64,
}

impl Stats {
    /// An alert was taken in (counted before it can be settled).
    fn queue(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// A queued alert was delivered or given up.
    fn settle(&self, delivered: bool) {
        let counter = if delivered {
            &self.delivered
        } else {
            &self.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // Saturating: a broker may acknowledge a message twice after a reconnect.
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(1))
            });
    }

    /// Gives up what is still queued (at shutdown).
    fn drop_queued(&self) {
        let left = self.queued.swap(0, Ordering::Relaxed);
        self.dropped.fetch_add(left, Ordering::Relaxed);
    }

    /// (delivered, dropped, queued).
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.delivered.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.queued.load(Ordering::Relaxed),
        )
    }
}

/// One alert ready to send.
#[derive(Clone, Debug)]
pub struct Message {
    pub id: Arc<str>,
    pub json: Arc<str>,
    /// The source it is about (outputs that route per source use it, e.g. NATS subjects).
    pub source: Arc<str>,
}

/// Names and reports show URLs masked (`rtmeta::mask`): they reach the bus, `stats` and logs.
/// Sync because streaming hands alerts to the outputs without holding the element's lock.
pub trait Output: Send + Sync {
    fn name(&self) -> &str;
    fn send(&self, msg: &Message);
    fn stats(&self) -> &Stats;
    /// Delivers what is queued, giving up after `grace`; what is left counts as dropped.
    fn shutdown(&mut self, grace: Duration);
}

/// Lets a worker know the element is stopping and until when it may still deliver.
#[derive(Default)]
pub struct Shutdown {
    deadline: Mutex<Option<Instant>>,
}

impl Shutdown {
    pub fn begin(&self, grace: Duration) {
        *self.deadline.lock().unwrap() = Some(Instant::now() + grace);
    }
    pub fn started(&self) -> bool {
        self.deadline.lock().unwrap().is_some()
    }
    pub fn expired(&self) -> bool {
        self.deadline
            .lock()
            .unwrap()
            .is_some_and(|d| Instant::now() >= d)
    }
}

/// How long past its grace a stopping worker's delivery may take before the worker is left
/// behind (longer than any output's own timeout, 5 s by default).
const LEFT_BEHIND_AFTER: Duration = Duration::from_secs(10);

/// A bounded queue in front of a delivery function running on its own thread.
pub struct Worker {
    name: String,
    tx: Option<SyncSender<Message>>,
    thread: Option<JoinHandle<()>>,
    shutdown: Arc<Shutdown>,
    stats: Arc<Stats>,
    report: Report,
    /// Whether the last send found the queue full (reported once per episode).
    full: AtomicBool,
}

impl Worker {
    pub fn spawn(
        name: String,
        capacity: usize,
        report: Report,
        mut deliver: impl FnMut(&Message, &Shutdown) -> Result<(), DeliveryError> + Send + 'static,
    ) -> Self {
        let (tx, rx): (SyncSender<Message>, Receiver<Message>) = sync_channel(capacity.max(1));
        let stats = Arc::new(Stats::default());
        let shutdown = Arc::new(Shutdown::default());
        let thread = {
            let (stats, shutdown, report, name) = (
                stats.clone(),
                shutdown.clone(),
                report.clone(),
                name.clone(),
            );
            std::thread::Builder::new()
                .name(format!(
                    "rtalert-{}",
                    name.split(':').next().unwrap_or("out")
                ))
                .spawn(move || {
                    // Failures in a row: the first is reported, the rest only counted until
                    // one is delivered again (a closed stdout or a dead server would
                    // otherwise log a line per alert).
                    let mut failing = 0u64;
                    for msg in rx {
                        if shutdown.expired() {
                            stats.settle(false);
                            continue;
                        }
                        match deliver(&msg, &shutdown) {
                            Ok(()) => {
                                if failing > 1 {
                                    report(
                                        Level::Recovered,
                                        &format!(
                                            "{name}: delivering again ({failing} not delivered)"
                                        ),
                                    );
                                }
                                failing = 0;
                                stats.settle(true)
                            }
                            Err(e) => {
                                failing += 1;
                                if failing == 1 {
                                    report(
                                        Level::Problem,
                                        &format!("{name}: {} not delivered: {e}", msg.id),
                                    );
                                }
                                stats.settle(false)
                            }
                        };
                    }
                })
                .expect("spawning an output thread")
        };
        Worker {
            name,
            tx: Some(tx),
            thread: Some(thread),
            shutdown,
            stats,
            report,
            full: AtomicBool::new(false),
        }
    }
}

impl Output for Worker {
    fn name(&self) -> &str {
        &self.name
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn send(&self, msg: &Message) {
        // Counted first, so that the worker never settles an alert not yet counted.
        self.stats.queue();
        let result = match &self.tx {
            Some(tx) => tx.try_send(msg.clone()),
            None => Err(TrySendError::Disconnected(msg.clone())),
        };
        match result {
            Ok(()) => self.full.store(false, Ordering::Relaxed),
            Err(_) => {
                self.stats.settle(false);
                if !self.full.swap(true, Ordering::Relaxed) {
                    (self.report)(
                        Level::Problem,
                        &format!(
                            "{}: queue full, dropping alerts (first: {})",
                            self.name, msg.id
                        ),
                    );
                }
            }
        }
    }

    fn shutdown(&mut self, grace: Duration) {
        self.shutdown.begin(grace);
        self.tx = None;
        let Some(t) = self.thread.take() else { return };
        // A delivery already under way ends by its own timeout, but a write to a reader
        // that stopped reading never does: such a thread is left behind, not waited for.
        let deadline = Instant::now() + grace + LEFT_BEHIND_AFTER;
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            (self.report)(
                Level::Problem,
                &format!(
                    "{}: still delivering {} s after the stop; left behind",
                    self.name,
                    (grace + LEFT_BEHIND_AFTER).as_secs()
                ),
            );
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown(Duration::ZERO);
    }
}

/// Writes each alert as a line on standard output, from its own thread like every output: a
/// reader that stops reading (a full pipe, a paused terminal) costs alerts once `capacity`
/// wait, never the stream.
pub fn stdout(name: String, capacity: usize, report: Report) -> Worker {
    Worker::spawn(name, capacity, report, |m, _| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", m.json)
            .and_then(|_| out.flush())
            .map_err(|e| DeliveryError::io("write", "standard output", e))
    })
}
