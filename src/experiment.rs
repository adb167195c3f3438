//! `walab experiment`: the lab's lessons as curves measured on this machine, one command
//! each. An experiment starts its own servers (through [`crate::harness`], as the torture
//! does) on free loopback ports with fresh data directories under its output directory, so
//! it measures the disk the user runs it on; it sweeps one parameter, measures each point
//! at least three times, prints progress and its table, and writes `<name>.json` (every
//! raw measurement and the machine), `<name>.svg` (the plot) and `<name>.md` (the table,
//! the plot and a conclusion whose numbers come from this run).
//!
//! Each experiment also states what physics says must hold (FSYNC=always loses nothing,
//! fdatasyncs per write fall as connections rise with group commit, ...); `--check` makes
//! a failed one the exit status, which is how CI runs them.
//!
//! - [`plot`]: the SVG charts.
//! - [`fsync`], [`group_commit`], [`checkpoint`], [`recovery`], [`replication`], [`crash`]:
//!   the six lessons.

pub mod checkpoint;
pub mod crash;
pub mod fsync;
pub mod group_commit;
pub mod plot;
pub mod recovery;
pub mod replication;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::TempDir;

/// The options of `walab experiment`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExperimentOptions {
    /// The experiment (`walab experiment list` names them), or `all`.
    pub name: String,
    /// A smaller run (about 20 s each): fewer points, shorter loads.
    #[arg(long)]
    pub quick: bool,
    /// Where to write `<name>.json`, `.svg` and `.md` [default: ./experiments/<date>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit non-zero when a result contradicts what physics says must hold.
    #[arg(long)]
    pub check: bool,
}

/// One lesson.
#[derive(Debug)]
pub struct Lesson {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it shows, in a line.
    pub shows: &'static str,
    /// How long it takes at its default size and with `--quick`, roughly.
    pub takes: &'static str,
    /// Run it; `None` when it cannot run here (it has said why, and how to fix it).
    pub run: fn(&Ctx) -> Result<Option<Report>, String>,
}

/// Every lesson, in the order `all` runs them.
pub static LESSONS: [Lesson; 6] = [
    Lesson {
        name: "fsync",
        shows: "what each FSYNC policy loses in a power loss, against the writes/s it buys",
        takes: "about 60 s (--quick: 15 s)",
        run: fsync::run,
    },
    Lesson {
        name: "group-commit",
        shows: "writes/s and fdatasyncs per write from 1 to 128 connections, group commit on and off",
        takes: "about 90 s (--quick: 15 s)",
        run: group_commit::run,
    },
    Lesson {
        name: "checkpoint",
        shows: "recovery time, records replayed, write p99 and write amplification against CHECKPOINT_THRESHOLD",
        takes: "about 90 s (--quick: 20 s)",
        run: checkpoint::run,
    },
    Lesson {
        name: "recovery",
        shows: "restart-to-healthy against the number of keys, from the log alone and from a snapshot",
        takes: "about 100 s (--quick: 15 s)",
        run: recovery::run,
    },
    Lesson {
        name: "replication",
        shows: "write latency of the WAL beside etcd with 1 and 3 members; the stall when etcd's leader dies",
        takes: "about 90 s (--quick: 25 s); needs etcd",
        run: replication::run,
    },
    Lesson {
        name: "crash",
        shows: "every backend under a process crash (and the WAL under a power loss): acknowledged, came back, lost",
        takes: "about 60 s (--quick: 20 s)",
        run: crash::run,
    },
];

/// What an experiment runs with.
#[derive(Debug)]
pub struct Ctx {
    /// A smaller run.
    pub quick: bool,
    /// Fresh data directories go under here (on the output's disk, so the disk measured is
    /// the user's).
    pub work: TempDir,
    /// The servers' logs.
    pub log: PathBuf,
    /// Data directories made so far.
    made: std::sync::atomic::AtomicU64,
}

impl Ctx {
    /// A fresh, empty data directory named `what`.
    pub fn dir(&self, what: &str) -> PathBuf {
        let n = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.work.path().join(format!("{what}-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&dir);
        dir
    }

    /// `quick` or `full`, by the run's size.
    pub fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick { quick } else { full }
    }
}

/// What an experiment found.
#[derive(Debug)]
pub struct Report {
    /// The table's header.
    pub header: Vec<String>,
    /// The table, one row a point (medians, with the spread where it helps).
    pub rows: Vec<Vec<String>>,
    /// Every raw measurement.
    pub raw: Value,
    /// The plot.
    pub chart: plot::Chart,
    /// A conclusion whose numbers come from this run.
    pub conclusion: String,
    /// What must hold, and whether it did.
    pub checks: Vec<(String, bool)>,
    /// How to read the plot, in a sentence or two.
    pub reading: String,
}

/// The machine the numbers come from: cores, load, and the disk's own serial fdatasync rate.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPUs this process may use.
    pub cores: usize,
    /// /proc/loadavg's 1-minute load before the run.
    pub load_1m: f64,
    /// Serial 128-byte write + fdatasync per second on the output's disk.
    pub fdatasyncs_per_sec: f64,
    /// Their median time, in microseconds.
    pub fdatasync_p50_us: f64,
}

