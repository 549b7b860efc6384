//! HTTP webhook: POSTs each alert's JSON with its id as `Idempotency-Key`, retrying with
//! exponential backoff and jitter.

use super::{DeliveryError, Message, Report, Shutdown, Worker};
use rtmeta::mask::{mask_webhook, mask_webhook_in};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSettings {
    pub url: String,
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    pub queue: usize,
    /// First retry delay; doubles each time up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

/// A factor in 0.5..1.5 from a small xorshift generator (jitter needs no crypto).
fn jitter(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    0.5 + (*state % 1000) as f64 / 1000.0
}

fn post(agent: &ureq::Agent, url: &str, msg: &Message) -> Result<(), DeliveryError> {
    let resp = agent
        .post(url)
        .header("Idempotency-Key", &*msg.id)
        .content_type("application/json")
        .send(msg.json.as_bytes())
        // The HTTP client's errors may quote the URL.
        .map_err(|e| DeliveryError::Network(mask_webhook_in(&e.to_string(), url)))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(DeliveryError::Status(resp.status().as_u16()))
    }
}

/// A webhook output: POSTs on its own thread, retrying as `s` says.
pub fn webhook(s: WebhookSettings, report: Report) -> Worker {
    {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(s.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let mut seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        let name = format!("webhook:{}", mask_webhook(&s.url));
        let deliver = move |msg: &Message, shutdown: &Shutdown| {
            let mut delay = s.backoff;
            let mut attempt = 0;
            loop {
                let err = match post(&agent, &s.url, msg) {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                };
                if attempt >= s.retries || shutdown.expired() {
                    return Err(DeliveryError::GaveUp {
                        last: Box::new(err),
                        attempts: attempt + 1,
                    });
                }
                attempt += 1;
                let wait = delay.mul_f64(jitter(&mut seed));
                // Sleep in small steps so a shutdown is not held up.
                let until = std::time::Instant::now() + wait;
                while std::time::Instant::now() < until && !shutdown.expired() {
                    std::thread::sleep(Duration::from_millis(10).min(wait));
                }
                delay = (delay * 2).min(s.max_backoff);
            }
        };
        Worker::spawn(name, s.queue, report, deliver)
    }
}
