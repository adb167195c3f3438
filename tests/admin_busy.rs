//! Admin work that runs one at a time answers the rest at once: a second
//! `POST /admin/checkpoint` while one is writing its snapshot is 409 `admin_busy`, not a
//! request that holds a blocking thread until the first is done. A real server, a paced
//! snapshot long enough to overlap.

mod common;

use std::time::{Duration, Instant};

use common::{Walab, get, post, post_json};

#[test]
fn a_checkpoint_while_one_runs_is_409_at_once() {
    let (_server, port, _dir) = Walab::serve(
        "wal",
        &[
            ("CHECKPOINT_THRESHOLD", "0"),
            ("SNAPSHOT_BYTES_PER_SEC", "1000000"),
            ("FSYNC", "never"),
        ],
    );
    // 3 MB of snapshot: pacing starts after the first MB, so it takes about 3 s.
    for i in 0..1500 {
        let body = format!(r#"{{"key":"key-{i:05}","value":"{}"}}"#, "v".repeat(2000));
        assert_eq!(post_json(port, "/kv", &body).status, 200);
    }
    let first = std::thread::spawn(move || post(port, "/admin/checkpoint"));
    let started = Instant::now();
    while get(port, "/admin/stats").json["checkpoint_running"] != true {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no checkpoint started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let asked = Instant::now();
    let second = post(port, "/admin/checkpoint");
    assert_eq!(second.status, 409, "{}", second.text);
    assert_eq!(second.json["error"], "admin_busy");
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "answered at once"
    );
    assert!(get(port, "/admin/stats").json["entries_since_checkpoint"] == 1500);
    assert_eq!(first.join().expect("first").status, 200);
    assert_eq!(post(port, "/admin/checkpoint").status, 200, "free again");
}
