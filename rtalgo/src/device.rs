//! The names of the devices an element can run on (the `device` property of rtpreprocess and
//! rtinfer, and the service's `model.device`): one parser, so a config is checked exactly as
//! the element will read it.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceRequest {
    /// CUDA device 0 when a GPU and driver are usable, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda(u32),
    /// An OpenVINO device: rtinfer runs OpenVINO on it (backend auto or openvino);
    /// rtpreprocess prepares frames on the CPU for it.
    OpenVino(OvDevice),
}

/// The OpenVINO devices `device` can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OvDevice {
    Cpu,
    /// Intel graphics; `GPU.N` when a host has several.
    Gpu(Option<u32>),
    Npu,
    /// OpenVINO's AUTO device: it picks among what it sees.
    Auto,
}

impl fmt::Display for OvDevice {
    /// OpenVINO's own name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OvDevice::Cpu => f.write_str("CPU"),
            OvDevice::Gpu(None) => f.write_str("GPU"),
            OvDevice::Gpu(Some(n)) => write!(f, "GPU.{n}"),
            OvDevice::Npu => f.write_str("NPU"),
            OvDevice::Auto => f.write_str("AUTO"),
        }
    }
}

impl FromStr for OvDevice {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_uppercase().as_str() {
            "CPU" => Ok(OvDevice::Cpu),
            "GPU" => Ok(OvDevice::Gpu(None)),
            "NPU" => Ok(OvDevice::Npu),
            "AUTO" => Ok(OvDevice::Auto),
            other => other
                .strip_prefix("GPU.")
                .and_then(|n| n.parse().ok())
                .map(|n| OvDevice::Gpu(Some(n)))
                .ok_or(()),
        }
    }
}

/// A `device` value that names no device.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "device \"{0}\": expected openvino:CPU, openvino:GPU, openvino:GPU.N, openvino:NPU or \
         openvino:AUTO"
    )]
    OpenVino(String),
    #[error(
        "device \"{0}\": expected auto, cpu, cuda:N (e.g. cuda:0) or openvino:DEVICE (e.g. \
         openvino:GPU)"
    )]
    Unknown(String),
}

impl FromStr for DeviceRequest {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, DeviceError> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "auto" | "" => Ok(DeviceRequest::Auto),
            "cpu" => Ok(DeviceRequest::Cpu),
            "cuda" | "gpu" => Ok(DeviceRequest::Cuda(0)),
            "npu" => Ok(DeviceRequest::OpenVino(OvDevice::Npu)),
            _ => {
                if let Some(ov) = s.strip_prefix("openvino:") {
                    return ov
                        .parse()
                        .map(DeviceRequest::OpenVino)
                        .map_err(|()| DeviceError::OpenVino(s.clone()));
                }
                s.strip_prefix("cuda:")
                    .and_then(|n| n.parse().ok())
                    .map(DeviceRequest::Cuda)
                    .ok_or_else(|| DeviceError::Unknown(s.clone()))
            }
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceRequest::Auto => f.write_str("auto"),
            DeviceRequest::Cpu => f.write_str("cpu"),
            DeviceRequest::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceRequest::OpenVino(d) => write!(f, "openvino:{d}"),
        }
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
        for (text, ov) in [
            ("openvino:GPU", OvDevice::Gpu(None)),
            ("openvino:gpu.1", OvDevice::Gpu(Some(1))),
            ("openvino:NPU", OvDevice::Npu),
            ("npu", OvDevice::Npu),
            ("openvino:auto", OvDevice::Auto),
            ("openvino:CPU", OvDevice::Cpu),
        ] {
            let d: DeviceRequest = text.parse().unwrap();
            assert_eq!(d, DeviceRequest::OpenVino(ov), "{text}");
            // Displayed as OpenVINO names it, and read back the same.
            assert_eq!(d.to_string().parse(), Ok(d));
        }
        assert_eq!(
            DeviceRequest::OpenVino(OvDevice::Gpu(Some(1))).to_string(),
            "openvino:GPU.1"
        );
        let e = "openvino:tpu".parse::<DeviceRequest>().unwrap_err();
        assert_eq!(e, DeviceError::OpenVino("openvino:tpu".into()));
        assert!(e.to_string().contains("openvino:GPU"), "{e}");
        let e = "cuda:x".parse::<DeviceRequest>().unwrap_err();
        assert_eq!(e, DeviceError::Unknown("cuda:x".into()));
        assert!(e.to_string().contains("cuda:N"), "{e}");
        assert!("tpu".parse::<DeviceRequest>().is_err());
        assert_eq!(DeviceRequest::Cuda(2).to_string(), "cuda:2");
    }
}
