//! The causal robust seasonal model: baseline, count-aware scale, z and score per bucket.
//!
//! For a regular series `y[0..n]` (`NaN` = missing bucket), bucket `t` is scored from buckets
//! `< t` only:
//!
//! | step | rule |
//! |---|---|
//! | season | first season `S` of the [`SeasonPlan`] with `t - first >= 2 S` and at least [`MIN_SEASONS`] of the values `clean[t - k S]`, `k = 1..=K` ([`K_SEASONS`] = 4), present |
//! | seasonal level | `m` = mean of those values winsorised at their median `± 2 sd` (`sd = scale * sqrt(med + kappa med^2)`): the median of a few skewed counts sits well below their mean, and the winsorising bounds a past anomaly's pull to `2 sd / K` |
//! | level correction | `f = median((y_j + 1) / (m_j + 1))` over the last `L` scored buckets (raw values) since the season in use was adopted; `L = clamp(2 S / 7, 12, S)` (48 for hourly data with a weekly season, 12 with a daily one), none when `S = 1`; `f = 1` until `max(6, L / 2)` ratios exist; recomputed every `max(1, L / 48)` buckets |
//! | baseline | `b = m * f` |
//! | dispersion | `kappa` of a negative binomial (`var = mu + kappa mu^2`), fitted once per day on the Anscombe residuals of the last [`DISPERSION_WINDOWS`] scale windows (four weeks) whose expected value is positive (a residual against 0 is 0 whatever `kappa` is), see [`fit_dispersion`]; shrunk by one standard error of its estimate, 0 (Poisson) when the busier half of the buckets is not noisier by more than that |
//! | transform | `g = ` [`nb_transform`]`(., kappa)`: variance-stabilising for that negative binomial (Anscombe when `kappa = 0`, log-like for large counts, so overdispersed tails are not anomalies) |
//! | scale | `max(1, sqrt(median(r^2) / 0.4549))` of the residuals `g(y_j) - g(ref_j)` of the trailing window, recomputed once per day; 1 (the Poisson value) with fewer than 8 residuals |
//! | reference | `b_ref` = `y` clamped to `[min(m, b), max(m, b)]`: the level correction is itself an estimate, so a value between the seasonal mean and the corrected baseline is consistent with one of them and is measured against the nearer (the end of an absorbed shift, back at `m`, is no drop; a deflated level of a skewed product does not lower the bar for spikes) |
//! | z | `(g(y) - g(b_ref)) / scale`; beyond 2 in absolute value, no further from 0 than the tail z of `y` under the posterior predictive distribution of a count whose mean is known only through the `n` seasonal values behind `b_ref` ([`super::counts::predictive_z`]: beta negative binomial, Poisson-gamma at `kappa = 0`; its right tail is polynomial, so a mean drawn from two sparse weeks that happens to be low does not make a busy hour a 9-sigma event) |
//! | score | `clamp(abs(z) / (2 z_alert), 0, 1)`: 0.5 is the alert threshold, 1 is twice it |
//! | raw variance | `scale^2 * (abs(b) + 3/8)` (delta method: `dy/da = sqrt(y + 3/8)`), summable for store totals |
//!
//! *Anomalies do not pollute history*: a bucket with `abs(z) >= c`, `c = min(3, z_alert)`
//! ([`HISTORY_CLIP`]), enters the seasonal history and the scale residuals clipped to that
//! band (`g^-1(g(b_ref) ± c * scale)`), not with its raw value; clipping below the alert
//! threshold also keeps anomalies too weak to alert (on a lenient early baseline) out of the
//! lags they would otherwise dominate weeks later.
//!
//! *Level shifts are absorbed after a bounded time*: the level correction is a median of raw
//! ratios over the last `L` buckets, so an anomaly shorter than `L / 2` buckets cannot move
//! it, and a lasting shift owns the median, and hence the baseline, at most
//! `floor(L / 2) + max(1, L / 48) + 1` scored buckets after it starts (26 hours for hourly data
//! with a weekly season, 5 days for daily data; with a season of 1 the trailing median of
//! the last 4 buckets absorbs a shift after 3 buckets).
//! Its end is no anomaly either: values back at the seasonal mean `m` lie inside the
//! reference interval while the level still carries the shift.
//!
//! *Warm-up*: nothing is scored before two full seasons of history; during the second season
//! the differences `(a(y_t) - a(y_{t-S})) / sqrt(4/3)` seed the scale so the first scored
//! bucket already has a data-driven scale.
//!
//! *Causality*: every quantity at `t` is a function of `y[..=t]`, so appending buckets never
//! changes earlier outputs (tested).
//!
//! Cost: `O(n * (K + L / max(1, L/48) + W / per_day))` time (about `O(7 n)` to `O(50 n)`),
//! `O(n)` memory, no allocation per bucket (scratch buffers are reused across series).

use super::counts::predictive_z;
use super::grid::SeasonPlan;
use super::robust::{
    anscombe, inverse_nb_transform, median_in_place, median_of_sorted, nb_transform, small_median,
};

