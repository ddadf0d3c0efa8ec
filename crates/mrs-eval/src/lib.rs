//! `mrs eval`: the lake's hydrated reports and events against the ground truth that the
//! synthetic generator wrote under `truth/`.
//!
//! Matching: a report matches a true anomaly when its store is one of the anomaly's stores and
//! its window `[window_start, window_end)` (an open window runs to its last anomalous bucket
//! plus one) overlaps `[start, end + 2 buckets)`. Each report is credited to the overlapping
//! anomaly with the largest overlap. Only anomalies that started before the lake's last bucket
//! count.
//!
//! Naive reference (`naive` in the JSON): a global 3-sigma z-score per store x SKU series over
//! the series' whole history (mean and population sd of its recorded bucket values, so it looks
//! into the future and never adapts), computed with DataFusion SQL over `sales_clean`. Flagged
//! cells are merged per store into windows of consecutive buckets, and each window is scored as
//! a report of its own event with the same matching rule as the real detector. It is the bar
//! the model must clear: a generator on which it scores >= 0.7 in both recall and precision is
//! too easy.
//!
//! Further readings sit beside those strict per-report figures (README "Evaluation"):
//! attribution *by anomaly* (each detected true anomaly gets the cause its reports give it
//! together: the mean of the top-3 probability vectors of the reports credited to it by
//! SKU-aware matching, or of all that overlap it when none is), and per-report attribution
//! (`attribution.sku_matched`: top-1, top-3, per cause, calibration, High tier) and cohorts
//! under *SKU-aware matching* (a report is credited to the overlapping anomaly at its store
//! whose SKUs include the report's leading SKU, else to the one with the largest overlap),
//! which stops a report led by one event's SKU at a store that two concurrent events share
//! from counting for the other. The cohort section also scores, under the strict matching, the
//! grouping of reports by their SKU-aware anomaly: the strict figure a cohort rule that follows
//! the SKUs leading the reports can reach.
//!
//! The JSON keys are stable (see [`EvalReport`] and README "Evaluation"): detection recall,
//! event-level precision and F1, report-level precision, recall by magnitude (>= 3 and < 3
//! noise units), median detection delay in buckets, attribution top-1/top-3 overall and per
//! cause, cohort pairwise precision/recall, and a calibration table by confidence decile.

use std::collections::{BTreeMap, HashMap, HashSet};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use mrs_pipeline::Lake;
use serde::Serialize;

/// One true anomaly.
#[derive(Debug, Clone)]
pub struct TruthAnomaly {
    pub anomaly_id: String,
    pub cause: String,
    pub stores: HashSet<String>,
    pub start: i64,
    pub end: i64,
    pub magnitude: f64,
    /// The SKUs the anomaly moves (empty when unknown).
    pub skus: HashSet<String>,
}

