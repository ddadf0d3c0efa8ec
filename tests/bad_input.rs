//! Bad input is quarantined and counted, or refused with a message naming the table and column;
//! nothing panics and nothing is dropped silently.

mod common;

use std::sync::Arc;

use common::{count, run, runtime, synth_tiny};
use datafusion::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use mrs_pipeline::{Lake, RunOptions};

fn write_parquet(path: &std::path::Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let file = std::fs::File::create(path).expect("create");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
}

fn sales_batch(units: ArrayRef, units_type: DataType) -> RecordBatch {
    let ts_type = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("retailer_id", DataType::Utf8, true),
        Field::new("store_id", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("ts", ts_type, true),
        Field::new("units", units_type, true),
    ]));
    let n = units.len();
    // 2025-06-20T10:00:00Z, inside the tiny lake's range.
    let t = 1_750_413_600_000_000i64;
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec![Some("R"); n])),
            Arc::new(StringArray::from(
                (0..n)
                    .map(|i| (i != 0).then_some("S-X"))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                (0..n)
                    .map(|i| (i != 1).then_some("SKU-X"))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(
                    (0..n).map(|i| (i != 2).then_some(t)).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            units,
        ],
    )
    .expect("batch")
}

#[test]
fn null_keys_and_non_finite_units_are_quarantined_once_and_counted() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = synth_tiny(dir.path(), 4, None).await;
        // Rows 0-2: NULL store, NULL sku, NULL ts; then NULL, NaN, +inf and -inf units.
        let units: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(1.0),
            Some(1.0),
            Some(1.0),
            None,
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
        ]));
        write_parquet(
            &dir.path().join("input/sales/zz-bad.parquet"),
            &sales_batch(units, DataType::Float64),
        );
        let first = run(&lake, None).await;
        assert_eq!(first.quarantined, 7, "{first}");
        for reason in [
            "NULL store_id",
            "NULL sku",
            "NULL ts",
            "NULL units",
            "NaN units",
            "infinite units",
        ] {
            let n = count(
                &lake,
                &format!("SELECT count(*) FROM quarantine_log WHERE reason = '{reason}'"),
            )
            .await;
            assert!(n >= 1, "{reason}");
        }
        let second = run(&lake, None).await;
        assert_eq!(second.quarantined, 0, "a row is quarantined once");
        assert_eq!(second.rows_appended, 0);
    });
}

fn lake_with_sales(units: ArrayRef, units_type: DataType) -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = runtime().block_on(synth_tiny(dir.path(), 4, None));
    std::fs::remove_dir_all(dir.path().join("input/sales")).expect("rm sales");
    write_parquet(
        &dir.path().join("input/sales/only.parquet"),
        &sales_batch(units, units_type),
    );
    (dir, lake)
}

#[test]
fn a_units_column_of_the_wrong_type_is_refused_by_name() {
    let units: ArrayRef = Arc::new(StringArray::from(vec![Some("7"); 3]));
    let (_dir, lake) = lake_with_sales(units, DataType::Utf8);
    let err = runtime()
        .block_on(mrs_pipeline::run(&lake, &RunOptions::default()))
        .expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("'sales'") && msg.contains("'units'") && msg.contains("Utf8"),
        "{msg}"
    );
}

#[test]
fn a_missing_required_column_is_refused_by_name() {
    let ts_type = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("store_id", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("ts", ts_type, true),
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
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = runtime().block_on(synth_tiny(dir.path(), 4, None));
    std::fs::remove_dir_all(dir.path().join("input/sales")).expect("rm sales");
    write_parquet(&dir.path().join("input/sales/only.parquet"), &batch);
    let err = runtime()
        .block_on(mrs_pipeline::run(&lake, &RunOptions::default()))
        .expect_err("refused");
    let msg = err.to_string();
    assert!(msg.contains("'sales' is missing column 'units'"), "{msg}");
}

#[test]
fn integer_units_and_naive_nanosecond_timestamps_are_accepted() {
    // The contract accepts any timestamp unit, naive as UTC, and integer counts.
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = runtime().block_on(synth_tiny(dir.path(), 4, None));
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
            Arc::new(StringArray::from(vec!["S-EXTRA"])),
            Arc::new(StringArray::from(vec!["K"])),
            Arc::new(datafusion::arrow::array::TimestampNanosecondArray::from(
                vec![1_750_413_600_000_000_000],
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
fn an_empty_sales_table_runs_and_reports_nothing() {
    let units: ArrayRef = Arc::new(Float64Array::from(Vec::<Option<f64>>::new()));
    let (_dir, lake) = lake_with_sales(units, DataType::Float64);
    let summary = runtime().block_on(run(&lake, None));
    assert_eq!(summary.reports_new, 0, "{summary}");
    assert_eq!(summary.quarantined, 0);
    assert_eq!(
        runtime().block_on(count(&lake, "SELECT count(*) FROM minority_reports")),
        0
    );
}
