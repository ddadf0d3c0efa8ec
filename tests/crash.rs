//! Crash safety: `mrs run` killed with SIGKILL at seeded random points of every stage, over two
//! arrivals (a run as of mid-history, then a run over everything), each time rerun, ends in
//! the same hydrated state, feeds and logical log rows as uninterrupted runs on a copy of the
//! same input. After every kill each Parquet file in the lake must read to the end.

mod common;
#[path = "common/state.rs"]
mod state;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::runtime;

/// Points a run announces on stderr (`RUST_LOG=info`): its start, each stage, the feeds.
const POINTS: &[&str] = &[
    "start",
    "pipeline/00_quarantine.sql",
    "pipeline/01_detect.sql",
    "pipeline/02_end.sql",
    "pipeline/03_cluster.sql",
    "pipeline/04_attribute.sql",
    "pipeline/05_cohort.sql",
    "pipeline/06_events.sql",
    "pipeline/07_automation.sql",
    "pipeline/08_event_snapshots.sql",
    "feeds",
];
const KILLS_PER_ARRIVAL: usize = 11;
const SEED: u64 = 0x6d72_735f_6b69_6c6c;

/// SplitMix64: reproducible kill points without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn mrs_run(lake: &str, as_of: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mrs"));
    cmd.args(["run", "--lake", lake]);
    if let Some(t) = as_of {
        cmd.args(["--as-of", t]);
    }
    cmd.env_remove("MRS_LAKE")
        .env("RUST_LOG", "mrs_pipeline=info")
        // A killed run's lease is freed at once (its pid is gone); the short expiry is a backstop.
        .env("MRS_LEASE_TTL_SECS", "5")
        .env("MRS_LEASE_WAIT_SECS", "60");
    cmd
}

/// The stage named by a log line, if it announces one.
fn stage_of(line: &str) -> Option<&str> {
    line.split_once("] stage ").map(|(_, s)| s.trim())
}

/// Starts a run and kills it `delay` after it announces `point`. Returns the point it was
/// in when killed, or None if it finished first.
fn killed_run(lake: &str, as_of: Option<&str>, point: &str, delay: Duration) -> Option<String> {
    let mut child = mrs_run(lake, as_of)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mrs run");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut last = "start".to_string();
    let mut finished = false;
    if point != "start" {
        loop {
            match rx.recv() {
                Ok(line) => {
                    if let Some(stage) = stage_of(&line) {
                        last = stage.to_string();
                        if stage == point {
                            break;
                        }
                    }
                }
                Err(_) => {
                    finished = true;
                    break;
                }
            }
        }
    }
    if !finished {
        std::thread::sleep(delay);
        // SIGKILL, then reap it: a zombie would still look alive to the lease.
        let _ = child.kill();
    }
    let status = child.wait().expect("wait");
    reader.join().expect("reader");
    for line in rx.try_iter() {
        if let Some(stage) = stage_of(&line) {
            last = stage.to_string();
        }
    }
    if status.success() {
        None
    } else {
        assert!(
            status.code().is_none(),
            "mrs run failed by itself, not by the kill"
        );
        Some(last)
    }
}

