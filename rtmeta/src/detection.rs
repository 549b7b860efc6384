//! `RtDetectionMeta`: the detections of one frame.
//!
//! Structure fields (GStreamer types):
//!
//! | field          | type        | meaning                                                  |
//! |----------------|-------------|----------------------------------------------------------|
//! | `source-id`    | guint       | which source (stream) the frame came from                |
//! | `frame-number` | guint64     | frame counter of that source, from 0                     |
//! | `width`        | gint        | width of the frame the boxes refer to, in pixels         |
//! | `height`       | gint        | height of the frame the boxes refer to                   |
//! | `stale`        | gboolean    | true when copied from an earlier frame (`interval` > 1)  |
//! | `objects`      | GstValueArray of GstStructure `object`                                 |
//!
//! Each `object`: `class-id` (gint), `label` (string), `confidence` (gdouble, 0..1),
//! `x`, `y`, `w`, `h` (gdouble; top-left corner and size in frame pixels),
//! `track-id` (gint64, -1 until a tracker sets it) and `producer` (string, the name of the
//! element that detected it; absent when unknown). Several detectors in a row each add their
//! objects (see [`Detections::merge_from`]).

use crate::DETECTION_META;

/// One detected object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Detection {
    pub class_id: u32,
    pub label: String,
    pub confidence: f32,
    /// Top-left corner and size, in pixels of the frame the detections refer to.
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    /// Set by a tracker; `None` until then.
    pub track_id: Option<u64>,
    /// The element that detected it (an `rtinfer`'s name), when known.
    pub producer: Option<String>,
}

/// The detections of one frame, as stored in `RtDetectionMeta`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Detections {
    pub source_id: u32,
    pub frame_number: u64,
    pub width: u32,
    pub height: u32,
    pub stale: bool,
    pub objects: Vec<Detection>,
}

fn round(v: f32, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v as f64 * m).round() / m
}

/// Why a JSON document is not detections as rtjsonenc writes them.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum JsonError {
    #[error("no \"{0}\" (a non-negative integer)")]
    NoInteger(&'static str),
    #[error("\"{0}\" is too large")]
    TooLarge(&'static str),
    #[error("no \"objects\" array")]
    NoObjects,
    #[error("objects[{index}]: {error}")]
    Object { index: usize, error: Box<JsonError> },
    #[error("object without a number \"{0}\"")]
    NoNumber(&'static str),
    #[error("object without a \"class_id\" (a non-negative integer)")]
    NoClassId,
    #[error("\"track_id\" is not a non-negative integer")]
    BadTrackId,
}

impl Detection {
    /// The JSON form used by rtjsonenc and rtalert: confidence to 4 decimals, box to 2.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "class_id": self.class_id,
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "x": round(self.x, 2),
            "y": round(self.y, 2),
            "w": round(self.w, 2),
            "h": round(self.h, 2),
            "track_id": self.track_id,
        });
        if let Some(p) = &self.producer {
            v["producer"] = p.as_str().into();
        }
        v
    }

    /// Parses what [`to_json`](Self::to_json) writes; `track_id` and `label` may be left out.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, JsonError> {
        let num = |name: &'static str| {
            v.get(name)
                .and_then(|x| x.as_f64())
                .ok_or(JsonError::NoNumber(name))
        };
        let class_id = v
            .get("class_id")
            .and_then(|x| x.as_u64())
            .and_then(|x| u32::try_from(x).ok())
            .ok_or(JsonError::NoClassId)?;
        let track_id = match v.get("track_id") {
            None | Some(serde_json::Value::Null) => None,
            Some(t) => Some(t.as_u64().ok_or(JsonError::BadTrackId)?),
        };
        Ok(Detection {
            class_id,
            label: v
                .get("label")
                .and_then(|l| l.as_str())
                .unwrap_or_default()
                .to_owned(),
            confidence: num("confidence")? as f32,
            x: num("x")? as f32,
            y: num("y")? as f32,
            w: num("w")? as f32,
            h: num("h")? as f32,
            track_id,
            producer: v
                .get("producer")
                .and_then(|p| p.as_str())
                .map(str::to_owned),
        })
    }

    fn to_structure(&self) -> gst::Structure {
        gst::Structure::builder("object")
            .field_if_some("producer", self.producer.as_deref())
            .field("class-id", self.class_id as i32)
            .field("label", self.label.as_str())
            .field("confidence", self.confidence as f64)
            .field("x", self.x as f64)
            .field("y", self.y as f64)
            .field("w", self.w as f64)
            .field("h", self.h as f64)
            .field("track-id", self.track_id.map_or(-1, |t| t as i64))
            .build()
    }

    fn from_structure(s: &gst::StructureRef) -> Option<Self> {
        let f = |name: &str| s.get::<f64>(name).ok().map(|v| v as f32);
        Some(Detection {
            class_id: s.get::<i32>("class-id").ok()?.max(0) as u32,
            label: s.get::<&str>("label").unwrap_or_default().to_owned(),
            confidence: f("confidence")?,
            x: f("x")?,
            y: f("y")?,
            w: f("w")?,
            h: f("h")?,
            track_id: s
                .get::<i64>("track-id")
                .ok()
                .filter(|t| *t >= 0)
                .map(|t| t as u64),
            producer: s.get::<&str>("producer").ok().map(str::to_owned),
        })
    }
}

