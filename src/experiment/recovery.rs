//! `recovery`: how restart-to-healthy grows with the work a restart must do, replaying the
//! log alone or loading a snapshot, and the rate each goes at.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::json;
use walab_store::BackendKind;

use super::plot::{Chart, Series, SeriesLabelPosition};
use super::{Ctx, REPEATS, Report, median, spread};
use crate::client::Blocking;
use crate::harness::Server;
use crate::harness::load::{self, LoadSpec};

/// Restart the server in `dir` `REPEATS` times: (restart to healthy ms, recovery ms, replayed).
fn restarts(
    ctx: &Ctx,
    dir: &std::path::Path,
    env: &[(String, String)],
) -> Result<Vec<(f64, f64, u64)>, String> {
    let wal = BackendKind::named("wal");
    let mut out = Vec::new();
    for _ in 0..REPEATS {
        let mut s = Server::start(wal, dir, env, &ctx.log).map_err(|e| e.to_string())?;
        let took = s.wait_healthy(Duration::from_secs(300))?;
        let st = s.stats();
        out.push((
            took.as_secs_f64() * 1e3,
            st["last_recovery"]["duration_ms"].as_f64().unwrap_or(0.0),
            st["last_recovery"]["entries_replayed"]
                .as_u64()
                .unwrap_or(0),
        ));
        s.kill();
    }
    Ok(out)
}

/// Records (or keys) per second: the inverse of the least-squares slope of recovery time
/// against the records, so the fixed cost of starting a process drops out.
fn rate(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1 / 1e3).sum::<f64>() / n;
    let sxy: f64 = points
        .iter()
        .map(|(x, ms)| (x - mx) * (ms / 1e3 - my))
        .sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    if sxy <= 0.0 { 0.0 } else { sxx / sxy }
}

/// The lesson.
pub fn run(ctx: &Ctx) -> Result<Option<Report>, String> {
    let sizes: Vec<u64> = ctx.pick(
        vec![5_000, 20_000, 60_000],
        vec![1_000, 10_000, 100_000, 1_000_000],
    );
    let wal = BackendKind::named("wal");
    let env = [("CHECKPOINT_THRESHOLD".to_string(), "0".to_string())];
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    let (mut log_pts, mut snap_pts) = (Vec::new(), Vec::new());
    // The engine's own recovery time (no process start), for the fitted rates.
    let (mut log_fit, mut snap_fit) = (Vec::new(), Vec::new());
    for &n in &sizes {
        let dir = ctx.dir("recovery");
        let mut s = Server::start(wal, &dir, &env, &ctx.log).map_err(|e| e.to_string())?;
        s.wait_healthy(Duration::from_secs(30))?;
        let spec = LoadSpec {
            connections: 32,
            duration: Duration::from_secs(600),
            writes: Some(n),
            value_bytes: 32,
            key_space: None,
            prefix: "r".into(),
            record_acks: false,
        };
        let loaded = load::run(s.addr, &spec, &Arc::new(AtomicBool::new(false)));
        s.kill();
        let from_log = restarts(ctx, &dir, &env)?;
        let mut s = Server::start(wal, &dir, &env, &ctx.log).map_err(|e| e.to_string())?;
        s.wait_healthy(Duration::from_secs(300))?;
        Blocking::new(s.addr)
            .request("POST", "/admin/checkpoint", None)
            .map_err(|e| format!("POST /admin/checkpoint: {e}"))?;
        s.kill();
        let from_snapshot = restarts(ctx, &dir, &env)?;
        let healthy = |v: &[(f64, f64, u64)]| v.iter().map(|r| r.0).collect::<Vec<f64>>();
        println!(
            "  {n:>8} keys (loaded at {:.0} writes/s): from the log {} ms, from a snapshot {} ms",
            loaded.rate(),
            spread(&healthy(&from_log), 1),
            spread(&healthy(&from_snapshot), 1)
        );
        rows.push(vec![
            n.to_string(),
            spread(&healthy(&from_log), 1),
            from_log.first().map_or(0, |r| r.2).to_string(),
            spread(&healthy(&from_snapshot), 1),
        ]);
        let engine = |v: &[(f64, f64, u64)]| median(&v.iter().map(|r| r.1).collect::<Vec<f64>>());
        log_pts.push((n as f64, median(&healthy(&from_log))));
        snap_pts.push((n as f64, median(&healthy(&from_snapshot))));
        log_fit.push((n as f64, engine(&from_log)));
        snap_fit.push((n as f64, engine(&from_snapshot)));
        raw.push(json!({
            "keys": n,
            "from_log": from_log.iter().map(|r| json!({"restart_to_healthy_ms": r.0, "recovery_ms": r.1, "replayed": r.2})).collect::<Vec<_>>(),
            "from_snapshot": from_snapshot.iter().map(|r| json!({"restart_to_healthy_ms": r.0, "recovery_ms": r.1, "replayed": r.2})).collect::<Vec<_>>(),
        }));
    }
    let log_rate = rate(&log_fit);
    let snap_rate = rate(&snap_fit);
    let checks = vec![(
        format!(
            "recovery time grows with the keys ({} keys: {:.1} ms; {} keys: {:.1} ms)",
            sizes[0],
            log_pts[0].1,
            sizes[sizes.len() - 1],
            log_pts[log_pts.len() - 1].1
        ),
        log_pts[log_pts.len() - 1].1 > log_pts[0].1,
    )];
    let conclusion = format!(
        "Restart to healthy grew with the work: recovery replayed the log alone at about {:.0} records/s ({} records: {:.0} ms to healthy), and loaded a snapshot at about {:.0} keys/s ({:.0} ms); starting a process and its first answer cost about {:.0} ms whatever the size.",
        log_rate,
        sizes[sizes.len() - 1],
        log_pts[log_pts.len() - 1].1,
        snap_rate,
        snap_pts[snap_pts.len() - 1].1,
        log_pts[0].1.min(snap_pts[0].1),
    );
    Ok(Some(Report {
        header: ["keys", "from the log (ms)", "records replayed", "from a snapshot (ms)"].map(String::from).to_vec(),
        rows,
        raw: json!({"log_records_per_sec": log_rate, "snapshot_keys_per_sec": snap_rate, "sizes": raw}),
        chart: Chart {
            title: "Restart to healthy against the size of the store".into(),
            x: "keys (one record each)".into(),
            y: "restart to first healthy answer (ms)".into(),
            log_x: true,
            log_y: true,
            series: vec![
                Series { name: "replaying the log".into(), points: log_pts, labels: None },
                Series { name: "loading a snapshot".into(), points: snap_pts, labels: None },
            ],
            reference: None,
            legend: SeriesLabelPosition::UpperLeft,
        },
        conclusion,
        checks,
        reading: "Both lines start at the cost of starting a process; past that, time grows in proportion to the records (or keys) recovery must read.".into(),
    }))
}
