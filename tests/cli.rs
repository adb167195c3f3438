//! The `walab` command line as a person or a script meets it: `inspect --json`.

use std::process::{Command, Output};

use serde_json::Value;

fn walab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_walab"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run walab")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

#[test]
fn inspect_json_gives_the_same_facts_as_the_text_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine =
        walab_wal::Engine::open(walab_wal::Config::new(dir.path()).checkpoint_threshold(0))
            .expect("open");
    engine.set(b"k1", br#"{"n":1}"#).expect("set");
    engine.set(b"k2", br#""two""#).expect("set");
    engine.delete(b"k1").expect("delete");
    drop(engine);
    let path = dir.path().to_str().expect("utf-8 path");

    let out = walab(&["inspect", "--json", "--records", path]);
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(report["dir"], path);
    assert_eq!(report["snapshots"], serde_json::json!([]));
    assert_eq!(
        report["summary"],
        serde_json::json!({
            "segments": 1, "records": 3, "torn_tails": 0,
            "damaged_places": 0, "damage": [], "ok": true
        })
    );
    let segment = &report["segments"][0];
    assert_eq!(
        (
            &segment["record_count"],
            &segment["first_sequence"],
            &segment["last_sequence"]
        ),
        (&3.into(), &1.into(), &3.into())
    );
    assert_eq!(segment["end"]["kind"], "clean");
    let records = segment["records"].as_array().expect("records");
    let ops: Vec<_> = records
        .iter()
        .map(|r| (r["sequence"].as_u64(), r["op"].as_str(), r["key"].as_str()))
        .collect();
    assert_eq!(
        ops,
        [
            (Some(1), Some("SET"), Some("k1")),
            (Some(2), Some("SET"), Some("k2")),
            (Some(3), Some("DELETE"), Some("k1")),
        ]
    );
    assert_eq!(records[0]["value"], r#"{"n":1}"#);

    // The text report counts the same.
    let text = walab(&["inspect", path]);
    assert!(
        stdout(&text).contains("1 segments, 3 records, 0 torn tails, 0 damaged places"),
        "{text:?}"
    );

    // Damage: the document still parses, says where, and the exit code says so too.
    let segment_path = segment["path"].as_str().expect("segment path").to_owned();
    let mut bytes = std::fs::read(&segment_path).expect("read segment");
    bytes[30] ^= 0xff; // inside the first record, with good ones after it
    std::fs::write(&segment_path, bytes).expect("write segment");
    let out = walab(&["inspect", "--json", path]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(report["summary"]["ok"], false);
    assert_eq!(report["summary"]["damaged_places"], 1);
    assert_eq!(report["segments"][0]["end"]["kind"], "damaged");
    assert!(
        report["segments"][0].get("records").is_none(),
        "no --records"
    );
}
