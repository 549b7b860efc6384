//! The loaded model: backend, output decoder, labels, and detection of one input.

use super::scheduler::Runner;
use super::stream::Input;
use crate::backend::{
    self, Backend, ErrorKind, OnnxBackend, OpenVinoModel, OvOptions, Precision, TensorData,
};
use crate::decode::{self, Candidate, Decoder, FormatProp};
use crate::device::{self, DeviceRequest};
use crate::labels;
use crate::nms;
use crate::spec::TensorSpec;
use gst::glib;
use rtmeta::{DType, Detection, Transform};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The `backend` property.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstRtInferBackend")]
pub enum BackendProp {
    #[default]
    #[enum_value(
        name = "Auto: the faster on this machine: ONNX Runtime with CUDA/TensorRT on NVIDIA GPUs; on the CPU, OpenVINO in bf16 for float models where the CPU computes bf16 natively (AVX-512 BF16, AMX), else ONNX Runtime (exact f32; faster on int8-quantized models; precision=f32 keeps it); OpenVINO when device names an OpenVINO device or precision is bf16 or f16",
        nick = "auto"
    )]
    Auto,
    #[enum_value(name = "ONNX Runtime", nick = "onnxruntime")]
    OnnxRuntime,
    #[enum_value(
        name = "OpenVINO (the CPU, or the Intel GPU/NPU that device names; fastest on CPUs with AVX-512 BF16 or AMX with precision=bf16 or auto)",
        nick = "openvino"
    )]
    OpenVino,
}

impl BackendProp {
    /// The backend `auto` stands for: OpenVINO when `device` names an OpenVINO device, or
    /// when `precision` asks for bf16 or f16 (which only OpenVINO runs) and `device` does not
    /// name a CUDA device; ONNX Runtime with CUDA named. With nothing asked for (precision and
    /// device `auto`, or device `cpu`) and no usable CUDA device, the faster on this CPU for
    /// this model (`openvino_faster`): OpenVINO in its default bf16 for float models where
    /// the CPU computes bf16 natively, else ONNX Runtime (in f32 OpenVINO is the slower, and
    /// on int8-quantized models too: 50 against 29 ms for yolov8n_int8_dynamic).
    pub fn resolve(
        self,
        device: DeviceRequest,
        precision: PrecisionProp,
        cuda_found: bool,
        openvino_faster: bool,
    ) -> BackendProp {
        match (self, device) {
            (BackendProp::Auto, DeviceRequest::OpenVino(_)) => BackendProp::OpenVino,
            (BackendProp::Auto, DeviceRequest::Cuda(_)) => BackendProp::OnnxRuntime,
            (BackendProp::Auto, _) if precision.is_reduced() => BackendProp::OpenVino,
            (BackendProp::Auto, _) if cuda_found => BackendProp::OnnxRuntime,
            (BackendProp::Auto, _) if precision == PrecisionProp::Auto && openvino_faster => {
                BackendProp::OpenVino
            }
            (BackendProp::Auto, _) => BackendProp::OnnxRuntime,
            (b, _) => b,
        }
    }
}

/// The `precision` property.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstRtInferPrecision")]
pub enum PrecisionProp {
    #[default]
    #[enum_value(
        name = "Auto: the backend's default (ONNX Runtime on CPU: f32; OpenVINO: bf16 on CPUs with AVX-512 BF16/AMX, else f32)",
        nick = "auto"
    )]
    Auto,
    #[enum_value(name = "f32: exact", nick = "f32")]
    F32,
    #[enum_value(name = "bf16 (OpenVINO)", nick = "bf16")]
    Bf16,
    #[enum_value(name = "f16 (OpenVINO)", nick = "f16")]
    F16,
}

impl PrecisionProp {
    /// bf16 or f16: a precision only OpenVINO runs.
    pub fn is_reduced(self) -> bool {
        matches!(self, PrecisionProp::Bf16 | PrecisionProp::F16)
    }

