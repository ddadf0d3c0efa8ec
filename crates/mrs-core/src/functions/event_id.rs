//! `mrs_event_id(founding_report_id)`: a Minority Event id derived from the report that
//! founded the event (its earliest report), so it stays stable as later reports join.
//!
//! NULL gives NULL. O(row).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::common::utils::take_function_args;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::as_utf8;
use crate::identity::event_id;

#[user_doc(
    doc_section(label = "MRS Identity Functions"),
    description = "Deterministic Minority Event id (`ME-` and 32 hex chars of BLAKE3) derived from the id of the report that founded the event.",
    syntax_example = "mrs_event_id(founding_report_id)",
    sql_example = r#"```sql
> SELECT mrs_event_id(report_id) FROM minority_reports LIMIT 1;
```"#,
    argument(
        name = "founding_report_id",
        description = "Report id of the event's earliest report."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct EventIdFunc {
    signature: Signature,
}

impl Default for EventIdFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl EventIdFunc {
    pub fn new() -> Self {
        Self {
            signature: Signature::string(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for EventIdFunc {
    fn name(&self) -> &str {
        "mrs_event_id"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [report] = take_function_args(self.name(), args.args)?;
        let report = as_utf8(&report.to_array(rows)?)?;
        let mut out = StringBuilder::with_capacity(rows, rows * 35);
        for i in 0..rows {
            if report.is_null(i) {
                out.append_null();
            } else {
                out.append_value(event_id(report.value(i)));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
