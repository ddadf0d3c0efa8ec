//! `mrs_row_key(v1, ..., vn)`: a 64-bit hash of a row's values, to group or join on one
//! fixed-width column instead of several strings (sql/views/00_inputs.sql groups every sales
//! cell to find the contested ones: 21.5M string keys held about 2 GiB, their hashes a third).
//!
//! Equal values always give equal keys (within a process: the seed is fixed, the algorithm is
//! DataFusion's own hashing and may change with it, so never store a key); different values
//! almost always give different keys, so a caller must treat a shared key as a candidate and
//! compare the values themselves. NULLs hash to a fixed value. Never NULL. O(row x args).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion_macros::user_doc;

#[user_doc(
    doc_section(label = "MRS Identity Functions"),
    description = "64-bit hash of the given values (fixed seed, DataFusion's hashing): equal values give equal keys, different values almost always different ones. For grouping or joining on one fixed-width column; compare the values themselves where a collision matters. Never stored: the hashing may change between versions.",
    syntax_example = "mrs_row_key(value1[, ..., value_n])",
    sql_example = r#"```sql
> SELECT mrs_row_key(store_id, sku), count(*) FROM sales_clean GROUP BY 1 LIMIT 1;
```"#,
    argument(name = "value_n", description = "Any expression.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RowKeyFunc {
    signature: Signature,
}

impl Default for RowKeyFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl RowKeyFunc {
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

impl ScalarUDFImpl for RowKeyFunc {
    fn name(&self) -> &str {
        "mrs_row_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.is_empty() {
            return plan_err!("mrs_row_key needs at least one argument");
        }
        Ok(DataType::UInt64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let mut hashes = vec![0u64; rows];
        create_hashes(&arrays, &RandomState::with_seed(0), &mut hashes)?;
        Ok(ColumnarValue::Array(Arc::new(UInt64Array::from(hashes))))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray, StringArray};
    use datafusion::arrow::datatypes::{Field, UInt64Type};
    use datafusion::config::ConfigOptions;

    use super::*;

    fn keys(a: Vec<Option<&str>>, b: Vec<Option<&str>>) -> Vec<u64> {
        let rows = a.len();
        let args = vec![
            ColumnarValue::Array(Arc::new(StringArray::from(a))),
            ColumnarValue::Array(Arc::new(StringArray::from(b))),
        ];
        let out = RowKeyFunc::new()
            .invoke_with_args(ScalarFunctionArgs {
                args,
                arg_fields: vec![
                    Arc::new(Field::new("a", DataType::Utf8, true)),
                    Arc::new(Field::new("b", DataType::Utf8, true)),
                ],
                number_rows: rows,
                return_field: Arc::new(Field::new("k", DataType::UInt64, false)),
                config_options: Arc::new(ConfigOptions::default()),
            })
            .and_then(|v| v.to_array(rows))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.null_count(), 0);
        out.as_primitive::<UInt64Type>().values().to_vec()
    }

    #[test]
    fn equal_rows_share_a_key_and_order_matters() {
        let k = keys(
            vec![Some("S1"), Some("S1"), Some("A"), None, None],
            vec![Some("A"), Some("A"), Some("S1"), Some("A"), Some("A")],
        );
        assert_eq!(k[0], k[1]);
        assert_ne!(k[0], k[2], "(S1, A) and (A, S1) differ");
        assert_eq!(k[3], k[4], "NULLs hash alike");
        assert_ne!(k[3], k[0]);
    }
}
