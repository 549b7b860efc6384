//! Alert rules: the YAML rules file, the compact inline syntax, and their validation.
//!
//! Values are checked while they are deserialised (zones, confidences, durations), so a bad
//! value in a file is reported with its line and column.

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

/// Deserialises through `TryFrom`, raising the error while the parser is still on the
/// value's own node so that it is reported at the value's line and column.
macro_rules! checked_deserialize {
    ($t:ty, $raw:ident, $method:ident) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str(stringify!($raw))
                    }
                    checked_deserialize!(@visit $t, $raw);
                }
                d.$method(V)
            }
        }
    };
    (@visit $t:ty, f64) => {
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<$t, E> {
            <$t>::try_from(v).map_err(E::custom)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$t, E> {
            self.visit_f64(v as f64)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$t, E> {
            self.visit_f64(v as f64)
        }
    };
    (@visit $t:ty, points) => {
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<$t, A::Error> {
            let mut points: Vec<Vec<f64>> = Vec::new();
            while let Some(p) = seq.next_element()? {
                points.push(p);
            }
            <$t>::try_from(points).map_err(serde::de::Error::custom)
        }
    };
}

/// Seconds, never negative.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Seconds(pub f64);
checked_deserialize!(Seconds, f64, deserialize_f64);

impl TryFrom<f64> for Seconds {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v.is_finite() && v >= 0.0 {
            Ok(Seconds(v))
        } else {
            Err(format!("{v} is not a duration: give seconds >= 0"))
        }
    }
}

impl Seconds {
    pub fn ns(self) -> u64 {
        (self.0 * 1e9) as u64
    }
}

/// A confidence between 0 and 1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Confidence(pub f32);
checked_deserialize!(Confidence, f64, deserialize_f64);

impl TryFrom<f64> for Confidence {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if (0.0..=1.0).contains(&v) {
            Ok(Confidence(v as f32))
        } else {
            Err(format!("confidence {v} is outside 0..1"))
        }
    }
}

/// A polygon in normalised frame coordinates (0..1), at least 3 points.
#[derive(Clone, Debug, PartialEq)]
pub struct Zone(pub Vec<(f64, f64)>);
checked_deserialize!(Zone, points, deserialize_seq);

impl TryFrom<Vec<Vec<f64>>> for Zone {
    type Error = String;
    fn try_from(points: Vec<Vec<f64>>) -> Result<Self, String> {
        if points.len() < 3 {
            return Err(format!(
                "a zone needs at least 3 points, this one has {}",
                points.len()
            ));
        }
        let mut out = Vec::with_capacity(points.len());
        for p in points {
            let [x, y] = p[..] else {
                return Err(format!("zone point {p:?} is not [x, y]"));
            };
            if !(0.0..=1.0).contains(&x) || !(0.0..=1.0).contains(&y) {
                return Err(format!(
                    "zone point [{x}, {y}] is outside the frame: coordinates are fractions 0..1"
                ));
            }
            out.push((x, y));
        }
        Ok(Zone(out))
    }
}

impl Zone {
    /// Whether `(x, y)` is inside the polygon; points on an edge count as inside.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let pts = &self.0;
        let mut inside = false;
        for i in 0..pts.len() {
            let (x1, y1) = pts[i];
            let (x2, y2) = pts[(i + 1) % pts.len()];
            // On the edge (collinear and within the segment's box)?
            let cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1);
            if cross.abs() < 1e-12
                && x >= x1.min(x2) - 1e-12
                && x <= x1.max(x2) + 1e-12
                && y >= y1.min(y2) - 1e-12
                && y <= y1.max(y2) + 1e-12
            {
                return true;
            }
            if (y1 > y) != (y2 > y) && x < (x2 - x1) * (y - y1) / (y2 - y1) + x1 {
                inside = !inside;
            }
        }
        inside
    }
}

/// A line segment in normalised frame coordinates (0..1): two distinct points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Line(pub (f64, f64), pub (f64, f64));
checked_deserialize!(Line, points, deserialize_seq);

