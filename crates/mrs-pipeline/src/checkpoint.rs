//! Detector checkpoints of incremental runs (README "Incremental runs").
//!
//! A run ends by writing, per store, the detector's state at a resume point
//! (`state/detector/checkpoint.parquet`), with the sales files it had seen
//! (`state/detector_files/files.parquet`) and a fingerprint of the other inputs detection
//! depends on (stores, SKUs, holidays, the lake's bucket grid). The next run decides, before its
//! stages and without reading the sales history, which stores resume:
//!
//! | a store's checkpoint is not used when | checked on |
//! |---|---|
//! | it was taken by another detector version, or the run is `--full` | the checkpoint table |
//! | the run hides (`--as-of`) buckets the checkpoint saw | `covered_to` |
//! | the stores, SKUs, holidays or grid changed | the fingerprint |
//! | a log has fewer rows than when the checkpoint was written (logs reset for a rerun) | row counts |
//! | a file the checkpoint saw is gone | the file listing |
//! | a file it has not seen holds a row of the store before its `resume_from` (a late correction) | the new files' rows only |
//!
//! It then registers `detector_checkpoint_valid` (the resuming stores), the view
//! `quarantine_sales` (the rows that can have a new quarantine reason: those from the earliest
//! bucket of the new files, or the earliest `covered_to`, on, when the inputs fingerprint is
//! the same and no file is gone; all rows otherwise) and the view `detect_sales`: the clean sales a detection needs, with *literal* bounds (a time bound
//! below every resuming store's `read_from`, or the stores detected from their whole history)
//! so that DataFusion prunes the Parquet files and pushes the bound below the duplicate and
//! correction checks of `sales_checked`, instead of computing those over the whole history.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use crate::lake::Lake;
use crate::query::{collect, copy_renamed, micros, sql_string, sql_ts, strings, utc};
use crate::runner::RunOptions;

/// The checkpoint table and the list of files it saw, each one file replaced by every run.
const CHECKPOINT: &str = "state/detector/checkpoint.parquet";
const CHECKPOINT_FILES: &str = "state/detector_files/files.parquet";

fn checkpoint_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("store_id", DataType::Utf8, false),
        Field::new("detector", DataType::Utf8, false),
        Field::new("inputs", DataType::Utf8, false),
        // Rows of each log when the checkpoint was written (`log=n;…`): logs only grow, so
        // fewer rows now means they were reset, and the reports before `resume_from` are gone.
        Field::new("log_rows", DataType::Utf8, false),
        Field::new("checkpoint", DataType::LargeBinary, false),
        Field::new("read_from", utc(), false),
        Field::new("resume_from", utc(), false),
        Field::new("covered_to", utc(), false),
    ]))
}

fn files_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![Field::new(
        "source_file",
        DataType::Utf8,
        false,
    )]))
}

/// Registers a one-column string table.
fn register_strings(
    ctx: &SessionContext,
    table: &str,
    column: &str,
    values: Vec<String>,
) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(StringArray::from(values))],
    )?;
    ctx.register_table(
        table,
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    Ok(())
}

/// `log=n;…` for every log the stages append to.
async fn log_rows(ctx: &SessionContext) -> Result<String> {
    let mut out = Vec::new();
    for log in crate::runner::LOGS {
        let b = collect(ctx, &format!("SELECT count(*) FROM {log}")).await?;
        let n = b
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| cast(b.column(0), &DataType::Int64))
            .transpose()?
            .map_or(0, |c| {
                c.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(0)
            });
        out.push(format!("{log}={n}"));
    }
    Ok(out.join(";"))
}

/// Whether every log has at least the rows it had when `written` was recorded.
fn logs_cover(current: &str, written: &str) -> bool {
    let parse = |s: &str| -> BTreeMap<String, i64> {
        s.split(';')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    };
    let (now, then) = (parse(current), parse(written));
    !then.is_empty()
        && then
            .iter()
            .all(|(log, n)| now.get(log).is_some_and(|m| m >= n))
}

/// Fingerprint of the inputs other than sales that detection depends on.
async fn inputs_fingerprint(ctx: &SessionContext) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    for sql in [
        "SELECT store_id, region FROM stores ORDER BY store_id, region",
        "SELECT DISTINCT sku FROM skus ORDER BY sku",
        "SELECT day, region FROM holidays ORDER BY day, region",
        "SELECT step_us, phase_us FROM sales_grid",
    ] {
        let batches = collect(ctx, sql).await?;
        hasher.update(pretty_format_batches(&batches)?.to_string().as_bytes());
        hasher.update(b"\n");
    }
    Ok(hasher.finalize().to_hex()[..16].to_string())
}

