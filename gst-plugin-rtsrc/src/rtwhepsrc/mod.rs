use gst::glib;
use gst::prelude::*;

mod imp;
mod whep;

glib::wrapper! {
    pub struct RtWhepSrc(ObjectSubclass<imp::RtWhepSrc>)
        @extends gst::Bin, gst::Element, gst::Object, @implements gst::URIHandler;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtwhepsrc",
        gst::Rank::NONE,
        RtWhepSrc::static_type(),
    )
}
