//! Bad input, one test per kind: each kind is quarantined to `quarantine_log` with its reason
//! and counted in the run summary, or refused with a message naming the problem and the table
//! or file. Nothing panics and nothing is dropped silently (README "The lake").

mod common;

use std::sync::Arc;

use common::{count, micros, one_string, query, run, runtime, strings, synth_tiny};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use mrs_pipeline::{Lake, RunOptions};

/// 2025-06-20T10:00:00Z, inside the tiny lake's range.
const T: i64 = 1_750_413_600_000_000;
const HOUR: i64 = 3_600_000_000;

fn write_parquet(path: &std::path::Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let file = std::fs::File::create(path).expect("create");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
}

/// One sales row in the canonical types (`None` is NULL).
#[derive(Clone, Copy)]
struct Row<'a> {
    store: Option<&'a str>,
    sku: Option<&'a str>,
    ts: Option<i64>,
    units: Option<f64>,
}

fn row<'a>(store: &'a str, sku: &'a str, ts: i64, units: f64) -> Row<'a> {
    Row {
        store: Some(store),
        sku: Some(sku),
        ts: Some(ts),
        units: Some(units),
    }
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn sales_batch(rows: &[Row<'_>]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("retailer_id", DataType::Utf8, true),
        Field::new("store_id", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("ts", ts_type(), true),
        Field::new("units", DataType::Float64, true),
        Field::new("revenue", DataType::Float64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec![Some("R"); rows.len()])),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.store).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.sku).collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.ts).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.units).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(vec![None::<f64>; rows.len()])),
        ],
    )
    .expect("batch")
}

/// A tiny synthetic lake and one of its stores and SKUs.
fn tiny_lake() -> (tempfile::TempDir, Lake, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = runtime().block_on(synth_tiny(dir.path(), 4, None));
    let store = runtime()
        .block_on(one_string(&lake, "SELECT min(store_id) FROM stores"))
        .expect("a store");
    let sku = runtime()
        .block_on(one_string(&lake, "SELECT min(sku) FROM skus"))
        .expect("a sku");
    (dir, lake, store, sku)
}

/// Quarantine rows of one reason.
fn quarantined(lake: &Lake, reason: &str) -> i64 {
    runtime().block_on(count(
        lake,
        &format!("SELECT count(*) FROM quarantine_log WHERE reason = '{reason}'"),
    ))
}