/// Registers `detector_checkpoint` and `detector_checkpoint_files` (empty before the first run),
/// decides which stores resume (`detector_checkpoint_valid`) and defines `detect_sales`.
/// Returns the number of resuming stores.
pub async fn prepare(
    ctx: &SessionContext,
    lake: &Lake,
    options: &RunOptions,
    detector: &str,
) -> Result<usize> {
    for (table, path, schema) in [
        ("detector_checkpoint", CHECKPOINT, checkpoint_schema()),
        (
            "detector_checkpoint_files",
            CHECKPOINT_FILES,
            files_schema(),
        ),
    ] {
        let folder = path.rsplit_once('/').map_or(path, |(d, _)| d);
        if lake.list_parquet(folder).await?.is_empty() {
            ctx.register_table(table, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
        } else {
            ctx.register_parquet(
                table,
                lake.folder_url(folder),
                datafusion::prelude::ParquetReadOptions::default().schema(&schema),
            )
            .await?;
        }
    }
    let inputs = inputs_fingerprint(ctx).await?;
    register_strings(ctx, "stage_detector", "version", vec![detector.to_string()])?;
    // The sales files as this run starts: what its checkpoint will say it has seen (a file
    // arriving during the run is left for the next one to check).
    let files_now = strings(
        &collect(
            ctx,
            "SELECT DISTINCT CAST(source_file AS VARCHAR) FROM sales_raw ORDER BY 1",
        )
        .await?,
        0,
    )?;
    register_strings(ctx, "detector_files_now", "source_file", files_now.clone())?;
    let cps = collect(
        ctx,
        &format!(
            "SELECT store_id, read_from, resume_from, covered_to FROM detector_checkpoint \
             WHERE detector = {} AND inputs = {} ORDER BY store_id",
            sql_string(detector),
            sql_string(&inputs)
        ),
    )
    .await?;
    let (stores, read_from, resume_from, covered_to) = (
        strings(&cps, 0)?,
        micros(&cps, 1)?,
        micros(&cps, 2)?,
        micros(&cps, 3)?,
    );
    // What changed since the last run: the files it had not seen, unless its inputs
    // fingerprint differs or one of its files is gone (then the past itself changed).
    let seen: BTreeSet<String> = strings(
        &collect(ctx, "SELECT source_file FROM detector_checkpoint_files").await?,
        0,
    )?
    .into_iter()
    .collect();
    let now: BTreeSet<String> = files_now.iter().cloned().collect();
    let same_inputs = !strings(
        &collect(
            ctx,
            &format!(
                "SELECT DISTINCT inputs FROM detector_checkpoint WHERE inputs = {}",
                sql_string(&inputs)
            ),
        )
        .await?,
        0,
    )?
    .is_empty();
    let logs_kept = {
        let written = strings(
            &collect(ctx, "SELECT DISTINCT log_rows FROM detector_checkpoint").await?,
            0,
        )?;
        let current = log_rows(ctx).await?;
        written.len() == 1 && logs_cover(&current, &written[0])
    };
    let comparable =
        !options.full && !seen.is_empty() && seen.is_subset(&now) && same_inputs && logs_kept;
    let mut earliest_new: BTreeMap<String, i64> = BTreeMap::new();
    let mut earliest_any: Option<i64> = None;
    let new: Vec<String> = now.difference(&seen).map(|f| sql_string(f)).collect();
    if comparable && !new.is_empty() {
        let list = new.join(", ");
        let b = collect(
            ctx,
            &format!(
                "SELECT store_id, min(ts) FROM sales WHERE source_file IN ({list}) \
                 AND store_id IS NOT NULL GROUP BY store_id"
            ),
        )
        .await?;
        for (s, t) in strings(&b, 0)?.into_iter().zip(micros(&b, 1)?) {
            if let Some(t) = t {
                earliest_new.insert(s, t);
            }
        }
        let b = collect(
            ctx,
            &format!("SELECT min(ts) FROM sales WHERE source_file IN ({list})"),
        )
        .await?;
        earliest_any = micros(&b, 0)?.into_iter().flatten().next();
    }
    let mut valid: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    if comparable {
        for (i, store) in stores.iter().enumerate() {
            let (Some(read), Some(resume), Some(covered)) =
                (read_from[i], resume_from[i], covered_to[i])
            else {
                continue;
            };
            let hidden = options.as_of_micros.is_some_and(|h| covered > h);
            let late = earliest_new.get(store).is_some_and(|&t| t < resume);
            if !hidden && !late {
                valid.insert(store.clone(), (read, resume));
            }
        }
    }
    // The quarantine stage logs rows whose reason is new: with the same inputs and no file
    // gone, only rows sharing a bucket with the new files' rows can have one, or rows the last
    // run did not see (hidden by its --as-of: from its earliest `covered_to` on).
    let covered = micros(
        &collect(ctx, "SELECT min(covered_to) FROM detector_checkpoint").await?,
        0,
    )?
    .into_iter()
    .flatten()
    .next();
    // NULL timestamps are never contested: those rows come straight from the screening, and
    // the time bound stays a plain literal DataFusion pushes below the duplicate checks.
    let quarantine_sql = match (comparable, earliest_any.into_iter().chain(covered).min()) {
        (true, Some(t)) => format!(
            "SELECT * FROM sales_checked WHERE ts >= {} \
             UNION ALL SELECT retailer_id, store_id, sku, ts, units, revenue, source_file, reason, \
             warning FROM sales_screened WHERE ts IS NULL",
            sql_ts(t)
        ),
        _ => "SELECT * FROM sales_checked".to_string(),
    };
    ctx.sql(&format!(
        "CREATE OR REPLACE VIEW quarantine_sales AS {quarantine_sql}"
    ))
    .await?
    .collect()
    .await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("store_id", DataType::Utf8, false),
        Field::new("read_from", utc(), false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from_iter_values(valid.keys())),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(valid.values().map(|v| v.0))
                    .with_timezone("UTC"),
            ),
        ],
    )?;
    ctx.register_table(
        "detector_checkpoint_valid",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    // The clean sales detection reads, with literal bounds DataFusion can push down.
    let scope = match valid.values().map(|v| v.0).min() {
        None => "true".to_string(),
        Some(from) => {
            let full: Vec<String> = strings(
                &collect(
                    ctx,
                    "SELECT DISTINCT store_id FROM stores ORDER BY store_id",
                )
                .await?,
                0,
            )?
            .into_iter()
            .filter(|s| !valid.contains_key(s))
            .map(|s| sql_string(&s))
            .collect();
            if full.is_empty() {
                format!("ts >= {}", sql_ts(from))
            } else {
                format!(
                    "(ts >= {} OR store_id IN ({}))",
                    sql_ts(from),
                    full.join(", ")
                )
            }
        }
    };
    ctx.sql(&format!(
        "CREATE OR REPLACE VIEW detect_sales AS SELECT * FROM sales_clean WHERE {scope}"
    ))
    .await?
    .collect()
    .await?;
    register_strings(ctx, "detector_inputs", "inputs", vec![inputs])?;
    Ok(valid.len())
}

