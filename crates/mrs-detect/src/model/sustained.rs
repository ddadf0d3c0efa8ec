//! Sustained evidence: anomalies too weak to cross the alert threshold in any single bucket but
//! unmistakable over a few buckets (a promotion lifting one SKU by 3-4 noise units for a day).
//!
//! For a series of robust z values (`NaN` = unscored), bucket `t` gets, for each span
//! `k` in [`SPANS`], the Stouffer statistic of the last `k` grid buckets:
//!
//! | step | rule |
//! |---|---|
//! | evidence | the z values below `alone` in absolute value (`alone` = the level at which a bucket is an alert by itself): alerts speak for themselves, and leaving them out keeps an outage's strong buckets from echoing as a run into the normal buckets after it |
//! | sum | `S_k(t) = sum of z_j, j in (t - k, t]`, over the `n` buckets with evidence; needs `n >= k / 2 + 1` and `z_t` itself on the side of the sum; summed in fixed point (`2^-32`), so that a sum does not depend on where the series' prefix starts (a resumed detection starts it at its checkpoint) |
//! | still going | the most recent half of the span (`ceil(k / 2)` buckets, `t` included) must carry evidence on the same side, `abs(sum) / sqrt(n) >= ` [`RECENT_Z`]: a run is about now, not an echo of buckets that were anomalous earlier |
//! | inflation | `f_k = max(1, q95(abs(S_k)) / (1.96 sqrt(k)))`, from the 95th percentile of the complete `k`-sums of the last [`RUN_WINDOWS`] scale windows (four weeks), refitted once per day: heavy tails of a product's noise and baseline errors shared by neighbouring buckets make sums wider than `sqrt(k)` standard normals, and the data say by how much; never below the independent value |
//! | statistic | `Z_k(t) = S_k(t) / (sqrt(n) f_k)` |
//! | result | the span with the largest `abs(Z_k)`, and the first bucket of that span whose z has the statistic's sign (where the run starts) |
//!
//! Callers pass only z values whose baseline comes from the series' full season (see
//! [`extend_full_season_z`]): during the daily-season part of the warm-up, a weekday/weekend bias
//! shared by neighbouring hours would read as a run.
//!
//! Causal: `Z_k(t)` uses z values up to `t` and an inflation fitted on buckets before `t`.
//! Cost: `O(n * |SPANS|)` plus the daily refit, `O(|SPANS| * W)` per day; no allocation per
//! bucket (buffers are reused).

use super::scorer::Scores;

/// Spans (in buckets) over which evidence is accumulated.
pub const SPANS: [usize; 4] = [2, 3, 4, 8];
/// Evidence the most recent half of a run must carry on its own.
pub const RECENT_Z: f64 = 2.0;
/// Scale windows of history the inflation is fitted on.
pub const RUN_WINDOWS: usize = 4;
/// Two-sided 95% point of a standard normal.
const Z_95: f64 = 1.959_963_984_540_054;
/// Complete sums needed before the inflation is estimated.
const MIN_SUMS: usize = 48;
/// Evidence is summed in fixed point, in units of `2^-32`: window sums taken as differences of
/// prefix sums are then exact, so a resumed detection, whose prefix starts at its checkpoint's
/// first bucket, gets the very sums of a run over the whole history (float prefixes carry the
/// rounding of everything before the window). Evidence is below its alert level in magnitude,
/// so 2M buckets of it stay far inside `i64`.
const FIXED_ONE: f64 = 4_294_967_296.0;

/// The strongest sustained run ending at a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    /// Signed Stouffer statistic.
    pub z: f64,
    /// First bucket of the run.
    pub start: usize,
    /// Bucket the run ends at (where it was found).
    pub end: usize,
}

/// Computes sustained runs, reusing buffers across series.
#[derive(Debug, Default, Clone)]
pub struct Sustained {
    /// Prefix sums of the evidence (none = 0; fixed point, [`FIXED_ONE`]) and of its count.
    sum: Vec<i64>,
    cnt: Vec<u32>,
    tmp: Vec<f64>,
    heap: Vec<u64>,
}

