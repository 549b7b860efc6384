//! The ONNX Runtime backend: the CPU execution provider, or TensorRT / CUDA on a GPU with
//! the CPU as the fallback.

use super::{
    Backend, BatchOutput, Error, ErrorKind, ModelInfo, Options, TensorData, ortlib, split_batch,
};
use ort::ep::{self, ExecutionProvider};
use ort::session::{Session, builder::GraphOptimizationLevel, builder::SessionBuilder};
use ort::value::{TensorElementType, TensorRef, ValueType};
use rtmeta::{DType, Layout};
use std::path::Path;

/// Sees the first output (shape, data) of a run and may reject it.
type OutputCheck<'a> = dyn FnMut(&[i64], &[f32]) -> Result<(), Error> + 'a;

pub struct OnnxBackend {
    session: Session,
    info: ModelInfo,
    /// Input shape of a batch-1 run, in the model's layout.
    input_shape: [i64; 4],
    version: String,
    device: String,
    fallbacks: Vec<String>,
    /// Batched input, reused (f32 storage keeps every element type aligned).
    batch: Vec<f32>,
}

fn bad(message: String) -> Error {
    Error::new(ErrorKind::BadModel, message)
}

impl OnnxBackend {
    pub fn open(model: &Path, opts: &Options) -> Result<Self, Error> {
        if !model.is_file() {
            return Err(Error::new(
                ErrorKind::ModelNotFound,
                format!(
                    "model file {} does not exist or is not a file",
                    model.display()
                ),
            ));
        }
        let (env, library) = ortlib::environment(opts.library.as_deref())?;
        let lib_err = |e: ort::Error| Error::new(ErrorKind::Library, format!("ONNX Runtime: {e}"));
        let builder = || -> Result<SessionBuilder, Error> {
            let mut b = Session::builder(&env)
                .map_err(lib_err)?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(|e| lib_err(e.into()))?
                .with_inter_threads(1)
                .map_err(|e| lib_err(e.into()))?;
            if opts.threads > 0 {
                b = b
                    .with_intra_threads(opts.threads as usize)
                    .map_err(|e| lib_err(e.into()))?;
            }
            Ok(b)
        };
        let mut fallbacks = Vec::new();
        let mut device = "cpu".to_string();
        let mut session = None;
        if let Some(n) = opts.cuda {
            let mut b = builder()?;
            if let Some(name) = register_gpu(&mut b, n, opts, &library, &mut fallbacks) {
                // A provider library may load and still fail on this model or device.
                match b.commit_from_file(model) {
                    Ok(s) => {
                        session = Some(s);
                        device = format!("cuda:{n} ({name})");
                    }
                    Err(e) => fallbacks.push(format!("{name} could not run the model: {e}")),
                }
            }
        }
        let session = match session {
            Some(s) => s,
            None => builder()?.commit_from_file(model).map_err(|e| {
                bad(format!(
                    "{} is not a model ONNX Runtime can load: {e}",
                    model.display()
                ))
            })?,
        };
        let version = format!("ONNX Runtime on {device} ({})", library.display());

        if session.inputs().len() != 1 {
            return Err(bad(format!(
                "model has {} inputs; rtinfer needs one image input",
                session.inputs().len()
            )));
        }
        let input = &session.inputs()[0];
        let ValueType::Tensor { ty, shape, .. } = input.dtype() else {
            return Err(bad(format!("model input {} is not a tensor", input.name())));
        };
        let dtype = match ty {
            TensorElementType::Float32 => DType::F32,
            TensorElementType::Float16 => DType::F16,
            TensorElementType::Uint8 => DType::U8,
            other => return Err(bad(format!("model input type {other:?} is not supported"))),
        };
        let dims: &[i64] = shape;
        let (layout, h, w) = match dims {
            [_, 3, h, w] => (Layout::Nchw, *h, *w),
            [_, h, w, 3] => (Layout::Nhwc, *h, *w),
            _ => {
                return Err(bad(format!(
                    "model input {} has shape {dims:?}; rtinfer needs an image [1,3,H,W] or [1,H,W,3]",
                    input.name()
                )));
            }
        };
        if h <= 0 || w <= 0 || dims[0] > 1 {
            return Err(bad(format!(
                "model input {} has shape {dims:?} (-1 = dynamic); rtinfer needs a fixed height \
                 and width and batch 1 (export the model with a fixed image size)",
                input.name()
            )));
        }
        let dynamic_batch = dims[0] < 0;
        let input_shape = match layout {
            Layout::Nchw => [1, 3, h, w],
            Layout::Nhwc => [1, h, w, 3],
        };
        if session.outputs().is_empty() {
            return Err(bad("model has no outputs".into()));
        }
        let names = session.metadata().ok().and_then(|m| m.custom("names"));
        let mut backend = OnnxBackend {
            session,
            info: ModelInfo {
                width: w as u32,
                height: h as u32,
                layout,
                dtype,
                output_shape: Vec::new(),
                names,
                dynamic_batch,
            },
            input_shape,
            version,
            device,
            fallbacks,
            batch: Vec::new(),
        };
        backend.warm_up()?;
        Ok(backend)
    }

    /// One run on a blank image: learns the real output shape (outputs may be declared
    /// dynamic) and moves the first run's set-up cost out of the stream.
    fn warm_up(&mut self) -> Result<(), Error> {
        let mut shape = Vec::new();
        let mut grab = |s: &[i64], _: &[f32]| shape = s.to_vec();
        let result = self
            .info
            .clone()
            .with_blank_input(|input| self.run(input, &mut grab));
        result.map_err(|e| bad(format!("a test run of the model failed: {e}")))?;
        self.info.output_shape = shape;
        Ok(())
    }
}

