//! The scheduler: owns every item of every stream from submission until the stream's output
//! takes it back, in order.
//!
//! Streams submit their frames and serialized events in order. Frames with model work queue
//! for the inference workers, one per model request, which run them as soon as they are
//! free: several frames at once, of one stream or of many, and as one `[N, ...]` batch for
//! models with a dynamic batch. Each stream's output takes its items back strictly in
//! submission order however the requests finish. Every change wakes whoever waits for it:
//! a worker for work, an output for the item at its head, a submitter for room.
//!
//! A new model (`replace`) starts a new generation: its workers start at once and take the
//! frames prepared for it (`begin` says which spec a frame is prepared for), while the old
//! workers finish the frames prepared for theirs and then end, dropping the old model.
//! No frame is lost or run twice, whatever the input sizes of the two models.
//!
//! No GStreamer in here: the element turns pads and events into these calls, and the workers
//! only see the `Runner` they were given.

use crate::stats::Stats;
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Runs the model for one worker (one model request).
pub trait Runner: Send + 'static {
    type Input: Send + 'static;
    type Output: Send + 'static;
    /// What inputs are prepared from for this model (its input spec and what goes with it).
    type Spec: Send + Sync + 'static;
    /// Most inputs one run takes: 1 for models with a fixed batch of 1.
    fn max_batch(&self) -> usize;
    /// Runs `inputs` as one batch: one output each, in order.
    fn run(&mut self, inputs: &[Self::Input]) -> Vec<Self::Output>;
    /// The output of an input whose run failed without one (a panic, a short result).
    fn failure(message: &str) -> Self::Output;
    /// Detections in an output, for the stats.
    fn detections(output: &Self::Output) -> usize;
    /// How long one run is expected to take, before any has run (zero: unknown).
    fn expected_run(&self) -> Duration {
        Duration::ZERO
    }
}

/// Settings that may change while running.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most frames in one batch (models with a dynamic batch only).
    pub batch_size: usize,
    /// Longest a frame waits for its batch to fill.
    pub batch_timeout: Duration,
    /// A frame that would wait longer than this (with its own inference) is not run; it
    /// leaves with the last detections. `None`: every frame runs.
    pub max_latency: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            batch_size: 4,
            batch_timeout: Duration::from_millis(40),
            max_latency: None,
        }
    }
}

pub type StreamId = u64;

/// The most requests `requests=0` (auto) chooses.
const AUTO_MAX_REQUESTS: usize = 8;

/// How many requests run at once, and the threads of each, for `cores` cores (0 = auto):
/// by default one single-threaded request per core (on 2 cores, 2 requests of 1 thread run
/// yolox_nano about 1.5x faster than 1 request of 2 threads), at most `AUTO_MAX_REQUESTS`.
pub fn plan(requests: u32, threads: u32, cores: usize) -> (usize, u32) {
    let cores = cores.max(1);
    let requests = match (requests, threads) {
        (0, 0) => cores.min(AUTO_MAX_REQUESTS),
        (0, t) => (cores / t as usize).max(1),
        (r, _) => r as usize,
    };
    let threads = match threads {
        0 => (cores / requests).max(1) as u32,
        t => t,
    };
    (requests, threads)
}

/// What a submitted item asks for.
pub enum Work<I> {
    /// Run the model on this input.
    Infer(I),
    /// A frame that `interval` skips: ready once all before it are.
    Stale,
    /// Not a frame (an event): ready once all before it are.
    Pass,
}

/// What became of an item.
#[derive(Debug)]
pub enum Outcome<O> {
    Ran(O),
    /// A frame that `interval` skips.
    Stale,
    /// Not a frame.
    Passed,
    /// Not run: it would have waited longer than `max-latency`.
    Skipped,
}

/// What `next` returns.
pub enum Next<P, O> {
    Item(P, Outcome<O>),
    /// The stream is flushing, gone, or the scheduler stopped: nothing comes until
    /// `flush_stop` or `start`.
    Flushing,
}

/// Why `replace` did not swap the model in.
#[derive(Debug)]
pub enum NotReplaced {
    /// The run it was loaded for has ended.
    Stopped,
    /// No worker thread could be started for it.
    NoThread(std::io::Error),
}

/// Why `submit` refused an item.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Flushing,
    Stopped,
}

enum State<O> {
    Queued,
    Running,
    Done(O),
    Stale,
    Passed,
    Skipped,
}

struct Entry<P, O> {
    seq: u64,
    payload: P,
    arrival: Instant,
    state: State<O>,
}

impl<P, O> Entry<P, O> {
    fn ready(&self) -> bool {
        !matches!(self.state, State::Queued | State::Running)
    }
}

struct StreamQueue<P, O> {
    entries: VecDeque<Entry<P, O>>,
    next_seq: u64,
    /// Frames with model work not yet taken by the output (queued, running or done).
    in_flight: usize,
    /// Of those, the ones still queued.
    queued: usize,
    flushing: bool,
    /// Playing (not ended): a batch waits for it.
    active: bool,
    /// Its next frame goes to the model (not one that `interval` skips).
    due: bool,
    /// The generation its streaming thread is preparing a frame for (`begin` to `submit`):
    /// that generation's workers wait for it.
    preparing: Option<u64>,
    /// Wakes its output (head ready) and its submitter (room).
    wake: Arc<Condvar>,
}