/// Default alert threshold on `abs(z)` (score 0.5).
pub const DEFAULT_Z_ALERT: f64 = 5.0;
/// Seasons of history used by the seasonal median.
pub const K_SEASONS: usize = 4;
/// Minimum seasonal values needed for a baseline.
pub const MIN_SEASONS: usize = 2;
/// Divisor of one-season differences used as warm-up residuals: `sqrt(4/3)` turns the
/// variance of a difference of two counts (2 on the Anscombe scale) into that of a residual
/// against a two-value median baseline (1.5), so the first scores are not over-confident.
const WARMUP_DIFF_SCALE: f64 = 1.154_700_538_379_251_5;
/// Standard deviations from the median of the seasonal lags at which they are winsorised.
const LAG_CLIP: f64 = 2.0;
/// |z| beyond which a value enters the history (seasonal values, scale residuals) clipped to
/// that band (Huber-style cleaning): an anomaly too weak to alert on a baseline from two or
/// three weeks, left raw, would be half of the baseline weeks later when fewer lags remain.
const HISTORY_CLIP: f64 = 3.0;
/// |z| from which the exact count tail is consulted (below, the two agree).
const COUNT_TAIL_FROM: f64 = 2.0;
/// Minimum residuals before the scale is estimated from data.
const MIN_SCALE_RESIDUALS: usize = 8;

/// Scale windows of residuals the dispersion is fitted on: dispersion is a property of the
/// product and changes slowly, and a week of hourly residuals cannot tell `kappa = 0.3` from 0.
pub const DISPERSION_WINDOWS: usize = 4;
/// Median of a squared standard normal: `median(r^2) = 0.4549 sd^2`.
const MEDIAN_CHI2_1: f64 = 0.454_936_423_119_572_7;
/// Relative sd of the sample median of `n` squared standard normals, times `sqrt(n)`.
const MEDIAN_SD_FACTOR: f64 = 2.33;
/// Largest dispersion `kappa` (`1 / phi`) the scale fit considers.
const MAX_KAPPA: f64 = 16.0;

/// Robust fit of the dispersion `kappa` of the residual model `sd_j = c * sqrt(1 + kappa b_j)`
/// (Anscombe scale, `b_j >= 0` the expected values; a negative binomial count with
/// `var = mu + kappa mu^2` has this form with `c = 1`) from squared residuals `r2[j]`.
/// The residuals are split at the median of `b` into a low and a high half; their robust
/// variances `v = median(r^2) / 0.4549` give `rho = v_hi / v_lo = (1 + kappa b_hi) / (1 +
/// kappa b_lo)` (`b_*` the halves' median expected values), so
/// `kappa = (rho - 1) / (b_hi - rho b_lo)`. A constant extra spread (baseline noise) leaves
/// `rho` at 1 and `kappa` at 0. The ratio is shrunk by one standard error: the log of a sample
/// median of `n` squared normals has an sd of about `2.33 / sqrt(n)`, so `ln rho` is lowered by
/// `2.33 * sqrt(2 / n_half)` before solving (`kappa = 0` when that leaves `rho <= 1`): an
/// under-estimated `kappa` makes busy hours of an overdispersed product look anomalous, an
/// over-estimated one only costs a little power there.
/// `tmp` is scratch. Returns `(c, kappa)`, `c` from the low half.
pub fn fit_dispersion(r2: &[f64], b: &[f64], tmp: &mut FitScratch) -> (f64, f64) {
    let n = r2.len().min(b.len());
    if n < 4 {
        return (1.0, 0.0);
    }
    // A residual against an expected value of 0 says nothing about the dispersion: it is 0
    // whatever `kappa` is, and night hours of a best seller would otherwise make the low half's
    // median 0 and the fit give up (`kappa = 0`, Poisson tails for its busy hours).
    let FitScratch {
        b: all_b,
        lo_r,
        lo_b,
        hi_r,
        hi_b,
    } = tmp;
    all_b.clear();
    all_b.extend(b[..n].iter().filter(|&&v| v > 0.0).map(|&v| v.max(0.0)));
    let b_mid = median_in_place(all_b);
    // Both halves in one pass (medians do not depend on the order values come in).
    for v in [&mut *lo_r, &mut *lo_b, &mut *hi_r, &mut *hi_b] {
        v.clear();
    }
    for (&r, &bj) in r2[..n].iter().zip(&b[..n]) {
        if bj > 0.0 {
            if bj.max(0.0) > b_mid {
                hi_r.push(r);
                hi_b.push(bj.max(0.0));
            } else {
                lo_r.push(r);
                lo_b.push(bj.max(0.0));
            }
        }
    }
    let half = |r: &mut Vec<f64>, bs: &mut Vec<f64>| {
        let cnt = r.len();
        (median_in_place(r) / MEDIAN_CHI2_1, median_in_place(bs), cnt)
    };
    let (v_lo, b_lo, n_lo) = half(lo_r, lo_b);
    let (v_hi, b_hi, n_hi) = half(hi_r, hi_b);
    if n_lo < 2 || n_hi < 2 || v_lo.is_nan() || v_lo <= 0.0 || !v_hi.is_finite() {
        return (1.0, 0.0);
    }
    let n_half = n_lo.min(n_hi) as f64;
    let rho = v_hi / v_lo * (-MEDIAN_SD_FACTOR * (2.0 / n_half).sqrt()).exp();
    let den = b_hi - rho * b_lo;
    if rho <= 1.0 || den <= 0.0 {
        return (v_lo.sqrt().max(1.0), 0.0);
    }
    let kappa = ((rho - 1.0) / den).min(MAX_KAPPA);
    ((v_lo / (1.0 + kappa * b_lo)).sqrt(), kappa)
}

