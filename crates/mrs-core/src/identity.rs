//! Deterministic identity (DESIGN §3).
//!
//! `report_id = "MR-" || hex(blake3(store_id || "|" || first_detected_from))` where
//! `first_detected_from` is the RFC 3339 UTC form with second precision and a `Z` suffix
//! (`2025-08-07T09:00:00Z`). Sub-second parts are kept (`.250Z`) only when present, so hourly
//! and five-minute buckets keep the canonical form.

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 UTC form of a timestamp given in microseconds since the epoch.
pub fn rfc3339_utc_micros(micros: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(micros) {
        Some(dt) => {
            if micros.rem_euclid(1_000_000) == 0 {
                dt.to_rfc3339_opts(SecondsFormat::Secs, true)
            } else {
                dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            }
        }
        // Out of chrono's range: still deterministic, never panics.
        None => format!("{micros}us"),
    }
}

/// Report identity from the store and the first bucket of the anomaly.
pub fn report_id(store_id: &str, first_detected_from_micros: i64) -> String {
    let key = format!(
        "{store_id}|{}",
        rfc3339_utc_micros(first_detected_from_micros)
    );
    format!("MR-{}", blake3::hash(key.as_bytes()).to_hex())
}

/// Event identity from the report that founded it (its earliest report), so it stays stable
/// as later reports join the event.
pub fn event_id(founding_report_id: &str) -> String {
    format!(
        "ME-{}",
        &blake3::hash(founding_report_id.as_bytes()).to_hex()[..32]
    )
}

/// Content hash of a row snapshot, used by stages to append only what changed.
pub fn content_hash(parts: &[&str]) -> String {
    let mut hasher = blake3::Hasher::new();
    for p in parts {
        hasher.update(&(p.len() as u64).to_le_bytes());
        hasher.update(p.as_bytes());
    }
    hasher.finalize().to_hex()[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_second_precision_utc() {
        // 2025-08-07T09:00:00Z
        let micros = 1_754_557_200_000_000;
        assert_eq!(rfc3339_utc_micros(micros), "2025-08-07T09:00:00Z");
    }

    #[test]
    fn report_id_follows_design() {
        let micros = 1_754_557_200_000_000;
        let expected = format!(
            "MR-{}",
            blake3::hash(b"STORE_BIR_001|2025-08-07T09:00:00Z").to_hex()
        );
        assert_eq!(report_id("STORE_BIR_001", micros), expected);
        assert_ne!(report_id("STORE_BIR_002", micros), expected);
    }

    #[test]
    fn content_hash_is_length_prefixed() {
        assert_ne!(content_hash(&["ab", "c"]), content_hash(&["a", "bc"]));
    }
}