struct Job<I> {
    stream: StreamId,
    seq: u64,
    input: I,
    /// When the frame reached rtinfer: `max-latency` counts from here.
    arrived: Instant,
    /// When it joined the queue, after any wait for room: queue time and batch deadlines
    /// count from here, so a wait upstream neither shows as queueing nor cuts a batch short.
    enqueued: Instant,
    /// The model generation it was prepared for.
    generation: u64,
}

struct Inner<R: Runner, P> {
    streams: HashMap<StreamId, StreamQueue<P, R::Output>>,
    jobs: VecDeque<Job<R::Input>>,
    limits: Limits,
    /// Frames with model work a stream may have in flight before `submit` waits.
    max_pending: usize,
    running: bool,
    /// Counts `start`s, so that a model loaded for an earlier run is not swapped in.
    run: u64,
    /// The current model generation and its spec (`None` when stopped).
    generation: u64,
    spec: Option<Arc<R::Spec>>,
    next_id: StreamId,
    busy: usize,
    busy_changed: Instant,
    /// Smoothed duration of one run, for `max_latency` and the latency rtinfer reports.
    run_estimate: Duration,
    /// Whether the model takes batches (which may wait `batch_timeout` to fill).
    batching: bool,
    stats: Stats,
}

struct Shared<R: Runner, P> {
    inner: Mutex<Inner<R, P>>,
    /// Wakes the workers.
    work: Condvar,
}

pub struct Scheduler<R: Runner, P> {
    shared: Arc<Shared<R, P>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// Items beyond `max_pending` a stream may hold (events, skipped frames, results the
/// output has not taken) before `submit` waits, so a blocked downstream stops upstream.
const EXTRA_ENTRIES: usize = 16;

impl<R: Runner, P: Send + 'static> Default for Scheduler<R, P> {
    fn default() -> Self {
        Scheduler {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    streams: HashMap::new(),
                    jobs: VecDeque::new(),
                    limits: Limits::default(),
                    max_pending: 2,
                    running: false,
                    run: 0,
                    generation: 0,
                    spec: None,
                    next_id: 0,
                    busy: 0,
                    busy_changed: Instant::now(),
                    run_estimate: Duration::ZERO,
                    batching: false,
                    stats: Stats::default(),
                }),
                work: Condvar::new(),
            }),
            workers: Mutex::new(Vec::new()),
        }
    }
}

