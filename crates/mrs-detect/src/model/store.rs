//! The store-level detector behind `mrs_detect`: every SKU cell series and the store-total
//! series are scored with the same [`Scorer`], bucket decisions are combined, and windows
//! become reports with their evidence and data-quality features.
//!
//! | step | rule |
//! |---|---|
//! | grid | store step = most common positive difference of the store's distinct timestamps; buckets without any store row are missing |
//! | cell value | sum of the SKU's units in the bucket; `0` when the store has rows but the SKU none (from the SKU's first row on); missing before it |
//! | store total | sum over all SKUs, scored as its own series |
//! | store bucket anomalous | store-total `abs(z) >= z_alert`, or some cell `abs(z) >= z_cell = sqrt(z_alert^2 + 2 ln m)` (Bonferroni for the `m` SKUs the store has sold by that bucket, via the Gaussian tail `exp(-z^2/2)`: causal, a SKU launched later changes no earlier decision), or at least [`MIN_SAME_DIRECTION_CELLS`] cells with `abs(z) >= z_alert` in the same direction |
//! | sustained run | where no single bucket decided: the strongest sustained run ending at the bucket ([`super::sustained`], spans 2-8, buckets already anomalous are not evidence) of the store total (threshold `sqrt(z_alert^2 + 2 ln 4)`) or of one cell (`sqrt(z_alert^2 + 2 ln 4m)`); the bucket is anomalous and its window may open at the run's first bucket (never before a decided window, see [`build_windows`]) |
//! | direction | the store total's sign when it is anomalous, else the strongest cell's / the majority direction / the run's sign |
//! | bucket score | `max(store score, cell score)`, cell score = `clamp(abs(z_max) / (2 z_cell), 0.5, 1)` when cell-driven; `clamp(abs(Z) / (2 threshold), 0.5, 1)` for a run |
//! | windows | [`build_windows`] over the grid |
//! | reported | a window with at least 2 anomalous buckets one of which scores at least [`CONFIRM_SCORE`] = 0.52, or a lone bucket whose score reaches [`LONE_BUCKET_SCORE`] = `0.5 * sqrt(2)` (the Stouffer combination of two buckets at the alert threshold: `abs(z) >= sqrt(2) z_alert`); a lone weaker alert is noise far more often than an anomaly, which lasts. Causal: the report appears when its second anomalous bucket with that peak (or a strong first one) arrives, with `first_detected_from` = the window's first bucket, so a replay gives the same ids |
//!
//! Per-window sums run from the first to the last anomalous bucket over present buckets; a
//! present bucket without a store baseline (store warm-up) counts its actual as baseline.
//! `total_skus` is the SKUs sold by the window's last anomalous bucket; the catch-up feature
//! looks back at most [`MAX_PROFILE`] grid buckets. Both keep a report a function of the data
//! up to it, which incremental runs rely on ([`detect_store_resumable`], [`super::checkpoint`]).
//! `alerted_at` is the bucket at which the window first qualified as a report (its second
//! anomalous bucket once the peak reached [`CONFIRM_SCORE`], a run's last bucket, or a strong
//! first bucket).
//! Cost: `O(rows + skus * buckets)` for scoring, and `O(skus * buckets)` memory for the cells'
//! z values the sustained runs read after the single-bucket decisions and (without a checkpoint
//! to take) their baselines and z values the SKU evidence reads; a run that takes a checkpoint
//! scores the cells a second time instead (to stop each at the new resume bucket).

use super::GridError;
use super::checkpoint::{SeriesCheckpoint, SkuCheckpoint, StoreCheckpoint};
use super::grid::{MAX_BUCKETS, SeasonPlan, SeasonSpec, bucket_of, infer_step};
use super::robust::median_in_place;
use super::scorer::{Scorer, Scores, score_of};
use super::sustained::{
    Run, SPANS, Sustained, extend_full_season_z, next_fit_at, run_horizon, sustained_threshold,
};
use super::windows::{Point, build_windows_from};

/// Cells agreeing in direction that make a store bucket anomalous.
pub const MIN_SAME_DIRECTION_CELLS: u32 = 3;
/// Score a window with a single anomalous bucket must reach to be reported: the Stouffer
/// combination of two buckets at the alert threshold, `sqrt(2) z_alert` (score 0.5 is the
/// threshold).
pub const LONE_BUCKET_SCORE: f64 = 0.5 * std::f64::consts::SQRT_2;
/// Peak score a window of two or more anomalous buckets must reach to be reported: evidence 4%
/// above its alert threshold (score 0.5) in at least one bucket. Windows that only ever grazed
/// the threshold were, on the training lakes (`small`, seeds 101-108), mostly lone-store noise:
/// with this margin event precision there went from 0.921 to 0.957 and recall of anomalies of 3
/// noise units and more from 0.972 to 0.967 (0.54 gave 0.962 and 0.967 but lost more of the
/// subtler ones; README "Detection").
pub const CONFIRM_SCORE: f64 = 0.52;
/// SKU evidence entries per report.
pub const MAX_EVIDENCE: usize = 20;
/// Profile buckets per report.
pub const MAX_PROFILE: usize = 336;
/// Default number of normal buckets that close a window.
pub const DEFAULT_END_AFTER: usize = 3;
/// Multiples that mark a data error (duplicated feeds, unit slips).
const MULTIPLES: [f64; 5] = [2.0, 3.0, 10.0, 100.0, 1000.0];
/// Factors whose exact multiples are counted for `dq_multiple_evidence`, and whether only the
/// cells in excess (`z >= ` [`EXCESS_Z`]) are counted: a duplicated feed (2, 3) doubles every
/// value of the window, a unit slip (10, 100, 1000) only those of a few SKUs. Counting every
/// positive value keeps the chance of a multiple of 2 or 3 near or below `1/k` for Poisson-like
/// counts; a unit slip among a store's many ordinary values needs the cells in excess alone.
const DIVISORS: [(f64, bool); 5] = [
    (2.0, false),
    (3.0, false),
    (10.0, true),
    (100.0, true),
    (1000.0, true),
];
/// Cell `z` from which a value counts as in excess for the multiples of 10, 100 and 1000. Not
/// the alert threshold: a slipped low-volume SKU (20 where 2 was expected) often stays below it,
/// the store total or the other slipped SKUs carrying the alert, and its values are then the
/// whole signature (a x10 slip on two SKUs of an evaluation lake counted none of its four
/// values). Above 2 sigma, a count of a small or mid-sized mean lands on a multiple of 10 about
/// one time in 10 or less, so the binomial null stays conservative.
const EXCESS_Z: f64 = 2.0;

/// Detector settings.
#[derive(Debug, Clone, Copy)]
pub struct DetectConfig {
    /// Alert threshold on `abs(z)`.
    pub z_alert: f64,
    /// Normal buckets that close a window.
    pub end_after: usize,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            z_alert: super::scorer::DEFAULT_Z_ALERT,
            end_after: DEFAULT_END_AFTER,
        }
    }
}