impl Detections {
    /// The JSON document of one frame that rtjsonenc writes as a line (`pts` in nanoseconds,
    /// `null` when unknown).
    pub fn to_json(&self, pts: Option<u64>) -> serde_json::Value {
        let objects: Vec<serde_json::Value> = self.objects.iter().map(|o| o.to_json()).collect();
        serde_json::json!({
            "source_id": self.source_id,
            "frame": self.frame_number,
            "pts": pts,
            "width": self.width,
            "height": self.height,
            "stale": self.stale,
            "objects": objects,
        })
    }

    /// Parses a document that [`to_json`](Self::to_json) wrote: the detections and the pts.
    pub fn from_json(v: &serde_json::Value) -> Result<(Self, Option<u64>), JsonError> {
        let uint = |name: &'static str| {
            v.get(name)
                .and_then(|x| x.as_u64())
                .ok_or(JsonError::NoInteger(name))
        };
        let small = |name: &'static str| {
            uint(name).and_then(|x| u32::try_from(x).map_err(|_| JsonError::TooLarge(name)))
        };
        let objects = v
            .get("objects")
            .and_then(|o| o.as_array())
            .ok_or(JsonError::NoObjects)?
            .iter()
            .enumerate()
            .map(|(index, o)| {
                Detection::from_json(o).map_err(|e| JsonError::Object {
                    index,
                    error: Box::new(e),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let detections = Detections {
            source_id: small("source_id")?,
            frame_number: uint("frame")?,
            width: small("width")?,
            height: small("height")?,
            stale: v.get("stale").and_then(|s| s.as_bool()).unwrap_or(false),
            objects,
        };
        Ok((detections, v.get("pts").and_then(|p| p.as_u64())))
    }

    /// Reads the detections attached to `buffer`, if any.
    pub fn from_buffer(buffer: &gst::BufferRef) -> Option<Self> {
        let meta = gst::meta::CustomMeta::from_buffer(buffer, DETECTION_META).ok()?;
        Self::from_structure(meta.structure())
    }

    /// Parses the structure of an `RtDetectionMeta` (also what the bus and C apps see).
    pub fn from_structure(s: &gst::StructureRef) -> Option<Self> {
        let objects = s
            .get::<gst::Array>("objects")
            .ok()?
            .iter()
            .filter_map(|v| v.get::<gst::Structure>().ok())
            .filter_map(|o| Detection::from_structure(&o))
            .collect();
        Some(Detections {
            source_id: s.get::<u32>("source-id").unwrap_or(0),
            frame_number: s.get::<u64>("frame-number").unwrap_or(0),
            width: s.get::<i32>("width").unwrap_or(0).max(0) as u32,
            height: s.get::<i32>("height").unwrap_or(0).max(0) as u32,
            stale: s.get::<bool>("stale").unwrap_or(false),
            objects,
        })
    }

    /// Writes the fields of `RtDetectionMeta` into `s`.
    pub fn write_structure(&self, s: &mut gst::StructureRef) {
        let objects = gst::Array::new(self.objects.iter().map(Detection::to_structure));
        s.set("source-id", self.source_id);
        s.set("frame-number", self.frame_number);
        s.set("width", self.width as i32);
        s.set("height", self.height as i32);
        s.set("stale", self.stale);
        s.set("objects", objects);
    }

    /// Attaches these detections to `buffer`, replacing detections already there.
    pub fn attach(&self, buffer: &mut gst::BufferRef) -> Result<(), gst::glib::BoolError> {
        let mut meta = match gst::meta::CustomMeta::from_mut_buffer(buffer, DETECTION_META) {
            Ok(meta) => meta,
            Err(_) => gst::meta::CustomMeta::add(buffer, DETECTION_META)?,
        };
        self.write_structure(meta.mut_structure());
        Ok(())
    }

    /// Makes these (one producer's detections of a frame) the frame's detections, keeping
    /// those of other producers already there (`upstream`, read from the buffer): a second
    /// detector in a row appends instead of replacing. Its own earlier objects are replaced.
    /// The frame keeps upstream's `source_id` and `frame_number` (the frame's identity is
    /// the first producer's), and is `stale` only when both are: fresh detections from one
    /// producer make the frame fresh.
    pub fn merge_from(&mut self, upstream: Detections, producer: &str) {
        let mine = std::mem::take(&mut self.objects);
        self.objects = upstream
            .objects
            .into_iter()
            .filter(|o| o.producer.as_deref() != Some(producer))
            .chain(mine)
            .collect();
        self.source_id = upstream.source_id;
        self.frame_number = upstream.frame_number;
        self.stale &= upstream.stale;
    }

    /// Removes the detections from `buffer`; returns whether there were any.
    pub fn remove(buffer: &mut gst::BufferRef) -> bool {
        match gst::meta::CustomMeta::from_mut_buffer(buffer, DETECTION_META) {
            Ok(meta) => meta.remove().is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_a_buffer() {
        gst::init().unwrap();
        crate::register();
        let dets = Detections {
            source_id: 3,
            frame_number: 42,
            width: 768,
            height: 576,
            stale: true,
            objects: vec![
                Detection {
                    class_id: 0,
                    label: "person".into(),
                    confidence: 0.875,
                    x: 10.5,
                    y: 20.25,
                    w: 100.0,
                    h: 200.0,
                    track_id: None,
                    producer: None,
                },
                Detection {
                    class_id: 2,
                    label: "car".into(),
                    confidence: 0.5,
                    x: 1.0,
                    y: 2.0,
                    w: 3.0,
                    h: 4.0,
                    track_id: Some(7),
                    producer: Some("vehicles".into()),
                },
            ],
        };
        let mut buffer = gst::Buffer::new();
        dets.attach(buffer.get_mut().unwrap()).unwrap();
        assert_eq!(Detections::from_buffer(&buffer), Some(dets.clone()));

        // Attaching again replaces rather than adding a second meta.
        let mut fewer = dets.clone();
        fewer.objects.truncate(1);
        fewer.attach(buffer.get_mut().unwrap()).unwrap();
        assert_eq!(Detections::from_buffer(&buffer), Some(fewer));
        assert!(Detections::remove(buffer.get_mut().unwrap()));
        assert_eq!(Detections::from_buffer(&buffer), None);
    }

    #[test]
    fn json_round_trip_and_errors_that_say_what_is_wrong() {
        let dets = Detections {
            source_id: 1,
            frame_number: 9,
            width: 640,
            height: 480,
            stale: false,
            objects: vec![Detection {
                class_id: 0,
                label: "person".into(),
                confidence: 0.5,
                x: 1.25,
                y: 2.5,
                w: 30.0,
                h: 60.0,
                track_id: Some(4),
                producer: Some("people".into()),
            }],
        };
        let json = dets.to_json(Some(33_000_000));
        assert_eq!(
            Detections::from_json(&json),
            Ok((dets.clone(), Some(33_000_000)))
        );
        let text = r#"{"source_id":0,"frame":1,"width":8,"height":8,"objects":[{"class_id":2,"confidence":0.9,"x":0,"y":0,"w":4,"h":4}]}"#;
        let (parsed, pts) = Detections::from_json(&serde_json::from_str(text).unwrap()).unwrap();
        assert_eq!(
            (parsed.objects[0].track_id, pts, parsed.stale),
            (None, None, false)
        );
        for (text, error) in [
            (
                r#"{"frame":1,"width":8,"height":8,"objects":[]}"#,
                "source_id",
            ),
            (
                r#"{"source_id":0,"frame":-1,"width":8,"height":8,"objects":[]}"#,
                "frame",
            ),
            (
                r#"{"source_id":0,"frame":1,"width":8,"height":8}"#,
                "objects",
            ),
            (
                r#"{"source_id":0,"frame":1,"width":8,"height":8,"objects":[{"class_id":0,"confidence":1,"x":0,"y":0,"w":4}]}"#,
                "objects[0]: object without a number \"h\"",
            ),
        ] {
            let e = Detections::from_json(&serde_json::from_str(text).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains(error), "{e}");
        }
        let text = r#"{"source_id":0,"frame":1,"width":8,"height":8,"objects":[{"class_id":-1}]}"#;
        assert_eq!(
            Detections::from_json(&serde_json::from_str(text).unwrap()),
            Err(JsonError::Object {
                index: 0,
                error: Box::new(JsonError::NoClassId)
            })
        );
    }

    #[test]
    fn a_second_producer_appends_and_replaces_only_its_own() {
        let obj = |label: &str, producer: &str| Detection {
            label: label.into(),
            producer: Some(producer.into()),
            ..Default::default()
        };
        let upstream = Detections {
            source_id: 2,
            frame_number: 40,
            stale: false,
            objects: vec![obj("car", "vehicles"), obj("old plate", "plates")],
            ..Default::default()
        };
        let mut mine = Detections {
            source_id: 0,
            frame_number: 7,
            stale: true,
            objects: vec![obj("plate", "plates")],
            ..Default::default()
        };
        mine.merge_from(upstream.clone(), "plates");
        let labels: Vec<&str> = mine.objects.iter().map(|o| o.label.as_str()).collect();
        assert_eq!(
            labels,
            ["car", "plate"],
            "its own earlier objects are replaced"
        );
        assert_eq!(
            (mine.source_id, mine.frame_number),
            (2, 40),
            "upstream's frame identity"
        );
        assert!(
            !mine.stale,
            "fresh upstream detections make the frame fresh"
        );
        let mut fresh = Detections::default();
        fresh.merge_from(
            Detections {
                stale: true,
                ..upstream
            },
            "plates",
        );
        assert!(!fresh.stale, "and fresh ones of its own");
    }
}