/// Scratch buffers of [`fit_dispersion`].
#[derive(Debug, Default, Clone)]
pub struct FitScratch {
    b: Vec<f64>,
    lo_r: Vec<f64>,
    lo_b: Vec<f64>,
    hi_r: Vec<f64>,
    hi_b: Vec<f64>,
}

/// Score of a z value: `clamp(abs(z) / (2 z_alert), 0, 1)`; `NaN` stays `NaN`.
#[inline]
pub fn score_of(z: f64, z_alert: f64) -> f64 {
    if z.is_nan() {
        f64::NAN
    } else {
        (z.abs() / (2.0 * z_alert)).clamp(0.0, 1.0)
    }
}

/// Level-correction window for a season of `s` buckets (0 = no correction).
pub fn level_window(s: usize) -> usize {
    if s <= 1 {
        0
    } else {
        (2 * s / 7).clamp(12.min(s), s)
    }
}

/// Per-bucket outputs; every vector has the series' length, `NaN` where not scored.
#[derive(Debug, Default, Clone)]
pub struct Scores {
    /// Expected value.
    pub baseline: Vec<f64>,
    /// Signed robust z on the Anscombe scale.
    pub z: Vec<f64>,
    /// Robust scale on the Anscombe scale (>= 1).
    pub scale: Vec<f64>,
    /// Season length (buckets) the baseline came from; 0 where not scored.
    pub season: Vec<u32>,
}

impl Scores {
    /// Score in [0, 1] of bucket `i` (`NaN` if unscored).
    pub fn score(&self, i: usize, z_alert: f64) -> f64 {
        score_of(self.z[i], z_alert)
    }

    /// Approximate variance of bucket `i` in raw units (`NaN` if unscored).
    pub fn variance(&self, i: usize) -> f64 {
        let s = self.scale[i];
        s * s * (self.baseline[i].abs() + 0.375)
    }

    fn reset(&mut self, n: usize) {
        for v in [&mut self.baseline, &mut self.z, &mut self.scale] {
            v.clear();
            v.resize(n, f64::NAN);
        }
        self.season.clear();
        self.season.resize(n, 0);
    }
}

/// Scores series with a fixed plan and threshold, reusing its buffers across calls.
#[derive(Debug, Clone)]
pub struct Scorer {
    plan: SeasonPlan,
    z_alert: f64,
    clean: Vec<f64>,
    ratio: Vec<f64>,
    resid: Vec<f64>,
    /// Expected value behind each residual (for the dispersion fit).
    resid_b: Vec<f64>,
    /// Reference each residual is taken against (baseline, or the value a season earlier
    /// during the warm-up), and the divisor of that residual.
    resid_ref: Vec<f64>,
    resid_div: Vec<f64>,
    tmp: Vec<f64>,
    tmp_b: Vec<f64>,
    tmp_fit: FitScratch,
    /// The level correction's ratios `ratio[from..to]` (without NaN), sorted, and that range:
    /// the window slides by a bucket or so between refits, so it is updated, not re-selected.
    level_sorted: Vec<f64>,
    level_range: Option<(usize, usize)>,
    /// Bucket and carried scalars kept by `snapshot_at`.
    snapshot: Option<(usize, Carry)>,
    /// First value of the last scored series (signed: before the grid when resumed).
    first: i64,
}

impl Scorer {
    /// A scorer for a plan; `z_alert` must be positive (callers validate it).
    pub fn new(plan: SeasonPlan, z_alert: f64) -> Self {
        Self {
            plan,
            z_alert,
            clean: Vec::new(),
            ratio: Vec::new(),
            resid: Vec::new(),
            resid_b: Vec::new(),
            resid_ref: Vec::new(),
            resid_div: Vec::new(),
            tmp: Vec::new(),
            tmp_b: Vec::new(),
            tmp_fit: FitScratch::default(),
            level_sorted: Vec::new(),
            level_range: None,
            snapshot: None,
            first: 0,
        }
    }

    /// Buckets before a bucket that any rule reads when scoring it: the seasonal lags and the
    /// dispersion window (four weeks for hourly data).
    pub fn horizon(&self) -> usize {
        let longest = self.plan.seasons.iter().copied().max().unwrap_or(1);
        (K_SEASONS * longest).max(DISPERSION_WINDOWS * self.plan.scale_window.max(1))
    }

    /// The alert threshold on `abs(z)`.
    pub fn z_alert(&self) -> f64 {
        self.z_alert
    }

    /// Scores `y` (`NaN` = missing; infinities must be filtered by the caller) into `out`.
    pub fn score(&mut self, y: &[f64], out: &mut Scores) {
        self.score_resumed(y, out, None, None);
    }