/// Adds `rows` as a new delivery, runs, and checks each listed reason is quarantined that many
/// times, the run counts them all, and a rerun quarantines nothing more.
fn deliver_and_expect(
    lake: &Lake,
    dir: &std::path::Path,
    rows: &[Row<'_>],
    reasons: &[(&str, i64)],
) {
    write_parquet(&dir.join("input/sales/zz-bad.parquet"), &sales_batch(rows));
    let first = runtime().block_on(run(lake, None));
    let total: i64 = reasons.iter().map(|(_, n)| n).sum();
    assert_eq!(first.quarantined, total, "{first}");
    for (reason, n) in reasons {
        assert_eq!(quarantined(lake, reason), *n, "{reason}");
    }
    let second = runtime().block_on(run(lake, None));
    assert_eq!(
        second.quarantined, 0,
        "a row is quarantined once: {second:?}"
    );
    assert_eq!(second.rows_appended, 0);
}

#[test]
fn null_keys_are_quarantined_and_counted() {
    let (dir, lake, store, sku) = tiny_lake();
    let ok = row(&store, &sku, T, 1.0);
    deliver_and_expect(
        &lake,
        dir.path(),
        &[
            Row { store: None, ..ok },
            Row {
                store: Some(""),
                ..ok
            },
            Row { sku: None, ..ok },
            Row { ts: None, ..ok },
        ],
        &[("NULL store_id", 2), ("NULL sku", 1), ("NULL ts", 1)],
    );
}

#[test]
fn null_nan_and_infinite_units_are_quarantined_and_counted() {
    let (dir, lake, store, sku) = tiny_lake();
    let bad = |units| Row {
        units,
        ..row(&store, &sku, T, 0.0)
    };
    deliver_and_expect(
        &lake,
        dir.path(),
        &[
            bad(None),
            bad(Some(f64::NAN)),
            bad(Some(f64::INFINITY)),
            bad(Some(f64::NEG_INFINITY)),
        ],
        &[("NULL units", 1), ("NaN units", 1), ("infinite units", 2)],
    );
}

#[test]
fn absurdly_large_units_are_quarantined_and_counted() {
    let (dir, lake, store, sku) = tiny_lake();
    deliver_and_expect(
        &lake,
        dir.path(),
        &[
            row(&store, &sku, T + HOUR, 5e9),
            row(&store, &sku, T + 2 * HOUR, -2e12),
        ],
        &[("absurd units", 2)],
    );
}

#[test]
fn timestamps_in_the_future_are_quarantined_and_counted() {
    let (dir, lake, store, sku) = tiny_lake();
    let next_year = chrono::Utc::now().timestamp_micros() / HOUR * HOUR + 365 * 24 * HOUR;
    // as_of is set so that the run is not taken to be in that future.
    write_parquet(
        &dir.path().join("input/sales/zz-bad.parquet"),
        &sales_batch(&[row(&store, &sku, next_year, 3.0)]),
    );
    let summary = runtime().block_on(run(&lake, None));
    assert_eq!(summary.quarantined, 1, "{summary}");
    assert_eq!(quarantined(&lake, "ts in the future"), 1);
    // The run's clock is the last usable bucket, not the bogus one.
    assert!(
        summary
            .as_of
            .as_deref()
            .is_some_and(|a| a.starts_with("2025-")),
        "{summary}"
    );
}

#[test]
fn timestamps_off_the_bucket_grid_are_quarantined_not_floored() {
    let (dir, lake, store, sku) = tiny_lake();
    // Half past and one second past the hour, in an hourly lake.
    deliver_and_expect(
        &lake,
        dir.path(),
        &[
            row(&store, &sku, T + HOUR / 2, 4.0),
            row(&store, &sku, T + 1_000_000, 4.0),
        ],
        &[("ts off the bucket grid", 2)],
    );
    let seen = runtime().block_on(count(
        &lake,
        &format!("SELECT count(*) FROM sales_clean WHERE store_id = '{store}' AND sku = '{sku}' AND ts = TIMESTAMP '2025-06-20T10:00:00Z'"),
    ));
    assert_eq!(seen, 1, "the on-grid bucket keeps its own value");
}

#[test]
fn a_weekly_lake_has_a_weekly_grid() {
    // Any regular frequency is accepted: weekly buckets starting on Mondays are on the grid,
    // a Tuesday is not.
    let (dir, lake, store, sku) = tiny_lake();
    std::fs::remove_dir_all(dir.path().join("input/sales")).expect("rm sales");
    let monday = 1_748_822_400_000_000; // 2025-06-02
    let week = 7 * 24 * HOUR;
    let mut rows: Vec<Row<'_>> = (0..12)
        .map(|w| row(&store, &sku, monday + w * week, 50.0))
        .collect();
    rows.push(row(&store, &sku, monday + 3 * week + 24 * HOUR, 50.0));
    write_parquet(
        &dir.path().join("input/sales/weekly.parquet"),
        &sales_batch(&rows),
    );
    let summary = runtime().block_on(run(&lake, None));
    assert_eq!(summary.quarantined, 1, "{summary}");
    assert_eq!(quarantined(&lake, "ts off the bucket grid"), 1);
    let usable = runtime().block_on(count(&lake, "SELECT count(*) FROM sales_clean"));
    assert_eq!(usable, 12);
}

#[test]
fn stores_missing_from_the_stores_table_are_quarantined_and_counted() {
    let (dir, lake, _store, sku) = tiny_lake();
    deliver_and_expect(
        &lake,
        dir.path(),
        &[
            row("S-NOWHERE", &sku, T, 2.0),
            row("S-NOWHERE", &sku, T + HOUR, 2.0),
        ],
        &[("store_id not in stores", 2)],
    );
}

#[test]
fn skus_missing_from_the_skus_table_are_quarantined_and_counted() {
    let (dir, lake, store, _sku) = tiny_lake();
    deliver_and_expect(
        &lake,
        dir.path(),
        &[row(&store, "SKU-NOWHERE", T, 2.0)],
        &[("sku not in skus", 1)],
    );
}

/// Copies of `n` usable rows of a store, as they are in `sales_clean`.
fn existing_rows(lake: &Lake, store: &str, from: i64, to: i64) -> RecordBatch {
    let sql = format!(
        "SELECT retailer_id, store_id, sku, ts, units, revenue FROM sales_clean \
         WHERE store_id = '{store}' AND ts >= to_timestamp_micros({from}) AND ts < to_timestamp_micros({to}) \
         ORDER BY sku, ts"
    );
    let batches = runtime().block_on(query(lake, &sql));
    concat_batches(&batches[0].schema(), &batches).expect("concat")
}

#[test]
fn duplicate_rows_are_kept_once_and_the_extras_quarantined() {
    let (dir, lake, store, _sku) = tiny_lake();
    let before = runtime().block_on(count(&lake, "SELECT count(*) FROM sales_clean"));
    let copies = existing_rows(&lake, &store, T, T + 3 * HOUR);
    let n = copies.num_rows() as i64;
    assert!(n > 0);
    // Delivered twice more: once in a later file, once twice inside one file.
    write_parquet(&dir.path().join("input/sales/zz-resend.parquet"), &copies);
    let twice = concat_batches(&copies.schema(), [&copies, &copies]).expect("concat");
    write_parquet(
        &dir.path().join("input/sales/zz-resend-twice.parquet"),
        &twice,
    );
    let summary = runtime().block_on(run(&lake, None));
    assert_eq!(summary.quarantined, 3 * n, "{summary}");
    assert_eq!(quarantined(&lake, "duplicate row"), 3 * n);
    let after = runtime().block_on(count(&lake, "SELECT count(*) FROM sales_clean"));
    assert_eq!(after, before, "a duplicate never adds units");
    let doubled = runtime().block_on(count(
        &lake,
        "SELECT count(*) FROM (SELECT store_id, sku, ts FROM sales_clean GROUP BY 1, 2, 3 HAVING count(*) > 1)",
    ));
    assert_eq!(doubled, 0);
}

#[test]
fn negative_units_stay_usable_are_flagged_and_reach_the_detector() {
    // Negatives are a Data Error signature (DESIGN §5): kept as evidence, flagged in
    // sales_checked, counted by the detector in the report (dq_negative_count).
    let (dir, lake, store, _sku) = tiny_lake();
    let window = existing_rows(&lake, &store, T, T + 4 * HOUR);
    let n = window.num_rows();
    let negated: ArrayRef = Arc::new(Float64Array::from(vec![-40.0; n]));
    let mut cols = window.columns().to_vec();
    cols[4] = negated;
    let corrected = RecordBatch::try_new(window.schema(), cols).expect("batch");
    write_parquet(
        &dir.path().join("input/sales/zz-negatives.parquet"),
        &corrected,
    );
    let summary = runtime().block_on(run(&lake, None));
    // The original rows are superseded by the negative ones: nothing else is quarantined.
    assert_eq!(summary.quarantined, n as i64, "{summary}");
    assert_eq!(quarantined(&lake, "superseded by correction"), n as i64);
    let flagged = runtime().block_on(count(
        &lake,
        "SELECT count(*) FROM sales_checked WHERE reason IS NULL AND warning = 'negative units'",
    ));
    assert_eq!(flagged, n as i64);
    let negatives = runtime().block_on(count(
        &lake,
        &format!(
            "SELECT coalesce(max(dq_negative_count), 0) FROM latest_detected WHERE status <> 'retracted' AND store_id = '{store}' \
             AND window_start <= TIMESTAMP '2025-06-20T13:00:00Z' \
             AND coalesce(window_end, TIMESTAMP '2100-01-01T00:00:00Z') > TIMESTAMP '2025-06-20T10:00:00Z'"
        ),
    ));
    assert!(negatives > 0, "the detector reports the negative units");
}

fn string_sales(
    units: Vec<Option<&str>>,
    ts: Vec<Option<&str>>,
    store: &str,
    sku: &str,
) -> RecordBatch {
    let n = units.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("store_id", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("ts", DataType::Utf8, true),
        Field::new("units", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec![Some(store); n])),
            Arc::new(StringArray::from(vec![Some(sku); n])),
            Arc::new(StringArray::from(ts)),
            Arc::new(StringArray::from(units)),
        ],
    )
    .expect("batch")
}