/// One SKU's share of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct SkuEvidence {
    pub sku: String,
    pub actual: f64,
    pub baseline: f64,
    pub excess: f64,
    pub peak_score: f64,
}

/// One report (see docs/ARCHITECTURE.md for the meaning of each field).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub first_detected_from: i64,
    pub last_anomalous_ts: i64,
    /// The bucket whose arrival made the window a report (its second anomalous bucket, a run's
    /// last bucket, or a strong first bucket): when a live run would first have shown it.
    pub alerted_at: i64,
    pub window_end: Option<i64>,
    pub as_of: i64,
    pub direction: &'static str,
    pub severity: f64,
    pub peak_ts: i64,
    pub anomalous_buckets: i64,
    pub actual_units: f64,
    pub baseline_units: f64,
    pub excess_units: f64,
    pub noise_units: f64,
    pub affected_skus: i64,
    pub total_skus: i64,
    pub sku_evidence: Vec<SkuEvidence>,
    /// `(ts, actual, baseline)` per present bucket.
    pub profile: Vec<(i64, f64, f64)>,
    pub dq_ratio: Option<f64>,
    pub dq_integer_multiple_share: f64,
    /// How unlikely by chance the exact multiples among the window's cell values are
    /// ([`multiple_evidence`]).
    pub dq_multiple_evidence: f64,
    pub dq_zero_share: f64,
    pub dq_catchup: f64,
    pub dq_stuck_share: f64,
    pub dq_negative_count: i64,
}

/// A flagged cell kept from the first pass.
#[derive(Debug, Clone, Copy)]
struct FlaggedCell {
    sku: u32,
    bucket: u32,
    value: f64,
    baseline: f64,
    multiple: bool,
    stuck: bool,
}

/// Cell evidence per store bucket.
#[derive(Debug, Clone, Copy, Default)]
struct CellAgg {
    scored: bool,
    max_abs_z: f64,
    max_sign: i8,
    up: u32,
    down: u32,
}

/// Detects one store. `rows` are `(sku id, ts micros, units)` with [`super::usable`] units, grouped by
/// sku id (ids index `sku_names`); ts order within a SKU does not matter.
pub fn detect_store(
    rows: &[(u32, i64, f64)],
    sku_names: &[&str],
    cfg: &DetectConfig,
) -> Result<Vec<Report>, GridError> {
    Ok(detect_store_resumable(rows, sku_names, cfg, None, false)?.0)
}

/// Buckets before the resume point a checkpoint covers for a grid step: the scorer's
/// look-back, the sustained runs' and the catch-up's (see [`super::checkpoint`]).
pub fn horizon(step: i64) -> usize {
    let plan = SeasonPlan::new(SeasonSpec::Auto { step_us: step });
    let scorer = Scorer::new(plan.clone(), super::scorer::DEFAULT_Z_ALERT).horizon();
    scorer
        .max(run_horizon(plan.scale_window))
        .max(MAX_PROFILE + 1)
}

/// Last value of a cell that was not an alert, carried bucket by bucket (data-quality
/// features: an exact multiple of it marks a unit slip).
#[inline]
fn carry_last_normal(last_normal: &mut f64, y: f64, z: f64, z_alert: f64) {
    if y.is_nan() || y == 0.0 {
        return;
    }
    if z.is_nan() || z.abs() < z_alert {
        *last_normal = y;
    }
}

