use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtAlert(ObjectSubclass<imp::RtAlert>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtalert",
        gst::Rank::NONE,
        RtAlert::static_type(),
    )
}