    pub fn as_str(self) -> &'static str {
        self.openvino().as_str()
    }

    fn openvino(self) -> Precision {
        match self {
            PrecisionProp::Auto => Precision::Auto,
            PrecisionProp::F32 => Precision::F32,
            PrecisionProp::Bf16 => Precision::Bf16,
            PrecisionProp::F16 => Precision::F16,
        }
    }
}

/// `requests` requests on one OpenVINO model compiled for them; `accept` may refuse the
/// compiled model before any request is made.
fn open_openvino(
    path: &std::path::Path,
    s: &LoadSettings,
    requests: usize,
    accept: impl FnOnce(&OpenVinoModel) -> Result<(), backend::Error>,
) -> Result<Vec<Box<dyn Backend>>, backend::Error> {
    let model = OpenVinoModel::open(
        path,
        &OvOptions {
            library: s.openvino_library.clone(),
            device: match s.device {
                DeviceRequest::OpenVino(d) => d.to_string(),
                _ => "CPU".into(),
            },
            precision: s.precision.openvino(),
            requests: requests as u32,
            threads_per_request: s.threads,
        },
    )?;
    accept(&model)?;
    (0..requests)
        .map(|_| model.request().map(|r| Box::new(r) as Box<dyn Backend>))
        .collect()
}

/// Most frames of one run for models with a dynamic batch (the `batch-size` maximum).
pub const MAX_BATCH: usize = 256;

/// What loading needs.
#[derive(Clone, Debug)]
pub struct LoadSettings {
    pub model_file: Option<PathBuf>,
    pub label_file: Option<PathBuf>,
    pub model_format: FormatProp,
    pub classes: String,
    pub threads: u32,
    pub library: Option<PathBuf>,
    pub device: DeviceRequest,
    pub tensorrt: bool,
    pub trt_fp16: bool,
    pub trt_cache: Option<PathBuf>,
    pub backend: BackendProp,
    /// OpenVINO's inference precision.
    pub precision: PrecisionProp,
    /// Explicit libopenvino_c.so.
    pub openvino_library: Option<PathBuf>,
}

impl Default for LoadSettings {
    fn default() -> Self {
        LoadSettings {
            model_file: None,
            label_file: None,
            model_format: FormatProp::default(),
            classes: String::new(),
            threads: 0,
            library: None,
            device: DeviceRequest::Auto,
            tensorrt: true,
            trt_fp16: true,
            trt_cache: default_trt_cache(),
            backend: BackendProp::default(),
            precision: PrecisionProp::default(),
            openvino_library: None,
        }
    }
}

/// `$XDG_CACHE_HOME/rtinfer/tensorrt`, else `~/.cache/rtinfer/tensorrt`.
pub fn default_trt_cache() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("rtinfer").join("tensorrt"))
}

/// Thresholds applied to each inference.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub confidence: f32,
    pub iou: f32,
    pub max_detections: usize,
}

/// What the frames prepared for one loaded model share: its input, and what the output
/// tells downstream once this model's frames arrive.
#[derive(Debug)]
pub struct Loaded {
    pub spec: TensorSpec,
    /// The input of the model it replaced: upstream may send tensors for that one for a
    /// few frames more (they are converted here, with no warning).
    pub previous: Option<TensorSpec>,
    /// Its labels, under the element's name.
    pub labels: rtmeta::labels::ModelLabels,
    pub model_file: String,
    pub format: &'static str,
}

impl Loaded {
    pub fn new(
        model: &Model,
        file: &std::path::Path,
        producer: &str,
        previous: Option<TensorSpec>,
    ) -> Self {
        Loaded {
            spec: model.spec.clone(),
            previous,
            labels: rtmeta::labels::ModelLabels {
                producer: producer.to_string(),
                labels: model.labels.clone(),
            },
            model_file: file.display().to_string(),
            format: model.decoder.layout.format.as_str(),
        }
    }
}

