//! The service's configuration: a YAML file (or the quick command-line form), checked as a
//! whole before anything starts. Unknown keys and bad values are errors that name the file,
//! the line and the key. The JSON Schema in `rtanalytics/config.schema.json` is generated
//! from these types (`rtanalytics schema`), and a test keeps it in step.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The cameras, streams and files to analyse. More can be added while running through
    /// the HTTP API.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// The detector, shared and batched across all sources.
    pub model: ModelConfig,
    #[serde(default)]
    pub tracker: TrackerConfig,
    /// rtalert rules file (YAML) for every source that has no rules of its own.
    #[serde(default)]
    pub rules: Option<PathBuf>,
    #[serde(default)]
    pub outputs: OutputsConfig,
    /// Alert clips (rtrecord): each source's video, boxes drawn, H.264-encoded and kept for
    /// the seconds before an alert; every alert (and POST /api/v1/streams/{id}/record) writes
    /// a clip from pre_capture before to post_capture after. Off when absent.
    #[serde(default)]
    pub recording: Option<RecordingConfig>,
    /// RTSP re-streaming: each source's video, boxes drawn, at rtsp://LISTEN/ID (VLC, an NVR,
    /// another pipeline). Off when absent.
    #[serde(default)]
    pub restream: Option<RestreamConfig>,
    /// Live HLS of each source's video, boxes drawn, for the dashboard at http://LISTEN/ and
    /// any HLS player (FOLDER/ID/index.m3u8, served at /hls/ID/index.m3u8). Off when absent.
    #[serde(default)]
    pub hls: Option<HlsConfig>,
    /// The H.264 encoder that recording, re-streaming and HLS share (one per source).
    #[serde(default)]
    pub encoder: EncoderConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    /// This instance's share of the sources, "I/N" (0-based): it runs the sources whose
    /// id hashes to I modulo N. The command line's --shard overrides it.
    #[serde(default)]
    pub shard: Option<String>,
    /// On SIGTERM/SIGINT, the most milliseconds to wait for in-flight frames and alert
    /// outputs to drain before stopping anyway.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_ms: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name: letters, digits, '.', '_' and '-', starting with a letter or digit (used in
    /// metrics labels, outputs and folder names).
    pub id: String,
    /// file://, rtsp:// (rtspt:// for TCP), http(s)://... Credentials are masked in logs.
    pub uri: String,
    /// A disabled source is kept in the config but not run.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// rtalert rules file (YAML, zones and lines included) for this source only.
    #[serde(default)]
    pub rules: Option<PathBuf>,
    /// Play files again from the start when they end (live streams always reconnect).
    #[serde(default = "yes", rename = "loop")]
    pub loop_: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// ONNX detector (YOLOX, YOLOv5, YOLOv8/YOLO11 export).
    pub file: PathBuf,
    /// onnxruntime, openvino or auto (the faster here: ONNX Runtime on NVIDIA GPUs and in
    /// f32 and quantized models; OpenVINO in bf16 for float models on CPUs that compute bf16
    /// natively, when precision is bf16 or
    /// f16, or when device names an OpenVINO device).
    #[serde(default = "auto")]
    pub backend: String,
    /// auto, cpu, cuda:N, or an OpenVINO device: openvino:GPU, openvino:GPU.N, openvino:NPU,
    /// openvino:AUTO, openvino:CPU (rtinfer's `device`).
    #[serde(default = "auto")]
    pub device: String,
    /// auto, f32, bf16 or f16 (auto: the backend's default, bf16 with OpenVINO on CPUs with
    /// AMX or AVX-512 BF16; f32 is exact on the CPU, where backend auto then runs ONNX Runtime; bf16 and
    /// f16 run on OpenVINO).
    #[serde(default = "auto")]
    pub precision: String,
    /// Frames of all sources run as one batch (dynamic-batch models).
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Milliseconds a frame waits for its batch to fill.
    #[serde(default = "default_batch_timeout")]
    pub batch_timeout_ms: u32,
    /// Run the model on every Nth frame of each source; frames in between carry the last
    /// detections, flagged stale.
    #[serde(default = "one")]
    pub interval: u32,
    /// Model executions in flight (0 = one per core).
    #[serde(default)]
    pub requests: u32,
    /// Threads of each request (0 = auto).
    #[serde(default)]
    pub threads: u32,
    /// Detections below this confidence are dropped.
    #[serde(default)]
    pub confidence_threshold: Option<f64>,
    /// Only report these classes: "person,car" or "0,2".
    #[serde(default)]
    pub classes: Option<String>,
    /// Milliseconds a frame may wait for inference before it leaves with the last
    /// detections (0 = infer every frame).
    #[serde(default)]
    pub max_latency_ms: u32,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackerConfig {
    /// Give detections track ids (rttrack) before the rules see them.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// rttrack's mode (bytetrack or iou); empty keeps rttrack's default.
    #[serde(default)]
    pub mode: Option<String>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            enabled: true,
            mode: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Folder of the clips: one sub-folder per source, clips named SOURCE-UTCTIME.mp4.
    pub folder: PathBuf,
    /// Seconds kept before a trigger (the clip starts at the keyframe at or before them).
    #[serde(default = "five")]
    pub pre_capture: f64,
    /// Seconds recorded after a trigger; a trigger during a clip extends it.
    #[serde(default = "five")]
    pub post_capture: f64,
    /// Longest clip, in seconds.
    #[serde(default = "sixty")]
    pub max_duration: f64,
    /// Clips kept per source, the oldest removed first (0: no limit).
    #[serde(default)]
    pub max_clips: u32,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestreamConfig {
    /// ADDRESS:PORT of the RTSP server.
    #[serde(default = "default_rtsp_listen")]
    pub listen: String,
    /// User name viewers sign in with when a password is set.
    #[serde(default = "default_rtsp_user")]
    pub user: String,
    /// Password viewers sign in with (RTSP Digest authentication, so it never crosses the
    /// network in the clear); mandatory when listening beyond loopback. The environment
    /// variable RTANALYTICS_RTSP_PASSWORD overrides it.
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HlsConfig {
    /// Folder of the playlists and segments: one sub-folder per source, emptied when the
    /// source starts.
    pub folder: PathBuf,
    /// Shortest length of a segment in seconds: a segment ends at the first keyframe after
    /// it, so it lasts a whole number of `encoder.keyframe_interval`s.
    #[serde(default = "two")]
    pub segment_seconds: u32,
    /// Segments listed in the live playlist.
    #[serde(default = "five_u32")]
    pub playlist_length: u32,
    /// Segments kept on disk; more than playlist_length, so that a player never asks for a
    /// segment that was just deleted.
    #[serde(default = "ten_u32")]
    pub max_files: u32,
    /// hls.js (dist/hls.min.js) for the dashboard; scripts/setup.sh installs it from npm
    /// into the default, ~/.local/share/rtinfer/web/node_modules/hls.js/dist/hls.min.js.
    #[serde(default)]
    pub hls_js: Option<PathBuf>,
}

fn two() -> u32 {
    2
}
fn five_u32() -> u32 {
    5
}
fn ten_u32() -> u32 {
    10
}

fn default_rtsp_user() -> String {
    "viewer".into()
}

fn default_rtsp_listen() -> String {
    "127.0.0.1:8554".into()
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// H.264 bitrate in kbit/s.
    #[serde(default = "default_bitrate")]
    pub bitrate_kbps: u32,
    /// Frames between keyframes: a clip starts up to this many frames before pre_capture, and
    /// an RTSP client waits up to this many frames for its first picture.
    #[serde(default = "default_gop")]
    pub keyframe_interval: u32,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            bitrate_kbps: default_bitrate(),
            keyframe_interval: default_gop(),
        }
    }
}

