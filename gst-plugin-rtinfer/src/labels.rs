//! Class labels: a labels file, else the model's `names` metadata, else COCO-80.

use std::path::Path;

pub const COCO: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// One label per line; blank lines, a UTF-8 byte order mark and Windows line ends are
/// skipped (a BOM left in the first label would make rules on it never match).
pub fn from_file(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read label file {}: {e}", path.display()))?;
    let labels = parse(&text);
    if labels.is_empty() {
        return Err(format!("label file {} has no labels", path.display()));
    }
    Ok(labels)
}

fn parse(text: &str) -> Vec<String> {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Parses the Ultralytics `names` metadata, a Python dict literal such as
/// `{0: 'person', 1: "bicycle"}`. Returns `None` if it is not one.
pub fn from_names_metadata(names: &str) -> Option<Vec<String>> {
    let body = names.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut entries: Vec<(usize, String)> = Vec::new();
    let mut rest = body;
    while !rest.trim().is_empty() {
        let (key, after) = rest.split_once(':')?;
        let id: usize = key.trim().trim_start_matches(',').trim().parse().ok()?;
        let after = after.trim_start();
        let quote = after.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let end = after[1..].find(quote)? + 1;
        entries.push((id, after[1..end].to_string()));
        rest = &after[end + 1..];
    }
    entries.sort();
    let ok = !entries.is_empty() && entries.iter().enumerate().all(|(i, (id, _))| i == *id);
    ok.then(|| entries.into_iter().map(|(_, n)| n).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_and_windows_line_ends_are_not_part_of_labels() {
        assert_eq!(parse("\u{feff}person\r\ncar\r\n\r\n"), ["person", "car"]);
    }

    #[test]
    fn parses_ultralytics_names() {
        let l = from_names_metadata("{0: 'person', 1: 'traffic light'}").unwrap();
        assert_eq!(l, vec!["person", "traffic light"]);
        assert_eq!(from_names_metadata("{1: 'a'}"), None);
        assert_eq!(from_names_metadata("person"), None);
    }
}
