//! The `device` property shared by rtpreprocess and rtinfer: `auto`, `cpu`, `cuda:N` or an
//! OpenVINO device (`openvino:GPU`, `openvino:NPU`, ...), and what it resolves to on this host.

use crate::cuda;
use gst::prelude::*;
pub use rtalgo::device::{DeviceRequest, OvDevice};

/// The `device` property, the same on every element that has one.
pub fn property() -> gst::glib::ParamSpec {
    gst::glib::ParamSpecString::builder("device")
        .nick("Device")
        .blurb(
            "Where to run: 'auto' (CUDA device 0 when an NVIDIA GPU and driver are usable, else \
             the CPU), 'cpu', 'cuda:N', or an OpenVINO device: 'openvino:GPU' (Intel graphics; \
             'openvino:GPU.N'), 'openvino:NPU' ('npu'), 'openvino:AUTO', 'openvino:CPU', with \
             which rtinfer runs OpenVINO (backend auto or openvino) and rtpreprocess works on \
             the CPU. A device that cannot be used falls back to the CPU and the element says \
             why (a warning when the device was asked for by name)",
        )
        .default_value(Some("auto"))
        .mutable_ready()
        .build()
}

/// The value a `device` property was set to (`None` means `auto`).
pub fn property_value(value: &gst::glib::Value) -> String {
    value
        .get::<Option<String>>()
        .ok()
        .flatten()
        .unwrap_or_else(|| "auto".into())
}

/// What a request resolved to.
pub struct Selection {
    pub request: DeviceRequest,
    /// The CUDA device to use, if any.
    pub cuda: Option<cuda::Device>,
    /// Why the CPU is used although CUDA was asked for or allowed.
    pub why_cpu: Option<String>,
}

impl Selection {
    /// `cpu` or `cuda:N`, for messages and the `active-device` property.
    pub fn name(&self) -> String {
        match &self.cuda {
            Some(d) => format!("cuda:{}", d.ordinal),
            None => "cpu".into(),
        }
    }
}

/// Whether this CPU computes bf16 natively (AVX-512 BF16, which every CPU with AMX has too):
/// where it does, OpenVINO's CPU plugin runs in bf16 by default.
pub fn cpu_computes_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether running on the CPU deserves a warning rather than info: a device was named.
pub fn warns(request: DeviceRequest) -> bool {
    matches!(request, DeviceRequest::Cuda(_) | DeviceRequest::OpenVino(_))
}

/// Posts why an element runs on `active` rather than where `device` asked: a warning when
/// CUDA was named, an info message for `auto`. Nothing when there is no reason to give.
pub fn report(element: &gst::Element, request: DeviceRequest, active: &str, why: &[String]) {
    if why.is_empty() {
        return;
    }
    let text = format!("device={request}: running on {active}: {}", why.join("; "));
    if warns(request) {
        gst::element_warning!(element, gst::LibraryError::Init, ("{}", text));
    } else {
        // gst-launch prints only the debug text of INFO messages.
        gst::element_info!(element, gst::LibraryError::Init, ("{}", text), ["{}", text]);
    }
}

pub fn select(request: DeviceRequest) -> Selection {
    let ordinal = match request {
        // OpenVINO devices are OpenVINO's to find (the backend falls back and says why).
        DeviceRequest::Cpu | DeviceRequest::OpenVino(_) => {
            return Selection {
                request,
                cuda: None,
                why_cpu: None,
            };
        }
        DeviceRequest::Auto => 0,
        DeviceRequest::Cuda(n) => n,
    };
    match cuda::Device::open(ordinal) {
        Ok(d) => Selection {
            request,
            cuda: Some(d),
            why_cpu: None,
        },
        Err(why) => Selection {
            request,
            cuda: None,
            why_cpu: Some(format!("no usable CUDA device ({why})")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_never_a_fallback() {
        let s = select(DeviceRequest::Cpu);
        assert!(s.cuda.is_none() && s.why_cpu.is_none() && !warns(s.request));
        assert_eq!(s.name(), "cpu");
    }

    #[test]
    fn without_a_gpu_auto_says_why() {
        if cuda::Device::open(0).is_ok() {
            return; // a GPU host: covered by the GPU tests
        }
        let s = select(DeviceRequest::Auto);
        assert!(s.cuda.is_none() && !warns(s.request));
        assert!(s.why_cpu.unwrap().starts_with("no usable CUDA device ("));
        assert!(warns(select(DeviceRequest::Cuda(0)).request));
    }
}