fn five() -> f64 {
    5.0
}
fn sixty() -> f64 {
    60.0
}
fn default_bitrate() -> u32 {
    2000
}
fn default_gop() -> u32 {
    30
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputsConfig {
    #[serde(default)]
    pub detections: DetectionsOutput,
    #[serde(default)]
    pub alerts: AlertsOutput,
}

/// Every frame's detections as JSON lines, each with its source id.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectionsOutput {
    /// Print them on standard output.
    #[serde(default)]
    pub stdout: bool,
    /// Append them to this file ("{source}" in the name gives one file per source).
    #[serde(default)]
    pub file: Option<String>,
    /// Publish them to NATS JetStream: nats://[user:password@]host:port/SUBJECT[?stream=NAME]
    /// (subject SUBJECT.SOURCE, one message per frame, acknowledged).
    #[serde(default)]
    pub nats_url: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsOutput {
    /// Print each alert as a JSON line on standard output.
    #[serde(default = "yes")]
    pub stdout: bool,
    /// Append each alert as a JSON line to this file.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// POST each alert here (http:// or https://), the alert id as Idempotency-Key.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Publish each alert over MQTT (QoS 1): mqtt://[user:password@]host:port/topic, or mqtts:// for TLS.
    #[serde(default)]
    pub mqtt_url: Option<String>,
    /// Publish each alert to NATS JetStream: nats://[user:password@]host:port/SUBJECT
    /// [?stream=NAME]; subject SUBJECT.SOURCE, the alert id as Nats-Msg-Id (JetStream drops
    /// retried copies); the stream is created when missing.
    #[serde(default)]
    pub nats_url: Option<String>,
}

impl Default for AlertsOutput {
    fn default() -> Self {
        AlertsOutput {
            stdout: true,
            file: None,
            webhook_url: None,
            mqtt_url: None,
            nats_url: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port of the HTTP API and /metrics (the command line's --listen
    /// overrides it).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer token the API requires; mandatory when listening beyond loopback. The
    /// environment variable RTANALYTICS_TOKEN overrides it.
    #[serde(default)]
    pub token: Option<String>,
    /// Serve /metrics without the token too (for Prometheus set up by pod annotations,
    /// which cannot send one). /healthz and /readyz never need it.
    #[serde(default)]
    pub metrics_without_token: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            token: None,
            metrics_without_token: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// text (for people) or json (for log shippers).
    #[serde(default = "default_log_format")]
    pub format: String,
    /// error, warn, info, debug or trace (or a tracing filter such as "rtanalytics=debug").
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn auto() -> String {
    "auto".into()
}
fn default_batch_size() -> u32 {
    4
}
fn default_batch_timeout() -> u32 {
    40
}
fn default_stop_timeout() -> u64 {
    10_000
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_log_format() -> String {
    "text".into()
}
fn default_log_level() -> String {
    "info".into()
}

/// The JSON Schema of the config file.
pub fn schema() -> String {
    let schema = schemars::schema_for!(Config);
    serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n"
}

impl Config {
    /// Reads and checks a config file; errors name the file, and the line and key where
    /// they are known.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("Cannot read the config {}: {e}", path.display()))?;
        let config = Self::parse(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(config.relative_to(base))
    }

    /// Parses config text; `origin` names it in errors. `${NAME}` and `${NAME:-default}`
    /// take values from the environment first (lines keep their numbers).
    pub fn parse(text: &str, origin: &str) -> Result<Config, String> {
        let text =
            expand_env(text, |k| std::env::var(k).ok()).map_err(|e| format!("{origin}: {e}"))?;
        // The parser quotes the value it could not take, which may be a URI with a password.
        let config: Config = serde_yaml_ng::from_str(&text)
            .map_err(|e| format!("{origin}: {}", rtmeta::mask::mask_uris_in(&e.to_string())))?;
        config.check_values().map_err(|e| {
            // The error starts with the key's path ("sources[1].id: ..."): find its line.
            let path = e.split(':').next().unwrap_or("");
            match line_of(&text, path) {
                Some(n) => format!("{origin}: {e} (line {n})"),
                None => format!("{origin}: {e}"),
            }
        })?;
        Ok(config)
    }

    /// Paths in a config file are relative to the file's folder.
    fn relative_to(mut self, base: &Path) -> Config {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.model.file);
        if let Some(r) = self.rules.as_mut() {
            fix(r);
        }
        for s in &mut self.sources {
            if let Some(r) = s.rules.as_mut() {
                fix(r);
            }
        }
        if let Some(f) = self.outputs.alerts.file.as_mut() {
            fix(f);
        }
        if let Some(f) = self.outputs.detections.file.as_mut()
            && Path::new(f).is_relative()
        {
            *f = base.join(&*f).to_string_lossy().into_owned();
        }
        if let Some(r) = self.recording.as_mut() {
            fix(&mut r.folder);
        }
        if let Some(h) = self.hls.as_mut() {
            fix(&mut h.folder);
            if let Some(js) = h.hls_js.as_mut() {
                fix(js);
            }
        }
        self
    }

    /// Checks that need no file system: names, choices, ranges.
    pub fn check_values(&self) -> Result<(), String> {
        let mut seen = HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            s.check().map_err(|e| format!("sources[{i}].{e}"))?;
            if !seen.insert(s.id.as_str()) {
                return Err(format!("sources[{i}].id: '{}' is used twice", s.id));
            }
        }
        let m = &self.model;
        one_of(
            "model.backend",
            &m.backend,
            &["auto", "onnxruntime", "openvino"],
        )?;
        one_of(
            "model.precision",
            &m.precision,
            &["auto", "f32", "bf16", "f16"],
        )?;
        m.device
            .parse::<rtalgo::device::DeviceRequest>()
            .map_err(|e| format!("model.{e}"))?;
        in_range("model.batch_size", m.batch_size as f64, 1.0, 64.0)?;
        in_range("model.interval", m.interval as f64, 1.0, 1000.0)?;
        // rtinfer's property ranges: a value beyond them would fail the element, not name
        // the key.
        in_range("model.requests", m.requests as f64, 0.0, 64.0)?;
        in_range("model.threads", m.threads as f64, 0.0, 256.0)?;
        in_range(
            "model.batch_timeout_ms",
            m.batch_timeout_ms as f64,
            0.0,
            10_000.0,
        )?;
        in_range(
            "model.max_latency_ms",
            m.max_latency_ms as f64,
            0.0,
            60_000.0,
        )?;
        if let Some(c) = m.confidence_threshold {
            in_range("model.confidence_threshold", c, 0.0, 1.0)?;
        }
        if let Some(mode) = &self.tracker.mode {
            one_of("tracker.mode", mode, &["bytetrack", "iou"])?;
        }
        one_of("logging.format", &self.logging.format, &["text", "json"])?;
        check_log_level(&self.logging.level)?;
        if self
            .http
            .token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(
                "http.token: empty; set a token, or remove the key to serve loopback \
                        only without one"
                    .into(),
            );
        }
        if let Some(r) = &self.recording {
            in_range("recording.pre_capture", r.pre_capture, 0.0, 3600.0)?;
            in_range("recording.post_capture", r.post_capture, 0.0, 3600.0)?;
            in_range("recording.max_duration", r.max_duration, 0.1, 86_400.0)?;
        }
        if let Some(h) = &self.hls {
            in_range("hls.segment_seconds", h.segment_seconds as f64, 1.0, 60.0)?;
            in_range("hls.playlist_length", h.playlist_length as f64, 1.0, 100.0)?;
            if h.max_files <= h.playlist_length {
                return Err(format!(
                    "hls.max_files: {} must be more than hls.playlist_length ({}), or players \
                     may ask for segments already deleted",
                    h.max_files, h.playlist_length
                ));
            }
        }
        let e = &self.encoder;
        in_range(
            "encoder.bitrate_kbps",
            e.bitrate_kbps as f64,
            16.0,
            100_000.0,
        )?;
        in_range(
            "encoder.keyframe_interval",
            e.keyframe_interval as f64,
            1.0,
            1000.0,
        )?;
        if let Some(r) = &self.restream {
            r.listen.parse::<std::net::SocketAddr>().map_err(|_| {
                format!(
                    "restream.listen: '{}' is not ADDRESS:PORT (e.g. 127.0.0.1:8554)",
                    r.listen
                )
            })?;
            if r.user.is_empty() || r.user.contains(':') {
                return Err(format!(
                    "restream.user: '{}' is not a user name (not empty, no ':')",
                    r.user
                ));
            }
            if r.password.as_deref() == Some("") {
                return Err("restream.password is empty: leave it out or set one".into());
            }
        }
        self.check_urls()?;
        if let Some(shard) = &self.shard {
            crate::shard::Shard::parse(shard).map_err(|e| format!("shard: {e}"))?;
        }
        self.http
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| {
                format!(
                    "http.listen: '{}' is not ADDRESS:PORT (e.g. 127.0.0.1:8080)",
                    self.http.listen
                )
            })?;
        Ok(())
    }

    /// Checks that read files: the model exists, and every rules file parses (with
    /// rtalert's own parser, so `check` and `run` agree).
    pub fn check_files(&self) -> Result<(), String> {
        let model = &self.model.file;
        let meta = std::fs::metadata(model)
            .map_err(|e| format!("model.file: cannot read {}: {e}", model.display()))?;
        if !meta.is_file() || meta.len() == 0 {
            return Err(format!(
                "model.file: {} is not an ONNX model file",
                model.display()
            ));
        }
        let rules = self.rules.iter().map(|r| ("rules".to_string(), r)).chain(
            self.sources
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.rules.as_ref().map(|r| (format!("sources[{i}].rules"), r))),
        );
        for (key, path) in rules {
            check_rules_file(path).map_err(|e| format!("{key}: {e}"))?;
        }
        if let Some(f) = &self.outputs.alerts.file {
            check_parent("outputs.alerts.file", f)?;
        }
        if let Some(f) = &self.outputs.detections.file {
            check_parent("outputs.detections.file", Path::new(f))?;
        }
        if let Some(r) = &self.recording {
            check_folder("recording.folder", &r.folder)?;
        }
        if let Some(h) = &self.hls {
            check_folder("hls.folder", &h.folder)?;
            if let Some(js) = &h.hls_js
                && !js.is_file()
            {
                return Err(format!(
                    "hls.hls_js: {} is not a file (npm install hls.js, then give \
                     node_modules/hls.js/dist/hls.min.js)",
                    js.display()
                ));
            }
        }
        Ok(())
    }
}

impl SourceConfig {
    pub fn check(&self) -> Result<(), String> {
        check_id(&self.id).map_err(|e| format!("id: {e}"))?;
        let scheme = self.uri.split_once("://").map(|(s, _)| s);
        match scheme {
            Some(s)
                if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') =>
            {
                Ok(())
            }
            // Not quoted: a malformed URI may still hold a password.
            _ => Err("uri: this is not a URI (file:///path, rtsp://host/path, ...)".into()),
        }
    }
}

impl Config {
    /// Checks the output URLs' form (not whether their servers answer: they may come later).
    fn check_urls(&self) -> Result<(), String> {
        let o = &self.outputs;
        for (key, url) in [
            ("outputs.alerts.nats_url", &o.alerts.nats_url),
            ("outputs.detections.nats_url", &o.detections.nats_url),
        ] {
            if let Some(u) = url {
                gstrtalert::outputs::parse_nats_url(u).map_err(|e| format!("{key}: {e}"))?;
            }
        }
        if let Some(u) = &o.alerts.mqtt_url {
            gstrtalert::outputs::parse_mqtt_url(u)
                .map_err(|e| format!("outputs.alerts.mqtt_url: {e}"))?;
        }
        if let Some(u) = &o.alerts.webhook_url
            && !u.starts_with("http://")
            && !u.starts_with("https://")
        {
            return Err(format!(
                "outputs.alerts.webhook_url: \"{}\" must start with http:// or https://",
                rtmeta::mask::mask_webhook(u)
            ));
        }
        Ok(())
    }
}

/// Replaces `${NAME}` and `${NAME:-default}` (default when unset or empty); `$$` is a `$`.
fn expand_env(text: &str, var: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("$$") {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${") {
            let end = r.find('}').ok_or_else(|| {
                let line = text[..text.len() - rest.len()].lines().count().max(1);
                format!("line {line}: '${{' without a closing '}}'")
            })?;
            let (name, default) = match r[..end].split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (&r[..end], None),
            };
            match (var(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    let line = text[..text.len() - rest.len()].lines().count().max(1);
                    return Err(format!(
                        "line {line}: the environment variable {name} is not set \
                         (write ${{{name}:-default}} for a default)"
                    ));
                }
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The line (1-based) of a key path such as `model.interval` or `sources[1].id` in YAML
/// text written in block style, found by indentation; None when it is not there.
fn line_of(text: &str, path: &str) -> Option<usize> {
    // (raw indent, whether the line is a list item, key indent, content after "- ").
    let lines: Vec<Option<(usize, bool, usize, &str)>> = text
        .lines()
        .map(|l| {
            let t = l.trim_start();
            let indent = l.len() - t.len();
            if t.is_empty() || t.starts_with('#') {
                return None;
            }
            Some(match t.strip_prefix("- ") {
                Some(rest) => {
                    let key = rest.trim_start();
                    (indent, true, indent + 2 + rest.len() - key.len(), key)
                }
                None => (indent, false, indent, t),
            })
        })
        .collect();
    let mut pos = 0;
    // Keys of the current block are indented more than this (None: the top level).
    let mut parent: Option<usize> = None;
    let mut found = None;
    for segment in path.split('.') {
        let (key, index) = match segment.split_once('[') {
            Some((k, i)) => (k, Some(i.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (segment, None),
        };
        let mut hit = None;
        for (n, line) in lines.iter().enumerate().skip(pos) {
            let Some((raw, _, indent, t)) = *line else {
                continue;
            };
            // Left the block: a line at or left of the parent (the item line we start on
            // excepted).
            if n > pos && parent.is_some_and(|p| raw <= p) {
                break;
            }
            let is_key = t.strip_prefix(key).is_some_and(|r| r.starts_with(':'));
            if is_key && parent.is_none_or(|p| indent > p) {
                hit = Some((n, indent));
                break;
            }
        }
        let (n, indent) = hit?;
        found = Some(n);
        (pos, parent) = (n + 1, Some(indent));
        if let Some(wanted) = index {
            let items: Vec<(usize, usize)> = lines
                .iter()
                .enumerate()
                .skip(pos)
                .filter_map(|(m, l)| l.map(|l| (m, l)))
                .take_while(|(_, (raw, item, ..))| *raw > indent || (*raw == indent && *item))
                .filter(|(_, (_, item, ..))| *item)
                .map(|(m, (raw, ..))| (m, raw))
                .collect();
            let first = items.first()?.1;
            let (m, raw) = *items.iter().filter(|(_, r)| *r == first).nth(wanted)?;
            found = Some(m);
            (pos, parent) = (m, Some(raw));
        }
    }
    found.map(|n| n + 1)
}

/// Source ids name GStreamer elements, metric labels and files.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!("'{id}' must have 1 to 64 characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "'{id}' may only have letters, digits, '.', '_' and '-'"
        ));
    }
    // Ids name folders (HLS, clips): "." and ".." would be the folder itself or its parent.
    if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("'{id}' must start with a letter or digit"));
    }
    Ok(())
}