#[test]
fn units_as_unparsable_text_are_quarantined_and_counted() {
    let (dir, lake, store, sku) = tiny_lake();
    std::fs::remove_dir_all(dir.path().join("input/sales")).expect("rm sales");
    let ts: Vec<Option<&str>> = vec![
        Some("2025-06-20T10:00:00Z"),
        Some("2025-06-20T11:00:00Z"),
        Some("2025-06-20T12:00:00Z"),
        Some("2025-06-20T13:00:00Z"),
    ];
    let batch = string_sales(
        vec![Some("7"), Some(" 2.5 "), Some("seven"), Some("1e400x")],
        ts,
        &store,
        &sku,
    );
    write_parquet(&dir.path().join("input/sales/text.parquet"), &batch);
    let summary = runtime().block_on(run(&lake, None));
    assert_eq!(summary.quarantined, 2, "{summary}");
    assert_eq!(quarantined(&lake, "unparsable units"), 2);
    let parsed = runtime().block_on(count(
        &lake,
        "SELECT CAST(sum(units) * 10 AS BIGINT) FROM sales_clean",
    ));
    assert_eq!(parsed, 95, "text numbers are parsed");
}

#[test]
fn timestamps_as_unparsable_text_are_quarantined_and_counted() {
    let (dir, lake, store, sku) = tiny_lake();
    std::fs::remove_dir_all(dir.path().join("input/sales")).expect("rm sales");
    let ts: Vec<Option<&str>> = vec![
        Some("2025-06-20T10:00:00Z"),
        Some("2025-06-20 11:00:00"),
        Some("yesterday at noon"),
        Some("2025-13-45T99:00:00Z"),
        Some(""),
    ];
    let units = vec![Some("1"); 5];
    write_parquet(
        &dir.path().join("input/sales/text.parquet"),
        &string_sales(units, ts, &store, &sku),
    );
    let summary = runtime().block_on(run(&lake, None));
    assert_eq!(summary.quarantined, 3, "{summary}");
    assert_eq!(quarantined(&lake, "unparsable ts"), 2);
    assert_eq!(
        quarantined(&lake, "NULL ts"),
        1,
        "blank text is a missing value"
    );
    let usable = micros(
        &runtime().block_on(query(&lake, "SELECT ts FROM sales_clean ORDER BY ts")),
        0,
    );
    assert_eq!(usable, vec![Some(T), Some(T + HOUR)]);
}

