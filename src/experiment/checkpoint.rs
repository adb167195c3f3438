//! `checkpoint`: the seed's trade-off measured. A small CHECKPOINT_THRESHOLD snapshots
//! often (more I/O while writing, less log to replay); a large one, or none, the reverse.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::json;
use walab_store::BackendKind;

use super::plot::{Chart, Series, SeriesLabelPosition};
use super::{Ctx, REPEATS, Report, log_slope, median, spread};
use crate::harness::Server;
use crate::harness::load::{self, LoadSpec};

/// The lesson.
pub fn run(ctx: &Ctx) -> Result<Option<Report>, String> {
    let thresholds: Vec<u64> = ctx.pick(
        vec![10, 100, 1000, 0],
        vec![10, 100, 1000, 10_000, 100_000, 0],
    );
    let (writes, keys) = ctx.pick((20_000u64, 2_000u64), (50_000, 5_000));
    let wal = BackendKind::named("wal");
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    let mut rec_pts = Vec::new();
    let mut p99_pts = Vec::new();
    let mut replay_by = Vec::new();
    for &t in &thresholds {
        let name = if t == 0 {
            "off".to_string()
        } else {
            t.to_string()
        };
        let env = [
            ("CHECKPOINT_THRESHOLD".to_string(), t.to_string()),
            // The threshold alone decides, so the sweep is of one parameter.
            ("CHECKPOINT_GROWTH_PERCENT".to_string(), "0".to_string()),
            ("SNAPSHOT_BYTES_PER_SEC".to_string(), "0".to_string()),
        ];
        let mut runs = Vec::new();
        for rep in 0..REPEATS {
            let dir = ctx.dir("checkpoint");
            let mut server = Server::start(wal, &dir, &env, &ctx.log).map_err(|e| e.to_string())?;
            server.wait_healthy(Duration::from_secs(30))?;
            let spec = LoadSpec {
                connections: 16,
                duration: Duration::from_secs(300),
                writes: Some(writes),
                value_bytes: 64,
                key_space: Some(keys),
                prefix: "k".into(),
                record_acks: false,
            };
            let r = load::run(server.addr, &spec, &Arc::new(AtomicBool::new(false)));
            let st = server.stats();
            let checkpoints = st["checkpoints"].as_u64().unwrap_or(0);
            let snapshot = st["last_checkpoint"]["snapshot_bytes"]
                .as_u64()
                .unwrap_or(0);
            let log_written = st["bytes_written"].as_u64().unwrap_or(0);
            let on_disk = st["size_on_disk_bytes"].as_u64().unwrap_or(0);
            server.kill();
            let mut again = Server::start(wal, &dir, &env, &ctx.log).map_err(|e| e.to_string())?;
            let healthy = again.wait_healthy(Duration::from_secs(120))?;
            let recovery = again.stats()["last_recovery"].clone();
            let replayed = recovery["entries_replayed"].as_u64().unwrap_or(0);
            let recovery_ms = recovery["duration_ms"].as_f64().unwrap_or(0.0);
            let amplification = (checkpoints * snapshot) as f64 / r.bytes.max(1) as f64;
            println!(
                "  threshold {name} #{}: {checkpoints} checkpoints, p99 {:.2} ms, replayed {replayed}, healthy in {:.1} ms",
                rep + 1,
                r.quantile_us(0.99) / 1000.0,
                healthy.as_secs_f64() * 1e3
            );
            runs.push(json!({
                "writes_per_sec": r.rate(), "p99_us": r.quantile_us(0.99), "checkpoints": checkpoints,
                "snapshot_bytes": snapshot, "log_bytes_written": log_written, "acked_bytes": r.bytes,
                "snapshot_bytes_per_acked_byte": amplification, "bytes_on_disk": on_disk,
                "replayed": replayed, "recovery_ms": recovery_ms, "restart_to_healthy_ms": healthy.as_secs_f64() * 1e3,
            }));
        }
        let col = |f: &str| {
            runs.iter()
                .map(|r| r[f].as_f64().unwrap_or(0.0))
                .collect::<Vec<f64>>()
        };
        rows.push(vec![
            name.clone(),
            spread(&col("recovery_ms"), 1),
            spread(&col("restart_to_healthy_ms"), 1),
            spread(&col("replayed"), 0),
            spread(
                &col("p99_us").iter().map(|u| u / 1000.0).collect::<Vec<_>>(),
                2,
            ),
            spread(
                &col("bytes_on_disk")
                    .iter()
                    .map(|b| b / 1024.0)
                    .collect::<Vec<_>>(),
                0,
            ),
            spread(&col("snapshot_bytes_per_acked_byte"), 2),
        ]);
        // "off" is drawn at ten times the largest threshold, and named in the legend.
        let x = if t == 0 {
            10.0 * *thresholds.iter().max().unwrap_or(&1) as f64
        } else {
            t as f64
        };
        rec_pts.push((x, median(&col("recovery_ms")).max(0.01)));
        p99_pts.push((x, median(&col("p99_us")) / 1000.0));
        replay_by.push((t, median(&col("replayed"))));
        raw.push(json!({"threshold": t, "runs": runs}));
    }
    let numeric: Vec<(f64, f64)> = rec_pts.iter().copied().take(thresholds.len() - 1).collect();
    let p99_numeric: Vec<(f64, f64)> = p99_pts.iter().copied().take(thresholds.len() - 1).collect();
    let rec_factor = 10f64.powf(log_slope(&numeric));
    let p99_factor = 10f64.powf(log_slope(&p99_numeric));
    let smallest = replay_by[0].1;
    let off = replay_by[replay_by.len() - 1].1;
    let checks = vec![(
        format!(
            "a larger threshold replays more records (threshold {}: {smallest:.0}; off: {off:.0})",
            thresholds[0]
        ),
        off > smallest,
    )];
    let conclusion = format!(
        "Over {writes} writes to {keys} keys, each 10x of the threshold multiplied the time to recover by {rec_factor:.2} and the write p99 by {p99_factor:.2}; with checkpoints off a crash replayed {off:.0} records in {:.1} ms, against {smallest:.0} records in {:.1} ms at threshold {}, where snapshots wrote the most bytes per acknowledged byte (the table's last column).",
        rec_pts[rec_pts.len() - 1].1,
        rec_pts[0].1,
        thresholds[0],
    );
    Ok(Some(Report {
        header: ["threshold", "recovery (ms)", "restart to healthy (ms)", "records replayed", "write p99 (ms)", "on disk (KiB)", "snapshot bytes per acked byte"].map(String::from).to_vec(),
        rows,
        raw: json!(raw),
        chart: Chart {
            title: "Checkpoint threshold: recovery time against write latency".into(),
            x: "CHECKPOINT_THRESHOLD (records; the last point is off)".into(),
            y: "milliseconds".into(),
            log_x: true,
            log_y: false,
            series: vec![
                Series { name: "recovery after a crash (ms)".into(), points: rec_pts, labels: None },
                Series { name: "write p99 during the run (ms)".into(), points: p99_pts, labels: None },
            ],
            reference: None,
            legend: SeriesLabelPosition::UpperLeft,
        },
        conclusion,
        checks,
        reading: "Left, frequent checkpoints: little log to replay after a crash, but snapshots written while writing. Right, rare or none: the log grows and recovery replays it all.".into(),
    }))
}