pub fn check_rules_file(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    gstrtalert::rules::parse_yaml(&text, &path.display().to_string())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A folder the service creates when it starts: not a file, and its parent is there.
fn check_folder(key: &str, folder: &Path) -> Result<(), String> {
    if folder.exists() && !folder.is_dir() {
        return Err(format!("{key}: {} is not a folder", folder.display()));
    }
    check_parent(key, folder)
}

fn check_parent(key: &str, file: &Path) -> Result<(), String> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    match dir {
        Some(d) if !d.is_dir() => Err(format!("{key}: the folder {} does not exist", d.display())),
        _ => Ok(()),
    }
}

/// A level (`warn`) or a tracing filter (`info,rtanalytics=debug`): anything else would
/// silence every log line, errors included.
fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let valid = if level.contains('=') || level.contains(',') {
        tracing_subscriber::EnvFilter::try_new(level).is_ok()
    } else {
        LEVELS.contains(&level.to_ascii_lowercase().as_str())
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "logging.level: '{level}' is not one of {} nor a filter such as \
             'info,rtanalytics=debug'",
            LEVELS.join(", ")
        ))
    }
}

fn one_of(key: &str, value: &str, choices: &[&str]) -> Result<(), String> {
    if choices.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{key}: '{value}' is not one of {}",
            choices.join(", ")
        ))
    }
}

