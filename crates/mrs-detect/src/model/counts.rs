//! Exact count tails: how surprising a count is under a negative binomial (`var = mu +
//! kappa mu^2`; Poisson at `kappa = 0`), as an equivalent standard-normal z.
//!
//! The variance-stabilised z of the scorer is right in the bulk, but a negative binomial's tail
//! is exponential: with `kappa = 0.67` a count six times its mean happens about once in a
//! thousand hours, which a Gaussian z calls a 10-sigma event. The scorer therefore takes the
//! smaller of its z and the tail z computed here for every bucket beyond 2 sigma.
//!
//! | function | rule |
//! |---|---|
//! | [`upper_tail`] | `P(Y >= y)`, summed upward from `pmf(floor(y))` until terms vanish (geometric remainder bound) |
//! | [`lower_tail`] | `P(Y <= y)`, summed downward from `pmf(ceil(y))` |
//! | [`tail_z`] | `Phi^-1(1 - p)` by Acklam's rational approximation with one Halley step; `p = 0` gives `+inf` |
//! | [`predictive_z`] | the tail z under the posterior predictive of a count whose mean is known through `n` past counts: beta negative binomial (Jeffreys `Beta(1/2, 1/2)` prior on `mu / (mu + r)`), Poisson-gamma at `kappa = 0`; lower tail summed downward from `pmf(ceil(y))`, upper tail as the complement of the cdf below `floor(y)` (or, where that cancels below 1e-9, the first [`MAX_TERMS`] terms upward, a lower bound) |
//!
//! Fractional counts are rounded toward the mean (conservative). Cost: O(terms until the tail
//! is below 1e-13 of its sum), at most [`MAX_TERMS`]; `None` when the count is out of reach
//! (negative, non-finite, or beyond the term budget), in which case callers keep their z.

/// Largest number of pmf terms summed for one tail.
pub const MAX_TERMS: usize = 4096;

use mrs_core::special::ln_gamma;

/// `ln pmf(k)` and the ratio function of a negative binomial (or Poisson) with mean `mu`.
struct Pmf {
    mu: f64,
    /// Size `r = 1 / kappa`, `None` for Poisson.
    r: Option<f64>,
}

impl Pmf {
    fn new(mu: f64, kappa: f64) -> Option<Self> {
        if !(mu.is_finite() && mu > 0.0 && kappa.is_finite() && kappa >= 0.0) {
            return None;
        }
        Some(Self {
            mu,
            r: (kappa > 1e-9).then(|| 1.0 / kappa),
        })
    }

    fn ln_pmf(&self, k: f64) -> f64 {
        match self.r {
            None => k * self.mu.ln() - self.mu - ln_gamma(k + 1.0),
            Some(r) => {
                let q = self.mu / (self.mu + r);
                ln_gamma(k + r) - ln_gamma(r) - ln_gamma(k + 1.0) + r * (1.0 - q).ln() + k * q.ln()
            }
        }
    }

    /// `pmf(k + 1) / pmf(k)`.
    fn ratio_up(&self, k: f64) -> f64 {
        match self.r {
            None => self.mu / (k + 1.0),
            Some(r) => (k + r) / (k + 1.0) * (self.mu / (self.mu + r)),
        }
    }
}

/// `P(Y >= y)`; `y` is rounded down.
pub fn upper_tail(y: f64, mu: f64, kappa: f64) -> Option<f64> {
    let pmf = Pmf::new(mu, kappa)?;
    if !y.is_finite() || y < 0.0 {
        return None;
    }
    let k0 = y.floor();
    if k0 == 0.0 {
        return Some(1.0);
    }
    let mut term = pmf.ln_pmf(k0).exp();
    let mut sum = 0.0;
    let mut k = k0;
    for _ in 0..MAX_TERMS {
        sum += term;
        let rho = pmf.ratio_up(k);
        term *= rho;
        k += 1.0;
        if rho < 1.0 && term <= 1e-13 * sum {
            // Ratios only fall from here on: a geometric series bounds the rest.
            return Some((sum + term / (1.0 - rho)).min(1.0));
        }
    }
    None
}

