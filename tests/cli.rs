//! The `walab` command line as a person or a script meets it: `serve --help` names every
//! variable the Configuration table of docs/configuration.md lists, with the same default, and
//! no other; a flag wins over its variable and a blank variable counts as unset; `--version`
//! on a subcommand; shell completions; `inspect --json`.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Walab, free_port, get, wait_healthy};
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

/// A row of docs/configuration.md's Configuration table: its variables and their defaults.
#[derive(Debug)]
struct Row {
    variables: Vec<String>,
    defaults: Vec<String>,
}

/// The variables table under `## Configuration` in docs/configuration.md (up to the next
/// `## ` heading): rows like `` | `HOST`, `PORT` | `127.0.0.1`, `8000` | meaning | ``.
fn documented_rows() -> Vec<Row> {
    let page = include_str!("../docs/configuration.md");
    let section = page
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/configuration.md has a `## Configuration` section");
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // ["", variables, default, meaning, ""]
            if cells.len() < 4 || !cells[1].starts_with('`') {
                return None;
            }
            Some(Row {
                variables: ticked(cells[1]),
                defaults: ticked(cells[2]),
            })
        })
        .collect()
}

/// The block of `--help` that describes the setting of `variable`.
fn help_block<'a>(help: &'a str, variable: &str) -> Option<&'a str> {
    let at = help
        .find(&format!("[env: {variable}="))
        .or_else(|| help.find(&format!("[env: {variable}]")))?;
    let start = help[..at].rfind("\n      --").map_or(0, |i| i + 1);
    let end = help[at..].find("\n\n").map_or(help.len(), |i| at + i);
    Some(&help[start..end])
}

#[test]
fn serve_help_names_every_variable_of_the_configuration_page_with_its_default() {
    let rows = documented_rows();
    assert!(
        rows.len() > 20,
        "docs/configuration.md's table was not found or not parsed: {rows:?}"
    );
    let out = walab(&["serve", "--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = stdout(&out);
    for row in &rows {
        for (i, variable) in row.variables.iter().enumerate() {
            assert!(
                variable
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()),
                "not a variable name in docs/configuration.md's table: {variable:?}"
            );
            let block = help_block(&help, variable)
                .unwrap_or_else(|| panic!("walab serve --help does not name {variable}:\n{help}"));
            let flag = format!(
                "--{} <{variable}>",
                variable.to_lowercase().replace('_', "-")
            );
            assert!(
                block.contains(&flag),
                "{variable} is not the flag {flag}:\n{block}"
            );
            // The documented default, where the table gives one value per variable.
            if row.defaults.len() == row.variables.len() && !row.defaults[i].contains('<') {
                let default = format!("[default: {}]", row.defaults[i]);
                assert!(
                    block.contains(&default),
                    "docs/configuration.md says {variable} defaults to {}; --help says:\n{block}",
                    row.defaults[i]
                );
            }
        }
    }
    // And the other way: the page documents every variable --help names.
    let documented: Vec<&String> = rows.iter().flat_map(|r| &r.variables).collect();
    for named in help.split("[env: ").skip(1) {
        let variable = named.split(['=', ']']).next().expect("a variable name");
        assert!(
            documented.iter().any(|d| *d == variable),
            "--help names {variable}, docs/configuration.md's Configuration table does not"
        );
    }
    for values in [
        "[possible values: wal, memory, sled, etcd, redb]",
        "[possible values: always, never, interval:<ms>]",
        "[possible values: background, always]",
        "[possible values: tolerate-corrupted-tail, absolute-consistency, point-in-time]",
        "[possible values: text, json]",
    ] {
        assert!(help.contains(values), "no {values} in\n{help}");
    }
}

#[test]
fn torture_help_shows_the_allowed_backends_and_policies() {
    let help = stdout(&walab(&["torture", "--help"]));
    assert!(
        help.contains("[possible values: wal, memory, sled, etcd, redb]"),
        "{help}"
    );
    assert!(
        help.contains("[possible values: always, never, interval:<ms>]"),
        "{help}"
    );
    let refused = walab(&["torture", "--backend", "postgres"]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("expected one of wal, memory, sled, etcd, redb"),
        "{err}"
    );
}

#[test]
fn subcommands_answer_version_and_typos_get_a_suggestion() {
    let version = walab(&["serve", "--version"]);
    assert!(version.status.success(), "{version:?}");
    assert_eq!(
        stdout(&version).trim(),
        format!("walab-serve {}", env!("CARGO_PKG_VERSION"))
    );
    let typo = walab(&["serve", "--fsycn", "always"]);
    assert_eq!(typo.status.code(), Some(2));
    let err = String::from_utf8_lossy(&typo.stderr);
    assert!(
        err.contains("a similar argument exists: '--fsync'"),
        "{err}"
    );
}

#[test]
fn a_flag_wins_over_its_variable_and_a_blank_variable_is_unset() {
    let port = free_port();
    let port_text = port.to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let _serve = Walab::start(
        &["serve", "--port", &port_text, "--kv-backend", "memory"],
        &[
            // Both lose to the flags.
            ("PORT", "1"),
            ("KV_BACKEND", "postgres"),
            // Blank: no token, not an empty one.
            ("ADMIN_TOKEN", " "),
            ("DATA_DIR", dir.path().to_str().expect("utf-8 path")),
        ],
    );
    assert!(wait_healthy(port, Duration::from_secs(10)).is_some());
    assert_eq!(get(port, "/health").json["backend"], "memory");
    assert_eq!(get(port, "/admin/stats").status, 200, "/admin/* is open");
}

#[test]
fn completions_are_a_script_for_the_shell_that_knows_every_command_and_flag() {
    let out = walab(&["completions", "bash"]);
    assert!(out.status.success(), "{out:?}");
    let script = stdout(&out);
    assert!(script.contains("complete -F _walab"), "{script}");
    for word in [
        "serve",
        "lab",
        "inspect",
        "torture",
        "--kv-backend",
        "--slow-fsync-ms",
        "--json",
    ] {
        assert!(script.contains(word), "no {word} in the bash script");
    }
    let zsh = walab(&["completions", "zsh"]);
    assert!(stdout(&zsh).starts_with("#compdef walab"), "{zsh:?}");
    let bad = walab(&["completions", "cmd.exe"]);
    assert_eq!(bad.status.code(), Some(2));
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

#[test]
fn experiment_list_names_the_six_lessons_and_an_unknown_one_is_refused() {
    let list = stdout(&walab(&["experiment", "list"]));
    for name in [
        "fsync",
        "group-commit",
        "checkpoint",
        "recovery",
        "replication",
        "crash",
    ] {
        assert!(
            list.lines().any(|l| l.starts_with(name)),
            "no {name} in\n{list}"
        );
    }
    let refused = walab(&["experiment", "latency"]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("expected one of fsync, group-commit"), "{err}");
}
