//! Late corrections and file order (DESIGN §2-§3, README "The lake"): a later file's different
//! row for a `(store_id, sku, ts)` is the value, the row it replaces is logged as superseded;
//! the next run appends an update (or retraction) snapshot and the history keeps the old one;
//! the order in which files arrive does not change the result.

mod common;

use common::{count, micros, query, run, runtime, strings, synth_tiny, write_tiny};
use datafusion::arrow::array::{Float64Array, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::parquet::arrow::ArrowWriter;
use mrs_pipeline::Lake;

fn write_parquet(path: &std::path::Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let file = std::fs::File::create(path).expect("create");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
}

fn rows(lake: &Lake, sql: &str) -> RecordBatch {
    let batches = runtime().block_on(query(lake, sql));
    concat_batches(&batches[0].schema(), &batches).expect("concat")
}

fn f64s(batch: &RecordBatch, col: usize) -> Vec<f64> {
    let c = datafusion::arrow::compute::cast(
        batch.column(col),
        &datafusion::arrow::datatypes::DataType::Float64,
    )
    .expect("cast");
    let c = c.as_any().downcast_ref::<Float64Array>().expect("f64");
    c.iter().map(|v| v.unwrap_or(f64::NAN)).collect()
}

#[test]
fn a_late_correction_appends_an_update_snapshot_and_keeps_the_old_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = runtime().block_on(synth_tiny(dir.path(), 4, None));
    runtime().block_on(run(&lake, None));
    // A spike report opened by a strong first bucket (so more units later in it cannot move
    // its start) with an anomalous bucket after that first one.
    let report = rows(
        &lake,
        "SELECT report_id, store_id, top_skus[1] AS sku, CAST(last_anomalous_ts AS BIGINT) AS t, actual_units \
         FROM minority_reports WHERE direction = 'spike' AND last_anomalous_ts > window_start \
         AND alerted_at = window_start ORDER BY report_id LIMIT 1",
    );
    assert_eq!(report.num_rows(), 1, "the tiny lake has such a report");
    let id = strings(std::slice::from_ref(&report), 0)[0]
        .clone()
        .expect("id");
    let store = strings(std::slice::from_ref(&report), 1)[0]
        .clone()
        .expect("store");
    let sku = strings(std::slice::from_ref(&report), 2)[0]
        .clone()
        .expect("sku");
    let t = micros(std::slice::from_ref(&report), 3)[0].expect("t");
    let old_actual = f64s(&report, 4)[0];

    // The retailer re-sends that cell with 200 more units.
    let cell = rows(
        &lake,
        &format!(
            "SELECT retailer_id, store_id, sku, ts, units + 200 AS units, revenue FROM sales_clean \
             WHERE store_id = '{store}' AND sku = '{sku}' AND ts = to_timestamp_micros({t})"
        ),
    );
    assert_eq!(cell.num_rows(), 1);
    write_parquet(
        &dir.path()
            .join("input/sales/zz-2025-07-08-correction.parquet"),
        &cell,
    );
    let summary = runtime().block_on(run(&lake, None));
    assert_eq!(summary.quarantined, 1, "{summary}");
    assert!(summary.reports_updated >= 1, "{summary}");
    // The other stores resume from their checkpoints; the corrected one (its past changed) is
    // detected from its whole history, and a full recompute finds nothing to change.
    let stores = runtime().block_on(count(&lake, "SELECT count(DISTINCT store_id) FROM sales"));
    assert_eq!(summary.stores_resumed, stores - 1, "{summary:?}");
    let full = runtime()
        .block_on(mrs_pipeline::run(
            &lake,
            &mrs_pipeline::RunOptions {
                full: true,
                ..mrs_pipeline::RunOptions::default()
            },
        ))
        .expect("full run");
    assert_eq!(
        (
            full.reports_new,
            full.reports_updated,
            full.reports_retracted
        ),
        (0, 0, 0),
        "{full:?}"
    );
    let superseded = runtime().block_on(count(
        &lake,
        &format!(
            "SELECT count(*) FROM quarantine_log WHERE reason = 'superseded by correction' \
             AND store_id = '{store}' AND sku = '{sku}' AND ts = to_timestamp_micros({t})"
        ),
    ));
    assert_eq!(superseded, 1, "the replaced row is logged, not lost");
    let history = rows(
        &lake,
        &format!(
            "SELECT actual_units FROM minority_reports_detected_log WHERE report_id = '{id}' ORDER BY written_at"
        ),
    );
    let history = f64s(&history, 0);
    assert!(history.len() >= 2, "{history:?}");
    assert!(
        (history[0] - old_actual).abs() < 1e-6,
        "the old snapshot stays"
    );
    let new_actual = f64s(
        &rows(
            &lake,
            &format!("SELECT actual_units FROM minority_reports WHERE report_id = '{id}'"),
        ),
        0,
    )[0];
    assert!(
        (new_actual - old_actual - 200.0).abs() < 1e-6,
        "{old_actual} -> {new_actual}"
    );
}

