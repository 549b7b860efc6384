//! Which outputs an rtalert starts: its properties, grouped by output, merged with the rules
//! file's `outputs:` section. A property that is set wins; the file's values fill what the
//! properties leave unset, and the file's missing sizes and limits take the properties'
//! defaults. No GStreamer here: the element only builds the planned outputs.

use super::{OutputError, WebhookSettings, webhook_settings};
use crate::rules::Outputs;

/// The element's output properties.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputProps {
    pub stdout: bool,
    pub jsonl: JsonlProps,
    pub webhook: WebhookProps,
    pub mqtt: QueueProps,
    pub nats: QueueProps,
}

#[derive(Clone, Debug, PartialEq)]
pub struct JsonlProps {
    pub file: Option<String>,
    pub max_bytes: u64,
    pub max_files: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookProps {
    pub url: Option<String>,
    pub timeout_ms: u32,
    pub retries: u32,
    pub queue: u32,
}

/// An output that is a URL and a bounded queue (MQTT, NATS).
#[derive(Clone, Debug, PartialEq)]
pub struct QueueProps {
    pub url: Option<String>,
    pub queue: u32,
}

impl Default for OutputProps {
    fn default() -> Self {
        let queue = QueueProps {
            url: None,
            queue: 1000,
        };
        OutputProps {
            stdout: false,
            jsonl: JsonlProps {
                file: None,
                max_bytes: 10 * 1024 * 1024,
                max_files: 5,
            },
            webhook: WebhookProps {
                url: None,
                timeout_ms: 5000,
                retries: 5,
                queue: 1000,
            },
            mqtt: queue.clone(),
            nats: queue,
        }
    }
}

/// The outputs to start.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub stdout: bool,
    /// Path, maximum bytes, rotated files kept.
    pub jsonl: Option<(String, u64, u32)>,
    pub webhook: Option<WebhookSettings>,
    /// URL and queue length.
    pub mqtt: Option<(String, u32)>,
    pub nats: Option<(String, u32)>,
}

/// Merges the properties with the rules file's outputs; a webhook URL that is not HTTP is
/// an error (shown masked).
pub fn plan(p: &OutputProps, file: &Outputs) -> Result<Plan, OutputError> {
    let jsonl = match (&p.jsonl.file, &file.jsonl) {
        (Some(path), _) => Some((path.clone(), p.jsonl.max_bytes, p.jsonl.max_files)),
        (None, Some(j)) => Some((
            j.path.clone(),
            j.max_bytes.unwrap_or(p.jsonl.max_bytes),
            j.max_files.unwrap_or(p.jsonl.max_files),
        )),
        (None, None) => None,
    };
    let w = &p.webhook;
    let webhook = match (&w.url, &file.webhook) {
        (Some(url), _) => Some(webhook_settings(url, w.timeout_ms, w.retries, w.queue)),
        (None, Some(f)) => Some(webhook_settings(
            &f.url,
            f.timeout.map_or(w.timeout_ms, |t| (t.0 * 1000.0) as u32),
            f.retries.unwrap_or(w.retries),
            f.queue.unwrap_or(w.queue),
        )),
        (None, None) => None,
    };
    if let Some(w) = &webhook
        && !w.url.starts_with("http://")
        && !w.url.starts_with("https://")
    {
        return Err(OutputError::bad_url(
            "webhook",
            &w.url,
            "must start with http:// or https://",
        ));
    }
    let queued =
        |prop: &QueueProps, file: &Option<crate::rules::MqttConfig>| match (&prop.url, file) {
            (Some(url), _) => Some((url.clone(), prop.queue)),
            (None, Some(f)) => Some((f.url.clone(), f.queue.unwrap_or(prop.queue))),
            (None, None) => None,
        };
    Ok(Plan {
        stdout: p.stdout || file.stdout,
        jsonl,
        webhook,
        mqtt: queued(&p.mqtt, &file.mqtt),
        nats: queued(&p.nats, &file.nats),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{JsonlConfig, MqttConfig, Seconds, WebhookConfig};

    #[test]
    fn nothing_set_starts_nothing() {
        let p = plan(&OutputProps::default(), &Outputs::default()).unwrap();
        assert_eq!(
            p,
            Plan {
                stdout: false,
                jsonl: None,
                webhook: None,
                mqtt: None,
                nats: None
            }
        );
    }

    #[test]
    fn the_file_fills_what_properties_leave_unset_with_their_defaults() {
        let file = Outputs {
            stdout: true,
            jsonl: Some(JsonlConfig {
                path: "a.jsonl".into(),
                max_bytes: Some(99),
                max_files: None,
            }),
            webhook: Some(WebhookConfig {
                url: "http://h/hook".into(),
                timeout: Some(Seconds(2.5)),
                retries: None,
                queue: None,
            }),
            mqtt: Some(MqttConfig {
                url: "mqtt://b/t".into(),
                queue: Some(7),
            }),
            ..Outputs::default()
        };
        let p = plan(&OutputProps::default(), &file).unwrap();
        assert!(p.stdout);
        assert_eq!(p.jsonl, Some(("a.jsonl".into(), 99, 5)));
        let w = p.webhook.unwrap();
        assert_eq!(
            (w.url.as_str(), w.timeout.as_millis(), w.retries, w.queue),
            ("http://h/hook", 2500, 5, 1000)
        );
        assert_eq!(p.mqtt, Some(("mqtt://b/t".into(), 7)));
        assert_eq!(p.nats, None);
    }

    #[test]
    fn a_property_wins_over_the_file() {
        let mut props = OutputProps::default();
        props.jsonl.file = Some("b.jsonl".into());
        props.nats.url = Some("nats://n/s".into());
        props.nats.queue = 3;
        let file = Outputs {
            jsonl: Some(JsonlConfig {
                path: "a.jsonl".into(),
                max_bytes: Some(99),
                max_files: Some(1),
            }),
            nats: Some(MqttConfig {
                url: "nats://other/s".into(),
                queue: Some(9),
            }),
            ..Outputs::default()
        };
        let p = plan(&props, &file).unwrap();
        assert_eq!(p.jsonl, Some(("b.jsonl".into(), 10 * 1024 * 1024, 5)));
        assert_eq!(p.nats, Some(("nats://n/s".into(), 3)));
    }

    #[test]
    fn a_webhook_that_is_not_http_is_refused_with_its_password_masked() {
        let mut props = OutputProps::default();
        props.webhook.url = Some("ftp://user:s3cret@h/x".into());
        let e = plan(&props, &Outputs::default()).unwrap_err();
        assert!(e.is_settings());
        let e = e.to_string();
        assert!(
            e.contains("must start with http://") && !e.contains("s3cret"),
            "{e}"
        );
    }
}
