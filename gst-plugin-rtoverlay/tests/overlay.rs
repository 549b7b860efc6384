//! rtoverlay through gst_check::Harness: pixels of every supported format.

use gst::prelude::*;
use gst_check::Harness;
use gst_video::prelude::*;
use rtalgo::draw::canvas::Color;
use rtalgo::draw::overlay::color_of;
use rtmeta::{Detection, Detections};

const W: u32 = 160;
const H: u32 = 120;

fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstrtoverlay::plugin_register_static().unwrap();
    });
}

fn person(x: f32, y: f32, w: f32, h: f32, confidence: f32, track_id: Option<u64>) -> Detection {
    Detection {
        class_id: 0,
        label: "person".into(),
        confidence,
        x,
        y,
        w,
        h,
        track_id,
        producer: None,
    }
}

/// A frame of `format`: grey (100) with U = V = 128, or vertical stripes when `stripes`.
fn frame(info: &gst_video::VideoInfo, stripes: bool, objects: Vec<Detection>) -> gst::Buffer {
    let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
    {
        let b = buffer.get_mut().unwrap();
        let mut f = gst_video::VideoFrameRef::from_buffer_ref_writable(b, info).unwrap();
        let yuv = info.format_info().is_yuv();
        for p in 0..info.n_planes() {
            let stride = f.plane_stride()[p as usize] as usize;
            let data = f.plane_data_mut(p).unwrap();
            for (k, byte) in data.iter_mut().enumerate() {
                let x = k % stride;
                *byte = if yuv && p > 0 {
                    128
                } else if stripes {
                    let pixel = x / info.format_info().pixel_stride()[0] as usize;
                    if pixel.is_multiple_of(2) { 30 } else { 220 }
                } else {
                    100
                };
            }
        }
        drop(f);
        Detections {
            source_id: 0,
            frame_number: 0,
            width: W,
            height: H,
            stale: false,
            objects,
        }
        .attach(b)
        .unwrap();
    }
    buffer
}

fn harness(format: &str, props: &[(&str, gst::glib::Value)]) -> (Harness, gst_video::VideoInfo) {
    init();
    let e = gst::ElementFactory::make("rtoverlay").build().unwrap();
    for (name, value) in props {
        e.set_property_from_value(name, value);
    }
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", format)
        .field("width", W as i32)
        .field("height", H as i32)
        .field("framerate", gst::Fraction::new(25, 1))
        .build();
    h.set_src_caps(caps.clone());
    (h, gst_video::VideoInfo::from_caps(&caps).unwrap())
}

/// Reads pixel (x, y) as (R, G, B) for packed formats, (Y, U, V) for 4:2:0 ones.
fn pixel(buffer: &gst::Buffer, info: &gst_video::VideoInfo, x: usize, y: usize) -> [u8; 3] {
    let f = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), info).unwrap();
    let s = |p: u32| f.plane_stride()[p as usize] as usize;
    let d = |p: u32| f.plane_data(p).unwrap();
    use gst_video::VideoFormat as V;
    match info.format() {
        V::I420 => [
            d(0)[y * s(0) + x],
            d(1)[y / 2 * s(1) + x / 2],
            d(2)[y / 2 * s(2) + x / 2],
        ],
        V::Nv12 => [
            d(0)[y * s(0) + x],
            d(1)[y / 2 * s(1) + x / 2 * 2],
            d(1)[y / 2 * s(1) + x / 2 * 2 + 1],
        ],
        format => {
            let bpp = info.format_info().pixel_stride()[0] as usize;
            let px = &d(0)[y * s(0) + x * bpp..];
            match format {
                V::Bgr | V::Bgra | V::Bgrx => [px[2], px[1], px[0]],
                _ => [px[0], px[1], px[2]],
            }
        }
    }
}

fn expected(info: &gst_video::VideoInfo, c: Color) -> [u8; 3] {
    if info.format_info().is_yuv() {
        c.yuv()
    } else {
        [c.r, c.g, c.b]
    }
}

const FORMATS: [&str; 8] = ["RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx", "I420", "NV12"];

