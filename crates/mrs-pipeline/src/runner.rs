//! `mrs run`: pending migrations, then every stage script in order, then the protection feeds.
//!
//! Each stage appends only snapshots that differ from the latest one in its log, so a second
//! run over unchanged input appends nothing (and records no run). A failed statement stops the
//! run with the script and statement named, and a non-zero exit in the CLI.
//!
//! A run holds the lake's lease ([`crate::lease`]) from before the migrations until its feeds
//! are written, so concurrent runs take turns. A run killed at any point leaves only whole
//! files (every object is written by one atomic put or rename) and the next run completes the
//! work: stages compare with the latest snapshots, one-time migration inserts write files of
//! fixed names, and feeds are replaced by a rename.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::lake::Lake;
use crate::lease::{Lease, LeaseConfig};
use crate::migrations;
use crate::query::{collect, i64s, micros};
use crate::script::{STAGES, VIEWS, run_script, run_statement, run_views};
use crate::session::{new_context, session_config};

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run as if at this instant: sales buckets at or after it are not seen.
    pub as_of_micros: Option<i64>,
    /// Ignore the detector checkpoints: every store is detected from its whole history, in one
    /// pass (never a backfill).
    pub full: bool,
    /// When a lake's first run goes as a backfill.
    pub backfill: Backfill,
}

/// A lake's first run over a long history is a *backfill*: the pipeline runs as of the end of
/// each slice of days in turn, every slice after the first resuming from the checkpoints the
/// one before wrote, as a scheduled run would have. Its memory is then that of a slice plus the
/// detector's look-back, not of the whole history; its reports are those of one pass (the
/// incremental runs' guarantee, `tests/replay.rs`). Only a first run (no log row, no
/// checkpoint) without `--as-of` or `--full`: a slice of a later run would hide buckets the logs
/// already hold. README "Backfill".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backfill {
    /// Sales rows (usable timestamps) above which a first run is a backfill.
    pub min_rows: i64,
    /// Days with usable sales the first slice covers: the detector's four-week look-back plus
    /// one slice, so that it reads no more than a later slice.
    pub first_days: i64,
    /// Days with usable sales each later slice adds.
    pub slice_days: i64,
}

impl Default for Backfill {
    /// 8M rows: the `small` preset (5M rows) runs in one pass, `bench` (21.5M) in slices; two
    /// weeks a slice keeps a slice's read near six weeks of sales.
    fn default() -> Self {
        Self {
            min_rows: 8_000_000,
            first_days: 42,
            slice_days: 14,
        }
    }
}

/// What a run did, for the summary line and `mrs run --format json`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RunSummary {
    pub run_id: String,
    pub as_of: Option<String>,
    pub migrations_applied: Vec<String>,
    pub reports_new: i64,
    pub reports_updated: i64,
    pub reports_ended: i64,
    pub reports_retracted: i64,
    pub events: i64,
    pub events_changed: i64,
    pub auto_confirmed: i64,
    pub waiting_for_review: i64,
    pub quarantined: i64,
    pub rows_appended: i64,
    /// Stores detected from their checkpoint (the others from their whole history).
    pub stores_resumed: i64,
    /// Sales rows the detector read (a resumed store reads only its look-back).
    pub detection_rows: i64,
    /// Day files of the `protected_sales` feed this run wrote (every day on a full rewrite,
    /// only the days that can have changed otherwise).
    pub feed_days_written: i64,
    /// Wall time of each phase, in run order (`setup`: inputs, migrations and views; one entry
    /// per stage script; `summary`; `feeds`), summed over a backfill's slices. For benchmarks:
    /// never compare it in tests.
    pub stage_seconds: Vec<(String, f64)>,
    /// Pipeline passes of this run: 1, or a backfill's slices (the counts above are then
    /// summed over the slices, `events` and `waiting_for_review` are the last slice's).
    pub slices: i64,
}