/// One hydrated report, as evaluation needs it.
#[derive(Debug, Clone)]
pub struct PredictedReport {
    pub report_id: String,
    pub store_id: String,
    pub start: i64,
    pub end: i64,
    /// When the detector first alerted on it (`alerted_at`; the start when unknown).
    pub alerted: i64,
    pub causes: [Option<String>; 3],
    pub confidence: Option<f64>,
    /// Probabilities of `causes[1]` and `causes[2]`.
    pub confidence_23: [Option<f64>; 2],
    /// The SKU with the largest absolute excess (first of `top_skus`).
    pub lead_sku: Option<String>,
    pub group_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DetectionMetrics {
    /// True anomalies with at least one matching report, over all true anomalies.
    pub recall: f64,
    /// Events with at least one matching report, over all events.
    pub precision: f64,
    pub f1: f64,
    /// Reports matching some true anomaly, over all reports.
    pub report_precision: f64,
    pub recall_magnitude_ge_3: f64,
    pub recall_magnitude_lt_3: f64,
    /// Median over detected anomalies of (first alert of an overlapping report - true start)
    /// in buckets, 0 when a report was already open: when a live run would have shown it.
    pub median_delay_buckets: Option<f64>,
    /// The same median per true cause: which anomalies a per-store detector sees late.
    pub per_cause_median_delay: BTreeMap<String, f64>,
    /// Detected anomalies alerted at most 2 buckets after their true start, over all detected.
    pub alerted_within_2_buckets: f64,
    pub truth_anomalies: usize,
    pub detected_anomalies: usize,
    pub truth_magnitude_ge_3: usize,
    pub truth_magnitude_lt_3: usize,
    pub reports: usize,
    pub events: usize,
    pub per_cause_recall: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CauseAccuracy {
    pub n: usize,
    pub top1: f64,
    pub top3: f64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AttributionMetrics {
    /// Over matched reports: the model's first cause is the true cause.
    pub top1: f64,
    /// Over matched reports: the true cause is among the three candidates.
    pub top3: f64,
    pub evaluated: usize,
    pub per_cause: BTreeMap<String, CauseAccuracy>,
    /// Per detected true anomaly: the cause its overlapping reports give it together.
    pub by_anomaly: AnomalyAttribution,
    /// The same per-report scores with the SKU-aware matching (module header).
    pub sku_matched: ReportAttribution,
}

/// Per-report attribution against the anomalies the reports are matched to (for
/// `sku_matched`, a report at a store that two concurrent anomalies share is scored against the
/// one whose SKUs include its leading SKU).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReportAttribution {
    pub top1: f64,
    pub top3: f64,
    pub evaluated: usize,
    pub per_cause: BTreeMap<String, CauseAccuracy>,
    pub calibration: Vec<CalibrationBin>,
    pub high_tier_precision: Option<f64>,
}

/// Attribution per detected true anomaly: the anomaly's cause vector is the mean over the
/// reports credited to it by SKU-aware matching (all that overlap it when none is) of their
/// probability vectors (top three causes
/// with their confidences, the rest 0); top-1 is its largest entry, top-3 its three largest
/// non-zero entries (ties by cause name).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AnomalyAttribution {
    pub top1: f64,
    pub top3: f64,
    pub evaluated: usize,
    pub per_cause: BTreeMap<String, CauseAccuracy>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CohortMetrics {
    /// Pairs of matched reports in one event that belong to one true anomaly, over pairs in one event.
    pub pairwise_precision: f64,
    /// Pairs of matched reports of one true anomaly that share an event, over such pairs.
    pub pairwise_recall: f64,
    pub pairs_same_event: usize,
    pub pairs_same_truth: usize,
    /// The same pairwise figures with SKU-aware matching (module header).
    pub pairwise_precision_sku_matched: f64,
    pub pairwise_recall_sku_matched: f64,
    /// The strict pairwise figures of an oracle grouping: every report grouped with the anomaly
    /// the SKU-aware matching credits it to. What a cohort rule that groups reports exactly by
    /// the SKUs leading them would score under the strict matching; only a rule that followed
    /// the time overlaps the strict matching credits by could score higher.
    pub strict_ceiling_precision: f64,
    pub strict_ceiling_recall: f64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CalibrationBin {
    /// Lower edge of the confidence decile (0.0, 0.1, ... 0.9).
    pub decile: f64,
    pub n: usize,
    pub mean_confidence: f64,
    pub accuracy: f64,
}

/// The naive reference detector, scored with the same matching rules.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct NaiveMetrics {
    /// How the reference flags cells.
    pub method: String,
    pub recall: f64,
    /// Windows matching some true anomaly, over all windows (each window is its own event).
    pub precision: f64,
    pub f1: f64,
    pub recall_magnitude_ge_3: f64,
    pub recall_magnitude_lt_3: f64,
    pub median_delay_buckets: Option<f64>,
    pub reports: usize,
}

/// The whole evaluation; its JSON form is `mrs eval --format json`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EvalReport {
    pub lake: String,
    pub step_seconds: i64,
    pub detection: DetectionMetrics,
    /// The naive reference detector on the same data (see the module header).
    pub naive: NaiveMetrics,
    pub attribution: AttributionMetrics,
    pub cohort: CohortMetrics,
    pub calibration: Vec<CalibrationBin>,
    /// Share of reports tiered High whose cause is right.
    pub high_tier_precision: Option<f64>,
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

fn ts_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Internal(format!("missing column {name}")))?;
    let col = cast(
        col,
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    )?;
    let col = col.as_primitive::<TimestampMicrosecondType>();
    Ok((0..col.len())
        .map(|i| (!col.is_null(i)).then(|| col.value(i)))
        .collect())
}

fn str_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Internal(format!("missing column {name}")))?;
    let col = cast(col, &DataType::Utf8)?;
    let col = col.as_string::<i32>();
    Ok((0..col.len())
        .map(|i| (!col.is_null(i)).then(|| col.value(i).to_string()))
        .collect())
}

fn f64_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Internal(format!("missing column {name}")))?;
    let col = cast(col, &DataType::Float64)?;
    let col = col.as_primitive::<Float64Type>();
    Ok((0..col.len())
        .map(|i| (!col.is_null(i)).then(|| col.value(i)))
        .collect())
}

async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    ctx.sql(sql).await?.collect().await
}

/// Step of the lake's buckets in seconds, from the generator's manifest (3600 when absent).
pub async fn step_seconds(lake: &Lake) -> i64 {
    use datafusion::object_store::ObjectStoreExt;
    let path = lake.path("truth/synth.json");
    let Ok(got) = lake.store().get(&path).await else {
        return 3600;
    };
    let Ok(bytes) = got.bytes().await else {
        return 3600;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("step_seconds").and_then(serde_json::Value::as_i64))
        .filter(|s| *s > 0)
        .unwrap_or(3600)
}

