//! Protection feeds for outside readers (README "Protection feeds"), written at the end of a run.
//!
//! `mmm_protection` and `bandit_masks` are small (one row per report and SKU): each is one file,
//! `protection/<feed>/<feed>.parquet`, rewritten whole by every run. `protected_sales` is the
//! whole sales history with protection applied, so it is one file per UTC day of `ts`,
//! `protection/protected_sales/<YYYY-MM-DD>.parquet`, and a run rewrites only the days whose
//! rows can have changed since the feed was last written:
//!
//! | a day is rewritten when | known from |
//! |---|---|
//! | a sales file the last write had not seen holds a row of that day (new hour, late correction, re-sent cell) | the new files' rows only |
//! | a replaced cell (`mmm_protection` with `replace_by_baseline`) covering it appeared, went or changed (an event confirmed, rejected, re-attributed; a window grew or ended; a baseline moved) | the cells of the last write |
//! | `--as-of` moved (rows hidden before and not now, or the reverse): every day from the earlier bound on | the last write's bound |
//! | a row quarantined as `ts in the future` by the last write may be usable now: every day from its clock plus a day on | the last write's clock |
//!
//! and every day is rewritten (files of days without rows removed) on `mrs run --full`, when
//! there is no usable record of the last write (first run, a killed write, an older layout),
//! when a sales file the last write saw is gone, or when the stores, SKUs, holidays or bucket
//! grid changed (the detector's fingerprint). The record of the last write is `state/feeds/`:
//! the cells, the files and one row of metadata; the metadata is deleted before the first day
//! is touched and written after the last, so a write killed in between leaves no record and
//! the next run rewrites every day.
//!
//! Each day file is written aside (`protection/_staging/`) and renamed into place, so a reader
//! of the folder finds every day whole, from the previous write or this one, never a partial or
//! doubled day. Days are written in passes of a bounded number of sales rows (each pass sorts
//! and checks only its days), so the memory of a full rewrite does not grow with the history.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimestampMicrosecondType,
};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::file_options::parquet_writer::ParquetWriterOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::object_store::{ObjectStoreExt, PutPayload};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_writer::ArrowWriterOptions;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;

use crate::lake::Lake;
use crate::query::{collect, copy_renamed, micros, sql_string, sql_ts, strings, utc};

/// Feeds rewritten whole by every run, with the query that gives their rows in file order.
pub const WHOLE_FEEDS: &[(&str, &str)] = &[
    (
        "mmm_protection",
        "SELECT * FROM mmm_protection ORDER BY event_id, store_id, sku, cell_start",
    ),
    (
        "bandit_masks",
        "SELECT * FROM bandit_masks ORDER BY arm_type, arm_id, mask_start, event_id",
    ),
];

/// The feed written by day.
pub const DAILY_FEED: &str = "protected_sales";

/// Tag of the day layout and of its record: another tag (or none) means a full rewrite.
const LAYOUT: &str = "protected_sales by day 1";
const STATE_META: &str = "state/feeds/meta.parquet";
const STATE_CELLS: &str = "state/feed_cells/cells.parquet";
const STATE_FILES: &str = "state/feed_files/files.parquet";

const DAY_US: i64 = 86_400_000_000;
/// Sales rows per write pass: bounds a pass's sort and duplicate checks (a day is never split).
const PASS_ROWS: i64 = 3_000_000;

/// The replaced cells `protected_sales` joins, in fixed types (what a day's rows depend on
/// besides its sales).
const CELLS_SQL: &str = "SELECT CAST(store_id AS VARCHAR) AS store_id, CAST(sku AS VARCHAR) AS sku, \
     CAST(cell_start AS TIMESTAMP(6) WITH TIME ZONE) AS cell_start, \
     CAST(cell_end AS TIMESTAMP(6) WITH TIME ZONE) AS cell_end, \
     CAST(baseline_units_per_bucket AS DOUBLE) AS units, CAST(event_id AS VARCHAR) AS event_id, \
     CAST(cause AS VARCHAR) AS cause \
     FROM mmm_protection WHERE action = 'replace_by_baseline' \
     ORDER BY store_id, sku, cell_start, event_id";

