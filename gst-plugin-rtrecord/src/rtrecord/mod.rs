use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtRecord(ObjectSubclass<imp::RtRecord>) @extends gst_base::BaseSink, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtrecord",
        gst::Rank::NONE,
        RtRecord::static_type(),
    )
}