#[test]
fn a_units_column_of_a_non_numeric_type_is_refused_by_name() {
    let (dir, lake, store, sku) = tiny_lake();
    std::fs::remove_dir_all(dir.path().join("input/sales")).expect("rm sales");
    let batch = sales_batch(&[row(&store, &sku, T, 1.0)]);
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[4] = Field::new("units", DataType::Boolean, true);
    let mut cols = batch.columns().to_vec();
    cols[4] = Arc::new(BooleanArray::from(vec![true]));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("batch");
    write_parquet(&dir.path().join("input/sales/only.parquet"), &batch);
    let err = runtime()
        .block_on(mrs_pipeline::run(&lake, &RunOptions::default()))
        .expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("'sales'") && msg.contains("'units'") && msg.contains("Boolean"),
        "{msg}"
    );
}

#[test]
fn a_file_whose_column_types_clash_with_the_others_is_refused_by_name() {
    let (dir, lake, store, sku) = tiny_lake();
    write_parquet(
        &dir.path().join("input/sales/zz-text.parquet"),
        &string_sales(
            vec![Some("1")],
            vec![Some("2025-06-20T10:00:00Z")],
            &store,
            &sku,
        ),
    );
    let err = runtime()
        .block_on(mrs_pipeline::run(&lake, &RunOptions::default()))
        .expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("zz-text.parquet") && msg.contains("does not match"),
        "{msg}"
    );
}

