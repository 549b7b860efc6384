use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtInfer(ObjectSubclass<imp::RtInfer>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtinfer",
        gst::Rank::NONE,
        RtInfer::static_type(),
    )
}
