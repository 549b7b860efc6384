use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtOverlay(ObjectSubclass<imp::RtOverlay>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtoverlay",
        gst::Rank::NONE,
        RtOverlay::static_type(),
    )
}
