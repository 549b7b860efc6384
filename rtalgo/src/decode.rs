//! YOLO output layouts: which one a model has, and its candidates above the threshold.

/// YOLOX grid strides, in output row order.
const YOLOX_STRIDES: [u32; 3] = [8, 16, 32];

/// The output layouts rtinfer decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `[1, N, 5+C]`: raw grid offsets (or decoded boxes), objectness, class scores.
    Yolox,
    /// `[1, N, 5+C]`: decoded `cx, cy, w, h`, objectness, class scores.
    Yolov5,
    /// `[1, 4+C, N]`: decoded `cx, cy, w, h`, class scores, no objectness.
    Ultralytics,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Yolox => "yolox",
            Format::Yolov5 => "yolov5",
            Format::Ultralytics => "ultralytics",
        }
    }
}

fn yolox_rows(in_w: u32, in_h: u32) -> usize {
    YOLOX_STRIDES
        .iter()
        .map(|s| ((in_w / s) * (in_h / s)) as usize)
        .sum()
}

/// The decoded shape of a model output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutputLayout {
    pub format: Format,
    /// Number of candidate boxes.
    pub rows: usize,
    pub classes: usize,
}

const KNOWN: &str =
    "known layouts: YOLOX or YOLOv5 [1, N, 5+classes], Ultralytics [1, 4+classes, N]";

/// Why a model's output shape cannot be decoded.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LayoutError {
    #[error("output shape {0:?} fits no YOLO layout ({KNOWN})")]
    NotYolo(Vec<i64>),
    #[error("output shape {0:?} fits no YOLO layout ({KNOWN}); set model-format")]
    Unrecognised(Vec<i64>),
    #[error("output shape {shape:?} does not have the {} layout ({KNOWN})", .format.as_str())]
    NotFormat { shape: Vec<i64>, format: Format },
    /// A forced YOLOX on an anchor-based (YOLOv5) output.
    #[error(
        "output shape {shape:?} has 3 rows per grid cell (anchors), as YOLOv5 models do; \
         YOLOX has one ({yolox_rows} for {in_w}x{in_h}): set model-format=yolov5 or auto"
    )]
    Anchors {
        shape: Vec<i64>,
        yolox_rows: usize,
        in_w: u32,
        in_h: u32,
    },
}

/// Works out the layout of `shape` (with `wanted` forcing a format), or says why it can't.
pub fn layout(
    shape: &[i64],
    in_w: u32,
    in_h: u32,
    wanted: Option<Format>,
) -> Result<OutputLayout, LayoutError> {
    let (a, b) = match shape {
        [1, a, b] if *a > 0 && *b > 0 => (*a as usize, *b as usize),
        _ => return Err(LayoutError::NotYolo(shape.to_vec())),
    };
    // Real outputs have far more candidate rows than values per row.
    let rows_first = |format| {
        (b > 5 && a > b).then(|| OutputLayout {
            format,
            rows: a,
            classes: b - 5,
        })
    };
    let channels_first = || {
        (a > 4 && a < b).then(|| OutputLayout {
            format: Format::Ultralytics,
            rows: b,
            classes: a - 4,
        })
    };
    let found = match wanted {
        Some(Format::Yolox) if a == 3 * yolox_rows(in_w, in_h) => {
            return Err(LayoutError::Anchors {
                shape: shape.to_vec(),
                yolox_rows: yolox_rows(in_w, in_h),
                in_w,
                in_h,
            });
        }
        Some(Format::Yolox) => rows_first(Format::Yolox),
        Some(Format::Yolov5) => rows_first(Format::Yolov5),
        Some(Format::Ultralytics) => channels_first(),
        None if b > 5 && a == yolox_rows(in_w, in_h) => rows_first(Format::Yolox),
        None if a > 4 && a < b => channels_first(),
        None => rows_first(Format::Yolov5),
    };
    found.ok_or_else(|| match wanted {
        Some(format) => LayoutError::NotFormat {
            shape: shape.to_vec(),
            format,
        },
        None => LayoutError::Unrecognised(shape.to_vec()),
    })
}

