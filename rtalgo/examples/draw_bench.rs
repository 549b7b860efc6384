//! Cost of drawing 20 labelled boxes on a 1080p frame, per pixel format (and of pixelating
//! them instead).
//!
//!     cargo run --release -p rtalgo --example draw_bench

use rtalgo::draw::canvas::{Canvas, Format, Plane};
use rtalgo::draw::overlay::{Object, Overlay, Style};
use rtalgo::draw::text::Text;
use rtalgo::geometry::Rect;
use std::time::Instant;

fn main() {
    let (w, h) = (1920usize, 1080usize);
    let font = std::fs::read(rtalgo::draw::DEFAULT_FONT).expect("apt install fonts-dejavu-core");
    let labels = ["person", "car", "bicycle", "dog"];
    let mut objects: Vec<Object> = (0..20)
        .map(|k| Object {
            rect: Rect::new(
                40.0 + (k % 5) as f32 * 370.0,
                60.0 + (k / 5) as f32 * 250.0,
                160.0,
                200.0,
            ),
            label: labels[k % labels.len()],
            class_id: (k % labels.len()) as u32,
            confidence: 0.5 + k as f32 / 50.0,
            track_id: Some(k as u64 + 1),
            blur: false,
        })
        .collect();
    let frames = 100;
    for format in [Format::Rgbx, Format::Rgb, Format::I420, Format::Nv12] {
        for blur in [false, true] {
            for o in &mut objects {
                o.blur = blur;
            }
            let (mut p0, mut p1, mut p2) = match format {
                Format::Rgbx => (vec![90u8; w * h * 4], vec![], vec![]),
                Format::Rgb => (vec![90u8; w * h * 3], vec![], vec![]),
                Format::I420 => (
                    vec![90u8; w * h],
                    vec![128u8; w * h / 4],
                    vec![128u8; w * h / 4],
                ),
                _ => (vec![90u8; w * h], vec![128u8; w * h / 2], vec![]),
            };
            let strides = match format {
                Format::Rgbx => [w * 4, 0, 0],
                Format::Rgb => [w * 3, 0, 0],
                Format::I420 => [w, w / 2, w / 2],
                _ => [w, w, 0],
            };
            let px = (h as f32 / 40.0).round();
            let mut overlay = Overlay::new(
                Style {
                    line_width: 3,
                    blur_block: 36,
                    ..Style::default()
                },
                if std::env::var_os("NO_TEXT").is_some() {
                    None
                } else {
                    Some(Text::new(&font, px).unwrap())
                },
            );
            let started = Instant::now();
            for _ in 0..frames {
                let planes =
                    [&mut p0, &mut p1, &mut p2]
                        .into_iter()
                        .zip(strides)
                        .map(|(data, stride)| Plane {
                            data: data.as_mut_slice(),
                            stride,
                        });
                let mut canvas = Canvas::new(format, w as u32, h as u32, planes).unwrap();
                overlay.draw(&mut canvas, &objects);
            }
            let ms = started.elapsed().as_secs_f64() * 1e3 / frames as f64;
            let what = if blur { "pixelated" } else { "boxes + labels" };
            println!("{format:?} 1920x1080, 20 objects, {what}: {ms:.3} ms per frame");
        }
    }
}
