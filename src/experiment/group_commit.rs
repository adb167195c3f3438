//! `group-commit`: what sharing one fdatasync among the writes waiting for it buys as the
//! number of connections grows, against each write paying its own (`GROUP_COMMIT=off`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::json;
use walab_store::BackendKind;

use super::plot::{Chart, Series, SeriesLabelPosition};
use super::{Ctx, REPEATS, Report, disk_fdatasync, median, spread};
use crate::harness::Server;
use crate::harness::load::{self, LoadSpec};

/// The lesson.
pub fn run(ctx: &Ctx) -> Result<Option<Report>, String> {
    let conns: Vec<usize> = ctx.pick(vec![1, 4, 16, 64], vec![1, 2, 4, 8, 16, 32, 64, 128]);
    let span = ctx.pick(Duration::from_millis(500), Duration::from_millis(1500));
    let (disk_rate, _) = disk_fdatasync(ctx.work.path(), Duration::from_millis(500))
        .map_err(|e| format!("measuring the disk: {e}"))?;
    let wal = BackendKind::named("wal");
    // [mode][conns] -> per-rep (writes/s, fsyncs per write, p99 us)
    let mut results = vec![vec![Vec::new(); conns.len()]; 2];
    for rep in 0..REPEATS {
        for (m, mode) in ["on", "off"].iter().enumerate() {
            let env = [
                ("GROUP_COMMIT".to_string(), mode.to_string()),
                ("CHECKPOINT_THRESHOLD".to_string(), "0".to_string()),
            ];
            let dir = ctx.dir("group-commit");
            let mut server = Server::start(wal, &dir, &env, &ctx.log).map_err(|e| e.to_string())?;
            server.wait_healthy(Duration::from_secs(30))?;
            for (c, &n) in conns.iter().enumerate() {
                let before = server.stats()["fsync_count"].as_u64().unwrap_or(0);
                let spec = LoadSpec {
                    connections: n,
                    duration: span,
                    writes: None,
                    value_bytes: 100,
                    key_space: None,
                    prefix: format!("g{n}-"),
                    record_acks: false,
                };
                let r = load::run(server.addr, &spec, &Arc::new(AtomicBool::new(false)));
                let after = server.stats()["fsync_count"].as_u64().unwrap_or(0);
                let per_write = after.saturating_sub(before) as f64 / r.acked.max(1) as f64;
                println!(
                    "  group commit {mode}, {n:>3} connections #{}: {:>6.0} writes/s, {per_write:.3} fdatasyncs/write, p99 {:.0} us",
                    rep + 1,
                    r.rate(),
                    r.quantile_us(0.99)
                );
                results[m][c].push((r.rate(), per_write, r.quantile_us(0.99)));
            }
        }
    }
    let mut rows = Vec::new();
    let mut series = Vec::new();
    let mut raw = Vec::new();
    for (m, mode) in ["on", "off"].iter().enumerate() {
        let mut points = Vec::new();
        for (c, &n) in conns.iter().enumerate() {
            let rs = &results[m][c];
            let rate: Vec<f64> = rs.iter().map(|r| r.0).collect();
            let per: Vec<f64> = rs.iter().map(|r| r.1).collect();
            let p99: Vec<f64> = rs.iter().map(|r| r.2 / 1000.0).collect();
            rows.push(vec![
                mode.to_string(),
                n.to_string(),
                spread(&rate, 0),
                spread(&per, 3),
                spread(&p99, 2),
            ]);
            points.push((n as f64, median(&rate)));
            raw.push(json!({"group_commit": mode, "connections": n, "runs": rs.iter().map(|r| json!({"writes_per_sec": r.0, "fdatasyncs_per_write": r.1, "p99_us": r.2})).collect::<Vec<_>>()}));
        }
        series.push(Series {
            name: format!("group commit {mode}"),
            points,
            labels: None,
        });
    }
    let med = |m: usize, c: usize, f: fn(&(f64, f64, f64)) -> f64| {
        median(&results[m][c].iter().map(f).collect::<Vec<_>>())
    };
    let last = conns.len() - 1;
    let checks = vec![
        (
            format!(
                "with group commit, fdatasyncs per write fall from 1 to {} connections",
                conns[last]
            ),
            med(0, last, |r| r.1) < 0.5 * med(0, 0, |r| r.1),
        ),
        (
            "without group commit, every write pays its own fdatasync (0.9 to 1.1 per write)"
                .to_string(),
            (0..conns.len()).all(|c| (0.9..=1.1).contains(&med(1, c, |r| r.1))),
        ),
    ];
    let conclusion = format!(
        "At {} connections group commit did {:.0} writes/s with {:.3} fdatasyncs per write (one sync for {:.0} writes), {:.1}x the {:.0} writes/s of a sync per write; at 1 connection the two are alike ({:.0} and {:.0}). This disk does {disk_rate:.0} serial fdatasyncs/s, the ceiling without group commit.",
        conns[last],
        med(0, last, |r| r.0),
        med(0, last, |r| r.1),
        1.0 / med(0, last, |r| r.1).max(1e-9),
        med(0, last, |r| r.0) / med(1, last, |r| r.0).max(1e-9),
        med(1, last, |r| r.0),
        med(0, 0, |r| r.0),
        med(1, 0, |r| r.0),
    );
    Ok(Some(Report {
        header: ["group commit", "connections", "writes/s", "fdatasyncs/write", "p99 (ms)"].map(String::from).to_vec(),
        rows,
        raw: json!({"disk_fdatasyncs_per_sec": disk_rate, "points": raw}),
        chart: Chart {
            title: "Durable writes per second as connections grow (FSYNC=always)".into(),
            x: "concurrent connections".into(),
            y: "acknowledged writes per second".into(),
            log_x: true,
            log_y: true,
            series,
            reference: Some((disk_rate, "this disk's serial fdatasyncs per second".into())),
            legend: SeriesLabelPosition::UpperLeft,
        },
        conclusion,
        checks,
        reading: "Without group commit the line cannot rise above the disk's serial fdatasync rate (the flat line); with it, one fdatasync covers every write waiting, so throughput grows with the connections.".into(),
    }))
}
