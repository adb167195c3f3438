//! `replication`: what a replicated log costs beside ours. Write latency of the WAL and of
//! etcd with one member and with three, at 1 and 16 connections; and the write stall when
//! etcd's leader is killed, beside the time a crashed WAL server takes to come back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use walab_store::BackendKind;
use walab_store::etcd::cluster::{self, ClusterSpec, LocalCluster};

use super::plot::{Chart, Series, SeriesLabelPosition};
use super::{Ctx, REPEATS, Report, median, spread};
use crate::client::Blocking;
use crate::harness::Server;
use crate::harness::load::{self, LoadSpec};

fn cluster(ctx: &Ctx, etcd: &std::path::Path, members: usize) -> Result<LocalCluster, String> {
    let spec = ClusterSpec::on_free_ports(&ctx.dir("etcd"), members).map_err(|e| e.to_string())?;
    LocalCluster::start(spec, etcd.to_path_buf(), Duration::from_secs(30))
}

fn etcd_env(c: &LocalCluster) -> Vec<(String, String)> {
    vec![
        ("ETCD_ENDPOINTS".into(), c.spec().endpoints().join(",")),
        (
            "ETCD_PID_DIR".into(),
            c.spec().run_dir.display().to_string(),
        ),
    ]
}

/// The lesson.
pub fn run(ctx: &Ctx) -> Result<Option<Report>, String> {
    let etcd_bin = match cluster::find_etcd() {
        Ok(b) => b,
        Err(why) => {
            println!("experiment replication: SKIPPED: {why}");
            return Ok(None);
        }
    };
    let span = ctx.pick(Duration::from_millis(500), Duration::from_secs(2));
    let conns = [1usize, 16];
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    let mut series = Vec::new();
    let targets = ["wal", "etcd, 1 member", "etcd, 3 members"];
    for (ti, target) in targets.iter().enumerate() {
        let mut pts = Vec::new();
        for &n in &conns {
            let mut runs = Vec::new();
            for _ in 0..REPEATS {
                let etcd = match ti {
                    0 => None,
                    1 => Some(cluster(ctx, &etcd_bin, 1)?),
                    _ => Some(cluster(ctx, &etcd_bin, 3)?),
                };
                let (kind, env) = match &etcd {
                    None => (BackendKind::named("wal"), Vec::new()),
                    Some(c) => (BackendKind::named("etcd"), etcd_env(c)),
                };
                let mut s = Server::start(kind, &ctx.dir("server"), &env, &ctx.log)
                    .map_err(|e| e.to_string())?;
                s.wait_healthy(Duration::from_secs(60))?;
                let spec = LoadSpec {
                    connections: n,
                    duration: span,
                    writes: None,
                    value_bytes: 100,
                    key_space: None,
                    prefix: "e".into(),
                    record_acks: false,
                };
                let r = load::run(s.addr, &spec, &Arc::new(AtomicBool::new(false)));
                runs.push((
                    r.quantile_us(0.5) / 1000.0,
                    r.quantile_us(0.99) / 1000.0,
                    r.rate(),
                ));
            }
            let p50: Vec<f64> = runs.iter().map(|r| r.0).collect();
            let p99: Vec<f64> = runs.iter().map(|r| r.1).collect();
            let rate: Vec<f64> = runs.iter().map(|r| r.2).collect();
            println!(
                "  {target}, {n} connections: p50 {} ms, p99 {} ms, {} writes/s",
                spread(&p50, 2),
                spread(&p99, 2),
                spread(&rate, 0)
            );
            rows.push(vec![
                target.to_string(),
                n.to_string(),
                spread(&p50, 2),
                spread(&p99, 2),
                spread(&rate, 0),
            ]);
            pts.push((n as f64, median(&p99)));
            raw.push(json!({"target": target, "connections": n, "runs": runs.iter().map(|r| json!({"p50_ms": r.0, "p99_ms": r.1, "writes_per_sec": r.2})).collect::<Vec<_>>()}));
        }
        series.push(Series {
            name: format!("{target}: write p99"),
            points: pts,
            labels: None,
        });
    }
    // The stall: writes at one connection, the leader killed, until a write is acknowledged.
    let mut stalls = Vec::new();
    for _ in 0..REPEATS {
        let mut c = cluster(ctx, &etcd_bin, 3)?;
        let mut s = Server::start(
            BackendKind::named("etcd"),
            &ctx.dir("server"),
            &etcd_env(&c),
            &ctx.log,
        )
        .map_err(|e| e.to_string())?;
        s.wait_healthy(Duration::from_secs(60))?;
        let client = Blocking::new(s.addr);
        let killed = Instant::now();
        let r = client
            .request("POST", "/admin/crash?mode=leader", None)
            .map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!(
                "crash?mode=leader answered {}: {}",
                r.status,
                r.text()
            ));
        }
        let mut i = 0;
        let stall = loop {
            i += 1;
            let body = format!("{{\"key\":\"stall-{i}\",\"value\":1}}");
            if matches!(client.request("POST", "/kv", Some(&body)), Ok(r) if r.status == 200) {
                break killed.elapsed();
            }
            if killed.elapsed() > Duration::from_secs(30) {
                return Err("no write acknowledged within 30 s of the leader's death".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let _ = c.restart_dead();
        stalls.push(stall.as_secs_f64() * 1e3);
    }
    let mut wal_restarts = Vec::new();
    for _ in 0..REPEATS {
        let dir = ctx.dir("wal");
        let wal = BackendKind::named("wal");
        let mut s = Server::start(wal, &dir, &[], &ctx.log).map_err(|e| e.to_string())?;
        s.wait_healthy(Duration::from_secs(30))?;
        let stop = Arc::new(AtomicBool::new(false));
        stop.store(false, Ordering::Relaxed);
        s.kill();
        let started = Instant::now();
        let mut again = Server::start(wal, &dir, &[], &ctx.log).map_err(|e| e.to_string())?;
        again.wait_healthy(Duration::from_secs(30))?;
        wal_restarts.push(started.elapsed().as_secs_f64() * 1e3);
    }
    rows.push(vec![
        "etcd, 3 members: leader killed".into(),
        "1".into(),
        "-".into(),
        format!("stall {}", spread(&stalls, 0)),
        "-".into(),
    ]);
    rows.push(vec![
        "wal: server killed, restarted".into(),
        "1".into(),
        "-".into(),
        format!("restart {}", spread(&wal_restarts, 1)),
        "-".into(),
    ]);
    let p99 = |target: &str, n: &str| {
        rows.iter()
            .find(|r| r[0] == target && r[1] == n)
            .map_or(String::new(), |r| r[3].clone())
    };
    let conclusion = format!(
        "At 1 connection a durable write took a p99 of {} ms on the WAL, {} ms on etcd with 1 member and {} ms with 3; at 16 connections {}, {} and {} ms. Killing etcd's leader stalled writes for {} ms (an election); a crashed WAL server was back in {} ms, but on one machine only.",
        p99("wal", "1"),
        p99("etcd, 1 member", "1"),
        p99("etcd, 3 members", "1"),
        p99("wal", "16"),
        p99("etcd, 1 member", "16"),
        p99("etcd, 3 members", "16"),
        spread(&stalls, 0),
        spread(&wal_restarts, 1),
    );
    Ok(Some(Report {
        header: ["store", "connections", "write p50 (ms)", "write p99 (ms)", "writes/s"].map(String::from).to_vec(),
        rows,
        raw: json!({"latency": raw, "leader_kill_stall_ms": stalls, "wal_restart_ms": wal_restarts}),
        chart: Chart {
            title: "Write p99: one machine's WAL against a replicated log".into(),
            x: "concurrent connections".into(),
            y: "write p99 (ms)".into(),
            log_x: true,
            log_y: false,
            series,
            reference: None,
            legend: SeriesLabelPosition::UpperLeft,
        },
        conclusion,
        checks: vec![(
            "every leader kill was followed by an acknowledged write (a new leader)".to_string(),
            stalls.len() == REPEATS,
        )],
        reading: "Each line is one store; the gap between the WAL and etcd is what a network round trip and a majority's fsync add to every write.".into(),
    }))
}
