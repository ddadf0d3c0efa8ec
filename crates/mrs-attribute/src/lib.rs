//! MRS attribution (DESIGN §5): `mrs_attribute(features)`, the evidence-based cause model.
//!
//! | function | kind | returns | NULL / NaN / empty | complexity |
//! |---|---|---|---|---|
//! | [`mrs_attribute`](attribute) | scalar, 1 struct arg | struct{cause, confidence, cause_2, confidence_2, cause_3, confidence_3, impact_vector, confidence_tier, narrative, evidence, localisation} | missing/NULL/NaN fields are no evidence; a NULL struct gives the no-evidence result (all causes 0.2, `Low`) | O(fields + profile) per row |
//!
//! Modules: [`features`] reads the struct by name, [`shape`] computes the profile's shape,
//! [`model`] holds the signals, the weight table ([`AttributionModel`], serde) and the softmax,
//! [`narrative`] writes the sentences.

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::ScalarUDF;

pub mod attribute;
pub mod features;
pub mod model;
pub mod narrative;
pub mod shape;
pub mod train;

pub use features::{Features, ProfilePoint};
pub use model::{Attribution, AttributionModel};

/// Every function of this crate.
pub fn all_functions() -> Vec<Arc<ScalarUDF>> {
    vec![Arc::new(ScalarUDF::new_from_impl(
        attribute::AttributeFunc::new(),
    ))]
}

/// Registers every function of this crate.
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for f in all_functions() {
        registry.register_udf(f)?;
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
