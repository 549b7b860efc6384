use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtPreprocess(ObjectSubclass<imp::RtPreprocess>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtpreprocess",
        gst::Rank::NONE,
        RtPreprocess::static_type(),
    )
}
