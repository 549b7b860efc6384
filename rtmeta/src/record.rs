//! Asking a recorder downstream for a clip around a moment: the custom query `rt-record`.
//!
//! rtalert sends it when an alert fires; `rtrecord`, further down on the encoded stream
//! (`rtalert ! videoconvert ! x264enc ! h264parse ! rtrecord`), answers with the path of the
//! clip that will hold that moment. A query rather than a serialized event because custom
//! queries are not serialized: videoconvert, encoders, parsers and queues forward them at once,
//! so the recorder learns of the moment before the encoder has even output its frames, and the
//! answer lets the alert name its clip. An app can send the same query from any pad upstream.
//!
//! Fields: `running-time` (guint64, ns: the moment, in the running time of the stream),
//! `reason` (string: what asked, such as the alert id). The answer adds `location` (string).

use gst::prelude::*;

/// Name of the query's structure.
pub const RECORD_QUERY: &str = "rt-record";

/// A request to record around `running_time`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRequest {
    pub running_time: gst::ClockTime,
    pub reason: String,
}

impl RecordRequest {
    /// Reads a request from a query, if it is one.
    pub fn from_query(query: &gst::QueryRef) -> Option<Self> {
        let s = query.structure().filter(|s| s.name() == RECORD_QUERY)?;
        Some(RecordRequest {
            // GST_CLOCK_TIME_NONE (unknown) is no moment to record around.
            running_time: gst::ClockTime::try_from(s.get::<u64>("running-time").ok()?).ok()?,
            reason: s.get::<String>("reason").unwrap_or_default(),
        })
    }

    pub fn to_query(&self) -> gst::query::Custom<gst::Query> {
        gst::query::Custom::new(
            gst::Structure::builder(RECORD_QUERY)
                .field("running-time", self.running_time.nseconds())
                .field("reason", self.reason.as_str())
                .build(),
        )
    }

    /// Sends the request downstream from `pad` (a source pad); returns the clip's path when a
    /// recorder answered.
    pub fn send(&self, pad: &gst::Pad) -> Option<String> {
        let mut query = self.to_query();
        if !pad.peer_query(&mut query) {
            return None;
        }
        answered(&query)
    }
}

/// The recorder's answer: the clip that will hold the moment.
pub fn answer(query: &mut gst::QueryRef, location: &str) {
    query.structure_mut().set("location", location);
}

/// The location a recorder answered with.
pub fn answered(query: &gst::QueryRef) -> Option<String> {
    query.structure()?.get::<String>("location").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_through_the_query_and_carries_the_answer() {
        gst::init().unwrap();
        let req = RecordRequest {
            running_time: gst::ClockTime::from_mseconds(1500),
            reason: "alert-7".into(),
        };
        let mut query = req.to_query();
        assert_eq!(
            query.structure().unwrap().get::<u64>("running-time"),
            Ok(1_500_000_000)
        );
        assert_eq!(RecordRequest::from_query(&query), Some(req));
        assert_eq!(answered(&query), None);
        answer(&mut query, "/clips/a.mp4");
        assert_eq!(answered(&query).as_deref(), Some("/clips/a.mp4"));
        let other = gst::query::Custom::new(gst::Structure::new_empty("something-else"));
        assert_eq!(RecordRequest::from_query(&other), None);
        let unknown = gst::query::Custom::new(
            gst::Structure::builder(RECORD_QUERY)
                .field("running-time", u64::MAX)
                .build(),
        );
        assert_eq!(RecordRequest::from_query(&unknown), None);
    }
}