impl Sustained {
    /// Runs for every bucket of `z` (`None` where unscored, an alert by itself, or too short).
    /// `window` is the trailing window of the inflation fit and `per_day` its refit cadence,
    /// in buckets.
    pub fn runs(
        &mut self,
        z: &[f64],
        alone: f64,
        window: usize,
        per_day: usize,
        out: &mut Vec<Option<Run>>,
    ) {
        let alone = vec![alone; z.len()];
        self.runs_from(z, &alone, window, per_day, (0, 0, [1.0; SPANS.len()]), out);
    }

    /// [`Self::runs`] with a level `alone[t]` per bucket (the alert level of a cell depends on
    /// how many SKUs the store sells by then), for the buckets from `from` on, resumed with
    /// `resume = (from, next_fit, inflation)`: the refit schedule and the inflation in force
    /// there (see [`next_fit_at`] and [`Self::inflation_at`]). A resumed detection gives those
    /// buckets what a run over the whole series gave them, provided `z` reaches back over the
    /// inflation window ([`run_horizon`]).
    #[expect(
        clippy::needless_range_loop,
        reason = "z, alone and out are indexed by bucket"
    )]
    pub fn runs_from(
        &mut self,
        z: &[f64],
        alone: &[f64],
        window: usize,
        per_day: usize,
        resume: (usize, usize, [f64; SPANS.len()]),
        out: &mut Vec<Option<Run>>,
    ) {
        let (from, next_fit, inflation) = resume;
        let n = z.len().min(alone.len());
        out.clear();
        out.resize(n, None);
        let evidence = |j: usize| z[j].abs() < alone[j];
        self.prefix(z, alone);
        let window = window.max(1);
        let per_day = per_day.max(1);
        let mut inflation = inflation;
        let mut next_fit = next_fit;
        for t in from..n {
            if !evidence(t) {
                continue;
            }
            if t >= next_fit {
                for (f, &k) in inflation.iter_mut().zip(&SPANS) {
                    *f = self.inflation(k, t.saturating_sub(RUN_WINDOWS * window), t);
                }
                next_fit = t + per_day;
            }
            let mut best: Option<Run> = None;
            for (&k, &f) in SPANS.iter().zip(&inflation) {
                if t + 1 < k {
                    break;
                }
                let (s, c) = self.window_sum(t + 1 - k, t + 1);
                if (c as usize) < k / 2 + 1 {
                    continue;
                }
                let zk = s / (f64::from(c).sqrt() * f);
                let (recent, rc) = self.window_sum(t + 1 - k.div_ceil(2), t + 1);
                let going = rc > 0 && recent * zk.signum() / f64::from(rc).sqrt() >= RECENT_Z;
                if going && best.is_none_or(|b| zk.abs() > b.z.abs()) {
                    let sign = zk.signum();
                    let start = (t + 1 - k..=t)
                        .find(|&j| evidence(j) && z[j] * sign > 0.0)
                        .unwrap_or(t);
                    best = Some(Run {
                        z: zk,
                        start,
                        end: t,
                    });
                }
            }
            out[t] = best;
        }
    }

    /// Prefix sums of the evidence and of its count.
    fn prefix(&mut self, z: &[f64], alone: &[f64]) {
        let n = z.len().min(alone.len());
        self.sum.clear();
        self.cnt.clear();
        self.sum.push(0);
        self.cnt.push(0);
        for i in 0..n {
            let e = z[i].abs() < alone[i];
            // `as` saturates; evidence is bounded by its alert level anyway.
            let fixed = if e {
                (z[i] * FIXED_ONE).round() as i64
            } else {
                0
            };
            self.sum.push(self.sum[i].saturating_add(fixed));
            self.cnt.push(self.cnt[i] + u32::from(e));
        }
    }

    /// The inflation refitted at bucket `t` (for a checkpoint: the one in force after it).
    pub fn inflation_at(
        &mut self,
        z: &[f64],
        alone: &[f64],
        window: usize,
        t: usize,
    ) -> [f64; SPANS.len()] {
        self.prefix(z, alone);
        let t = t.min(self.cnt.len().saturating_sub(1));
        let mut out = [1.0; SPANS.len()];
        for (f, &k) in out.iter_mut().zip(&SPANS) {
            *f = self.inflation(k, t.saturating_sub(RUN_WINDOWS * window.max(1)), t);
        }
        out
    }

    /// Sum and scored count of buckets `[from, to)`.
    fn window_sum(&self, from: usize, to: usize) -> (f64, u32) {
        (
            self.sum[to].saturating_sub(self.sum[from]) as f64 / FIXED_ONE,
            self.cnt[to] - self.cnt[from],
        )
    }

    /// `max(1, q95(abs(S)) / (1.96 sqrt(k)))` from the complete `k`-sums in `[from, to)`.
    fn inflation(&mut self, k: usize, from: usize, to: usize) -> f64 {
        self.tmp.clear();
        for end in from.max(k)..=to {
            let (s, c) = self.window_sum(end - k, end);
            if c as usize == k {
                self.tmp.push(s.abs());
            }
        }
        if self.tmp.len() < MIN_SUMS {
            return 1.0;
        }
        let at = (self.tmp.len() * 95 / 100).min(self.tmp.len() - 1);
        let q95 = upper_order_statistic(&self.tmp, self.tmp.len() - at, &mut self.heap);
        let f = q95 / (Z_95 * (k as f64).sqrt());
        if f.is_finite() { f.max(1.0) } else { 1.0 }
    }
}