impl TryFrom<Vec<Vec<f64>>> for Line {
    type Error = String;
    fn try_from(points: Vec<Vec<f64>>) -> Result<Self, String> {
        let pts = points
            .iter()
            .map(|p| match p[..] {
                [x, y] if (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y) => Ok((x, y)),
                [x, y] => Err(format!(
                    "line point [{x}, {y}] is outside the frame: coordinates are fractions 0..1"
                )),
                _ => Err(format!("line point {p:?} is not [x, y]")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        match pts[..] {
            [a, b] if a != b => Ok(Line(a, b)),
            [_, _] => Err("a line needs two different points".into()),
            _ => Err(format!(
                "a line has exactly 2 points, this one has {}",
                pts.len()
            )),
        }
    }
}

/// Which crossings of a line a rule alerts on. `in` is a crossing from the left of the line
/// (looking from its first point to its second, on screen) to its right: for a line drawn
/// left to right, moving down the frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    In,
    Out,
    #[default]
    Both,
}

/// Which point of a box is tested against the zone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    #[default]
    BottomCenter,
    Center,
    TopLeft,
    TopCenter,
}

impl Anchor {
    pub fn point(self, x: f32, y: f32, w: f32, h: f32) -> (f64, f64) {
        let (x, y, w, h) = (x as f64, y as f64, w as f64, h as f64);
        match self {
            Anchor::BottomCenter => (x + w / 2.0, y + h),
            Anchor::Center => (x + w / 2.0, y + h / 2.0),
            Anchor::TopLeft => (x, y),
            Anchor::TopCenter => (x + w / 2.0, y),
        }
    }
}

/// What, besides rule and source, tells alerts apart for cooldown and presence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyBy {
    /// One condition per rule and source, counting all matching objects.
    #[default]
    Rule,
    /// One condition per class.
    Class,
    /// One condition per tracked object (objects without a track id share one).
    Track,
}

/// A class given by id or by label.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ClassRef {
    Id(u32),
    Label(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// More than this many alerts of the rule within `window` become one burst alert.
    pub count: u32,
    pub window: Seconds,
}

fn one() -> u32 {
    1
}

fn default_cooldown() -> Seconds {
    Seconds(10.0)
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rule {
    pub name: String,
    /// Classes that count (empty: all).
    #[serde(default)]
    pub classes: Vec<ClassRef>,
    #[serde(default)]
    pub min_confidence: Confidence,
    #[serde(default = "one")]
    pub min_count: u32,
    #[serde(default)]
    pub max_count: Option<u32>,
    #[serde(default)]
    pub zone: Option<Zone>,
    #[serde(default)]
    pub anchor: Anchor,
    /// A line that tracked objects cross: the rule fires once per crossing (of its anchor
    /// point), with the track id and the counts per direction. Needs rttrack upstream.
    #[serde(default)]
    pub line: Option<Line>,
    /// With `line`: which crossings alert (`in`, `out`, `both`); both are counted.
    #[serde(default)]
    pub direction: Direction,
    /// The condition must hold this long before the alert fires...
    #[serde(default)]
    pub min_duration: Seconds,
    /// ...and for at least this many frames.
    #[serde(default)]
    pub min_frames: u32,
    /// Also alert when the condition stops holding.
    #[serde(default)]
    pub ended: bool,
    /// Sources the rule applies to (empty: all).
    #[serde(default)]
    pub sources: Vec<u32>,
    #[serde(default = "default_cooldown")]
    pub cooldown: Seconds,
    #[serde(default)]
    pub key: KeyBy,
    #[serde(default)]
    pub burst: Option<Burst>,
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RateLimit {
    /// Alerts per minute across all rules.
    pub per_minute: f64,
    /// How many may go out at once before the rate applies.
    #[serde(default = "ten")]
    pub burst: u32,
}

fn ten() -> u32 {
    10
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JsonlConfig {
    pub path: String,
    #[serde(default)]
    pub max_bytes: Option<u64>,
    #[serde(default)]
    pub max_files: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default)]
    pub timeout: Option<Seconds>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub queue: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MqttConfig {
    /// `mqtt://host:port/topic`
    pub url: String,
    #[serde(default)]
    pub queue: Option<u32>,
}

/// Outputs named in a rules file; element properties add to these.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Outputs {
    #[serde(default)]
    pub stdout: bool,
    #[serde(default)]
    pub jsonl: Option<JsonlConfig>,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    #[serde(default)]
    pub mqtt: Option<MqttConfig>,
    /// Same fields as MQTT: `nats://host:port/SUBJECT[?stream=NAME]` and the queue.
    #[serde(default)]
    pub nats: Option<MqttConfig>,
    #[serde(default)]
    pub snapshot_dir: Option<String>,
}

/// A whole rules file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuleSet {
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub outputs: Outputs,
}

