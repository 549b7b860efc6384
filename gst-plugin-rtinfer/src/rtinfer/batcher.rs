//! Gathers frames from all streams into batches for the inference thread.
//!
//! A batch is taken when it is full, that is when it holds `batch-size` frames or one frame
//! from every stream that is still playing (a stream has at most one frame in flight) and
//! whose next frame is not one that `interval` skips, or when its oldest frame has waited
//! `batch-timeout`. A slow or stalled stream therefore delays the others by at most the
//! timeout.

use super::stream::{Input, Stream};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub struct Job {
    pub stream: Arc<Stream>,
    /// The stream's frame number, for `Stream::finish`.
    pub frame: u64,
    pub input: Input,
    enqueued: Instant,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    stop: bool,
}

#[derive(Default)]
pub struct Batcher {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Batcher {
    /// Queues a frame; false once stopped, when nothing would ever run it (a streaming
    /// thread can get here just after `stop`, while the element shuts down).
    #[must_use]
    pub fn submit(&self, stream: Arc<Stream>, frame: u64, input: Input) -> bool {
        let mut q = self.queue.lock().unwrap();
        if q.stop {
            return false;
        }
        q.jobs.push_back(Job {
            stream,
            frame,
            input,
            enqueued: Instant::now(),
        });
        self.wake.notify_all();
        true
    }

    /// Takes the queued frame of `stream` back (on flush), if it is not being run yet.
    pub fn withdraw(&self, stream: &Arc<Stream>) {
        self.queue
            .lock()
            .unwrap()
            .jobs
            .retain(|j| !Arc::ptr_eq(&j.stream, stream));
    }

    /// Stops `next_batch` for good; queued frames are cancelled.
    pub fn stop(&self) {
        let mut q = self.queue.lock().unwrap();
        q.stop = true;
        for j in q.jobs.drain(..) {
            j.stream.cancel();
        }
        self.wake.notify_all();
    }

    /// The next batch (see the module comment); `None` once stopped. `full` says how many
    /// frames make a full batch right now.
    pub fn next_batch(&self, full: impl Fn() -> usize, timeout: Duration) -> Option<Vec<Job>> {
        let mut q = self.queue.lock().unwrap();
        loop {
            if q.stop {
                return None;
            }
            // Frames can also be withdrawn while we wait.
            let Some(first) = q.jobs.front() else {
                q = self.wake.wait(q).unwrap();
                continue;
            };
            let deadline = first.enqueued + timeout;
            let now = Instant::now();
            let want = full().max(1);
            if q.jobs.len() >= want || now >= deadline {
                let n = q.jobs.len().min(want);
                return Some(q.jobs.drain(..n).collect());
            }
            q = self.wake.wait_timeout(q, deadline - now).unwrap().0;
        }
    }
}