#[test]
fn box_edges_take_the_track_colour_and_nothing_else_changes() {
    for format in FORMATS {
        let (mut h, info) = harness(format, &[("font-file", "".to_value())]);
        let input = frame(
            &info,
            false,
            vec![person(40.0, 30.0, 60.0, 50.0, 0.9, Some(3))],
        );
        let before = |x, y| pixel(&input, &info, x, y);
        let (inside, outside, right) = (before(70, 54), before(10, 10), before(130, 54));
        let out = h.push_and_pull(input.clone()).unwrap();
        let at = |x, y| pixel(&out, &info, x, y);
        let c = expected(&info, color_of(0, Some(3)));
        // Default line width at 120 px high: 2 px, inside the box.
        assert_eq!(at(40, 54), c, "{format}: left edge");
        assert_eq!(at(41, 54), c, "{format}: left edge, second column");
        assert_eq!(at(99, 54), c, "{format}: right edge");
        assert_eq!(at(70, 30), c, "{format}: top edge");
        assert_eq!(at(70, 79), c, "{format}: bottom edge");
        assert_eq!(at(70, 54), inside, "{format}: inside the box");
        assert_eq!(at(10, 10), outside, "{format}: outside");
        assert_eq!(at(130, 54), right, "{format}: right of the box");
        if info.format_info().is_yuv() {
            // Chroma of the 2x2 block just inside the 2 px line is untouched.
            assert_eq!(&at(44, 54)[1..], &[128, 128], "{format}: chroma inside");
        }
    }
}

#[test]
fn labels_are_written_on_a_tab_above_the_box() {
    for format in ["RGBx", "I420"] {
        let (mut h, info) = harness(format, &[("font-size", 12u32.to_value())]);
        let input = frame(
            &info,
            false,
            vec![person(40.0, 60.0, 60.0, 50.0, 0.9, Some(3))],
        );
        let out = h.push_and_pull(input).unwrap();
        let tab = expected(&info, color_of(0, Some(3)));
        // Above the box top (y 60): tab colour and, where the glyphs are, the text colour.
        let mut tab_pixels = 0;
        let mut text_pixels = 0;
        for y in 42..60 {
            for x in 40..140 {
                let p = pixel(&out, &info, x, y);
                if p == tab {
                    tab_pixels += 1;
                } else if p[0] != 100 {
                    text_pixels += 1;
                }
            }
        }
        assert!(tab_pixels > 300, "{format}: {tab_pixels} tab pixels");
        assert!(text_pixels > 60, "{format}: {text_pixels} text pixels");
        assert_eq!(
            pixel(&out, &info, 10, 50)[0],
            100,
            "{format}: left of the tab"
        );
    }
}

#[test]
fn blurred_classes_are_pixelated_not_outlined() {
    for format in ["BGR", "NV12"] {
        let (mut h, info) = harness(
            format,
            &[
                ("blur-classes", "cat, person".to_value()),
                ("blur-block", 8u32.to_value()),
            ],
        );
        let input = frame(
            &info,
            true,
            vec![person(16.0, 16.0, 48.0, 48.0, 0.9, Some(1))],
        );
        let out = h.push_and_pull(input.clone()).unwrap();
        // Stripes of 30 and 220 average to 125 in each 8x8 block; the rest keeps its stripes.
        for (x, y) in [(16, 16), (17, 40), (63, 63)] {
            assert_eq!(pixel(&out, &info, x, y)[0], 125, "{format} ({x}, {y})");
        }
        for (x, y) in [(15, 40), (64, 40), (100, 100)] {
            assert_eq!(
                pixel(&out, &info, x, y),
                pixel(&input, &info, x, y),
                "{format} ({x}, {y})"
            );
        }
    }
}

#[test]
fn low_confidence_untracked_objects_can_be_left_out_and_boxes_follow_a_rescaled_frame() {
    let (mut h, info) = harness(
        "RGB",
        &[
            ("font-file", "".to_value()),
            ("min-confidence", 0.3f32.to_value()),
        ],
    );
    let faint = person(10.0, 10.0, 20.0, 20.0, 0.2, None);
    let faint_tracked = person(100.0, 10.0, 20.0, 20.0, 0.2, Some(4));
    let out = h
        .push_and_pull(frame(&info, false, vec![faint, faint_tracked]))
        .unwrap();
    assert_eq!(
        pixel(&out, &info, 10, 20),
        [100; 3],
        "untracked 0.2: not drawn"
    );
    let c = color_of(0, Some(4));
    assert_eq!(
        pixel(&out, &info, 100, 20),
        [c.r, c.g, c.b],
        "tracked: drawn"
    );

    // Detections made on a frame half this size (a videoscale after rtinfer) are scaled.
    let mut half = frame(&info, false, vec![]);
    Detections {
        width: W / 2,
        height: H / 2,
        objects: vec![person(20.0, 15.0, 30.0, 25.0, 0.9, Some(4))],
        ..Detections::default()
    }
    .attach(half.get_mut().unwrap())
    .unwrap();
    let out = h.push_and_pull(half).unwrap();
    assert_eq!(
        pixel(&out, &info, 40, 54),
        [c.r, c.g, c.b],
        "left edge at 2 x 20"
    );
    assert_eq!(
        pixel(&out, &info, 99, 54),
        [c.r, c.g, c.b],
        "right edge at 2 x 50 - 1"
    );
}