impl<R: Runner, P: Send + 'static> Scheduler<R, P> {
    fn lock(&self) -> MutexGuard<'_, Inner<R, P>> {
        self.shared.inner.lock().unwrap()
    }

    /// A new stream: batches wait for it only once `set_active` says it plays.
    pub fn register(&self) -> StreamId {
        let mut g = self.lock();
        let id = g.next_id;
        g.next_id += 1;
        g.streams.insert(
            id,
            StreamQueue {
                entries: VecDeque::new(),
                next_seq: 0,
                in_flight: 0,
                queued: 0,
                flushing: false,
                active: false,
                due: true,
                preparing: None,
                wake: Arc::new(Condvar::new()),
            },
        );
        id
    }

    /// Forgets a stream: its queued frames are withdrawn, its output and submitter released.
    pub fn unregister(&self, id: StreamId) {
        let removed = {
            let mut g = self.lock();
            g.jobs.retain(|j| j.stream != id);
            let removed = g.streams.remove(&id);
            if let Some(s) = &removed {
                s.wake.notify_all();
            }
            self.shared.work.notify_all();
            removed
        };
        drop(removed); // payloads are dropped outside the lock
    }

    /// Starts one worker per runner (each runner is one model request); returns the run's
    /// number, for `replace`.
    pub fn start(
        &self,
        runners: Vec<R>,
        spec: Arc<R::Spec>,
        limits: Limits,
    ) -> std::io::Result<u64> {
        let (run, generation) = {
            let mut g = self.lock();
            g.running = true;
            g.run += 1;
            g.generation += 1;
            g.spec = Some(spec);
            g.limits = limits;
            g.stats = Stats::default();
            g.busy = 0;
            g.busy_changed = Instant::now();
            g.run_estimate = expected_run(&runners);
            g.batching = runners.iter().any(|r| r.max_batch() > 1);
            g.set_requests(runners.len());
            for s in g.streams.values_mut() {
                s.flushing = false;
                s.preparing = None;
            }
            (g.run, g.generation)
        };
        let mut workers = self.workers.lock().unwrap();
        match spawn(&self.shared, runners, generation, &mut workers) {
            Ok(()) => Ok(run),
            Err(e) => {
                drop(workers);
                self.stop();
                Err(e)
            }
        }
    }

    /// Swaps in a new model while running (run `run` of `start`): frames prepared from now
    /// on are for `spec` and run on `runners`; those prepared before still run on the old
    /// model, whose workers then end.
    pub fn replace(
        &self,
        run: u64,
        runners: Vec<R>,
        spec: Arc<R::Spec>,
    ) -> Result<(), NotReplaced> {
        // Held while spawning, so that `stop` joins the new workers too.
        let mut workers = self.workers.lock().unwrap();
        workers.retain(|w| !w.is_finished());
        let mut g = self.lock();
        if !g.running || g.run != run {
            drop(g);
            drop(runners);
            return Err(NotReplaced::Stopped);
        }
        let requests = runners.len();
        let (expected, batching) = (
            expected_run(&runners),
            runners.iter().any(|r| r.max_batch() > 1),
        );
        let before = workers.len();
        // Under the lock, so that no frame is prepared for the new model before it has a
        // worker; the new workers start once it is released.
        let spawned = spawn(&self.shared, runners, g.generation + 1, &mut workers);
        let started = workers.len() - before;
        if let (0, Err(e)) = (started, spawned) {
            // No thread for the new model: the old one keeps serving.
            return Err(NotReplaced::NoThread(e));
        }
        g.generation += 1;
        g.spec = Some(spec);
        g.set_requests(requests.min(started));
        // The new model's runs, from now on; the old one's estimate stands in until known.
        if !expected.is_zero() {
            g.run_estimate = expected;
        }
        g.batching = batching;
        drop(g);
        // Old workers look for their last frames, or end.
        self.shared.work.notify_all();
        Ok(())
    }

    /// The current model's spec while running.
    pub fn spec(&self) -> Option<Arc<R::Spec>> {
        self.lock().spec.clone()
    }

    /// The stream's streaming thread is about to prepare a frame: the spec to prepare it
    /// for. The frame's `submit` must follow.
    pub fn begin(&self, id: StreamId) -> Result<Arc<R::Spec>, Refused> {
        let mut g = self.lock();
        let (generation, spec) = match (&g.spec, g.running) {
            (Some(spec), true) => (g.generation, spec.clone()),
            _ => return Err(Refused::Stopped),
        };
        let s = g.streams.get_mut(&id).ok_or(Refused::Flushing)?;
        if s.flushing {
            return Err(Refused::Flushing);
        }
        s.preparing = Some(generation);
        Ok(spec)
    }

    /// Stops the workers (a run in progress finishes first); everything queued is dropped
    /// and every waiter released. Returns once the workers have ended.
    pub fn stop(&self) {
        let dropped = {
            let mut g = self.lock();
            g.running = false;
            g.spec = None;
            let jobs = std::mem::take(&mut g.jobs);
            let mut entries = Vec::new();
            for s in g.streams.values_mut() {
                entries.extend(s.entries.drain(..));
                s.in_flight = 0;
                s.queued = 0;
                s.wake.notify_all();
            }
            self.shared.work.notify_all();
            (jobs, entries)
        };
        drop(dropped);
        let workers = std::mem::take(&mut *self.workers.lock().unwrap());
        for w in workers {
            let _ = w.join();
        }
    }

    pub fn set_limits(&self, limits: Limits) {
        self.lock().limits = limits;
        self.shared.work.notify_all();
    }

    /// Whether a batch waits for this stream (false once it ended, true again when a new
    /// stream starts on it).
    pub fn set_active(&self, id: StreamId, active: bool) {
        if let Some(s) = self.lock().streams.get_mut(&id) {
            s.active = active;
        }
        self.shared.work.notify_all();
    }

    /// Queues an item of stream `id` behind its earlier ones; `next_due` says whether the
    /// stream's following frame goes to the model. Waits while the stream has too much in
    /// flight; with `max_latency` a frame that would wait for room is skipped instead.
    pub fn submit(
        &self,
        id: StreamId,
        payload: P,
        work: Work<R::Input>,
        next_due: bool,
    ) -> Result<(), Refused> {
        let arrival = Instant::now();
        let mut g = self.lock();
        let mut skip = false;
        loop {
            if !g.running {
                return Err(Refused::Stopped);
            }
            let (max_pending, max_latency) = (g.max_pending, g.limits.max_latency);
            let Some(s) = g.streams.get_mut(&id) else {
                return Err(Refused::Flushing);
            };
            if s.flushing {
                s.preparing = None;
                return Err(Refused::Flushing);
            }
            let full = s.entries.len() >= max_pending + EXTRA_ENTRIES;
            let busy = matches!(work, Work::Infer(_)) && s.in_flight >= max_pending;
            if !full && busy && max_latency.is_some() {
                skip = true;
            }
            if !full && (!busy || skip) {
                break;
            }
            let wake = s.wake.clone();
            g = wake.wait(g).unwrap();
        }
        let inner = &mut *g;
        let s = inner.streams.get_mut(&id).expect("checked above");
        let seq = s.next_seq;
        s.next_seq += 1;
        s.due = next_due;
        let generation = s.preparing.take().unwrap_or(inner.generation);
        let state = match work {
            Work::Infer(_) if skip => State::Skipped,
            Work::Infer(input) => {
                s.in_flight += 1;
                s.queued += 1;
                inner.jobs.push_back(Job {
                    stream: id,
                    seq,
                    input,
                    arrived: arrival,
                    enqueued: Instant::now(),
                    generation,
                });
                State::Queued
            }
            Work::Stale => State::Stale,
            Work::Pass => State::Passed,
        };
        s.entries.push_back(Entry {
            seq,
            payload,
            arrival,
            state,
        });
        if s.entries.len() == 1 {
            s.wake.notify_all();
        }
        inner.stats.frames += u64::from(!matches!(
            s.entries.back().map(|e| &e.state),
            Some(State::Passed)
        ));
        if skip {
            inner.stats.skipped += 1;
        }
        // Also when nothing was queued: a batch may have been waiting for this stream.
        self.shared.work.notify_all();
        Ok(())
    }

    /// The stream's next item, once it is ready; waits for it.
    pub fn next(&self, id: StreamId) -> Next<P, R::Output> {
        let mut g = self.lock();
        loop {
            let running = g.running;
            let Some(s) = g.streams.get_mut(&id) else {
                return Next::Flushing;
            };
            if s.flushing || !running {
                return Next::Flushing;
            }
            if s.entries.front().is_some_and(Entry::ready) {
                let e = s.entries.pop_front().expect("checked");
                let outcome = match e.state {
                    State::Done(out) => {
                        s.in_flight -= 1;
                        Outcome::Ran(out)
                    }
                    State::Skipped => Outcome::Skipped,
                    State::Stale => Outcome::Stale,
                    _ => Outcome::Passed,
                };
                s.wake.notify_all(); // room for the submitter
                if !matches!(outcome, Outcome::Passed) {
                    g.stats.record_latency(e.arrival.elapsed());
                }
                return Next::Item(e.payload, outcome);
            }
            let wake = s.wake.clone();
            g = wake.wait(g).unwrap();
        }
    }

    /// Flush: drops everything the stream has queued or in flight and releases its output
    /// and submitter until `flush_stop`. Returns the dropped payloads (for sticky events).
    pub fn flush_start(&self, id: StreamId) -> Vec<P> {
        let (payloads, jobs) = {
            let mut g = self.lock();
            let mut jobs = Vec::new();
            let mut i = 0;
            while i < g.jobs.len() {
                if g.jobs[i].stream == id {
                    jobs.extend(g.jobs.remove(i));
                } else {
                    i += 1;
                }
            }
            let Some(s) = g.streams.get_mut(&id) else {
                return Vec::new();
            };
            s.flushing = true;
            s.in_flight = 0;
            s.queued = 0;
            s.wake.notify_all();
            let payloads: Vec<P> = s.entries.drain(..).map(|e| e.payload).collect();
            self.shared.work.notify_all();
            (payloads, jobs)
        };
        drop(jobs);
        payloads
    }

    pub fn flush_stop(&self, id: StreamId) {
        if let Some(s) = self.lock().streams.get_mut(&id) {
            s.flushing = false;
            s.due = true;
        }
    }

    /// Waits until the stream's output has taken everything submitted (a drain query).
    pub fn drain(&self, id: StreamId) {
        let mut g = self.lock();
        loop {
            let running = g.running;
            let Some(s) = g.streams.get_mut(&id) else {
                return;
            };
            if s.entries.is_empty() || s.flushing || !running {
                return;
            }
            let wake = s.wake.clone();
            g = wake.wait(g).unwrap();
        }
    }

    /// The statistics so far.
    pub fn stats(&self) -> Stats {
        let mut g = self.lock();
        g.account_busy(Instant::now());
        g.stats.clone()
    }

    /// The latency a frame gains here when the model keeps up: two runs (its own, and the
    /// one it may wait for; the p95 measured with three live sources stays within that), or
    /// with `max_latency` that bound and its own run; plus `batch_timeout` for a model that
    /// takes batches. Zero before a model has started or run.
    pub fn latency(&self) -> Duration {
        let g = self.lock();
        let run = g.run_estimate;
        if run.is_zero() {
            return Duration::ZERO;
        }
        let waiting = g.limits.max_latency.map_or(run * 2, |max| max + run);
        let batch = if g.batching {
            g.limits.batch_timeout
        } else {
            Duration::ZERO
        };
        waiting + batch
    }

    /// How many frames of one stream may wait here at once in steady state: those with model
    /// work in flight and, when only every `interval`-th frame goes to the model, the frames
    /// passed on behind each of them (at most the entries `submit` allows).
    pub fn frames_held(&self, interval: u32) -> usize {
        let pending = self.lock().max_pending;
        (pending * interval.max(1) as usize).min(pending + EXTRA_ENTRIES)
    }
}

