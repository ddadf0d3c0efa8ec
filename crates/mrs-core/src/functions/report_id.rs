//! `mrs_report_id(store_id, first_detected_from)`: the report identity of DESIGN §3.
//!
//! Inputs: a string store id and a timestamp of any unit, naive (read as UTC) or zoned.
//! NULL in either argument gives NULL. O(row).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimestampMicrosecondType};
use datafusion::common::utils::take_function_args;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion_macros::user_doc;

use super::as_utf8;
use crate::identity::report_id;
use crate::schema::ts_type;

#[user_doc(
    doc_section(label = "MRS Identity Functions"),
    description = "Deterministic Minority Report id: `MR-` followed by the hex BLAKE3 hash of `store_id || '|' || first_detected_from` in RFC 3339 UTC form (`2025-08-07T09:00:00Z`).",
    syntax_example = "mrs_report_id(store_id, first_detected_from)",
    sql_example = r#"```sql
> SELECT mrs_report_id('STORE_BIR_001', TIMESTAMP '2025-08-07T09:00:00Z');
```"#,
    argument(name = "store_id", description = "Store identifier (string)."),
    argument(
        name = "first_detected_from",
        description = "First bucket of the anomaly (timestamp of any unit; naive means UTC)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ReportIdFunc {
    signature: Signature,
}

impl Default for ReportIdFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ReportIdFunc {
    pub fn new() -> Self {
        Self {
            // The Exact variant gives SHOW FUNCTIONS an example; UserDefined coerces the rest.
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8, ts_type()]),
                    TypeSignature::UserDefined,
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for ReportIdFunc {
    fn name(&self) -> &str {
        "mrs_report_id"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [store, ts] = take_function_args(self.name(), arg_types)?;
        if !matches!(
            store,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
        ) {
            return plan_err!("mrs_report_id: store_id must be a string, got {store}");
        }
        if !matches!(ts, DataType::Timestamp(_, _) | DataType::Null) {
            return plan_err!("mrs_report_id: first_detected_from must be a timestamp, got {ts}");
        }
        Ok(vec![DataType::Utf8, ts_type()])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [store, ts] = take_function_args(self.name(), args.args)?;
        let store = as_utf8(&store.to_array(rows)?)?;
        let ts = cast(&ts.to_array(rows)?, &ts_type())?;
        let ts = ts.as_primitive::<TimestampMicrosecondType>();
        let mut out = StringBuilder::with_capacity(rows, rows * 67);
        for i in 0..rows {
            if store.is_null(i) || ts.is_null(i) {
                out.append_null();
            } else {
                out.append_value(report_id(store.value(i), ts.value(i)));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