/// [`detect_store`], resumed from a checkpoint and/or returning one.
///
/// With `resume`, `rows` need only reach back to the checkpoint's first covered bucket (older
/// rows are ignored), `sku_names` must include the checkpoint's SKUs, and only windows from
/// its resume bucket on are returned: exactly those a run over the whole history returns
/// there. With `checkpoint`, the state at a new resume bucket is returned too.
#[expect(
    clippy::needless_range_loop,
    reason = "several parallel per-bucket arrays are indexed by bucket"
)]
pub fn detect_store_resumable(
    rows: &[(u32, i64, f64)],
    sku_names: &[&str],
    cfg: &DetectConfig,
    resume: Option<&StoreCheckpoint>,
    checkpoint: bool,
) -> Result<(Vec<Report>, Option<StoreCheckpoint>), GridError> {
    // Rows must come grouped by increasing SKU id (every caller sorts them so); sort a copy
    // rather than skip a SKU whose rows came out of order.
    let sorted_rows: Vec<(u32, i64, f64)>;
    let rows = if rows.is_sorted_by_key(|r| r.0) {
        rows
    } else {
        sorted_rows = {
            let mut v = rows.to_vec();
            v.sort_by_key(|r| r.0);
            v
        };
        &sorted_rows
    };
    // The grid: inferred, or the checkpoint's (local bucket 0 = its first covered bucket).
    let (origin, step, first_bucket, rows_last) = match resume {
        Some(cp) => {
            if cp.z_alert.to_bits() != cfg.z_alert.to_bits() || cp.end_after != cfg.end_after {
                return Err(GridError::BadCheckpoint(format!(
                    "it was taken with z_alert {} and end_after {}, this run uses {} and {}",
                    cp.z_alert, cp.end_after, cfg.z_alert, cfg.end_after
                )));
            }
            let last = rows
                .iter()
                .map(|r| bucket_of(r.1, cp.origin, cp.step))
                .max()
                .unwrap_or(i64::MIN)
                .max(cp.covered_bucket - 1);
            (cp.origin, cp.step, cp.first_bucket, last)
        }
        None => {
            let mut uniq: Vec<i64> = rows.iter().map(|r| r.1).collect();
            // Stable sort: rows come as one ts-ordered run per SKU, which it merges.
            uniq.sort();
            uniq.dedup();
            let (Some(&origin), Some(step)) = (uniq.first(), infer_step(&uniq)) else {
                return Ok((Vec::new(), None));
            };
            let last = bucket_of(*uniq.last().unwrap_or(&origin), origin, step);
            (origin, step, 0, last)
        }
    };
    if rows_last >= MAX_BUCKETS {
        return Err(GridError::TooManyBuckets(rows_last.saturating_add(1)));
    }
    let len = usize::try_from(rows_last - first_bucket + 1).unwrap_or(0);
    // Buckets before `q0` were decided by the run that took the checkpoint.
    let q0 = resume.map_or(0, StoreCheckpoint::len).min(len);
    let ts_of = |b: usize| origin + step * (first_bucket + b as i64);
    let local = |ts: i64| bucket_of(ts, origin, step) - first_bucket;
    let bucket = |ts: i64| usize::try_from(local(ts)).unwrap_or(0);
    let in_grid = |ts: i64| local(ts) >= 0;

    let mut present = vec![false; len];
    let mut total = vec![0.0f64; len];
    let mut negatives = vec![0i64; len];
    for &(_, ts, u) in rows {
        if !in_grid(ts) {
            continue;
        }
        let b = bucket(ts);
        present[b] = true;
        total[b] += u;
        if u < 0.0 {
            negatives[b] += 1;
        }
    }
    let store_y: Vec<f64> = (0..len)
        .map(|b| if present[b] { total[b] } else { f64::NAN })
        .collect();
    let plan = SeasonPlan::new(SeasonSpec::Auto { step_us: step });
    let mut scorer = Scorer::new(plan, cfg.z_alert);
    let mut store = Scores::default();
    let store_resume = resume.and_then(|cp| cp.store.scorer.as_ref());
    scorer.score_resumed(&store_y, &mut store, store_resume, None);
    let (window, per_day, full_season) = run_plan(step);
    let mut full = Vec::with_capacity(len);
    extend_full_season_z(&store, full_season, &mut full);
    if let Some(cp) = resume {
        store.baseline[..q0].copy_from_slice(&cp.store_baseline[..q0]);
        full[..q0].copy_from_slice(&cp.store.full_z[..q0]);
    }
    // The checkpoint's state of each SKU (ids index `sku_names`).
    let sku_state = |sku: u32| -> Option<&SkuCheckpoint> {
        let cp = resume?;
        let name = sku_names.get(sku as usize)?;
        let i = cp
            .skus
            .binary_search_by(|s| s.sku.as_str().cmp(name))
            .ok()?;
        cp.skus.get(i)
    };
    // Full-season cell z values, kept for the sustained runs once single buckets are decided.
    let mut cell_z: Vec<f64> = Vec::new();
    // Without a checkpoint to take, pass 2 needs only the cells' baselines and z values: kept
    // here (`O(skus * buckets)`) rather than scored again.
    let mut cell_kept: Vec<(f64, f64)> = Vec::new();

    // Pass 1: cells.
    // First bucket of each SKU's cell series: the Bonferroni count at a bucket is the SKUs
    // sold by then (causal: a SKU launched next month must not change today's decisions).
    let mut sku_first: Vec<i64> = Vec::with_capacity(sku_names.len());
    let mut agg = vec![CellAgg::default(); len];
    let mut flagged: Vec<FlaggedCell> = Vec::new();
    let mut y = Vec::with_capacity(len);
    let mut cell = Scores::default();
    for_each_sku(rows, sku_names.len(), |sku, sku_rows| {
        let state = sku_state(sku);
        sku_first.push(
            fill_cell(sku_rows, state.map(|s| s.first), &present, &local, &mut y)
                .unwrap_or(i64::MAX),
        );
        scorer.score_resumed(
            &y,
            &mut cell,
            state.and_then(|s| s.series.scorer.as_ref()),
            None,
        );
        if !checkpoint {
            cell_kept.extend(cell.baseline.iter().zip(&cell.z).map(|(&b, &z)| (b, z)));
        }
        let from = cell_z.len();
        extend_full_season_z(&cell, full_season, &mut cell_z);
        if let Some(s) = state {
            cell_z[from..from + q0].copy_from_slice(&s.series.full_z[..q0]);
        }
        let mut last_normal = state.map_or(f64::NAN, |s| s.last_normal);
        for b in q0..len {
            let z = cell.z[b];
            if z.is_nan() {
                carry_last_normal(&mut last_normal, y[b], z, cfg.z_alert);
                continue;
            }
            let a = &mut agg[b];
            a.scored = true;
            if z.abs() > a.max_abs_z {
                a.max_abs_z = z.abs();
                a.max_sign = if z > 0.0 { 1 } else { -1 };
            }
            if z.abs() >= cfg.z_alert {
                if z > 0.0 {
                    a.up += 1;
                } else {
                    a.down += 1;
                }
                let value = y[b];
                let multiple = last_normal > 0.0
                    && MULTIPLES
                        .iter()
                        .any(|k| (value - k * last_normal).abs() <= 1e-9 * value.abs().max(1.0));
                let stuck = b > 0 && value != 0.0 && y[b - 1] == value;
                flagged.push(FlaggedCell {
                    sku,
                    bucket: b as u32,
                    value,
                    baseline: cell.baseline[b],
                    multiple,
                    stuck,
                });
            } else {
                carry_last_normal(&mut last_normal, y[b], z, cfg.z_alert);
            }
        }
    });

    // Per bucket: SKUs sold by then, the cell alert level `z_cell` and the cell run threshold.
    let mut alive = vec![0u32; len + 1];
    for &f in &sku_first {
        if f < len as i64 {
            alive[usize::try_from(f.max(0)).unwrap_or(0)] += 1;
        }
    }
    for b in 1..len {
        alive[b] += alive[b - 1];
    }
    alive.truncate(len);
    let z_cell: Vec<f64> = alive
        .iter()
        .map(|&m| (cfg.z_alert * cfg.z_alert + 2.0 * f64::from(m.max(1)).ln()).sqrt())
        .collect();
    let z_run_cell: Vec<f64> = alive
        .iter()
        .map(|&m| sustained_threshold(cfg.z_alert, m as usize))
        .collect();

    // Bucket decisions.
    let mut bucket_score = vec![0.0f64; len];
    let mut points: Vec<Point> = (0..len)
        .map(|b| {
            let zs = store.z[b];
            let a = agg[b];
            if zs.is_nan() && !a.scored {
                return Point::Unscored;
            }
            let store_score = score_of(zs, cfg.z_alert);
            if zs.abs() >= cfg.z_alert {
                let z_cell = z_cell[b];
                let cell_score = if a.max_abs_z >= z_cell {
                    (a.max_abs_z / (2.0 * z_cell)).clamp(0.5, 1.0)
                } else {
                    0.0
                };
                bucket_score[b] = store_score.max(cell_score);
                return Point::Anomalous {
                    direction: if zs > 0.0 { 1 } else { -1 },
                    score: bucket_score[b],
                };
            }
            let z_cell = z_cell[b];
            let direction = if a.max_abs_z >= z_cell {
                a.max_sign
            } else if a.up >= MIN_SAME_DIRECTION_CELLS && a.up >= a.down {
                1
            } else if a.down >= MIN_SAME_DIRECTION_CELLS {
                -1
            } else {
                return Point::Normal;
            };
            let cell_score = (a.max_abs_z / (2.0 * z_cell)).clamp(0.5, 1.0);
            bucket_score[b] = if store_score.is_nan() {
                cell_score
            } else {
                store_score.max(cell_score)
            };
            Point::Anomalous {
                direction,
                score: bucket_score[b],
            }
        })
        .collect();

    // Sustained runs where no single bucket spoke: of the store total, else of one cell. The
    // buckets already anomalous are not evidence (an outage must not echo into the normal
    // buckets after it).
    // Decided by a single bucket (before `q0`: by the checkpoint's run).
    let decided: Vec<bool> = (0..len)
        .map(|b| match resume {
            Some(cp) if b < q0 => cp.decided[b],
            _ => matches!(points[b], Point::Anomalous { .. }),
        })
        .collect();
    let mut run_z = Vec::with_capacity(len);
    let mut runs = Vec::new();
    let mut sustained = Sustained::default();
    let mask_decided = |z: &[f64], out: &mut Vec<f64>| {
        out.clear();
        out.extend(
            z.iter()
                .zip(&decided)
                .map(|(&v, &d)| if d { f64::NAN } else { v }),
        );
    };
    mask_decided(&full, &mut run_z);
    let store_next_fit = resume.map_or(0, |cp| cp.store.next_fit);
    let no_inflation = [1.0; SPANS.len()];
    let store_inflation = resume.map_or(no_inflation, |cp| cp.store.inflation);
    let z_alone_store = vec![cfg.z_alert; len];
    sustained.runs_from(
        &run_z,
        &z_alone_store,
        window,
        per_day,
        (q0, store_next_fit, store_inflation),
        &mut runs,
    );
    let z_run_store = sustained_threshold(cfg.z_alert, 1);
    let mut best_run: Vec<Option<(Run, f64)>> = runs
        .iter()
        .map(|r| {
            r.filter(|r| r.z.abs() >= z_run_store)
                .map(|r| (r, z_run_store))
        })
        .collect();
    let cell_next_fit = |sku: usize| {
        sku_state(sku as u32).map_or((0, no_inflation), |s| {
            (s.series.next_fit, s.series.inflation)
        })
    };
    for (sku, z) in cell_z.chunks_exact(len.max(1)).enumerate() {
        mask_decided(z, &mut run_z);
        sustained.runs_from(
            &run_z,
            &z_cell,
            window,
            per_day,
            (q0, cell_next_fit(sku).0, cell_next_fit(sku).1),
            &mut runs,
        );
        for (best, r) in best_run.iter_mut().zip(&runs) {
            let Some(r) = r else { continue };
            let threshold = z_run_cell[r.end];
            if r.z.abs() >= threshold
                && best.is_none_or(|(b, t)| r.z.abs() / threshold > b.z.abs() / t)
            {
                *best = Some((*r, threshold));
            }
        }
    }
    for b in q0..len {
        if let (Point::Normal, Some((run, threshold))) = (points[b], best_run[b]) {
            bucket_score[b] = (run.z.abs() / (2.0 * threshold)).clamp(0.5, 1.0);
            points[b] = Point::Run {
                direction: if run.z > 0.0 { 1 } else { -1 },
                score: bucket_score[b],
                start: run.start,
            };
        }
    }
    let mut windows = build_windows_from(points, cfg.end_after, q0, CONFIRM_SCORE);
    // The new resume point: a margin before the last bucket (a day, and at least the longest
    // run), moved back to the start of any window still open or not yet closed there.
    let resume_at = checkpoint.then(|| {
        let margin = per_day.max(SPANS[SPANS.len() - 1]);
        let mut q = len.saturating_sub(margin);
        for w in windows.iter().rev() {
            if w.start < q && w.closed_at.is_none_or(|c| c >= q) {
                q = w.start;
            }
        }
        q
    });
    windows.retain(|w| w.confirmed.is_some() || w.peak_score >= LONE_BUCKET_SCORE);
    if windows.is_empty() && !checkpoint {
        return Ok((Vec::new(), None));
    }

    let store_baseline = |b: usize| {
        let v = store.baseline[b];
        if v.is_nan() { total[b] } else { v }
    };
    let mut reports: Vec<Report> = windows
        .iter()
        .map(|w| {
            let (s, l) = (w.start, w.last);
            let mut actual = 0.0;
            let mut baseline = 0.0;
            let mut var = 0.0;
            let mut present_n = 0usize;
            let mut zeros = 0usize;
            let mut negative_count = 0;
            let mut profile = Vec::new();
            for b in s..=l {
                if !present[b] {
                    continue;
                }
                present_n += 1;
                actual += total[b];
                baseline += store_baseline(b);
                let v = store.variance(b);
                if v.is_finite() {
                    var += v;
                }
                if total[b] == 0.0 {
                    zeros += 1;
                }
                negative_count += negatives[b];
                if profile.len() < MAX_PROFILE {
                    profile.push((ts_of(b), total[b], store_baseline(b)));
                }
            }
            let cells: Vec<&FlaggedCell> = flagged
                .iter()
                .filter(|c| (s..=l).contains(&(c.bucket as usize)))
                .collect();
            let mut skus: Vec<u32> = cells.iter().map(|c| c.sku).collect();
            skus.sort_unstable();
            skus.dedup();
            let mut ratios: Vec<f64> = cells
                .iter()
                .filter(|c| c.baseline > 0.0)
                .map(|c| c.value / c.baseline)
                .collect();
            let share = |f: fn(&FlaggedCell) -> bool| {
                if cells.is_empty() {
                    0.0
                } else {
                    cells.iter().filter(|c| f(c)).count() as f64 / cells.len() as f64
                }
            };
            let excess = actual - baseline;
            // Units the store was expected to sell in a bucket, and their variance.
            let expected_cell = |b: usize| {
                let v = store.variance(b);
                (
                    store_baseline(b).max(0.0),
                    if v.is_finite() { v } else { 0.0 },
                )
            };
            let catchup = if w.direction > 0 {
                let (mut missed, mut missed_var) = (0.0, 0.0);
                let mut b = s;
                // At most MAX_PROFILE grid buckets back: a resumed run sees that far.
                while b > 0 && s - b < MAX_PROFILE {
                    b -= 1;
                    if !present[b] {
                        continue;
                    }
                    if total[b] != 0.0 {
                        break;
                    }
                    let (m, v) = expected_cell(b);
                    missed += m;
                    missed_var += v;
                }
                catchup_score(missed, missed_var, excess, var)
            } else {
                // A drop followed by a spike repaying it: the units the window lacks (and the
                // zeros after it) against the excess of the first non-zero bucket after them.
                // An outage that only thins sales lacks units in buckets that are not zero,
                // which no catch-up repays. Only buckets up to the one that closed the window
                // are read, so the report's last snapshot (written when it closes) holds it in
                // every run.
                let (mut missed, mut missed_var) = (0.0, 0.0);
                for b in (s..=l).filter(|&b| present[b]) {
                    let (m, v) = expected_cell(b);
                    missed += (m - total[b]).max(0.0);
                    missed_var += v;
                }
                let horizon = w.closed_at.unwrap_or(len - 1).min(len - 1);
                let mut repaid = None;
                for b in l + 1..=horizon {
                    if !present[b] {
                        continue;
                    }
                    if total[b] == 0.0 {
                        let (m, v) = expected_cell(b);
                        missed += m;
                        missed_var += v;
                        continue;
                    }
                    let (_, v) = expected_cell(b);
                    repaid = Some((total[b] - store_baseline(b), v));
                    break;
                }
                match repaid {
                    Some((r, r_var)) => catchup_score(missed, missed_var, r, r_var),
                    None => 0.0,
                }
            };
            Report {
                first_detected_from: ts_of(s),
                last_anomalous_ts: ts_of(l),
                alerted_at: ts_of(if w.start_score >= LONE_BUCKET_SCORE {
                    w.start
                } else {
                    w.confirmed.unwrap_or(w.peak)
                }),
                window_end: w.end.map(ts_of),
                as_of: ts_of(len - 1),
                direction: if w.direction > 0 { "spike" } else { "drop" },
                severity: w.peak_score,
                peak_ts: ts_of(w.peak),
                anomalous_buckets: w.anomalous as i64,
                actual_units: actual,
                baseline_units: baseline,
                excess_units: excess,
                noise_units: var.sqrt(),
                affected_skus: skus.len() as i64,
                total_skus: i64::from(alive[l]),
                sku_evidence: Vec::new(),
                profile,
                dq_ratio: if ratios.is_empty() {
                    None
                } else {
                    Some(median_in_place(&mut ratios))
                },
                dq_integer_multiple_share: share(|c| c.multiple),
                dq_multiple_evidence: 0.0,
                dq_zero_share: if present_n == 0 {
                    0.0
                } else {
                    zeros as f64 / present_n as f64
                },
                dq_catchup: catchup,
                dq_stuck_share: share(|c| c.stuck),
                dq_negative_count: negative_count,
            }
        })
        .collect();

    // Pass 2: SKU evidence per window, and the checkpoint's cell states.
    let mut evidence: Vec<Vec<SkuEvidence>> = vec![Vec::new(); windows.len()];
    // Per window and divisor: the positive cell values counted for it (`DIVISORS`), and those
    // it divides.
    let mut divisible = vec![[(0u32, 0u32); DIVISORS.len()]; windows.len()];
    let hz = horizon(step);
    // The new checkpoint's range `[from, q)`; none when the old one cannot move forward (too
    // few new buckets: its state at an earlier bucket is not known).
    let range = resume_at
        .filter(|&q| q >= q0)
        .map(|q| (q.saturating_sub(hz), q));
    let mut skus_cp: Vec<SkuCheckpoint> = Vec::new();
    for_each_sku(rows, sku_names.len(), |sku, sku_rows| {
        let state = sku_state(sku);
        let Some(first) = fill_cell(sku_rows, state.map(|s| s.first), &present, &local, &mut y)
        else {
            return;
        };
        let kept = if checkpoint {
            scorer.score_resumed(
                &y,
                &mut cell,
                state.and_then(|s| s.series.scorer.as_ref()),
                range.map(|(_, q)| q),
            );
            None
        } else {
            cell_kept.get(sku as usize * len..(sku as usize + 1) * len)
        };
        // The cell's (baseline, z) at a bucket: from pass 1, or as just scored again.
        let cell_at = |b: usize| match kept {
            Some(k) => k[b],
            None => (cell.baseline[b], cell.z[b]),
        };
        for ((w, ev), counts) in windows
            .iter()
            .zip(evidence.iter_mut())
            .zip(divisible.iter_mut())
        {
            let (mut act, mut base, mut peak, mut seen) = (0.0, 0.0, 0.0f64, false);
            for b in w.start..=w.last {
                if y[b].is_nan() {
                    continue;
                }
                seen = true;
                let (baseline, z) = cell_at(b);
                count_multiples(counts, y[b], z);
                act += y[b];
                base += if baseline.is_nan() { y[b] } else { baseline };
                let sc = score_of(z, cfg.z_alert);
                if sc > peak {
                    peak = sc;
                }
            }
            if seen {
                ev.push(SkuEvidence {
                    sku: sku_names
                        .get(sku as usize)
                        .copied()
                        .unwrap_or("")
                        .to_string(),
                    actual: act,
                    baseline: base,
                    excess: act - base,
                    peak_score: peak,
                });
            }
        }
        let Some((from, q)) = range else { return };
        if first >= q as i64 {
            return; // first sold after the resume point: a resumed run reads all its rows
        }
        let mut last_normal = state.map_or(f64::NAN, |s| s.last_normal);
        for b in q0..q {
            carry_last_normal(&mut last_normal, y[b], cell.z[b], cfg.z_alert);
        }
        let z = &cell_z[sku as usize * len..(sku as usize + 1) * len];
        let mut masked = Vec::with_capacity(len);
        mask_decided(z, &mut masked);
        let (next_fit0, inflation0) = cell_next_fit(sku as usize);
        let (next_fit, refit) = next_fit_at(&masked, &z_cell, per_day, q0, next_fit0, q);
        let inflation = match refit {
            Some(t) => sustained.inflation_at(&masked, &z_cell, window, t),
            None => inflation0,
        };
        skus_cp.push(SkuCheckpoint {
            sku: sku_names
                .get(sku as usize)
                .copied()
                .unwrap_or("")
                .to_string(),
            first: first - from as i64,
            last_normal,
            series: SeriesCheckpoint {
                scorer: scorer.take_state(hz),
                full_z: z[from..q].to_vec(),
                next_fit: next_fit.saturating_sub(from),
                inflation,
            },
        });
    });
    for (r, counts) in reports.iter_mut().zip(&divisible) {
        r.dq_multiple_evidence = multiple_evidence(counts);
    }
    for (r, mut ev) in reports.iter_mut().zip(evidence) {
        ev.sort_by(|a, b| {
            b.excess
                .abs()
                .total_cmp(&a.excess.abs())
                .then_with(|| a.sku.cmp(&b.sku))
        });
        ev.truncate(MAX_EVIDENCE);
        r.sku_evidence = ev;
    }
    let covered_bucket = first_bucket + len as i64;
    let new_checkpoint = match (range, resume) {
        (Some((from, q)), _) => {
            scorer.score_resumed(&store_y, &mut cell, store_resume, Some(q));
            mask_decided(&full, &mut run_z);
            let (next_fit, refit) =
                next_fit_at(&run_z, &z_alone_store, per_day, q0, store_next_fit, q);
            let inflation = match refit {
                Some(t) => sustained.inflation_at(&run_z, &z_alone_store, window, t),
                None => store_inflation,
            };
            Some(StoreCheckpoint {
                z_alert: cfg.z_alert,
                end_after: cfg.end_after,
                origin,
                step,
                first_bucket: first_bucket + from as i64,
                resume_bucket: first_bucket + q as i64,
                covered_bucket,
                decided: decided[from..q].to_vec(),
                store_baseline: store.baseline[from..q].to_vec(),
                store: SeriesCheckpoint {
                    scorer: scorer.take_state(hz),
                    full_z: full[from..q].to_vec(),
                    next_fit: next_fit.saturating_sub(from),
                    inflation,
                },
                skus: skus_cp,
            })
        }
        (None, Some(cp)) if checkpoint => Some(StoreCheckpoint {
            covered_bucket,
            ..cp.clone()
        }),
        _ => None,
    };
    Ok((reports, new_checkpoint))
}

