//! Helpers shared by the pipeline integration tests: a runtime, synthetic lakes, queries and
//! column extraction. (Each test binary uses a subset.)
#![allow(dead_code)]

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use mrs_pipeline::{Lake, RunOptions, RunSummary};

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Opens a lake in `dir` and writes the `tiny` preset of `seed` into it, up to `until`.
pub async fn synth_tiny(dir: &std::path::Path, seed: u64, until: Option<i64>) -> Lake {
    let lake = Lake::open(dir.to_str().expect("utf-8 path")).expect("open lake");
    write_tiny(&lake, seed, until).await;
    lake
}

/// Writes (or, with a later `until`, appends to) the `tiny` preset of `seed`.
pub async fn write_tiny(lake: &Lake, seed: u64, until: Option<i64>) {
    let mut cfg = mrs_synth::SynthConfig::new(mrs_synth::Preset::Tiny, seed);
    cfg.until = until;
    mrs_synth::write_lake(lake.store(), lake.root(), &cfg)
        .await
        .expect("synth");
}

pub async fn run(lake: &Lake, as_of: Option<i64>) -> RunSummary {
    mrs_pipeline::run(
        lake,
        &RunOptions {
            as_of_micros: as_of,
            ..RunOptions::default()
        },
    )
    .await
    .expect("run")
}

pub async fn query(lake: &Lake, sql: &str) -> Vec<RecordBatch> {
    let ctx = mrs_pipeline::open_session(lake, None)
        .await
        .expect("session");
    ctx.sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("execute")
}

/// A column of every batch as text (NULL as `None`).
pub fn strings(batches: &[RecordBatch], col: usize) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for b in batches {
        let c = cast(b.column(col), &DataType::Utf8).expect("cast");
        let c = c.as_string::<i32>();
        out.extend((0..c.len()).map(|i| (!c.is_null(i)).then(|| c.value(i).to_string())));
    }
    out
}

/// A timestamp column of every batch in microseconds since the epoch.
pub fn micros(batches: &[RecordBatch], col: usize) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    for b in batches {
        let c = cast(
            b.column(col),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        )
        .expect("cast");
        let c = c.as_primitive::<TimestampMicrosecondType>();
        out.extend((0..c.len()).map(|i| (!c.is_null(i)).then(|| c.value(i))));
    }
    out
}

/// The first column of the first row of a query, as text.
pub async fn one_string(lake: &Lake, sql: &str) -> Option<String> {
    strings(&query(lake, sql).await, 0)
        .into_iter()
        .next()
        .flatten()
}

/// A `count(*)`-style query's single value.
pub async fn count(lake: &Lake, sql: &str) -> i64 {
    let b = query(lake, sql).await;
    let c = cast(b[0].column(0), &DataType::Int64).expect("cast");
    c.as_primitive::<Int64Type>().value(0)
}
