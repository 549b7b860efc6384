//! `RtRegionMeta`: the zones and lines of rtalert's rules on a frame, and whether each rule
//! holds there, so that a drawing element (rtoverlay) or an app can show them without reading
//! the rules file.
//!
//! Structure fields: `regions`, a GstValueArray of GstStructure `region` with `rule`
//! (string), `kind` (`zone` or `line`), `points` (GstValueArray of gdouble: x0, y0, x1, y1, ...
//! in fractions of the frame) and `active` (gboolean: the rule's condition holds on this
//! frame's source, or for a line, an object crossed it in the last second).

use crate::REGION_META;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    Zone,
    Line,
}

/// One rule's zone or line.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    pub rule: String,
    pub kind: RegionKind,
    /// Points in fractions of the frame (0..1).
    pub points: Vec<(f64, f64)>,
    pub active: bool,
}

/// The regions of one frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Regions(pub Vec<Region>);

impl Regions {
    pub fn from_buffer(buffer: &gst::BufferRef) -> Option<Self> {
        let meta = gst::meta::CustomMeta::from_buffer(buffer, REGION_META).ok()?;
        let regions = meta.structure().get::<gst::Array>("regions").ok()?;
        let regions = regions
            .iter()
            .filter_map(|v| v.get::<gst::Structure>().ok())
            .filter_map(|s| {
                let kind = match s.get::<&str>("kind").ok()? {
                    "zone" => RegionKind::Zone,
                    "line" => RegionKind::Line,
                    _ => return None,
                };
                let flat: Vec<f64> = s
                    .get::<gst::Array>("points")
                    .ok()?
                    .iter()
                    .filter_map(|v| v.get::<f64>().ok())
                    .collect();
                Some(Region {
                    rule: s.get::<&str>("rule").unwrap_or_default().to_owned(),
                    kind,
                    points: flat.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
                    active: s.get::<bool>("active").unwrap_or(false),
                })
            })
            .collect();
        Some(Regions(regions))
    }

    /// Attaches these regions to `buffer`, replacing regions already there.
    pub fn attach(&self, buffer: &mut gst::BufferRef) -> Result<(), gst::glib::BoolError> {
        let mut meta = match gst::meta::CustomMeta::from_mut_buffer(buffer, REGION_META) {
            Ok(meta) => meta,
            Err(_) => gst::meta::CustomMeta::add(buffer, REGION_META)?,
        };
        let regions = gst::Array::new(self.0.iter().map(|r| {
            gst::Structure::builder("region")
                .field("rule", r.rule.as_str())
                .field(
                    "kind",
                    match r.kind {
                        RegionKind::Zone => "zone",
                        RegionKind::Line => "line",
                    },
                )
                .field(
                    "points",
                    gst::Array::new(r.points.iter().flat_map(|&(x, y)| [x, y])),
                )
                .field("active", r.active)
                .build()
        }));
        meta.mut_structure().set("regions", regions);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_a_buffer() {
        gst::init().unwrap();
        crate::register();
        let regions = Regions(vec![
            Region {
                rule: "door".into(),
                kind: RegionKind::Zone,
                points: vec![(0.1, 0.2), (0.9, 0.2), (0.5, 0.8)],
                active: true,
            },
            Region {
                rule: "road".into(),
                kind: RegionKind::Line,
                points: vec![(0.5, 1.0), (0.5, 0.0)],
                active: false,
            },
        ]);
        let mut buffer = gst::Buffer::new();
        regions.attach(buffer.get_mut().unwrap()).unwrap();
        assert_eq!(Regions::from_buffer(&buffer), Some(regions.clone()));
        let mut fewer = regions.clone();
        fewer.0.pop();
        fewer.attach(buffer.get_mut().unwrap()).unwrap();
        assert_eq!(
            Regions::from_buffer(&buffer),
            Some(fewer),
            "replaced, not added"
        );
    }
}