/// A box above the confidence threshold, corners in tensor pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub score: f32,
    pub class: u32,
}

impl Candidate {
    /// `None` for a box that is not finite (an overflowing fp16 run, a broken export).
    fn from_center(cx: f32, cy: f32, w: f32, h: f32, score: f32, class: u32) -> Option<Self> {
        [cx, cy, w, h]
            .iter()
            .all(|v| v.is_finite())
            .then(|| Candidate {
                x1: cx - w / 2.0,
                y1: cy - h / 2.0,
                x2: cx + w / 2.0,
                y2: cy + h / 2.0,
                score,
                class,
            })
    }
}

/// Why one output of a model cannot be in `layout`'s format, when its numbers say so (checked
/// once for a forced `model-format`): decoded boxes never have a negative width or height,
/// which raw grid outputs (YOLOX exports without the decode) do have.
pub fn implausible(layout: &OutputLayout, data: &[f32]) -> Option<String> {
    let (rows, classes) = (layout.rows, layout.classes);
    let negative = match layout.format {
        // YOLOX decodes raw outputs itself, so only YOLOv5's must be decoded boxes.
        Format::Yolox => return None,
        Format::Yolov5 => data[..rows * (5 + classes)]
            .chunks_exact(5 + classes)
            .filter(|r| r[2] < 0.0 || r[3] < 0.0)
            .count(),
        Format::Ultralytics => (0..rows)
            .filter(|&j| data[2 * rows + j] < 0.0 || data[3 * rows + j] < 0.0)
            .count(),
    };
    (negative > 0).then(|| {
        format!(
            "{negative} of its {rows} boxes have a negative width or height, so it is not \
             {} output (raw grid outputs, as YOLOX models give, look like this)",
            layout.format.as_str()
        )
    })
}

/// Turns raw outputs into candidates; holds the tables and scratch space it reuses.
pub struct Decoder {
    pub layout: OutputLayout,
    /// YOLOX: grid x, grid y and stride of each row.
    grid: Vec<(f32, f32, f32)>,
    /// Ultralytics: best score and class of each column.
    best: Vec<(f32, u32)>,
}

impl Decoder {
    pub fn new(layout: OutputLayout, in_w: u32, in_h: u32) -> Self {
        let mut grid = Vec::new();
        if layout.format == Format::Yolox {
            for s in YOLOX_STRIDES {
                let (gw, gh) = (in_w / s, in_h / s);
                for gy in 0..gh {
                    for gx in 0..gw {
                        grid.push((gx as f32, gy as f32, s as f32));
                    }
                }
            }
        }
        let best = match layout.format {
            Format::Ultralytics => vec![(0.0, 0); layout.rows],
            _ => Vec::new(),
        };
        Decoder { layout, grid, best }
    }

    /// Appends to `out` the candidates of `data` (one image) scoring at least `conf` whose
    /// best class passes `keep_class`.
    pub fn candidates(
        &mut self,
        data: &[f32],
        conf: f32,
        keep_class: &dyn Fn(u32) -> bool,
        out: &mut Vec<Candidate>,
    ) {
        let (rows, classes) = (self.layout.rows, self.layout.classes);
        match self.layout.format {
            Format::Yolox | Format::Yolov5 => {
                let width = 5 + classes;
                let data = &data[..rows * width];
                // YOLOX exports come with or without the box decode in the graph: raw
                // w/h are log-scale (a few units), decoded ones are pixels.
                let raw = self.layout.format == Format::Yolox
                    && self.grid.len() == rows
                    && !data.chunks_exact(width).any(|r| r[2] > 50.0 || r[3] > 50.0);
                for (i, r) in data.chunks_exact(width).enumerate() {
                    let obj = r[4];
                    if below(obj, conf) {
                        continue; // class scores are at most 1
                    }
                    let (class, cls_score) = argmax(&r[5..]);
                    let score = obj * cls_score;
                    if below(score, conf) || !keep_class(class) {
                        continue;
                    }
                    let (cx, cy, w, h) = if raw {
                        let (gx, gy, s) = self.grid[i];
                        (
                            (r[0] + gx) * s,
                            (r[1] + gy) * s,
                            r[2].exp() * s,
                            r[3].exp() * s,
                        )
                    } else {
                        (r[0], r[1], r[2], r[3])
                    };
                    out.extend(Candidate::from_center(cx, cy, w, h, score, class));
                }
            }
            Format::Ultralytics => {
                // Channel-major: walk each class row contiguously.
                let data = &data[..rows * (4 + classes)];
                self.best.fill((f32::NEG_INFINITY, 0));
                for c in 0..classes {
                    let scores = &data[(4 + c) * rows..(5 + c) * rows];
                    for (b, s) in self.best.iter_mut().zip(scores) {
                        if *s > b.0 {
                            *b = (*s, c as u32);
                        }
                    }
                }
                for (j, (score, class)) in self.best.iter().enumerate() {
                    if below(*score, conf) || !keep_class(*class) {
                        continue;
                    }
                    let v = |k: usize| data[k * rows + j];
                    out.extend(Candidate::from_center(
                        v(0),
                        v(1),
                        v(2),
                        v(3),
                        *score,
                        *class,
                    ));
                }
            }
        }
    }
}

