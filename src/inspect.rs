//! `walab inspect DIR`: read a WAL data directory offline, like etcd's `dump-logs`.
//!
//! The work is done by the engine's read-only [`walab_wal::inspect`]; this is its command
//! line face: it prints the report (for a person, or with `--json` one JSON document for a
//! script) and exits non-zero when it found damage.
//!
//! The JSON is written as the engine reads, a segment at a time, so `--json --records` on a
//! big directory holds one segment's records at once, not all of them. Keys and values are
//! strings when they are UTF-8 (they always are when written through the HTTP API), else
//! `key_hex`/`value_hex`; values are given whole, where the text report cuts them short.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Map, Value, json};
use walab_wal::inspect::{Findings, Report, SegmentEnd, SegmentFinding, SnapshotFinding};

/// Describe the WAL data directory `dir` and verify every checksum; with `records`, print
/// every record; with `json`, as one JSON document.
pub fn run(dir: &Path, records: bool, json: bool) -> ExitCode {
    let mut out = io::BufWriter::new(io::stdout().lock());
    let found = if json {
        walab_wal::inspect::walk(dir, records, &mut Json::new(&mut out, dir, records))
    } else {
        walab_wal::inspect::inspect(dir, records, &mut out)
    };
    let found = found.and_then(|f| out.flush().map(|()| f));
    match found {
        Ok(f) if f.damage.is_empty() => ExitCode::SUCCESS,
        Ok(f) => {
            eprintln!(
                "walab inspect: {} damaged place(s) in {}; recovery would refuse to start (RECOVERY_MODE=point-in-time keeps the records before the damage)",
                f.damage.len(),
                dir.display()
            );
            for place in &f.damage {
                eprintln!("  {place}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("walab inspect: cannot read {}: {e}", dir.display());
            ExitCode::from(2)
        }
    }
}

/// The report as one JSON document:
/// `{"dir", "snapshots": [...], "segments": [...], "summary": {...}}`.
struct Json<'a> {
    out: &'a mut dyn Write,
    dir: String,
    /// Whether each segment lists its records.
    records: bool,
    segments: usize,
}

impl<'a> Json<'a> {
    fn new(out: &'a mut dyn Write, dir: &Path, records: bool) -> Self {
        Json {
            out,
            dir: dir.display().to_string(),
            records,
            segments: 0,
        }
    }
}

impl Report for Json<'_> {
    fn snapshots(&mut self, snapshots: &[SnapshotFinding]) -> io::Result<()> {
        let snapshots: Vec<Value> = snapshots.iter().map(snapshot).collect();
        write!(self.out, "{{\"dir\":")?;
        serde_json::to_writer(&mut *self.out, &self.dir)?;
        write!(self.out, ",\"snapshots\":")?;
        serde_json::to_writer(&mut *self.out, &snapshots)?;
        write!(self.out, ",\"segments\":[")?;
        Ok(())
    }

    fn segment(&mut self, s: &SegmentFinding) -> io::Result<()> {
        if self.segments > 0 {
            write!(self.out, ",")?;
        }
        self.segments += 1;
        writeln!(self.out)?;
        serde_json::to_writer(&mut *self.out, &segment(s, self.records))?;
        Ok(())
    }

    fn summary(&mut self, f: &Findings) -> io::Result<()> {
        let summary = json!({
            "segments": f.segments,
            "records": f.records,
            "torn_tails": f.torn_tails,
            "damaged_places": f.damage.len(),
            "damage": f.damage,
            "ok": f.damage.is_empty(),
        });
        write!(self.out, "],\"summary\":")?;
        serde_json::to_writer(&mut *self.out, &summary)?;
        writeln!(self.out, "}}")
    }
}

fn snapshot(s: &SnapshotFinding) -> Value {
    match s {
        SnapshotFinding::Valid {
            path,
            sequence,
            keys,
            bytes,
        } => json!({
            "path": path.display().to_string(),
            "ok": true,
            "sequence": sequence,
            "keys": keys,
            "bytes": bytes,
        }),
        SnapshotFinding::Damaged { path, error } => json!({
            "path": path.display().to_string(),
            "ok": false,
            "error": error,
        }),
    }
}

fn segment(s: &SegmentFinding, with_records: bool) -> Value {
    let end = match &s.end {
        SegmentEnd::Clean => json!({"kind": "clean"}),
        SegmentEnd::BadHeader { reason } => {
            json!({"kind": "bad_header", "offset": 0, "reason": reason})
        }
        SegmentEnd::TornTail {
            offset,
            reason,
            bytes_cut,
        } => json!({
            "kind": "torn_tail",
            "offset": offset,
            "reason": reason,
            "bytes_cut": bytes_cut,
        }),
        SegmentEnd::Damaged { offset, reason } => {
            json!({"kind": "damaged", "offset": offset, "reason": reason})
        }
    };
    let mut v = json!({
        "path": s.path.display().to_string(),
        "bytes": s.bytes,
        "record_count": s.record_count,
        "first_sequence": s.sequences.map(|(a, _)| a),
        "last_sequence": s.sequences.map(|(_, b)| b),
        "missing_before": s.missing_before.map(|(a, b)| json!({"first": a, "last": b})),
        "end": end,
    });
    if with_records {
        let records: Vec<Value> = s
            .records
            .iter()
            .map(|r| {
                let mut m = Map::new();
                m.insert("offset".into(), r.offset.into());
                m.insert("sequence".into(), r.sequence.into());
                m.insert("timestamp_micros".into(), r.timestamp_micros.into());
                m.insert("op".into(), r.op.to_string().into());
                bytes_field(&mut m, "key", &r.key);
                bytes_field(&mut m, "value", &r.value);
                Value::Object(m)
            })
            .collect();
        v["records"] = Value::Array(records);
    }
    v
}

/// `name` as a string when `bytes` are UTF-8, else `name_hex`.
fn bytes_field(m: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => m.insert(name.to_owned(), s.into()),
        Err(_) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            m.insert(format!("{name}_hex"), hex.into())
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_a_string_when_utf8_and_hex_otherwise() {
        let mut m = Map::new();
        bytes_field(&mut m, "key", "clé".as_bytes());
        bytes_field(&mut m, "value", &[0xff, 0x00, 0x41]);
        assert_eq!(
            Value::Object(m),
            json!({"key": "clé", "value_hex": "ff0041"})
        );
    }
}
