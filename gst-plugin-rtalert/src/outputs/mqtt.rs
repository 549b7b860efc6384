//! MQTT: publishes each alert with QoS 1 to one topic. The client reconnects by itself;
//! alerts published while the broker is away wait in the client's bounded queue.

use super::{Level, Message, Output, Report, Stats};
use rtmeta::mask::{mask_in, mask_uri};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Mqtt {
    name: String,
    client: Client,
    topic: String,
    stats: Arc<Stats>,
    published: AtomicU64,
    full: AtomicBool,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    report: Report,
}

/// `mqtt://host[:port]/topic` -> (host, port, topic).
pub fn parse_url(url: &str) -> Result<(String, u16, String), String> {
    let shown = mask_uri(url);
    let rest = url
        .strip_prefix("mqtt://")
        .ok_or_else(|| format!("MQTT URL \"{shown}\" must look like mqtt://host:1883/topic"))?;
    let (addr, topic) = rest
        .split_once('/')
        .filter(|(_, t)| !t.is_empty())
        .ok_or_else(|| format!("MQTT URL \"{shown}\" names no topic (mqtt://host:1883/topic)"))?;
    let (host, port) = match addr.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse()
                .map_err(|_| format!("MQTT URL \"{shown}\": bad port"))?,
        ),
        None => (addr, 1883),
    };
    if host.is_empty() {
        return Err(format!("MQTT URL \"{shown}\" names no host"));
    }
    Ok((host.to_string(), port, topic.to_string()))
}

impl Mqtt {
    pub fn new(url: &str, queue: usize, client_id: &str, report: Report) -> Result<Self, String> {
        let (host, port, topic) = parse_url(url)?;
        let mut opts = MqttOptions::new(client_id, host.clone(), port);
        opts.set_keep_alive(Duration::from_secs(5));
        // A persistent session: rumqttc drops the alerts it holds for an outage (queued or
        // unacknowledged) when the broker answers the reconnect with no session, which a
        // clean session always gets.
        opts.set_clean_session(false);
        let (client, mut connection) = Client::new(opts, queue.max(1));
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let name = mask_in(&format!("mqtt:{host}:{port}/{topic}"), url);
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
                            Ok(Event::Incoming(Packet::PubAck(_))) => {
                                stats.delivered.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(Event::Incoming(Packet::ConnAck(_))) if down => {
                                down = false;
                                report(Level::Recovered, &format!("{name}: connected again"));
                            }
                            Ok(_) => {}
                            Err(e) => {
                                if !down {
                                    down = true;
                                    let e = mask_in(&e.to_string(), &url);
                                    report(Level::Problem, &format!("{name}: broker unreachable ({e}); retrying, alerts wait in the queue"));
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
            published: AtomicU64::new(0),
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
        match self
            .client
            .try_publish(&self.topic, QoS::AtLeastOnce, false, msg.json.as_bytes())
        {
            Ok(()) => {
                self.published.fetch_add(1, Ordering::Relaxed);
                self.full.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
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
        let published = self.published.load(Ordering::Relaxed);
        while self.stats.delivered.load(Ordering::Relaxed) < published && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let unacked = published.saturating_sub(self.stats.delivered.load(Ordering::Relaxed));
        self.stats.dropped.fetch_add(unacked, Ordering::Relaxed);
        self.published.store(0, Ordering::Relaxed);
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
    use super::parse_url;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1884/a/b").unwrap(),
            ("127.0.0.1".into(), 1884, "a/b".into())
        );
        assert_eq!(parse_url("mqtt://broker/alerts").unwrap().1, 1883);
        assert!(parse_url("http://x/t").is_err());
        assert!(parse_url("mqtt://x:1883/").is_err());
        assert!(parse_url("mqtt://x:port/t").is_err());
    }
}