/// The `m`-th largest of `values` (`1 <= m <= values.len()`), all of them with the sign bit
/// clear: the element `select_nth_unstable_by(len - m, f64::total_cmp)` picks, found with a
/// min-heap of the `m` largest bit patterns (for such values `total_cmp` orders as their bits).
/// Cheaper than a selection over the whole slice when `m` is a small share of it, as for the
/// 95th percentile, and it leaves `values` untouched.
fn upper_order_statistic(values: &[f64], m: usize, heap: &mut Vec<u64>) -> f64 {
    heap.clear();
    let m = m.clamp(1, values.len().max(1));
    for &v in values {
        let b = v.to_bits();
        if heap.len() < m {
            // sift up
            heap.push(b);
            let mut i = heap.len() - 1;
            while i > 0 {
                let parent = (i - 1) / 2;
                if heap[parent] <= heap[i] {
                    break;
                }
                heap.swap(parent, i);
                i = parent;
            }
        } else if b > heap[0] {
            // replace the smallest and sift down
            heap[0] = b;
            let mut i = 0;
            loop {
                let (l, r) = (2 * i + 1, 2 * i + 2);
                let mut smallest = i;
                if l < m && heap[l] < heap[smallest] {
                    smallest = l;
                }
                if r < m && heap[r] < heap[smallest] {
                    smallest = r;
                }
                if smallest == i {
                    break;
                }
                heap.swap(i, smallest);
                i = smallest;
            }
        }
    }
    heap.first().map_or(f64::NAN, |&b| f64::from_bits(b))
}

/// The refit schedule of [`Sustained::runs_from`] carried from `from` (where it stood at
/// `next_fit`) to bucket `q`: the inflation is refitted at the first evidence bucket at or
/// after `next_fit`, then a day later.
/// Returns the schedule at `q` and the last refit before it (if any since `from`).
pub fn next_fit_at(
    z: &[f64],
    alone: &[f64],
    per_day: usize,
    from: usize,
    next_fit: usize,
    q: usize,
) -> (usize, Option<usize>) {
    let mut next = next_fit;
    let mut last = None;
    for (t, (v, a)) in z.iter().zip(alone).enumerate().take(q).skip(from) {
        if v.abs() < *a && t >= next {
            next = t + per_day.max(1);
            last = Some(t);
        }
    }
    (next, last)
}

/// Longest look-back of a run at a bucket: the inflation window and the longest span.
pub fn run_horizon(window: usize) -> usize {
    RUN_WINDOWS * window.max(1) + SPANS[SPANS.len() - 1]
}

