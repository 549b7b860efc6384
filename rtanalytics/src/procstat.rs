//! The process's own resource use, from /proc (Linux).

#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
    pub threads: u64,
}

pub fn sample() -> Sample {
    let mut s = Sample::default();
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            let value = || {
                line.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("VmRSS:") {
                s.rss_bytes = value() * 1024;
            } else if line.starts_with("Threads:") {
                s.threads = value();
            }
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may hold spaces): utime and stime are the
        // 14th and 15th fields, in clock ticks (100 per second on Linux).
        if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            s.cpu_seconds = (ticks(11) + ticks(12)) as f64 / 100.0;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let s = super::sample();
        assert!(s.rss_bytes > 1 << 20, "{s:?}");
        assert!(s.threads >= 1, "{s:?}");
        let busy = std::time::Instant::now();
        let mut x = 0u64;
        while busy.elapsed().as_millis() < 300 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(super::sample().cpu_seconds > 0.1, "{x}");
    }
}
