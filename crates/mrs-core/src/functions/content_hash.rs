//! `mrs_content_hash(v1, ..., vn)`: a hash of a row's values, used by pipeline stages to append
//! a snapshot only when it differs from the latest one (idempotent reruns).
//!
//! Any types; each value is rendered with Arrow's display formatting, NULL as a marker distinct
//! from every string. Never NULL. O(row x args).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion_macros::user_doc;

#[user_doc(
    doc_section(label = "MRS Identity Functions"),
    description = "Order-sensitive BLAKE3 hash (32 hex chars) of the given values' text forms; NULL hashes as a distinct marker. Stages append a snapshot only when this hash differs from the latest one.",
    syntax_example = "mrs_content_hash(value1[, ..., value_n])",
    sql_example = r#"```sql
> SELECT mrs_content_hash(store_id, severity) FROM minority_reports_detected_log LIMIT 1;
```"#,
    argument(name = "value_n", description = "Any expression.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ContentHashFunc {
    signature: Signature,
}

impl Default for ContentHashFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ContentHashFunc {
    pub fn new() -> Self {
        Self {
            // The Exact variant gives SHOW FUNCTIONS an example; VariadicAny takes the rest.
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8]),
                    TypeSignature::VariadicAny,
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for ContentHashFunc {
    fn name(&self) -> &str {
        "mrs_content_hash"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.is_empty() {
            return plan_err!("mrs_content_hash needs at least one argument");
        }
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let options = FormatOptions::default().with_null("\u{0}NULL\u{0}");
        let formatters = arrays
            .iter()
            .map(|a| ArrayFormatter::try_new(a.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = StringBuilder::with_capacity(rows, rows * 32);
        let mut text = String::new();
        let mut hasher = blake3::Hasher::new();
        for i in 0..rows {
            hasher.reset();
            for f in &formatters {
                text.clear();
                use std::fmt::Write;
                write!(text, "{}", f.value(i))
                    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
                hasher.update(&(text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
            }
            out.append_value(&hasher.finalize().to_hex()[..32]);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