    /// [`Self::score`], resumed and/or checkpointed.
    ///
    /// * `resume`: the state taken at the bucket `state.len()` of this grid (its arrays cover
    ///   `y[..state.len()]`); those buckets are not scored again and stay `NaN` in `out`, and
    ///   every later bucket gets exactly what a run over the whole history gave it.
    /// * `snapshot_at`: keep the state at that bucket, for [`Self::take_state`].
    #[expect(
        clippy::needless_range_loop,
        reason = "several parallel per-bucket arrays are indexed by t"
    )]
    pub fn score_resumed(
        &mut self,
        y: &[f64],
        out: &mut Scores,
        resume: Option<&ScorerState>,
        snapshot_at: Option<usize>,
    ) {
        let n = y.len();
        out.reset(n);
        self.snapshot = None;
        let resume_at = resume.map_or(0, ScorerState::len).min(n);
        // `first` may lie before this grid's first bucket when resumed (signed).
        let first: i64 = match resume {
            Some(st) => st.first,
            None => match y.iter().position(|v| !v.is_nan()) {
                Some(f) => f as i64,
                None => {
                    self.first = i64::MAX;
                    return;
                }
            },
        };
        for v in [
            &mut self.clean,
            &mut self.ratio,
            &mut self.resid,
            &mut self.resid_b,
            &mut self.resid_ref,
            &mut self.resid_div,
        ] {
            v.clear();
            v.resize(n, f64::NAN);
        }
        self.level_range = None;
        let z_alert = self.z_alert;
        let per_day = self.plan.per_day.max(1);
        let window = self.plan.scale_window.max(1);
        let mut c = Carry::default();
        if let Some(st) = resume {
            for (dst, src) in [
                (&mut self.clean, &st.clean),
                (&mut self.ratio, &st.ratio),
                (&mut self.resid, &st.resid),
                (&mut self.resid_b, &st.resid_b),
                (&mut self.resid_ref, &st.resid_ref),
                (&mut self.resid_div, &st.resid_div),
            ] {
                dst[..resume_at].copy_from_slice(&src[..resume_at]);
            }
            c = st.carry;
        }
        let first_index = usize::try_from(first.max(0)).unwrap_or(0);
        let mut lags = [0.0f64; K_SEASONS];
        for t in first_index.max(resume_at)..n {
            if snapshot_at == Some(t) {
                self.snapshot = Some((t, c));
            }
            let yt = y[t];
            if yt.is_nan() {
                continue;
            }
            let h = usize::try_from(t as i64 - first).unwrap_or(0);
            // Seasonal median of the cleaned history, longest usable season first.
            let mut m = f64::NAN;
            let mut season = 0usize;
            let mut lags_used = 0usize;
            for &s in &self.plan.seasons {
                if h < 2 * s {
                    continue;
                }
                let mut cnt = 0;
                for k in 1..=K_SEASONS {
                    let Some(j) = t.checked_sub(k * s) else { break };
                    let v = self.clean[j];
                    if !v.is_nan() {
                        lags[cnt] = v;
                        cnt += 1;
                    }
                }
                if cnt >= MIN_SEASONS {
                    // A winsorised mean, not the median: counts of an overdispersed product are
                    // skewed and the median of a few of them sits well below their mean; values
                    // beyond LAG_CLIP sds of the median are pulled in, so one past anomaly moves
                    // `m` by at most LAG_CLIP sds / cnt.
                    let m0 = small_median(&mut lags[..cnt]);
                    let sd0 = c.scale * (m0.max(0.0) + c.kappa * m0 * m0).sqrt();
                    let (lo, hi) = (m0 - LAG_CLIP * sd0, m0 + LAG_CLIP * sd0);
                    m = lags[..cnt].iter().map(|v| v.clamp(lo, hi)).sum::<f64>() / cnt as f64;
                    lags_used = cnt;
                    season = s;
                    break;
                }
            }
            if m.is_nan() {
                // Warm-up: keep the value and seed the scale with one-season differences.
                self.clean[t] = yt;
                if let Some(&s) = self.plan.seasons.iter().find(|&&s| h >= s) {
                    let prev = self.clean[t - s];
                    if !prev.is_nan() {
                        self.resid[t] = (anscombe(yt) - anscombe(prev)) / WARMUP_DIFF_SCALE;
                        self.resid_b[t] = 0.5 * (yt + prev);
                        self.resid_ref[t] = prev;
                        self.resid_div[t] = WARMUP_DIFF_SCALE;
                    }
                }
                continue;
            }
            // Level correction (median of raw ratios over the last L buckets).
            let l = level_window(season);
            if l == 0 {
                c.level = 1.0;
            } else if t >= c.next_level_at || season != c.level_season {
                if season != c.level_season {
                    // Ratios against another season's median say nothing about this one's
                    // level (a weekend measured against a daily median reads as +40%).
                    c.season_since = t;
                }
                let from = t.saturating_sub(l).max(first_index).max(c.season_since);
                self.slide_level_window(from, t);
                c.level = if self.level_sorted.len() >= (l / 2).max(6.min(l)) {
                    median_of_sorted(&self.level_sorted)
                } else {
                    1.0
                };
                c.level_season = season;
                c.next_level_at = t + (l / 48).max(1);
            }
            // Count-aware robust scale, refitted once per day.
            if t >= c.next_scale_at {
                self.tmp.clear();
                self.tmp_b.clear();
                let from = t.saturating_sub(window).max(first_index);
                let from_dispersion = t
                    .saturating_sub(DISPERSION_WINDOWS * window)
                    .max(first_index);
                for j in from_dispersion..t {
                    let r = self.resid[j];
                    if !r.is_nan() {
                        self.tmp.push(r * r);
                        self.tmp_b.push(self.resid_b[j]);
                    }
                }
                (c.scale, c.kappa) = (1.0, 0.0);
                if self.tmp.len() >= MIN_SCALE_RESIDUALS {
                    c.kappa = fit_dispersion(&self.tmp, &self.tmp_b, &mut self.tmp_fit).1;
                    // Robust sd (around 0) of the residuals on the transformed scale.
                    self.tmp.clear();
                    for j in from..t {
                        if !self.resid[j].is_nan() {
                            let r = (nb_transform(self.clean[j], c.kappa)
                                - nb_transform(self.resid_ref[j], c.kappa))
                                / self.resid_div[j];
                            self.tmp.push(r * r);
                        }
                    }
                    let sd = (median_in_place(&mut self.tmp) / MEDIAN_CHI2_1).sqrt();
                    c.scale = if sd.is_finite() { sd.max(1.0) } else { 1.0 };
                }
                c.next_scale_at = t + per_day;
            }
            let b = m * c.level;
            // The level correction is itself an estimate: a value between the seasonal mean and
            // the corrected baseline is consistent with one of them (the end of an absorbed
            // shift returns to `m` and is no drop), so z is taken against the nearer one.
            // (Compared rather than `clamp`ed: `clamp` panics on a NaN bound.)
            let (lo, hi) = (b.min(m), b.max(m));
            let b_ref = if yt > hi {
                hi
            } else if yt < lo {
                lo
            } else {
                yt
            };
            let gb = nb_transform(b_ref, c.kappa);
            let mut z = (nb_transform(yt, c.kappa) - gb) / c.scale;
            if z.abs() >= COUNT_TAIL_FROM
                && let Some(t) = predictive_z(yt, b_ref, c.kappa, lags_used)
                && t * z > 0.0
            {
                // The exact count tail: an overdispersed product's big hours are rarer than
                // normal but far from impossible.
                z = z.signum() * z.abs().min(t.abs());
            }
            out.baseline[t] = b;
            out.z[t] = z;
            out.season[t] = u32::try_from(season).unwrap_or(u32::MAX);
            // The equivalent sd on the Anscombe scale (for the summable raw variance).
            out.scale[t] = c.scale * (1.0 + c.kappa * b.max(0.0)).sqrt();
            if m >= 0.0 && yt >= 0.0 {
                self.ratio[t] = (yt + 1.0) / (m + 1.0);
            }
            let z_clip = HISTORY_CLIP.min(z_alert);
            self.clean[t] = if z.abs() >= z_clip {
                inverse_nb_transform(gb + z.signum() * z_clip * c.scale, c.kappa)
            } else {
                yt
            };
            self.resid[t] = anscombe(self.clean[t]) - anscombe(b);
            self.resid_b[t] = b;
            self.resid_ref[t] = b;
            self.resid_div[t] = 1.0;
        }
        if let Some(q) = snapshot_at
            && self.snapshot.is_none()
        {
            self.snapshot = Some((q, c));
        }
        self.first = first;
    }

    /// Makes `level_sorted` the non-NaN `ratio[from..to]`, sorted: by removing and inserting
    /// the buckets that left and entered the window when it overlaps the previous one (ratios
    /// before the bucket being scored never change), else from scratch.
    fn slide_level_window(&mut self, from: usize, to: usize) {
        let sorted = &mut self.level_sorted;
        match self.level_range {
            Some((f0, t0)) if f0 <= from && from <= t0 && t0 <= to => {
                for &v in &self.ratio[f0..from] {
                    if !v.is_nan()
                        && let Ok(i) = sorted.binary_search_by(|x| x.total_cmp(&v))
                    {
                        sorted.remove(i);
                    }
                }
                for &v in &self.ratio[t0..to] {
                    if !v.is_nan() {
                        let i = sorted.partition_point(|x| x.total_cmp(&v).is_lt());
                        sorted.insert(i, v);
                    }
                }
            }
            _ => {
                sorted.clear();
                sorted.extend(self.ratio[from..to].iter().copied().filter(|v| !v.is_nan()));
                sorted.sort_unstable_by(f64::total_cmp);
            }
        }
        self.level_range = Some((from, to));
    }

    /// The state at the `snapshot_at` bucket `q` of the last [`Self::score_resumed`] call,
    /// covering its last `horizon` buckets (fewer when the grid starts later); `None` when the
    /// series had no value before `q`. Buckets are counted from the state's first bucket.
    pub fn take_state(&mut self, horizon: usize) -> Option<ScorerState> {
        let (q, carry) = self.snapshot.take()?;
        let q = q.min(self.clean.len());
        let from = q.saturating_sub(horizon);
        if self.first >= q as i64 {
            return None;
        }
        let rel = |v: usize| v.saturating_sub(from);
        Some(ScorerState {
            first: self.first - from as i64,
            carry: Carry {
                next_scale_at: rel(carry.next_scale_at),
                season_since: rel(carry.season_since),
                next_level_at: rel(carry.next_level_at),
                ..carry
            },
            clean: self.clean[from..q].to_vec(),
            ratio: self.ratio[from..q].to_vec(),
            resid: self.resid[from..q].to_vec(),
            resid_b: self.resid_b[from..q].to_vec(),
            resid_ref: self.resid_ref[from..q].to_vec(),
            resid_div: self.resid_div[from..q].to_vec(),
        })
    }
}

