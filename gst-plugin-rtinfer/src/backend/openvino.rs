//! The OpenVINO backend: one compiled model ([`OpenVinoModel`]) shared by several infer
//! requests ([`OpenVinoBackend`]), each of which runs on its own thread.
//!
//! With one request the model is compiled with the LATENCY performance hint; with several,
//! with the THROUGHPUT hint and `PERFORMANCE_HINT_NUM_REQUESTS`, so that OpenVINO's CPU plugin
//! makes one stream per request and requests running at once on different threads do not
//! wait for each other.
//!
//! Careful: on CPUs with AMX or AVX-512 BF16 OpenVINO's CPU plugin runs in bf16 unless told
//! otherwise ([`Precision::Auto`]); its raw outputs then differ from ONNX Runtime's.
//! [`Precision::F32`] matches ONNX Runtime to about 1e-4.

use super::{
    Backend, BatchOutput, Error, ErrorKind, ModelInfo, TensorData, onnxfile, ovlib, split_batch,
};
use openvino::{
    CompiledModel, Core, DeviceType, ElementType, InferRequest, PartialShape, PropertyKey,
    RwPropertyKey, Shape, Tensor,
};
use rtmeta::{DType, Layout};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The precision OpenVINO computes in (`INFERENCE_PRECISION_HINT`); inputs and outputs keep
/// the model's types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// The device's default: bf16 on CPUs with AMX / AVX-512 BF16, else f32; f16 on GPUs.
    #[default]
    Auto,
    F32,
    Bf16,
    F16,
}

impl Precision {
    /// The `INFERENCE_PRECISION_HINT` value, `None` for the device's default.
    pub fn hint(self) -> Option<&'static str> {
        match self {
            Precision::Auto => None,
            Precision::F32 => Some("f32"),
            Precision::Bf16 => Some("bf16"),
            Precision::F16 => Some("f16"),
        }
    }

    pub fn as_str(self) -> &'static str {
        self.hint().unwrap_or("auto")
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Precision::Auto),
            "f32" | "fp32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "f16" | "fp16" => Ok(Precision::F16),
            other => Err(format!(
                "unknown OpenVINO precision {other:?}: use auto, f32, bf16 or f16"
            )),
        }
    }
}

/// How to load and compile a model with OpenVINO.
#[derive(Clone, Debug)]
pub struct OvOptions {
    /// Explicit `libopenvino_c.so` to load (else see [`ovlib::candidates`]).
    pub library: Option<PathBuf>,
    /// OpenVINO device: `CPU`, `GPU`, `GPU.1`, `NPU`, or a virtual device such as `AUTO`.
    /// A device OpenVINO does not see falls back to the CPU.
    pub device: String,
    pub precision: Precision,
    /// Infer requests that will run at once (at least 1): 1 compiles for latency, more for
    /// throughput with that many streams.
    pub requests: u32,
    /// CPU threads per request; 0 lets OpenVINO choose.
    pub threads_per_request: u32,
}

impl Default for OvOptions {
    fn default() -> Self {
        OvOptions {
            library: None,
            device: "CPU".into(),
            precision: Precision::Auto,
            requests: 1,
            threads_per_request: 0,
        }
    }
}

fn bad(message: String) -> Error {
    Error::new(ErrorKind::BadModel, message)
}

fn run_err(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Run, format!("inference failed: {e}"))
}

fn element_type(dtype: DType) -> ElementType {
    match dtype {
        DType::F32 => ElementType::F32,
        DType::F16 => ElementType::F16,
        DType::U8 => ElementType::U8,
    }
}

/// Sees the first output (shape, data) of a run and may reject it.
type OutputCheck<'a> = dyn FnMut(&[i64], &[f32]) -> Result<(), Error> + 'a;

/// One infer request and the input tensors it reads (owned here, written before each run).
struct Request {
    request: InferRequest,
    /// The batch-1 input tensor.
    single: Tensor,
    /// The last stacked input tensor and its batch size (dynamic-batch models).
    batch: Option<(usize, Tensor)>,
    /// Batch size of the tensor the request reads now.
    bound: usize,
}

