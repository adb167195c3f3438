//! `crash`: every backend that needs only a directory, under a write load, crashed the way
//! it can be (a process crash; the WAL also a simulated power loss): of the writes it
//! acknowledged, how many came back. The durability table as one picture. Also the
//! machinery `fsync` uses: [`under_load`].

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use walab_store::{BackendKind, CrashMode};

use super::plot::{Chart, Series, SeriesLabelPosition};
use super::{Ctx, REPEATS, Report, median, spread};
use crate::client::Blocking;
use crate::harness::Server;
use crate::harness::load::{self, LoadSpec};

/// One crash under load, and what came back.
#[derive(Debug, Clone)]
pub struct CrashRun {
    /// Writes acknowledged before the crash.
    pub acked: u64,
    /// Of those, missing after the restart.
    pub lost: u64,
    /// From the oldest lost write's acknowledgement to the crash, in ms (0: none lost).
    pub window_ms: f64,
    /// Acknowledged writes per second before the crash.
    pub writes_per_sec: f64,
    /// From starting the new process to its first healthy answer, in ms.
    pub restart_ms: f64,
    /// The server promised to keep every acknowledged write through this crash.
    pub promised: bool,
}

/// Start `backend` with `env` in a fresh directory, load it with 8 writers for `load`,
/// crash it as `mode` says while they write, start it again, and count.
pub fn under_load(
    ctx: &Ctx,
    backend: BackendKind,
    env: &[(String, String)],
    mode: CrashMode,
    load: Duration,
) -> Result<CrashRun, String> {
    let dir = ctx.dir(backend.as_str());
    let start = || {
        Server::start(backend, &dir, env, &ctx.log).map_err(|e| format!("start walab serve: {e}"))
    };
    let mut server = start()?;
    server.wait_healthy(Duration::from_secs(30))?;
    let promised = server.promises_no_loss(mode == CrashMode::PowerLoss);
    let stop = Arc::new(AtomicBool::new(false));
    let spec = LoadSpec {
        connections: 8,
        duration: load + Duration::from_secs(10),
        writes: None,
        value_bytes: 16,
        key_space: None,
        prefix: "c".into(),
        record_acks: true,
    };
    let (addr, stop2) = (server.addr, stop.clone());
    let began = Instant::now();
    let writers = std::thread::spawn(move || load::run(addr, &spec, &stop2));
    std::thread::sleep(load);
    let crash_at = began.elapsed();
    let answer =
        Blocking::new(server.addr).request("POST", &format!("/admin/crash?mode={mode}"), None);
    if !matches!(&answer, Ok(r) if r.status == 200) {
        stop.store(true, Ordering::Relaxed);
        return Err(format!("POST /admin/crash?mode={mode} answered {answer:?}"));
    }
    server.wait_gone(Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let result = writers
        .join()
        .map_err(|_| "a writer panicked".to_string())?;
    let mut again = start()?;
    let restart = again.wait_healthy(Duration::from_secs(120))?;
    let listing = Blocking::new(again.addr)
        .request("GET", "/kv", None)
        .map_err(|e| format!("GET /kv after the restart: {e}"))?
        .json();
    let present: HashSet<&str> = listing["data"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let acked: Vec<_> = result
        .acks
        .iter()
        .filter(|a| a.at <= crash_at + Duration::from_secs(1))
        .collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|a| !present.contains(a.key.as_str()))
        .collect();
    let window_ms = lost.iter().map(|a| a.at).min().map_or(0.0, |oldest| {
        crash_at.saturating_sub(oldest).as_secs_f64() * 1e3
    });
    Ok(CrashRun {
        acked: acked.len() as u64,
        lost: lost.len() as u64,
        window_ms,
        writes_per_sec: acked.len() as f64 / crash_at.as_secs_f64(),
        restart_ms: restart.as_secs_f64() * 1e3,
        promised,
    })
}

/// The lesson.
pub fn run(ctx: &Ctx) -> Result<Option<Report>, String> {
    let load = ctx.pick(Duration::from_millis(800), Duration::from_secs(2));
    let mut cases: Vec<(BackendKind, CrashMode)> = Vec::new();
    for kind in BackendKind::all().filter(|k| !k.can_crash(CrashMode::Leader)) {
        for mode in [CrashMode::Process, CrashMode::PowerLoss] {
            if kind.can_crash(mode) {
                cases.push((kind, mode));
            }
        }
    }
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    let mut points = Vec::new();
    let mut labels = Vec::new();
    let mut checks = Vec::new();
    for (i, (kind, mode)) in cases.iter().enumerate() {
        let mut runs = Vec::new();
        for rep in 0..REPEATS {
            let r = under_load(ctx, *kind, &[], *mode, load)?;
            println!(
                "  {kind} {mode} #{}: {} acknowledged, {} lost",
                rep + 1,
                r.acked,
                r.lost
            );
            runs.push(r);
        }
        let promised = runs.iter().all(|r| r.promised);
        let kept: Vec<f64> = runs
            .iter()
            .map(|r| 100.0 * (r.acked - r.lost) as f64 / (r.acked.max(1) as f64))
            .collect();
        let lost: Vec<f64> = runs.iter().map(|r| r.lost as f64).collect();
        let acked: Vec<f64> = runs.iter().map(|r| r.acked as f64).collect();
        rows.push(vec![
            kind.to_string(),
            mode.to_string(),
            spread(&acked, 0),
            spread(&lost, 0),
            spread(&kept, 1),
            if promised {
                "keeps every one".into()
            } else {
                "none".into()
            },
        ]);
        if promised {
            checks.push((
                format!(
                    "{kind} under a {mode} crash keeps every acknowledged write, as it promises"
                ),
                runs.iter().all(|r| r.lost == 0),
            ));
        }
        points.push((i as f64 + 1.0, median(&kept)));
        labels.push(format!("{kind} ({mode})"));
        raw.push(json!({
            "backend": kind.as_str(), "crash": mode.as_str(), "promised": promised,
            "runs": runs.iter().map(|r| json!({"acked": r.acked, "lost": r.lost, "window_ms": r.window_ms, "restart_ms": r.restart_ms})).collect::<Vec<_>>(),
        }));
    }
    let memory = rows
        .iter()
        .find(|r| r[0] == "memory")
        .map(|r| r[4].clone())
        .unwrap_or_default();
    checks.push((
        "memory keeps none of its acknowledged writes through a process crash".into(),
        memory.starts_with("0.0"),
    ));
    let kept_all: Vec<String> = rows
        .iter()
        .filter(|r| r[3] == "0")
        .map(|r| format!("{} ({})", r[0], r[1]))
        .collect();
    let conclusion = format!(
        "Under load, {} kept every write it acknowledged; memory kept {memory}% of its acknowledged writes through a process crash; {}.",
        if kept_all.is_empty() {
            "no backend".to_string()
        } else {
            kept_all.join(", ")
        },
        rows.iter()
            .filter(|r| r[3] != "0" && r[0] != "memory")
            .map(|r| format!("{} ({}) lost {} of {}", r[0], r[1], r[3], r[2]))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(Some(Report {
        header: ["backend", "crash", "acknowledged", "lost", "kept %", "promise"].map(String::from).to_vec(),
        rows,
        raw: json!(raw),
        chart: Chart {
            title: "What each backend keeps of its acknowledged writes through a crash under load".into(),
            x: "backend and crash (one point each, numbered as in the table)".into(),
            y: "acknowledged writes that came back (%)".into(),
            log_x: false,
            log_y: false,
            series: vec![Series { name: "kept (median of 3)".into(), points, labels: Some(labels) }],
            reference: Some((100.0, "every acknowledged write".into())),
            legend: SeriesLabelPosition::LowerRight,
        },
        conclusion,
        checks,
        reading: "One point per backend and crash; a point on the line kept every write it acknowledged. Memory sits at 0: nothing survives its process.".into(),
    }))
}
