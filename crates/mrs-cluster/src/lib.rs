//! MRS clustering and cohorting (DESIGN §3, §6): two aggregates over all Minority Reports of a
//! run (no GROUP BY; a plain `Accumulator` keeps the argument arrays and works at `evaluate`).
//!
//! | function | kind | returns | minimum samples | NULL / NaN / empty | complexity |
//! |---|---|---|---|---|---|
//! | [`mrs_cluster`](cluster) | UDAF, 11 args | `List<Struct{report_id, cluster_id, cluster_size, is_core, core_distance, cluster_stores, cluster_retailers, spread_km, co_sku_stores, co_sku_retailers, co_retailer_reports, co_category_other_retailer_nearby}>` | 1 (a dense cluster needs 3) | NULL report_id ignored; other NULLs are "unknown" (0.5 distance component); empty input gives an empty list | O(n^2) time, O(n + links) memory |
//! | [`mrs_cohort`](cohort) | UDAF, 10 args | `List<Struct{report_id, report_group_id, group_size, group_confidence, founding_report_id, merged_from List<Utf8>}>` | 1 | NULL report_id ignored; NULL cause is compatible with any; NULL confidence counts 0; empty input gives an empty list | O(n^2) time, O(n) memory |
//!
//! Both are deterministic: rows are sorted by `report_id` (duplicates reduced to one) before
//! any work, so any input order or partitioning gives the same list. Argument types are checked
//! when planning (`plan_err!`); strings may be Utf8, LargeUtf8 or Utf8View, numbers any numeric
//! type, timestamps any unit with or without time zone (naive is read as UTC).

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::AggregateUDF;

pub mod cluster;
pub mod cohort;
mod common;

pub use cluster::{ClusterParams, cluster_reports, mrs_cluster_udaf};
pub use cohort::{cohort_reports, mrs_cohort_udaf};

/// Every function of this crate.
pub fn all_functions() -> Vec<Arc<AggregateUDF>> {
    vec![mrs_cluster_udaf(), mrs_cohort_udaf()]
}

/// Registers every function of this crate.
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for f in all_functions() {
        registry.register_udaf(f)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn no_two_functions_share_a_name_and_all_are_documented() {
        let mut names = HashSet::new();
        for f in all_functions() {
            assert!(names.insert(f.name().to_string()), "{}", f.name());
            for a in f.aliases() {
                assert!(names.insert(a.clone()), "{a}");
            }
            assert!(f.documentation().is_some(), "{} is undocumented", f.name());
        }
    }
}