/// Why a rule set cannot be used. Messages say where: `file:line:column` for YAML, the rule's
/// name for inline rules.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read rules file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    /// YAML that does not parse, or a value in it out of range.
    #[error("{origin}:{line}:{column}: {message}")]
    Yaml {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: {message}")]
    YamlSomewhere { origin: String, message: String },
    /// A rule that parses but cannot be right; `at` is `file:line: ` (empty inline).
    #[error("{at}{problem}")]
    Rule { at: String, problem: String },
    /// The inline syntax of the `rules` property.
    #[error("{0}")]
    Inline(String),
    #[error("rule \"{0}\" is in both the rules file and the rules property")]
    InBoth(String),
    #[error("no rules: set rules-file to a YAML rules file or rules to inline rules")]
    Empty,
    /// Classes no detector upstream has ([`unknown_labels`]).
    #[error("{0}")]
    UnknownLabels(String),
}

impl RuleSet {
    /// Adds the rules of `other` (the inline `rules` property to a rules file); a name in
    /// both is an error.
    pub fn merge(&mut self, other: RuleSet) -> Result<(), RulesError> {
        for r in other.rules {
            if self.rules.iter().any(|x| x.name == r.name) {
                return Err(RulesError::InBoth(r.name));
            }
            self.rules.push(r);
        }
        Ok(())
    }
}

/// Checks what deserialisation cannot: names, count ranges, burst sizes.
fn check(set: &RuleSet, locate: &dyn Fn(&str) -> String) -> Result<(), RulesError> {
    let mut names = std::collections::HashSet::new();
    for r in &set.rules {
        let at = locate(&r.name);
        let problem = |problem: String| RulesError::Rule {
            at: at.clone(),
            problem,
        };
        if r.name.trim().is_empty() {
            return Err(problem("a rule needs a name".into()));
        }
        if !names.insert(r.name.as_str()) {
            return Err(problem(format!("rule name \"{}\" is used twice", r.name)));
        }
        if let Some(max) = r.max_count
            && max < r.min_count
        {
            return Err(problem(format!(
                "rule \"{}\": max-count {max} is below min-count {}",
                r.name, r.min_count
            )));
        }
        if r.line.is_some() {
            if r.zone.is_some() {
                return Err(problem(format!(
                    "rule \"{}\": a rule has a zone or a line, not both",
                    r.name
                )));
            }
            if r.min_duration.0 > 0.0 || r.min_frames > 0 || r.ended || r.max_count.is_some() {
                return Err(problem(format!(
                    "rule \"{}\": a line rule fires once per crossing; min-duration, \
                     min-frames, ended and max-count do not apply to it",
                    r.name
                )));
            }
        }
        if let Some(b) = r.burst
            && (b.count == 0 || b.window.0 <= 0.0)
        {
            return Err(problem(format!(
                "rule \"{}\": burst needs count >= 1 and window > 0",
                r.name
            )));
        }
    }
    if let Some(rl) = set.rate_limit
        && (rl.per_minute <= 0.0 || rl.burst == 0)
    {
        return Err(RulesError::Rule {
            at: String::new(),
            problem: "rate-limit needs per-minute > 0 and burst >= 1".into(),
        });
    }
    Ok(())
}

/// Parses a YAML rules file; errors say where (`origin:line:column`).
/// Why `rules` cannot all match with the models upstream: each class given as a label that
/// none of `models` has, in one message (`None` when every label is known).
pub fn unknown_labels(rules: &[Rule], models: &[rtmeta::labels::ModelLabels]) -> Option<String> {
    let known = |l: &str| models.iter().any(|m| m.labels.iter().any(|k| k == l));
    let unknown: Vec<String> = rules
        .iter()
        .flat_map(|r| r.classes.iter().map(move |c| (r, c)))
        .filter_map(|(r, c)| match c {
            ClassRef::Label(l) if !known(l) => Some(format!("rule \"{}\": class \"{l}\"", r.name)),
            _ => None,
        })
        .collect();
    if unknown.is_empty() {
        return None;
    }
    let models: Vec<String> = models
        .iter()
        .map(|m| {
            let first: Vec<&str> = m.labels.iter().take(8).map(String::as_str).collect();
            let more = if m.labels.len() > 8 { ", ..." } else { "" };
            format!(
                "{} has {} labels: {}{more}",
                m.producer,
                m.labels.len(),
                first.join(", ")
            )
        })
        .collect();
    Some(format!(
        "{} never matches: no model upstream has that label ({})",
        unknown.join(", "),
        models.join("; ")
    ))
}

