//! Concurrent runs on one lake take turns through the lake's lease: two `mrs run` started
//! together end in the state of one run (no duplicate logical rows), the second waits and
//! appends nothing; on a local lake and on an S3 lake (moto on loopback). A lease held by a
//! run elsewhere blocks until it expires, and a bounded wait fails naming the holder.

mod common;
#[path = "common/s3.rs"]
mod s3;
#[path = "common/state.rs"]
mod state;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::runtime;
use datafusion::object_store::{ObjectStoreExt, PutPayload};
use mrs_pipeline::lease::{Lease, LeaseConfig, LeaseRecord};

fn spawn_run(lake: &str, env: &[(&'static str, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mrs"))
        .args(["run", "--lake", lake, "--format", "json"])
        .env_remove("MRS_LAKE")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mrs run")
}

fn mrs(lake: &str, env: &[(&'static str, String)], args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mrs"))
        .args(args)
        .args(["--lake", lake])
        .env_remove("MRS_LAKE")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("mrs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts two runs at once; returns the `rows_appended` of each, in order of size, and whether
/// one of them said it waited for the lease.
fn two_runs_at_once(lake: &str, env: &[(&'static str, String)]) -> (Vec<i64>, bool) {
    let children = [spawn_run(lake, env), spawn_run(lake, env)];
    let mut appended = Vec::new();
    let mut waited = false;
    for child in children {
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        waited |= stderr.contains("waiting for the lease");
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json summary");
        appended.push(summary["rows_appended"].as_i64().expect("rows_appended"));
    }
    appended.sort_unstable();
    (appended, waited)
}

#[test]
fn two_runs_on_a_local_lake_end_like_one() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let once_dir = tempfile::tempdir().expect("tempdir");
    let (lake, once) = rt.block_on(async {
        (
            common::synth_tiny(dir.path(), 6, None).await,
            common::synth_tiny(once_dir.path(), 6, None).await,
        )
    });
    let (appended, waited) = two_runs_at_once(dir.path().to_str().expect("utf-8"), &[]);
    assert_eq!(appended[0], 0, "the second run appends nothing");
    assert!(appended[1] > 0);
    assert!(waited, "one run waited for the other's lease");
    rt.block_on(async {
        common::run(&once, None).await;
        state::assert_same(&state::snapshot(&lake).await, &state::snapshot(&once).await);
    });
}

#[test]
fn two_runs_on_an_s3_lake_end_like_one() {
    let server = s3::S3Server::start();
    server.create_bucket("lakes");
    let env = server.env();
    let lake = "s3://lakes/concurrent";
    mrs(lake, &env, &["synth", "--preset", "tiny", "--seed", "6"]);
    let (appended, waited) = two_runs_at_once(lake, &env);
    assert_eq!(appended[0], 0, "the second run appends nothing");
    assert!(appended[1] > 0);
    assert!(waited, "one run waited for the other's lease");

    // The same logical rows as one run on a local copy.
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().to_str().expect("utf-8");
    mrs(local, &[], &["synth", "--preset", "tiny", "--seed", "6"]);
    mrs(local, &[], &["run"]);
    for table in [
        "minority_reports_detected_log",
        "minority_reports_cohort_log",
        "minority_events_log",
        "minority_decisions_log",
        "automation_rules_log",
        "mrs_migrations_log",
    ] {
        // What identifies a logical row of each log.
        let identity = match table {
            "minority_decisions_log" => "decision_id, report_group_id, action",
            "automation_rules_log" => "rule_id, enabled, min_confidence",
            "mrs_migrations_log" => "version, checksum",
            "minority_reports_cohort_log" => "report_id, content_hash",
            _ => "content_hash",
        };
        let sql = format!(
            "SELECT count(*) AS n, count(DISTINCT content) AS d FROM (SELECT \
             mrs_content_hash({identity}) AS content FROM {table})"
        );
        let args = ["sql", "-q", "--format", "csv", "-c", sql.as_str()];
        let on_s3 = mrs(lake, &env, &args);
        assert_eq!(on_s3, mrs(local, &[], &args), "{table}");
        let counts: Vec<&str> = on_s3.lines().nth(1).expect("row").split(',').collect();
        assert_eq!(counts[0], counts[1], "{table}: duplicate logical rows");
    }
}

#[test]
fn a_lease_held_elsewhere_blocks_until_it_expires() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = mrs_pipeline::Lake::open(dir.path().to_str().expect("utf-8")).expect("lake");
    rt.block_on(async {
        // A run on another host took the lease and was never heard of again.
        let now = chrono::Utc::now().timestamp_micros();
        let foreign = LeaseRecord {
            holder: "mrs-run-elsewhere".into(),
            host: "another-host".into(),
            boot_id: "another-boot".into(),
            pid: 1,
            pid_start: None,
            acquired_at_micros: now,
            expires_at_micros: now + 2_000_000,
            released: false,
        };
        lake.store()
            .put(
                &lake.path("meta/lease/0000000000000007.json"),
                PutPayload::from(serde_json::to_vec(&foreign).expect("json")),
            )
            .await
            .expect("put");
        let impatient = LeaseConfig {
            ttl: Duration::from_secs(5),
            wait: Duration::ZERO,
            poll: Duration::from_millis(100),
        };
        let err = Lease::acquire(&lake, "mrs-run-here", &impatient)
            .await
            .expect_err("held");
        assert!(
            err.to_string().contains("mrs-run-elsewhere")
                && err.to_string().contains("another-host"),
            "{err}"
        );
        // Waiting long enough, the expired lease is taken over with the next number.
        let patient = LeaseConfig {
            wait: Duration::from_secs(60),
            ..impatient
        };
        let lease = Lease::acquire(&lake, "mrs-run-here", &patient)
            .await
            .expect("taken over");
        assert_eq!(lease.seq(), 8);
        // While held, nobody else gets it; once released, the next run does at once.
        assert!(Lease::acquire(&lake, "third", &impatient).await.is_err());
        lease.release().await.expect("release");
        let next = Lease::acquire(&lake, "third", &impatient)
            .await
            .expect("free");
        assert_eq!(next.seq(), 9);
        next.release().await.expect("release");
    });
}

#[test]
fn a_running_holder_keeps_its_lease_past_the_ttl() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = mrs_pipeline::Lake::open(dir.path().to_str().expect("utf-8")).expect("lake");
    rt.block_on(async {
        let config = LeaseConfig {
            ttl: Duration::from_secs(3),
            wait: Duration::ZERO,
            poll: Duration::from_millis(100),
        };
        let lease = Lease::acquire(&lake, "long-run", &config)
            .await
            .expect("lease");
        // Longer than the TTL: the heartbeat has renewed it, so it is still held.
        tokio::time::sleep(Duration::from_secs(5)).await;
        lease.check().expect("still ours");
        let err = Lease::acquire(&lake, "other", &config)
            .await
            .expect_err("still held");
        assert!(err.to_string().contains("long-run"), "{err}");
        lease.release().await.expect("release");
    });
}
