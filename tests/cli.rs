//! The `mrs` binary end to end: exit codes, messages and machine-readable output.

use std::path::Path;
use std::process::{Command, Output};

fn mrs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mrs"))
        .args(args)
        .env_remove("MRS_LAKE")
        .output()
        .expect("run mrs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes the `tiny` preset (seed 2) into a lake.
fn synth_tiny(lake: &str) {
    let out = mrs(&["synth", "--preset", "tiny", "--seed", "2", "--lake", lake]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn lake_arg(dir: &Path) -> String {
    dir.to_str().expect("utf-8 path").to_string()
}

#[test]
fn synth_run_rerun_eval_and_query() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = lake_arg(dir.path());
    let out = mrs(&["synth", "--preset", "tiny", "--seed", "2", "--lake", &lake]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("synth tiny seed 2"));

    let out = mrs(&["run", "--lake", &lake, "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json summary");
    assert!(first["reports_new"].as_i64().expect("reports_new") > 0);
    assert!(first["rows_appended"].as_i64().expect("rows_appended") > 0);

    let out = mrs(&["run", "--lake", &lake, "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let second: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json summary");
    assert_eq!(
        second["rows_appended"].as_i64(),
        Some(0),
        "a rerun appends nothing"
    );
    assert_eq!(second["events"], first["events"]);

    let out = mrs(&["eval", "--lake", &lake, "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let eval: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json eval");
    let recall = eval["detection"]["recall"]
        .as_f64()
        .expect("detection.recall");
    assert!((0.0..=1.0).contains(&recall));

    let out = mrs(&[
        "sql",
        "--lake",
        &lake,
        "-q",
        "--format",
        "csv",
        "-c",
        "SELECT count(*) AS n FROM minority_reports",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let n: i64 = stdout(&out)
        .lines()
        .nth(1)
        .expect("a row")
        .trim()
        .parse()
        .expect("a count");
    assert_eq!(Some(n), first["reports_new"].as_i64());
}

#[test]
fn a_lake_without_sales_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = mrs(&["run", "--lake", &lake_arg(dir.path())]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("input table 'sales' has no Parquet files"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_failing_statement_fails_the_run_and_names_the_script() {
    use std::sync::Arc;

    use datafusion::arrow::array::{RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::parquet::arrow::ArrowWriter;

    let dir = tempfile::tempdir().expect("tempdir");
    let lake = lake_arg(dir.path());
    synth_tiny(&lake);
    // A foreign tool appended a file whose severity is text: reading the log fails in a stage.
    let schema = Arc::new(Schema::new(vec![
        Field::new("report_id", DataType::Utf8, true),
        Field::new("severity", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec!["MR-x"])),
            Arc::new(StringArray::from(vec!["very high"])),
        ],
    )
    .expect("batch");
    let log = dir.path().join("logs/minority_reports_detected_log");
    std::fs::create_dir_all(&log).expect("mkdir");
    let file = std::fs::File::create(log.join("foreign.parquet")).expect("create");
    let mut writer = ArrowWriter::try_new(file, schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");

    let out = mrs(&["run", "--lake", &lake]);
    assert!(!out.status.success(), "a bad log file must fail the run");
    let err = stderr(&out);
    assert!(
        err.contains("script pipeline/") && err.contains("statement"),
        "{err}"
    );
}

#[test]
fn a_changed_applied_migration_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = lake_arg(dir.path());
    synth_tiny(&lake);
    assert!(mrs(&["run", "--lake", &lake]).status.success());
    // Pretend V001 had been applied with other text.
    let out = mrs(&[
        "sql",
        "--lake",
        &lake,
        "-q",
        "-c",
        "INSERT INTO mrs_migrations_log VALUES ('migrations/V001__create_report_logs.sql', 'deadbeef', now())",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = mrs(&["run", "--lake", &lake]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("V001__create_report_logs.sql") && err.contains("deadbeef"),
        "{err}"
    );
}
