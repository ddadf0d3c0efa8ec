//! The store-level detector behind `mrs_detect`: every SKU cell series and the store-total
//! series are scored with the same [`Scorer`], bucket decisions are combined, and windows
//! become reports with their evidence and data-quality features.
//!
//! | step | rule |
//! |---|---|
//! | grid | store step = most common positive difference of the store's distinct timestamps; buckets without any store row are missing |
//! | cell value | sum of the SKU's units in the bucket; `0` when the store has rows but the SKU none (from the SKU's first row on); missing before it |
//! | store total | sum over all SKUs, scored as its own series |
//! | store bucket anomalous | store-total `abs(z) >= z_alert`, or some cell `abs(z) >= z_cell = sqrt(z_alert^2 + 2 ln m)` (Bonferroni for `m` SKUs via the Gaussian tail `exp(-z^2/2)`), or at least [`MIN_SAME_DIRECTION_CELLS`] cells with `abs(z) >= z_alert` in the same direction |
//! | sustained run | where no single bucket decided: the strongest sustained run ending at the bucket ([`super::sustained`], spans 2-8, buckets already anomalous are not evidence) of the store total (threshold `sqrt(z_alert^2 + 2 ln 4)`) or of one cell (`sqrt(z_alert^2 + 2 ln 4m)`); the bucket is anomalous and its window may open at the run's first bucket (never before a decided window, see [`build_windows`]) |
//! | direction | the store total's sign when it is anomalous, else the strongest cell's / the majority direction / the run's sign |
//! | bucket score | `max(store score, cell score)`, cell score = `clamp(abs(z_max) / (2 z_cell), 0.5, 1)` when cell-driven; `clamp(abs(Z) / (2 threshold), 0.5, 1)` for a run |
//! | windows | [`build_windows`] over the grid |
//! | reported | a window with at least 2 anomalous buckets, or a lone bucket whose score reaches [`LONE_BUCKET_SCORE`] = `0.5 * sqrt(2)` (the Stouffer combination of two buckets at the alert threshold: `abs(z) >= sqrt(2) z_alert`); a lone weaker alert is noise far more often than an anomaly, which lasts. Causal: the report appears when its second anomalous bucket (or a strong first one) arrives, with `first_detected_from` = the window's first bucket, so a replay gives the same ids |
//!
//! Per-window sums run from the first to the last anomalous bucket over present buckets; a
//! present bucket without a store baseline (store warm-up) counts its actual as baseline.
//! `alerted_at` is the bucket at which the window first qualified as a report (its second
//! anomalous bucket, a run's last bucket, or a strong first bucket).
//! Cost: `O(rows + skus * buckets)` for scoring (twice when the store has windows: the second
//! pass gathers SKU evidence instead of keeping every cell's baseline in memory), and
//! `O(skus * buckets)` memory for the cells' z values the sustained runs read after the
//! single-bucket decisions.

use super::GridError;
use super::grid::{MAX_BUCKETS, SeasonPlan, SeasonSpec, bucket_of, infer_step};
use super::robust::median_in_place;
use super::scorer::{Scorer, Scores, score_of};
use super::sustained::{Run, Sustained, extend_full_season_z, sustained_threshold};
use super::windows::{Point, build_windows};

