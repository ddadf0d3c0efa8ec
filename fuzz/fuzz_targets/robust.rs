//! The robust statistics: medians, the robust scale, the variance-stabilising transforms and the
//! step inference on arbitrary values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mrs_fuzz::model::{grid, robust};

fuzz_target!(|input: (Vec<f64>, Vec<i64>, f64)| {
    let (values, ts, kappa) = input;
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if !finite.is_empty() {
        let mut a = finite.clone();
        let m = robust::median_in_place(&mut a);
        let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert!(m >= lo && m <= hi, "median {m} outside [{lo}, {hi}]");
        let mut b = finite.clone();
        let sd = robust::robust_sd_in_place(&mut b);
        assert!(!(sd < 0.0), "negative scale {sd}");
        let mut c: Vec<f64> = finite.iter().copied().take(8).collect();
        let _ = robust::small_median(&mut c);
    }
    for v in values.iter().copied() {
        let _ = robust::inverse_anscombe(robust::anscombe(v));
        if kappa.is_finite() && kappa >= 0.0 {
            let _ = robust::inverse_nb_transform(robust::nb_transform(v, kappa), kappa);
        }
    }
    let mut sorted = ts.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if let Some(step) = grid::infer_step(&sorted) {
        assert!(step > 0);
        let origin = sorted[0];
        for t in &sorted {
            assert!(grid::bucket_of(*t, origin, step) >= 0);
        }
    }
});
