//! The alert document sent to every output.

use rtmeta::Detection;

#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Unique per alert, the same on every delivery attempt (idempotency key).
    pub id: String,
    /// `start`, `ended`, `burst` or `crossing`.
    pub kind: &'static str,
    /// Why an `ended` alert came without the condition clearing: `reloaded` (the rules were
    /// replaced while it held), `eos`, `stopped` (the element stopped without EOS) or
    /// `flushed` (a flushing seek).
    pub reason: Option<&'static str>,
    pub rule: String,
    pub source_id: u32,
    /// Running time of the frame, in nanoseconds.
    pub stream_time: u64,
    pub frame: u64,
    /// Wall-clock time, ISO 8601 UTC.
    pub wall_time: String,
    /// Number of matching objects.
    pub count: u32,
    /// Burst alerts: how many alerts of the rule came within the window.
    pub burst_count: Option<u32>,
    /// Alerts held back for this key since the last one emitted.
    pub suppressed: u64,
    pub objects: Vec<Detection>,
    pub snapshot: Option<String>,
    /// The clip that holds the alert's moment, when an `rtrecord` downstream answered.
    pub clip: Option<String>,
    /// The track the alert is about (`key: track` rules and line crossings).
    pub track_id: Option<u64>,
    /// Line crossings: `in` or `out`.
    pub direction: Option<&'static str>,
    /// Start and ended alerts: how long the condition had held, in seconds.
    pub duration: Option<f64>,
    /// Line rules: crossings so far in each direction, on this source.
    pub crossed: Option<(u64, u64)>,
    /// Distinct tracks that have matched the rule on this source, when any had a track id.
    pub unique_tracks: Option<u64>,
}

impl Alert {
    pub fn to_json(&self) -> String {
        let objects: Vec<serde_json::Value> = self.objects.iter().map(|o| o.to_json()).collect();
        let mut v = serde_json::json!({
            "id": self.id,
            "kind": self.kind,
            "rule": self.rule,
            "source_id": self.source_id,
            "stream_time": self.stream_time as f64 / 1e9,
            "stream_time_ns": self.stream_time,
            "frame": self.frame,
            "wall_time": self.wall_time,
            "count": self.count,
            "suppressed": self.suppressed,
            "objects": objects,
        });
        if let Some(r) = self.reason {
            v["reason"] = r.into();
        }
        if let Some(n) = self.burst_count {
            v["burst_count"] = n.into();
        }
        if let Some(p) = &self.snapshot {
            v["snapshot"] = p.as_str().into();
        }
        if let Some(c) = &self.clip {
            v["clip"] = c.as_str().into();
        }
        if let Some(t) = self.track_id {
            v["track_id"] = t.into();
        }
        if let Some(d) = self.direction {
            v["direction"] = d.into();
        }
        if let Some(d) = self.duration {
            v["duration"] = ((d * 1000.0).round() / 1000.0).into();
        }
        if let Some((i, o)) = self.crossed {
            v["crossed_in"] = i.into();
            v["crossed_out"] = o.into();
        }
        if let Some(n) = self.unique_tracks {
            v["unique_tracks"] = n.into();
        }
        v.to_string()
    }

    /// The bus message structure: the main fields typed, and the whole document as `json`.
    pub fn to_structure(&self, json: &str) -> gst::Structure {
        gst::Structure::builder("rtalert")
            .field("id", self.id.as_str())
            .field("kind", self.kind)
            .field("rule", self.rule.as_str())
            .field("source-id", self.source_id)
            .field("stream-time", self.stream_time)
            .field("count", self.count)
            .field("suppressed", self.suppressed)
            .field_if_some("track-id", self.track_id)
            .field_if_some("direction", self.direction)
            .field_if_some("clip", self.clip.as_deref())
            .field("json", json)
            .build()
    }
}
