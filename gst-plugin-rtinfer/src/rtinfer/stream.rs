//! One stream through rtinfer: a sink pad, its src pad, and the state of its frames.

use super::model::{Loaded, Thresholds};
use super::scheduler::StreamId;
use crate::spec::TensorSpec;
use crate::tensorize::{TensorizeError, Tensorizer};
use rtmeta::{DType, Detections, TensorMeta, Transform};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// The model input of one frame.
pub struct Input {
    pub tensor: gst::Buffer,
    pub dtype: DType,
    pub transform: Transform,
    pub thresholds: Thresholds,
}

/// What a stream hands the scheduler, in order.
pub enum Item {
    Frame {
        buffer: gst::Buffer,
        number: u64,
        width: u32,
        height: u32,
        /// The model it was prepared for.
        model: Arc<Loaded>,
    },
    Event(gst::Event),
}

/// The streaming thread's side of a stream: caps, conversion, frame counting.
#[derive(Default)]
pub struct StreamState {
    pub info: Option<gst_video::VideoInfo>,
    /// Used when frames come without a tensor that fits the model.
    tensorizer: Option<Tensorizer>,
    pub frame_number: u64,
    /// Frames to skip before the next inference (`interval`); 0 = infer the next one.
    pub until_next: u32,
    pub warned_tensor: bool,
}

/// The output task's side: what stale frames copy.
#[derive(Default)]
pub struct OutputState {
    pub last: Option<Detections>,
    /// What detectors upstream said of their labels (`rt-model-labels`).
    pub upstream_labels: Vec<rtmeta::labels::ModelLabels>,
    /// The model of the last frame pushed: a frame of another one follows a swap.
    pub model: Option<Arc<Loaded>>,
    /// Downstream returned EOS: frames are dropped until this task pushes a new segment or
    /// stream-start (as queue does, in the order they were queued: frames queued before
    /// the new segment still go, not out to a downstream that is done with them).
    pub downstream_eos: bool,
}

pub struct Stream {
    /// Request pad number, which is also the source id; `None` for the always pads.
    pub index: Option<u32>,
    /// The stream in the scheduler.
    pub id: StreamId,
    pub sinkpad: gst::Pad,
    pub srcpad: gst::Pad,
    pub state: Mutex<StreamState>,
    pub output: Mutex<OutputState>,
    /// What the last push downstream returned, given back to upstream by `chain`.
    flow: Mutex<Result<gst::FlowSuccess, gst::FlowError>>,
    /// An EOS is queued or was pushed: upstream sends nothing more, so downstream errors
    /// must be posted here.
    pub eos: AtomicBool,
}

impl Stream {
    pub fn new(index: Option<u32>, id: StreamId, sinkpad: gst::Pad, srcpad: gst::Pad) -> Self {
        Stream {
            index,
            id,
            sinkpad,
            srcpad,
            state: Mutex::new(StreamState::default()),
            output: Mutex::new(OutputState::default()),
            flow: Mutex::new(Ok(gst::FlowSuccess::Ok)),
            eos: AtomicBool::new(false),
        }
    }

    pub fn flow(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        *self.flow.lock().unwrap()
    }

    pub fn set_flow(&self, flow: Result<gst::FlowSuccess, gst::FlowError>) {
        *self.flow.lock().unwrap() = flow;
    }

    /// A new segment or stream after downstream returned EOS: frames flow again (as
    /// queue). Returns whether they had stopped.
    pub fn clear_eos_flow(&self) -> bool {
        let mut flow = self.flow.lock().unwrap();
        let was_eos = *flow == Err(gst::FlowError::Eos);
        if was_eos {
            *flow = Ok(gst::FlowSuccess::Ok);
        }
        was_eos
    }
}

impl StreamState {
    /// The model input of `buf`: upstream's tensor when it fits the model, else made here
    /// with the same code rtpreprocess uses. `warn` is told once about an upstream tensor
    /// that does not fit (but not about one for the model just swapped out: upstream learns
    /// the new input a few frames later).
    pub fn input(
        &mut self,
        buf: &gst::BufferRef,
        model: &Loaded,
        thresholds: Thresholds,
        warn: impl FnOnce(String),
    ) -> Result<Input, TensorizeError> {
        let spec = &model.spec;
        if let Some(t) = TensorMeta::from_buffer(buf) {
            // The tensor must be this model's input, of this frame: metas are copied along
            // by elements that scale (videoscale) and may come from other applications.
            let tr = &t.transform;
            let of_this_frame = self
                .info
                .as_ref()
                .is_some_and(|i| (i.width(), i.height()) == (tr.frame_width, tr.frame_height))
                && [tr.scale_x, tr.scale_y]
                    .iter()
                    .all(|s| s.is_finite() && *s > 0.0)
                && tr.pad_left.is_finite()
                && tr.pad_top.is_finite();
            let fits = |spec: &TensorSpec| {
                t.width == spec.width
                    && t.height == spec.height
                    && t.channels == 3
                    && t.dtype == spec.dtype
                    && t.layout == spec.layout
                    && t.data.size() == t.byte_size()
                    && of_this_frame
            };
            if fits(spec) {
                return Ok(Input {
                    tensor: t.data,
                    dtype: t.dtype,
                    transform: t.transform,
                    thresholds,
                });
            }
            if !self.warned_tensor && !model.previous.as_ref().is_some_and(fits) {
                self.warned_tensor = true;
                warn(if of_this_frame {
                    format!(
                        "Upstream tensor ({}x{}x{} {} {}, {} bytes) does not fit the model ({}); \
                         preprocessing here instead",
                        t.width,
                        t.height,
                        t.channels,
                        t.layout.as_str(),
                        t.dtype.as_str(),
                        t.data.size(),
                        spec.describe()
                    )
                } else {
                    format!(
                        "Upstream tensor was made for a {}x{} frame, not this one (is the video \
                         scaled between rtpreprocess and rtinfer?); preprocessing here instead",
                        tr.frame_width, tr.frame_height
                    )
                });
            }
        }
        let info = self.info.as_ref().ok_or(TensorizeError::NoCaps)?;
        if self.tensorizer.as_ref().is_none_or(|t| t.spec() != spec) {
            self.tensorizer = Some(Tensorizer::new(info, spec, None, 1)?.0);
        }
        let t = self.tensorizer.as_mut().expect("made above");
        let (tensor, transform) = t.tensor(buf)?;
        Ok(Input {
            tensor,
            dtype: t.spec().dtype,
            transform,
            thresholds,
        })
    }

    /// Forgets the tensorizer (new caps).
    pub fn reset_converter(&mut self) {
        self.tensorizer = None;
    }
}
