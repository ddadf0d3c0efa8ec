//! The store-level detector on arbitrary rows: any SKUs, timestamps (unsorted, duplicated, far
//! apart) and finite units (negative, huge). It must return reports or `TooManyBuckets`, never
//! panic, and its reports must be well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mrs_fuzz::model::store::{DetectConfig, detect_store};

const T0: i64 = 1_748_822_400_000_000;
const HOUR: i64 = 3_600_000_000;

fuzz_target!(|input: (Vec<(u8, i16, f32)>, u8, bool)| {
    let (cells, end_after, wide) = input;
    // Mostly an hourly grid near T0 (so series are long enough to score); `wide` spreads the
    // timestamps over the whole i16 range of hours and beyond.
    let mut rows: Vec<(u32, i64, f64)> = cells
        .iter()
        .filter(|c| c.2.is_finite())
        .map(|&(sku, h, u)| {
            let ts = if wide {
                T0 + i64::from(h) * HOUR * 97 + i64::from(sku)
            } else {
                T0 + i64::from(h.rem_euclid(700)) * HOUR
            };
            (u32::from(sku % 4), ts, f64::from(u))
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    let names = ["a", "b", "c", "d"];
    let cfg = DetectConfig {
        end_after: usize::from(end_after % 8),
        ..DetectConfig::default()
    };
    if let Ok(reports) = detect_store(&rows, &names, &cfg) {
        for r in reports {
            assert!((0.0..=1.0).contains(&r.severity), "severity {}", r.severity);
            assert!(r.first_detected_from <= r.last_anomalous_ts);
            assert!(r.window_end.is_none_or(|e| e > r.last_anomalous_ts));
            assert!(
                r.baseline_units.is_finite(),
                "baseline {}",
                r.baseline_units
            );
        }
    }
});