impl RunSummary {
    /// Folds the next slice of a backfill into the summary so far.
    fn absorb(&mut self, next: RunSummary) {
        self.run_id = next.run_id;
        self.as_of = next.as_of;
        self.migrations_applied.extend(next.migrations_applied);
        self.reports_new += next.reports_new;
        self.reports_updated += next.reports_updated;
        self.reports_ended += next.reports_ended;
        self.reports_retracted += next.reports_retracted;
        self.events = next.events;
        self.events_changed += next.events_changed;
        self.auto_confirmed += next.auto_confirmed;
        self.waiting_for_review = next.waiting_for_review;
        self.quarantined += next.quarantined;
        self.rows_appended += next.rows_appended;
        self.stores_resumed += next.stores_resumed;
        self.detection_rows += next.detection_rows;
        self.feed_days_written += next.feed_days_written;
        for (name, seconds) in next.stage_seconds {
            match self.stage_seconds.iter_mut().find(|(n, _)| *n == name) {
                Some((_, s)) => *s += seconds,
                None => self.stage_seconds.push((name, seconds)),
            }
        }
        self.slices += next.slices;
    }
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} as of {}{}: reports {} new, {} updated, {} ended, {} retracted; events {} ({} changed); \
             {} auto-confirmed, {} waiting for review; {} rows quarantined; {} log rows appended",
            self.run_id,
            self.as_of.as_deref().unwrap_or("-"),
            if self.slices > 1 {
                format!(" (a backfill in {} slices)", self.slices)
            } else {
                String::new()
            },
            self.reports_new,
            self.reports_updated,
            self.reports_ended,
            self.reports_retracted,
            self.events,
            self.events_changed,
            self.auto_confirmed,
            self.waiting_for_review,
            self.quarantined,
            self.rows_appended
        )
    }
}

/// Every log a stage appends to (the runs log aside).
pub const LOGS: &[&str] = &[
    "quarantine_log",
    "minority_reports_detected_log",
    "minority_event_ended_log",
    "minority_reports_clustered_log",
    "minority_reports_proposed_attribution_log",
    "minority_reports_cohort_log",
    "minority_decisions_log",
    "minority_events_log",
];

/// Protection feeds written under `<lake>/protection/<feed>/` for outside readers, with the
/// query of their rows ([`crate::feeds`] writes them: the small ones whole, `protected_sales`
/// by day).
pub const FEEDS: &[(&str, &str)] = &[
    crate::feeds::WHOLE_FEEDS[0],
    crate::feeds::WHOLE_FEEDS[1],
    (
        crate::feeds::DAILY_FEED,
        "SELECT * FROM protected_sales ORDER BY store_id, sku, ts",
    ),
];

async fn scalar_i64(ctx: &SessionContext, sql: &str) -> Result<i64> {
    let batches = collect(ctx, sql).await?;
    Ok(i64s(&batches, 0)?.into_iter().next().flatten().unwrap_or(0))
}

async fn scalar_ts(ctx: &SessionContext, sql: &str) -> Result<Option<i64>> {
    let batches = collect(ctx, sql).await?;
    Ok(micros(&batches, 0)?.into_iter().next().flatten())
}

async fn total_log_rows(ctx: &SessionContext) -> Result<i64> {
    let mut total = 0;
    for log in LOGS {
        total += scalar_i64(ctx, &format!("SELECT count(*) FROM {log}"))
            .await
            .map_err(|e| DataFusionError::Execution(format!("reading log {log}: {e}")))?;
    }
    Ok(total)
}

fn run_context_table(
    run_id: &str,
    as_of: i64,
    written_at: i64,
    options: &RunOptions,
) -> Result<MemTable> {
    let ts = DataType::Timestamp(
        datafusion::arrow::datatypes::TimeUnit::Microsecond,
        Some("UTC".into()),
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("as_of", ts.clone(), false),
        Field::new("written_at", ts.clone(), false),
        Field::new("weekend", DataType::Boolean, false),
        // `--as-of`: sales buckets from this instant on are hidden (NULL: none).
        Field::new("hide_from", ts, true),
        Field::new("full_recompute", DataType::Boolean, false),
    ]));
    let weekday = chrono::DateTime::from_timestamp_micros(as_of)
        .map(|d| chrono::Datelike::weekday(&d.date_naive()))
        .ok_or_else(|| DataFusionError::Execution(format!("as_of {as_of} is out of range")))?;
    let weekend = matches!(weekday, chrono::Weekday::Sat | chrono::Weekday::Sun);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![run_id])),
        Arc::new(TimestampMicrosecondArray::from(vec![as_of]).with_timezone("UTC")),
        Arc::new(TimestampMicrosecondArray::from(vec![written_at]).with_timezone("UTC")),
        Arc::new(BooleanArray::from(vec![weekend])),
        Arc::new(TimestampMicrosecondArray::from(vec![options.as_of_micros]).with_timezone("UTC")),
        Arc::new(BooleanArray::from(vec![options.full])),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    MemTable::try_new(schema, vec![vec![batch]])
}

/// Runs the whole pipeline once over a lake, holding its lease (configured from the
/// environment, see [`LeaseConfig::from_env`]).
pub async fn run(lake: &Lake, options: &RunOptions) -> Result<RunSummary> {
    run_with_lease(lake, options, &LeaseConfig::from_env()?).await
}