/// Loads truth and hydrated reports from a lake and evaluates them.
pub async fn evaluate_lake(lake: &Lake) -> Result<EvalReport> {
    let ctx = mrs_pipeline::open_session(lake, None).await?;
    if lake.list_parquet("truth/anomalies").await?.is_empty() {
        return Err(DataFusionError::Plan(format!(
            "no ground truth at {}: evaluation needs a lake written by `mrs synth`",
            lake.folder_url("truth/anomalies")
        )));
    }
    ctx.register_parquet(
        "truth_anomalies",
        lake.folder_url("truth/anomalies"),
        ParquetReadOptions::default(),
    )
    .await?;
    let step = step_seconds(lake).await;
    let last_bucket = query(&ctx, "SELECT max(ts) AS t FROM sales_clean").await?;
    let last_bucket = last_bucket
        .first()
        .map(|b| ts_column(b, "t"))
        .transpose()?
        .and_then(|v| v.first().copied().flatten())
        .unwrap_or(i64::MAX);

    let mut truth = Vec::new();
    for b in query(&ctx, "SELECT anomaly_id, cause, store_ids, start_ts, end_ts, magnitude, skus FROM truth_anomalies ORDER BY anomaly_id").await? {
        let ids = str_column(&b, "anomaly_id")?;
        let causes = str_column(&b, "cause")?;
        let starts = ts_column(&b, "start_ts")?;
        let ends = ts_column(&b, "end_ts")?;
        let mags = f64_column(&b, "magnitude")?;
        let stores = b.column_by_name("store_ids").map(|c| c.as_list::<i32>().clone());
        let skus = b.column_by_name("skus").map(|c| c.as_list::<i32>().clone());
        let set_of = |lists: &Option<datafusion::arrow::array::ListArray>, i: usize| -> HashSet<String> {
            lists
                .as_ref()
                .filter(|l| !l.is_null(i))
                .map(|l| {
                    let v = l.value(i);
                    let s = cast(&v, &DataType::Utf8).map(|a| a.as_string::<i32>().clone());
                    s.map(|s| (0..s.len()).filter(|j| !s.is_null(*j)).map(|j| s.value(j).to_string()).collect())
                        .unwrap_or_default()
                })
                .unwrap_or_default()
        };
        for i in 0..b.num_rows() {
            let store_set = set_of(&stores, i);
            if let (Some(id), Some(cause), Some(start), Some(end)) =
                (ids[i].clone(), causes[i].clone(), starts[i], ends[i])
                && start <= last_bucket
            {
                truth.push(TruthAnomaly { anomaly_id: id, cause, stores: store_set, start, end, magnitude: mags[i].unwrap_or(0.0), skus: set_of(&skus, i) });
            }
        }
    }

    let mut reports = Vec::new();
    for b in query(&ctx, "SELECT report_id, store_id, window_start, window_end, last_anomalous_ts, alerted_at, cause, cause_2, cause_3, confidence, confidence_2, confidence_3, top_skus[1] AS lead_sku, report_group_id FROM minority_reports ORDER BY report_id").await? {
        let ids = str_column(&b, "report_id")?;
        let stores = str_column(&b, "store_id")?;
        let starts = ts_column(&b, "window_start")?;
        let ends = ts_column(&b, "window_end")?;
        let lasts = ts_column(&b, "last_anomalous_ts")?;
        let alerts = ts_column(&b, "alerted_at")?;
        let c1 = str_column(&b, "cause")?;
        let c2 = str_column(&b, "cause_2")?;
        let c3 = str_column(&b, "cause_3")?;
        let conf = f64_column(&b, "confidence")?;
        let conf2 = f64_column(&b, "confidence_2")?;
        let conf3 = f64_column(&b, "confidence_3")?;
        let leads = str_column(&b, "lead_sku")?;
        let groups = str_column(&b, "report_group_id")?;
        for i in 0..b.num_rows() {
            let (Some(id), Some(store), Some(start)) = (ids[i].clone(), stores[i].clone(), starts[i]) else { continue };
            let end = ends[i].unwrap_or(lasts[i].unwrap_or(start) + step * 1_000_000);
            reports.push(PredictedReport {
                report_id: id,
                store_id: store,
                start,
                end,
                alerted: alerts[i].unwrap_or(start),
                causes: [c1[i].clone(), c2[i].clone(), c3[i].clone()],
                confidence: conf[i],
                confidence_23: [conf2[i], conf3[i]],
                lead_sku: leads[i].clone(),
                group_id: groups[i].clone(),
            });
        }
    }
    let events = query(&ctx, "SELECT count(*) AS n FROM minority_events").await?;
    let n_events = events
        .first()
        .map(|b| {
            cast(b.column(0), &DataType::Float64)
                .map(|c| c.as_primitive::<Float64Type>().value(0) as usize)
        })
        .transpose()?
        .unwrap_or(0);
    let mut report = evaluate(&truth, &reports, n_events, step);
    report.lake = lake.url().to_string();
    let naive = naive_reports(&ctx, step).await?;
    let d = evaluate(&truth, &naive, 0, step).detection;
    report.naive = NaiveMetrics {
        method: NAIVE_METHOD.to_string(),
        recall: d.recall,
        precision: d.precision,
        f1: d.f1,
        recall_magnitude_ge_3: d.recall_magnitude_ge_3,
        recall_magnitude_lt_3: d.recall_magnitude_lt_3,
        median_delay_buckets: d.median_delay_buckets,
        reports: d.reports,
    };
    Ok(report)
}

/// Description of the naive reference, written into the JSON.
pub const NAIVE_METHOD: &str = "global 3-sigma z-score per store x SKU over the whole history; flagged cells merged into per-store windows of consecutive buckets";

/// The naive reference's windows as reports: cells of a store x SKU series whose value is more
/// than 3 population standard deviations from the series' mean over its whole history, merged
/// per store into windows of consecutive flagged buckets (gaps-and-islands).
pub fn naive_sql(step_seconds: i64) -> String {
    format!(
        "WITH cells AS (
            SELECT store_id, sku, ts, sum(units) AS u FROM sales_clean GROUP BY store_id, sku, ts),
        stats AS (
            SELECT store_id, sku, avg(u) AS mu, stddev_pop(u) AS sd FROM cells GROUP BY store_id, sku),
        flagged AS (
            SELECT DISTINCT c.store_id, to_unixtime(c.ts) AS t
            FROM cells c JOIN stats s ON s.store_id = c.store_id AND s.sku = c.sku
            WHERE s.sd > 0 AND abs(c.u - s.mu) > 3 * s.sd),
        islands AS (
            SELECT store_id, t,
                   CASE WHEN t - lag(t) OVER (PARTITION BY store_id ORDER BY t) <= {step_seconds}
                        THEN 0 ELSE 1 END AS new_window
            FROM flagged),
        numbered AS (
            SELECT store_id, t,
                   sum(new_window) OVER (PARTITION BY store_id ORDER BY t
                                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS w
            FROM islands)
        SELECT store_id, min(t) AS start_s, max(t) + {step_seconds} AS end_s
        FROM numbered GROUP BY store_id, w ORDER BY store_id, start_s"
    )
}