fn load_1m() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Measure the disk under `dir`: 128-byte appends, each followed by fdatasync, for `span`.
pub fn disk_fdatasync(dir: &Path, span: Duration) -> std::io::Result<(f64, f64)> {
    use std::io::Write;
    let path = dir.join("fdatasync-probe");
    let mut f = std::fs::File::create(&path)?;
    let mut times = Vec::new();
    let started = Instant::now();
    while started.elapsed() < span {
        let t = Instant::now();
        f.write_all(&[7u8; 128])?;
        f.sync_data()?;
        times.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    let _ = std::fs::remove_file(&path);
    let rate = times.len() as f64 / started.elapsed().as_secs_f64();
    Ok((rate, crate::harness::load::quantile(&times, 0.5)))
}

/// The median of `v` (0 for none).
pub fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `median (min-max)` of `v`, with `digits` decimals.
pub fn spread(v: &[f64], digits: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.len() < 2 || (hi - lo).abs() < f64::EPSILON {
        return format!("{:.digits$}", median(v));
    }
    format!("{:.digits$} ({lo:.digits$}-{hi:.digits$})", median(v))
}

/// The repetitions per point.
pub const REPEATS: usize = 3;

/// Run `walab experiment`.
pub fn run(opts: ExperimentOptions) -> ExitCode {
    if opts.name == "list" {
        for l in &LESSONS {
            println!("{:<13} {} ({})", l.name, l.shows, l.takes);
        }
        return ExitCode::SUCCESS;
    }
    let chosen: Vec<&Lesson> = if opts.name == "all" {
        LESSONS.iter().collect()
    } else {
        match LESSONS.iter().find(|l| l.name == opts.name) {
            Some(l) => vec![l],
            None => {
                let names: Vec<&str> = LESSONS.iter().map(|l| l.name).collect();
                eprintln!(
                    "walab experiment: no experiment '{}': expected one of {}, all or list",
                    opts.name,
                    names.join(", ")
                );
                return ExitCode::from(2);
            }
        }
    };
    let out = opts.out.clone().unwrap_or_else(|| {
        PathBuf::from("experiments")
            .join(&crate::server::timefmt::rfc3339_from_micros(now_micros())[..10])
    });
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("walab experiment: cannot create {}: {e}", out.display());
        return ExitCode::from(2);
    }
    let mut failed = false;
    for lesson in chosen {
        match run_one(lesson, &opts, &out) {
            Ok(ok) => failed |= !ok,
            Err(e) => {
                eprintln!("walab experiment {}: {e}", lesson.name);
                return ExitCode::FAILURE;
            }
        }
    }
    if failed && opts.check {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Run one lesson and write its files; `Ok(false)` when a check failed.
fn run_one(lesson: &Lesson, opts: &ExperimentOptions, out: &Path) -> Result<bool, String> {
    let work_root = out.join(format!(".work-{}", lesson.name));
    let _ = std::fs::remove_dir_all(&work_root);
    std::fs::create_dir_all(&work_root)
        .map_err(|e| format!("create {}: {e}", work_root.display()))?;
    let load_before = load_1m();
    let (rate, p50) = disk_fdatasync(
        &work_root,
        Duration::from_millis(if opts.quick { 300 } else { 1000 }),
    )
    .map_err(|e| format!("measuring the disk: {e}"))?;
    let machine = Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_1m: load_before,
        fdatasyncs_per_sec: rate,
        fdatasync_p50_us: p50,
    };
    println!(
        "experiment {}: {} ({} cores, load {:.2}, this disk: {:.0} fdatasyncs/s serially, p50 {:.0} us)",
        lesson.name, lesson.shows, machine.cores, machine.load_1m, rate, p50
    );
    let ctx = Ctx {
        quick: opts.quick,
        work: TempDir::at(&work_root.join("data")),
        log: work_root.join("servers.log"),
        made: Default::default(),
    };
    let started = Instant::now();
    let report = (lesson.run)(&ctx);
    let took = started.elapsed();
    drop(ctx);
    // The servers' log stays for a failed run, to say what happened; otherwise nothing is
    // left beside the results.
    let report = report.map_err(|e| {
        format!(
            "{e} (the servers' log: {})",
            work_root.join("servers.log").display()
        )
    })?;
    let _ = std::fs::remove_dir_all(&work_root);
    let Some(report) = report else {
        return Ok(true);
    };
    let svg = out.join(format!("{}.svg", lesson.name));
    let mut chart = report.chart.clone();
    if chart.title.is_empty() {
        chart.title = lesson.shows.to_string();
    }
    plot::draw(&svg, &chart)?;
    let command = format!(
        "walab experiment {}{}",
        lesson.name,
        if opts.quick { " --quick" } else { "" }
    );
    let all_ok = report.checks.iter().all(|(_, ok)| *ok);
    let json = json!({
        "experiment": lesson.name,
        "shows": lesson.shows,
        "command": command,
        "quick": opts.quick,
        "seconds": took.as_secs_f64(),
        "machine": {
            "cores": machine.cores,
            "load_1m_before": machine.load_1m,
            "load_1m_after": load_1m(),
            "disk_fdatasyncs_per_sec": machine.fdatasyncs_per_sec,
            "disk_fdatasync_p50_us": machine.fdatasync_p50_us,
        },
        "header": report.header,
        "rows": report.rows,
        "conclusion": report.conclusion,
        "checks": report.checks.iter().map(|(what, ok)| json!({"what": what, "ok": ok})).collect::<Vec<_>>(),
        "raw": report.raw,
    });
    let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
    std::fs::write(out.join(format!("{}.json", lesson.name)), text)
        .map_err(|e| format!("write {}.json: {e}", lesson.name))?;
    let table = markdown_table(&report.header, &report.rows);
    let checks: String = report
        .checks
        .iter()
        .map(|(what, ok)| format!("- {} {what}\n", if *ok { "holds:" } else { "FAILED:" }))
        .collect();
    let md = format!(
        "# {name}: {shows}\n\n`{command}`, {took:.0} s on {cores} cores (load {load:.2} before), a disk that does {rate:.0} serial fdatasyncs/s (p50 {p50:.0} us).\n\n{table}\n![{name}]({name}.svg)\n\n**Reading it.** {reading}\n\n**Conclusion.** {conclusion}\n\n**What must hold:**\n{checks}",
        name = lesson.name,
        shows = lesson.shows,
        took = took.as_secs_f64(),
        cores = machine.cores,
        load = machine.load_1m,
        reading = report.reading,
        conclusion = report.conclusion,
    );
    std::fs::write(out.join(format!("{}.md", lesson.name)), md)
        .map_err(|e| format!("write {}.md: {e}", lesson.name))?;
    println!("{table}");
    println!("{}", report.conclusion);
    print!("{checks}");
    println!(
        "experiment {}: wrote {}/{}.{{json,svg,md}} in {:.0} s",
        lesson.name,
        out.display(),
        lesson.name,
        took.as_secs_f64()
    );
    Ok(all_ok)
}

fn markdown_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut s = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

/// The slope of `log10(y)` against `log10(x)`: how many times `y` grows when `x` grows
/// tenfold is `10^slope`.
pub fn log_slope(points: &[(f64, f64)]) -> f64 {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.log10(), y.log10()))
        .collect();
    let n = pts.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