/// [`run`] with an explicit lease configuration.
pub async fn run_with_lease(
    lake: &Lake,
    options: &RunOptions,
    lease_config: &LeaseConfig,
) -> Result<RunSummary> {
    let holder = format!(
        "mrs-run-{}",
        &blake3::hash(
            format!(
                "{}|{}|{}",
                lake.url(),
                std::process::id(),
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
            )
            .as_bytes()
        )
        .to_hex()[..12]
    );
    let lease = Lease::acquire(lake, &holder, lease_config).await?;
    let result = run_slices(lake, options, &lease).await;
    let released = lease.release().await;
    let summary = result?;
    released?;
    Ok(summary)
}

/// One pass, or a backfill's passes as of the end of each slice and a last one over everything.
async fn run_slices(lake: &Lake, options: &RunOptions, lease: &Lease) -> Result<RunSummary> {
    let ends = backfill_slice_ends(lake, options).await?;
    if ends.is_empty() {
        return run_leased(lake, options, lease).await;
    }
    log::info!(
        "first run over a long history: a backfill in {} slices",
        ends.len() + 1
    );
    let mut summary: Option<RunSummary> = None;
    for as_of in ends.into_iter().map(Some).chain([None]) {
        let slice = RunOptions {
            as_of_micros: as_of,
            ..options.clone()
        };
        let next = run_leased(lake, &slice, lease).await?;
        match summary.as_mut() {
            Some(s) => s.absorb(next),
            None => summary = Some(next),
        }
    }
    summary.ok_or_else(|| DataFusionError::Internal("a backfill ran no slice".into()))
}

/// The `--as-of` instants of a backfill's slices before its last (empty: one pass). See
/// [`Backfill`].
async fn backfill_slice_ends(lake: &Lake, options: &RunOptions) -> Result<Vec<i64>> {
    let policy = options.backfill;
    if options.full || options.as_of_micros.is_some() || policy.slice_days < 1 {
        return Ok(Vec::new());
    }
    for folder in LOGS
        .iter()
        .map(|log| format!("logs/{log}"))
        .chain(["state/detector".to_string()])
    {
        if !lake.list_parquet(&folder).await?.is_empty() {
            return Ok(Vec::new());
        }
    }
    let ctx = new_context(session_config())?;
    lake.register_object_store(&ctx)?;
    lake.register_inputs(&ctx, None).await?;
    // `sales_screened` (the input checks; views/00_inputs.sql reads the inputs alone): rows a
    // run will quarantine, such as a timestamp far in the future, must not stretch the slices.
    run_script(&ctx, lake, &VIEWS[0]).await?;
    // One scan: the usable rows per day. Slices count days that have sales, so a stray row
    // years before the rest (usable: only the future is checked) adds one day to the first
    // slice, not years of empty slices.
    let batches = collect(
        &ctx,
        "SELECT date_trunc('day', ts) AS day_start, count(*) AS n \
         FROM sales_screened WHERE reason IS NULL AND ts IS NOT NULL GROUP BY 1 ORDER BY 1",
    )
    .await?;
    let days: Vec<i64> = micros(&batches, 0)?.into_iter().flatten().collect();
    let rows: i64 = i64s(&batches, 1)?.into_iter().flatten().sum();
    if rows <= policy.min_rows {
        return Ok(Vec::new());
    }
    let first = usize::try_from(policy.first_days.max(1)).unwrap_or(usize::MAX);
    let step = usize::try_from(policy.slice_days).unwrap_or(usize::MAX);
    // The start of the day each slice stops before: sales remain from there on.
    Ok(days.into_iter().skip(first).step_by(step).collect())
}