#[test]
fn a_missing_font_is_an_error_that_says_what_to_install() {
    init();
    let e = gst::ElementFactory::make("rtoverlay")
        .property("font-file", "/nonexistent/font.ttf")
        .build()
        .unwrap();
    let bus = gst::Bus::new();
    e.set_bus(Some(&bus));
    assert!(e.set_state(gst::State::Paused).is_err());
    e.set_state(gst::State::Null).unwrap();
    let error = std::iter::from_fn(|| bus.pop())
        .find_map(|m| match m.view() {
            gst::MessageView::Error(err) => Some(err.error().to_string()),
            _ => None,
        })
        .unwrap();
    assert!(
        error.contains("/nonexistent/font.ttf") && error.contains("fonts-dejavu-core"),
        "{error}"
    );
}

#[test]
fn zones_and_lines_from_rtalert_are_drawn_and_highlighted() {
    use rtalgo::draw::overlay::{ACTIVE_SHAPE_COLOR, SHAPE_COLOR};
    use rtmeta::{Region, RegionKind, Regions};
    for format in ["RGB", "NV12"] {
        let (mut h, info) = harness(format, &[("font-file", "".to_value())]);
        // No detections at all: the regions are still drawn.
        let mut input = frame(&info, false, vec![]);
        Regions(vec![
            Region {
                rule: "zone".into(),
                kind: RegionKind::Zone,
                points: vec![(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)],
                active: false,
            },
            Region {
                rule: "line".into(),
                kind: RegionKind::Line,
                points: vec![(0.1, 0.1), (0.1, 0.9)],
                active: true,
            },
        ])
        .attach(input.get_mut().unwrap())
        .unwrap();
        let out = h.push_and_pull(input.clone()).unwrap();
        let at = |x, y| pixel(&out, &info, x, y);
        assert_eq!(
            at(80, 30),
            expected(&info, SHAPE_COLOR),
            "{format}: zone top edge"
        );
        assert_eq!(
            at(120, 60),
            expected(&info, SHAPE_COLOR),
            "{format}: zone right edge"
        );
        assert_eq!(
            at(16, 60),
            expected(&info, ACTIVE_SHAPE_COLOR),
            "{format}: active line"
        );
        assert_eq!(
            at(80, 60),
            pixel(&input, &info, 80, 60),
            "{format}: inside the zone"
        );
        assert_eq!(
            at(150, 110),
            pixel(&input, &info, 150, 110),
            "{format}: outside"
        );
    }
    // show-regions=false leaves them out.
    let (mut h, info) = harness(
        "RGB",
        &[
            ("font-file", "".to_value()),
            ("show-regions", false.to_value()),
        ],
    );
    let mut input = frame(&info, false, vec![]);
    Regions(vec![Region {
        rule: "line".into(),
        kind: RegionKind::Line,
        points: vec![(0.1, 0.1), (0.1, 0.9)],
        active: true,
    }])
    .attach(input.get_mut().unwrap())
    .unwrap();
    let out = h.push_and_pull(input.clone()).unwrap();
    assert_eq!(pixel(&out, &info, 16, 60), pixel(&input, &info, 16, 60));
}

#[test]
fn the_crop_meta_downstream_offers_is_refused() {
    init();
    // Drawing maps whole frames: videocrop upstream must really crop, not attach a meta.
    let e = gst::ElementFactory::make("rtoverlay").build().unwrap();
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    h.add_propose_allocation_meta(gst_video::VideoCropMeta::meta_api(), None);
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", W as i32)
        .field("height", H as i32)
        .field("framerate", gst::Fraction::new(25, 1))
        .build();
    h.set_src_caps(caps.clone());
    let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    h.push_and_pull(frame(&info, false, vec![])).unwrap();
    let mut q = gst::query::Allocation::new(Some(&caps), true);
    assert!(h.srcpad().unwrap().peer_query(&mut q));
    assert!(
        q.find_allocation_meta::<gst_video::VideoCropMeta>()
            .is_none()
    );
}
