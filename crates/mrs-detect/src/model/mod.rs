//! The detection maths in plain Rust (no Arrow): grids, the causal robust seasonal scorer,
//! windows, and the store-level detector behind `mrs_detect`. The SQL functions in
//! [`crate::functions`] only convert Arrow data to and from these modules.

pub mod checkpoint;
pub mod counts;
pub mod grid;
pub mod robust;
pub mod scorer;
pub mod store;
pub mod sustained;
pub mod windows;

use grid::{MAX_BUCKETS, SeasonPlan, SeasonSpec, bucket_of, infer_step};
use scorer::{Scorer, Scores};

/// Largest absolute value the models use; beyond it a value is ignored like NaN. No series
/// value that large is meaningful (sales input quarantines units beyond 1e9), and sums of a few
/// values near `f64::MAX` overflow to infinity (found by property tests).
pub const MAX_ABS_VALUE: f64 = 1e15;

/// Whether a value is usable by the models: finite and within [`MAX_ABS_VALUE`].
#[inline]
pub fn usable(v: f64) -> bool {
    v.abs() <= MAX_ABS_VALUE
}

/// Per-row outputs of [`score_rows`].
#[derive(Debug, Default, Clone)]
pub struct RowScores {
    /// Baseline of the row's bucket (`None`: NULL input or unscored bucket).
    pub baseline: Vec<Option<f64>>,
    /// Score in [0, 1] of the row's bucket.
    pub score: Vec<Option<f64>>,
}

/// Why a series could not be put on a grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GridError {
    /// The series spans more than [`MAX_BUCKETS`] buckets.
    TooManyBuckets(i64),
    /// A checkpoint that cannot resume this detection (other settings, damaged).
    BadCheckpoint(String),
}

/// Scores rows `(ts micros, value)` of one series in any order: rows sharing a bucket are
/// averaged; a row's outputs are its bucket's. `None`, non-finite or larger than
/// [`MAX_ABS_VALUE`] values give `None`.
/// `season` overrides the automatic weekly/daily/level plan with a fixed season length.
pub fn score_rows(
    ts: &[Option<i64>],
    values: &[Option<f64>],
    season: Option<usize>,
    z_alert: f64,
) -> Result<RowScores, GridError> {
    let n = ts.len();
    let mut out = RowScores {
        baseline: vec![None; n],
        score: vec![None; n],
    };
    let valid = |i: usize| match (ts[i], values[i]) {
        (Some(t), Some(v)) if usable(v) => Some((t, v)),
        _ => None,
    };
    let mut uniq: Vec<i64> = (0..n).filter_map(|i| valid(i).map(|(t, _)| t)).collect();
    uniq.sort_unstable();
    uniq.dedup();
    let Some(&origin) = uniq.first() else {
        return Ok(out);
    };
    let step = match infer_step(&uniq) {
        Some(s) => s,
        None => return Ok(out), // a single bucket: nothing to compare with
    };
    let last = bucket_of(*uniq.last().unwrap_or(&origin), origin, step);
    if last >= MAX_BUCKETS {
        return Err(GridError::TooManyBuckets(last.saturating_add(1)));
    }
    let len = usize::try_from(last + 1).unwrap_or(0);
    let mut sum = vec![0.0; len];
    let mut cnt = vec![0u32; len];
    let mut bucket = vec![usize::MAX; n];
    for (i, slot) in bucket.iter_mut().enumerate() {
        if let Some((t, v)) = valid(i) {
            let b = usize::try_from(bucket_of(t, origin, step)).unwrap_or(0);
            *slot = b;
            sum[b] += v;
            cnt[b] += 1;
        }
    }
    let y: Vec<f64> = sum
        .iter()
        .zip(&cnt)
        .map(|(s, c)| if *c == 0 { f64::NAN } else { s / f64::from(*c) })
        .collect();
    let spec = match season {
        Some(s) => SeasonSpec::Fixed(s),
        None => SeasonSpec::Auto { step_us: step },
    };
    let mut scorer = Scorer::new(SeasonPlan::new(spec), z_alert);
    let mut scores = Scores::default();
    scorer.score(&y, &mut scores);
    for (i, &b) in bucket.iter().enumerate() {
        if b == usize::MAX || scores.z[b].is_nan() {
            continue;
        }
        out.baseline[i] = Some(scores.baseline[b]);
        out.score[i] = Some(scores.score(b, z_alert));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_near_the_float_limit_are_ignored_not_summed_to_infinity() {
        // Regression (property test): one f64::MAX in a series made baselines infinite.
        let hour = 3_600_000_000i64;
        let ts: Vec<Option<i64>> = (0..24 * 21).map(|h| Some(h * hour)).collect();
        let mut values: Vec<Option<f64>> = (0..24 * 21).map(|h| Some(f64::from(h % 24))).collect();
        values[24 * 15] = Some(f64::MAX);
        values[24 * 15 + 1] = Some(f64::MAX);
        let out = score_rows(&ts, &values, None, 3.5).expect("scored");
        assert!(out.baseline[24 * 15].is_none());
        assert!(out.baseline.iter().flatten().all(|b| b.is_finite()));
        assert!(out.score.iter().flatten().all(|s| (0.0..=1.0).contains(s)));
    }

    #[test]
    fn rows_in_any_order_with_nulls() {
        let hour = 3_600_000_000i64;
        let n = 24 * 7 * 3;
        let mut ts: Vec<Option<i64>> = (0..n).map(|i| Some(i as i64 * hour)).collect();
        let mut v: Vec<Option<f64>> = (0..n).map(|i| Some((i % 24) as f64 + 10.0)).collect();
        v[n - 1] = Some(500.0);
        v[n - 2] = None;
        v[n - 3] = Some(f64::NAN);
        ts[n - 4] = None;
        ts.reverse();
        v.reverse();
        let out = score_rows(&ts, &v, None, 5.0).expect("grid");
        assert_eq!(out.score[0], Some(1.0));
        assert_eq!(out.score[1], None);
        assert_eq!(out.score[2], None);
        assert_eq!(out.score[3], None);
        assert_eq!(out.baseline[n - 1], None); // first bucket: warm-up
        let out = score_rows(&[], &[], None, 5.0).expect("grid");
        assert!(out.score.is_empty());
        let out = score_rows(&[Some(1)], &[Some(1.0)], None, 5.0).expect("grid");
        assert_eq!(out.score, vec![None]);
        assert!(
            score_rows(
                &[Some(0), Some(1), Some(i64::MAX)],
                &[Some(1.0); 3],
                None,
                5.0
            )
            .is_err()
        );
    }
}