fn cells_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("store_id", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("cell_start", utc(), true),
        Field::new("cell_end", utc(), true),
        Field::new("units", DataType::Float64, true),
        Field::new("event_id", DataType::Utf8, true),
        Field::new("cause", DataType::Utf8, true),
    ]))
}

fn files_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "source_file",
        DataType::Utf8,
        false,
    )]))
}

fn meta_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("layout", DataType::Utf8, false),
        Field::new("inputs", DataType::Utf8, false),
        Field::new("hide_from", utc(), true),
        Field::new("clock", utc(), false),
    ]))
}

/// What one run did to the feeds, for the run summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedWrite {
    /// Day files of `protected_sales` written (a full rewrite writes every day).
    pub days_written: i64,
    /// Day files removed (days left without rows, an older layout's file).
    pub files_removed: i64,
    /// Whether every day was rewritten.
    pub full: bool,
}

/// What a run knows when it writes the feeds.
#[derive(Debug, Clone, Copy)]
pub struct FeedRun {
    /// `mrs run --full`.
    pub full: bool,
    /// `--as-of`: sales buckets from this instant on are hidden.
    pub hide_from: Option<i64>,
    /// The run's clock (`run_context.written_at`).
    pub clock: i64,
}

/// The record of the last write of `protected_sales`.
struct Previous {
    cells: Vec<RecordBatch>,
    files: BTreeSet<String>,
    inputs: String,
    hide_from: Option<i64>,
    clock: i64,
}

/// Writes every feed: the small ones whole, `protected_sales` by day.
pub async fn write(ctx: &SessionContext, lake: &Lake, run: FeedRun) -> Result<FeedWrite> {
    for (feed, query) in WHOLE_FEEDS {
        write_whole(ctx, lake, feed, query).await?;
    }
    write_daily(ctx, lake, run).await
}

/// One file written aside and renamed over the old one (an atomic replace on the local file
/// system, a server-side copy on S3), then any other file of the feed's folder (an older
/// layout) removed. A run killed on the way leaves the previous feed in place.
async fn write_whole(ctx: &SessionContext, lake: &Lake, feed: &str, query: &str) -> Result<()> {
    let store = lake.store();
    let staged = format!("protection/_staging/{feed}.parquet");
    let target = lake.path(&format!("protection/{feed}/{feed}.parquet"));
    copy_renamed(ctx, lake, query, &staged, &target).await?;
    for other in lake.list_parquet(&format!("protection/{feed}")).await? {
        if other != target {
            store.delete(&other).await.map_err(object_error)?;
        }
    }
    Ok(())
}

fn object_error(e: datafusion::object_store::Error) -> DataFusionError {
    DataFusionError::ObjectStore(Box::new(e))
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
fn day_name(day: i64) -> Result<String> {
    chrono::DateTime::from_timestamp_micros(day.saturating_mul(DAY_US))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .ok_or_else(|| DataFusionError::Execution(format!("day {day} is out of range")))
}

/// The day number of a day file's name, `None` for any other name.
fn day_of_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".parquet")?;
    let date = chrono::NaiveDate::parse_from_str(stem, "%Y-%m-%d").ok()?;
    (date.format("%Y-%m-%d").to_string() == stem).then(|| {
        date.signed_duration_since(chrono::NaiveDate::default())
            .num_days()
    })
}

/// Half-open day intervals `[from, to)`, merged and sorted; `to == i64::MAX`: no end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Days(Vec<(i64, i64)>);

impl Days {
    fn add(&mut self, from: i64, to: i64) {
        if from < to {
            self.0.push((from, to));
        }
    }