/// How well `repaid` units (the excess of the first bucket after a zero run) repay the
/// `missed` units the run should have sold, in [0, 1]. A feed's catch-up repays what it
/// withheld, which the baseline only estimates: a gap within two standard deviations of the
/// noise of both is forgiven, and beyond that the score falls with the gap relative to
/// `missed`. It is scaled down when the missed units or the repayment are within noise of
/// nothing (a night's zeros, an ordinary bucket after an outage).
fn catchup_score(missed: f64, missed_var: f64, repaid: f64, repaid_var: f64) -> f64 {
    if !(missed > 0.0 && repaid.is_finite()) {
        return 0.0;
    }
    let gap = ((repaid - missed).abs() - 2.0 * (missed_var + repaid_var).sqrt()).max(0.0);
    let closeness = (1.0 - gap / missed).clamp(0.0, 1.0);
    let z = |x: f64, var: f64| {
        if var > 0.0 {
            x / var.sqrt()
        } else if x > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    };
    let clear_of_noise = z(missed, missed_var).min(z(repaid, repaid_var));
    closeness * ((clear_of_noise - 1.0) / 2.0).clamp(0.0, 1.0)
}

/// Counts one cell value for [`multiple_evidence`]: per divisor, whether it is counted (positive,
/// and in excess where the divisor asks for it) and whether it is an exact multiple.
fn count_multiples(counts: &mut [(u32, u32); DIVISORS.len()], y: f64, z: f64) {
    if y <= 0.0 {
        return;
    }
    let in_excess = z >= EXCESS_Z;
    for (&(k, excess_only), c) in DIVISORS.iter().zip(counts.iter_mut()) {
        if in_excess || !excess_only {
            c.0 += 1;
            if (y / k).fract() == 0.0 {
                c.1 += 1;
            }
        }
    }
}

