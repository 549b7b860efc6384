//! NATS JetStream: publishes each message to `SUBJECT.SOURCE` with its id as `Nats-Msg-Id`,
//! so JetStream drops the copies that retries send, and waits for the server's
//! acknowledgement before taking the next one. While the server is away the message is
//! retried (backoff up to 5 s) and the others wait in the worker's bounded queue; the
//! client reconnects by itself. The stream (subjects `SUBJECT.>`) is created when missing.

use super::{DeliveryError, Level, Message, OutputError, Report, Shutdown, Worker};
use async_nats::jetstream;
use rtmeta::mask::mask_in;
use std::time::Duration;

/// Where and how to publish, from `nats://[user:password@]host[:port]/SUBJECT[?stream=NAME]`.
#[derive(Clone, Debug, PartialEq)]
pub struct NatsSettings {
    pub server: String,
    pub credentials: Option<(String, String)>,
    pub subject: String,
    pub stream: String,
}

pub fn parse_nats_url(url: &str) -> Result<NatsSettings, OutputError> {
    let bad = |problem: &str| OutputError::bad_url("NATS", url, problem);
    let usage = "nats://[user:password@]host[:port]/SUBJECT[?stream=NAME]";
    let rest = url
        .strip_prefix("nats://")
        .ok_or_else(|| bad(&format!("must look like {usage}")))?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, subject) = rest
        .split_once('/')
        .filter(|(_, s)| !s.is_empty())
        .ok_or_else(|| bad(&format!("names no subject ({usage})")))?;
    let (credentials, hostport) = match authority.rsplit_once('@') {
        Some((cred, hp)) => {
            let (u, p) = cred.split_once(':').unwrap_or((cred, ""));
            (Some((u.to_string(), p.to_string())), hp)
        }
        None => (None, authority),
    };
    if hostport.is_empty() || hostport.starts_with(':') {
        return Err(bad("names no host"));
    }
    let server = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:4222")
    };
    if subject.contains(['*', '>', ' ']) || subject.split('.').any(str::is_empty) {
        return Err(bad(&format!(
            "\"{subject}\" is not a plain subject (tokens separated by '.')"
        )));
    }
    let mut stream = subject.replace(['.', '-'], "_").to_uppercase();
    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match k {
            "stream" if !v.is_empty() => stream = v.to_string(),
            _ => return Err(bad(&format!("unknown parameter \"{k}\""))),
        }
    }
    Ok(NatsSettings {
        server,
        credentials,
        subject: subject.to_string(),
        stream,
    })
}

/// Subject tokens may not hold '.', '*', '>' or spaces.
fn subject_token(source: &str) -> String {
    source
        .chars()
        .map(|c| {
            if matches!(c, '.' | '*' | '>' | ' ') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// A JetStream output behind a queue of `queue` messages.
pub fn nats(url: &str, queue: usize, report: Report) -> Result<Worker, OutputError> {
    let settings = parse_nats_url(url)?;
    let name = mask_in(
        &format!("nats:{}/{}", settings.server, settings.subject),
        url,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("rtalert-nats-io")
        .enable_all()
        .build()
        .map_err(|e| OutputError::Connect {
            output: name.clone(),
            why: format!("cannot start its I/O thread: {e}"),
        })?;
    let mut options = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None::<usize>);
    if let Some((u, p)) = settings.credentials.clone() {
        options = options.user_and_password(u, p);
    }
    let client = runtime
        .block_on(options.connect(settings.server.as_str()))
        .map_err(|e| OutputError::Connect {
            output: name.clone(),
            why: mask_in(&e.to_string(), url),
        })?;
    // The context spawns a task on the runtime.
    let mut js = {
        let _runtime = runtime.enter();
        jetstream::new(client)
    };
    js.set_timeout(Duration::from_secs(5));
    let mut stream_ready = false;
    let mut failing = false;
    let (shown, url) = (name.clone(), url.to_string());
    let rep = report.clone();
    Ok(Worker::spawn(name, queue, report, move |msg, shutdown| {
        let mut backoff = Duration::from_millis(250);
        loop {
            let result = runtime.block_on(publish(&js, &settings, &mut stream_ready, msg));
            match result {
                Ok(()) => {
                    if failing {
                        failing = false;
                        rep(Level::Recovered, &format!("{shown}: publishing again"));
                    }
                    return Ok(());
                }
                Err(e) => {
                    let e = DeliveryError::Network(mask_in(&e, &url));
                    if !failing {
                        failing = true;
                        rep(
                            Level::Problem,
                            &format!("{shown}: cannot publish ({e}); retrying"),
                        );
                    }
                    if !sleep_unless_expired(backoff, shutdown) {
                        return Err(DeliveryError::Stopped(Box::new(e)));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }))
}

async fn publish(
    js: &jetstream::Context,
    s: &NatsSettings,
    stream_ready: &mut bool,
    msg: &Message,
) -> Result<(), String> {
    if !*stream_ready {
        js.get_or_create_stream(jetstream::stream::Config {
            name: s.stream.clone(),
            subjects: vec![format!("{}.>", s.subject)],
            ..Default::default()
        })
        .await
        .map_err(|e| format!("stream {}: {e}", s.stream))?;
        *stream_ready = true;
    }
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, msg.id.as_ref());
    let subject = format!("{}.{}", s.subject, subject_token(&msg.source));
    let ack = js
        .publish_with_headers(subject, headers, msg.json.as_bytes().to_vec().into())
        .await
        .map_err(|e| e.to_string())?;
    ack.await.map(|_| ()).map_err(|e| e.to_string())
}

/// Sleeps `d` unless the stop deadline passes first; false when it has.
fn sleep_unless_expired(d: Duration, shutdown: &Shutdown) -> bool {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until {
        if shutdown.expired() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !shutdown.expired()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let s = parse_nats_url("nats://127.0.0.1:4223/site1.alerts").unwrap();
        assert_eq!(s.server, "127.0.0.1:4223");
        assert_eq!(s.subject, "site1.alerts");
        assert_eq!(s.stream, "SITE1_ALERTS");
        assert_eq!(s.credentials, None);
        let s = parse_nats_url("nats://bob:pw@nats/alerts?stream=EVENTS").unwrap();
        assert_eq!(s.server, "nats:4222");
        assert_eq!(s.stream, "EVENTS");
        assert_eq!(s.credentials, Some(("bob".into(), "pw".into())));
        for bad in [
            "mqtt://h/x",
            "nats://h",
            "nats://h/",
            "nats:///x",
            "nats://h/a.>",
            "nats://h/a..b",
            "nats://h/a?x=1",
        ] {
            assert!(parse_nats_url(bad).is_err(), "{bad}");
        }
        let e = parse_nats_url("nats://bob:secret@h").unwrap_err();
        assert!(e.is_settings());
        let e = e.to_string();
        assert!(!e.contains("secret") && e.contains("bob:***@"), "{e}");
    }

    #[test]
    fn subject_tokens_are_safe() {
        assert_eq!(subject_token("cam.1 >*"), "cam_1___");
        assert_eq!(subject_token("3"), "3");
    }
}