    fn merged(mut self) -> Self {
        self.0.sort_unstable();
        let mut out: Vec<(i64, i64)> = Vec::new();
        for (a, b) in self.0 {
            match out.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        Self(out)
    }

    fn contains(&self, day: i64) -> bool {
        self.0.iter().any(|&(a, b)| a <= day && day < b)
    }

    /// A literal predicate on `ts` DataFusion can push below the duplicate checks.
    fn predicate(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|&(a, b)| {
                let from = format!("ts >= {}", sql_ts(a.saturating_mul(DAY_US)));
                if b == i64::MAX {
                    from
                } else {
                    format!("({from} AND ts < {})", sql_ts(b.saturating_mul(DAY_US)))
                }
            })
            .collect();
        if parts.is_empty() {
            "false".to_string()
        } else {
            format!("({})", parts.join(" OR "))
        }
    }
}

/// Reads one of the record's tables, `None` when absent.
async fn read_state(
    ctx: &SessionContext,
    lake: &Lake,
    path: &str,
    schema: &SchemaRef,
) -> Result<Option<Vec<RecordBatch>>> {
    let folder = path.rsplit_once('/').map_or(path, |(d, _)| d);
    if !lake.list_parquet(folder).await?.contains(&lake.path(path)) {
        return Ok(None);
    }
    let batches = ctx
        .read_parquet(
            format!("{}/{path}", lake.url()),
            ParquetReadOptions::default().schema(schema),
        )
        .await?
        .collect()
        .await?;
    Ok(Some(batches))
}

/// The record of the last write, `None` when there is none of this layout (then every day is
/// rewritten). An unreadable record is no record: the feed is derived, a full rewrite repairs it.
async fn previous(ctx: &SessionContext, lake: &Lake) -> Result<Option<Previous>> {
    let read = async {
        let Some(meta) = read_state(ctx, lake, STATE_META, &meta_schema()).await? else {
            return Ok::<_, DataFusionError>(None);
        };
        let (layout, inputs) = (strings(&meta, 0)?, strings(&meta, 1)?);
        let (hide_from, clock) = (micros(&meta, 2)?, micros(&meta, 3)?);
        if layout.len() != 1 || layout[0] != LAYOUT || inputs.len() != 1 {
            return Ok(None);
        }
        let Some(Some(clock)) = clock.first().copied() else {
            return Ok(None);
        };
        let (Some(cells), Some(files)) = (
            read_state(ctx, lake, STATE_CELLS, &cells_schema()).await?,
            read_state(ctx, lake, STATE_FILES, &files_schema()).await?,
        ) else {
            return Ok(None);
        };
        Ok(Some(Previous {
            cells,
            files: strings(&files, 0)?.into_iter().collect(),
            inputs: inputs[0].clone(),
            hide_from: hide_from.first().copied().flatten(),
            clock,
        }))
    };
    match read.await {
        Ok(p) => Ok(p),
        Err(e) => {
            log::warn!(
                "the record of the last protected_sales write is unreadable ({e}): rewriting every day"
            );
            Ok(None)
        }
    }
}

/// Each cell's row bytes (every column: a cell changed if any value did) and its `ts` range.
type CellRanges = BTreeMap<Vec<u8>, (Option<i64>, Option<i64>)>;

fn cell_rows(batches: &[RecordBatch]) -> Result<CellRanges> {
    let schema = cells_schema();
    let converter = RowConverter::new(
        schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )?;
    let mut out = BTreeMap::new();
    for b in batches {
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| cast(b.column(i), f.data_type()))
            .collect::<std::result::Result<_, _>>()?;
        let rows = converter.convert_columns(&columns)?;
        let start = columns[2].as_primitive::<TimestampMicrosecondType>();
        let end = columns[3].as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            out.insert(
                rows.row(i).as_ref().to_vec(),
                (
                    start.is_valid(i).then(|| start.value(i)),
                    end.is_valid(i).then(|| end.value(i)),
                ),
            );
        }
    }
    Ok(out)
}