/// Replaces the detector checkpoints with this run's, after its logs and feeds are written (a
/// checkpoint must never be ahead of the logs: a resumed run only recomputes reports from its
/// resume point on). The checkpoint goes first, then the list of sales files it has seen: a
/// run killed between the two leaves an older list, which can only make the next run treat
/// more rows as late and recompute more.
pub async fn write(ctx: &SessionContext, lake: &Lake) -> Result<()> {
    let rows = sql_string(&log_rows(ctx).await?);
    let checkpoint_query = format!(
        "SELECT o.store_id, v.version AS detector, i.inputs, {rows} AS log_rows, \
         o.out['checkpoint'] AS checkpoint, o.out['read_from'] AS read_from, \
         o.out['resume_from'] AS resume_from, o.out['covered_to'] AS covered_to \
         FROM stage_detect_out o CROSS JOIN stage_detector v CROSS JOIN detector_inputs i \
         WHERE o.out['checkpoint'] IS NOT NULL ORDER BY o.store_id"
    );
    let files_query = "SELECT source_file FROM detector_files_now ORDER BY source_file";
    for (name, path, query) in [
        ("checkpoint", CHECKPOINT, checkpoint_query.as_str()),
        ("files", CHECKPOINT_FILES, files_query),
    ] {
        let staged = format!("state/_staging/detector_{name}.parquet");
        copy_renamed(ctx, lake, query, &staged, &lake.path(path)).await?;
    }
    Ok(())
}