/// Registers TensorRT (if asked for) and CUDA for device `n`; returns the first provider
/// that registered, noting why each one that did not.
fn register_gpu(
    b: &mut SessionBuilder,
    n: u32,
    opts: &Options,
    library: &Path,
    fallbacks: &mut Vec<String>,
) -> Option<&'static str> {
    if matches!(ep::CUDA::is_available(), Ok(false)) {
        fallbacks.push(format!(
            "the ONNX Runtime at {} is a CPU-only build (no CUDA or TensorRT provider): install \
             onnxruntime-gpu 1.31 and point onnxruntime-library or ORT_DYLIB_PATH at its \
             libonnxruntime.so",
            library.display()
        ));
        return None;
    }
    let mut first = None;
    if opts.tensorrt {
        let mut trt = ep::TensorRT::default()
            .with_device_id(n as i32)
            .with_fp16(opts.trt_fp16);
        if let Some(dir) = &opts.trt_cache {
            trt = trt
                .with_engine_cache(true)
                .with_engine_cache_path(dir.display())
                .with_timing_cache(true)
                .with_timing_cache_path(dir.display());
        }
        match trt.register(b) {
            Err(e) => fallbacks.push(format!(
                "TensorRT not used ({e}); it needs TensorRT 10 (libnvinfer.so.10) on the \
                 library path"
            )),
            Ok(()) => first = Some("TensorRT"),
        }
    }
    // Also behind TensorRT: it takes the nodes TensorRT cannot run.
    let cuda = ep::CUDA::default().with_device_id(n as i32);
    match cuda.register(b) {
        Err(e) => fallbacks.push(format!(
            "CUDA not used ({e}); it needs the NVIDIA driver, CUDA 13 and cuDNN 9 libraries"
        )),
        Ok(()) => first = first.or(Some("CUDA")),
    }
    first
}

impl OnnxBackend {
    /// Runs the session on `input` with the given input shape; `on_output` sees the first
    /// output while it is valid.
    fn run_shaped(
        &mut self,
        input: TensorData<'_>,
        shape: [i64; 4],
        on_output: &mut OutputCheck,
    ) -> Result<(), Error> {
        let err = |e: ort::Error| Error::new(ErrorKind::Run, format!("inference failed: {e}"));
        let outputs = match input {
            TensorData::F32(d) => self.session.run(ort::inputs![
                TensorRef::from_array_view((shape, d)).map_err(err)?
            ]),
            TensorData::F16(d) => self.session.run(ort::inputs![
                TensorRef::from_array_view((shape, d)).map_err(err)?
            ]),
            TensorData::U8(d) => self.session.run(ort::inputs![
                TensorRef::from_array_view((shape, d)).map_err(err)?
            ]),
        }
        .map_err(err)?;
        let (out_shape, data) = outputs[0].try_extract_tensor::<f32>().map_err(|e| {
            Error::new(
                ErrorKind::BadModel,
                format!("first model output is not float32: {e}"),
            )
        })?;
        on_output(out_shape, data)
    }

    /// One run over `inputs` stacked into an [N, ...] tensor (dynamic-batch models only).
    fn run_stacked(
        &mut self,
        inputs: &[TensorData<'_>],
        on_output: &mut BatchOutput,
    ) -> Result<(), Error> {
        let dtype = inputs[0].dtype();
        if inputs.iter().any(|i| i.dtype() != dtype) {
            return Err(Error::new(ErrorKind::Run, "a batch mixes tensor types"));
        }
        let n = inputs.len();
        let one = inputs[0].bytes().len();
        // Taken out while the session runs on it, and put back for the next batch.
        let mut batch = std::mem::take(&mut self.batch);
        batch.resize((one * n).div_ceil(4), 0.0);
        let bytes = &mut crate::convert::as_bytes_mut(&mut batch)[..one * n];
        for (chunk, input) in bytes.chunks_exact_mut(one).zip(inputs) {
            chunk.copy_from_slice(input.bytes());
        }
        let mut shape = self.input_shape;
        shape[0] = n as i64;
        let stacked = TensorData::from_bytes(bytes, dtype).expect("f32 storage is aligned");
        let result = self.run_shaped(stacked, shape, &mut |out_shape, data| {
            split_batch(n, out_shape, data, on_output)
        });
        self.batch = batch;
        result
    }
}

impl Backend for OnnxBackend {
    fn run_batch(
        &mut self,
        inputs: &[TensorData<'_>],
        on_output: &mut BatchOutput,
    ) -> Result<(), Error> {
        if self.info.dynamic_batch && inputs.len() > 1 {
            return self.run_stacked(inputs, on_output);
        }
        for (i, input) in inputs.iter().enumerate() {
            self.run(*input, &mut |shape, data| on_output(i, shape, data))?;
        }
        Ok(())
    }

    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn describe(&self) -> String {
        self.version.clone()
    }

    fn device(&self) -> String {
        self.device.clone()
    }

    fn fallbacks(&self) -> &[String] {
        &self.fallbacks
    }

    fn run(
        &mut self,
        input: TensorData<'_>,
        on_output: &mut dyn FnMut(&[i64], &[f32]),
    ) -> Result<(), Error> {
        let shape = self.input_shape;
        self.run_shaped(input, shape, &mut |out_shape, data| {
            on_output(out_shape, data);
            Ok(())
        })
    }
}
