//! Detector checkpoints from arbitrary bytes: decoding never panics, a decoded checkpoint
//! re-encodes to the same bytes, and resuming a store from any decodable checkpoint (however
//! inconsistent with the rows) returns reports or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mrs_fuzz::model::checkpoint::StoreCheckpoint;
use mrs_fuzz::model::store::{DetectConfig, detect_store_resumable};

fuzz_target!(|input: (Vec<u8>, Vec<(u8, i16, i8)>, bool)| {
    let (bytes, raw_rows, seed_valid) = input;
    // Half the runs start from a real checkpoint, mutated by the input bytes.
    let bytes = if seed_valid {
        let rows: Vec<(u32, i64, f64)> = (0..24 * 15)
            .map(|t| (0, t as i64 * 3_600_000_000, f64::from((t % 24) as u8 + 1)))
            .collect();
        let Ok((_, Some(cp))) =
            detect_store_resumable(&rows, &["A"], &DetectConfig::default(), None, true)
        else {
            return;
        };
        let mut enc = cp.encode();
        for (i, b) in bytes.iter().enumerate().take(64) {
            let at = (usize::from(*b) * 131 + i * 977) % enc.len();
            enc[at] ^= b.wrapping_add(1);
        }
        enc
    } else {
        bytes
    };
    let Ok(cp) = StoreCheckpoint::decode(&bytes) else {
        return;
    };
    assert_eq!(cp.encode(), bytes, "round trip");
    let mut names: Vec<String> = cp.skus.iter().map(|s| s.sku.clone()).collect();
    names.push("~fuzz".into());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let last = (refs.len() - 1) as u32;
    let base = cp.ts_of(cp.first_bucket);
    let mut rows: Vec<(u32, i64, f64)> = raw_rows
        .iter()
        .map(|&(s, t, u)| {
            (
                u32::from(s).min(last),
                base.saturating_add(i64::from(t).saturating_mul(cp.step.max(1))),
                f64::from(u),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    let _ = detect_store_resumable(&rows, &refs, &DetectConfig::default(), Some(&cp), true);
});
