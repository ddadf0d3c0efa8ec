//! Window building on arbitrary point sequences: ordered, disjoint, well-formed windows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mrs_fuzz::model::windows::{Point, build_windows};

fuzz_target!(|input: (Vec<(u8, f64)>, u8)| {
    let (raw, end_after) = input;
    let points: Vec<Point> = raw
        .iter()
        .map(|&(k, score)| match k % 4 {
            0 => Point::Unscored,
            1 => Point::Normal,
            2 => Point::Anomalous {
                direction: 1,
                score,
            },
            _ => Point::Anomalous {
                direction: -1,
                score,
            },
        })
        .collect();
    let windows = build_windows(points.iter().copied(), usize::from(end_after));
    let mut previous_end = 0;
    for (i, w) in windows.iter().enumerate() {
        assert!(w.start >= previous_end && w.start <= w.peak && w.peak <= w.last);
        assert!(w.anomalous >= 1);
        match w.end {
            Some(e) => {
                assert!(e > w.last);
                previous_end = e;
            }
            None => assert_eq!(i + 1, windows.len(), "only the last window may be open"),
        }
    }
});