/// The longest run the runners expect, until one has run.
fn expected_run<R: Runner>(runners: &[R]) -> Duration {
    runners
        .iter()
        .map(Runner::expected_run)
        .max()
        .unwrap_or_default()
}

impl<R: Runner, P> Inner<R, P> {
    fn set_requests(&mut self, requests: usize) {
        // Enough to keep every request busy from a single stream.
        self.max_pending = 2 * requests + 1;
        self.stats.requests = requests as u64;
    }

    /// Whether the workers of `generation` still have frames to run: the current one
    /// always; an older one while a frame prepared for it is queued or being prepared.
    fn serves(&self, generation: u64) -> bool {
        generation == self.generation
            || self.jobs.iter().any(|j| j.generation == generation)
            || self
                .streams
                .values()
                .any(|s| s.preparing == Some(generation))
    }

    fn account_busy(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.busy_changed);
        self.stats.busy_seconds += dt.as_secs_f64() * self.busy as f64;
        self.stats.busy_span_seconds += dt.as_secs_f64();
        self.busy_changed = now;
    }

    /// With `max_latency`, marks the queued frames that can no longer be served in time
    /// as skipped; the newest queued frame always stays, so the model keeps running.
    fn skip_late(&mut self, now: Instant) {
        let Some(max) = self.limits.max_latency else {
            return;
        };
        let estimate = self.run_estimate;
        let Inner {
            jobs,
            streams,
            stats,
            ..
        } = self;
        let last = jobs.len().saturating_sub(1);
        let mut i = 0;
        jobs.retain(|j| {
            i += 1;
            let late = i <= last && now.saturating_duration_since(j.arrived) + estimate > max;
            if late && let Some(s) = streams.get_mut(&j.stream) {
                s.set_state(j.seq, State::Skipped);
                s.in_flight -= 1;
                s.queued -= 1;
                stats.skipped += 1;
            }
            !late
        });
    }

    /// Streams a batch waits for: playing, not flushing, and with a frame queued or coming
    /// next.
    fn full_batch(&self) -> usize {
        self.streams
            .values()
            .filter(|s| s.active && !s.flushing && (s.queued > 0 || s.due))
            .count()
    }

    /// Moves the next batch of frames prepared for `generation` into `batch`, or says how
    /// long to wait for one.
    fn take(
        &mut self,
        generation: u64,
        max_batch: usize,
        now: Instant,
        batch: &mut Vec<Job<R::Input>>,
    ) -> Result<(), Option<Duration>> {
        // Frames of two generations mix only for the moment of a swap.
        let mixed = self.jobs.iter().any(|j| j.generation != generation);
        let Some(first) = self.jobs.iter().find(|j| j.generation == generation) else {
            return Err(None);
        };
        let available = if mixed {
            self.jobs
                .iter()
                .filter(|j| j.generation == generation)
                .count()
        } else {
            self.jobs.len()
        };
        let n = if max_batch <= 1 {
            1
        } else {
            let want = self
                .full_batch()
                .min(self.limits.batch_size)
                .clamp(1, max_batch);
            let deadline = first.enqueued + self.limits.batch_timeout;
            if available < want && now < deadline {
                return Err(Some(deadline - now));
            }
            want.min(available)
        };
        if mixed {
            let mut i = 0;
            while batch.len() < n && i < self.jobs.len() {
                if self.jobs[i].generation == generation {
                    batch.extend(self.jobs.remove(i));
                } else {
                    i += 1;
                }
            }
        } else {
            batch.extend(self.jobs.drain(..n));
        }
        for j in batch.iter() {
            if let Some(s) = self.streams.get_mut(&j.stream) {
                s.set_state(j.seq, State::Running);
                s.queued -= 1;
            }
            self.stats.queue_ms += now.saturating_duration_since(j.enqueued).as_secs_f64() * 1e3;
        }
        Ok(())
    }

    /// Stores the outputs of a finished batch.
    fn finish(&mut self, ids: &[(StreamId, u64)], outputs: Vec<R::Output>, took: Duration) {
        let n = ids.len().max(1);
        let ms = took.as_secs_f64() * 1e3 / n as f64;
        self.stats.batches += 1;
        self.stats.model_runs += 1;
        self.run_estimate = if self.run_estimate.is_zero() {
            took
        } else {
            (self.run_estimate * 7 + took) / 8
        };
        let mut outputs = outputs.into_iter();
        for &(id, seq) in ids {
            let out = outputs
                .next()
                .unwrap_or_else(|| R::failure("the model gave fewer outputs than inputs"));
            self.stats.record_inference(ms, R::detections(&out));
            if let Some(s) = self.streams.get_mut(&id) {
                s.set_state(seq, State::Done(out));
            }
        }
    }
}