#[test]
fn a_missing_required_column_is_refused_by_name() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("store_id", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("ts", ts_type(), true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["S"])),
            Arc::new(StringArray::from(vec!["K"])),
            Arc::new(TimestampMicrosecondArray::from(vec![0]).with_timezone("UTC")),
        ],
    )
    .expect("batch");
    let (dir, lake, _store, _sku) = tiny_lake();
    std::fs::remove_dir_all(dir.path().join("input/sales")).expect("rm sales");
    write_parquet(&dir.path().join("input/sales/only.parquet"), &batch);
    let err = runtime()
        .block_on(mrs_pipeline::run(&lake, &RunOptions::default()))
        .expect_err("refused");
    let msg = err.to_string();
    assert!(msg.contains("'sales' is missing column 'units'"), "{msg}");
}

#[test]
fn a_truncated_or_corrupt_parquet_file_is_refused_by_name() {
    let (dir, lake, store, sku) = tiny_lake();
    let path = dir.path().join("input/sales/zz-truncated.parquet");
    write_parquet(&path, &sales_batch(&[row(&store, &sku, T, 1.0)]));
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = runtime()
        .block_on(mrs_pipeline::run(&lake, &RunOptions::default()))
        .expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("zz-truncated.parquet") && msg.contains("not readable Parquet"),
        "{msg}"
    );

    std::fs::write(
        &path,
        b"store_id,sku,ts,units\nS,K,2025-06-20T10:00:00Z,1\n",
    )
    .expect("csv");
    let err = runtime()
        .block_on(mrs_pipeline::run(&lake, &RunOptions::default()))
        .expect_err("refused");
    assert!(err.to_string().contains("zz-truncated.parquet"), "{err}");
}

