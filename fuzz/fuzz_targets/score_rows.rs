//! The per-series scorer behind `anomaly_baseline` / `anomaly_score` on arbitrary rows
//! (NULL, NaN, infinite values; any timestamps; any fixed season): no panic, scores in [0, 1],
//! finite baselines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mrs_fuzz::model::score_rows;

fuzz_target!(
    |input: (Vec<(Option<i32>, Option<f64>)>, Option<u16>, bool)| {
        let (rows, season, raw) = input;
        const T0: i64 = 1_748_822_400_000_000;
        let ts: Vec<Option<i64>> = rows
            .iter()
            .map(|r| {
                r.0.map(|t| {
                    if raw {
                        i64::from(t) * 1_000_003
                    } else {
                        T0 + i64::from(t.rem_euclid(900)) * 3_600_000_000
                    }
                })
            })
            .collect();
        let values: Vec<Option<f64>> = rows.iter().map(|r| r.1).collect();
        let season = season.map(|s| usize::from(s % 400).max(1));
        if let Ok(out) = score_rows(&ts, &values, season, 3.5) {
            assert_eq!(out.score.len(), rows.len());
            for s in out.score.iter().flatten() {
                assert!((0.0..=1.0).contains(s), "score {s}");
            }
            for b in out.baseline.iter().flatten() {
                assert!(b.is_finite(), "baseline {b}");
            }
        }
    }
);