impl Request {
    fn new(compiled: &mut CompiledModel, dtype: DType, shape: [i64; 4]) -> Result<Self, Error> {
        let lib = |e: openvino::InferenceError| {
            Error::new(
                ErrorKind::Library,
                format!("OpenVINO could not create an infer request: {e}"),
            )
        };
        let mut request = compiled.create_infer_request().map_err(lib)?;
        let single =
            Tensor::new(element_type(dtype), &Shape::new(&shape).map_err(lib)?).map_err(lib)?;
        request.set_input_tensor(&single).map_err(lib)?;
        Ok(Request {
            request,
            single,
            batch: None,
            bound: 1,
        })
    }

    /// Runs `inputs` (of the model's type) stacked into one [N, ...] tensor; `on_output` sees
    /// the first output while it is valid.
    fn infer(
        &mut self,
        inputs: &[TensorData<'_>],
        shape: [i64; 4],
        on_output: &mut OutputCheck,
    ) -> Result<(), Error> {
        let n = inputs.len();
        let tensor = if n == 1 {
            if self.bound != 1 {
                self.request
                    .set_input_tensor(&self.single)
                    .map_err(run_err)?;
                self.bound = 1;
            }
            &mut self.single
        } else {
            if self.batch.as_ref().is_none_or(|(m, _)| *m != n) {
                let mut dims = shape;
                dims[0] = n as i64;
                let elem = self.single.get_element_type().map_err(run_err)?;
                let t = Tensor::new(elem, &Shape::new(&dims).map_err(run_err)?).map_err(run_err)?;
                self.batch = Some((n, t));
                self.bound = 0;
            }
            let (_, t) = self.batch.as_mut().expect("just made");
            if self.bound != n {
                self.request.set_input_tensor(t).map_err(run_err)?;
                self.bound = n;
            }
            t
        };
        let dst = tensor.get_raw_data_mut().map_err(run_err)?;
        let one = dst.len() / n;
        for (chunk, input) in dst.chunks_exact_mut(one).zip(inputs) {
            let src = input.bytes();
            if src.len() != one {
                return Err(Error::new(
                    ErrorKind::Run,
                    format!(
                        "input has {} bytes; the model takes {one} ({shape:?} {:?})",
                        src.len(),
                        input.dtype()
                    ),
                ));
            }
            chunk.copy_from_slice(src);
        }
        self.request.infer().map_err(run_err)?;
        let out = self
            .request
            .get_output_tensor_by_index(0)
            .map_err(run_err)?;
        if out.get_element_type().map_err(run_err)? != ElementType::F32 {
            return Err(Error::new(
                ErrorKind::BadModel,
                "first model output is not float32",
            ));
        }
        let out_shape = out.get_shape().map_err(run_err)?;
        let data = out.get_data::<f32>().map_err(run_err)?;
        on_output(out_shape.get_dimensions(), data)
    }

    /// One run on a blank image: learns the output shape and moves the request's set-up cost
    /// out of the stream.
    fn warm_up(&mut self, info: &ModelInfo, shape: [i64; 4]) -> Result<Vec<i64>, Error> {
        let mut out = Vec::new();
        let mut grab = |s: &[i64], _: &[f32]| {
            out = s.to_vec();
            Ok(())
        };
        let result = info.with_blank_input(|input| self.infer(&[input], shape, &mut grab));
        result.map_err(|e| bad(format!("a test run of the model failed: {e}")))?;
        Ok(out)
    }
}

/// What all requests of a model share. Fields drop in order: the spare request before the
/// compiled model, the compiled model before the core.
struct Shared {
    spare: Mutex<Option<Request>>,
    compiled: Mutex<CompiledModel>,
    _core: Mutex<Core>,
    info: ModelInfo,
    input_shape: [i64; 4],
    describe: String,
    device: String,
    /// The inference precision that runs (`bf16`, `f32`, ...).
    precision: String,
    fallbacks: Vec<String>,
    optimal_requests: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A model compiled for one OpenVINO device; [`OpenVinoModel::request`] makes backends that
/// share it. Cheap to clone (the compiled model is shared).
#[derive(Clone)]
pub struct OpenVinoModel {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for OpenVinoModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenVinoModel")
            .field("describe", &self.shared.describe)
            .finish_non_exhaustive()
    }
}

/// Whether OpenVINO's device list covers `device` (`GPU` covers `GPU.0`, and back).
fn device_listed(device: &str, available: &[String]) -> bool {
    available.iter().any(|a| {
        a == device
            || a.strip_prefix(device).is_some_and(|r| r.starts_with('.'))
            || device
                .strip_prefix(a.as_str())
                .is_some_and(|r| r.starts_with('.'))
    })
}

/// Sets the compile properties for `device` on `core`.
fn configure(core: &mut Core, device: &str, opts: &OvOptions) -> Result<(), String> {
    let requests = opts.requests.max(1);
    let mut props = vec![(
        RwPropertyKey::HintPerformanceMode,
        if requests > 1 {
            "THROUGHPUT"
        } else {
            "LATENCY"
        }
        .to_string(),
    )];
    if requests > 1 {
        props.push((RwPropertyKey::HintNumRequests, requests.to_string()));
    }
    if let Some(p) = opts.precision.hint() {
        props.push((RwPropertyKey::HintInferencePrecision, p.to_string()));
    }
    if device == "CPU" {
        // In a pipeline the decoders and converters share the cores: inference threads
        // pinned to cores would keep them from moving aside.
        props.push((RwPropertyKey::HintEnableCpuPinning, "NO".to_string()));
    }
    if opts.threads_per_request > 0 && device == "CPU" {
        props.push((
            RwPropertyKey::InferenceNumThreads,
            (opts.threads_per_request * requests).to_string(),
        ));
    }
    let dev = DeviceType::from(device);
    for (key, value) in props {
        core.set_property(&dev, &key, &value)
            .map_err(|e| format!("{device} rejected {}={value}: {e}", key.as_ref()))?;
    }
    Ok(())
}

impl OpenVinoModel {
    /// Loads OpenVINO (once per process), reads `model` (ONNX or OpenVINO IR), checks its
    /// input like the ONNX Runtime backend does, compiles it for `opts.device` (else the CPU)
    /// and makes one warm request.
    pub fn open(model: &Path, opts: &OvOptions) -> Result<Self, Error> {
        if !model.is_file() {
            return Err(Error::new(
                ErrorKind::ModelNotFound,
                format!(
                    "model file {} does not exist or is not a file",
                    model.display()
                ),
            ));
        }
        let lib = ovlib::load(opts.library.as_deref())?;
        let mut core = Core::new().map_err(|e| {
            Error::new(
                ErrorKind::Library,
                format!("OpenVINO at {}: {e}", lib.path.display()),
            )
        })?;
        let Some(path) = model.to_str() else {
            return Err(bad(format!(
                "{}: OpenVINO needs a UTF-8 file name",
                model.display()
            )));
        };
        let mut ov_model = core.read_model_from_file(path, "").map_err(|e| {
            bad(format!(
                "{} is not a model OpenVINO can load: {e}",
                model.display()
            ))
        })?;

        let ov = |e: openvino::InferenceError| bad(format!("OpenVINO: {e}"));
        let inputs = ov_model.get_inputs_len().map_err(ov)?;
        if inputs != 1 {
            return Err(bad(format!(
                "model has {inputs} inputs; rtinfer needs one image input"
            )));
        }
        let input = ov_model.get_input_by_index(0).map_err(ov)?;
        let name = input.get_name().unwrap_or_default();
        let dtype = match input.get_element_type().map_err(ov)? {
            ElementType::F32 => DType::F32,
            ElementType::F16 => DType::F16,
            ElementType::U8 => DType::U8,
            other => return Err(bad(format!("model input type {other} is not supported"))),
        };
        let partial = input.get_partial_shape().map_err(ov)?;
        let dims: Vec<i64> = if partial.get_rank().is_dynamic() {
            Vec::new()
        } else {
            partial
                .get_dimensions()
                .iter()
                .map(|d| if d.is_dynamic() { -1 } else { d.get_max() })
                .collect()
        };
        let (layout, h, w) = match dims[..] {
            [_, 3, h, w] => (Layout::Nchw, h, w),
            [_, h, w, 3] => (Layout::Nhwc, h, w),
            _ => {
                return Err(bad(format!(
                    "model input {name} has shape {dims:?}; rtinfer needs an image [1,3,H,W] or [1,H,W,3]"
                )));
            }
        };
        if h <= 0 || w <= 0 || dims[0] > 1 {
            return Err(bad(format!(
                "model input {name} has shape {dims:?} (-1 = dynamic); rtinfer needs a fixed height \
                 and width and batch 1 (export the model with a fixed image size)"
            )));
        }
        let mut dynamic_batch = dims[0] < 0;
        let input_shape = match layout {
            Layout::Nchw => [1, 3, h, w],
            Layout::Nhwc => [1, h, w, 3],
        };
        if ov_model.get_outputs_len().map_err(ov)? == 0 {
            return Err(bad("model has no outputs".into()));
        }

        // The device, else the CPU with the reason.
        let mut fallbacks = Vec::new();
        let requested = match opts.device.trim() {
            "" => "CPU".to_string(),
            d => d.to_ascii_uppercase(),
        };
        let available: Vec<String> = core
            .available_devices()
            .map(|v| v.iter().map(|d| d.to_string()).collect())
            .unwrap_or_default();
        let virtual_device = ["AUTO", "MULTI", "HETERO", "BATCH"]
            .iter()
            .any(|v| requested.starts_with(v));
        let mut device = requested.clone();
        if device != "CPU" && !virtual_device && !device_listed(&device, &available) {
            fallbacks.push(format!(
                "OpenVINO device {device} is not available (OpenVINO {} sees: {}); running on \
                 the CPU",
                lib.version,
                available.join(", ")
            ));
            device = "CPU".into();
        }
        let mut compiled = None;
        if device != "CPU" {
            if dynamic_batch {
                // GPU and NPU plugins want static shapes (NPU needs them).
                ov_model
                    .reshape_single_input(&PartialShape::new_static(4, &input_shape).map_err(ov)?)
                    .map_err(ov)?;
                dynamic_batch = false;
            }
            let attempt = configure(&mut core, &device, opts).and_then(|()| {
                core.compile_model(&ov_model, DeviceType::from(device.as_str()))
                    .map_err(|e| e.to_string())
            });
            match attempt {
                Ok(c) => compiled = Some(c),
                Err(e) => {
                    fallbacks.push(format!(
                        "OpenVINO device {device} could not run the model ({e}); running on \
                         the CPU"
                    ));
                    device = "CPU".into();
                }
            }
        }
        let mut compiled = match compiled {
            Some(c) => c,
            None => {
                configure(&mut core, "CPU", opts)
                    .map_err(|e| Error::new(ErrorKind::Library, format!("OpenVINO: {e}")))?;
                core.compile_model(&ov_model, DeviceType::CPU)
                    .map_err(|e| {
                        bad(format!(
                            "OpenVINO could not compile {} for the CPU: {e}",
                            model.display()
                        ))
                    })?
            }
        };
        drop(ov_model);
        let output_type = compiled
            .get_output_by_index(0)
            .and_then(|o| o.get_element_type())
            .map_err(ov)?;
        if output_type != ElementType::F32 {
            return Err(bad(format!(
                "first model output is {output_type}, not float32"
            )));
        }

        // What actually runs.
        let prop = |key: PropertyKey| {
            compiled
                .get_property(&key)
                .ok()
                .map(|v| v.into_owned())
                .filter(|v| !v.is_empty())
        };
        let precision = prop(PropertyKey::Rw(RwPropertyKey::HintInferencePrecision))
            .unwrap_or_else(|| "default precision".into());
        let executes = prop(PropertyKey::Other("EXECUTION_DEVICES".into())).unwrap_or(device);
        let hint =
            prop(PropertyKey::Rw(RwPropertyKey::HintPerformanceMode)).unwrap_or_else(|| "?".into());
        let streams = prop(PropertyKey::Rw(RwPropertyKey::NumStreams));
        let threads = prop(PropertyKey::Rw(RwPropertyKey::InferenceNumThreads));
        let optimal_requests = prop(PropertyKey::OptimalNumberOfInferRequests)
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let mut details = vec![precision.clone(), format!("{hint} hint")];
        details.extend(streams.map(|s| format!("{s} streams")));
        details.extend(threads.map(|t| format!("{t} threads")));
        details.push(format!("{} requests", opts.requests.max(1)));
        let describe = format!(
            "OpenVINO {} on {executes} ({}) ({})",
            lib.version,
            details.join(", "),
            lib.path.display()
        );
        let device = format!("openvino:{executes} ({precision})");
        let precision = precision.to_ascii_lowercase();

        let mut info = ModelInfo {
            width: w as u32,
            height: h as u32,
            layout,
            dtype,
            output_shape: Vec::new(),
            names: onnxfile::metadata(model, "names"),
            dynamic_batch,
        };
        let mut first = Request::new(&mut compiled, dtype, input_shape)?;
        info.output_shape = first.warm_up(&info, input_shape)?;
        Ok(OpenVinoModel {
            shared: Arc::new(Shared {
                spare: Mutex::new(Some(first)),
                compiled: Mutex::new(compiled),
                _core: Mutex::new(core),
                info,
                input_shape,
                describe,
                device,
                precision,
                fallbacks,
                optimal_requests,
            }),
        })
    }