/// Appends to `out` the z values of `scores` whose baseline used `full_season` (the longest
/// season of the plan), `NaN` elsewhere.
pub fn extend_full_season_z(scores: &Scores, full_season: usize, out: &mut Vec<f64>) {
    out.extend(scores.z.iter().zip(&scores.season).map(|(&z, &s)| {
        if s as usize == full_season {
            z
        } else {
            f64::NAN
        }
    }));
}

/// Threshold on a sustained statistic for `tests` simultaneous series: the single-bucket
/// alert `z_alert` with a Bonferroni correction for the series and the spans tried, via the
/// Gaussian tail `exp(-z^2 / 2)`.
pub fn sustained_threshold(z_alert: f64, tests: usize) -> f64 {
    let m = (tests.max(1) * SPANS.len()) as f64;
    (z_alert * z_alert + 2.0 * m.ln()).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::scorer::tests::{Rng, hourly_mean, hourly_scorer};

    fn runs_of(y: &[f64]) -> (Scores, Vec<Option<Run>>) {
        let mut scores = Scores::default();
        hourly_scorer().score(y, &mut scores);
        let mut z = Vec::new();
        extend_full_season_z(&scores, 168, &mut z);
        assert!(z[..336].iter().all(|v| v.is_nan()));
        let mut out = Vec::new();
        Sustained::default().runs(&z, 5.0, 168, 24, &mut out);
        (scores, out)
    }

    #[test]
    fn a_moderate_step_is_found_where_it_starts() {
        let mut rng = Rng::new(21);
        let n = 24 * 7 * 5;
        let start = 24 * 7 * 4 + 10;
        let y: Vec<f64> = (0..n)
            .map(|t| {
                let mean = hourly_mean(t, 6.0);
                let lift = if (start..start + 12).contains(&t) {
                    3.5 * mean.sqrt()
                } else {
                    0.0
                };
                rng.poisson(mean + lift)
            })
            .collect();
        let (scores, runs) = runs_of(&y);
        let threshold = sustained_threshold(5.0, 25);
        let first = (0..n).find(|&t| runs[t].is_some_and(|r| r.z >= threshold));
        let t = first.expect("the step is found");
        assert!(t < start + 8, "found at {t}, step starts at {start}");
        let run = runs[t].expect("run");
        // The run opens at the first bucket of its span on its side: a noise bucket just
        // before the step may be that bucket.
        assert!(run.start + 1 >= start && run.start <= start + 2, "{run:?}");
        // no single bucket reached the alert on its own before the run was found
        assert!(
            (start..t).all(|b| scores.z[b].abs() < 5.0 || t == b),
            "{:?}",
            &scores.z[start..=t]
        );
    }

    #[test]
    fn noise_does_not_make_runs() {
        let threshold = sustained_threshold(5.0, 25);
        for seed in 0..40u64 {
            let mut rng = Rng::new(seed + 100);
            let base = [0.2, 1.0, 4.0, 20.0][(seed % 4) as usize];
            let y: Vec<f64> = (0..24 * 7 * 6)
                .map(|t| rng.poisson(hourly_mean(t, base)))
                .collect();
            let (_, runs) = runs_of(&y);
            let hits: Vec<usize> = (0..y.len())
                .filter(|&t| runs[t].is_some_and(|r| r.z.abs() >= threshold))
                .collect();
            assert!(hits.is_empty(), "seed {seed}: {hits:?}");
        }
    }

    #[test]
    fn alerts_do_not_echo_as_runs() {
        let mut z = vec![0.3; 300];
        for v in &mut z[200..204] {
            *v = -40.0;
        }
        let mut out = Vec::new();
        Sustained::default().runs(&z, 5.0, 168, 24, &mut out);
        assert!(out[200..204].iter().all(Option::is_none));
        let threshold = sustained_threshold(5.0, 1);
        assert!(out.iter().flatten().all(|r| r.z.abs() < threshold));
    }

    /// The heap picks what a full selection picks, ties and zeros included.
    #[test]
    fn upper_order_statistic_equals_selection() {
        let mut rng = Rng::new(5);
        let mut heap = Vec::new();
        for n in [1usize, 2, 3, 20, 48, 100, 673] {
            let values: Vec<f64> = (0..n)
                .map(|i| match i % 7 {
                    0 => 0.0,
                    1 => 1.5,
                    _ => (rng.uniform() * 10.0).floor() / 4.0,
                })
                .collect();
            for at in [0, n / 2, n * 95 / 100, n - 1] {
                let at = at.min(n - 1);
                let mut sel = values.clone();
                let want = *sel.select_nth_unstable_by(at, f64::total_cmp).1;
                let got = upper_order_statistic(&values, n - at, &mut heap);
                assert_eq!(got.to_bits(), want.to_bits(), "n {n} at {at}");
            }
        }
    }

    #[test]
    fn degenerate_inputs() {
        let mut out = Vec::new();
        let mut s = Sustained::default();
        s.runs(&[], 5.0, 168, 24, &mut out);
        assert!(out.is_empty());
        s.runs(&[f64::NAN; 5], 5.0, 168, 24, &mut out);
        assert!(out.iter().all(Option::is_none));
        s.runs(&[3.0], 5.0, 168, 24, &mut out);
        assert_eq!(out, vec![None]);
        s.runs(&[3.0, 3.0], 5.0, 168, 24, &mut out);
        let r = out[1].expect("a two-bucket run");
        assert_eq!(r.start, 0);
        assert!((r.z - 6.0 / 2f64.sqrt()).abs() < 1e-12);
    }

    /// A detection resumed from a later bucket (its prefix sums start there) gives the runs of
    /// the whole series bit for bit: sums of float prefixes from another origin would round
    /// differently (found on the `bench` preset as severities differing in the last bit).
    #[test]
    fn resumed_runs_equal_the_whole_series_bit_for_bit() {
        let mut rng = Rng::new(17);
        let (window, per_day) = (168, 24);
        let z: Vec<f64> = (0..3000)
            .map(|t| {
                if t % 97 == 0 {
                    f64::NAN
                } else {
                    4.0 * rng.uniform() - 1.9
                }
            })
            .collect();
        let alone = vec![4.0; z.len()];
        let mut s = Sustained::default();
        let mut full = Vec::new();
        s.runs_from(
            &z,
            &alone,
            window,
            per_day,
            (0, 0, [1.0; SPANS.len()]),
            &mut full,
        );
        assert!(
            full.iter().flatten().count() > 100,
            "too few runs to compare"
        );
        for q in [run_horizon(window) + 1, 1234, 2999] {
            let origin = q - run_horizon(window);
            let (next_fit, last) = next_fit_at(&z, &alone, per_day, 0, 0, q);
            let inflation = last.map_or([1.0; SPANS.len()], |t| {
                s.inflation_at(&z, &alone, window, t)
            });
            let mut resumed = Vec::new();
            s.runs_from(
                &z[origin..],
                &alone[origin..],
                window,
                per_day,
                (q - origin, next_fit - origin, inflation),
                &mut resumed,
            );
            for t in q..z.len() {
                let (a, b) = (full[t], resumed[t - origin]);
                assert_eq!(
                    a.map(|r| (r.z.to_bits(), r.start, r.end)),
                    b.map(|r| (r.z.to_bits(), r.start + origin, r.end + origin)),
                    "resumed at {q}, bucket {t}"
                );
            }
        }
    }

    #[test]
    fn runs_are_causal() {
        let mut rng = Rng::new(9);
        let z: Vec<f64> = (0..600).map(|_| 3.0 * rng.uniform() - 1.5).collect();
        let mut full = Vec::new();
        let mut part = Vec::new();
        let mut s = Sustained::default();
        s.runs(&z, 5.0, 168, 24, &mut full);
        for cut in [1, 2, 50, 169, 300, 599] {
            s.runs(&z[..cut], 5.0, 168, 24, &mut part);
            assert_eq!(&full[..cut], &part[..]);
        }
    }
}