#[test]
fn integer_units_and_naive_nanosecond_timestamps_are_accepted() {
    // The contract accepts any timestamp unit, naive as UTC, and integer counts.
    let (dir, lake, store, sku) = tiny_lake();
    let schema = Arc::new(Schema::new(vec![
        Field::new("retailer_id", DataType::Utf8, true),
        Field::new("store_id", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        Field::new("units", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["R"])),
            Arc::new(StringArray::from(vec![store.as_str()])),
            Arc::new(StringArray::from(vec![sku.as_str()])),
            Arc::new(datafusion::arrow::array::TimestampNanosecondArray::from(
                vec![T * 1000],
            )),
            Arc::new(datafusion::arrow::array::Int64Array::from(vec![3])),
        ],
    )
    .expect("batch");
    // One schema per table folder: this file replaces the generated sales.
    std::fs::remove_dir_all(dir.path().join("input/sales")).expect("rm sales");
    write_parquet(&dir.path().join("input/sales/only.parquet"), &batch);
    let summary = runtime().block_on(run(&lake, None));
    assert_eq!(summary.quarantined, 0, "{summary}");
    let seen = runtime().block_on(count(&lake, "SELECT count(*) FROM sales_clean WHERE units = 3.0 AND ts = TIMESTAMP '2025-06-20T10:00:00Z'"));
    assert_eq!(seen, 1);
}

#[test]
fn an_empty_sales_file_runs_and_reports_nothing() {
    let (dir, lake, _store, _sku) = tiny_lake();
    std::fs::remove_dir_all(dir.path().join("input/sales")).expect("rm sales");
    write_parquet(
        &dir.path().join("input/sales/empty.parquet"),
        &sales_batch(&[]),
    );
    let summary = runtime().block_on(run(&lake, None));
    assert_eq!(summary.reports_new, 0, "{summary}");
    assert_eq!(summary.quarantined, 0);
    assert_eq!(
        runtime().block_on(count(&lake, "SELECT count(*) FROM minority_reports")),
        0
    );
}

#[test]
fn a_sales_folder_without_files_is_refused_by_name() {
    let (dir, lake, _store, _sku) = tiny_lake();
    std::fs::remove_dir_all(dir.path().join("input/sales")).expect("rm sales");
    let err = runtime()
        .block_on(mrs_pipeline::run(&lake, &RunOptions::default()))
        .expect_err("refused");
    let msg = err.to_string();
    assert!(msg.contains("'sales' has no Parquet files"), "{msg}");
}

#[test]
fn every_row_is_used_or_quarantined_exactly_once() {
    // The books balance: input rows = usable rows + rows with a reason, and sales_clean holds
    // exactly the usable rows of sales_checked.
    let (dir, lake, store, sku) = tiny_lake();
    let copies = existing_rows(&lake, &store, T, T + 2 * HOUR);
    write_parquet(&dir.path().join("input/sales/zz-dup.parquet"), &copies);
    write_parquet(
        &dir.path().join("input/sales/zz-bad.parquet"),
        &sales_batch(&[
            Row {
                store: None,
                ..row(&store, &sku, T, 1.0)
            },
            row(&store, &sku, T + HOUR / 2, 1.0),
            row(&store, &sku, T, 1e12),
        ]),
    );
    let total = runtime().block_on(count(&lake, "SELECT count(*) FROM sales"));
    let checked = runtime().block_on(count(&lake, "SELECT count(*) FROM sales_checked"));
    let clean = runtime().block_on(count(&lake, "SELECT count(*) FROM sales_clean"));
    let bad = runtime().block_on(count(
        &lake,
        "SELECT count(*) FROM sales_checked WHERE reason IS NOT NULL",
    ));
    assert_eq!(checked, total);
    assert_eq!(clean + bad, total);
    let mismatched = runtime().block_on(count(
        &lake,
        "SELECT count(*) FROM (SELECT store_id, sku, ts, units FROM sales_checked WHERE reason IS NULL \
         EXCEPT ALL SELECT store_id, sku, ts, units FROM sales_clean)",
    ));
    assert_eq!(mismatched, 0);
    let summary = runtime().block_on(run(&lake, None));
    assert_eq!(summary.quarantined, bad, "{summary}");
    let reasons = strings(
        &runtime().block_on(query(
            &lake,
            "SELECT DISTINCT reason FROM quarantine_log ORDER BY reason",
        )),
        0,
    );
    assert_eq!(
        reasons,
        vec![
            Some("NULL store_id".to_string()),
            Some("absurd units".to_string()),
            Some("duplicate row".to_string()),
            Some("ts off the bucket grid".to_string()),
        ]
    );
}

/// A first run's backfill counts days that have usable sales: a row three years before the rest
/// adds one day to the first slice, and a row in 2099 (quarantined) none, rather than years of
/// empty slices (README "Backfill").
#[test]
fn stray_timestamps_do_not_stretch_a_backfill() {
    let (dir, lake, store, sku) = tiny_lake();
    const YEAR: i64 = 365 * 24 * HOUR;
    write_parquet(
        &dir.path().join("input/sales/zz-stray.parquet"),
        &sales_batch(&[
            row(&store, &sku, T - 3 * YEAR, 1.0),
            row(&store, &sku, T + 74 * YEAR, 1.0),
        ]),
    );
    let s = runtime()
        .block_on(mrs_pipeline::run(
            &lake,
            &RunOptions {
                backfill: mrs_pipeline::Backfill {
                    min_rows: 0,
                    first_days: 14,
                    slice_days: 7,
                },
                ..RunOptions::default()
            },
        ))
        .expect("backfill");
    // 36 days with sales: slices end before the 15th, 22nd, 29th and 36th, then the rest.
    assert_eq!(s.slices, 5, "{s:?}");
    assert_eq!(quarantined(&lake, "ts in the future"), 1);
}
