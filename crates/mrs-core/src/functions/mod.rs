//! Identity functions (DESIGN §3): the SQL face of [`crate::identity`].
//!
//! | function | returns | NULL input |
//! |---|---|---|
//! | `mrs_report_id(store_id, first_detected_from)` | `MR-<blake3 hex>` | NULL |
//! | `mrs_event_id(founding_report_id)` | `ME-<32 hex>` | NULL |
//! | `mrs_content_hash(v1, ..., vn)` | 32 hex chars over the values' text | NULL values hash as a marker, never NULL |
//! | `mrs_confidence_tier(confidence [, medium, high])` | `Low`, `Medium` or `High` | NULL / NaN give NULL |
//!
//! All are scalar, immutable and O(row).

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::ScalarUDF;

pub mod confidence_tier;
pub mod content_hash;
pub mod event_id;
pub mod report_id;

/// Every function of this crate.
pub fn all_functions() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::new_from_impl(report_id::ReportIdFunc::new())),
        Arc::new(ScalarUDF::new_from_impl(event_id::EventIdFunc::new())),
        Arc::new(ScalarUDF::new_from_impl(
            content_hash::ContentHashFunc::new(),
        )),
        Arc::new(ScalarUDF::new_from_impl(
            confidence_tier::ConfidenceTierFunc::new(),
        )),
    ]
}

/// Registers every function of this crate.
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for f in all_functions() {
        registry.register_udf(f)?;
    }
    Ok(())
}

/// Normalises a string-ish column to `StringArray` (Utf8, LargeUtf8 and Utf8View all arrive).
pub(crate) fn as_utf8(
    array: &datafusion::arrow::array::ArrayRef,
) -> Result<datafusion::arrow::array::StringArray> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::DataType;
    let casted = cast(array, &DataType::Utf8)?;
    Ok(casted.as_string::<i32>().clone())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn no_two_functions_share_a_name() {
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