/// The scalars the scorer carries from bucket to bucket (bucket indices relative to the
/// grid, or to a [`ScorerState`]'s first bucket).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Carry {
    pub scale: f64,
    pub kappa: f64,
    pub next_scale_at: usize,
    pub level: f64,
    pub level_season: usize,
    pub season_since: usize,
    pub next_level_at: usize,
}

impl Default for Carry {
    fn default() -> Self {
        Self {
            scale: 1.0,
            kappa: 0.0,
            next_scale_at: 0,
            level: 1.0,
            level_season: 0,
            season_since: 0,
            next_level_at: 0,
        }
    }
}

/// Everything the scorer needs to continue a series at a bucket `q` exactly as if it had
/// scored the whole history: its carried scalars and its per-bucket arrays over the last
/// buckets before `q` (as far back as any rule reads: four weeks for hourly data).
#[derive(Debug, Clone, PartialEq)]
pub struct ScorerState {
    /// The series' first value, relative to the state's first bucket (negative when older).
    pub first: i64,
    pub carry: Carry,
    pub clean: Vec<f64>,
    pub ratio: Vec<f64>,
    pub resid: Vec<f64>,
    pub resid_b: Vec<f64>,
    pub resid_ref: Vec<f64>,
    pub resid_div: Vec<f64>,
}

