//! Appends alerts to a JSON-lines file, rotating it by size. A line is written whole or
//! not at all: after a failed write the file is cut back to where the line began.

use super::{DeliveryError, Message, Report, Worker};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

struct Writer {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    file: Option<(File, u64)>,
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl Writer {
    fn open(&mut self) -> Result<(), DeliveryError> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| DeliveryError::io("open", self.path.display(), e))?;
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            self.file = Some((f, size));
        }
        Ok(())
    }

    /// `path` -> `path.1` -> ... -> `path.N`; the oldest is removed.
    fn rotate(&mut self) -> Result<(), DeliveryError> {
        self.file = None;
        let failed = |path: &Path| {
            let what = path.display().to_string();
            move |e| DeliveryError::io("rotate", what, e)
        };
        if self.max_files == 0 {
            return std::fs::remove_file(&self.path).map_err(failed(&self.path));
        }
        let _ = std::fs::remove_file(numbered(&self.path, self.max_files));
        for n in (1..self.max_files).rev() {
            let from = numbered(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, n + 1)).map_err(failed(&from))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1)).map_err(failed(&self.path))
    }

    fn write(&mut self, msg: &Message) -> Result<(), DeliveryError> {
        let mut line = Vec::with_capacity(msg.json.len() + 1);
        line.extend_from_slice(msg.json.as_bytes());
        line.push(b'\n');
        self.open()?;
        let size = self.file.as_ref().map_or(0, |(_, s)| *s);
        if self.max_bytes > 0 && size > 0 && size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
            self.open()?;
        }
        let (file, size) = self.file.as_mut().expect("opened above");
        match file.write_all(&line).and_then(|_| file.flush()) {
            Ok(()) => {
                *size += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Never leave a partial line behind.
                let _ = file.set_len(*size);
                self.file = None;
                Err(DeliveryError::io("write", self.path.display(), e))
            }
        }
    }
}

/// A JSON-lines file output: `max_bytes` (0 = no limit) before rotating, `max_files` kept.
pub fn jsonl_file(path: PathBuf, max_bytes: u64, max_files: u32, report: Report) -> Worker {
    let mut w = Writer {
        path: path.clone(),
        max_bytes,
        max_files,
        file: None,
    };
    Worker::spawn(
        format!("jsonl:{}", path.display()),
        1024,
        report,
        move |m, _| w.write(m),
    )
}
