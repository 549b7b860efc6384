use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtDetReplay(ObjectSubclass<imp::RtDetReplay>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtdetreplay",
        gst::Rank::NONE,
        RtDetReplay::static_type(),
    )
}