impl<P, O> StreamQueue<P, O> {
    /// Sets the state of entry `seq` (if it is still there: a flush drops entries), waking
    /// the output when its head becomes ready.
    fn set_state(&mut self, seq: u64, state: State<O>) {
        let Some(front) = self.entries.front().map(|e| e.seq) else {
            return;
        };
        let Some(e) = seq
            .checked_sub(front)
            .and_then(|i| self.entries.get_mut(i as usize))
        else {
            return;
        };
        let next_ok = match state {
            State::Running => matches!(e.state, State::Queued),
            _ => matches!(e.state, State::Queued | State::Running),
        };
        if !next_ok {
            return;
        }
        e.state = state;
        if seq == front && e.ready() {
            self.wake.notify_all();
        }
    }
}

/// Starts a worker for each runner of model generation `generation`.
fn spawn<R: Runner, P: Send + 'static>(
    shared: &Arc<Shared<R, P>>,
    runners: Vec<R>,
    generation: u64,
    workers: &mut Vec<JoinHandle<()>>,
) -> std::io::Result<()> {
    for (i, runner) in runners.into_iter().enumerate() {
        let shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("rtinfer-req{i}"))
            .spawn(move || work(&shared, runner, generation))?;
        workers.push(handle);
    }
    Ok(())
}

