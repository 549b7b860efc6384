use gst::glib;
use gst::prelude::*;

mod imp;
mod model;
mod scheduler;
mod stream;

glib::wrapper! {
    pub struct RtInfer(ObjectSubclass<imp::RtInfer>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtinfer",
        gst::Rank::NONE,
        RtInfer::static_type(),
    )
}