/// Cells agreeing in direction that make a store bucket anomalous.
pub const MIN_SAME_DIRECTION_CELLS: u32 = 3;
/// Score a window with a single anomalous bucket must reach to be reported: the Stouffer
/// combination of two buckets at the alert threshold, `sqrt(2) z_alert` (score 0.5 is the
/// threshold).
pub const LONE_BUCKET_SCORE: f64 = 0.5 * std::f64::consts::SQRT_2;
/// SKU evidence entries per report.
pub const MAX_EVIDENCE: usize = 20;
/// Profile buckets per report.
pub const MAX_PROFILE: usize = 336;
/// Default number of normal buckets that close a window.
pub const DEFAULT_END_AFTER: usize = 3;
/// Multiples that mark a data error (duplicated feeds, unit slips).
const MULTIPLES: [f64; 5] = [2.0, 3.0, 10.0, 100.0, 1000.0];

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
#[expect(
    clippy::needless_range_loop,
    reason = "several parallel per-bucket arrays are indexed by bucket"
)]
pub fn detect_store(
    rows: &[(u32, i64, f64)],
    sku_names: &[&str],
    cfg: &DetectConfig,
) -> Result<Vec<Report>, GridError> {
    let mut uniq: Vec<i64> = rows.iter().map(|r| r.1).collect();
    uniq.sort_unstable();
    uniq.dedup();
    let (Some(&origin), Some(step)) = (uniq.first(), infer_step(&uniq)) else {
        return Ok(Vec::new());
    };
    let last = bucket_of(*uniq.last().unwrap_or(&origin), origin, step);
    if last >= MAX_BUCKETS {
        return Err(GridError::TooManyBuckets(last.saturating_add(1)));
    }
    let len = usize::try_from(last + 1).unwrap_or(0);
    let ts_of = |b: usize| origin + step * b as i64;
    let bucket = |ts: i64| usize::try_from(bucket_of(ts, origin, step)).unwrap_or(0);

    let mut present = vec![false; len];
    let mut total = vec![0.0f64; len];
    let mut negatives = vec![0i64; len];
    for &(_, ts, u) in rows {
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
    scorer.score(&store_y, &mut store);
    let (window, per_day, full_season) = run_plan(step);
    // Full-season cell z values, kept for the sustained runs once single buckets are decided.
    let mut cell_z: Vec<f64> = Vec::new();

    // Pass 1: cells.
    let n_skus = sku_names.len().max(1);
    let z_cell = (cfg.z_alert * cfg.z_alert + 2.0 * (n_skus as f64).ln()).sqrt();
    let mut agg = vec![CellAgg::default(); len];
    let mut flagged: Vec<FlaggedCell> = Vec::new();
    let mut y = Vec::with_capacity(len);
    let mut cell = Scores::default();
    for_each_sku(rows, |sku, sku_rows| {
        fill_cell(sku_rows, &present, &bucket, &mut y);
        scorer.score(&y, &mut cell);
        extend_full_season_z(&cell, full_season, &mut cell_z);
        let mut last_normal = f64::NAN;
        for b in 0..len {
            let z = cell.z[b];
            if z.is_nan() {
                if !y[b].is_nan() && y[b] != 0.0 {
                    last_normal = y[b];
                }
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
            } else if y[b] != 0.0 {
                last_normal = y[b];
            }
        }
    });

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
    let mut run_z = Vec::with_capacity(len);
    let mut runs = Vec::new();
    let mut sustained = Sustained::default();
    let mask_decided = |z: &[f64], out: &mut Vec<f64>| {
        out.clear();
        out.extend(z.iter().zip(&points).map(|(&v, p)| {
            if matches!(p, Point::Anomalous { .. }) {
                f64::NAN
            } else {
                v
            }
        }));
    };
    let mut full = Vec::with_capacity(len);
    extend_full_season_z(&store, full_season, &mut full);
    mask_decided(&full, &mut run_z);
    sustained.runs(&run_z, cfg.z_alert, window, per_day, &mut runs);
    let z_run_store = sustained_threshold(cfg.z_alert, 1);
    let mut best_run: Vec<Option<(Run, f64)>> = runs
        .iter()
        .map(|r| {
            r.filter(|r| r.z.abs() >= z_run_store)
                .map(|r| (r, z_run_store))
        })
        .collect();
    let z_run_cell = sustained_threshold(cfg.z_alert, n_skus);
    for z in cell_z.chunks_exact(len.max(1)) {
        mask_decided(z, &mut run_z);
        sustained.runs(&run_z, z_cell, window, per_day, &mut runs);
        for (best, r) in best_run.iter_mut().zip(&runs) {
            if let Some(r) = r
                && r.z.abs() >= z_run_cell
                && best.is_none_or(|(b, t)| r.z.abs() / z_run_cell > b.z.abs() / t)
            {
                *best = Some((*r, z_run_cell));
            }
        }
    }
    for b in 0..len {
        if let (Point::Normal, Some((run, threshold))) = (points[b], best_run[b]) {
            bucket_score[b] = (run.z.abs() / (2.0 * threshold)).clamp(0.5, 1.0);
            points[b] = Point::Run {
                direction: if run.z > 0.0 { 1 } else { -1 },
                score: bucket_score[b],
                start: run.start,
            };
        }
    }
    let mut windows = build_windows(points, cfg.end_after);
    windows.retain(|w| w.anomalous >= 2 || w.peak_score >= LONE_BUCKET_SCORE);
    if windows.is_empty() {
        return Ok(Vec::new());
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
            let catchup = if w.direction > 0 {
                let mut missed = 0.0;
                let mut b = s;
                let mut run = 0;
                while b > 0 && run < MAX_PROFILE {
                    b -= 1;
                    if !present[b] {
                        continue;
                    }
                    if total[b] != 0.0 {
                        break;
                    }
                    missed += store_baseline(b).max(0.0);
                    run += 1;
                }
                if missed > 0.0 {
                    (1.0 - (excess - missed).abs() / missed).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            } else {
                0.0
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
                total_skus: sku_names.len() as i64,
                sku_evidence: Vec::new(),
                profile,
                dq_ratio: if ratios.is_empty() {
                    None
                } else {
                    Some(median_in_place(&mut ratios))
                },
                dq_integer_multiple_share: share(|c| c.multiple),
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

    // Pass 2: SKU evidence per window.
    let mut evidence: Vec<Vec<SkuEvidence>> = vec![Vec::new(); windows.len()];
    for_each_sku(rows, |sku, sku_rows| {
        fill_cell(sku_rows, &present, &bucket, &mut y);
        scorer.score(&y, &mut cell);
        for (w, ev) in windows.iter().zip(evidence.iter_mut()) {
            let (mut act, mut base, mut peak, mut seen) = (0.0, 0.0, 0.0f64, false);
            for b in w.start..=w.last {
                if y[b].is_nan() {
                    continue;
                }
                seen = true;
                act += y[b];
                base += if cell.baseline[b].is_nan() {
                    y[b]
                } else {
                    cell.baseline[b]
                };
                let sc = cell.score(b, cfg.z_alert);
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
    });
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
    Ok(reports)
}

/// Calls `f(sku, rows_of_that_sku)` for each run of equal sku ids.
/// Trailing window and refit cadence (buckets) of the sustained-run inflation fit (the
/// scorer's scale window and daily cadence), and the full season runs are scored under.
fn run_plan(step: i64) -> (usize, usize, usize) {
    let plan = SeasonPlan::new(SeasonSpec::Auto { step_us: step });
    let full = plan.seasons.first().copied().unwrap_or(1);
    (plan.scale_window, plan.per_day, full)
}

fn for_each_sku(rows: &[(u32, i64, f64)], mut f: impl FnMut(u32, &[(u32, i64, f64)])) {
    let mut i = 0;
    while i < rows.len() {
        let sku = rows[i].0;
        let mut j = i + 1;
        while j < rows.len() && rows[j].0 == sku {
            j += 1;
        }
        f(sku, &rows[i..j]);
        i = j;
    }
}

/// Builds one SKU's cell series on the store grid.
fn fill_cell(
    sku_rows: &[(u32, i64, f64)],
    present: &[bool],
    bucket: &impl Fn(i64) -> usize,
    y: &mut Vec<f64>,
) {
    y.clear();
    y.resize(present.len(), f64::NAN);
    let first = sku_rows.iter().map(|r| bucket(r.1)).min().unwrap_or(0);
    for (b, v) in y.iter_mut().enumerate().skip(first) {
        if present[b] {
            *v = 0.0;
        }
    }
    for r in sku_rows {
        y[bucket(r.1)] += r.2;
    }
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
