//! The `device` property shared by rtpreprocess and rtinfer: `auto`, `cpu` or `cuda:N`, and
//! what it resolves to on this host.

use crate::cuda;
use gst::prelude::*;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceRequest {
    /// CUDA device 0 when a GPU and driver are usable, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda(u32),
}

/// The `device` property, the same on every element that has one.
pub fn property() -> gst::glib::ParamSpec {
    gst::glib::ParamSpecString::builder("device")
        .nick("Device")
        .blurb(
            "Where to run: 'auto' (CUDA device 0 when an NVIDIA GPU and driver are usable, else \
             the CPU), 'cpu', or 'cuda:N'. When CUDA cannot be used the element runs on the CPU \
             and says why (a warning when CUDA was asked for by name)",
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

impl FromStr for DeviceRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "auto" | "" => Ok(DeviceRequest::Auto),
            "cpu" => Ok(DeviceRequest::Cpu),
            "cuda" | "gpu" => Ok(DeviceRequest::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceRequest::Cuda)
                .ok_or_else(|| {
                    format!("device \"{s}\": expected auto, cpu or cuda:N (e.g. cuda:0)")
                }),
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceRequest::Auto => f.write_str("auto"),
            DeviceRequest::Cpu => f.write_str("cpu"),
            DeviceRequest::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
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

/// Whether running on the CPU deserves a warning rather than info: CUDA was named.
pub fn warns(request: DeviceRequest) -> bool {
    matches!(request, DeviceRequest::Cuda(_))
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
        DeviceRequest::Cpu => {
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
    fn parses_device_names() {
        assert_eq!("auto".parse(), Ok(DeviceRequest::Auto));
        assert_eq!("CPU".parse(), Ok(DeviceRequest::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceRequest::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceRequest::Cuda(3)));
        assert!(
            "cuda:x"
                .parse::<DeviceRequest>()
                .unwrap_err()
                .contains("cuda:N")
        );
        assert!("tpu".parse::<DeviceRequest>().is_err());
        assert_eq!(DeviceRequest::Cuda(2).to_string(), "cuda:2");
    }

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