async fn naive_reports(ctx: &SessionContext, step_seconds: i64) -> Result<Vec<PredictedReport>> {
    let mut out = Vec::new();
    for b in query(ctx, &naive_sql(step_seconds)).await? {
        let stores = str_column(&b, "store_id")?;
        let starts = f64_column(&b, "start_s")?;
        let ends = f64_column(&b, "end_s")?;
        for i in 0..b.num_rows() {
            let (Some(store), Some(s), Some(e)) = (stores[i].clone(), starts[i], ends[i]) else {
                continue;
            };
            out.push(PredictedReport {
                report_id: format!("naive-{}-{}", store, s as i64),
                store_id: store,
                start: s as i64 * 1_000_000,
                end: e as i64 * 1_000_000,
                alerted: s as i64 * 1_000_000,
                causes: [None, None, None],
                confidence: None,
                confidence_23: [None, None],
                lead_sku: None,
                group_id: None,
            });
        }
    }
    Ok(out)
}

/// Top-1, top-3, per cause, reliability by decile and High-tier precision of the `(report,
/// anomaly)` pairs.
fn score_reports(
    reports: &[PredictedReport],
    truth: &[TruthAnomaly],
    pairs: &[(usize, usize)],
) -> ReportAttribution {
    let mut per_cause: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let (mut top1, mut top3) = (0usize, 0usize);
    let mut bins = vec![(0usize, 0.0f64, 0usize); 10];
    let (mut high_n, mut high_ok) = (0usize, 0usize);
    for &(ri, ti) in pairs {
        let r = &reports[ri];
        let t = &truth[ti];
        let ok1 = r.causes[0].as_deref() == Some(t.cause.as_str());
        let ok3 = r
            .causes
            .iter()
            .any(|c| c.as_deref() == Some(t.cause.as_str()));
        top1 += usize::from(ok1);
        top3 += usize::from(ok3);
        let e = per_cause.entry(t.cause.clone()).or_default();
        e.0 += 1;
        e.1 += usize::from(ok1);
        e.2 += usize::from(ok3);
        if let Some(c) = r.confidence {
            let d = ((c * 10.0).floor() as usize).min(9);
            bins[d].0 += 1;
            bins[d].1 += c;
            bins[d].2 += usize::from(ok1);
            if c >= mrs_core::taxonomy::TierThresholds::default().high {
                high_n += 1;
                high_ok += usize::from(ok1);
            }
        }
    }
    ReportAttribution {
        top1: ratio(top1, pairs.len()),
        top3: ratio(top3, pairs.len()),
        evaluated: pairs.len(),
        per_cause: accuracy_by_cause(per_cause),
        calibration: bins
            .iter()
            .enumerate()
            .map(|(d, (n, sum, ok))| CalibrationBin {
                decile: d as f64 / 10.0,
                n: *n,
                mean_confidence: if *n > 0 { sum / *n as f64 } else { 0.0 },
                accuracy: ratio(*ok, *n),
            })
            .collect(),
        high_tier_precision: (high_n > 0).then(|| ratio(high_ok, high_n)),
    }
}

/// Per cause `(n, top-1 hits, top-3 hits)` as accuracies.
fn accuracy_by_cause(
    counts: BTreeMap<String, (usize, usize, usize)>,
) -> BTreeMap<String, CauseAccuracy> {
    counts
        .into_iter()
        .map(|(k, (n, a, b))| {
            (
                k,
                CauseAccuracy {
                    n,
                    top1: ratio(a, n),
                    top3: ratio(b, n),
                },
            )
        })
        .collect()
}

/// Pairwise cohort agreement over `(report, anomaly)` matches: precision (pairs in one event
/// that share the anomaly), recall (pairs of one anomaly that share an event), and the two
/// pair counts. No pairs count as 1.
fn pairwise(reports: &[PredictedReport], matched: &[(usize, usize)]) -> (f64, f64, usize, usize) {
    pairwise_by(
        |r| {
            reports[r]
                .group_id
                .as_deref()
                .unwrap_or(&reports[r].report_id)
        },
        matched,
    )
}

/// [`pairwise`] with the events given by `group` (a report index to its event).
fn pairwise_by<G: PartialEq>(
    group: impl Fn(usize) -> G,
    matched: &[(usize, usize)],
) -> (f64, f64, usize, usize) {
    let (mut same_event, mut same_event_true, mut same_truth, mut same_truth_event) = (0, 0, 0, 0);
    for (a, (ra, ta)) in matched.iter().enumerate() {
        for (rb, tb) in matched.iter().skip(a + 1) {
            let se = group(*ra) == group(*rb);
            let st = ta == tb;
            if se {
                same_event += 1;
                same_event_true += usize::from(st);
            }
            if st {
                same_truth += 1;
                same_truth_event += usize::from(se);
            }
        }
    }
    let or_one = |num: usize, den: usize| if den == 0 { 1.0 } else { ratio(num, den) };
    (
        or_one(same_event_true, same_event),
        or_one(same_truth_event, same_truth),
        same_event,
        same_truth,
    )
}

