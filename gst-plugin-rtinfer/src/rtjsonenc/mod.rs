use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtJsonEnc(ObjectSubclass<imp::RtJsonEnc>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtjsonenc",
        gst::Rank::NONE,
        RtJsonEnc::static_type(),
    )
}