pub struct Model {
    backend: Box<dyn Backend>,
    decoder: Decoder,
    pub spec: TensorSpec,
    labels: Vec<String>,
    /// Classes to keep, if filtered.
    class_mask: Option<Vec<bool>>,
    /// Candidates of each image of a batch, reused.
    candidates: Vec<Vec<Candidate>>,
    keep: Vec<usize>,
    /// A forced `model-format` whose first output has not been checked yet: the model file.
    unchecked_format: Option<PathBuf>,
    /// Why the model does not run where `device` asked, one line each.
    pub fallbacks: Vec<String>,
    /// What a user should know about the model and its labels, one line each.
    pub warnings: Vec<String>,
    /// How long one run took when loaded (a run after the backend's warm-up).
    expected_run: Duration,
}

/// Preprocessing the model expects, from its family and input.
fn model_spec(format: decode::Format, info: &backend::ModelInfo) -> TensorSpec {
    let mut spec = match format {
        decode::Format::Yolox => TensorSpec::yolox(info.width, info.height),
        _ => TensorSpec::ultralytics(info.width, info.height),
    };
    spec.layout = info.layout;
    spec.dtype = info.dtype;
    if info.dtype == DType::U8 {
        // An 8-bit input takes pixel values as they are.
        spec.scale = 1.0;
    }
    spec
}

/// Parses the `classes` property: ids or labels, comma-separated.
fn class_mask(text: &str, labels: &[String], classes: usize) -> Result<Option<Vec<bool>>, String> {
    let items: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        // "" and "," alike: all classes, never none.
        return Ok(None);
    }
    let mut mask = vec![false; classes];
    for item in items {
        let id = match item.parse::<usize>() {
            Ok(id) => id,
            Err(_) => labels
                .iter()
                .position(|l| l == item)
                .ok_or_else(|| format!("classes: \"{item}\" is neither a class id nor a label"))?,
        };
        if id >= classes {
            return Err(format!(
                "classes: id {id} is out of range (the model has {classes})"
            ));
        }
        mask[id] = true;
    }
    Ok(Some(mask))
}

/// Times one run on a blank input, for the latency rtinfer reports before frames have run.
fn time_one_run(backend: &mut dyn Backend) -> Result<Duration, backend::Error> {
    backend.info().clone().with_blank_input(|input| {
        let started = Instant::now();
        backend.run(input, &mut |_, _| {})?;
        Ok(started.elapsed())
    })
}

