//! `anomaly_baseline(ts, value [, season_buckets])`: the causal expected value of each row.
//!
//! | item | contract |
//! |---|---|
//! | inputs | `ts` any Timestamp (naive = UTC); `value` numeric (as Float64); optional `season_buckets` positive integer literal (default: weekly, then daily, then trailing level, from the inferred step) |
//! | minimum samples | two full seasons before the row's bucket |
//! | NULL / NaN / ±inf value, or beyond ±1e15 | NULL output, ignored as history |
//! | empty / too short | no rows / NULL |
//! | constant series | the constant |
//! | frame | ignored: the whole partition is evaluated at once; each row uses only earlier buckets |
//! | complexity | `O(n log n + buckets * c)` per partition (see [`crate::model::scorer`]) |

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{Documentation, PartitionEvaluator, Signature, WindowUDFImpl};
use datafusion_macros::user_doc;

use super::{SeriesEvaluator, coerce_numeric, coerce_ts, positive_int_arg};

#[user_doc(
    doc_section(label = "MRS Detection Functions"),
    description = "Causal robust seasonal baseline of a regularly sampled series: the mean, winsorised at 2 sd around their median, of the same seasonal slot over the last 4 seasons (weekly, else daily, else a trailing level; at least 2), times a robust level correction from the recent past. Anomalous buckets enter the history clipped to the alert band. NULL for NULL/NaN values and during the 2-season warm-up.",
    syntax_example = "anomaly_baseline(ts, value [, season_buckets]) OVER (PARTITION BY series ORDER BY ts)",
    sql_example = r#"```sql
> SELECT ts, units, anomaly_baseline(ts, units) OVER (PARTITION BY store_id, sku ORDER BY ts) FROM sales;
```"#,
    argument(
        name = "ts",
        description = "Bucket start (timestamp of any unit; naive means UTC)."
    ),
    argument(
        name = "value",
        description = "Observed value (numeric; counts are expected)."
    ),
    argument(
        name = "season_buckets",
        description = "Optional positive integer literal: season length in buckets (1 = no seasonality)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AnomalyBaseline {
    signature: Signature,
}

impl Default for AnomalyBaseline {
    fn default() -> Self {
        Self::new()
    }
}

impl AnomalyBaseline {
    pub fn new() -> Self {
        Self {
            signature: super::documented_signature(vec![
                vec![super::utc_ts(), DataType::Float64],
                vec![super::utc_ts(), DataType::Float64, DataType::Int64],
            ]),
        }
    }
}

/// Argument coercion shared with `anomaly_score`.
pub(crate) fn coerce_series_args(name: &str, arg_types: &[DataType]) -> Result<Vec<DataType>> {
    if !(2..=3).contains(&arg_types.len()) {
        return datafusion::common::plan_err!(
            "{name} expects (ts, value [, season_buckets]), got {} arguments",
            arg_types.len()
        );
    }
    let mut out = vec![
        coerce_ts(name, "ts", &arg_types[0])?,
        coerce_numeric(name, "value", &arg_types[1], DataType::Float64)?,
    ];
    if let Some(t) = arg_types.get(2) {
        out.push(coerce_numeric(name, "season_buckets", t, DataType::Int64)?);
    }
    Ok(out)
}

impl WindowUDFImpl for AnomalyBaseline {
    fn name(&self) -> &str {
        "anomaly_baseline"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_series_args(self.name(), arg_types)
    }

    fn partition_evaluator(
        &self,
        args: PartitionEvaluatorArgs<'_>,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(SeriesEvaluator {
            name: "anomaly_baseline",
            season: positive_int_arg(self.name(), args.input_exprs(), 2)?,
            want_score: false,
        }))
    }

    fn field(&self, field_args: WindowUDFFieldArgs<'_>) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Float64,
            true,
        )))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