impl ScorerState {
    /// Buckets covered (the state is taken at this bucket of its own grid).
    pub fn len(&self) -> usize {
        self.clean.len()
    }

    /// Whether the state covers no bucket.
    pub fn is_empty(&self) -> bool {
        self.clean.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::grid::{SeasonPlan, SeasonSpec};

    /// Scoring resumed from a state taken at `q` gives every later bucket bit for bit what
    /// the whole series gave it, with gaps, a level shift, a spike and warm-up states.
    #[test]
    fn resumed_scoring_equals_the_full_run() {
        let mut rng = Rng::new(7);
        let n = 24 * 7 * 7;
        let y: Vec<f64> = (0..n)
            .map(|t| {
                if (300..310).contains(&t) || t % 97 == 0 {
                    return f64::NAN;
                }
                let shift = if t > 24 * 7 * 5 { 2.0 } else { 1.0 };
                let v = rng.poisson(hourly_mean(t, 4.0) * shift);
                if t == 24 * 7 * 4 + 3 { v + 60.0 } else { v }
            })
            .collect();
        let mut sc = hourly_scorer();
        let horizon = sc.horizon();
        let mut full = Scores::default();
        sc.score(&y, &mut full);
        for q in [
            2,
            200,
            500,
            24 * 7 * 3 + 5,
            24 * 7 * 4 + 4,
            24 * 7 * 5 + 1,
            n - 1,
            n,
        ] {
            let mut cut = Scores::default();
            sc.score_resumed(&y, &mut cut, None, Some(q));
            let state = sc.take_state(horizon).expect("a state");
            let from = q.saturating_sub(horizon);
            assert_eq!(state.len(), q - from);
            let mut resumed = Scores::default();
            sc.score_resumed(&y[from..], &mut resumed, Some(&state), None);
            for t in q..n {
                let (a, b) = (full.z[t], resumed.z[t - from]);
                assert!(a.to_bits() == b.to_bits(), "q {q} t {t}: {a} vs {b}");
                assert_eq!(
                    full.baseline[t].to_bits(),
                    resumed.baseline[t - from].to_bits()
                );
                assert_eq!(full.scale[t].to_bits(), resumed.scale[t - from].to_bits());
                assert_eq!(full.season[t], resumed.season[t - from]);
            }
            assert!(resumed.z[..q - from].iter().all(|v| v.is_nan()));
        }
        // nothing before q: no state
        let mut out = Scores::default();
        sc.score_resumed(&[f64::NAN, f64::NAN, 1.0], &mut out, None, Some(1));
        assert!(sc.take_state(horizon).is_none());
    }

    /// Deterministic xorshift generator (tests only).
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        pub(crate) fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Poisson sample (Knuth for small means, normal approximation above 30).
        pub(crate) fn poisson(&mut self, mean: f64) -> f64 {
            if mean > 30.0 {
                let u1 = self.uniform().max(1e-12);
                let u2 = self.uniform();
                let g = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                return (mean + g * mean.sqrt()).round().max(0.0);
            }
            let l = (-mean).exp();
            let mut k = 0.0;
            let mut p = 1.0;
            loop {
                p *= self.uniform();
                if p <= l {
                    return k;
                }
                k += 1.0;
            }
        }
    }

