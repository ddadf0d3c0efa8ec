//! The whole pipeline on an `s3://` lake served by a real S3-compatible server (moto) on
//! loopback: the same reports, events and evaluation as a local lake of the same seed, the
//! shell sees the tables, and the secret key shows in no output and no object.

#[path = "common/s3.rs"]
mod s3;

use std::process::{Command, Output};

use datafusion::object_store::{ObjectStore, ObjectStoreExt};
use futures::TryStreamExt;
use s3::{S3Server, SECRET_KEY};

/// Runs `mrs` with only the given AWS variables (none inherited from the caller).
fn mrs(env: &[(&'static str, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mrs"));
    cmd.args(args).env_remove("MRS_LAKE");
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd.output().expect("run mrs")
}

fn ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed:\n{stderr}");
    assert!(
        !stdout.contains(SECRET_KEY) && !stderr.contains(SECRET_KEY),
        "{what} printed the secret key"
    );
    stdout
}

const QUERIES: &[&str] = &[
    "SELECT report_id, store_id, detection_status, window_start, window_end, direction, round(severity, 9), \
     round(excess_units, 6), cause, round(confidence, 9), narrative, report_group_id FROM minority_reports ORDER BY report_id",
    "SELECT report_group_id, status, n_reports, n_stores, window_start, window_end, cause, \
     round(confidence, 9), round(sum_excess, 6) FROM minority_events ORDER BY report_group_id",
    "SELECT * FROM review_queue ORDER BY priority, report_group_id",
    "SELECT count(*), sum(CASE WHEN protected THEN 1 ELSE 0 END) FROM protected_sales",
    "SELECT event_id, action, count(*) FROM mmm_protection GROUP BY 1, 2 ORDER BY 1, 2",
];

fn query(env: &[(&'static str, String)], lake: &str, sql: &str) -> String {
    ok(
        &mrs(
            env,
            &["sql", "--lake", lake, "-q", "--format", "csv", "-c", sql],
        ),
        &format!("mrs sql {sql}"),
    )
}

fn eval_without_lake(env: &[(&'static str, String)], lake: &str) -> serde_json::Value {
    let text = ok(
        &mrs(env, &["eval", "--lake", lake, "--format", "json"]),
        "mrs eval",
    );
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("eval json");
    v.as_object_mut().expect("object").remove("lake");
    v
}

#[test]
fn the_pipeline_runs_on_an_s3_lake_like_on_a_local_one() {
    let server = S3Server::start();
    server.create_bucket("bucket");
    let env = server.env();
    let s3_lake = "s3://bucket/lake";
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().to_str().expect("utf-8").to_string();

    for lake in [s3_lake, local.as_str()] {
        let lake_env: &[_] = if lake == s3_lake { &env } else { &[] };
        ok(
            &mrs(
                lake_env,
                &["synth", "--preset", "tiny", "--seed", "4", "--lake", lake],
            ),
            "mrs synth",
        );
        let summary = ok(
            &mrs(lake_env, &["run", "--lake", lake, "--format", "json"]),
            "mrs run",
        );
        let summary: serde_json::Value = serde_json::from_str(&summary).expect("json");
        assert!(summary["reports_new"].as_i64() > Some(0), "{summary}");
        let again = ok(
            &mrs(lake_env, &["run", "--lake", lake, "--format", "json"]),
            "mrs run again",
        );
        let again: serde_json::Value = serde_json::from_str(&again).expect("json");
        assert_eq!(again["rows_appended"].as_i64(), Some(0));
    }

    for sql in QUERIES {
        let on_s3 = query(&env, s3_lake, sql);
        assert!(on_s3.lines().count() > 1, "{sql} gives rows on S3");
        assert_eq!(on_s3, query(&[], &local, sql), "{sql}");
    }
    assert_eq!(
        eval_without_lake(&env, s3_lake),
        eval_without_lake(&[], &local)
    );
    // The shell lists the lake's tables.
    let tables = query(
        &env,
        s3_lake,
        "SELECT table_name FROM information_schema.tables ORDER BY 1",
    );
    for t in [
        "minority_reports_detected_log",
        "minority_events",
        "sales",
        "mmm_protection",
    ] {
        assert!(tables.lines().any(|l| l == t), "{t} in {tables}");
    }

    // A lake the server does not have is a clear error that shows no secret.
    let out = mrs(&env, &["run", "--lake", "s3://no-such-bucket/lake"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no-such-bucket") || stderr.contains("sales"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET_KEY), "{stderr}");

    // Every object of the lake: the secret in none, every Parquet file readable.
    let store = server.store("bucket");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (objects, parquet) = runtime.block_on(async {
        let metas: Vec<_> = store
            .list(Some(&"lake".into()))
            .try_collect()
            .await
            .expect("list");
        let mut parquet = 0;
        for m in &metas {
            let bytes = store
                .get(&m.location)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("bytes");
            assert!(
                !bytes.windows(SECRET_KEY.len()).any(|w| w == SECRET_KEY.as_bytes()),
                "{} holds the secret key",
                m.location
            );
            if m.location.as_ref().ends_with(".parquet") {
                let reader = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .and_then(|b| b.build())
                    .unwrap_or_else(|e| panic!("{} is not Parquet: {e}", m.location));
                for batch in reader {
                    batch.unwrap_or_else(|e| panic!("{} is unreadable: {e}", m.location));
                }
                parquet += 1;
            }
        }
        (metas.len(), parquet)
    });
    assert!(parquet > 20, "{objects} objects, {parquet} Parquet files");
}
