//! `rt-model-labels`: a sticky custom downstream event saying which labels the detectors
//! upstream can produce, so that elements downstream (rtalert) can tell a rule that names a
//! class no model has from one that merely has not fired yet.
//!
//! Structure `rt-model-labels` with `models`, an array of structures `model`: `producer`
//! (string, the detector's element name) and `labels` (array of strings, by class id).
//! Each `rtinfer` adds its model to what upstream detectors sent (cascades).

use gst::prelude::*;

/// Name of the event's structure.
pub const MODEL_LABELS_EVENT: &str = "rt-model-labels";

/// One detector's labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelLabels {
    pub producer: String,
    pub labels: Vec<String>,
}

/// The models an `rt-model-labels` event lists; `None` for any other event.
pub fn from_event(event: &gst::EventRef) -> Option<Vec<ModelLabels>> {
    let s = event
        .structure()
        .filter(|s| s.name() == MODEL_LABELS_EVENT)?;
    let models = s.get::<gst::Array>("models").ok()?;
    Some(
        models
            .iter()
            .filter_map(|m| m.get::<gst::Structure>().ok())
            .map(|m| ModelLabels {
                producer: m.get::<String>("producer").unwrap_or_default(),
                labels: m
                    .get::<gst::Array>("labels")
                    .map(|a| a.iter().filter_map(|l| l.get::<String>().ok()).collect())
                    .unwrap_or_default(),
            })
            .collect(),
    )
}

/// The event listing `upstream`'s models (less an earlier entry of `mine`'s producer) and
/// `mine`.
pub fn event(upstream: &[ModelLabels], mine: &ModelLabels) -> gst::Event {
    let models = upstream
        .iter()
        .filter(|m| m.producer != mine.producer)
        .chain([mine])
        .map(|m| {
            gst::Structure::builder("model")
                .field("producer", m.producer.as_str())
                .field(
                    "labels",
                    gst::Array::new(m.labels.iter().map(|l| l.to_send_value())),
                )
                .build()
        });
    gst::event::CustomDownstreamSticky::new(
        gst::Structure::builder(MODEL_LABELS_EVENT)
            .field("models", gst::Array::new(models))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cascade_lists_every_model_once() {
        gst::init().unwrap();
        let m = |p: &str, l: &[&str]| ModelLabels {
            producer: p.into(),
            labels: l.iter().map(|s| s.to_string()).collect(),
        };
        let first = event(&[], &m("vehicles", &["car", "truck"]));
        let upstream = from_event(&first).unwrap();
        assert_eq!(upstream, [m("vehicles", &["car", "truck"])]);
        let second = event(&upstream, &m("plates", &["plate"]));
        let both = from_event(&second).unwrap();
        assert_eq!(
            both,
            [m("vehicles", &["car", "truck"]), m("plates", &["plate"])]
        );
        // Sent again by the same detector: replaced, not doubled.
        let again = from_event(&event(&both, &m("plates", &["plate", "sign"]))).unwrap();
        assert_eq!(again.len(), 2);
        assert_eq!(again[1].labels, ["plate", "sign"]);
        assert!(from_event(&gst::event::Eos::new()).is_none());
    }
}
