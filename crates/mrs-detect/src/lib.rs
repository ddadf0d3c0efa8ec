//! MRS detection: causal robust seasonal baselines and scores as DataFusion functions.
//!
//! | function | kind | file |
//! |---|---|---|
//! | `mrs_detect(sku, ts, units)` | aggregate (GroupsAccumulator) | [`functions::mrs_detect`] |
//! | `mrs_detect_resume(sku, ts, units, checkpoint)` | aggregate (GroupsAccumulator) | [`functions::mrs_detect_resume`] |
//! | `anomaly_windows(ts, score [, threshold [, end_after]])` | aggregate | [`functions::anomaly_windows`] |
//! | `anomaly_baseline(ts, value [, season_buckets])` | window | [`functions::anomaly_baseline`] |
//! | `anomaly_score(ts, value [, season_buckets])` | window | [`functions::anomaly_score`] |
//! | `detect_anomalies('table' [, store, sku, ts, units])` | table (expands to a view) | [`functions::detect_anomalies`] |
//!
//! The maths lives in [`model`] (plain Rust, unit tested); [`functions`] holds the contracts
//! (edge cases, frame semantics, complexity) and the Arrow glue.

use std::sync::{Arc, LazyLock};

use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, WindowUDF};
use datafusion::prelude::SessionContext;

pub mod functions;
pub mod model;

/// The detector's version, written with every report (`detector_version`) and with every
/// checkpoint: a checkpoint of another version is never resumed.
pub const DETECTOR_VERSION: &str = "mrs-detect 0.9";

static MRS_DETECT: LazyLock<Arc<AggregateUDF>> = LazyLock::new(|| {
    Arc::new(AggregateUDF::new_from_impl(
        functions::mrs_detect::MrsDetect::new(),
    ))
});
static MRS_DETECT_RESUME: LazyLock<Arc<AggregateUDF>> = LazyLock::new(|| {
    Arc::new(AggregateUDF::new_from_impl(
        functions::mrs_detect_resume::MrsDetectResume::new(),
    ))
});
static ANOMALY_WINDOWS: LazyLock<Arc<AggregateUDF>> = LazyLock::new(|| {
    Arc::new(AggregateUDF::new_from_impl(
        functions::anomaly_windows::AnomalyWindows::new(),
    ))
});
static ANOMALY_BASELINE: LazyLock<Arc<WindowUDF>> = LazyLock::new(|| {
    Arc::new(WindowUDF::new_from_impl(
        functions::anomaly_baseline::AnomalyBaseline::new(),
    ))
});
static ANOMALY_SCORE: LazyLock<Arc<WindowUDF>> = LazyLock::new(|| {
    Arc::new(WindowUDF::new_from_impl(
        functions::anomaly_score::AnomalyScore::new(),
    ))
});

/// The `mrs_detect` aggregate.
pub fn mrs_detect_udaf() -> Arc<AggregateUDF> {
    Arc::clone(&MRS_DETECT)
}

/// The `mrs_detect_resume` aggregate (incremental detection).
pub fn mrs_detect_resume_udaf() -> Arc<AggregateUDF> {
    Arc::clone(&MRS_DETECT_RESUME)
}

/// The `anomaly_windows` aggregate.
pub fn anomaly_windows_udaf() -> Arc<AggregateUDF> {
    Arc::clone(&ANOMALY_WINDOWS)
}

/// The `anomaly_baseline` window function.
pub fn anomaly_baseline_udwf() -> Arc<WindowUDF> {
    Arc::clone(&ANOMALY_BASELINE)
}

/// The `anomaly_score` window function.
pub fn anomaly_score_udwf() -> Arc<WindowUDF> {
    Arc::clone(&ANOMALY_SCORE)
}

/// Every aggregate function of this crate.
pub fn all_aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    vec![
        mrs_detect_udaf(),
        mrs_detect_resume_udaf(),
        anomaly_windows_udaf(),
    ]
}

/// Every window function of this crate.
pub fn all_window_functions() -> Vec<Arc<WindowUDF>> {
    vec![anomaly_baseline_udwf(), anomaly_score_udwf()]
}

/// Registers every aggregate and window function of this crate.
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for f in all_aggregate_functions() {
        registry.register_udaf(f)?;
    }
    for f in all_window_functions() {
        registry.register_udwf(f)?;
    }
    Ok(())
}

/// Registers the table functions of this crate (UDTFs are not part of `FunctionRegistry`).
pub fn register_table_functions(ctx: &SessionContext) {
    ctx.register_udtf(
        functions::detect_anomalies::NAME,
        Arc::new(functions::detect_anomalies::DetectAnomalies),
    );
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn no_two_functions_share_a_name_and_all_are_documented() {
        let mut names = HashSet::new();
        let mut check = |name: &str, aliases: &[String], documented: bool| {
            assert!(names.insert(name.to_string()), "{name}");
            for a in aliases {
                assert!(names.insert(a.clone()), "{a}");
            }
            assert!(documented, "{name} is undocumented");
        };
        for f in all_aggregate_functions() {
            check(f.name(), f.aliases(), f.documentation().is_some());
        }
        for f in all_window_functions() {
            check(f.name(), f.aliases(), f.documentation().is_some());
        }
        let doc = functions::detect_anomalies::documentation();
        check(
            functions::detect_anomalies::NAME,
            &[],
            !doc.description.is_empty(),
        );
    }

    #[test]
    fn registers() {
        let mut ctx = SessionContext::new();
        register_all(&mut ctx).expect("register");
        register_table_functions(&ctx);
        let state = ctx.state();
        assert!(state.aggregate_functions().contains_key("mrs_detect"));
        assert!(state.window_functions().contains_key("anomaly_score"));
        assert!(state.table_functions().contains_key("detect_anomalies"));
    }
}