pub fn parse_yaml(text: &str, origin: &str) -> Result<RuleSet, RulesError> {
    let set: RuleSet = serde_yaml_ng::from_str(text).map_err(|e| {
        let message = e.to_string();
        let origin = origin.to_string();
        match e.location() {
            Some(l) => {
                let (line, column) = (l.line(), l.column());
                let suffix = format!(" at line {line} column {column}");
                let message = message.strip_suffix(&suffix).unwrap_or(&message).into();
                RulesError::Yaml {
                    origin,
                    line,
                    column,
                    message,
                }
            }
            None => RulesError::YamlSomewhere { origin, message },
        }
    })?;
    let locate = |name: &str| {
        text.lines()
            .position(|l| {
                let l = l.trim_start().trim_start_matches("- ").trim_start();
                l.strip_prefix("name:")
                    .is_some_and(|v| v.trim().trim_matches(['"', '\'']) == name)
            })
            .map_or_else(
                || format!("{origin}: "),
                |i| format!("{origin}:{}: ", i + 1),
            )
    };
    check(&set, &locate)?;
    Ok(set)
}

/// Keys of the inline syntax and the rule fields they set.
const INLINE_KEYS: &[(&str, &str)] = &[
    ("class", "classes"),
    ("classes", "classes"),
    ("conf", "min-confidence"),
    ("min-confidence", "min-confidence"),
    ("count", "min-count"),
    ("min-count", "min-count"),
    ("max-count", "max-count"),
    ("zone", "zone"),
    ("anchor", "anchor"),
    ("line", "line"),
    ("direction", "direction"),
    ("duration", "min-duration"),
    ("min-duration", "min-duration"),
    ("frames", "min-frames"),
    ("min-frames", "min-frames"),
    ("ended", "ended"),
    ("source", "sources"),
    ("sources", "sources"),
    ("cooldown", "cooldown"),
    ("key", "key"),
    ("burst", "burst"),
];

fn scalar(text: &str) -> Value {
    serde_yaml_ng::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.into()))
}

/// Parses the compact inline syntax:
/// `NAME: key=value key=value; NAME2: ...`, for example
/// `crowd: class=person count=3 zone=0,0,0.5,0,0.5,1,0,1 duration=2 cooldown=30`.
/// Lists are comma-separated; `zone` is x,y pairs; `burst` is `COUNT/WINDOW_SECONDS`.
pub fn parse_inline(text: &str) -> Result<RuleSet, RulesError> {
    let set = RuleSet {
        rules: inline_rules(text).map_err(RulesError::Inline)?,
        ..Default::default()
    };
    check(&set, &|_| String::new())?;
    Ok(set)
}

/// The rules of the inline syntax, before [`check`].
fn inline_rules(text: &str) -> Result<Vec<Rule>, String> {
    let mut rules = Vec::new();
    for (i, part) in text
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let (name, body) = part
            .split_once(':')
            .ok_or_else(|| format!("inline rule {} (\"{part}\") has no \"NAME:\"", i + 1))?;
        let name = name.trim();
        let mut map = Mapping::new();
        map.insert("name".into(), Value::String(name.into()));
        for kv in body.split_whitespace() {
            let (key, value) = kv
                .split_once('=')
                .ok_or_else(|| format!("rule \"{name}\": \"{kv}\" is not key=value"))?;
            let field = INLINE_KEYS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, f)| *f)
                .ok_or_else(|| {
                    let known: Vec<&str> = INLINE_KEYS.iter().map(|(k, _)| *k).collect();
                    format!(
                        "rule \"{name}\": unknown key \"{key}\" (known: {})",
                        known.join(", ")
                    )
                })?;
            let v = match field {
                "classes" | "sources" => Value::Sequence(value.split(',').map(scalar).collect()),
                "zone" | "line" => {
                    let nums: Vec<Value> = value.split(',').map(scalar).collect();
                    if !nums.len().is_multiple_of(2) {
                        return Err(format!("rule \"{name}\": {field} needs x,y pairs"));
                    }
                    Value::Sequence(
                        nums.chunks(2)
                            .map(|p| Value::Sequence(p.to_vec()))
                            .collect(),
                    )
                }
                "burst" => {
                    let (count, window) = value.split_once('/').ok_or_else(|| {
                        format!("rule \"{name}\": burst is COUNT/WINDOW_SECONDS, e.g. 5/60")
                    })?;
                    let mut m = Mapping::new();
                    m.insert("count".into(), scalar(count));
                    m.insert("window".into(), scalar(window));
                    Value::Mapping(m)
                }
                _ => scalar(value),
            };
            map.insert(field.into(), v);
        }
        let rule: Rule = serde_yaml_ng::from_value(Value::Mapping(map))
            .map_err(|e| format!("rule \"{name}\": {e}"))?;
        rules.push(rule);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
