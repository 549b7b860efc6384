//! Keeping the clip folder within `max-clips` and `max-bytes`: the oldest clips go first.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Whether `file` is a clip that an rtrecord named `element` writes: `ELEMENT-STAMP.mp4` with
/// a UTC stamp (and maybe `-N`). Other files in the folder, a user's videos or the clips of
/// another rtrecord, are never counted or removed.
pub fn is_clip_of(element: &str, file: &str) -> bool {
    file.strip_prefix(element)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_suffix(".mp4"))
        .is_some_and(|stamp| {
            stamp.starts_with(|c: char| c.is_ascii_digit())
                && stamp
                    .chars()
                    .all(|c| c.is_ascii_digit() || "TZ.-".contains(c))
        })
}

/// Removes the oldest clips of the rtrecord named `element` in `dir` (oldest by modification
/// time) until at most `max_clips` remain (0: any number) and they take at most `max_bytes`
/// (0: any size). The newest clip always stays. Returns the clips removed.
pub fn prune(
    dir: &Path,
    element: &str,
    max_clips: u32,
    max_bytes: u64,
) -> io::Result<Vec<PathBuf>> {
    if max_clips == 0 && max_bytes == 0 {
        return Ok(Vec::new());
    }
    let mut clips: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = match entry.metadata() {
            Ok(m) if m.is_file() => m,
            _ => continue,
        };
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| is_clip_of(element, n))
        {
            clips.push((meta.modified()?, meta.len(), path));
        }
    }
    // Newest first; equal times by name, which starts with when the clip was asked for.
    clips.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.2.cmp(&a.2)));
    let mut removed = Vec::new();
    let mut total = 0u64;
    for (i, (_, bytes, path)) in clips.into_iter().enumerate() {
        total += bytes;
        let too_many = max_clips > 0 && i >= max_clips as usize;
        let too_big = max_bytes > 0 && total > max_bytes;
        if i > 0 && (too_many || too_big) {
            match std::fs::remove_file(&path) {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A folder with clips `rec-2026112{i}T000000.000Z.mp4`, `i` = 0 (oldest) .. n-1, each
    /// `size` bytes, and files that are not this element's clips.
    fn folder(name: &str, n: u64, size: usize) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rtrecord-retention-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let t0 = SystemTime::now() - Duration::from_secs(3600);
        for i in 0..n {
            let f = std::fs::File::create(dir.join(clip(i))).unwrap();
            f.set_len(size as u64).unwrap();
            f.set_modified(t0 + Duration::from_secs(i)).unwrap();
        }
        std::fs::write(dir.join("notes.txt"), "not a clip").unwrap();
        // Older than every clip: a user's video, and another rtrecord's clip.
        for other in ["holiday.mp4", "rec2-20261101T000000.000Z.mp4"] {
            let f = std::fs::File::create(dir.join(other)).unwrap();
            f.set_modified(t0 - Duration::from_secs(60)).unwrap();
        }
        dir
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        let mut v: Vec<String> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn left(dir: &Path) -> Vec<String> {
        let paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names(&paths)
    }

    fn clip(i: u64) -> String {
        format!("rec-2026112{i}T000000.000Z.mp4")
    }

    const OTHERS: [&str; 3] = ["holiday.mp4", "notes.txt", "rec2-20261101T000000.000Z.mp4"];

    #[test]
    fn the_oldest_clips_go_first_and_only_this_elements() {
        let dir = folder("count", 5, 10);
        assert_eq!(
            names(&prune(&dir, "rec", 3, 0).unwrap()),
            [clip(0), clip(1)]
        );
        let mut expected: Vec<String> = (2..5).map(clip).chain(OTHERS.map(String::from)).collect();
        expected.sort();
        assert_eq!(left(&dir), expected);
        let dir = folder("bytes", 5, 10);
        assert_eq!(
            names(&prune(&dir, "rec", 0, 25).unwrap()),
            [clip(0), clip(1), clip(2)]
        );
        assert!(prune(&dir, "rec", 0, 0).unwrap().is_empty());
    }

    #[test]
    fn the_newest_clip_stays_even_when_it_alone_is_too_big() {
        let dir = folder("newest", 2, 100);
        assert_eq!(names(&prune(&dir, "rec", 0, 50).unwrap()), [clip(0)]);
        assert!(left(&dir).contains(&clip(1)));
    }

    #[test]
    fn clips_are_recognised_by_element_name_and_stamp() {
        assert!(is_clip_of("cam1", "cam1-20261123T073300.123Z.mp4"));
        assert!(is_clip_of("cam1", "cam1-20261123T073300.123Z-2.mp4"));
        assert!(!is_clip_of("cam1", "cam10-20261123T073300.123Z.mp4"));
        assert!(!is_clip_of("cam1", "cam1-holiday.mp4"));
        assert!(!is_clip_of("cam1", "cam1-20261123T073300.123Z.mp4.part"));
        assert!(!is_clip_of("cam1", "holiday.mp4"));
    }
}