/// `-log10` of the chance that so many of a window's cell values are exact multiples, for the
/// divisor where that chance is smallest: with `n` positive values counted for `k`
/// ([`DIVISORS`]) and `d` of them divisible by `k`, the binomial tail `P(Bin(n, 1/k) >= d)`.
/// Ordinary counts are multiples of `k` about one time in `k` or less (small counts rarely
/// reach `k`), so the null is conservative. 0 when nothing is divisible; capped at 300.
fn multiple_evidence(counts: &[(u32, u32); DIVISORS.len()]) -> f64 {
    DIVISORS
        .iter()
        .zip(counts)
        .map(|(&(k, _), &(n, d))| -binomial_upper_tail_ln(n, d, 1.0 / k) / std::f64::consts::LN_10)
        .fold(0.0, f64::max)
        .min(300.0)
}

/// `ln P(Bin(n, p) >= d)`: the first term from `ln Gamma`, each next one by the ratio of
/// successive terms, summed as a running log-sum-exp (`O(n - d)`; no overflow when `d` lies far
/// below the mean, where the terms grow).
fn binomial_upper_tail_ln(n: u32, d: u32, p: f64) -> f64 {
    if d == 0 {
        return 0.0;
    }
    if d > n {
        return f64::NEG_INFINITY;
    }
    let (nf, df) = (f64::from(n), f64::from(d));
    let ln_gamma = mrs_core::special::ln_gamma;
    let mut term = ln_gamma(nf + 1.0) - ln_gamma(df + 1.0) - ln_gamma(nf - df + 1.0)
        + df * p.ln()
        + (nf - df) * (-p).ln_1p();
    let ln_odds = p.ln() - (-p).ln_1p();
    let (mut max, mut sum) = (term, 1.0);
    for i in d..n {
        term += (f64::from(n - i) / f64::from(i + 1)).ln() + ln_odds;
        if term > max {
            sum = sum * (max - term).exp() + 1.0;
            max = term;
        } else {
            sum += (term - max).exp();
        }
    }
    (max + sum.ln()).min(0.0)
}