#[test]
fn a_correction_that_removes_an_anomaly_retracts_its_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = runtime().block_on(synth_tiny(dir.path(), 4, None));
    runtime().block_on(run(&lake, None));
    // The largest ended spike; its store's cells over the window are corrected to the values
    // of the same hours a week before.
    let report = rows(
        &lake,
        "SELECT report_id, store_id, CAST(window_start AS BIGINT), CAST(window_end AS BIGINT) \
         FROM minority_reports WHERE direction = 'spike' AND window_end IS NOT NULL \
         ORDER BY magnitude DESC, report_id LIMIT 1",
    );
    let id = strings(std::slice::from_ref(&report), 0)[0]
        .clone()
        .expect("id");
    let store = strings(std::slice::from_ref(&report), 1)[0]
        .clone()
        .expect("store");
    let start = micros(std::slice::from_ref(&report), 2)[0].expect("start");
    let end = micros(std::slice::from_ref(&report), 3)[0].expect("end");
    let corrected = rows(
        &lake,
        &format!(
            "SELECT c.retailer_id, c.store_id, c.sku, c.ts, p.units, p.revenue \
             FROM sales_clean c JOIN sales_clean p \
               ON p.store_id = c.store_id AND p.sku = c.sku AND p.ts = c.ts - INTERVAL '7 days' \
             WHERE c.store_id = '{store}' AND c.ts >= to_timestamp_micros({start}) \
               AND c.ts < to_timestamp_micros({end}) AND c.units <> p.units"
        ),
    );
    assert!(corrected.num_rows() > 0);
    write_parquet(
        &dir.path()
            .join("input/sales/zz-2025-07-08-correction.parquet"),
        &corrected,
    );
    let summary = runtime().block_on(run(&lake, None));
    assert!(summary.reports_retracted >= 1, "{summary}");
    assert_eq!(
        summary.quarantined,
        corrected.num_rows() as i64,
        "{summary}"
    );
    let statuses = strings(
        &[rows(
            &lake,
            &format!(
                "SELECT status FROM minority_reports_detected_log WHERE report_id = '{id}' ORDER BY written_at"
            ),
        )],
        0,
    );
    assert_eq!(
        statuses.first().cloned().flatten().as_deref(),
        Some("ended")
    );
    assert_eq!(
        statuses.last().cloned().flatten().as_deref(),
        Some("retracted")
    );
    let live = runtime().block_on(count(
        &lake,
        &format!("SELECT count(*) FROM minority_reports WHERE report_id = '{id}'"),
    ));
    assert_eq!(
        live, 0,
        "a retracted report leaves the hydrated view, not the log"
    );
}

/// The live reports of a lake, one line each, in id order.
fn reports(lake: &Lake) -> Vec<Option<String>> {
    strings(
        &runtime().block_on(query(
            lake,
            "SELECT concat_ws('|', report_id, window_start, coalesce(CAST(window_end AS VARCHAR), '-'), \
             direction, CAST(round(severity, 9) AS VARCHAR), CAST(round(actual_units, 6) AS VARCHAR)) \
             FROM minority_reports ORDER BY report_id",
        )),
        0,
    )
}

#[test]
fn files_arriving_out_of_order_give_the_same_reports() {
    // In order: the whole tiny lake in one delivery.
    let in_order = tempfile::tempdir().expect("tempdir");
    let lake_a = runtime().block_on(synth_tiny(in_order.path(), 4, None));
    runtime().block_on(run(&lake_a, None));
    let expected = reports(&lake_a);
    assert!(!expected.is_empty());

    // Out of order: the second half of the hours arrives (and is run) first, named so it sorts
    // first too; the first half arrives afterwards.
    let out = tempfile::tempdir().expect("tempdir");
    let half = 1_748_822_400_000_000 + 17 * 24 * 3_600_000_000; // 2025-06-19
    let lake_b = runtime().block_on(synth_tiny(out.path(), 4, Some(half)));
    runtime().block_on(write_tiny(&lake_b, 4, None));
    let sales = out.path().join("input/sales");
    let held = out.path().join("held-back");
    std::fs::create_dir_all(&held).expect("mkdir");
    let mut names: Vec<String> = std::fs::read_dir(&sales)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let first_secs = "-1748822400.parquet";
    for name in names {
        if name.ends_with(first_secs) {
            std::fs::rename(sales.join(&name), held.join(format!("b-{name}"))).expect("mv");
        } else {
            std::fs::rename(sales.join(&name), sales.join(format!("a-{name}"))).expect("mv");
        }
    }
    runtime().block_on(run(&lake_b, None));
    for entry in std::fs::read_dir(&held).expect("ls") {
        let entry = entry.expect("entry");
        std::fs::rename(entry.path(), sales.join(entry.file_name())).expect("mv");
    }
    let summary = runtime().block_on(run(&lake_b, None));
    assert_eq!(summary.quarantined, 0, "{summary}");
    assert_eq!(reports(&lake_b), expected);
}

#[test]
fn the_detector_input_has_one_row_per_cell() {
    // The synthetic generator never relies on duplicate rows (its x2 Data Errors multiply
    // units): a whole tiny lake has no key twice and nothing to quarantine.
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = runtime().block_on(synth_tiny(dir.path(), 4, None));
    let keys = runtime().block_on(count(
        &lake,
        "SELECT count(*) FROM (SELECT store_id, sku, ts FROM sales GROUP BY 1, 2, 3 HAVING count(*) > 1)",
    ));
    assert_eq!(keys, 0);
    let bad = runtime().block_on(count(
        &lake,
        "SELECT count(*) FROM sales_checked WHERE reason IS NOT NULL",
    ));
    assert_eq!(bad, 0);
}
