//! Robust statistics helpers (median, MAD) and the count-aware Anscombe transform.
//!
//! All helpers work in place on caller-owned scratch buffers so the scoring loops never
//! allocate per point. NaN inputs must be filtered by the caller.

/// `3/8`, the Anscombe offset.
const OFFSET: f64 = 0.375;

/// `a(0) = 2 * sqrt(3/8)`, the centre of the odd extension used for negative values.
fn a0() -> f64 {
    2.0 * OFFSET.sqrt()
}

/// Anscombe transform `a(y) = 2 * sqrt(y + 3/8)` for `y >= 0`, extended to negative values
/// (returns, corrections) by reflection around `a(0)` so it stays continuous and monotone:
/// `a(y) = 2 * a(0) - 2 * sqrt(-y + 3/8)` for `y < 0`. On this scale a Poisson count has a
/// variance close to 1 whatever its mean, which is why the scale is floored at 1.
#[inline]
pub fn anscombe(y: f64) -> f64 {
    if y >= 0.0 {
        2.0 * (y + OFFSET).sqrt()
    } else {
        2.0 * a0() - 2.0 * (-y + OFFSET).sqrt()
    }
}

/// Inverse of [`anscombe`].
#[inline]
pub fn inverse_anscombe(a: f64) -> f64 {
    let c = a0();
    if a >= c {
        (a / 2.0).powi(2) - OFFSET
    } else {
        let r = (2.0 * c - a) / 2.0;
        -(r * r - OFFSET)
    }
}

/// Dispersions below this use the plain [`anscombe`] transform (its `kappa -> 0` limit).
const MIN_KAPPA: f64 = 1e-9;

/// Variance-stabilising transform of a negative binomial count with dispersion `kappa`
/// (`var = mu + kappa mu^2`): `g(y) = 2 / sqrt(kappa) * asinh(sqrt(kappa (y + 3/8)))`, so that
/// `g'(mu)^2 var(y) = 1`. It behaves like [`anscombe`] for small counts and like a logarithm
/// for large ones, which is what keeps the heavy right tail of overdispersed counts from
/// looking like anomalies. `kappa = 0` is [`anscombe`]; negative values are reflected around
/// `g(0)` as there.
#[inline]
pub fn nb_transform(y: f64, kappa: f64) -> f64 {
    if kappa < MIN_KAPPA {
        return anscombe(y);
    }
    let k = kappa.sqrt();
    let g = |v: f64| 2.0 / k * (k * (v + OFFSET).sqrt()).asinh();
    if y >= 0.0 { g(y) } else { 2.0 * g(0.0) - g(-y) }
}

/// Inverse of [`nb_transform`].
#[inline]
pub fn inverse_nb_transform(a: f64, kappa: f64) -> f64 {
    if kappa < MIN_KAPPA {
        return inverse_anscombe(a);
    }
    let k = kappa.sqrt();
    let inv = |g: f64| {
        let s = (g * k / 2.0).sinh();
        s * s / kappa - OFFSET
    };
    let g0 = nb_transform(0.0, kappa);
    if a >= g0 { inv(a) } else { -inv(2.0 * g0 - a) }
}

/// `(lo + hi) / 2` for `lo <= hi`: halves first, so it cannot overflow near `f64::MAX`, and
/// is kept within `[lo, hi]` (halving a subnormal rounds). Both found by fuzzing; for normal
/// values the result is the same as `(lo + hi) / 2`.
#[inline]
fn midpoint(lo: f64, hi: f64) -> f64 {
    let mid = lo / 2.0 + hi / 2.0;
    if mid < lo {
        lo
    } else if mid > hi {
        hi
    } else {
        mid
    }
}

/// Median of `values` (reorders the slice). `NaN` for an empty slice.
pub fn median_in_place(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = n / 2;
    let (lower, m, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        m
    } else {
        let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        midpoint(below, m)
    }
}

/// Median of values sorted by [`f64::total_cmp`]: the same value as [`median_in_place`].
pub fn median_of_sorted(values: &[f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        midpoint(values[n / 2 - 1], values[n / 2])
    }
}

/// Median of up to a few values without touching the heap (used for the K seasonal values).
pub fn small_median(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    median_of_sorted(values)
}

/// `1.4826 * MAD` (median absolute deviation about the median): a robust standard deviation,
/// consistent for Gaussian data. Reorders `values`. `NaN` for an empty slice.
pub fn robust_sd_in_place(values: &mut [f64]) -> f64 {
    let med = median_in_place(values);
    if med.is_nan() {
        return f64::NAN;
    }
    for v in values.iter_mut() {
        *v = (*v - med).abs();
    }
    1.4826 * median_in_place(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_huge_values_do_not_overflow() {
        // Regression (fuzz target `robust`): (a + b) / 2 overflowed to -inf.
        let mut v = [-3.593_723_932_676_746e305, -1.797_054_515_863_188_8e308];
        let m = median_in_place(&mut v);
        assert!(m.is_finite() && m < -3.5e305);
        let mut w = [f64::MAX, f64::MAX];
        assert_eq!(small_median(&mut w), f64::MAX);
        assert_eq!(median_in_place(&mut [1.0, 2.0]), 1.5);
        // Two equal subnormals: their median is that value, not one ulp off.
        let tiny = 8.289_045_6e-317;
        assert_eq!(median_in_place(&mut [tiny, tiny]), tiny);
    }

    #[test]
    fn nb_transform_roundtrips_and_tends_to_anscombe() {
        for kappa in [0.0, 1e-12, 0.05, 0.7, 3.0] {
            for y in [-20.0, -1.0, 0.0, 0.4, 3.0, 67.0, 1e4] {
                let a = nb_transform(y, kappa);
                assert!((inverse_nb_transform(a, kappa) - y).abs() < 1e-6 * y.abs().max(1.0));
            }
        }
        assert!((nb_transform(5.0, 1e-7) - anscombe(5.0)).abs() < 1e-4);
        // log-like growth: a 10x value moves far less than on the Anscombe scale
        let k = 0.7;
        assert!(
            nb_transform(67.0, k) - nb_transform(7.0, k) < 0.5 * (anscombe(67.0) - anscombe(7.0))
        );
    }

    #[test]
    fn anscombe_round_trips_and_is_monotone() {
        let mut prev = f64::NEG_INFINITY;
        for i in -200..=200 {
            let y = f64::from(i) / 4.0;
            let a = anscombe(y);
            assert!(a > prev, "not monotone at {y}");
            prev = a;
            assert!((inverse_anscombe(a) - y).abs() < 1e-9, "{y}");
        }
        assert!((anscombe(0.0) - 2.0 * 0.375f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn medians() {
        assert!(median_in_place(&mut []).is_nan());
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(small_median(&mut [5.0, 1.0]), 3.0);
        assert_eq!(robust_sd_in_place(&mut [1.0, 1.0, 1.0]), 0.0);
        let sd = robust_sd_in_place(&mut [1.0, 2.0, 3.0, 4.0, 100.0]);
        assert!((sd - 1.4826).abs() < 1e-9);
    }
}
