//! Shape of an anomaly, computed from its store-level profile (`List<Struct{ts, actual,
//! baseline}>`), oriented so that the excess is positive (`actual - baseline` for a spike,
//! `baseline - actual` for a drop).
//!
//! With `e_t` the oriented excess (0 where a value is missing), `P = max e_t` and `r` the first
//! bucket where `e_t >= 0.8 P`:
//!
//! | feature | definition | step | ramp | spike and decay |
//! |---|---|---|---|---|
//! | `rise_fast` | `1 - r / (n - 1)` | ~1 | ~0.2 | ~0.9 |
//! | `flatness` | share of buckets from `r` on with `e_t >= 0.7 P` | ~1 | ~1 | low |
//! | `decay` | `1 - mean(e over the last ceil(n/4) buckets) / P`, clamped to [0, 1] | ~0 | ~0.1 | high |
//! | `trend` | Pearson correlation of `e_t` with `t`, clamped to [0, 1] | ~0 | ~1 | 0 |
//! | `step` | `rise_fast * flatness * (1 - decay)` | | | |
//! | `ramp` | `trend * (1 - rise_fast)` | | | |
//! | `spike_decay` | `rise_fast * decay` | | | |
//!
//! Fewer than 3 points or no positive excess: no shape (every shape signal is absent).
//! Duration in hours: from the timestamps (`last - first + smallest step`) when at least two
//! are present, else `None`. O(n) in the profile length.

use crate::features::ProfilePoint;

/// Shape features, all in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub rise_fast: f64,
    pub flatness: f64,
    pub decay: f64,
    pub trend: f64,
    pub step: f64,
    pub ramp: f64,
    pub spike_decay: f64,
}

/// Orders the profile by time (points without a time keep their place after the others).
fn ordered(profile: &[ProfilePoint]) -> Vec<ProfilePoint> {
    let mut p = profile.to_vec();
    p.sort_by_key(|x| (x.ts.is_none(), x.ts.unwrap_or(0)));
    p
}

/// Shape of the oriented excess; `sign` is +1 for a spike and -1 for a drop.
pub fn shape(profile: &[ProfilePoint], sign: f64) -> Option<Shape> {
    let p = ordered(profile);
    let e: Vec<f64> = p
        .iter()
        .map(|x| match (x.actual, x.baseline) {
            (Some(a), Some(b)) => (sign * (a - b)).max(0.0),
            _ => 0.0,
        })
        .collect();
    let n = e.len();
    if n < 3 {
        return None;
    }
    let peak = e.iter().copied().fold(0.0f64, f64::max);
    if peak <= 0.0 || !peak.is_finite() {
        return None;
    }
    let r = e.iter().position(|v| *v >= 0.8 * peak).unwrap_or(0);
    let rise_fast = 1.0 - r as f64 / (n - 1) as f64;
    let after = &e[r..];
    let flatness = after.iter().filter(|v| **v >= 0.7 * peak).count() as f64 / after.len() as f64;
    let tail_len = n.div_ceil(4);
    let tail_mean = e[n - tail_len..].iter().sum::<f64>() / tail_len as f64;
    let decay = (1.0 - tail_mean / peak).clamp(0.0, 1.0);
    let trend = pearson_with_index(&e).clamp(0.0, 1.0);
    Some(Shape {
        rise_fast,
        flatness,
        decay,
        trend,
        step: rise_fast * flatness * (1.0 - decay),
        ramp: trend * (1.0 - rise_fast),
        spike_decay: rise_fast * decay,
    })
}

/// Pearson correlation of the values with their index; 0 when either has no spread.
fn pearson_with_index(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mx = (n - 1.0) / 2.0;
    let my = v.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (i, y) in v.iter().enumerate() {
        let dx = i as f64 - mx;
        let dy = y - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx <= 0.0 || syy <= 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// Duration in hours covered by the profile's timestamps.
pub fn duration_hours(profile: &[ProfilePoint]) -> Option<f64> {
    let mut ts: Vec<i64> = profile.iter().filter_map(|p| p.ts).collect();
    ts.sort_unstable();
    ts.dedup();
    if ts.len() < 2 {
        return None;
    }
    // i128: profile timestamps near the ends of i64 must not overflow (found by property tests).
    let step = ts
        .windows(2)
        .map(|w| i128::from(w[1]) - i128::from(w[0]))
        .min()
        .unwrap_or(0);
    let span = i128::from(ts[ts.len() - 1]) - i128::from(ts[0]) + step;
    Some(span as f64 / 3_600_000_000.0)
}

/// Sum of `actual - baseline` over the profile's complete points, `None` if there are none.
pub fn excess_units(profile: &[ProfilePoint]) -> Option<f64> {
    let mut any = false;
    let mut s = 0.0;
    for p in profile {
        if let (Some(a), Some(b)) = (p.actual, p.baseline) {
            any = true;
            s += a - b;
        }
    }
    any.then_some(s)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    #[test]
    fn duration_of_a_profile_spanning_all_of_time_does_not_overflow() {
        // Regression (property test on mrs_attribute): the span overflowed i64.
        let point = |ts| ProfilePoint {
            ts: Some(ts),
            actual: Some(1.0),
            baseline: Some(1.0),
        };
        let hours = duration_hours(&[point(i64::MIN), point(0), point(i64::MAX)]);
        assert!(hours.is_some_and(|h| h.is_finite() && h > 0.0));
    }

    pub(crate) fn profile(values: &[f64], baseline: f64) -> Vec<ProfilePoint> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| ProfilePoint {
                ts: Some(i as i64 * H),
                actual: Some(*v),
                baseline: Some(baseline),
            })
            .collect()
    }

    #[test]
    fn step_ramp_and_spike() {
        let step = shape(&profile(&[30.0; 12], 10.0), 1.0);
        assert!(
            step.is_some_and(|s| s.step > 0.9 && s.ramp < 0.05 && s.spike_decay < 0.05),
            "{step:?}"
        );
        let ramp: Vec<f64> = (0..24).map(|i| 10.0 + i as f64).collect();
        let ramp = shape(&profile(&ramp, 10.0), 1.0);
        assert!(
            ramp.is_some_and(|s| s.ramp > 0.7 && s.step < 0.3),
            "{ramp:?}"
        );
        let spike = [
            60.0, 100.0, 60.0, 40.0, 30.0, 20.0, 15.0, 12.0, 11.0, 11.0, 10.5, 10.5,
        ];
        let spike = shape(&profile(&spike, 10.0), 1.0);
        assert!(
            spike.is_some_and(|s| s.spike_decay > 0.7 && s.step < 0.1),
            "{spike:?}"
        );
        let drop = shape(&profile(&[0.0; 6], 10.0), -1.0);
        assert!(drop.is_some_and(|s| s.rise_fast == 1.0 && s.step > 0.9));
    }

    #[test]
    fn degenerate_profiles() {
        assert_eq!(shape(&[], 1.0), None);
        assert_eq!(shape(&profile(&[10.0; 5], 10.0), 1.0), None);
        assert_eq!(shape(&[ProfilePoint::default(); 5], 1.0), None);
        assert_eq!(duration_hours(&profile(&[1.0; 6], 0.0)), Some(6.0));
        assert_eq!(duration_hours(&[]), None);
        assert_eq!(excess_units(&profile(&[12.0, 14.0], 10.0)), Some(6.0));
    }
}