/// Whether a score misses the threshold; NaN (an overflowing fp16 run) always does.
fn below(score: f32, conf: f32) -> bool {
    score.is_nan() || score < conf
}

/// Index and value of the first maximum.
fn argmax(v: &[f32]) -> (u32, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, x) in v.iter().enumerate() {
        if *x > best.1 {
            best = (i as u32, *x);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_layouts() {
        let l = layout(&[1, 3549, 85], 416, 416, None).unwrap();
        assert_eq!((l.format, l.rows, l.classes), (Format::Yolox, 3549, 80));
        let l = layout(&[1, 84, 8400], 640, 640, None).unwrap();
        assert_eq!(
            (l.format, l.rows, l.classes),
            (Format::Ultralytics, 8400, 80)
        );
        let l = layout(&[1, 25200, 85], 640, 640, None).unwrap();
        assert_eq!((l.format, l.rows, l.classes), (Format::Yolov5, 25200, 80));
        let e = layout(&[1, 1000], 640, 640, None).unwrap_err();
        assert_eq!(e, LayoutError::NotYolo(vec![1, 1000]));
        assert!(e.to_string().contains("fits no YOLO layout"), "{e}");
        assert!(matches!(
            layout(&[1, 84, 8400], 640, 640, Some(Format::Yolox)),
            Err(LayoutError::NotFormat {
                format: Format::Yolox,
                ..
            })
        ));
        // Forced YOLOX on an anchor-based output (3 rows per cell) cannot be right.
        let e = layout(&[1, 25200, 85], 640, 640, Some(Format::Yolox))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("3 rows per grid cell") && e.contains("model-format=yolov5"),
            "{e}"
        );
        // Forced YOLOv5 on a YOLOX-sized output passes the shape check (decoded YOLOX exports
        // are YOLOv5-like); its numbers are checked on the first run.
        assert!(layout(&[1, 3549, 85], 416, 416, Some(Format::Yolov5)).is_ok());
        assert!(layout(&[1, 8400, 3], 640, 640, None).is_err());
    }

    #[test]
    fn yolox_raw_rows_are_grid_decoded() {
        let l = layout(&[1, 21, 7], 32, 32, None).unwrap(); // 16 + 4 + 1 rows, 2 classes
        assert_eq!(l.format, Format::Yolox);
        let mut d = Decoder::new(l, 32, 32);
        let mut data = vec![0.0f32; 21 * 7];
        // Row 5 = stride-8 cell (1, 1): offsets (0.5, 0.5), size exp(0) * 8.
        data[5 * 7..6 * 7].copy_from_slice(&[0.5, 0.5, 0.0, 0.0, 0.9, 0.2, 0.8]);
        let mut out = Vec::new();
        d.candidates(&data, 0.25, &|_| true, &mut out);
        assert_eq!(out.len(), 1);
        let c = out[0];
        assert_eq!((c.x1, c.y1, c.x2, c.y2, c.class), (8.0, 8.0, 16.0, 16.0, 1));
        assert!((c.score - 0.72).abs() < 1e-6);
        out.clear();
        d.candidates(&data, 0.25, &|c| c != 1, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn rows_that_are_not_numbers_are_no_candidates() {
        // What an fp16 overflow leaves: NaN scores, or a fine score with a NaN or infinite box.
        let l = layout(&[1, 21, 7], 32, 32, Some(Format::Yolov5)).unwrap();
        let mut d = Decoder::new(l, 32, 32);
        let mut data = vec![0.0f32; 21 * 7];
        data[..7].copy_from_slice(&[8.0, 8.0, 4.0, 4.0, f32::NAN, 0.0, 0.9]);
        data[7..14].copy_from_slice(&[8.0, 8.0, 4.0, 4.0, 0.9, f32::NAN, f32::NAN]);
        data[14..21].copy_from_slice(&[f32::NAN, 8.0, 4.0, 4.0, 0.9, 0.0, 0.9]);
        data[21..28].copy_from_slice(&[8.0, 8.0, f32::INFINITY, 4.0, 0.9, 0.0, 0.9]);
        data[28..35].copy_from_slice(&[8.0, 8.0, 4.0, 4.0, 0.9, 0.0, 0.9]);
        let mut out = Vec::new();
        d.candidates(&data, 0.25, &|_| true, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].x1, out[0].score), (6.0, 0.9 * 0.9));
        let l = layout(&[1, 6, 8], 32, 32, Some(Format::Ultralytics)).unwrap();
        let mut d = Decoder::new(l, 32, 32);
        // Channel-major rows of 8 boxes: cx, cy, w, h, class 0, class 1. Box 0 has a NaN
        // centre, box 1 NaN scores, box 3 is the one real detection.
        let mut data = vec![0.0f32; 6 * 8];
        for (row, v) in [8.0, 8.0, 4.0, 4.0].iter().enumerate() {
            data[row * 8..row * 8 + 8].fill(*v);
        }
        data[0] = f32::NAN;
        data[4 * 8] = 0.9;
        data[4 * 8 + 1] = f32::NAN;
        data[5 * 8 + 1] = f32::NAN;
        data[5 * 8 + 3] = 0.8;
        out.clear();
        d.candidates(&data, 0.25, &|_| true, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].class, out[0].score), (1, 0.8));
    }

    #[test]
    fn raw_grid_numbers_are_not_decoded_boxes() {
        let l = layout(&[1, 21, 7], 32, 32, Some(Format::Yolov5)).unwrap();
        let mut data = vec![1.0f32; 21 * 7];
        assert_eq!(implausible(&l, &data), None);
        data[3 * 7 + 3] = -0.7; // a log-scale height, as raw YOLOX rows have
        let why = implausible(&l, &data).unwrap();
        assert!(
            why.starts_with("1 of its 21 boxes") && why.contains("yolov5"),
            "{why}"
        );
        let l = layout(&[1, 21, 7], 32, 32, Some(Format::Yolox)).unwrap();
        assert_eq!(
            implausible(&l, &data),
            None,
            "YOLOX decodes raw rows itself"
        );
        let l = layout(&[1, 6, 10], 64, 64, Some(Format::Ultralytics)).unwrap();
        let mut data = vec![1.0f32; 60];
        assert_eq!(implausible(&l, &data), None);
        data[2 * 10 + 4] = -1.0;
        assert!(implausible(&l, &data).is_some());
    }

    #[test]
    fn ultralytics_columns() {
        let l = layout(&[1, 6, 10], 64, 64, None).unwrap(); // 2 classes, 10 boxes
        let mut d = Decoder::new(l, 64, 64);
        let mut data = vec![0.0f32; 60];
        for (k, v) in [20.0, 30.0, 10.0, 4.0, 0.1, 0.6].iter().enumerate() {
            data[k * 10 + 3] = *v;
        }
        let mut out = Vec::new();
        d.candidates(&data, 0.25, &|_| true, &mut out);
        assert_eq!(
            out,
            vec![Candidate::from_center(20.0, 30.0, 10.0, 4.0, 0.6, 1).unwrap()]
        );
    }
}
