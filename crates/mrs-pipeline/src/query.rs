//! Small helpers the pipeline's own bookkeeping queries share (checkpoints, feeds): running a
//! query, reading a column of its result, writing literals into generated SQL, and writing a
//! query's rows to a file atomically.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::error::{DataFusionError, Result};
use datafusion::object_store::ObjectStoreExt;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::prelude::SessionContext;

use crate::lake::Lake;
use crate::script::run_statement;

/// The lake's timestamp type: microseconds, UTC.
pub(crate) fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

pub(crate) async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    ctx.sql(sql).await?.collect().await
}

/// The non-NULL values of column `col`, as strings.
pub(crate) fn strings(batches: &[RecordBatch], col: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        let c = cast(b.column(col), &DataType::Utf8)?;
        let c = c.as_string::<i32>();
        out.extend(
            (0..c.len())
                .filter(|&i| c.is_valid(i))
                .map(|i| c.value(i).to_string()),
        );
    }
    Ok(out)
}

/// Column `col` as UTC microseconds, NULLs kept.
pub(crate) fn micros(batches: &[RecordBatch], col: usize) -> Result<Vec<Option<i64>>> {
    let mut out = Vec::new();
    for b in batches {
        let c = cast(b.column(col), &utc())?;
        let c = c.as_primitive::<TimestampMicrosecondType>();
        out.extend((0..c.len()).map(|i| c.is_valid(i).then(|| c.value(i))));
    }
    Ok(out)
}

/// One integer column of a query's result, as `i64` (NULL as `None`).
pub(crate) fn i64s(batches: &[RecordBatch], col: usize) -> Result<Vec<Option<i64>>> {
    let mut out = Vec::new();
    for b in batches {
        let c = cast(b.column(col), &DataType::Int64)?;
        let c = c.as_primitive::<Int64Type>();
        out.extend((0..c.len()).map(|i| c.is_valid(i).then(|| c.value(i))));
    }
    Ok(out)
}

/// A SQL string literal.
pub(crate) fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL timestamp literal (UTC, microseconds).
pub(crate) fn sql_ts(micros: i64) -> String {
    format!(
        "CAST('{}' AS TIMESTAMP(6) WITH TIME ZONE)",
        mrs_core::identity::rfc3339_utc_micros(micros)
    )
}

/// Writes a query's rows to `staged` (lake-relative) with `COPY`, then renames the file over
/// `target`: an atomic replace on a local file system, a server-side copy on S3, so a run
/// killed on the way leaves the previous file in place.
pub(crate) async fn copy_renamed(
    ctx: &SessionContext,
    lake: &Lake,
    query: &str,
    staged: &str,
    target: &ObjectPath,
) -> Result<()> {
    run_statement(
        ctx,
        &format!(
            "COPY ({query}) TO '{}/{staged}' STORED AS PARQUET",
            lake.url()
        ),
    )
    .await?;
    lake.store()
        .rename(&lake.path(staged), target)
        .await
        .map_err(|e| DataFusionError::ObjectStore(Box::new(e)))
}