/// One worker: takes batches of its model generation and runs them until the scheduler
/// stops, or a newer model took over and no frame for this one is left.
fn work<R: Runner, P>(shared: &Shared<R, P>, mut runner: R, generation: u64) {
    let max_batch = runner.max_batch().max(1);
    let mut batch: Vec<Job<R::Input>> = Vec::with_capacity(max_batch);
    let mut ids: Vec<(StreamId, u64)> = Vec::with_capacity(max_batch);
    let mut inputs: Vec<R::Input> = Vec::with_capacity(max_batch);
    let mut g = shared.inner.lock().unwrap();
    loop {
        if !g.running || !g.serves(generation) {
            drop(g);
            drop(runner); // the old model is freed outside the lock
            return;
        }
        let now = Instant::now();
        g.skip_late(now);
        match g.take(generation, max_batch, now, &mut batch) {
            Ok(()) => {}
            Err(None) => {
                g = shared.work.wait(g).unwrap();
                continue;
            }
            Err(Some(wait)) => {
                g = shared.work.wait_timeout(g, wait).unwrap().0;
                continue;
            }
        }
        g.account_busy(now);
        g.busy += 1;
        drop(g);
        for j in batch.drain(..) {
            ids.push((j.stream, j.seq));
            inputs.push(j.input);
        }
        let start = Instant::now();
        let outputs = catch_unwind(AssertUnwindSafe(|| runner.run(&inputs)))
            .unwrap_or_else(|_| vec![R::failure("the inference panicked")]);
        let took = start.elapsed();
        inputs.clear(); // frees the tensors outside the lock
        g = shared.inner.lock().unwrap();
        g.account_busy(Instant::now());
        g.busy -= 1;
        g.finish(&ids, outputs, took);
        ids.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Each input says what its run does and returns (taken out by the one run).
    type Task = Mutex<Option<Box<dyn FnOnce() -> u64 + Send>>>;

    fn task(f: impl FnOnce() -> u64 + Send + 'static) -> Task {
        Mutex::new(Some(Box::new(f)))
    }

    struct Fake {
        batch: usize,
        /// Sizes of the batches it ran.
        sizes: Arc<Mutex<Vec<usize>>>,
        /// Added to each output, to tell models apart.
        offset: u64,
    }

    impl Runner for Fake {
        type Input = Task;
        type Output = u64;
        type Spec = u64;
        fn max_batch(&self) -> usize {
            self.batch
        }
        fn run(&mut self, inputs: &[Task]) -> Vec<u64> {
            self.sizes.lock().unwrap().push(inputs.len());
            inputs
                .iter()
                .map(|t| t.lock().unwrap().take().expect("run once")() + self.offset)
                .collect()
        }
        fn failure(_: &str) -> u64 {
            u64::MAX
        }
        fn detections(_: &u64) -> usize {
            1
        }
    }

    fn value(v: u64) -> Task {
        task(move || v)
    }

    fn sleeping(v: u64, ms: u64) -> Task {
        task(move || {
            std::thread::sleep(Duration::from_millis(ms));
            v
        })
    }

    /// A task that runs until the returned sender sends (or is dropped).
    fn gated(v: u64) -> (Task, mpsc::Sender<()>) {
        let (tx, rx) = mpsc::channel::<()>();
        (
            task(move || {
                let _ = rx.recv();
                v
            }),
            tx,
        )
    }

    fn scheduler(requests: usize, batch: usize, limits: Limits) -> Scheduler<Fake, u64> {
        let s = Scheduler::default();
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let runners = (0..requests)
            .map(|_| Fake {
                batch,
                sizes: sizes.clone(),
                offset: 0,
            })
            .collect();
        s.start(runners, Arc::new(0), limits).unwrap();
        s
    }

    fn take(s: &Scheduler<Fake, u64>, id: StreamId) -> (u64, Option<u64>) {
        match s.next(id) {
            Next::Item(p, Outcome::Ran(o)) => (p, Some(o)),
            Next::Item(p, _) => (p, None),
            Next::Flushing => panic!("flushing"),
        }
    }

    #[test]
    fn order_is_kept_per_stream_when_requests_finish_out_of_order() {
        let s = scheduler(2, 1, Limits::default());
        let id = s.register();
        s.submit(id, 0, Work::Infer(sleeping(100, 300)), true)
            .unwrap();
        s.submit(id, 1, Work::Infer(value(101)), true).unwrap();
        s.submit(id, 2, Work::Stale, true).unwrap();
        s.submit(id, 3, Work::Pass, true).unwrap();
        s.submit(id, 4, Work::Infer(value(104)), true).unwrap();
        let got: Vec<_> = (0..5).map(|_| take(&s, id)).collect();
        assert_eq!(
            got,
            [
                (0, Some(100)),
                (1, Some(101)),
                (2, None),
                (3, None),
                (4, Some(104))
            ]
        );
        let stats = s.stats();
        assert_eq!((stats.frames, stats.inferences, stats.requests), (4, 3, 2));
        s.stop();
    }

    #[test]
    fn frames_of_one_stream_run_on_several_requests_at_once() {
        let s = scheduler(2, 1, Limits::default());
        let id = s.register();
        // Each run waits for the other to have started: only parallel runs finish.
        let (tx_a, rx_a) = mpsc::channel::<()>();
        let (tx_b, rx_b) = mpsc::channel::<()>();
        let a = task(move || {
            tx_a.send(()).unwrap();
            rx_b.recv_timeout(Duration::from_secs(10)).map_or(0, |_| 1)
        });
        let b = task(move || {
            tx_b.send(()).unwrap();
            rx_a.recv_timeout(Duration::from_secs(10)).map_or(0, |_| 1)
        });
        s.submit(id, 0, Work::Infer(a), true).unwrap();
        s.submit(id, 1, Work::Infer(b), true).unwrap();
        assert_eq!([take(&s, id), take(&s, id)], [(0, Some(1)), (1, Some(1))]);
        s.stop();
    }

    #[test]
    fn a_batch_waits_for_every_due_stream_then_runs_as_one() {
        let limits = Limits {
            batch_timeout: Duration::from_secs(30),
            ..Limits::default()
        };
        let s = scheduler(1, 4, limits);
        let (a, b) = (s.register(), s.register());
        let _idle = s.register(); // never plays: not waited for
        s.set_active(a, true);
        s.set_active(b, true);
        let start = Instant::now();
        s.submit(a, 0, Work::Infer(value(1)), true).unwrap();
        s.submit(b, 0, Work::Infer(value(2)), true).unwrap();
        assert_eq!(take(&s, a), (0, Some(1)));
        assert_eq!(take(&s, b), (0, Some(2)));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "waited for the idle stream"
        );
        assert_eq!(s.stats().batches, 1);
        s.stop();
    }

    #[test]
    fn a_stream_with_frames_waiting_fills_a_batch_without_waiting_for_a_slower_one() {
        // The documented policy: a batch runs once as many frames wait as streams play.
        let limits = Limits {
            batch_timeout: Duration::from_secs(30),
            ..Limits::default()
        };
        let s = scheduler(1, 4, limits);
        let (a, b) = (s.register(), s.register());
        s.set_active(a, true);
        s.set_active(b, true);
        let start = Instant::now();
        s.submit(a, 0, Work::Infer(value(1)), true).unwrap();
        s.submit(a, 1, Work::Infer(value(2)), true).unwrap();
        assert_eq!(take(&s, a), (0, Some(1)));
        assert_eq!(take(&s, a), (1, Some(2)));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "waited for stream b"
        );
        assert_eq!(s.stats().batches, 1, "both of a's frames in one run");
        s.stop();
    }

    /// A batch waits for stream `b`; `release` must let it go at once, not after the
    /// 30 s batch timeout.
    fn released_at_once(release: impl FnOnce(&Scheduler<Fake, u64>, StreamId)) {
        let limits = Limits {
            batch_timeout: Duration::from_secs(30),
            ..Limits::default()
        };
        let s = scheduler(1, 4, limits);
        let (a, b) = (s.register(), s.register());
        s.set_active(a, true);
        s.set_active(b, true);
        s.submit(a, 0, Work::Infer(value(1)), true).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(s.stats().batches, 0, "the batch waits for stream b");
        let start = Instant::now();
        release(&s, b);
        assert_eq!(take(&s, a), (0, Some(1)));
        assert!(start.elapsed() < Duration::from_secs(10));
        s.stop();
    }

    #[test]
    fn eos_wakes_a_waiting_batch_at_once() {
        released_at_once(|s, b| s.set_active(b, false));
    }

    #[test]
    fn a_skipped_next_frame_wakes_a_waiting_batch_at_once() {
        // Stream b's frame is one `interval` skips, and so is its next one.
        released_at_once(|s, b| s.submit(b, 0, Work::Stale, false).unwrap());
    }

    #[test]
    fn releasing_a_stream_wakes_a_waiting_batch_at_once() {
        released_at_once(|s, b| s.unregister(b));
    }

    #[test]
    fn a_flush_withdraws_queued_and_in_flight_frames() {
        let s = scheduler(1, 1, Limits::default());
        let id = s.register();
        let (running, gate) = gated(7);
        s.submit(id, 0, Work::Infer(running), true).unwrap();
        s.submit(id, 1, Work::Infer(value(8)), true).unwrap();
        s.submit(id, 2, Work::Pass, true).unwrap();
        std::thread::sleep(Duration::from_millis(50)); // frame 0 is running
        assert_eq!(s.flush_start(id), [0, 1, 2]);
        assert!(matches!(s.next(id), Next::Flushing));
        assert_eq!(
            s.submit(id, 3, Work::Pass, true),
            Err(Refused::Flushing),
            "refused while flushing"
        );
        s.flush_stop(id);
        s.submit(id, 4, Work::Infer(value(9)), true).unwrap();
        drop(gate); // the withdrawn run ends now; its result must not reach frame 4
        assert_eq!(take(&s, id), (4, Some(9)));
        let stats = s.stats();
        assert_eq!(stats.inferences, 2, "frame 1 never ran");
        s.stop();
    }

    #[test]
    fn stop_with_frames_in_flight_returns_promptly_and_releases_everyone() {
        let s = Arc::new(scheduler(1, 1, Limits::default()));
        let id = s.register();
        s.submit(id, 0, Work::Infer(sleeping(1, 200)), true)
            .unwrap();
        for i in 1..3 {
            s.submit(id, i, Work::Infer(sleeping(1, 10_000)), true)
                .unwrap();
        }
        let s2 = s.clone();
        let waiter = std::thread::spawn(move || matches!(s2.next(id), Next::Flushing));
        std::thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        s.stop();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "queued runs were not started"
        );
        // Frame 0 may have been taken before the stop; then the waiter sees Flushing next.
        assert!(waiter.join().unwrap() || matches!(s.next(id), Next::Flushing));
        assert_eq!(s.submit(id, 9, Work::Pass, true), Err(Refused::Stopped));
    }

    #[test]
    fn releasing_a_stream_mid_run_leaves_the_others_alone() {
        let s = scheduler(1, 1, Limits::default());
        let (a, b) = (s.register(), s.register());
        let (running, gate) = gated(1);
        s.submit(a, 0, Work::Infer(running), true).unwrap();
        s.submit(b, 0, Work::Infer(value(2)), true).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.unregister(a);
        assert!(matches!(s.next(a), Next::Flushing));
        drop(gate);
        assert_eq!(take(&s, b), (0, Some(2)));
        s.stop();
    }

    #[test]
    fn frames_held_counts_those_in_flight_and_those_passed_on_behind_them() {
        let s = scheduler(2, 1, Limits::default());
        // 2 requests: 5 frames in flight per stream.
        assert_eq!(s.frames_held(1), 5);
        assert_eq!(s.frames_held(0), 5);
        assert_eq!(s.frames_held(3), 15);
        assert_eq!(s.frames_held(100), 5 + EXTRA_ENTRIES);
        s.stop();
    }

    #[test]
    fn submit_waits_for_room_and_max_latency_skips_instead() {
        // One request, one stream: at most 2 * 1 + 1 frames in flight.
        let s = Arc::new(scheduler(1, 1, Limits::default()));
        let id = s.register();
        let (running, gate) = gated(0);
        s.submit(id, 0, Work::Infer(running), true).unwrap();
        for i in 1..3 {
            s.submit(id, i, Work::Infer(value(i)), true).unwrap();
        }
        let s2 = s.clone();
        let blocked = std::thread::spawn(move || s2.submit(id, 3, Work::Infer(value(3)), true));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!blocked.is_finished(), "the fourth frame waits for room");
        drop(gate);
        assert_eq!(take(&s, id), (0, Some(0)));
        blocked.join().unwrap().unwrap();

        // With max-latency the same frame is skipped instead of waiting.
        s.set_limits(Limits {
            max_latency: Some(Duration::from_secs(60)),
            ..Limits::default()
        });
        let (running, gate) = gated(10);
        let s2 = scheduler(
            1,
            1,
            Limits {
                max_latency: Some(Duration::from_secs(60)),
                ..Limits::default()
            },
        );
        let id2 = s2.register();
        s2.submit(id2, 0, Work::Infer(running), true).unwrap();
        s2.submit(id2, 1, Work::Infer(value(11)), true).unwrap();
        s2.submit(id2, 2, Work::Infer(value(12)), true).unwrap();
        s2.submit(id2, 3, Work::Infer(value(13)), true).unwrap(); // does not wait
        drop(gate);
        let got: Vec<_> = (0..4).map(|_| take(&s2, id2)).collect();
        assert_eq!(
            got,
            [(0, Some(10)), (1, Some(11)), (2, Some(12)), (3, None)]
        );
        assert_eq!(s2.stats().skipped, 1);
        s.stop();
        s2.stop();
    }

    #[test]
    fn max_latency_skips_queued_frames_that_cannot_be_served_in_time() {
        let limits = Limits {
            max_latency: Some(Duration::from_millis(150)),
            ..Limits::default()
        };
        let s = scheduler(1, 1, limits);
        let id = s.register();
        // Each run takes 100 ms: the frame queued behind a running one would wait 100 ms
        // plus its own 100 ms, over 150 ms, unless it is the newest.
        s.submit(id, 0, Work::Infer(sleeping(0, 100)), true)
            .unwrap();
        s.submit(id, 1, Work::Infer(sleeping(1, 100)), true)
            .unwrap();
        s.submit(id, 2, Work::Infer(sleeping(2, 100)), true)
            .unwrap();
        let got: Vec<_> = (0..3).map(|_| take(&s, id)).collect();
        assert_eq!(got, [(0, Some(0)), (1, None), (2, Some(2))]);
        let stats = s.stats();
        assert_eq!((stats.skipped, stats.inferences, stats.frames), (1, 2, 3));
        s.stop();
    }

    #[test]
    fn a_panicking_run_gives_a_failure_not_a_hang() {
        let s = scheduler(1, 1, Limits::default());
        let id = s.register();
        s.submit(id, 0, Work::Infer(task(|| panic!("boom"))), true)
            .unwrap();
        s.submit(id, 1, Work::Infer(value(1)), true).unwrap();
        assert_eq!(take(&s, id), (0, Some(u64::MAX)));
        assert_eq!(take(&s, id), (1, Some(1)));
        s.stop();
    }

    #[test]
    fn a_new_model_runs_the_frames_prepared_for_it_and_the_old_one_finishes_its_own() {
        let s = scheduler(1, 1, Limits::default());
        let id = s.register();
        s.set_active(id, true);
        let run = s.lock().run;
        assert_eq!(*s.begin(id).unwrap(), 0);
        let (running, release) = gated(1);
        s.submit(id, 0, Work::Infer(running), true).unwrap();
        // A frame being prepared for the old model while the new one arrives.
        assert_eq!(*s.begin(id).unwrap(), 0);
        let new = Fake {
            batch: 1,
            sizes: Arc::new(Mutex::new(Vec::new())),
            offset: 1000,
        };
        s.replace(run, vec![new], Arc::new(1)).unwrap();
        s.submit(id, 1, Work::Infer(value(2)), true).unwrap();
        assert_eq!(*s.begin(id).unwrap(), 1);
        s.submit(id, 2, Work::Infer(value(3)), true).unwrap();
        assert_eq!(*s.spec().unwrap(), 1);
        drop(release);
        assert_eq!(take(&s, id), (0, Some(1)));
        assert_eq!(take(&s, id), (1, Some(2)));
        assert_eq!(take(&s, id), (2, Some(1003)));
        // The old model's worker has ended: one worker thread is left.
        let deadline = Instant::now() + Duration::from_secs(5);
        while s
            .workers
            .lock()
            .unwrap()
            .iter()
            .filter(|w| !w.is_finished())
            .count()
            > 1
        {
            assert!(Instant::now() < deadline, "the old worker did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
        // A model loaded for an earlier run is refused.
        s.stop();
        s.start(Vec::new(), Arc::new(2), Limits::default()).unwrap();
        let late = Fake {
            batch: 1,
            sizes: Arc::new(Mutex::new(Vec::new())),
            offset: 0,
        };
        assert!(matches!(
            s.replace(run, vec![late], Arc::new(3)),
            Err(NotReplaced::Stopped)
        ));
        assert_eq!(*s.spec().unwrap(), 2);
    }

    #[test]
    fn auto_plan_uses_one_single_threaded_request_per_core() {
        assert_eq!(plan(0, 0, 2), (2, 1));
        assert_eq!(plan(0, 0, 32), (8, 4));
        assert_eq!(plan(0, 2, 8), (4, 2));
        assert_eq!(plan(3, 0, 2), (3, 1));
        assert_eq!(plan(1, 0, 4), (1, 4));
        assert_eq!(plan(0, 0, 0), (1, 1));
    }
}