rules:
  - name: person-in-zone
    classes: [person, 2]
    min-confidence: 0.5
    zone: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
    min-duration: 1.5
    ended: true
    cooldown: 30
    burst: {count: 5, window: 60}
rate-limit: {per-minute: 30, burst: 5}
outputs:
  stdout: true
  jsonl: {path: /tmp/alerts.jsonl, max-bytes: 1000}
"#;

    #[test]
    fn parses_a_rules_file() {
        let set = parse_yaml(GOOD, "rules.yaml").unwrap();
        let r = &set.rules[0];
        assert_eq!(
            r.classes,
            vec![ClassRef::Label("person".into()), ClassRef::Id(2)]
        );
        assert_eq!(
            (r.min_count, r.min_duration, r.cooldown),
            (1, Seconds(1.5), Seconds(30.0))
        );
        assert_eq!(r.anchor, Anchor::BottomCenter);
        assert_eq!(set.rate_limit.unwrap().per_minute, 30.0);
        assert_eq!(set.outputs.jsonl.unwrap().max_bytes, Some(1000));
        // Defaults.
        let set = parse_yaml("rules: [{name: any}]", "x").unwrap();
        assert_eq!(set.rules[0].cooldown, Seconds(10.0));
    }

    #[test]
    fn line_rules_parse_and_are_checked() {
        let yaml = "rules:\n  - name: door\n    classes: [person]\n    line: [[0, 0.5], [1, 0.5]]\n    direction: in\n";
        let set = parse_yaml(yaml, "r.yaml").unwrap();
        assert_eq!(set.rules[0].line, Some(Line((0.0, 0.5), (1.0, 0.5))));
        assert_eq!(set.rules[0].direction, Direction::In);
        let set = parse_inline("door: class=person line=0.5,0,0.5,1 direction=out").unwrap();
        assert_eq!(set.rules[0].line, Some(Line((0.5, 0.0), (0.5, 1.0))));
        assert_eq!(set.rules[0].direction, Direction::Out);
        assert_eq!(
            parse_yaml("rules: [{name: a, line: [[0, 0], [1, 1]]}]", "r")
                .unwrap()
                .rules[0]
                .direction,
            Direction::Both
        );
        let head = "rules:\n  - name: a\n";
        for (body, error) in [
            ("    line: [[0, 0.5], [1, 0.5], [1, 1]]\n", "r.yaml:3:"),
            (
                "    line: [[0, 0.5], [1, 0.5], [1, 1]]\n",
                "a line has exactly 2 points, this one has 3",
            ),
            (
                "    line: [[0, 0.5], [1.5, 0.5]]\n",
                "line point [1.5, 0.5] is outside the frame",
            ),
            (
                "    line: [[0.2, 0.5], [0.2, 0.5]]\n",
                "two different points",
            ),
            (
                "    line: [[0, 0.5], [1, 0.5]]\n    zone: [[0, 0], [1, 0], [1, 1]]\n",
                "r.yaml:2: rule \"a\": a rule has a zone or a line, not both",
            ),
            (
                "    line: [[0, 0.5], [1, 0.5]]\n    ended: true\n",
                "fires once per crossing",
            ),
            (
                "    line: [[0, 0.5], [1, 0.5]]\n    direction: up\n",
                "r.yaml:4:",
            ),
        ] {
            let e = parse_yaml(&format!("{head}{body}"), "r.yaml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(error), "{e:?} should contain {error:?}");
        }
        let e = parse_inline("door: line=0,0.5,1").unwrap_err().to_string();
        assert!(e.contains("line needs x,y pairs"), "{e}");
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "rules:\n  - name: a\n    colour: red\n",
                "x.yaml:3:5",
                "unknown field `colour`",
            ),
            (
                "rules:\n  - name: a\n    zone: [[0,0],[1,0]]\n",
                "x.yaml:3:11",
                "at least 3 points",
            ),
            (
                "rules:\n  - name: a\n    zone: [[0,0],[1.5,0],[1,1]]\n",
                "x.yaml:3:11",
                "outside the frame",
            ),
            (
                "rules:\n  - name: a\n    min-duration: -2\n",
                "x.yaml:3:19",
                "seconds >= 0",
            ),
            (
                "rules:\n  - name: a\n    min-confidence: 2\n",
                "x.yaml:3:21",
                "outside 0..1",
            ),
            (
                "rules:\n  - name: a\n  - name: a\n",
                "x.yaml:2:",
                "used twice",
            ),
            (
                "rules:\n  - name: a\n    min-count: 3\n    max-count: 1\n",
                "x.yaml:2:",
                "below min-count",
            ),
            (
                "rules: [\n",
                "x.yaml:2:1",
                "did not find expected node content",
            ),
        ];
        for (text, at, what) in cases {
            let e = parse_yaml(text, "x.yaml").unwrap_err().to_string();
            assert!(e.starts_with(at) && e.contains(what), "{text:?}: {e}");
        }
    }

    #[test]
    fn inline_rules() {
        let set = parse_inline(
            "crowd: class=person,car count=3 zone=0,0,0.5,0,0.5,1 duration=2 burst=5/60 ended=true; \
             any: conf=0.7 cooldown=0 key=class source=1,2",
        )
        .unwrap();
        assert_eq!(set.rules.len(), 2);
        let c = &set.rules[0];
        assert_eq!(c.min_count, 3);
        assert_eq!(c.zone.as_ref().unwrap().0.len(), 3);
        assert_eq!(
            c.burst,
            Some(Burst {
                count: 5,
                window: Seconds(60.0)
            })
        );
        assert!(c.ended);
        let a = &set.rules[1];
        assert_eq!(
            (a.min_confidence, a.cooldown, a.key),
            (Confidence(0.7), Seconds(0.0), KeyBy::Class)
        );
        assert_eq!(a.sources, vec![1, 2]);

        for (bad, what) in [
            ("x: colour=red", "unknown key \"colour\""),
            ("x: zone=0,0,1,1", "at least 3 points"),
            ("x: zone=0,0,1", "x,y pairs"),
            ("x: conf=high", "invalid type"),
            ("no colon here", "has no \"NAME:\""),
            ("x: duration=-1", "seconds >= 0"),
        ] {
            let e = parse_inline(bad).unwrap_err();
            assert!(matches!(e, RulesError::Inline(_)), "{bad}: {e:?}");
            let e = e.to_string();
            assert!(e.contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn zone_inside_outside_and_edges() {
        let z = Zone(vec![(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)]);
        assert!(z.contains(0.5, 0.5));
        assert!(!z.contains(0.1, 0.5));
        assert!(!z.contains(0.5, 0.81));
        // Edges and corners count as inside.
        assert!(z.contains(0.2, 0.5));
        assert!(z.contains(0.8, 0.8));
        assert!(z.contains(0.5, 0.2));
        // A concave polygon.
        let l = Zone(vec![
            (0.0, 0.0),
            (1.0, 0.0),
            (1.0, 0.5),
            (0.5, 0.5),
            (0.5, 1.0),
            (0.0, 1.0),
        ]);
        assert!(l.contains(0.25, 0.75));
        assert!(!l.contains(0.75, 0.75));
    }

    #[test]
    fn labels_no_model_upstream_has_are_named() {
        let rules = parse_inline("p: class=persn,car; q: class=0; r: class=person")
            .unwrap()
            .rules;
        let coco = rtmeta::labels::ModelLabels {
            producer: "rtinfer0".into(),
            labels: ["person", "bicycle", "car"].map(String::from).into(),
        };
        let why = unknown_labels(&rules, std::slice::from_ref(&coco)).unwrap();
        assert_eq!(
            why,
            "rule \"p\": class \"persn\" never matches: no model upstream has that label \
             (rtinfer0 has 3 labels: person, bicycle, car)"
        );
        assert_eq!(
            unknown_labels(&rules[1..], &[coco]),
            None,
            "ids are not checked"
        );
    }
}
