//! Keeping the clip folder within `max-clips` and `max-bytes`: the oldest clips go first.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Removes the oldest clips in `dir` (files named `*.mp4`, oldest by modification time) until
/// at most `max_clips` remain (0: any number) and they take at most `max_bytes` (0: any size).
/// The newest clip always stays. Returns the clips removed.
pub fn prune(dir: &Path, max_clips: u32, max_bytes: u64) -> io::Result<Vec<PathBuf>> {
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
        if path.extension().is_some_and(|e| e == "mp4") {
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

    /// A folder with clips `0.mp4` (oldest) .. `n-1.mp4`, each `size` bytes, and a file that
    /// is not a clip.
    fn folder(name: &str, n: u64, size: usize) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rtrecord-retention-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let t0 = SystemTime::now() - Duration::from_secs(3600);
        for i in 0..n {
            let f = std::fs::File::create(dir.join(format!("{i}.mp4"))).unwrap();
            f.set_len(size as u64).unwrap();
            f.set_modified(t0 + Duration::from_secs(i)).unwrap();
        }
        std::fs::write(dir.join("notes.txt"), "not a clip").unwrap();
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

    #[test]
    fn the_oldest_clips_go_first() {
        let dir = folder("count", 5, 10);
        assert_eq!(names(&prune(&dir, 3, 0).unwrap()), ["0.mp4", "1.mp4"]);
        assert_eq!(left(&dir), ["2.mp4", "3.mp4", "4.mp4", "notes.txt"]);
        let dir = folder("bytes", 5, 10);
        assert_eq!(
            names(&prune(&dir, 0, 25).unwrap()),
            ["0.mp4", "1.mp4", "2.mp4"]
        );
        assert!(prune(&dir, 0, 0).unwrap().is_empty());
    }

    #[test]
    fn the_newest_clip_stays_even_when_it_alone_is_too_big() {
        let dir = folder("newest", 2, 100);
        assert_eq!(names(&prune(&dir, 0, 50).unwrap()), ["0.mp4"]);
        assert_eq!(left(&dir), ["1.mp4", "notes.txt"]);
    }
}