async fn run_leased(lake: &Lake, options: &RunOptions, lease: &Lease) -> Result<RunSummary> {
    lake.remove_stale_staging_files().await?;
    let mut clock = std::time::Instant::now();
    let mut stage_seconds = Vec::new();
    let mut lap = |name: &str| {
        let now = std::time::Instant::now();
        stage_seconds.push((name.to_string(), (now - clock).as_secs_f64()));
        clock = now;
    };
    let ctx = new_context(session_config())?;
    lake.register_object_store(&ctx)?;
    lake.register_inputs(&ctx, options.as_of_micros).await?;
    let migrations_applied = migrations::apply(&ctx, lake).await?;
    run_views(&ctx, lake).await?;

    // as_of: the given instant, else the latest bucket of sales seen.
    let as_of = match options.as_of_micros {
        Some(t) => Some(t),
        // The latest usable bucket: of the screened rows (a contested bucket keeps one row, so
        // this equals sales_clean's, without its duplicate checks over the whole history).
        None => {
            scalar_ts(
                &ctx,
                "SELECT max(ts) FROM sales_screened WHERE reason IS NULL",
            )
            .await?
        }
    };
    let written_at = chrono::Utc::now().timestamp_micros();
    let as_of_value = as_of.unwrap_or(written_at);
    let run_id = format!(
        "R-{}-{}",
        chrono::DateTime::from_timestamp_micros(written_at)
            .map(|d| d.format("%Y%m%dT%H%M%S%.6fZ").to_string())
            .unwrap_or_default(),
        &blake3::hash(format!("{}|{as_of_value}|{written_at}", lake.url()).as_bytes()).to_hex()
            [..8]
    );
    ctx.register_table(
        "run_context",
        Arc::new(run_context_table(
            &run_id,
            as_of_value,
            written_at,
            options,
        )?),
    )?;
    crate::checkpoint::prepare(&ctx, lake, options, mrs_detect::DETECTOR_VERSION).await?;

    let before = total_log_rows(&ctx).await?;
    lap("setup");
    for stage in STAGES {
        lease.check()?;
        log::info!("stage {}", stage.name);
        run_script(&ctx, lake, stage).await?;
        lap(stage.name);
    }
    lease.check()?;
    let appended = total_log_rows(&ctx).await? - before;

    let q = |sql: String| {
        let ctx = &ctx;
        async move { scalar_i64(ctx, &sql).await }
    };
    let this = format!("run_id = '{run_id}'");
    let reports_new = q(format!(
        "SELECT count(DISTINCT report_id) FROM minority_reports_detected_log WHERE {this} \
         AND status <> 'retracted' AND report_id NOT IN (SELECT report_id FROM \
         minority_reports_detected_log WHERE run_id <> '{run_id}')"
    ))
    .await?;
    let touched = q(format!(
        "SELECT count(DISTINCT report_id) FROM minority_reports_detected_log WHERE {this} AND status <> 'retracted'"
    ))
    .await?;
    let mut summary = RunSummary {
        run_id: run_id.clone(),
        as_of: as_of.map(mrs_core::identity::rfc3339_utc_micros),
        migrations_applied,
        reports_new,
        reports_updated: touched - reports_new,
        reports_ended: q(format!("SELECT count(*) FROM minority_event_ended_log WHERE {this}")).await?,
        reports_retracted: q(format!(
            "SELECT count(*) FROM minority_reports_detected_log WHERE {this} AND status = 'retracted'"
        ))
        .await?,
        events: q("SELECT count(*) FROM minority_events".into()).await?,
        events_changed: q(format!("SELECT count(*) FROM minority_events_log WHERE {this}")).await?,
        auto_confirmed: q(format!(
            "SELECT count(*) FROM minority_decisions_log WHERE {this} AND decided_by = 'automation' AND action = 'confirm'"
        ))
        .await?,
        waiting_for_review: q("SELECT count(*) FROM minority_events WHERE status = 'waiting for review'".into()).await?,
        quarantined: q(format!("SELECT count(*) FROM quarantine_log WHERE {this}")).await?,
        rows_appended: appended,
        stores_resumed: q("SELECT count(*) FROM stage_checkpoint".into()).await?,
        detection_rows: q("SELECT coalesce(sum(out['rows_read']), 0) FROM stage_detect_out".into())
            .await?,
        feed_days_written: 0,
        stage_seconds: Vec::new(),
        slices: 1,
    };

    if appended > 0 {
        run_statement(
            &ctx,
            &format!(
                "INSERT INTO mrs_runs_log SELECT run_id, as_of, \
                 CAST('{started}' AS TIMESTAMP(6) WITH TIME ZONE) AS started_at, now() AS finished_at, \
                 {} AS reports_new, {} AS reports_updated, {} AS reports_ended, {} AS reports_retracted, \
                 {} AS events, {} AS auto_confirmed, {} AS waiting_for_review, {} AS quarantined, \
                 written_at FROM run_context",
                summary.reports_new,
                summary.reports_updated,
                summary.reports_ended,
                summary.reports_retracted,
                summary.events,
                summary.auto_confirmed,
                summary.waiting_for_review,
                summary.quarantined,
                started = mrs_core::identity::rfc3339_utc_micros(written_at),
            ),
        )
        .await?;
    }
    lap("summary");
    lease.check()?;
    log::info!("stage feeds");
    let feeds = crate::feeds::write(
        &ctx,
        lake,
        crate::feeds::FeedRun {
            full: options.full,
            hide_from: options.as_of_micros,
            clock: written_at,
        },
    )
    .await?;
    log::info!(
        "feeds: {} protected_sales days written ({}), {} files removed",
        feeds.days_written,
        if feeds.full {
            "every day"
        } else {
            "changed days"
        },
        feeds.files_removed
    );
    summary.feed_days_written = feeds.days_written;
    lap("feeds");
    lease.check()?;
    crate::checkpoint::write(&ctx, lake).await?;
    lap("checkpoint");
    summary.stage_seconds = stage_seconds;
    Ok(summary)
}
