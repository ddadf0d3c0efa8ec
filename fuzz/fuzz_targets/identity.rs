//! Identity hashing on arbitrary strings and instants: no panic, fixed shapes, deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mrs_fuzz::identity;

fuzz_target!(|input: (String, i64, Vec<String>)| {
    let (store, micros, parts) = input;
    let id = identity::report_id(&store, micros);
    assert!(id.starts_with("MR-") && id.len() == 67, "{id}");
    assert_eq!(id, identity::report_id(&store, micros));
    let event = identity::event_id(&id);
    assert!(event.starts_with("ME-") && event.len() == 35, "{event}");
    let _ = identity::rfc3339_utc_micros(micros);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let h = identity::content_hash(&refs);
    assert_eq!(h.len(), 32);
    assert_eq!(h, identity::content_hash(&refs));
    // Part boundaries matter: ["ab", "c"] and ["a", "bc"] differ.
    if refs.len() == 2 && !refs[0].is_empty() {
        let (a, b) =
            refs[0].split_at(refs[0].len() - refs[0].chars().last().map_or(0, char::len_utf8));
        let moved = format!(
            "{}{}",
            refs[0].chars().last().map(String::from).unwrap_or_default(),
            refs[1]
        );
        if !b.is_empty() {
            assert_ne!(h, identity::content_hash(&[a, &moved]));
        }
    }
});
