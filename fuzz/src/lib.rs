//! The plain-Rust kernels under fuzzing, compiled from their crates' sources.
#![allow(dead_code, unused_imports, clippy::all)]

/// `mrs_detect::model`: grids, the robust scorer, windows, the store detector.
#[path = "../../crates/mrs-detect/src/model/mod.rs"]
pub mod model;

/// `mrs_core::identity`: report and event ids, content hashes, RFC 3339 forms.
#[path = "../../crates/mrs-core/src/identity.rs"]
pub mod identity;