impl Model {
    /// Loads the model once per request (each runs on its own); the string describes what
    /// was loaded, for the log.
    pub fn load(s: &LoadSettings, requests: usize) -> Result<(Vec<Model>, String), backend::Error> {
        let Some(path) = s.model_file.clone() else {
            return Err(backend::Error::new(
                ErrorKind::ModelNotFound,
                "No model: set the model-file property to an ONNX file",
            ));
        };
        let selected = device::select(s.device);
        let mut fallbacks: Vec<String> = selected.why_cpu.into_iter().collect();
        let mut warnings = Vec::new();
        // An onnxruntime-library set asks for ONNX Runtime as much as backend=onnxruntime.
        let openvino_faster = s.library.is_none()
            && device::cpu_computes_bf16()
            && backend::onnxfile::is_quantized(&path) != Some(true);
        let choice = s.backend.resolve(
            s.device,
            s.precision,
            selected.cuda.is_some(),
            openvino_faster,
        );
        // `auto` chose OpenVINO for its bf16 speed alone: ONNX Runtime stands in where
        // OpenVINO cannot run the model, or would not run it in bf16 after all.
        let for_speed = choice == BackendProp::OpenVino
            && s.backend == BackendProp::Auto
            && s.precision == PrecisionProp::Auto
            && !matches!(s.device, DeviceRequest::OpenVino(_));
        let openvino = match choice {
            BackendProp::OnnxRuntime if matches!(s.device, DeviceRequest::OpenVino(_)) => {
                return Err(backend::Error::new(
                    ErrorKind::Settings,
                    format!(
                        "device={}: an OpenVINO device needs backend=openvino (or auto), not \
                         onnxruntime",
                        s.device
                    ),
                ));
            }
            BackendProp::OpenVino if for_speed => {
                let reduced = |m: &OpenVinoModel| match m.precision() {
                    "f32" => Err(backend::Error::new(
                        ErrorKind::Settings,
                        "its default precision on this CPU is f32, in which ONNX Runtime is \
                         faster",
                    )),
                    _ => Ok(()),
                };
                match open_openvino(&path, s, requests, reduced) {
                    Ok(b) => Some(b),
                    Err(e) if e.kind == ErrorKind::ModelNotFound => return Err(e),
                    Err(e) => {
                        fallbacks.push(format!(
                            "backend=auto: OpenVINO, the faster on CPUs that compute bf16, was \
                             not used ({e}); ONNX Runtime runs the model in f32"
                        ));
                        None
                    }
                }
            }
            BackendProp::OpenVino => {
                if let DeviceRequest::Cuda(_) | DeviceRequest::Auto = s.device
                    && selected.cuda.is_some()
                {
                    let why = if s.backend == BackendProp::OpenVino {
                        "backend=openvino".to_string()
                    } else {
                        format!("precision={} runs on OpenVINO", s.precision.as_str())
                    };
                    fallbacks.push(format!("OpenVINO does not run on CUDA devices ({why})"));
                }
                Some(open_openvino(&path, s, requests, |_| Ok(()))?)
            }
            _ => None,
        };
        let mut backends = match openvino {
            Some(b) => b,
            None => {
                let cuda = match (s.device, &selected.cuda) {
                    (_, Some(d)) => Some(d.ordinal),
                    // Named but not found by the driver probe: ONNX Runtime tries too, so
                    // its own reason is reported as well.
                    (DeviceRequest::Cuda(n), None) => Some(n),
                    _ => None,
                };
                let opts = backend::Options {
                    threads: s.threads,
                    library: s.library.clone(),
                    cuda,
                    tensorrt: s.tensorrt,
                    trt_fp16: s.trt_fp16,
                    trt_cache: s.trt_cache.clone(),
                };
                (0..requests)
                    .map(|_| {
                        OnnxBackend::open(&path, &opts).map(|b| Box::new(b) as Box<dyn Backend>)
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let backend = &backends[0];
        let info = backend.info().clone();
        let layout = decode::layout(
            &info.output_shape,
            info.width,
            info.height,
            s.model_format.get(),
        )
        .map_err(|e| {
            backend::Error::new(ErrorKind::BadModel, format!("{}: {e}", path.display()))
        })?;
        let labels = match &s.label_file {
            Some(file) => {
                labels::from_file(file).map_err(|e| backend::Error::new(ErrorKind::BadModel, e))?
            }
            None => info
                .names
                .as_deref()
                .and_then(labels::from_names_metadata)
                .unwrap_or_else(|| labels::COCO.iter().map(|s| s.to_string()).collect()),
        };
        if labels.len() < layout.classes {
            warnings.push(format!(
                "the labels name {} classes but the model has {}: classes {}.. are labelled by \
                 their ids",
                labels.len(),
                layout.classes,
                labels.len()
            ));
        }
        let class_mask = class_mask(&s.classes, &labels, layout.classes)
            .map_err(|e| backend::Error::new(ErrorKind::Settings, e))?;
        let spec = model_spec(layout.format, &info);
        let description = format!(
            "{} with {}: {} output {:?}, {} classes, input {}",
            path.display(),
            backend.describe(),
            layout.format.as_str(),
            info.output_shape,
            layout.classes,
            spec.describe()
        );
        fallbacks.extend(backend.fallbacks().iter().cloned());
        let expected_run = time_one_run(&mut *backends[0])?;
        let models = backends
            .into_iter()
            .map(|backend| Model {
                fallbacks: fallbacks.clone(),
                warnings: warnings.clone(),
                decoder: Decoder::new(layout, info.width, info.height),
                backend,
                spec: spec.clone(),
                labels: labels.clone(),
                class_mask: class_mask.clone(),
                candidates: Vec::new(),
                keep: Vec::new(),
                unchecked_format: s.model_format.get().map(|_| path.clone()),
                expected_run,
            })
            .collect();
        Ok((models, description))
    }

    /// Where the model runs: `cpu`, `cuda:N (CUDA)` or `cuda:N (TensorRT)`.
    pub fn device(&self) -> String {
        self.backend.device()
    }

    /// Whether a batch of several images runs as one model run.
    pub fn batches(&self) -> bool {
        self.backend.info().dynamic_batch
    }

    /// Runs a batch of images; returns each one's detections in frame pixels.
    pub fn detect_batch(
        &mut self,
        inputs: &[TensorData<'_>],
        transforms: &[Transform],
        t: Thresholds,
    ) -> Result<Vec<Vec<Detection>>, backend::Error> {
        let n = inputs.len();
        if self.candidates.len() < n {
            self.candidates.resize_with(n, || Vec::with_capacity(1024));
        }
        let Model {
            backend,
            decoder,
            class_mask,
            candidates,
            unchecked_format,
            ..
        } = self;
        let keep_class = |c: u32| class_mask.as_ref().is_none_or(|m| m[c as usize]);
        candidates.iter_mut().for_each(Vec::clear);
        let mut wrong_format = None;
        backend.run_batch(inputs, &mut |i, _, data| {
            if let Some(path) = unchecked_format.take()
                && let Some(why) = decode::implausible(&decoder.layout, data)
            {
                wrong_format = Some(format!(
                    "model-format={} does not fit {}: {why}; set model-format=auto",
                    decoder.layout.format.as_str(),
                    path.display()
                ));
            }
            decoder.candidates(data, t.confidence, &keep_class, &mut candidates[i])
        })?;
        if let Some(message) = wrong_format {
            return Err(backend::Error::new(ErrorKind::BadModel, message));
        }
        Ok((0..n)
            .map(|i| self.detections(i, &transforms[i], t))
            .collect())
    }

    /// NMS over image `i`'s candidates, boxes mapped back to its frame.
    fn detections(&mut self, i: usize, transform: &Transform, t: Thresholds) -> Vec<Detection> {
        let candidates = &mut self.candidates[i];
        nms::per_class(candidates, t.iou, t.max_detections, &mut self.keep);
        let (fw, fh) = (transform.frame_width as f64, transform.frame_height as f64);
        self.keep
            .iter()
            .map(|&k| {
                let c = &candidates[k];
                let (x1, y1) = transform.to_frame(c.x1 as f64, c.y1 as f64);
                let (x2, y2) = transform.to_frame(c.x2 as f64, c.y2 as f64);
                let (x1, x2) = (x1.clamp(0.0, fw), x2.clamp(0.0, fw));
                let (y1, y2) = (y1.clamp(0.0, fh), y2.clamp(0.0, fh));
                Detection {
                    class_id: c.class,
                    label: self
                        .labels
                        .get(c.class as usize)
                        .cloned()
                        .unwrap_or_else(|| c.class.to_string()),
                    confidence: c.score,
                    x: x1 as f32,
                    y: y1 as f32,
                    w: (x2 - x1) as f32,
                    h: (y2 - y1) as f32,
                    track_id: None,
                    producer: None,
                }
            })
            .collect()
    }
}

/// A model as one request of the scheduler.
impl Runner for Model {
    type Input = Input;
    type Output = Result<Vec<Detection>, backend::Error>;
    type Spec = Loaded;

    fn max_batch(&self) -> usize {
        if self.batches() { MAX_BATCH } else { 1 }
    }

    fn run(&mut self, inputs: &[Input]) -> Vec<Self::Output> {
        let maps: Vec<_> = inputs
            .iter()
            .map(|i| i.tensor.map_readable().ok())
            .collect();
        let tensors: Option<Vec<TensorData>> = maps
            .iter()
            .zip(inputs)
            .map(|(m, i)| m.as_ref().and_then(|m| TensorData::from_bytes(m, i.dtype)))
            .collect();
        let Some(tensors) = tensors else {
            return vec![
                Err(backend::Error::new(
                    ErrorKind::Run,
                    "a tensor cannot be read"
                ));
                inputs.len()
            ];
        };
        let transforms: Vec<Transform> = inputs.iter().map(|i| i.transform).collect();
        match self.detect_batch(&tensors, &transforms, inputs[0].thresholds) {
            Ok(per_image) => per_image.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e); inputs.len()],
        }
    }

    fn failure(message: &str) -> Self::Output {
        Err(backend::Error::new(ErrorKind::Run, message))
    }

    fn detections(output: &Self::Output) -> usize {
        output.as_ref().map_or(0, Vec::len)
    }

    fn expected_run(&self) -> Duration {
        self.expected_run
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_classes_mean_all_classes() {
        let labels: Vec<String> = ["person", "car"].map(String::from).into();
        assert_eq!(class_mask("", &labels, 2), Ok(None));
        assert_eq!(class_mask(" , ,", &labels, 2), Ok(None));
        assert_eq!(class_mask("car,", &labels, 2), Ok(Some(vec![false, true])));
    }

    #[test]
    fn auto_backend_is_the_faster_unless_asked_for() {
        use BackendProp::*;
        use PrecisionProp as P;
        let ov = DeviceRequest::OpenVino(device::OvDevice::Cpu);
        // (backend, device, precision, CUDA device found, OpenVINO bf16 the faster, expected)
        for (backend, device, precision, cuda, bf16, expected) in [
            (
                Auto,
                DeviceRequest::Auto,
                P::Auto,
                false,
                false,
                OnnxRuntime,
            ),
            // OpenVINO's default bf16 is the faster on such CPUs.
            (Auto, DeviceRequest::Auto, P::Auto, false, true, OpenVino),
            (Auto, DeviceRequest::Cpu, P::Auto, false, true, OpenVino),
            // Exact f32 asked for: ONNX Runtime, the faster in f32.
            (Auto, DeviceRequest::Cpu, P::F32, false, true, OnnxRuntime),
            (Auto, DeviceRequest::Auto, P::F32, false, false, OnnxRuntime),
            // A GPU found: ONNX Runtime's CUDA/TensorRT providers.
            (Auto, DeviceRequest::Auto, P::Auto, true, true, OnnxRuntime),
            (Auto, DeviceRequest::Auto, P::Bf16, false, false, OpenVino),
            (Auto, DeviceRequest::Cpu, P::F16, false, false, OpenVino),
            (Auto, ov, P::Auto, false, false, OpenVino),
            // CUDA named: ONNX Runtime, which warns that it runs its own precision.
            (
                Auto,
                DeviceRequest::Cuda(0),
                P::Bf16,
                true,
                true,
                OnnxRuntime,
            ),
            (
                Auto,
                DeviceRequest::Cuda(0),
                P::Auto,
                false,
                true,
                OnnxRuntime,
            ),
            (
                OnnxRuntime,
                DeviceRequest::Cpu,
                P::Bf16,
                false,
                true,
                OnnxRuntime,
            ),
            (
                OnnxRuntime,
                DeviceRequest::Auto,
                P::Auto,
                false,
                true,
                OnnxRuntime,
            ),
            (OpenVino, DeviceRequest::Cpu, P::F32, false, false, OpenVino),
        ] {
            assert_eq!(
                backend.resolve(device, precision, cuda, bf16),
                expected,
                "{backend:?} {device:?} {precision:?} cuda={cuda} openvino_faster={bf16}"
            );
        }
    }
}
