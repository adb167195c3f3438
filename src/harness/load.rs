//! A write load of real HTTP requests: `connections` threads, each with a keep-alive
//! connection, POSTing `/kv` until a deadline, a write count or a stop flag, recording
//! every answer's latency and (when asked) every acknowledged key with when it was
//! acknowledged. What a crash experiment compares against what came back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::client::Blocking;

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent connections, one thread each.
    pub connections: usize,
    /// Stop after this long ...
    pub duration: Duration,
    /// ... or after this many writes in all, whichever comes first.
    pub writes: Option<u64>,
    /// Bytes of each value (a JSON string of that length).
    pub value_bytes: usize,
    /// Keys cycle through this many names; `None`: every write a new key.
    pub key_space: Option<u64>,
    /// Every key starts with this, so two loads on one server do not overlap.
    pub prefix: String,
    /// Keep every acknowledged key and when it was acknowledged.
    pub record_acks: bool,
}

/// One acknowledged write.
#[derive(Debug, Clone)]
pub struct Ack {
    /// Its key.
    pub key: String,
    /// When the answer arrived, since the load started.
    pub at: Duration,
}

/// What a load did.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Writes answered 200.
    pub acked: u64,
    /// Writes answered otherwise, or not at all.
    pub failed: u64,
    /// Latency of every acknowledged write, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Every acknowledged write, when asked for.
    pub acks: Vec<Ack>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Bytes of keys and values acknowledged.
    pub bytes: u64,
}

impl LoadResult {
    /// Acknowledged writes per second.
    pub fn rate(&self) -> f64 {
        self.acked as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of the latencies, in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        quantile(&self.latencies_us, q)
    }
}

/// The `q` quantile of `values` (nearest rank), 0 for none.
pub fn quantile(values: &[u32], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    f64::from(v[i.min(v.len() - 1)])
}

/// Run `spec` against `addr` until its deadline, its write count, or `stop`.
pub fn run(addr: SocketAddr, spec: &LoadSpec, stop: &Arc<AtomicBool>) -> LoadResult {
    let started = Instant::now();
    let issued = Arc::new(AtomicU64::new(0));
    let value = format!("\"{}\"", "v".repeat(spec.value_bytes));
    let threads: Vec<_> = (0..spec.connections)
        .map(|w| {
            let (spec, stop, issued, value) =
                (spec.clone(), stop.clone(), issued.clone(), value.clone());
            std::thread::spawn(move || writer(addr, w, &spec, &stop, &issued, &value, started))
        })
        .collect();
    let mut total = LoadResult::default();
    for t in threads {
        if let Ok(r) = t.join() {
            total.acked += r.acked;
            total.failed += r.failed;
            total.bytes += r.bytes;
            total.latencies_us.extend(r.latencies_us);
            total.acks.extend(r.acks);
        }
    }
    total.elapsed = started.elapsed();
    total
}

fn writer(
    addr: SocketAddr,
    w: usize,
    spec: &LoadSpec,
    stop: &AtomicBool,
    issued: &AtomicU64,
    value: &str,
    started: Instant,
) -> LoadResult {
    let client = Blocking::new(addr);
    let mut out = LoadResult::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < spec.duration {
        let i = issued.fetch_add(1, Ordering::Relaxed);
        if spec.writes.is_some_and(|limit| i >= limit) {
            break;
        }
        let key = match spec.key_space {
            Some(space) => format!("{}{}", spec.prefix, i % space.max(1)),
            None => format!("{}{w}-{n}", spec.prefix),
        };
        n += 1;
        let body = format!("{{\"key\":\"{key}\",\"value\":{value}}}");
        let sent = Instant::now();
        match client.request("POST", "/kv", Some(&body)) {
            Ok(r) if r.status == 200 => {
                let now = Instant::now();
                out.acked += 1;
                out.bytes += (key.len() + spec.value_bytes) as u64;
                out.latencies_us
                    .push(u32::try_from((now - sent).as_micros()).unwrap_or(u32::MAX));
                if spec.record_acks {
                    out.acks.push(Ack {
                        key,
                        at: now - started,
                    });
                }
            }
            Ok(_) => out.failed += 1,
            Err(_) => {
                out.failed += 1;
                // The server is gone (a crash): do not spin on a closed port.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    out
}