    const HOUR: i64 = 3_600_000_000;

    pub(crate) fn hourly_mean(t: usize, base: f64) -> f64 {
        let hour = (t % 24) as f64;
        let weekday = (t / 24) % 7;
        let daily = 0.3 + (std::f64::consts::PI * (hour - 6.0) / 14.0).sin().max(0.0) * 1.7;
        let weekly = if weekday >= 5 { 1.4 } else { 1.0 };
        base * daily * weekly
    }

    pub(crate) fn hourly_scorer() -> Scorer {
        Scorer::new(
            SeasonPlan::new(SeasonSpec::Auto { step_us: HOUR }),
            DEFAULT_Z_ALERT,
        )
    }

    fn flagged(s: &Scores) -> Vec<usize> {
        (0..s.z.len())
            .filter(|&i| s.z[i].abs() >= DEFAULT_Z_ALERT)
            .collect()
    }

    #[test]
    fn spike_in_seasonal_series_is_found_at_its_bucket() {
        let mut rng = Rng::new(7);
        let n = 24 * 7 * 5;
        let mut y: Vec<f64> = (0..n).map(|t| rng.poisson(hourly_mean(t, 20.0))).collect();
        let spike = 24 * 7 * 4 + 24 * 2 + 14; // a Wednesday afternoon of week 5
        y[spike] = 4.0 * hourly_mean(spike, 20.0);
        let mut sc = hourly_scorer();
        let mut out = Scores::default();
        sc.score(&y, &mut out);
        assert_eq!(flagged(&out), vec![spike]);
        assert!(out.z[spike] > 0.0);
        assert!(out.score(spike, DEFAULT_Z_ALERT) >= 0.5);
        let expected = hourly_mean(spike, 20.0);
        assert!((out.baseline[spike] - expected).abs() < 0.3 * expected);
        // the spike does not pollute the same slot a week later
        let mut y2 = y.clone();
        y2.extend((n..n + 24 * 7).map(|t| rng.poisson(hourly_mean(t, 20.0))));
        sc.score(&y2, &mut out);
        let b = out.baseline[spike + 168];
        assert!((b - expected).abs() < 0.3 * expected, "{b} vs {expected}");
    }

    #[test]
    fn drop_is_negative() {
        let mut rng = Rng::new(3);
        let n = 24 * 7 * 4;
        let mut y: Vec<f64> = (0..n).map(|t| rng.poisson(hourly_mean(t, 30.0))).collect();
        let at = n - 10;
        let mean = hourly_mean(at, 30.0);
        assert!(mean > 20.0);
        y[at] = 0.0;
        let mut out = Scores::default();
        hourly_scorer().score(&y, &mut out);
        assert_eq!(flagged(&out), vec![at]);
        assert!(out.z[at] < 0.0);
    }

    #[test]
    fn low_mean_poisson_noise_never_alarms() {
        let mut sc = hourly_scorer();
        let mut out = Scores::default();
        for seed in 0..60u64 {
            let mut rng = Rng::new(seed);
            let base = [0.05, 0.3, 1.0, 3.0][(seed % 4) as usize];
            let y: Vec<f64> = (0..24 * 7 * 6)
                .map(|t| rng.poisson(hourly_mean(t, base)))
                .collect();
            sc.score(&y, &mut out);
            assert!(flagged(&out).is_empty(), "seed {seed}: {:?}", flagged(&out));
            assert!(out.scale.iter().all(|s| s.is_nan() || *s >= 1.0));
        }
    }

    #[test]
    fn level_shift_is_absorbed_within_the_bound() {
        let mut rng = Rng::new(11);
        let n = 24 * 7 * 6;
        let shift = 24 * 7 * 4 + 12; // noon: x3 is unmistakable
        let y: Vec<f64> = (0..n)
            .map(|t| {
                let f = if t >= shift { 3.0 } else { 1.0 };
                rng.poisson(hourly_mean(t, 20.0) * f)
            })
            .collect();
        let mut out = Scores::default();
        hourly_scorer().score(&y, &mut out);
        let f = flagged(&out);
        assert!(
            f.first().is_some_and(|&i| i >= shift && i < shift + 3),
            "shift not detected: {f:?}"
        );
        let l = level_window(168);
        let bound = l / 2 + (l / 48).max(1) + 1;
        assert!(
            f.iter().all(|&i| i >= shift && i < shift + bound),
            "flags outside [shift, shift + {bound}): {f:?}"
        );
    }

    #[test]
    fn the_end_of_an_absorbed_shift_is_not_a_drop() {
        // A three-day x3 uplift: found at its start, absorbed by the level correction, and its
        // end (back to the seasonal mean while the level still says x3) raises nothing.
        let mut rng = Rng::new(17);
        let n = 24 * 7 * 6;
        let (from, to) = (24 * 7 * 4 + 12, 24 * 7 * 4 + 12 + 72);
        let y: Vec<f64> = (0..n)
            .map(|t| {
                let f = if (from..to).contains(&t) { 3.0 } else { 1.0 };
                rng.poisson(hourly_mean(t, 20.0) * f)
            })
            .collect();
        let mut out = Scores::default();
        hourly_scorer().score(&y, &mut out);
        let f = flagged(&out);
        assert!(
            f.first().is_some_and(|&i| (from..from + 3).contains(&i)),
            "{f:?}"
        );
        assert!(f.iter().all(|&i| out.z[i] > 0.0 && i < to), "{f:?}");
    }