    /// A backend with its own infer request on the shared compiled model (warmed up). Backends
    /// may run at once on different threads.
    pub fn request(&self) -> Result<OpenVinoBackend, Error> {
        let spare = lock(&self.shared.spare).take();
        let request = match spare {
            Some(r) => r,
            None => {
                let mut r = Request::new(
                    &mut lock(&self.shared.compiled),
                    self.shared.info.dtype,
                    self.shared.input_shape,
                )?;
                r.warm_up(&self.shared.info, self.shared.input_shape)?;
                r
            }
        };
        Ok(OpenVinoBackend {
            request,
            model: self.shared.clone(),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.shared.info
    }

    /// OpenVINO version, device, precision, hint, streams, threads and library.
    pub fn describe(&self) -> String {
        self.shared.describe.clone()
    }

    /// E.g. `openvino:CPU (bf16)`.
    pub fn device(&self) -> String {
        self.shared.device.clone()
    }

    /// Why the requested device was not used, one line each.
    pub fn fallbacks(&self) -> &[String] {
        &self.shared.fallbacks
    }

    /// The inference precision that runs, in lower case: `f32`, `bf16`, `f16`.
    pub fn precision(&self) -> &str {
        &self.shared.precision
    }

    /// OpenVINO's `OPTIMAL_NUMBER_OF_INFER_REQUESTS` for the compiled model.
    pub fn optimal_requests(&self) -> u32 {
        self.shared.optimal_requests
    }
}

/// One infer request on an [`OpenVinoModel`]; runs on whatever thread owns it.
pub struct OpenVinoBackend {
    // Dropped before the model it came from.
    request: Request,
    model: Arc<Shared>,
}

impl OpenVinoBackend {
    /// A model compiled for one request (LATENCY hint) and its backend.
    pub fn open(model: &Path, opts: &OvOptions) -> Result<Self, Error> {
        OpenVinoModel::open(
            model,
            &OvOptions {
                requests: 1,
                ..opts.clone()
            },
        )?
        .request()
    }

    /// The shared model this request runs.
    pub fn model(&self) -> OpenVinoModel {
        OpenVinoModel {
            shared: self.model.clone(),
        }
    }

    fn check_types(&self, inputs: &[TensorData<'_>]) -> Result<(), Error> {
        let want = self.model.info.dtype;
        match inputs.iter().find(|i| i.dtype() != want) {
            Some(i) => Err(Error::new(
                ErrorKind::Run,
                format!("input is {:?}; the model takes {want:?}", i.dtype()),
            )),
            None => Ok(()),
        }
    }
}

impl Backend for OpenVinoBackend {
    fn info(&self) -> &ModelInfo {
        &self.model.info
    }

    fn describe(&self) -> String {
        self.model.describe.clone()
    }

    fn device(&self) -> String {
        self.model.device.clone()
    }

    fn fallbacks(&self) -> &[String] {
        &self.model.fallbacks
    }

    fn run(
        &mut self,
        input: TensorData<'_>,
        on_output: &mut dyn FnMut(&[i64], &[f32]),
    ) -> Result<(), Error> {
        self.check_types(&[input])?;
        let shape = self.model.input_shape;
        self.request.infer(&[input], shape, &mut |s, d| {
            on_output(s, d);
            Ok(())
        })
    }

    fn run_batch(
        &mut self,
        inputs: &[TensorData<'_>],
        on_output: &mut BatchOutput,
    ) -> Result<(), Error> {
        if !(self.model.info.dynamic_batch && inputs.len() > 1) {
            for (i, input) in inputs.iter().enumerate() {
                self.run(*input, &mut |shape, data| on_output(i, shape, data))?;
            }
            return Ok(());
        }
        self.check_types(inputs)?;
        let n = inputs.len();
        let shape = self.model.input_shape;
        self.request.infer(inputs, shape, &mut |out_shape, data| {
            split_batch(n, out_shape, data, on_output)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{OnnxBackend, Options};
    use super::*;

    /// The shared models and data: `$RT_SHARED`, else `../shared` beside the repository.
    fn shared() -> PathBuf {
        std::env::var_os("RT_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
    }

    fn yolox() -> PathBuf {
        let p = shared().join("models/yolox_nano.onnx");
        assert!(
            p.exists(),
            "{} is missing: set RT_SHARED to the shared folder",
            p.display()
        );
        p
    }

    fn f32_opts(requests: u32) -> OvOptions {
        OvOptions {
            precision: Precision::F32,
            requests,
            threads_per_request: 1,
            ..Default::default()
        }
    }

    /// A simple non-zero image: a horizontal ramp in each channel, in 0..=255 like the
    /// models' inputs.
    fn ramp(info: &ModelInfo) -> Vec<f32> {
        let (w, h) = (info.width as usize, info.height as usize);
        (0..3 * w * h)
            .map(|i| ((i % w) * 255 / w) as f32 + (i / (w * h)) as f32 * 10.0)
            .collect()
    }

    fn output(b: &mut dyn Backend, input: &[f32]) -> (Vec<i64>, Vec<f32>) {
        let mut got = (Vec::new(), Vec::new());
        b.run(TensorData::F32(input), &mut |s, d| {
            got = (s.to_vec(), d.to_vec())
        })
        .unwrap();
        got
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn f32_matches_onnx_runtime() {
        let mut ov = OpenVinoBackend::open(&yolox(), &f32_opts(1)).unwrap();
        let mut ort = OnnxBackend::open(
            &yolox(),
            &Options {
                threads: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let info = ov.info().clone();
        assert_eq!((info.width, info.height), (416, 416));
        assert_eq!(info.layout, Layout::Nchw);
        assert_eq!(info.dtype, DType::F32);
        assert_eq!(info.output_shape, ort.info().output_shape);
        assert_eq!(info.dynamic_batch, ort.info().dynamic_batch);
        assert_eq!(info.names, ort.info().names);
        assert_eq!(ov.device(), "openvino:CPU (f32)");
        assert!(ov.describe().contains("OpenVINO 20"), "{}", ov.describe());
        assert!(ov.fallbacks().is_empty());
        for input in [vec![0.0; 3 * 416 * 416], ramp(&info)] {
            let (s1, a) = output(&mut ov, &input);
            let (s2, b) = output(&mut ort, &input);
            assert_eq!(s1, s2);
            let d = max_abs_diff(&a, &b);
            assert!(d < 1e-3, "OpenVINO f32 differs from ONNX Runtime by {d}");
        }
    }

    #[test]
    fn two_requests_run_at_once_on_two_threads() {
        let model = OpenVinoModel::open(&yolox(), &f32_opts(2)).unwrap();
        assert!(
            model.describe().contains("THROUGHPUT"),
            "{}",
            model.describe()
        );
        let input = ramp(model.info());
        let mut one = model.request().unwrap();
        let (shape, expected) = output(&mut one, &input);
        let mut backends = [one, model.request().unwrap()];
        let results: Vec<Vec<(Vec<i64>, Vec<f32>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = backends
                .iter_mut()
                .map(|b| {
                    let input = &input;
                    s.spawn(move || (0..5).map(|_| output(b, input)).collect::<Vec<_>>())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for runs in results {
            for (s, d) in runs {
                assert_eq!(s, shape);
                assert_eq!(max_abs_diff(&d, &expected), 0.0);
            }
        }
        // The model outlives neither its requests nor the other way round.
        drop(model);
        assert_eq!(output(&mut backends[1], &input).1, expected);
    }

    #[test]
    fn a_batch_gives_each_image_its_own_output() {
        let mut ov = OpenVinoBackend::open(&yolox(), &f32_opts(1)).unwrap();
        let zeros = vec![0.0; 3 * 416 * 416];
        let r = ramp(ov.info());
        let (_, z1) = output(&mut ov, &zeros);
        let (_, r1) = output(&mut ov, &r);
        let mut got: Vec<Option<Vec<f32>>> = vec![None; 3];
        ov.run_batch(
            &[
                TensorData::F32(&r),
                TensorData::F32(&zeros),
                TensorData::F32(&r),
            ],
            &mut |i, s, d| {
                assert_eq!(s[0], 1);
                got[i] = Some(d.to_vec());
            },
        )
        .unwrap();
        let got: Vec<Vec<f32>> = got.into_iter().map(Option::unwrap).collect();
        let tol = if ov.info().dynamic_batch { 1e-3 } else { 0.0 };
        assert!(max_abs_diff(&got[0], &r1) <= tol);
        assert!(max_abs_diff(&got[1], &z1) <= tol);
        assert!(max_abs_diff(&got[2], &r1) <= tol);
        // Back to batch 1 after a batch.
        assert!(max_abs_diff(&output(&mut ov, &zeros).1, &z1) <= tol);
    }

    #[test]
    fn wrong_input_is_a_run_error() {
        let mut ov = OpenVinoBackend::open(&yolox(), &f32_opts(1)).unwrap();
        let e = ov
            .run(TensorData::U8(&[0; 10]), &mut |_, _| {})
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Run, "{e}");
        let e = ov
            .run(TensorData::F32(&[0.0; 10]), &mut |_, _| {})
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Run, "{e}");
        assert!(e.message.contains("bytes"), "{e}");
    }

    #[test]
    fn an_unavailable_device_falls_back_to_the_cpu() {
        let opts = OvOptions {
            device: "NPU".into(),
            ..f32_opts(1)
        };
        let ov = OpenVinoBackend::open(&yolox(), &opts).unwrap();
        // This machine has no NPU; where one exists the model runs there.
        if ov.fallbacks().is_empty() {
            assert!(ov.device().starts_with("openvino:NPU"), "{}", ov.device());
        } else {
            assert!(ov.device().starts_with("openvino:CPU"), "{}", ov.device());
            assert!(ov.fallbacks()[0].contains("NPU"), "{:?}", ov.fallbacks());
        }
    }

    #[test]
    fn a_missing_model_is_model_not_found() {
        let e =
            OpenVinoModel::open(Path::new("/nonexistent/model.onnx"), &f32_opts(1)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ModelNotFound);
        assert!(e.message.contains("/nonexistent/model.onnx"), "{e}");
    }

    #[test]
    fn a_missing_library_is_a_library_error_naming_it() {
        let opts = OvOptions {
            library: Some("/nonexistent/libopenvino_c.so.2641".into()),
            ..f32_opts(1)
        };
        let e = OpenVinoModel::open(&yolox(), &opts).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Library);
        assert!(
            e.message.contains("/nonexistent/libopenvino_c.so.2641"),
            "{e}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_model_is_a_bad_model() {
        let dir = std::env::temp_dir().join(format!("rtinfer-ov-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("not-a-model.onnx");
        std::fs::write(&p, b"this is not a model").unwrap();
        let e = OpenVinoModel::open(&p, &f32_opts(1)).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(e.kind, ErrorKind::BadModel, "{e}");
    }

    /// An OpenVINO IR model: u8 NHWC images with a dynamic batch, converted to f32 (the
    /// output is the input), written to a fresh folder.
    fn identity_ir() -> (PathBuf, PathBuf) {
        let dims = "<dim>-1</dim><dim>8</dim><dim>8</dim><dim>3</dim>";
        let xml = format!(
            r#"<?xml version="1.0"?>
<net name="identity" version="11">
  <layers>
    <layer id="0" name="images" type="Parameter" version="opset1">
      <data shape="?,8,8,3" element_type="u8"/>
      <output><port id="0" precision="U8" names="images">{dims}</port></output>
    </layer>
    <layer id="1" name="to_f32" type="Convert" version="opset1">
      <data destination_type="f32"/>
      <input><port id="0" precision="U8">{dims}</port></input>
      <output><port id="1" precision="FP32" names="output">{dims}</port></output>
    </layer>
    <layer id="2" name="output" type="Result" version="opset1">
      <input><port id="0" precision="FP32">{dims}</port></input>
    </layer>
  </layers>
  <edges>
    <edge from-layer="0" from-port="0" to-layer="1" to-port="0"/>
    <edge from-layer="1" from-port="1" to-layer="2" to-port="0"/>
  </edges>
</net>
"#
        );
        let dir = std::env::temp_dir().join(format!(
            "rtinfer-ov-ir-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("identity.xml"), xml).unwrap();
        std::fs::write(dir.join("identity.bin"), b"").unwrap();
        (dir.join("identity.xml"), dir)
    }

    #[test]
    fn a_dynamic_batch_runs_as_one_stacked_tensor() {
        let (model, dir) = identity_ir();
        let mut ov = OpenVinoBackend::open(&model, &f32_opts(1)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let info = ov.info().clone();
        assert_eq!((info.width, info.height), (8, 8));
        assert_eq!(info.layout, Layout::Nhwc);
        assert_eq!(info.dtype, DType::U8);
        assert!(info.dynamic_batch);
        assert_eq!(info.output_shape, [1, 8, 8, 3]);
        let images: Vec<Vec<u8>> = (0..3u8)
            .map(|k| (0..192).map(|i| (i as u8).wrapping_mul(k + 1)).collect())
            .collect();
        let as_f32 = |v: &[u8]| v.iter().map(|&x| f32::from(x)).collect::<Vec<_>>();
        for n in [3, 2, 3] {
            let inputs: Vec<TensorData> = images[..n].iter().map(|v| TensorData::U8(v)).collect();
            let mut seen = 0;
            ov.run_batch(&inputs, &mut |i, shape, data| {
                assert_eq!(shape, [1, 8, 8, 3]);
                assert_eq!(data, as_f32(&images[i]));
                seen += 1;
            })
            .unwrap();
            assert_eq!(seen, n);
            // Batch 1 again in between.
            ov.run(TensorData::U8(&images[1]), &mut |shape, data| {
                assert_eq!(shape, [1, 8, 8, 3]);
                assert_eq!(data, as_f32(&images[1]));
            })
            .unwrap();
        }
        let e = ov
            .run_batch(
                &[TensorData::U8(&images[0]), TensorData::F32(&[0.0; 192])],
                &mut |_, _, _| {},
            )
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Run, "{e}");
    }

    #[test]
    fn models_are_shared_and_backends_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<OpenVinoModel>();
        send::<OpenVinoBackend>();
    }

    #[test]
    fn precision_names() {
        assert_eq!("BF16".parse::<Precision>(), Ok(Precision::Bf16));
        assert_eq!("fp32".parse::<Precision>(), Ok(Precision::F32));
        assert_eq!("".parse::<Precision>(), Ok(Precision::Auto));
        assert!("int8".parse::<Precision>().is_err());
    }

    #[test]
    fn device_names_match_openvino_lists() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(device_listed("GPU", &list(&["CPU", "GPU.0", "GPU.1"])));
        assert!(device_listed("GPU.0", &list(&["CPU", "GPU"])));
        assert!(!device_listed("GPU", &list(&["CPU"])));
        assert!(!device_listed("NPU", &list(&["CPU", "GPU"])));
    }

    /// Throughput sanity check (not a test): `cargo test --release -p gst-plugin-rtinfer --lib
    /// openvino::tests::throughput -- --ignored --nocapture --test-threads=1`.
    #[test]
    #[ignore]
    fn throughput() {
        let secs: f64 = std::env::var("RT_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5.0);
        for precision in [Precision::F32, Precision::Bf16] {
            for requests in [1u32, 2] {
                let opts = OvOptions {
                    precision,
                    requests,
                    ..Default::default()
                };
                let model = OpenVinoModel::open(&yolox(), &opts).unwrap();
                let mut backends: Vec<_> =
                    (0..requests).map(|_| model.request().unwrap()).collect();
                let input = vec![0.0f32; 3 * 416 * 416];
                let start = std::time::Instant::now();
                let counts: Vec<u32> = std::thread::scope(|s| {
                    let hs: Vec<_> = backends
                        .iter_mut()
                        .map(|b| {
                            let input = &input;
                            s.spawn(move || {
                                let mut n = 0;
                                while start.elapsed().as_secs_f64() < secs {
                                    b.run(TensorData::F32(input), &mut |_, _| {}).unwrap();
                                    n += 1;
                                }
                                n
                            })
                        })
                        .collect();
                    hs.into_iter().map(|h| h.join().unwrap()).collect()
                });
                let total: u32 = counts.iter().sum();
                println!(
                    "{:>4} x{requests}: {:6.1} inferences/s  {}",
                    precision.as_str(),
                    f64::from(total) / start.elapsed().as_secs_f64(),
                    model.describe()
                );
            }
        }
        let mut ort = OnnxBackend::open(&yolox(), &Options::default()).unwrap();
        let input = vec![0.0f32; 3 * 416 * 416];
        let start = std::time::Instant::now();
        let mut n = 0u32;
        while start.elapsed().as_secs_f64() < secs {
            ort.run(TensorData::F32(&input), &mut |_, _| {}).unwrap();
            n += 1;
        }
        println!(
            " ORT x1: {:6.1} inferences/s  {}",
            f64::from(n) / start.elapsed().as_secs_f64(),
            ort.describe()
        );
    }
}