/// Median of `values` (sorted in place); `None` when empty.
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// Pure evaluation over loaded truth and reports.
pub fn evaluate(
    truth: &[TruthAnomaly],
    reports: &[PredictedReport],
    n_events: usize,
    step_seconds: i64,
) -> EvalReport {
    let step = step_seconds * 1_000_000;
    // A report overlaps an anomaly when it is at one of its stores and its window meets the
    // anomaly's (tolerating two buckets after the true end, the detector's closing lag).
    let overlap = |r: &PredictedReport, t: &TruthAnomaly| {
        if !t.stores.contains(&r.store_id) {
            return None;
        }
        let lo = r.start.max(t.start);
        let hi = r.end.min(t.end + 2 * step);
        (hi > lo).then_some(hi - lo)
    };
    // Best truth of each report (for precision and attribution): the overlapping anomaly at
    // its store with the largest overlap.
    let mut best: HashMap<usize, usize> = HashMap::new();
    for (ri, r) in reports.iter().enumerate() {
        let mut chosen: Option<(i64, usize)> = None;
        for (ti, t) in truth.iter().enumerate() {
            if let Some(o) = overlap(r, t)
                && chosen.is_none_or(|(c, _)| o > c)
            {
                chosen = Some((o, ti));
            }
        }
        if let Some((_, ti)) = chosen {
            best.insert(ri, ti);
        }
    }
    // Detection: an anomaly is found when any report overlaps it (two anomalies at one store
    // at once are both flagged by the store's report); its delay is the first alert.
    let mut first_alert: HashMap<usize, i64> = HashMap::new();
    for r in reports {
        for (ti, t) in truth.iter().enumerate() {
            if overlap(r, t).is_some() {
                let a = r.alerted.max(t.start);
                first_alert
                    .entry(ti)
                    .and_modify(|v| *v = (*v).min(a))
                    .or_insert(a);
            }
        }
    }
    let detected = first_alert.len();
    let ge3: Vec<usize> = (0..truth.len())
        .filter(|i| truth[*i].magnitude >= 3.0)
        .collect();
    let lt3: Vec<usize> = (0..truth.len())
        .filter(|i| truth[*i].magnitude < 3.0)
        .collect();
    let delay_of = |ti: usize, alert: i64| ((alert - truth[ti].start).max(0) as f64) / step as f64;
    let mut delays: Vec<f64> = first_alert
        .iter()
        .map(|(ti, s)| delay_of(*ti, *s))
        .collect();
    let alerted_within_2_buckets =
        ratio(delays.iter().filter(|d| **d <= 2.0).count(), delays.len());
    let median_delay = median(&mut delays);
    let mut per_cause_median_delay = BTreeMap::new();
    let mut groups_all: HashSet<&str> = HashSet::new();
    let mut groups_true: HashSet<&str> = HashSet::new();
    for (ri, r) in reports.iter().enumerate() {
        let g = r.group_id.as_deref().unwrap_or(&r.report_id);
        groups_all.insert(g);
        if best.contains_key(&ri) {
            groups_true.insert(g);
        }
    }
    let n_groups = if n_events > 0 {
        n_events.max(groups_all.len())
    } else {
        groups_all.len()
    };
    let recall = ratio(detected, truth.len());
    let precision = ratio(groups_true.len(), n_groups);
    let mut per_cause_recall = BTreeMap::new();
    for cause in mrs_core::taxonomy::Cause::ALL.map(|c| c.as_str()) {
        let of_cause: Vec<usize> = (0..truth.len())
            .filter(|i| truth[*i].cause == cause)
            .collect();
        if !of_cause.is_empty() {
            let hit = of_cause
                .iter()
                .filter(|i| first_alert.contains_key(i))
                .count();
            per_cause_recall.insert(cause.to_string(), ratio(hit, of_cause.len()));
            let mut cause_delays: Vec<f64> = of_cause
                .iter()
                .filter_map(|i| first_alert.get(i).map(|a| delay_of(*i, *a)))
                .collect();
            if let Some(m) = median(&mut cause_delays) {
                per_cause_median_delay.insert(cause.to_string(), m);
            }
        }
    }
    let detection = DetectionMetrics {
        recall,
        precision,
        f1: if recall + precision > 0.0 {
            2.0 * recall * precision / (recall + precision)
        } else {
            0.0
        },
        report_precision: ratio(best.len(), reports.len()),
        recall_magnitude_ge_3: ratio(
            ge3.iter().filter(|i| first_alert.contains_key(i)).count(),
            ge3.len(),
        ),
        recall_magnitude_lt_3: ratio(
            lt3.iter().filter(|i| first_alert.contains_key(i)).count(),
            lt3.len(),
        ),
        median_delay_buckets: median_delay,
        per_cause_median_delay,
        alerted_within_2_buckets,
        truth_anomalies: truth.len(),
        detected_anomalies: detected,
        truth_magnitude_ge_3: ge3.len(),
        truth_magnitude_lt_3: lt3.len(),
        reports: reports.len(),
        events: n_groups,
        per_cause_recall,
    };

    // Attribution over matched reports.
    let mut strict: Vec<(usize, usize)> = best.iter().map(|(r, t)| (*r, *t)).collect();
    strict.sort_unstable();
    let ReportAttribution {
        top1,
        top3,
        evaluated,
        per_cause,
        calibration,
        high_tier_precision,
    } = score_reports(reports, truth, &strict);
    // SKU-aware matching (module header).
    let mut sku_matched: Vec<(usize, usize)> = Vec::new();
    for (ri, r) in reports.iter().enumerate() {
        let mut chosen: Option<((bool, i64), usize)> = None;
        for (ti, t) in truth.iter().enumerate() {
            if let Some(o) = overlap(r, t) {
                let led = r.lead_sku.as_ref().is_some_and(|s| t.skus.contains(s));
                if chosen.is_none_or(|(c, _)| (led, o) > c) {
                    chosen = Some(((led, o), ti));
                }
            }
        }
        if let Some((_, ti)) = chosen {
            sku_matched.push((ri, ti));
        }
    }
    // Attribution by anomaly (module header): the probability vectors of the reports credited
    // to each detected anomaly by SKU-aware matching (else of all that overlap it), summed
    // (the same ranking as their mean).
    let mut by_cause: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for (ti, t) in truth.iter().enumerate() {
        let mut sum: BTreeMap<&str, f64> = BTreeMap::new();
        let mut n = 0usize;
        let credited: Vec<&PredictedReport> = sku_matched
            .iter()
            .filter(|(_, t2)| *t2 == ti)
            .map(|(r, _)| &reports[*r])
            .collect();
        let voters: Vec<&PredictedReport> = if credited.is_empty() {
            reports.iter().filter(|r| overlap(r, t).is_some()).collect()
        } else {
            credited
        };
        for r in voters {
            n += 1;
            let probs = [r.confidence, r.confidence_23[0], r.confidence_23[1]];
            for (c, p) in r.causes.iter().zip(probs) {
                if let Some(c) = c {
                    *sum.entry(c.as_str()).or_default() +=
                        p.filter(|p| p.is_finite()).unwrap_or(0.0).max(0.0);
                }
            }
        }
        if n == 0 {
            continue;
        }
        let mut ranked: Vec<(&str, f64)> = sum.into_iter().filter(|(_, w)| *w > 0.0).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        let ok1 = ranked.first().is_some_and(|(c, _)| *c == t.cause);
        let ok3 = ranked.iter().take(3).any(|(c, _)| *c == t.cause);
        let e = by_cause.entry(t.cause.clone()).or_default();
        e.0 += 1;
        e.1 += usize::from(ok1);
        e.2 += usize::from(ok3);
    }
    let (an, a1, a3) = by_cause
        .values()
        .fold((0, 0, 0), |(n, x, y), (a, b, c)| (n + a, x + b, y + c));
    let by_anomaly = AnomalyAttribution {
        top1: ratio(a1, an),
        top3: ratio(a3, an),
        evaluated: an,
        per_cause: accuracy_by_cause(by_cause),
    };
    let attribution = AttributionMetrics {
        top1,
        top3,
        evaluated,
        per_cause,
        by_anomaly,
        sku_matched: score_reports(reports, truth, &sku_matched),
    };

    // Cohorts: pairwise agreement over matched reports, with the strict and the SKU-aware
    // matching.
    let (precision, recall, same_event, same_truth) = pairwise(reports, &strict);
    let (precision_sku, recall_sku, _, _) = pairwise(reports, &sku_matched);
    let sku_anomaly_of: HashMap<usize, usize> = sku_matched.iter().copied().collect();
    let (ceiling_precision, ceiling_recall, _, _) =
        pairwise_by(|r| sku_anomaly_of.get(&r).copied(), &strict);
    let cohort = CohortMetrics {
        pairwise_precision: precision,
        pairwise_recall: recall,
        pairs_same_event: same_event,
        pairs_same_truth: same_truth,
        pairwise_precision_sku_matched: precision_sku,
        pairwise_recall_sku_matched: recall_sku,
        strict_ceiling_precision: ceiling_precision,
        strict_ceiling_recall: ceiling_recall,
    };
    EvalReport {
        lake: String::new(),
        step_seconds,
        detection,
        naive: NaiveMetrics::default(),
        attribution,
        cohort,
        calibration,
        high_tier_precision,
    }
}

