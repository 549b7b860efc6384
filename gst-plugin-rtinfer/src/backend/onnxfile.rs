//! What an ONNX file says about itself, read without loading the graph: its
//! `metadata_props` (OpenVINO's C API does not expose them) and whether it is quantized.
//!
//! The file is a protobuf `ModelProto`; only the few fields needed are read, and large ones
//! (the weights) are skipped with a seek, so this costs a few small reads even for big models.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// `ModelProto.graph`, `ModelProto.metadata_props`, `GraphProto.node`, `NodeProto.op_type`.
const MODEL_GRAPH: u64 = 7;
const MODEL_METADATA: u64 = 14;
const GRAPH_NODE: u64 = 1;
const NODE_OP_TYPE: u64 = 4;

/// Operators of quantized models (QDQ or QOperator form).
const QUANTIZED_OPS: [&str; 7] = [
    "QuantizeLinear",
    "DynamicQuantizeLinear",
    "DequantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
];

fn varint(r: &mut impl Read) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8];
        r.read_exact(&mut b).ok()?;
        v |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Length-delimited fields of a message held in memory: (field number, bytes).
fn fields(mut buf: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let Some(tag) = varint(&mut buf) else { break };
        match tag & 7 {
            0 => {
                if varint(&mut buf).is_none() {
                    break;
                }
            }
            2 => {
                let Some(len) = varint(&mut buf) else { break };
                let Ok(len) = usize::try_from(len) else { break };
                if len > buf.len() {
                    break;
                }
                out.push((tag >> 3, &buf[..len]));
                buf = &buf[len..];
            }
            1 if buf.len() >= 8 => buf = &buf[8..],
            5 if buf.len() >= 4 => buf = &buf[4..],
            _ => break,
        }
    }
    out
}

/// What to do with a length-delimited field met while walking a message.
enum Visit {
    Skip,
    /// Read it (at most 16 MiB) and hand it over.
    Read,
    /// Walk into it as a message of its own.
    Enter,
}

/// Walks the message from the reader's position to `end`, calling `on` for each
/// length-delimited field at `depth` (0 = ModelProto); `on` returns true to stop.
fn walk(
    r: &mut BufReader<File>,
    end: u64,
    depth: usize,
    decide: &dyn Fn(usize, u64) -> Visit,
    on: &mut dyn FnMut(usize, u64, &[u8]) -> bool,
) -> Option<bool> {
    while r.stream_position().ok()? < end {
        let tag = varint(r)?;
        match tag & 7 {
            0 => {
                varint(r)?;
            }
            1 => r.seek_relative(8).ok()?,
            5 => r.seek_relative(4).ok()?,
            2 => {
                let len = varint(r)?;
                let pos = r.stream_position().ok()?;
                let field_end = pos.checked_add(len).filter(|&e| e <= end)?;
                match decide(depth, tag >> 3) {
                    Visit::Read if len < (16 << 20) => {
                        let mut bytes = vec![0u8; len as usize];
                        r.read_exact(&mut bytes).ok()?;
                        if on(depth, tag >> 3, &bytes) {
                            return Some(true);
                        }
                    }
                    Visit::Enter => {
                        if walk(r, field_end, depth + 1, decide, on)? {
                            return Some(true);
                        }
                        r.seek(SeekFrom::Start(field_end)).ok()?;
                    }
                    _ => {
                        r.seek(SeekFrom::Start(field_end)).ok()?;
                    }
                }
            }
            _ => return None,
        }
    }
    Some(false)
}

fn walk_file(
    model: &Path,
    decide: &dyn Fn(usize, u64) -> Visit,
    on: &mut dyn FnMut(usize, u64, &[u8]) -> bool,
) -> Option<bool> {
    let file = File::open(model).ok()?;
    let size = file.metadata().ok()?.len();
    walk(&mut BufReader::new(file), size, 0, decide, on)
}

/// The value of `key` in an ONNX model's `metadata_props` (e.g. Ultralytics' `names`); `None`
/// for other files.
pub fn metadata(model: &Path, key: &str) -> Option<String> {
    let mut value = None;
    let decide = |depth, field| match (depth, field) {
        (0, MODEL_METADATA) => Visit::Read,
        _ => Visit::Skip,
    };
    walk_file(model, &decide, &mut |_, _, entry| {
        // StringStringEntryProto: key = 1, value = 2.
        let f = fields(entry);
        let get = |n| f.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        if get(1) == Some(key.as_bytes()) {
            value = Some(String::from_utf8_lossy(get(2).unwrap_or(b"")).into_owned());
            return true;
        }
        false
    })?;
    value
}

/// Whether an ONNX model is quantized (has quantize/dequantize or integer operators); `None`
/// when the file cannot be read as ONNX.
pub fn is_quantized(model: &Path) -> Option<bool> {
    let decide = |depth, field| match (depth, field) {
        (0, MODEL_GRAPH) => Visit::Enter,
        (1, GRAPH_NODE) => Visit::Read,
        _ => Visit::Skip,
    };
    walk_file(model, &decide, &mut |_, _, node| {
        fields(node)
            .iter()
            .any(|(k, v)| *k == NODE_OP_TYPE && QUANTIZED_OPS.iter().any(|op| op.as_bytes() == *v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn shared_model(name: &str) -> PathBuf {
        let shared = std::env::var_os("RT_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
        let p = shared.join("models").join(name);
        assert!(p.exists(), "{} is missing: set RT_SHARED", p.display());
        p
    }

    #[test]
    fn reads_ultralytics_names() {
        let names =
            metadata(&shared_model("yolov8n_int8_dynamic.onnx"), "names").expect("names metadata");
        assert!(names.starts_with("{0: 'person'"), "{names}");
        assert_eq!(metadata(&shared_model("yolox_nano.onnx"), "names"), None);
        assert_eq!(metadata(Path::new("/nonexistent"), "names"), None);
    }

    #[test]
    fn tells_quantized_models_from_float_ones() {
        assert_eq!(
            is_quantized(&shared_model("yolov8n_int8_dynamic.onnx")),
            Some(true)
        );
        assert_eq!(is_quantized(&shared_model("yolox_nano.onnx")), Some(false));
        assert_eq!(is_quantized(Path::new("/nonexistent")), None);
        // Not protobuf: the walk stops where the bytes make no sense.
        let dir = std::env::temp_dir().join(format!("rt-onnxfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.onnx");
        std::fs::write(&p, b"\xff\xff\xff\xff this is not a model").unwrap();
        assert_eq!(is_quantized(&p), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
