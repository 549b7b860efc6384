use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtTrack(ObjectSubclass<imp::RtTrack>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// The `mode` property.
#[derive(Debug, Eq, PartialEq, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstRtTrackMode")]
pub enum TrackMode {
    #[default]
    #[enum_value(
        name = "ByteTrack: Kalman-filter prediction, two-stage Hungarian matching",
        nick = "bytetrack"
    )]
    ByteTrack,
    #[enum_value(
        name = "IoU: last box, greedy matching, no prediction (cheapest)",
        nick = "iou"
    )]
    Iou,
}

impl From<TrackMode> for rtalgo::track::Mode {
    fn from(m: TrackMode) -> Self {
        match m {
            TrackMode::ByteTrack => Self::ByteTrack,
            TrackMode::Iou => Self::Iou,
        }
    }
}

impl From<rtalgo::track::Mode> for TrackMode {
    fn from(m: rtalgo::track::Mode) -> Self {
        match m {
            rtalgo::track::Mode::ByteTrack => Self::ByteTrack,
            rtalgo::track::Mode::Iou => Self::Iou,
        }
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    TrackMode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "rttrack",
        gst::Rank::NONE,
        RtTrack::static_type(),
    )
}