/// The days whose rows can differ from the last write (module docs), or `None`: every day.
async fn dirty_days(
    ctx: &SessionContext,
    run: FeedRun,
    previous: Option<&Previous>,
    cells: &[RecordBatch],
    files_now: &BTreeSet<String>,
    inputs: &str,
) -> Result<Option<Days>> {
    let Some(prev) = previous else {
        return Ok(None);
    };
    if run.full || prev.inputs != inputs || !prev.files.is_subset(files_now) {
        return Ok(None);
    }
    let mut days = Days::default();
    let new: Vec<String> = files_now
        .difference(&prev.files)
        .map(|f| sql_string(f))
        .collect();
    if !new.is_empty() {
        let b = collect(
            ctx,
            &format!(
                "SELECT DISTINCT date_trunc('day', ts) FROM sales \
                 WHERE ts IS NOT NULL AND source_file IN ({})",
                new.join(", ")
            ),
        )
        .await?;
        for t in micros(&b, 0)?.into_iter().flatten() {
            let d = t.div_euclid(DAY_US);
            days.add(d, d + 1);
        }
    }
    let (old, now) = (cell_rows(&prev.cells)?, cell_rows(cells)?);
    for (key, range) in old.iter().chain(now.iter()) {
        if old.contains_key(key) && now.contains_key(key) {
            continue;
        }
        let (Some(start), end) = *range else {
            continue;
        };
        let from = start.div_euclid(DAY_US);
        // cell_end is exclusive; an open cell covers every later bucket.
        let to = end.map_or(i64::MAX, |e| (e - 1).div_euclid(DAY_US) + 1);
        days.add(from, to.max(from + 1));
    }
    if prev.hide_from != run.hide_from {
        let earlier = match (prev.hide_from, run.hide_from) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(i64::MIN),
        };
        days.add(earlier.div_euclid(DAY_US), i64::MAX);
    }
    days.add(
        prev.clock.saturating_add(DAY_US).div_euclid(DAY_US),
        i64::MAX,
    );
    Ok(Some(days.merged()))
}

