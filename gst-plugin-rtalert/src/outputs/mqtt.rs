//! MQTT: publishes each alert with QoS 1 to one topic. The client reconnects by itself;
//! alerts published while the broker is away wait in the client's bounded queue.

use super::{Level, Message, Output, OutputError, Report, Stats};
use rtmeta::mask::{mask_in, percent_decode};
use rumqttc::{
    Client, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS, TlsConfiguration,
    Transport,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Mqtt {
    name: String,
    client: Client,
    topic: String,
    stats: Arc<Stats>,
    full: AtomicBool,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    report: Report,
}

/// What an MQTT URL says: `mqtt[s]://[user[:password]@]host[:port]/topic`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttUrl {
    /// `mqtts://`: TLS, checked against the system's CA store.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub topic: String,
    /// User and password (percent-decoded), for brokers that require them.
    pub credentials: Option<(String, String)>,
}

const URL_FORM: &str = "mqtt://[user:password@]host:1883/topic or mqtts://... (TLS)";

/// Parses `mqtt[s]://[user[:password]@]host[:port]/topic`; errors show the URL masked.
pub fn parse_url(url: &str) -> Result<MqttUrl, OutputError> {
    let bad = |problem: &str| OutputError::bad_url("MQTT", url, problem);
    let (tls, rest) = match (url.strip_prefix("mqtt://"), url.strip_prefix("mqtts://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return Err(bad(&format!("must look like {URL_FORM}"))),
    };
    let (authority, topic) = rest
        .split_once('/')
        .filter(|(_, t)| !t.is_empty())
        .ok_or_else(|| bad(&format!("names no topic ({URL_FORM})")))?;
    let (userinfo, addr) = match authority.rsplit_once('@') {
        Some((u, a)) => (Some(u), a),
        None => (None, authority),
    };
    let credentials = userinfo
        .map(|u| {
            let (user, password) = u.split_once(':').unwrap_or((u, ""));
            percent_decode(user)
                .zip(percent_decode(password))
                .filter(|(user, _)| !user.is_empty())
                .ok_or_else(|| bad("bad user or password"))
        })
        .transpose()?;
    let (host, port) = match addr.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| bad("bad port"))?),
        None => (addr, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() {
        return Err(bad("names no host"));
    }
    Ok(MqttUrl {
        tls,
        host: host.to_string(),
        port,
        topic: topic.to_string(),
        credentials,
    })
}

/// TLS checked against the system's CA store (`SSL_CERT_FILE` / `SSL_CERT_DIR` override it),
/// with ring, the crypto provider the other outputs use.
fn tls_transport() -> Result<Transport, OutputError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(OutputError::Tls(format!(
            "no CA certificates found in the system store{why}; install ca-certificates or set SSL_CERT_FILE"
        )));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| OutputError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(config),
    )))
}

/// What a user can do about a connection error.
fn explain(e: &ConnectionError) -> &'static str {
    match e {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => "; check the user and password in the URL",
        ConnectionError::Tls(_) => {
            "; check that the broker's certificate is valid for this host and signed by a CA in the system store (or SSL_CERT_FILE)"
        }
        _ => "",
    }
}

impl Mqtt {
    pub fn new(
        url: &str,
        queue: usize,
        client_id: &str,
        report: Report,
    ) -> Result<Self, OutputError> {
        let MqttUrl {
            tls,
            host,
            port,
            topic,
            credentials,
        } = parse_url(url)?;
        let mut opts = MqttOptions::new(client_id, host.clone(), port);
        opts.set_keep_alive(Duration::from_secs(5));
        if let Some((user, password)) = credentials {
            opts.set_credentials(user, password);
        }
        if tls {
            opts.set_transport(tls_transport()?);
        }
        // A persistent session: rumqttc drops the alerts it holds for an outage (queued or
        // unacknowledged) when the broker answers the reconnect with no session, which a
        // clean session always gets.
        opts.set_clean_session(false);
        let (client, mut connection) = Client::new(opts, queue.max(1));
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let scheme = if tls { "mqtts" } else { "mqtt" };
        let name = mask_in(&format!("{scheme}:{host}:{port}/{topic}"), url);
        let thread = {
            let (stats, stop, report, name, url) = (
                stats.clone(),
                stop.clone(),
                report.clone(),
                name.clone(),
                url.to_string(),
            );
            std::thread::Builder::new()
                .name("rtalert-mqtt".into())
                .spawn(move || {
                    let mut down = false;
                    for event in connection.iter() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match event {
                            Ok(Event::Incoming(Packet::PubAck(_))) => stats.settle(true),
                            Ok(Event::Incoming(Packet::ConnAck(_))) if down => {
                                down = false;
                                report(Level::Recovered, &format!("{name}: connected again"));
                            }
                            Ok(_) => {}
                            Err(e) => {
                                if !down {
                                    down = true;
                                    let hint = explain(&e);
                                    let e = mask_in(&e.to_string(), &url);
                                    report(Level::Problem, &format!("{name}: broker unreachable ({e}){hint}; retrying, alerts wait in the queue"));
                                }
                                std::thread::sleep(Duration::from_millis(250));
                            }
                        }
                    }
                })
                .expect("spawning the MQTT thread")
        };
        Ok(Mqtt {
            name,
            client,
            topic,
            stats,
            full: AtomicBool::new(false),
            stop,
            thread: Some(thread),
            report,
        })
    }
}

impl Output for Mqtt {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&self, msg: &Message) {
        self.stats.queue(); // until the broker acknowledges it
        match self
            .client
            .try_publish(&self.topic, QoS::AtLeastOnce, false, msg.json.as_bytes())
        {
            Ok(()) => self.full.store(false, Ordering::Relaxed),
            Err(e) => {
                self.stats.settle(false);
                if !self.full.swap(true, Ordering::Relaxed) {
                    (self.report)(
                        Level::Problem,
                        &format!("{}: alert {} dropped: {e}", self.name, msg.id),
                    );
                }
            }
        }
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn shutdown(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while self.stats.queued.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Not acknowledged: not delivered as far as anyone can tell.
        self.stats.drop_queued();
    }
}

impl Drop for Mqtt {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown(Duration::ZERO);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MqttUrl, parse_url};

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1884/a/b").unwrap(),
            MqttUrl {
                tls: false,
                host: "127.0.0.1".into(),
                port: 1884,
                topic: "a/b".into(),
                credentials: None
            }
        );
        assert_eq!(parse_url("mqtt://broker/alerts").unwrap().port, 1883);
        let u = parse_url("mqtts://cam%40site:p%3Ass@broker.example/t").unwrap();
        assert_eq!(
            (u.tls, u.port, u.host.as_str()),
            (true, 8883, "broker.example")
        );
        assert_eq!(u.credentials, Some(("cam@site".into(), "p:ss".into())));
        let u = parse_url("mqtt://token@h:1/t").unwrap();
        assert_eq!(u.credentials, Some(("token".into(), String::new())));
        assert!(parse_url("http://x/t").is_err());
        assert!(parse_url("mqtt://x:1883/").is_err());
        assert!(parse_url("mqtt://x:port/t").is_err());
        assert!(parse_url("mqtt://:pw@x/t").is_err());
        let e = parse_url("mqtt://u:secret@x:port/t").unwrap_err();
        assert!(e.is_settings());
        let e = e.to_string();
        assert!(!e.contains("secret") && e.contains("u:***@"), "{e}");
    }
}