/// A run directory's or file's plain name: no path, nothing hidden.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What the lab's page shows: the runs under `dir` (directories holding `<lesson>.json`),
/// newest first by name (the default names are dates), at most ten, each experiment with
/// its command, conclusion and the URL of its plot.
pub fn runs_in(dir: &Path) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut runs: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| plain_name(n))
        .collect();
    runs.sort_unstable_by(|a, b| b.cmp(a));
    runs.into_iter()
        .filter_map(|run| {
            let experiments: Vec<Value> = LESSONS
                .iter()
                .filter_map(|l| {
                    let path = dir.join(&run).join(format!("{}.json", l.name));
                    let found: Value =
                        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
                    Some(json!({
                        "name": l.name,
                        "shows": l.shows,
                        "command": found["command"],
                        "conclusion": found["conclusion"],
                        "plot": format!("/experiments/{run}/{}.svg", l.name),
                    }))
                })
                .collect();
            (!experiments.is_empty()).then(|| json!({ "run": run, "experiments": experiments }))
        })
        .take(10)
        .collect()
}

/// The file behind `/experiments/<run>/<file>`: only a lesson's plot in a run directory
/// named plainly, so no other file under (or above) `dir` can be asked for.
pub fn plot_path(dir: &Path, run: &str, file: &str) -> Option<PathBuf> {
    if !plain_name(run) {
        return None;
    }
    let lesson = LESSONS.iter().find(|l| file == format!("{}.svg", l.name))?;
    Some(dir.join(run).join(format!("{}.svg", lesson.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lessons_plot_in_a_plain_run_directory_is_served() {
        let dir = Path::new("/e");
        assert_eq!(
            plot_path(dir, "2026-12-06", "fsync.svg"),
            Some(PathBuf::from("/e/2026-12-06/fsync.svg"))
        );
        for (run, file) in [
            ("..", "fsync.svg"),
            (".work-fsync", "fsync.svg"),
            ("2026-12-06", "fsync.json"),
            ("2026-12-06", "../../etc/passwd"),
            ("a/b", "fsync.svg"),
        ] {
            assert_eq!(plot_path(dir, run, file), None, "{run} {file}");
        }
    }
}