/// `P(Y <= y)`; `y` is rounded up.
pub fn lower_tail(y: f64, mu: f64, kappa: f64) -> Option<f64> {
    let pmf = Pmf::new(mu, kappa)?;
    if !y.is_finite() || y < 0.0 {
        return None;
    }
    let k0 = y.ceil();
    cdf_down(k0, |k| pmf.ln_pmf(k), |k| pmf.ratio_up(k))
}

/// `P(Y <= k0)` for a count distribution given by its log pmf and its ratio
/// `pmf(k + 1) / pmf(k)`: summed downward from `pmf(k0)`, at most [`MAX_TERMS`] terms.
fn cdf_down(k0: f64, ln_pmf: impl Fn(f64) -> f64, ratio_up: impl Fn(f64) -> f64) -> Option<f64> {
    if k0 as usize >= MAX_TERMS {
        return None;
    }
    let mut term = ln_pmf(k0).exp();
    let mut sum = 0.0;
    let mut k = k0;
    loop {
        sum += term;
        if k < 1.0 {
            break;
        }
        // pmf(k - 1) = pmf(k) / ratio_up(k - 1)
        term /= ratio_up(k - 1.0);
        k -= 1.0;
    }
    Some(sum.min(1.0))
}

/// The standard-normal z with upper tail `p` (`Phi^-1(1 - p)`); `p <= 0` gives `+inf`.
pub fn tail_z(p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::INFINITY;
    }
    if p >= 1.0 {
        return f64::NEG_INFINITY;
    }
    // Acklam's approximation of the lower quantile at `p`, then negated.
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let lower = |p: f64| -> f64 {
        if p < 0.02425 {
            let q = (-2.0 * p.ln()).sqrt();
            (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
                / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
        } else if p <= 1.0 - 0.02425 {
            let q = p - 0.5;
            let r = q * q;
            (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
                / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
        } else {
            let q = (-2.0 * (1.0 - p).ln()).sqrt();
            -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
                / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
        }
    };
    -lower(p)
}

/// The tail z of count `y` against mean `mu` under dispersion `kappa`: positive above the
/// mean (from `P(Y >= y)`), negative below (from `P(Y <= y)`); `None` when not computable.
pub fn count_z(y: f64, mu: f64, kappa: f64) -> Option<f64> {
    if y >= mu {
        upper_tail(y, mu, kappa).map(tail_z)
    } else {
        lower_tail(y, mu, kappa).map(|p| -tail_z(p))
    }
}

/// Prior pseudo-counts `(a0, b0)` of the `Beta(a0, b0)` prior on the negative binomial's
/// success probability in [`predictive_z`] (Jeffreys' `Beta(1/2, 1/2)`; for Poisson counts it
/// is Jeffreys' `mu^(-1/2)` prior on the rate).
const PRIOR: (f64, f64) = (0.5, 0.5);

/// The posterior predictive distribution of the next count `Y` when its mean is only known
/// through `n` past counts summing to `s`, each negative binomial with size `r = 1 / kappa`
/// (Poisson at `kappa = 0`).
/// With `q = mu / (mu + r)` the past counts' likelihood is `q^s (1 - q)^(n r)`, so under a
/// `Beta(a0, b0)` prior `q ~ Beta(s + a0, n r + b0)` and `Y` is beta negative binomial:
/// `pmf(k) = C(k + r - 1, k) B(alpha + k, beta + r) / B(alpha, beta)`, whose right tail is
/// polynomial (`k^-(beta + 1)`), not exponential: a mean estimated from two or three sparse
/// weeks may well be several times too low. At `kappa = 0` it is the Poisson-gamma
/// predictive, a negative binomial with size `s + a0` and mean `(s + a0) / n`.
#[derive(Debug, Clone, Copy)]
struct Predictive {
    r: f64,
    alpha: f64,
    beta: f64,
    /// `ln B(alpha, beta) + ln Gamma(r)`, shared by every term.
    ln_norm: f64,
}

impl Predictive {
    fn new(s: f64, n: usize, kappa: f64) -> Option<Self> {
        if n == 0 || !(s.is_finite() && s >= 0.0 && kappa.is_finite() && kappa > 1e-9) {
            return None;
        }
        let r = 1.0 / kappa;
        let alpha = s + PRIOR.0;
        let beta = n as f64 * r + PRIOR.1;
        let ln_norm = ln_gamma(alpha) + ln_gamma(beta) - ln_gamma(alpha + beta) + ln_gamma(r);
        Some(Self {
            r,
            alpha,
            beta,
            ln_norm,
        })
    }

    fn ln_pmf(&self, k: f64) -> f64 {
        let (a, b, r) = (self.alpha, self.beta, self.r);
        ln_gamma(k + r) - ln_gamma(k + 1.0) + ln_gamma(a + k) + ln_gamma(b + r)
            - ln_gamma(a + b + r + k)
            - self.ln_norm
    }

    /// `pmf(k + 1) / pmf(k)`.
    fn ratio_up(&self, k: f64) -> f64 {
        (k + self.r) / (k + 1.0) * (self.alpha + k) / (self.alpha + self.beta + self.r + k)
    }

    /// `P(Y <= k0)`, summed downward from `pmf(k0)` (at most [`MAX_TERMS`] terms).
    fn cdf(&self, k0: f64) -> Option<f64> {
        cdf_down(k0, |k| self.ln_pmf(k), |k| self.ratio_up(k))
    }

    /// `P(Y >= k0)`: the complement of the cdf below `k0`, or where that cancels, the sum of
    /// the first [`MAX_TERMS`] terms from `pmf(k0)` (a lower bound; the polynomial tail has no
    /// geometric remainder bound).
    fn upper(&self, k0: f64) -> Option<f64> {
        if k0 <= 0.0 {
            return Some(1.0);
        }
        let complement = 1.0 - self.cdf(k0 - 1.0)?;
        if complement > 1e-9 {
            return Some(complement.min(1.0));
        }
        let mut term = self.ln_pmf(k0).exp();
        let mut sum = 0.0;
        let mut k = k0;
        for _ in 0..MAX_TERMS {
            sum += term;
            term *= self.ratio_up(k);
            k += 1.0;
            if term <= 1e-13 * sum {
                break;
            }
        }
        Some(sum.max(complement).min(1.0))
    }
}

/// The tail z of count `y` under the posterior predictive distribution of a count whose mean
/// `b` was estimated from `n` past counts (their sum taken as `n b`), with dispersion `kappa`
/// (see [`Predictive`]). Positive above the predictive median side of `b` (from `P(Y >= y)`),
/// negative below (from `P(Y <= y)`); fractional counts are rounded toward `b`; `None` when not
/// computable (then callers keep their z).
pub fn predictive_z(y: f64, b: f64, kappa: f64, n: usize) -> Option<f64> {
    if !(y.is_finite() && y >= 0.0 && b.is_finite() && b >= 0.0) || n == 0 {
        return None;
    }
    let s = n as f64 * b;
    let Some(p) = Predictive::new(s, n, kappa) else {
        // Poisson counts: the Poisson-gamma predictive.
        let size = s + PRIOR.0;
        return count_z(y, size / n as f64, 1.0 / size);
    };
    if y >= b {
        p.upper(y.floor()).map(tail_z)
    } else {
        p.cdf(y.ceil()).map(|q| -tail_z(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_and_negative_binomial_tails() {
        // Poisson(2): P(Y >= 5) = 1 - e^-2 (1 + 2 + 2 + 4/3 + 2/3) = 0.052653
        let p = upper_tail(5.0, 2.0, 0.0).expect("tail");
        assert!((p - 0.052_653_017_343_711_1).abs() < 1e-12, "{p}");
        let p = lower_tail(0.0, 2.0, 0.0).expect("tail");
        assert!((p - (-2.0f64).exp()).abs() < 1e-15);
        // NB with kappa = 1 (geometric with q = mu / (mu + 1)): P(Y >= k) = q^k
        let (mu, k) = (3.0, 7.0);
        let q: f64 = mu / (mu + 1.0);
        let p = upper_tail(k, mu, 1.0).expect("tail");
        assert!((p / q.powf(k) - 1.0).abs() < 1e-9, "{p} vs {}", q.powf(k));
        let p = lower_tail(2.0, mu, 1.0).expect("tail");
        assert!((p - (1.0 - q.powi(3))).abs() < 1e-12);
        // tails sum to one around a point
        let (u, l) = (
            upper_tail(4.0, 3.5, 0.4).expect("tail"),
            lower_tail(3.0, 3.5, 0.4).expect("tail"),
        );
        assert!((u + l - 1.0).abs() < 1e-12);
    }

    #[test]
    fn heavy_tails_are_less_surprising_than_a_gaussian_says() {
        // 67 against a mean of 10: absurd for a Poisson, about a 3.4-sigma event at kappa 2/3.
        let poisson = count_z(67.0, 10.0, 0.0).expect("z");
        let nb = count_z(67.0, 10.0, 1.0 / 1.5).expect("z");
        assert!(poisson > 10.0, "{poisson}");
        assert!(nb > 2.5 && nb < 4.5, "{nb}");
        assert!(count_z(0.0, 10.0, 0.0).expect("z") < -3.0);
    }

    #[test]
    fn predictive_tails_sum_to_one_and_are_heavier_with_fewer_lags() {
        let p = Predictive::new(6.0, 2, 0.5).expect("predictive");
        let total = p.cdf(4000.0).expect("cdf");
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        let (u, l) = (p.upper(5.0).expect("u"), p.cdf(4.0).expect("l"));
        assert!((u + l - 1.0).abs() < 1e-12);
        // Mean r alpha / (beta - 1).
        let mean: f64 = (0..4000)
            .map(|k| f64::from(k) * p.ln_pmf(f64::from(k)).exp())
            .sum();
        assert!((mean - 2.0 * 6.5 / 3.5).abs() < 1e-3, "{mean}");
        // 67 units against two lags averaging 1 (kappa 0.67): unusual, not a 9-sigma event;
        // the same count against four lags averaging 1 is far stranger.
        let two = predictive_z(67.0, 1.0, 0.67, 2).expect("z");
        let four = predictive_z(67.0, 1.0, 0.67, 4).expect("z");
        assert!(two < 5.0 && two > 2.0, "{two}");
        assert!(four > two, "{four} vs {two}");
        // Many lags: close to the plain negative binomial tail.
        let many = predictive_z(30.0, 10.0, 0.1, 400).expect("z");
        let nb = count_z(30.0, 10.0, 0.1).expect("z");
        assert!((many - nb).abs() < 0.1, "{many} vs {nb}");
        // Poisson (kappa 0): the Poisson-gamma predictive; drops are negative.
        let z = predictive_z(0.0, 20.0, 0.0, 4).expect("z");
        assert!(z < -3.0, "{z}");
        assert!(predictive_z(3.0, 1.0, 0.3, 0).is_none());
        assert!(predictive_z(f64::NAN, 1.0, 0.3, 2).is_none());
        // A zero against a zero history is not surprising in either direction.
        assert!(predictive_z(0.0, 0.0, 0.3, 2).is_some_and(|z| z <= 0.0));
    }

    #[test]
    fn quantiles_and_edges() {
        assert!((tail_z(0.025) - 1.959_963_984_540_054).abs() < 1e-6);
        assert!((tail_z(0.5)).abs() < 1e-9);
        assert!((tail_z(1e-10) - 6.361_340_902_404_056).abs() < 1e-4);
        assert_eq!(tail_z(0.0), f64::INFINITY);
        assert!(tail_z(f64::NAN).is_nan());
        assert_eq!(upper_tail(-1.0, 2.0, 0.0), None);
        assert_eq!(upper_tail(3.0, 0.0, 0.0), None);
        assert_eq!(upper_tail(f64::INFINITY, 2.0, 0.0), None);
        assert_eq!(upper_tail(0.0, 2.0, 0.3), Some(1.0));
        assert_eq!(lower_tail(1e9, 2.0, 0.0), None);
        assert!(upper_tail(1e6, 2.0, 0.0).is_some_and(|p| p == 0.0));
    }
}