impl EvalReport {
    /// The human table printed by `mrs eval`.
    pub fn to_table(&self) -> String {
        let d = &self.detection;
        let a = &self.attribution;
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k:<34} {v}\n"));
        line("true anomalies", d.truth_anomalies.to_string());
        line("reports / events", format!("{} / {}", d.reports, d.events));
        line("detection recall", format!("{:.3}", d.recall));
        line(
            "  recall, magnitude >= 3",
            format!(
                "{:.3} (of {})",
                d.recall_magnitude_ge_3, d.truth_magnitude_ge_3
            ),
        );
        line(
            "  recall, magnitude < 3",
            format!(
                "{:.3} (of {})",
                d.recall_magnitude_lt_3, d.truth_magnitude_lt_3
            ),
        );
        line(
            "detection precision (events)",
            format!("{:.3}", d.precision),
        );
        line(
            "detection precision (reports)",
            format!("{:.3}", d.report_precision),
        );
        line("detection F1", format!("{:.3}", d.f1));
        line(
            "median delay (buckets)",
            d.median_delay_buckets
                .map_or("-".into(), |v| format!("{v:.1}")),
        );
        line(
            "  alerted within 2 buckets",
            format!("{:.3}", d.alerted_within_2_buckets),
        );
        for (cause, delay) in &d.per_cause_median_delay {
            line(&format!("  {cause}"), format!("median delay {delay:.1}"));
        }
        let n = &self.naive;
        line(
            "naive 3-sigma recall / precision",
            format!(
                "{:.3} / {:.3} (>= 3: {:.3}; {} windows)",
                n.recall, n.precision, n.recall_magnitude_ge_3, n.reports
            ),
        );
        line(
            "attribution top-1",
            format!("{:.3} (of {})", a.top1, a.evaluated),
        );
        line("attribution top-3", format!("{:.3}", a.top3));
        for (cause, acc) in &a.per_cause {
            line(
                &format!("  {cause}"),
                format!(
                    "top-1 {:.3}, top-3 {:.3} (of {})",
                    acc.top1, acc.top3, acc.n
                ),
            );
        }
        let k = &a.sku_matched;
        line(
            "  SKU-aware matching top-1/top-3",
            format!("{:.3} / {:.3} (of {})", k.top1, k.top3, k.evaluated),
        );
        let b = &a.by_anomaly;
        line(
            "attribution by anomaly top-1/top-3",
            format!("{:.3} / {:.3} (of {})", b.top1, b.top3, b.evaluated),
        );
        line(
            "cohort pairwise precision",
            format!("{:.3}", self.cohort.pairwise_precision),
        );
        line(
            "cohort pairwise recall",
            format!("{:.3}", self.cohort.pairwise_recall),
        );
        line(
            "  SKU-aware matching P / R",
            format!(
                "{:.3} / {:.3}",
                self.cohort.pairwise_precision_sku_matched, self.cohort.pairwise_recall_sku_matched
            ),
        );
        line(
            "  strict, grouped by SKU-aware match",
            format!(
                "{:.3} / {:.3}",
                self.cohort.strict_ceiling_precision, self.cohort.strict_ceiling_recall
            ),
        );
        line(
            "High tier precision",
            self.high_tier_precision
                .map_or("-".into(), |v| format!("{v:.3}")),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(
        id: &str,
        cause: &str,
        stores: &[&str],
        start: i64,
        end: i64,
        magnitude: f64,
    ) -> TruthAnomaly {
        TruthAnomaly {
            anomaly_id: id.into(),
            cause: cause.into(),
            stores: stores.iter().map(|s| s.to_string()).collect(),
            start,
            end,
            magnitude,
            skus: HashSet::new(),
        }
    }

    fn report(
        id: &str,
        store: &str,
        start: i64,
        end: i64,
        cause: &str,
        group: &str,
    ) -> PredictedReport {
        PredictedReport {
            report_id: id.into(),
            store_id: store.into(),
            start,
            end,
            alerted: start,
            causes: [Some(cause.into()), Some("Data Error".into()), None],
            confidence: Some(0.9),
            confidence_23: [Some(0.1), None],
            lead_sku: None,
            group_id: Some(group.into()),
        }
    }

    const H: i64 = 3_600_000_000;

    #[test]
    fn perfect_detection_scores_one() {
        let t = vec![
            truth(
                "A",
                "Social/Viral Event",
                &["S1", "S2"],
                10 * H,
                20 * H,
                5.0,
            ),
            truth("B", "Operational/Store Issue", &["S3"], 10 * H, 14 * H, 2.0),
        ];
        let r = vec![
            report("r1", "S1", 11 * H, 19 * H, "Social/Viral Event", "g1"),
            report("r2", "S2", 10 * H, 19 * H, "Social/Viral Event", "g1"),
            report("r3", "S3", 10 * H, 14 * H, "Operational/Store Issue", "g2"),
        ];
        let e = evaluate(&t, &r, 2, 3600);
        assert_eq!(e.detection.recall, 1.0);
        assert_eq!(e.detection.precision, 1.0);
        assert_eq!(e.detection.median_delay_buckets, Some(0.0));
        assert_eq!(e.attribution.top1, 1.0);
        assert_eq!(e.cohort.pairwise_precision, 1.0);
        assert_eq!(e.cohort.pairwise_recall, 1.0);
    }

    #[test]
    fn false_reports_and_wrong_groups_lower_scores() {
        let t = vec![truth(
            "A",
            "Social/Viral Event",
            &["S1", "S2"],
            10 * H,
            20 * H,
            5.0,
        )];
        let r = vec![
            report("r1", "S1", 12 * H, 19 * H, "Data Error", "g1"),
            report("r2", "S2", 10 * H, 19 * H, "Social/Viral Event", "g2"),
            report("r3", "S9", 10 * H, 14 * H, "Operational/Store Issue", "g3"),
        ];
        let e = evaluate(&t, &r, 3, 3600);
        assert_eq!(e.detection.recall, 1.0);
        assert!((e.detection.precision - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(e.attribution.top1, 0.5);
        assert_eq!(e.attribution.top3, 0.5, "r1 never names the true cause");
        assert_eq!(e.cohort.pairwise_recall, 0.0);
        assert_eq!(e.detection.median_delay_buckets, Some(0.0));
    }

    #[test]
    fn delay_counts_from_the_first_alert() {
        let t = vec![truth("A", "Data Error", &["S1", "S2"], 10 * H, 20 * H, 4.0)];
        let mut late = report("r1", "S1", 10 * H, 19 * H, "Data Error", "g1");
        late.alerted = 14 * H;
        let mut early = report("r2", "S2", 11 * H, 19 * H, "Data Error", "g1");
        early.alerted = 13 * H;
        let e = evaluate(&t, &[late.clone()], 1, 3600);
        assert_eq!(e.detection.median_delay_buckets, Some(4.0));
        let e = evaluate(&t, &[late, early], 1, 3600);
        assert_eq!(e.detection.median_delay_buckets, Some(3.0));
        assert_eq!(e.detection.alerted_within_2_buckets, 0.0);
    }

    #[test]
    fn delay_by_cause_and_the_share_alerted_early() {
        let t = vec![
            truth("A", "Data Error", &["S1"], 10 * H, 20 * H, 4.0),
            truth(
                "B",
                "Marketing Misattribution",
                &["S2"],
                10 * H,
                40 * H,
                4.0,
            ),
            truth(
                "C",
                "Marketing Misattribution",
                &["S3"],
                10 * H,
                40 * H,
                4.0,
            ),
            truth("D", "Social/Viral Event", &["S4"], 10 * H, 20 * H, 4.0),
        ];
        let mut r = vec![
            report("r1", "S1", 10 * H, 19 * H, "Data Error", "g1"),
            report("r2", "S2", 17 * H, 39 * H, "Marketing Misattribution", "g2"),
            report("r3", "S3", 19 * H, 39 * H, "Marketing Misattribution", "g3"),
        ];
        r[0].alerted = 11 * H;
        r[1].alerted = 18 * H;
        r[2].alerted = 20 * H;
        let e = evaluate(&t, &r, 3, 3600);
        let d = &e.detection;
        assert_eq!(d.median_delay_buckets, Some(8.0));
        assert_eq!(d.per_cause_median_delay["Data Error"], 1.0);
        assert_eq!(d.per_cause_median_delay["Marketing Misattribution"], 9.0);
        // D was not detected: no delay for its cause
        assert!(!d.per_cause_median_delay.contains_key("Social/Viral Event"));
        assert!((d.alerted_within_2_buckets - 1.0 / 3.0).abs() < 1e-12);
        assert!(e.to_table().contains("alerted within 2 buckets"));
    }

    #[test]
    fn by_anomaly_pools_reports_and_sku_matching_follows_the_lead() {
        let v = "Social/Viral Event";
        let mut a = truth("A", v, &["S1", "S2"], 10 * H, 20 * H, 5.0);
        a.skus.insert("P".into());
        let mut b = truth("B", v, &["S2", "S3"], 10 * H, 30 * H, 5.0);
        b.skus.insert("Q".into());
        let mut r1 = report("r1", "S1", 10 * H, 20 * H, v, "g1");
        r1.lead_sku = Some("P".into());
        // At S2 (both anomalies), led by A's SKU but overlapping B longer.
        let mut r2 = report("r2", "S2", 10 * H, 30 * H, v, "g1");
        r2.lead_sku = Some("P".into());
        let mut r3 = report("r3", "S3", 10 * H, 30 * H, "Data Error", "g2");
        r3.lead_sku = Some("Q".into());
        let e = evaluate(&[a, b], &[r1, r2, r3], 2, 3600);
        // Strict: r2 counts for B, so r1-r2 is a false pair and r2-r3 a missed one.
        assert_eq!(e.cohort.pairwise_precision, 0.0);
        assert_eq!(e.cohort.pairwise_recall, 0.0);
        assert_eq!(e.cohort.pairwise_precision_sku_matched, 1.0);
        assert_eq!(e.cohort.pairwise_recall_sku_matched, 1.0);
        // Grouped by the SKUs that lead them ({r1, r2} and {r3}), the strict matching still
        // counts r1-r2 as a false pair and r2-r3 as a missed one.
        assert_eq!(e.cohort.strict_ceiling_precision, 0.0);
        assert_eq!(e.cohort.strict_ceiling_recall, 0.0);
        // By anomaly: A from r1 and r2 (credited by their lead, both Social: right), B from r3
        // alone (Data Error 0.9 + 0.1, no Social among its causes: wrong in top 1 and top 3).
        let by = &e.attribution.by_anomaly;
        assert_eq!(by.evaluated, 2);
        assert_eq!(by.top1, 0.5);
        assert_eq!(by.top3, 0.5);
    }

    #[test]
    fn per_report_attribution_also_follows_the_lead() {
        // A unit slip on P (hours 10-14) inside a viral event on Q (hours 8-30) at one store:
        // the store's report, led by P and called a data error, overlaps the viral event longer.
        let mut slip = truth("A", "Data Error", &["S1"], 10 * H, 14 * H, 5.0);
        slip.skus.insert("P".into());
        let mut viral = truth("B", "Social/Viral Event", &["S1"], 8 * H, 30 * H, 5.0);
        viral.skus.insert("Q".into());
        let mut r = report("r", "S1", 9 * H, 30 * H, "Data Error", "g1");
        r.lead_sku = Some("P".into());
        let e = evaluate(&[slip, viral], &[r], 1, 3600);
        assert_eq!(
            e.attribution.top1, 0.0,
            "strict: scored against the viral event"
        );
        let k = &e.attribution.sku_matched;
        assert_eq!((k.top1, k.evaluated), (1.0, 1));
        assert_eq!(k.per_cause["Data Error"].n, 1);
        assert!(!k.per_cause.contains_key("Social/Viral Event"));
        assert_eq!(k.calibration.iter().map(|b| b.n).sum::<usize>(), 1);
    }

    #[test]
    fn nothing_detected_is_zero_not_nan() {
        let t = vec![truth("A", "Data Error", &["S1"], 0, H, 4.0)];
        let e = evaluate(&t, &[], 0, 3600);
        assert_eq!(e.detection.recall, 0.0);
        assert_eq!(e.detection.precision, 0.0);
        assert_eq!(e.detection.median_delay_buckets, None);
    }
}
