use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtUriSrcBin(ObjectSubclass<imp::RtUriSrcBin>) @extends gst::Bin, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rturisrcbin",
        gst::Rank::NONE,
        RtUriSrcBin::static_type(),
    )
}
