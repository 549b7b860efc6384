//! Inference backends behind one small trait: the element sees the same interface whichever
//! execution provider runs the model.

mod onnx;
pub mod onnxfile;
pub mod openvino;
pub mod ortlib;
pub mod ovlib;
mod pylib;

use half::f16;
use rtmeta::{DType, Layout};
use std::path::PathBuf;

pub use onnx::OnnxBackend;
pub use openvino::{OpenVinoBackend, OpenVinoModel, OvOptions, Precision};

/// What kind of failure, so elements can post the right GStreamer error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The model file does not exist or cannot be read.
    ModelNotFound,
    /// The model exists but cannot be used (not ONNX, unsupported shapes or types).
    BadModel,
    /// The inference library is missing or unusable.
    Library,
    /// A run failed.
    Run,
    /// A setting does not fit the model (its `classes`, a missing `model-file`).
    Settings,
}

#[derive(Clone, Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The model's single image input and its output, as loaded.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub dtype: DType,
    /// Output shape of a batch-1 run.
    pub output_shape: Vec<i64>,
    /// The model's `names` metadata (Ultralytics exports), if any.
    pub names: Option<String>,
    /// Whether the batch dimension is dynamic, so several images can run as one batch.
    pub dynamic_batch: bool,
}

impl ModelInfo {
    /// Calls `f` with a blank (all-zero) image of the model's input type and size, for the
    /// runs that warm a model up or time it.
    pub fn with_blank_input<R>(&self, f: impl FnOnce(TensorData<'_>) -> R) -> R {
        let n = (self.width * self.height * 3) as usize;
        match self.dtype {
            DType::F32 => f(TensorData::F32(&vec![0.0; n])),
            DType::F16 => f(TensorData::F16(&vec![f16::ZERO; n])),
            DType::U8 => f(TensorData::U8(&vec![0; n])),
        }
    }
}

/// Input tensor data of one image, in the model's layout.
#[derive(Clone, Copy, Debug)]
pub enum TensorData<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    U8(&'a [u8]),
}

impl<'a> TensorData<'a> {
    pub fn bytes(&self) -> &'a [u8] {
        use crate::convert::as_raw_bytes;
        match *self {
            TensorData::F32(d) => as_raw_bytes(d),
            TensorData::F16(d) => as_raw_bytes(d),
            TensorData::U8(d) => d,
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F16(_) => DType::F16,
            TensorData::U8(_) => DType::U8,
        }
    }

    /// Views tensor bytes as `dtype` elements; `None` if misaligned.
    pub fn from_bytes(bytes: &'a [u8], dtype: DType) -> Option<Self> {
        use crate::convert::cast;
        Some(match dtype {
            DType::F32 => TensorData::F32(cast(bytes)?),
            DType::F16 => TensorData::F16(cast(bytes)?),
            DType::U8 => TensorData::U8(cast(bytes)?),
        })
    }
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Intra-op threads; 0 lets the backend choose.
    pub threads: u32,
    /// Explicit ONNX Runtime library to load.
    pub library: Option<PathBuf>,
    /// Run on this CUDA device (TensorRT, then CUDA execution provider), else the CPU.
    pub cuda: Option<u32>,
    /// Try TensorRT before plain CUDA.
    pub tensorrt: bool,
    /// TensorRT builds FP16 engines.
    pub trt_fp16: bool,
    /// Where TensorRT keeps built engines (built once, then loaded).
    pub trt_cache: Option<PathBuf>,
}

/// Receives each image's output of a batch: image index, output shape (batch 1), data.
pub type BatchOutput<'a> = dyn FnMut(usize, &[i64], &[f32]) + 'a;

/// Hands each image's part of a batched output `[n, ...]` to `on_output` as a batch-1 output.
pub fn split_batch(
    n: usize,
    out_shape: &[i64],
    data: &[f32],
    on_output: &mut BatchOutput,
) -> Result<(), Error> {
    if out_shape.first() != Some(&(n as i64)) {
        return Err(Error::new(
            ErrorKind::BadModel,
            format!("batched output has shape {out_shape:?}"),
        ));
    }
    let mut image_shape = out_shape.to_vec();
    image_shape[0] = 1;
    for (i, chunk) in data.chunks_exact(data.len() / n).enumerate() {
        on_output(i, &image_shape, chunk);
    }
    Ok(())
}

pub trait Backend: Send {
    fn info(&self) -> &ModelInfo;
    /// Human-readable description, e.g. the library version and device.
    fn describe(&self) -> String;
    /// Where the model runs: `cpu`, or `cuda:N (CUDA)` / `cuda:N (TensorRT)`.
    fn device(&self) -> String;
    /// Why a requested accelerator was not used, one line each.
    fn fallbacks(&self) -> &[String];
    /// Runs one image; `on_output` sees the output shape and data while they are valid.
    fn run(
        &mut self,
        input: TensorData<'_>,
        on_output: &mut dyn FnMut(&[i64], &[f32]),
    ) -> Result<(), Error>;

    /// Runs several images (of the same type); `on_output` sees each image's index, output
    /// shape (batch 1) and data. By default one run per image.
    fn run_batch(
        &mut self,
        inputs: &[TensorData<'_>],
        on_output: &mut BatchOutput,
    ) -> Result<(), Error> {
        for (i, input) in inputs.iter().enumerate() {
            self.run(*input, &mut |shape, data| on_output(i, shape, data))?;
        }
        Ok(())
    }
}
