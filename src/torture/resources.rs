//! What the server holds just before each crash: resident memory, open file descriptors,
//! and the size of its data directory. Over a long run these must stay bounded: a leak of
//! memory or descriptors, or a log that checkpoints fail to truncate, shows up here.

use std::path::Path;

/// One sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Resident set size of the server process.
    pub rss_bytes: u64,
    /// Open file descriptors of the server process.
    pub fds: u64,
    /// Bytes in the data directory.
    pub data_bytes: u64,
}

/// Sample process `pid` (Linux `/proc`) and directory `dir`; what cannot be read is 0.
pub fn sample(pid: u32, dir: &Path) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    Sample {
        rss_bytes: rss_kb * 1024,
        fds,
        data_bytes: dir_bytes(dir),
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The first and the largest samples of a run, for the summary.
#[derive(Debug, Clone, Default)]
pub struct Span {
    /// The first sample taken.
    pub first: Option<Sample>,
    /// The latest sample taken.
    pub last: Sample,
    /// The largest value of each field.
    pub max: Sample,
}

impl Span {
    /// Add a sample.
    pub fn add(&mut self, s: Sample) {
        self.first.get_or_insert(s);
        self.last = s;
        self.max.rss_bytes = self.max.rss_bytes.max(s.rss_bytes);
        self.max.fds = self.max.fds.max(s.fds);
        self.max.data_bytes = self.max.data_bytes.max(s.data_bytes);
    }

    /// One line: first, last and largest of each.
    pub fn describe(&self) -> String {
        let f = self.first.unwrap_or_default();
        let mb = |b: u64| b as f64 / 1_048_576.0;
        let kb = |b: u64| b as f64 / 1024.0;
        format!(
            "server before each crash: RSS first {:.1} / last {:.1} / max {:.1} MiB; fds {} / {} / {}; data dir {:.1} / {:.1} / {:.1} KiB",
            mb(f.rss_bytes),
            mb(self.last.rss_bytes),
            mb(self.max.rss_bytes),
            f.fds,
            self.last.fds,
            self.max.fds,
            kb(f.data_bytes),
            kb(self.last.data_bytes),
            kb(self.max.data_bytes),
        )
    }
}