    #[test]
    fn dispersion_ignores_residuals_against_zero() {
        // A best seller: quiet nights (expected 0, residual 0) and noisy busy hours. Half of
        // the residuals are exact zeros; the fit must still see the busy hours' spread.
        let mut rng = Rng::new(3);
        let (mut r2, mut b) = (Vec::new(), Vec::new());
        for j in 0..600 {
            if j % 2 == 0 {
                r2.push(0.0);
                b.push(0.0);
            } else {
                let mu = if j % 4 == 1 { 2.0 } else { 10.0 };
                // Anscombe residual sd of a negative binomial: sqrt(1 + kappa mu), kappa 0.67.
                let u1 = rng.uniform().max(1e-12);
                let g =
                    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * rng.uniform()).cos();
                r2.push(g * g * (1.0 + 0.67 * mu));
                b.push(mu);
            }
        }
        let (_, kappa) = fit_dispersion(&r2, &b, &mut FitScratch::default());
        assert!(kappa > 0.3 && kappa < 1.2, "{kappa}");
    }

    #[test]
    fn scores_are_causal() {
        let mut rng = Rng::new(5);
        let n = 24 * 7 * 5;
        let mut y: Vec<f64> = (0..n).map(|t| rng.poisson(hourly_mean(t, 8.0))).collect();
        y[700] = 90.0;
        y[701] = f64::NAN;
        let mut sc = hourly_scorer();
        let mut full = Scores::default();
        sc.score(&y, &mut full);
        let mut part = Scores::default();
        for cut in [1, 2, 200, 336, 337, 500, 700, 701, 702, 777] {
            sc.score(&y[..cut], &mut part);
            for i in 0..cut {
                for (a, b) in [(part.z[i], full.z[i]), (part.baseline[i], full.baseline[i])] {
                    assert!(
                        a.to_bits() == b.to_bits(),
                        "cut {cut} bucket {i}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn degenerate_series() {
        let mut sc = hourly_scorer();
        let mut out = Scores::default();
        // empty
        sc.score(&[], &mut out);
        assert!(out.z.is_empty());
        // all missing
        sc.score(&[f64::NAN; 10], &mut out);
        assert!(out.z.iter().all(|v| v.is_nan()));
        // very short: warm-up, nothing scored
        sc.score(&[1.0, 2.0, 3.0], &mut out);
        assert!(out.z.iter().all(|v| v.is_nan()));
        // constant: scored (after the warm-up) with z = 0 and scale at the Poisson floor
        let y = vec![4.0; 24 * 7 * 3];
        sc.score(&y, &mut out);
        assert!(out.z[..24 * 2].iter().all(|v| v.is_nan()));
        assert!(out.z[24 * 7 * 3 - 1] == 0.0);
        assert!(out.z.iter().all(|v| v.is_nan() || *v == 0.0));
        assert!(out.scale.iter().all(|v| v.is_nan() || *v == 1.0));
        assert_eq!(out.baseline[24 * 7 * 3 - 1], 4.0);
        assert!((out.variance(24 * 7 * 3 - 1) - 4.375).abs() < 1e-12);
        // negative values are handled
        let y: Vec<f64> = (0..100)
            .map(|t| if t % 2 == 0 { -1.0 } else { 1.0 })
            .collect();
        sc.score(&y, &mut out);
        assert!(out.z.iter().all(|v| v.is_nan() || v.is_finite()));
    }

    #[test]
    fn weekly_data_uses_a_trailing_level() {
        let plan = SeasonPlan::new(SeasonSpec::Auto {
            step_us: 7 * 24 * HOUR,
        });
        let mut sc = Scorer::new(plan, DEFAULT_Z_ALERT);
        let mut y = vec![100.0, 104.0, 97.0, 101.0, 99.0, 103.0, 98.0, 100.0];
        y.push(400.0);
        let mut out = Scores::default();
        sc.score(&y, &mut out);
        assert!(out.z[..2].iter().all(|v| v.is_nan()));
        assert!(out.z[2].is_finite());
        assert!(out.z[8] >= DEFAULT_Z_ALERT);
        assert!(
            out.z[..8]
                .iter()
                .all(|v| v.is_nan() || v.abs() < DEFAULT_Z_ALERT)
        );
    }

    #[test]
    fn score_map() {
        assert_eq!(score_of(5.0, 5.0), 0.5);
        assert_eq!(score_of(-20.0, 5.0), 1.0);
        assert_eq!(score_of(0.0, 5.0), 0.0);
        assert!(score_of(f64::NAN, 5.0).is_nan());
        assert_eq!(level_window(168), 48);
        assert_eq!(level_window(7), 7);
        assert_eq!(level_window(24), 12);
        assert_eq!(level_window(1), 0);
        assert_eq!(level_window(3), 3);
    }
}
