//! `fsync`: what each FSYNC policy loses when the power goes (the engine's simulated power
//! loss, under a steady write load), against the write rate it buys. Automatic checkpoints
//! are off, so only the policy decides what is synced.

use std::time::Duration;

use serde_json::json;
use walab_store::{BackendKind, CrashMode};

use super::crash::under_load;
use super::plot::{Chart, Series, SeriesLabelPosition};
use super::{Ctx, REPEATS, Report, median, spread};

/// The lesson.
pub fn run(ctx: &Ctx) -> Result<Option<Report>, String> {
    let load = ctx.pick(Duration::from_millis(700), Duration::from_secs(3));
    let policies = [
        "always",
        "interval:10",
        "interval:100",
        "interval:1000",
        "never",
    ];
    let wal = BackendKind::named("wal");
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    let mut points = Vec::new();
    let mut labels = Vec::new();
    let mut lost_by = Vec::new();
    for policy in policies {
        let env = [
            ("FSYNC".to_string(), policy.to_string()),
            ("CHECKPOINT_THRESHOLD".to_string(), "0".to_string()),
        ];
        let mut runs = Vec::new();
        for rep in 0..REPEATS {
            let r = under_load(ctx, wal, &env, CrashMode::PowerLoss, load)?;
            println!(
                "  FSYNC={policy} #{}: {:.0} writes/s, {} acknowledged, {} lost over {:.0} ms",
                rep + 1,
                r.writes_per_sec,
                r.acked,
                r.lost,
                r.window_ms
            );
            runs.push(r);
        }
        let rate: Vec<f64> = runs.iter().map(|r| r.writes_per_sec).collect();
        let lost: Vec<f64> = runs.iter().map(|r| r.lost as f64).collect();
        let window: Vec<f64> = runs.iter().map(|r| r.window_ms).collect();
        rows.push(vec![
            format!("`{policy}`"),
            spread(&rate, 0),
            spread(&lost, 0),
            spread(&window, 1),
        ]);
        points.push((median(&rate), median(&window)));
        labels.push(policy.to_string());
        lost_by.push((
            policy,
            runs.iter().map(|r| r.lost).collect::<Vec<_>>(),
            median(&rate),
            median(&window),
        ));
        raw.push(json!({
            "fsync": policy,
            "runs": runs.iter().map(|r| json!({"writes_per_sec": r.writes_per_sec, "acked": r.acked, "lost": r.lost, "window_ms": r.window_ms})).collect::<Vec<_>>(),
        }));
    }
    let always = &lost_by[0];
    let never = &lost_by[lost_by.len() - 1];
    let checks = vec![
        (
            "FSYNC=always loses no acknowledged write in a power loss".to_string(),
            always.1.iter().all(|&l| l == 0),
        ),
        (
            "FSYNC=never loses acknowledged writes in a power loss".to_string(),
            never.1.iter().all(|&l| l > 0),
        ),
    ];
    let conclusion = format!(
        "FSYNC=always lost {} acknowledged writes at {:.0} writes/s; FSYNC=never ran at {:.0} writes/s ({:.2}x) and lost the last {:.0} ms of acknowledged writes ({} writes, median); interval:1000 lost {:.0} ms at {:.0} writes/s. With group commit, FSYNC=always kept {:.0}% of never's write rate while losing nothing.",
        always.1.iter().max().unwrap_or(&0),
        always.2,
        never.2,
        never.2 / always.2.max(1e-9),
        never.3,
        median(&never.1.iter().map(|&l| l as f64).collect::<Vec<_>>()),
        lost_by[3].3,
        lost_by[3].2,
        100.0 * always.2 / never.2.max(1e-9),
    );
    Ok(Some(Report {
        header: ["FSYNC", "writes/s", "acknowledged, then lost", "loss window (ms)"].map(String::from).to_vec(),
        rows,
        raw: json!(raw),
        chart: Chart {
            title: "What a power loss takes, against what each FSYNC policy buys".into(),
            x: "acknowledged writes per second (8 connections)".into(),
            y: "acknowledged writes lost: time window before the crash (ms)".into(),
            log_x: false,
            log_y: false,
            series: vec![Series { name: "FSYNC policy (median of 3)".into(), points, labels: Some(labels) }],
            reference: None,
            legend: SeriesLabelPosition::LowerLeft,
        },
        conclusion,
        checks,
        reading: "One point per policy: further right is faster, higher lost more. `always` sits on the axis: a power loss takes nothing it acknowledged.".into(),
    }))
}