fn in_range(key: &str, v: f64, min: f64, max: f64) -> Result<(), String> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(format!("{key}: {v} is not in {min}..{max}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
sources:
  - id: cam1
    uri: rtsp://user:pw@127.0.0.1:8554/test
  - id: lobby
    uri: file:///tmp/x.mp4
    loop: false
model:
  file: m.onnx
  interval: 2
";

    #[test]
    fn parses_with_defaults() {
        let c = Config::parse(GOOD, "cameras.yaml").unwrap();
        assert_eq!(c.sources.len(), 2);
        assert!(c.sources[0].enabled && c.sources[0].loop_);
        assert!(!c.sources[1].loop_);
        assert_eq!(c.model.interval, 2);
        assert_eq!(c.model.batch_size, 4);
        assert_eq!(c.http.listen, "127.0.0.1:8080");
        assert!(c.tracker.enabled && c.outputs.alerts.stdout);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = GOOD.replace("    loop: false", "    loop: false\n    rulez: r.yaml");
        let e = Config::parse(&text, "cameras.yaml").unwrap_err();
        assert!(e.starts_with("cameras.yaml: "), "{e}");
        assert!(e.contains("rulez") && e.contains("line 7"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("  interval: 2", "  interval: 0", "model.interval"),
            (
                "  interval: 2",
                "  interval: 2\n  backend: tract",
                "model.backend",
            ),
            (
                "id: lobby",
                "id: cam1",
                "sources[1].id: 'cam1' is used twice",
            ),
            ("id: lobby", "id: 'a b'", "sources[1].id:"),
            // Ids name folders: the folder itself or its parent is no id.
            ("id: lobby", "id: '..'", "must start with a letter or digit"),
            (
                "id: lobby",
                "id: .hidden",
                "must start with a letter or digit",
            ),
            (
                "  interval: 2",
                "  interval: 2\n  device: openvino:TPU",
                "model.device \"openvino:tpu\": expected openvino:CPU",
            ),
            (
                "uri: file:///tmp/x.mp4",
                "uri: /tmp/x.mp4",
                "sources[1].uri:",
            ),
            // Beyond rtinfer's property ranges: named here, not a failure of the element.
            (
                "  interval: 2",
                "  interval: 2\n  threads: 1000",
                "model.threads",
            ),
            (
                "  interval: 2",
                "  interval: 2\n  batch_timeout_ms: 20000",
                "model.batch_timeout_ms",
            ),
            (
                "  interval: 2",
                "  interval: 2\n  max_latency_ms: 100000",
                "model.max_latency_ms",
            ),
        ];
        let extra = |tail: &str| format!("{GOOD}{tail}");
        for (text, want) in [
            // An unknown level once silenced every log line, errors included.
            (
                extra("logging:\n  level: warning\n"),
                "logging.level: 'warning'",
            ),
            // An empty token once opened the API to an empty cookie.
            (extra("http:\n  token: ''\n"), "http.token: empty"),
        ] {
            let e = Config::parse(&text, "c.yaml").unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        for level in [
            "debug",
            "WARN",
            "info,rtanalytics=debug",
            "rtanalytics=trace",
        ] {
            Config::parse(&extra(&format!("logging:\n  level: '{level}'\n")), "c.yaml")
                .unwrap_or_else(|e| panic!("{level}: {e}"));
        }
        for (from, to, want) in cases {
            let e = Config::parse(&GOOD.replace(from, to), "c.yaml").unwrap_err();
            assert!(e.contains(want), "{to}: {e}");
        }
        // The parser quotes a value it cannot take: a URI's password is masked there too.
        let e = Config::parse(
            "sources: [ \"rtsp://admin:Hunter2secret@10.0.0.5/stream\" ]\nmodel:\n  file: m.onnx\n",
            "c.yaml",
        )
        .unwrap_err();
        assert!(
            e.contains("rtsp://admin:***@10.0.0.5") && !e.contains("Hunter2"),
            "{e}"
        );
        let e =
            Config::parse(&GOOD.replace("  interval: 2", "  interval: two"), "c.yaml").unwrap_err();
        assert!(e.contains("model.interval") && e.contains("line 9"), "{e}");
    }

    #[test]
    fn devices_are_read_as_rtinfer_reads_them() {
        for d in [
            "auto",
            "cpu",
            "cuda:1",
            "openvino:GPU",
            "openvino:GPU.1",
            "npu",
        ] {
            let text = GOOD.replace("  interval: 2", &format!("  interval: 2\n  device: {d}"));
            assert!(Config::parse(&text, "c.yaml").is_ok(), "{d}");
        }
    }

    #[test]
    fn value_errors_name_the_line() {
        let e = Config::parse(&GOOD.replace("  interval: 2", "  interval: 0"), "c.yaml");
        assert!(e.unwrap_err().ends_with("(line 9)"));
        let e = Config::parse(&GOOD.replace("id: lobby", "id: 'a b'"), "c.yaml");
        assert!(e.unwrap_err().ends_with("(line 4)"));
        let e = Config::parse(&GOOD.replace("uri: file:///tmp/x.mp4", "uri: x"), "c.yaml");
        assert!(e.unwrap_err().ends_with("(line 5)"));
    }

    #[test]
    fn lines_of_key_paths() {
        let text = "\
# comment
model:
  file: m.onnx
  interval: 2
sources:
- id: a
  uri: file:///a
-   id: b
    uri: file:///b
http:
  listen: x
";
        assert_eq!(line_of(text, "model"), Some(2));
        assert_eq!(line_of(text, "model.interval"), Some(4));
        assert_eq!(line_of(text, "sources[0].uri"), Some(7));
        assert_eq!(line_of(text, "sources[1].id"), Some(8));
        assert_eq!(line_of(text, "sources[1].uri"), Some(9));
        assert_eq!(line_of(text, "sources[2].id"), None);
        assert_eq!(line_of(text, "http.listen"), Some(11));
        assert_eq!(line_of(text, "model.listen"), None);
        assert_eq!(line_of(GOOD, "sources[1].uri"), Some(5));
    }

    #[test]
    fn paths_are_relative_to_the_file() {
        let c = Config::parse(GOOD, "x")
            .unwrap()
            .relative_to(Path::new("/etc/rt"));
        assert_eq!(c.model.file, Path::new("/etc/rt/m.onnx"));
        let text = format!("{GOOD}recording:\n  folder: clips\nhls:\n  folder: /srv/hls\n");
        let c = Config::parse(&text, "x")
            .unwrap()
            .relative_to(Path::new("/etc/rt"));
        assert_eq!(c.recording.unwrap().folder, Path::new("/etc/rt/clips"));
        assert_eq!(c.hls.unwrap().folder, Path::new("/srv/hls"));
    }

    #[test]
    fn hls_keeps_more_files_than_it_lists() {
        let hls = |extra: &str| format!("{GOOD}hls:\n  folder: /tmp/hls\n{extra}");
        let c = Config::parse(&hls(""), "c.yaml").unwrap().hls.unwrap();
        assert_eq!(
            (c.segment_seconds, c.playlist_length, c.max_files),
            (2, 5, 10)
        );
        let e = Config::parse(&hls("  playlist_length: 6\n  max_files: 6\n"), "c.yaml");
        assert!(
            e.unwrap_err()
                .contains("hls.max_files: 6 must be more than")
        );
        let e = Config::parse(&hls("  segment_seconds: 0\n"), "c.yaml");
        assert!(e.unwrap_err().contains("hls.segment_seconds"));
    }

    #[test]
    fn restream_credentials_are_checked() {
        let restream = |extra: &str| format!("{GOOD}restream:\n  listen: 0.0.0.0:8554\n{extra}");
        let c = Config::parse(&restream(""), "c.yaml").unwrap();
        let r = c.restream.unwrap();
        assert_eq!((r.user.as_str(), r.password), ("viewer", None));
        for (extra, want) in [
            ("  user: ''\n", "restream.user"),
            ("  user: 'a:b'\n", "restream.user"),
            ("  password: ''\n", "restream.password is empty"),
        ] {
            let e = Config::parse(&restream(extra), "c.yaml").unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
        }
    }

    #[test]
    fn published_schema_is_current() {
        assert!(
            schema() == include_str!("../config.schema.json"),
            "rtanalytics/config.schema.json is out of date: run \
             target/release/rtanalytics schema > rtanalytics/config.schema.json"
        );
    }

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../examples/cameras.yaml");
        let c = Config::parse(text, "cameras.yaml").unwrap();
        assert_eq!(c.sources.len(), 2);
    }

    #[test]
    fn environment_variables_are_expanded() {
        let var = |k: &str| (k == "ROOT").then(|| "/opt/rt".to_string());
        let e = |t: &str| expand_env(t, var);
        assert_eq!(e("a: ${ROOT}/m.onnx").unwrap(), "a: /opt/rt/m.onnx");
        assert_eq!(e("a: ${NOPE:-../x}/m").unwrap(), "a: ../x/m");
        assert_eq!(e("a: $$5 $HOME").unwrap(), "a: $5 $HOME");
        let err = e("x: 1\ny: ${NOPE}").unwrap_err();
        assert!(err.contains("line 2") && err.contains("NOPE"), "{err}");
        assert!(e("y: ${ROOT").unwrap_err().contains("line 1"));
    }

    #[test]
    fn credentials_are_masked_in_errors() {
        let e = Config::parse(
            &GOOD.replace("uri: file:///tmp/x.mp4", "uri: user:secret@host"),
            "c",
        )
        .unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }
}