/// Trailing window and refit cadence (buckets) of the sustained-run inflation fit (the
/// scorer's scale window and daily cadence), and the full season runs are scored under.
fn run_plan(step: i64) -> (usize, usize, usize) {
    let plan = SeasonPlan::new(SeasonSpec::Auto { step_us: step });
    let full = plan.seasons.first().copied().unwrap_or(1);
    (plan.scale_window, plan.per_day, full)
}

/// Calls `f(sku, rows_of_that_sku)` for every sku id below `n_skus`, in id order (an id
/// without rows gets an empty slice); `rows` are grouped by id in increasing order.
fn for_each_sku(
    rows: &[(u32, i64, f64)],
    n_skus: usize,
    mut f: impl FnMut(u32, &[(u32, i64, f64)]),
) {
    let mut i = 0;
    for sku in 0..u32::try_from(n_skus).unwrap_or(u32::MAX) {
        let mut j = i;
        while j < rows.len() && rows[j].0 == sku {
            j += 1;
        }
        f(sku, &rows[i..j]);
        i = j;
    }
}

/// Builds one SKU's cell series on the store grid: `0` at present buckets from its first row
/// (or the checkpoint's `first_hint`, whichever is earlier) on, missing before. Returns that
/// first bucket (grid-relative, negative when before the grid), or `None` for a SKU that
/// never sold.
fn fill_cell(
    sku_rows: &[(u32, i64, f64)],
    first_hint: Option<i64>,
    present: &[bool],
    local: &impl Fn(i64) -> i64,
    y: &mut Vec<f64>,
) -> Option<i64> {
    y.clear();
    y.resize(present.len(), f64::NAN);
    let first_row = sku_rows.iter().map(|r| local(r.1)).min();
    let first = match (first_row, first_hint) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let start = usize::try_from(first.max(0)).unwrap_or(0);
    for (b, v) in y.iter_mut().enumerate().skip(start) {
        if present[b] {
            *v = 0.0;
        }
    }
    for r in sku_rows {
        if let Ok(b) = usize::try_from(local(r.1)) {
            y[b] += r.2;
        }
    }
    Some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::scorer::tests::{Rng, hourly_mean};

    const HOUR: i64 = 3_600_000_000;

    fn store_rows(weeks: usize, skus: u32, seed: u64) -> Vec<(u32, i64, f64)> {
        let mut rng = Rng::new(seed);
        let mut rows = Vec::new();
        for s in 0..skus {
            for t in 0..24 * 7 * weeks {
                let v = rng.poisson(hourly_mean(t, 2.0 + f64::from(s)));
                if v > 0.0 {
                    rows.push((s, t as i64 * HOUR, v));
                }
            }
        }
        rows
    }

    fn names(n: u32) -> Vec<String> {
        (0..n).map(|i| format!("SKU{i:03}")).collect()
    }

    #[test]
    fn quiet_store_has_no_report() {
        for seed in 0..5 {
            let rows = store_rows(4, 8, seed);
            let n = names(8);
            let refs: Vec<&str> = n.iter().map(String::as_str).collect();
            let r = detect_store(&rows, &refs, &DetectConfig::default()).expect("grid");
            assert!(r.is_empty(), "seed {seed}: {r:?}");
        }
    }

    #[test]
    fn outage_and_spike_become_reports() {
        let mut rows = store_rows(4, 8, 1);
        let n = names(8);
        let refs: Vec<&str> = n.iter().map(String::as_str).collect();
        let day = 24 * 7 * 3 + 24 * 2; // Wednesday of week 4
        // a 4-hour outage at 11:00-15:00: every SKU sells zero
        let outage = (day + 11) as i64 * HOUR..(day + 15) as i64 * HOUR;
        rows.retain(|r| !outage.contains(&r.1));
        for s in 0..8 {
            for h in 11..15 {
                rows.push((s, (day + h) as i64 * HOUR, 0.0));
            }
        }
        // SKU005 triples at 18:00 (a x3 slip)
        let spike_ts = (day + 18) as i64 * HOUR;
        rows.push((5, spike_ts, 60.0));
        rows.sort_by_key(|r| (r.0, r.1));
        let reports = detect_store(&rows, &refs, &DetectConfig::default()).expect("grid");
        assert_eq!(reports.len(), 2, "{reports:#?}");
        let drop = &reports[0];
        assert_eq!(drop.direction, "drop");
        assert_eq!(drop.first_detected_from, outage.start);
        assert_eq!(drop.window_end, Some(outage.end));
        assert_eq!(drop.dq_zero_share, 1.0);
        assert!(
            drop.dq_catchup < 0.3,
            "no catch-up after an outage: {drop:#?}"
        );
        assert_eq!(drop.actual_units, 0.0);
        assert!(drop.baseline_units > 0.0 && drop.noise_units > 0.0);
        assert!(drop.severity >= 0.5);
        assert_eq!(drop.total_skus, 8);
        assert_eq!(drop.profile.len(), 4);
        let spike = &reports[1];
        assert_eq!(spike.direction, "spike");
        assert_eq!(spike.first_detected_from, spike_ts);
        assert_eq!(spike.sku_evidence[0].sku, "SKU005");
        assert_eq!(spike.affected_skus, 1);
        assert!(spike.excess_units > 0.0);
        // causality: appending data keeps the reports' starts
        let mut more = rows.clone();
        more.retain(|r| r.1 <= spike_ts + 2 * HOUR);
        let early = detect_store(&more, &refs, &DetectConfig::default()).expect("grid");
        assert_eq!(early[0].first_detected_from, drop.first_detected_from);
        assert_eq!(early[1].first_detected_from, spike_ts);
        assert_eq!(early[1].window_end, None);
    }

    #[test]
    fn binomial_tail_and_multiple_evidence() {
        // P(Bin(3, 1/2) >= 2) = 1/2; P(Bin(10, 1/10) >= 10) = 1e-10
        assert!((binomial_upper_tail_ln(3, 2, 0.5).exp() - 0.5).abs() < 1e-12);
        assert!(
            (binomial_upper_tail_ln(10, 10, 0.1) / std::f64::consts::LN_10 + 10.0).abs() < 1e-9
        );
        assert_eq!(binomial_upper_tail_ln(5, 0, 0.3), 0.0);
        assert_eq!(binomial_upper_tail_ln(5, 6, 0.3), f64::NEG_INFINITY);
        // far below the mean the terms grow past f64's range; the tail is then nearly 1
        let t = binomial_upper_tail_ln(60_000, 1, 0.5);
        assert!(t.is_finite() && t <= 0.0 && t > -1e-9, "{t}");
        // every value even out of 40: 40 log10(2); one multiple of 10 out of 3 is chance
        let mut c = [(0, 0); DIVISORS.len()];
        c[0] = (40, 40);
        assert!((multiple_evidence(&c) - 40.0 * 2f64.log10()).abs() < 1e-9);
        let mut c = [(0, 0); DIVISORS.len()];
        c[2] = (3, 1);
        assert!(multiple_evidence(&c) < 1.0);
        assert_eq!(multiple_evidence(&[(0, 0); DIVISORS.len()]), 0.0);
    }

    #[test]
    fn catch_up_is_read_against_the_noise_of_what_was_missed() {
        // An exact repayment of a clear zero run.
        assert!(catchup_score(60.0, 90.0, 60.0, 40.0) > 0.99);
        // Two hours whose baseline (67) overestimates what the feed withheld: the catch-up
        // bucket repays 37. The relative gap alone scored it 0.55; the gap beyond twice the
        // noise (11.4 units) is 7.
        let noisy = catchup_score(67.0, 100.0, 37.0, 30.0);
        assert!(noisy > 0.85, "{noisy}");
        // After an outage the next bucket is ordinary: nothing is repaid.
        assert_eq!(catchup_score(67.0, 100.0, 2.0, 30.0), 0.0);
        // A night's zeros (0.8 units expected) before a small spike are within noise.
        assert_eq!(catchup_score(0.8, 4.0, 3.0, 3.0), 0.0);
        // A repayment four times the missed units is no catch-up.
        assert_eq!(catchup_score(40.0, 60.0, 160.0, 40.0), 0.0);
        assert_eq!(catchup_score(0.0, 0.0, 50.0, 40.0), 0.0);
        assert_eq!(catchup_score(50.0, 60.0, f64::NAN, 40.0), 0.0);
    }

    #[test]
    fn slipped_values_below_the_alert_threshold_count() {
        // A x10 slip of a volatile low-volume SKU: 20, 20 and 10 where 2 and 1 were expected
        // are in excess (z 2.5-3) without alerting; the ordinary values around them are not
        // counted for 10, and a value at z 1 that happens to be 10 is not either.
        let mut c = [(0, 0); DIVISORS.len()];
        for (y, z) in [
            (20.0, 3.0),
            (20.0, 2.6),
            (10.0, 2.5),
            (3.0, 0.4),
            (1.0, -0.2),
            (0.0, -1.0),
        ] {
            count_multiples(&mut c, y, z);
        }
        assert_eq!(
            c[2],
            (3, 3),
            "three values in excess, three multiples of 10"
        );
        assert!((multiple_evidence(&c) - 3.0).abs() < 1e-9);
        count_multiples(&mut c, 10.0, 1.0);
        assert_eq!(c[2], (3, 3));
        // every positive value counts for 2 and 3
        assert_eq!(c[0], (6, 4));
    }

    #[test]
    fn feed_errors_carry_their_signatures() {
        let mut rows = store_rows(4, 8, 1);
        let n = names(8);
        let refs: Vec<&str> = n.iter().map(String::as_str).collect();
        let day = 24 * 7 * 3 + 24 * 2;
        // 11:00-15:00 the feed sends zeros; at 15:00 each SKU's missed units arrive at once
        let zeros = (day + 11) as i64 * HOUR..(day + 15) as i64 * HOUR;
        let repay = zeros.end;
        let mut missed = [0.0; 8];
        for r in rows.iter_mut().filter(|r| zeros.contains(&r.1)) {
            missed[r.0 as usize] += r.2;
            r.2 = 0.0;
        }
        for (s, m) in missed.iter().enumerate() {
            rows.push((s as u32, repay, *m));
        }
        // the next day 11:00-16:00 SKU003's units arrive x100 (a unit slip)
        let slip = (day + 24 + 11) as i64 * HOUR..(day + 24 + 16) as i64 * HOUR;
        for r in rows.iter_mut().filter(|r| r.0 == 3 && slip.contains(&r.1)) {
            r.2 *= 100.0;
        }
        rows.sort_by_key(|r| (r.0, r.1));
        let reports = detect_store(&rows, &refs, &DetectConfig::default()).expect("grid");
        let drop = reports
            .iter()
            .find(|r| r.direction == "drop" && r.first_detected_from == zeros.start)
            .expect("the zeros are a report");
        assert!(drop.dq_catchup > 0.6, "{drop:#?}");
        let slipped = reports
            .iter()
            .find(|r| r.first_detected_from == slip.start)
            .expect("the slip is a report");
        assert!(slipped.dq_multiple_evidence > 6.0, "{slipped:#?}");
        assert!(drop.dq_multiple_evidence < 2.0, "{drop:#?}");
    }

    /// Rows of a store with an outage, a x3 slip, a lasting level shift of one SKU, a SKU first
    /// sold in week 5 and a few missing hours.
    fn eventful_store(weeks: usize) -> (Vec<(u32, i64, f64)>, Vec<String>) {
        let mut rows = store_rows(weeks, 8, 3);
        let day = 24 * 7 * 4 + 24 * 2;
        let outage = (day + 11) as i64 * HOUR..(day + 15) as i64 * HOUR;
        rows.retain(|r| !outage.contains(&r.1) && r.1 % (HOUR * 131) != 0);
        for s in 0..8 {
            for h in 11..15 {
                rows.push((s, (day + h) as i64 * HOUR, 0.0));
            }
        }
        rows.push((5, (day + 18) as i64 * HOUR, 60.0));
        for r in rows.iter_mut() {
            if r.0 == 2 && r.1 >= (24 * 7 * 5 + 30) as i64 * HOUR {
                r.2 *= 3.0;
            }
        }
        // day-level swings of SKUs 0-3 (shared by neighbouring hours: run sums are inflated)
        let mut rng = Rng::new(98);
        let swing: Vec<f64> = (0..7 * weeks).map(|_| 0.6 + 0.8 * rng.uniform()).collect();
        for r in rows.iter_mut() {
            if r.0 < 4 {
                r.2 = (r.2 * swing[(r.1 / (24 * HOUR)) as usize]).round();
            }
        }
        let mut rng = Rng::new(99);
        for t in 24 * 7 * 5..24 * 7 * weeks {
            let v = rng.poisson(hourly_mean(t, 3.0));
            if v > 0.0 {
                rows.push((8, t as i64 * HOUR, v));
            }
        }
        rows.sort_by_key(|r| (r.0, r.1));
        (rows, names(9))
    }

    /// Detection over rows before `cut` (hours), with its checkpoint.
    fn up_to(
        rows: &[(u32, i64, f64)],
        names: &[String],
        cut: i64,
        resume: Option<&StoreCheckpoint>,
    ) -> (Vec<Report>, StoreCheckpoint) {
        let from = resume.map_or(i64::MIN, |cp| cp.ts_of(cp.first_bucket));
        let part: Vec<(u32, i64, f64)> = rows
            .iter()
            .copied()
            .filter(|r| r.1 < cut * HOUR && r.1 >= from)
            .collect();
        // ids index the names of the SKUs seen so far (the store's history and these rows)
        let mut seen: Vec<u32> = part.iter().map(|r| r.0).collect();
        if let Some(cp) = resume {
            seen.extend(
                cp.skus
                    .iter()
                    .map(|s| names.iter().position(|n| *n == s.sku).expect("known") as u32),
            );
        }
        seen.sort_unstable();
        seen.dedup();
        let ids: Vec<(u32, i64, f64)> = part
            .iter()
            .map(|r| (seen.binary_search(&r.0).expect("seen") as u32, r.1, r.2))
            .collect();
        let refs: Vec<&str> = seen.iter().map(|&i| names[i as usize].as_str()).collect();
        let (reports, cp) =
            detect_store_resumable(&ids, &refs, &DetectConfig::default(), resume, true)
                .expect("grid");
        let cp = cp.expect("a checkpoint");
        let cp = StoreCheckpoint::decode(&cp.encode()).expect("round trip");
        (reports, cp)
    }

    #[test]
    fn resumed_detection_equals_the_full_recompute() {
        let weeks = 7;
        let (rows, names) = eventful_store(weeks);
        let end = (24 * 7 * weeks) as i64;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let full = detect_store(&rows, &refs, &DetectConfig::default()).expect("grid");
        assert!(full.len() >= 2, "{full:#?}");
        for first_cut in [24 * 7 * 2 + 5, 24 * 7 * 4 + 24 * 2 + 12, 24 * 7 * 5 + 31] {
            let (mut reports, mut cp) = up_to(&rows, &names, first_cut, None);
            let mut inflated = false;
            // then resume in steps of 1, 7 and 50 hours to the end
            let mut cut = first_cut;
            for step in [1, 7, 50].into_iter().cycle() {
                if cut >= end {
                    break;
                }
                cut = (cut + step).min(end);
                let resume_ts = cp.ts_of(cp.resume_bucket);
                reports.retain(|r| r.first_detected_from < resume_ts);
                let (more, next) = up_to(&rows, &names, cut, Some(&cp));
                assert!(more.iter().all(|r| r.first_detected_from >= resume_ts));
                reports.extend(more);
                assert!(next.resume_bucket >= cp.resume_bucket);
                assert!(next.len() <= horizon(HOUR));
                inflated |= next
                    .skus
                    .iter()
                    .any(|s| s.series.inflation.iter().any(|&f| f > 1.0));
                cp = next;
            }
            // as_of describes the run that wrote a report (outside its content)
            let plain = |r: &[Report]| -> Vec<Report> {
                r.iter()
                    .map(|r| Report {
                        as_of: 0,
                        ..r.clone()
                    })
                    .collect()
            };
            assert_eq!(plain(&reports), plain(&full), "first cut {first_cut}");
            assert!(inflated, "the runs' inflation is carried, not only 1");
        }
    }

    #[test]
    fn a_checkpoint_of_other_settings_is_refused() {
        let (rows, names) = eventful_store(5);
        let (_, cp) = up_to(&rows, &names, 24 * 7 * 5 - 3, None);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let cfg = DetectConfig {
            z_alert: 4.0,
            ..DetectConfig::default()
        };
        let err = detect_store_resumable(&rows, &refs, &cfg, Some(&cp), true);
        assert!(matches!(err, Err(GridError::BadCheckpoint(_))), "{err:?}");
    }

    #[test]
    fn degenerate_stores() {
        let cfg = DetectConfig::default();
        assert!(detect_store(&[], &[], &cfg).expect("grid").is_empty());
        assert!(
            detect_store(&[(0, 0, 1.0)], &["a"], &cfg)
                .expect("grid")
                .is_empty()
        );
        let constant: Vec<(u32, i64, f64)> =
            (0..24 * 7 * 3).map(|t| (0, t as i64 * HOUR, 3.0)).collect();
        assert!(
            detect_store(&constant, &["a"], &cfg)
                .expect("grid")
                .is_empty()
        );
    }
}