/// Parquet bytes of batches, with the session's Parquet writer options (as `COPY` writes).
fn parquet_bytes(
    ctx: &SessionContext,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>> {
    let mut table_options = ctx.state().table_options().parquet.clone();
    table_options.arrow_schema(schema);
    let options = ParquetWriterOptions::try_from(&table_options)?;
    // The schema is in the key-value metadata already (as DataFusion's own sink does).
    let mut writer = ArrowWriter::try_new_with_options(
        Vec::new(),
        Arc::clone(schema),
        ArrowWriterOptions::new()
            .with_properties(options.writer_options().clone())
            .with_skip_arrow_metadata(true),
    )?;
    // One batch per file, so the pages (and bytes) do not depend on how batches were cut.
    let one = concat_batches(schema, batches)?;
    writer.write(&one)?;
    Ok(writer.into_inner()?)
}

/// Puts a file aside and renames it into place: a reader never sees it partial.
async fn put_renamed(lake: &Lake, staged: &str, target: &str, bytes: Vec<u8>) -> Result<()> {
    let store = lake.store();
    store
        .put(&lake.path(staged), PutPayload::from(bytes))
        .await
        .map_err(object_error)?;
    store
        .rename(&lake.path(staged), &lake.path(target))
        .await
        .map_err(object_error)
}

async fn write_state(
    ctx: &SessionContext,
    lake: &Lake,
    path: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    let bytes = parquet_bytes(ctx, schema, batches)?;
    let name = path.replace('/', "_");
    put_renamed(lake, &format!("state/_staging/{name}"), path, bytes).await
}

/// Sales rows per day (all rows, usable or not: an estimate to size the passes) in `days`.
async fn rows_per_day(ctx: &SessionContext, days: Option<&Days>) -> Result<BTreeMap<i64, i64>> {
    let filter = days.map_or("ts IS NOT NULL".to_string(), Days::predicate);
    let b = collect(
        ctx,
        &format!(
            "SELECT date_trunc('day', ts) AS d, count(*) AS n FROM sales WHERE {filter} GROUP BY 1"
        ),
    )
    .await?;
    let mut out = BTreeMap::new();
    for batch in &b {
        let d = micros(std::slice::from_ref(batch), 0)?;
        let n = cast(batch.column(1), &DataType::Int64)?;
        let n = n.as_primitive::<Int64Type>();
        for (i, d) in d.into_iter().enumerate() {
            if let Some(d) = d {
                out.insert(d.div_euclid(DAY_US), n.value(i));
            }
        }
    }
    Ok(out)
}

/// Writes `protected_sales` by day, rewriting only the days that can have changed.
async fn write_daily(ctx: &SessionContext, lake: &Lake, run: FeedRun) -> Result<FeedWrite> {
    let store = lake.store();
    let folder = format!("protection/{DAILY_FEED}");
    let cells = collect(ctx, CELLS_SQL).await?;
    let files_now: BTreeSet<String> = strings(
        &collect(ctx, "SELECT source_file FROM detector_files_now").await?,
        0,
    )?
    .into_iter()
    .collect();
    let inputs = strings(
        &collect(ctx, "SELECT inputs FROM detector_inputs").await?,
        0,
    )?
    .into_iter()
    .next()
    .ok_or_else(|| DataFusionError::Internal("no detector_inputs row".into()))?;
    let prev = previous(ctx, lake).await?;
    let dirty = dirty_days(ctx, run, prev.as_ref(), &cells, &files_now, &inputs).await?;
    let existing = lake.list_parquet(&folder).await?;
    if let Some(days) = &dirty
        && days.0.is_empty()
    {
        return Ok(FeedWrite::default());
    }

    // From here until the new record is written, the days on disk are a mix of two writes.
    if prev.is_some() {
        store
            .delete(&lake.path(STATE_META))
            .await
            .map_err(object_error)?;
    }
    let per_day = rows_per_day(ctx, dirty.as_ref()).await?;
    // Passes of whole days, at most PASS_ROWS sales rows each (one day may exceed it).
    let mut passes: Vec<Days> = Vec::new();
    let mut rows_in_pass = i64::MAX;
    for (&day, &n) in &per_day {
        if rows_in_pass.saturating_add(n) > PASS_ROWS {
            passes.push(Days::default());
            rows_in_pass = 0;
        }
        rows_in_pass += n;
        if let Some(pass) = passes.last_mut() {
            pass.add(day, day + 1);
        }
    }
    let mut written = BTreeSet::new();
    for pass in passes {
        let pass = pass.merged();
        write_days(ctx, lake, &pass, &mut written).await?;
    }

    // Files of rewritten days that have no rows now, and any file not named by a day.
    let mut removed = 0;
    for path in existing {
        let name = path.filename().unwrap_or_default();
        let stale = match (day_of_name(name), &dirty) {
            (None, _) => true,
            (Some(d), None) => !written.contains(&d),
            (Some(d), Some(days)) => days.contains(d) && !written.contains(&d),
        };
        if stale {
            store.delete(&path).await.map_err(object_error)?;
            removed += 1;
        }
    }
    if lake.list_parquet(&folder).await?.is_empty() {
        // No sales row at all: one empty file keeps the schema for readers of the folder.
        write_days(ctx, lake, &Days::default(), &mut written).await?;
    }

    write_state(
        ctx,
        lake,
        STATE_CELLS,
        &cells_schema(),
        &cells_typed(&cells)?,
    )
    .await?;
    let files = RecordBatch::try_new(
        files_schema(),
        vec![Arc::new(StringArray::from_iter_values(files_now.iter()))],
    )?;
    write_state(ctx, lake, STATE_FILES, &files_schema(), &[files]).await?;
    let meta = RecordBatch::try_new(
        meta_schema(),
        vec![
            Arc::new(StringArray::from(vec![LAYOUT])),
            Arc::new(StringArray::from(vec![inputs])),
            Arc::new(TimestampMicrosecondArray::from(vec![run.hide_from]).with_timezone("UTC")),
            Arc::new(TimestampMicrosecondArray::from(vec![run.clock]).with_timezone("UTC")),
        ],
    )?;
    write_state(ctx, lake, STATE_META, &meta_schema(), &[meta]).await?;
    Ok(FeedWrite {
        days_written: written.len() as i64,
        files_removed: removed,
        full: dirty.is_none(),
    })
}

fn cells_typed(cells: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    let schema = cells_schema();
    cells
        .iter()
        .map(|b| {
            let columns: Vec<ArrayRef> = schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| cast(b.column(i), f.data_type()))
                .collect::<std::result::Result<_, _>>()?;
            Ok(RecordBatch::try_new(Arc::clone(&schema), columns)?)
        })
        .collect()
}

