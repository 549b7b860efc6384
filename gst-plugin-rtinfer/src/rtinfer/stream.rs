//! One stream through rtinfer: a sink pad, its src pad, and the state of its frames.

use crate::backend;
use crate::convert::Converter;
use crate::spec::TensorSpec;
use gst::prelude::*;
use rtmeta::{DType, Detection, Detections, TensorMeta, Transform};
use std::sync::atomic::AtomicBool;
use std::sync::{Condvar, Mutex};

/// The model input of one frame.
pub struct Input {
    pub tensor: gst::Buffer,
    pub dtype: DType,
    pub transform: Transform,
}

/// Where a stream's streaming thread waits for the result of its frame.
pub enum Slot {
    Idle,
    /// For the result of this frame number (a job of a cancelled frame may still finish).
    Waiting(u64),
    Done(Result<Vec<Detection>, backend::Error>),
    Cancelled,
}

#[derive(Default)]
pub struct StreamState {
    pub info: Option<gst_video::VideoInfo>,
    /// Used when frames come without a tensor that fits the model.
    converter: Option<(Converter, gst::BufferPool)>,
    pub last: Option<Detections>,
    pub frame_number: u64,
    pub warned_tensor: bool,
}

pub struct Stream {
    /// Request pad number, which is also the source id; `None` for the always pads.
    pub index: Option<u32>,
    pub sinkpad: gst::Pad,
    pub srcpad: gst::Pad,
    pub state: Mutex<StreamState>,
    pub eos: AtomicBool,
    /// Whether the frame in flight or the next one goes to the model (not one that `interval`
    /// skips): a batch waits only for such streams.
    pub due: AtomicBool,
    slot: Mutex<Slot>,
    done: Condvar,
}

impl Stream {
    pub fn new(index: Option<u32>, sinkpad: gst::Pad, srcpad: gst::Pad) -> Self {
        Stream {
            index,
            sinkpad,
            srcpad,
            state: Mutex::new(StreamState::default()),
            eos: AtomicBool::new(false),
            due: AtomicBool::new(true),
            slot: Mutex::new(Slot::Idle),
            done: Condvar::new(),
        }
    }

    /// Marks frame `frame` as submitted; call before handing it to the batcher.
    pub fn begin(&self, frame: u64) {
        *self.slot.lock().unwrap() = Slot::Waiting(frame);
    }

    /// Delivers the result of frame `frame`, if that frame is still waiting for it: after a
    /// flush the job of a cancelled frame may finish while the next frame waits.
    pub fn finish(&self, frame: u64, result: Result<Vec<Detection>, backend::Error>) {
        let mut slot = self.slot.lock().unwrap();
        if matches!(*slot, Slot::Waiting(f) if f == frame) {
            *slot = Slot::Done(result);
            self.done.notify_all();
        }
    }

    /// Releases a waiting streaming thread without a result (flush, stop).
    pub fn cancel(&self) {
        let mut slot = self.slot.lock().unwrap();
        if matches!(*slot, Slot::Waiting(_)) {
            *slot = Slot::Cancelled;
            self.done.notify_all();
        }
    }

    /// Waits for the frame in flight; `None` if it was cancelled.
    pub fn wait(&self) -> Option<Result<Vec<Detection>, backend::Error>> {
        let mut slot = self.slot.lock().unwrap();
        while matches!(*slot, Slot::Waiting(_)) {
            slot = self.done.wait(slot).unwrap();
        }
        match std::mem::replace(&mut *slot, Slot::Idle) {
            Slot::Done(r) => Some(r),
            _ => None,
        }
    }
}

impl StreamState {
    /// The model input of `buf`: upstream's tensor when it fits `spec`, else made here with
    /// the same code rtpreprocess uses. `warn` is told once about an upstream tensor that
    /// does not fit.
    pub fn input(
        &mut self,
        buf: &gst::BufferRef,
        spec: &TensorSpec,
        warn: impl FnOnce(String),
    ) -> Result<Input, String> {
        if let Some(t) = TensorMeta::from_buffer(buf) {
            if t.width == spec.width
                && t.height == spec.height
                && t.dtype == spec.dtype
                && t.layout == spec.layout
            {
                return Ok(Input {
                    tensor: t.data,
                    dtype: t.dtype,
                    transform: t.transform,
                });
            }
            if !self.warned_tensor {
                self.warned_tensor = true;
                warn(format!(
                    "Upstream tensor ({}x{} {} {}) does not fit the model ({}); preprocessing here instead",
                    t.width,
                    t.height,
                    t.layout.as_str(),
                    t.dtype.as_str(),
                    spec.describe()
                ));
            }
        }
        let info = self.info.as_ref().ok_or("no caps before the first frame")?;
        if self.converter.is_none() {
            let conv = Converter::new(spec, info)?;
            let pool = gst::BufferPool::new();
            let mut config = pool.config();
            config.set_params(None, conv.byte_size() as u32, 1, 0);
            pool.set_config(config)
                .map_err(|e| format!("tensor pool: {e}"))?;
            pool.set_active(true)
                .map_err(|e| format!("tensor pool: {e}"))?;
            self.converter = Some((conv, pool));
        }
        let (conv, pool) = self.converter.as_mut().expect("built above");
        let mut tensor = pool
            .acquire_buffer(None)
            .map_err(|e| format!("no tensor buffer: {e:?}"))?;
        {
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, info)
                .map_err(|_| "cannot map the video frame".to_string())?;
            let mut map = tensor
                .get_mut()
                .expect("fresh pool buffer")
                .map_writable()
                .map_err(|e| e.to_string())?;
            conv.convert(&frame, &mut map)?;
        }
        Ok(Input {
            tensor,
            dtype: conv.spec().dtype,
            transform: conv.geometry().transform,
        })
    }

    /// Forgets the converter (new caps).
    pub fn reset_converter(&mut self) {
        if let Some((_, pool)) = self.converter.take() {
            let _ = pool.set_active(false);
        }
    }
}
