//! The newest alerts, kept for the dashboard (`GET /api/v1/alerts`, their clips and
//! snapshots) and fanned out live to every `GET /api/v1/events` stream.
//!
//! Alerts are rare next to frames, so one mutex is enough; nothing in it blocks (a broadcast
//! send never waits: a subscriber that falls behind skips what it missed).

use serde_json::Value;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Alerts kept for the API and the dashboard's first view.
const KEPT: usize = 200;

struct Kept {
    id: String,
    json: Arc<str>,
    clip: Option<PathBuf>,
    snapshot: Option<PathBuf>,
}

struct Inner {
    recent: VecDeque<Kept>,
    /// None once closed: subscribers' streams end.
    feed: Option<broadcast::Sender<Arc<str>>>,
}

pub struct AlertLog(Mutex<Inner>);

/// A file an alert names.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AlertFile {
    Clip,
    Snapshot,
}

impl Default for AlertLog {
    fn default() -> Self {
        AlertLog(Mutex::new(Inner {
            recent: VecDeque::with_capacity(KEPT),
            feed: Some(broadcast::channel(256).0),
        }))
    }
}

impl AlertLog {
    /// Keeps an alert (its document, with the `id` and the `clip`/`snapshot` paths when it
    /// has them, and the same document as the JSON text the outputs were given) and sends
    /// it to the live streams.
    pub fn push(&self, doc: &Value, json: Arc<str>) {
        let path = |k: &str| doc.get(k).and_then(Value::as_str).map(PathBuf::from);
        let kept = Kept {
            id: doc.get("id").and_then(Value::as_str).unwrap_or("").into(),
            json,
            clip: path("clip"),
            snapshot: path("snapshot"),
        };
        let mut inner = self.0.lock().unwrap();
        if let Some(feed) = &inner.feed {
            // No subscriber is not an error.
            let _ = feed.send(kept.json.clone());
        }
        if inner.recent.len() == KEPT {
            inner.recent.pop_front();
        }
        inner.recent.push_back(kept);
    }

    /// The kept alerts, oldest first, as JSON texts.
    pub fn recent(&self) -> Vec<Arc<str>> {
        let inner = self.0.lock().unwrap();
        inner.recent.iter().map(|k| k.json.clone()).collect()
    }

    /// The clip or snapshot a kept alert names: only paths the service itself reported, so
    /// the API serves no other file.
    pub fn file(&self, alert_id: &str, which: AlertFile) -> Option<PathBuf> {
        let inner = self.0.lock().unwrap();
        let k = inner.recent.iter().rev().find(|k| k.id == alert_id)?;
        match which {
            AlertFile::Clip => k.clip.clone(),
            AlertFile::Snapshot => k.snapshot.clone(),
        }
    }

    /// A live feed of the alerts pushed from now on; None once closed.
    pub fn subscribe(&self) -> Option<broadcast::Receiver<Arc<str>>> {
        self.0.lock().unwrap().feed.as_ref().map(|f| f.subscribe())
    }

    /// Ends every live feed (the service is stopping; open event streams would otherwise
    /// keep the HTTP server from closing).
    pub fn close(&self) {
        self.0.lock().unwrap().feed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn push(log: &AlertLog, doc: Value) {
        log.push(&doc, doc.to_string().into());
    }

    #[test]
    fn keeps_the_newest_and_finds_their_files() {
        let log = AlertLog::default();
        for i in 0..KEPT + 5 {
            push(
                &log,
                json!({"id": format!("a{i}"), "clip": format!("/c/{i}.mp4")}),
            );
        }
        let recent = log.recent();
        assert_eq!(recent.len(), KEPT);
        assert!(recent[0].contains("\"a5\"") && recent[KEPT - 1].contains("\"a204\""));
        assert_eq!(
            log.file("a204", AlertFile::Clip),
            Some(PathBuf::from("/c/204.mp4"))
        );
        assert_eq!(log.file("a204", AlertFile::Snapshot), None);
        assert_eq!(log.file("a0", AlertFile::Clip), None, "dropped");
    }

    #[test]
    fn live_feed_gets_new_alerts_and_ends_on_close() {
        let log = AlertLog::default();
        push(&log, json!({"id": "before"}));
        let mut rx = log.subscribe().unwrap();
        push(&log, json!({"id": "after", "snapshot": "/s/1.jpg"}));
        assert!(rx.try_recv().unwrap().contains("after"));
        assert!(rx.try_recv().is_err());
        log.close();
        assert_eq!(rx.try_recv(), Err(broadcast::error::TryRecvError::Closed));
        assert!(log.subscribe().is_none());
        // Kept alerts are still served.
        assert_eq!(
            log.file("after", AlertFile::Snapshot),
            Some(PathBuf::from("/s/1.jpg"))
        );
    }
}