fn complete_run(lake: &str, as_of: Option<&str>) {
    let out = mrs_run(lake, as_of).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn killed_runs_end_like_uninterrupted_ones() {
    let rt = runtime();
    let crashed_dir = tempfile::tempdir().expect("tempdir");
    let clean_dir = tempfile::tempdir().expect("tempdir");
    let crashed = crashed_dir.path().to_str().expect("utf-8").to_string();
    let clean = clean_dir.path().to_str().expect("utf-8").to_string();
    let (crashed_lake, clean_lake) = rt.block_on(async {
        (
            common::synth_tiny(crashed_dir.path(), 2, None).await,
            common::synth_tiny(clean_dir.path(), 2, None).await,
        )
    });
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(clean_dir.path().join("truth/synth.json")).expect("manifest"),
    )
    .expect("json");
    let (start, end) = (
        manifest["start_micros"].as_i64().expect("start"),
        manifest["end_micros"].as_i64().expect("end"),
    );
    // The first arrival: two thirds of the history.
    let mid = mrs_core::identity::rfc3339_utc_micros(start + (end - start) * 2 / 3);

    let mut rng = Rng(SEED);
    let mut killed_in: BTreeMap<String, usize> = BTreeMap::new();
    let mut finished_early = 0;
    let mut staging_seen = 0;
    for as_of in [Some(mid.as_str()), None] {
        complete_run(&clean, as_of);
        let mut kills = 0;
        // A run may finish before its kill point comes: try again, a bounded number of times.
        for _ in 0..3 * KILLS_PER_ARRIVAL {
            if kills == KILLS_PER_ARRIVAL {
                break;
            }
            let point = POINTS[rng.below(POINTS.len() as u64) as usize];
            let delay = Duration::from_millis(rng.below(120));
            match killed_run(&crashed, as_of, point, delay) {
                Some(stage) => {
                    kills += 1;
                    *killed_in.entry(stage).or_default() += 1;
                }
                None => finished_early += 1,
            }
            let (_, staging) = state::check_parquet_files(crashed_dir.path());
            staging_seen = staging_seen.max(staging);
            if as_of.is_none() {
                // Feeds exist since the first arrival: an outside reader always finds each
                // small one as exactly one whole file, and protected_sales as whole day files
                // (one per day, by name), never emptied nor doubled by the kill.
                for feed in state::feeds() {
                    let names: Vec<String> =
                        std::fs::read_dir(crashed_dir.path().join("protection").join(feed))
                            .expect("feed folder")
                            .flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .filter(|n| n.ends_with(".parquet"))
                            .collect();
                    if feed == mrs_pipeline::feeds::DAILY_FEED {
                        assert!(!names.is_empty(), "protection/{feed} after a kill");
                        for name in &names {
                            let day = name.trim_end_matches(".parquet");
                            assert!(
                                chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok(),
                                "protection/{feed}/{name} after a kill"
                            );
                        }
                    } else {
                        assert_eq!(names.len(), 1, "protection/{feed} after a kill: {names:?}");
                    }
                }
            }
        }
        complete_run(&crashed, as_of);
    }
    let kills: usize = killed_in.values().sum();
    eprintln!(
        "{kills} kills survived, by stage: {killed_in:?}; {finished_early} runs finished before \
         their kill; at most {staging_seen} staging files of killed writes at once"
    );
    assert!(kills >= 20, "{kills} kills: {killed_in:?}");
    assert!(
        killed_in.len() >= 6,
        "kills spread over stages: {killed_in:?}"
    );

    state::check_parquet_files(crashed_dir.path());
    rt.block_on(async {
        let got = state::snapshot(&crashed_lake).await;
        let want = state::snapshot(&clean_lake).await;
        assert!(!want["minority_events"].is_empty());
        state::assert_same(&got, &want);
    });
}

#[test]
fn a_run_removes_what_killed_writes_left_behind() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = common::synth_tiny(dir.path(), 2, None).await;
        let folder = dir.path().join("logs/minority_events_log");
        std::fs::create_dir_all(&folder).expect("mkdir");
        // A write killed two minutes ago, and one in progress now (an analyst's INSERT).
        let stale = folder.join("killed.parquet#1");
        let fresh = folder.join("in-progress.parquet#2");
        std::fs::write(&stale, b"PAR1 half a file").expect("write");
        std::fs::write(&fresh, b"PAR1 being written").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .expect("open")
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(120))
            .expect("mtime");
        common::run(&lake, None).await;
        assert!(!stale.exists(), "a killed write's staging file is removed");
        assert!(fresh.exists(), "a write in progress keeps its staging file");
        // Neither was ever read as part of the log.
        state::check_parquet_files(dir.path());
    });
}