/// Writes the day files of `days` (sorted by store, SKU, bucket within a day). With no days,
/// writes one empty file, `empty.parquet`, with the feed's schema.
async fn write_days(
    ctx: &SessionContext,
    lake: &Lake,
    days: &Days,
    written: &mut BTreeSet<i64>,
) -> Result<()> {
    let df = ctx
        .sql(&format!(
            "SELECT * FROM {DAILY_FEED} WHERE {} \
             ORDER BY date_trunc('day', ts), store_id, sku, ts, event_id",
            days.predicate()
        ))
        .await?;
    let mut stream = df.execute_stream().await?;
    let schema = stream.schema();
    let ts_index = schema.index_of("ts")?;
    let mut current: Option<(i64, Vec<RecordBatch>)> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let ts = cast(batch.column(ts_index), &utc())?;
        let ts = ts.as_primitive::<TimestampMicrosecondType>();
        let mut start = 0;
        while start < batch.num_rows() {
            if ts.is_null(start) {
                return Err(DataFusionError::Internal(
                    "protected_sales has a row without ts".into(),
                ));
            }
            let day = ts.value(start).div_euclid(DAY_US);
            let mut end = start + 1;
            while end < batch.num_rows()
                && ts.is_valid(end)
                && ts.value(end).div_euclid(DAY_US) == day
            {
                end += 1;
            }
            let slice = batch.slice(start, end - start);
            match &mut current {
                Some((d, rows)) if *d == day => rows.push(slice),
                _ => {
                    if let Some((d, rows)) = current.take() {
                        write_day(ctx, lake, &schema, d, &rows).await?;
                        written.insert(d);
                    }
                    current = Some((day, vec![slice]));
                }
            }
            start = end;
        }
    }
    if let Some((d, rows)) = current.take() {
        write_day(ctx, lake, &schema, d, &rows).await?;
        written.insert(d);
    } else if days.0.is_empty() {
        let bytes = parquet_bytes(ctx, &schema, &[])?;
        put_renamed(
            lake,
            &format!("protection/_staging/{DAILY_FEED}-empty.parquet"),
            &format!("protection/{DAILY_FEED}/empty.parquet"),
            bytes,
        )
        .await?;
    }
    Ok(())
}

async fn write_day(
    ctx: &SessionContext,
    lake: &Lake,
    schema: &SchemaRef,
    day: i64,
    rows: &[RecordBatch],
) -> Result<()> {
    let name = day_name(day)?;
    let bytes = parquet_bytes(ctx, schema, rows)?;
    put_renamed(
        lake,
        &format!("protection/_staging/{DAILY_FEED}-{name}.parquet"),
        &format!("protection/{DAILY_FEED}/{name}.parquet"),
        bytes,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_names_round_trip() {
        let day = 1_748_822_400_000_000 / DAY_US;
        assert_eq!(day_name(day).ok().as_deref(), Some("2025-06-02"));
        assert_eq!(day_of_name("2025-06-02.parquet"), Some(day));
        assert_eq!(day_of_name("protected_sales.parquet"), None);
        assert_eq!(day_of_name("2025-6-2.parquet"), None);
        assert_eq!(day_of_name("empty.parquet"), None);
    }

    #[test]
    fn day_intervals_merge() {
        let mut d = Days::default();
        d.add(5, 6);
        d.add(1, 3);
        d.add(3, 4);
        d.add(10, i64::MAX);
        d.add(12, 13);
        d.add(7, 7);
        let d = d.merged();
        assert_eq!(d.0, vec![(1, 4), (5, 6), (10, i64::MAX)]);
        assert!(d.contains(3) && !d.contains(4) && d.contains(1_000_000));
    }
}
