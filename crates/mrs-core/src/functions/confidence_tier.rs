//! `mrs_confidence_tier(confidence [, medium, high])`: the confidence tier (`Low`, `Medium`,
//! `High`) of DESIGN §5. Thresholds are configuration: the defaults are
//! [`TierThresholds::default`], overridable per call.
//!
//! NULL or NaN confidence gives NULL. O(row).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion_macros::user_doc;

use crate::taxonomy::TierThresholds;

#[user_doc(
    doc_section(label = "MRS Identity Functions"),
    description = "Confidence tier of a cause confidence: `High` at or above the high threshold (default 0.8), `Medium` at or above the medium one (default 0.5), else `Low`.",
    syntax_example = "mrs_confidence_tier(confidence[, medium, high])",
    sql_example = r#"```sql
> SELECT mrs_confidence_tier(0.85), mrs_confidence_tier(0.6, 0.5, 0.9);
```"#,
    argument(name = "confidence", description = "Confidence in [0, 1]."),
    argument(name = "medium", description = "Optional constant Medium threshold."),
    argument(name = "high", description = "Optional constant High threshold.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ConfidenceTierFunc {
    signature: Signature,
}

impl Default for ConfidenceTierFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfidenceTierFunc {
    pub fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Float64]),
                    TypeSignature::Exact(vec![DataType::Float64; 3]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

fn constant(arg: &ColumnarValue, name: &str) -> Result<f64> {
    match arg {
        ColumnarValue::Scalar(ScalarValue::Float64(Some(v))) if v.is_finite() => Ok(*v),
        _ => plan_err!("mrs_confidence_tier: {name} must be a finite constant"),
    }
}

impl ScalarUDFImpl for ConfidenceTierFunc {
    fn name(&self) -> &str {
        "mrs_confidence_tier"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let thresholds = match args.args.as_slice() {
            [_] => TierThresholds::default(),
            [_, medium, high] => TierThresholds {
                medium: constant(medium, "medium")?,
                high: constant(high, "high")?,
            },
            _ => return plan_err!("mrs_confidence_tier takes 1 or 3 arguments"),
        };
        let confidence = cast(&args.args[0].to_array(rows)?, &DataType::Float64)?;
        let confidence = confidence.as_primitive::<Float64Type>();
        let mut out = StringBuilder::with_capacity(rows, rows * 6);
        for i in 0..rows {
            let c = confidence.value(i);
            if confidence.is_null(i) || c.is_nan() {
                out.append_null();
            } else {
                out.append_value(thresholds.tier(c).as_str());
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
