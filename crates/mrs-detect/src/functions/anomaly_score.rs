//! `anomaly_score(ts, value [, season_buckets])`: the causal anomaly score of each row.
//!
//! | item | contract |
//! |---|---|
//! | inputs | as `anomaly_baseline` |
//! | output | `clamp(abs(z) / (2 * 5), 0, 1)` with `z` the robust z on the Anscombe scale (scale floored at the Poisson value 1): 0.5 is the alert threshold `abs(z) = 5`, 1 is twice it |
//! | minimum samples | two full seasons before the row's bucket |
//! | NULL / NaN / ±inf value, or beyond ±1e15 | NULL output, ignored as history |
//! | empty / too short | no rows / NULL |
//! | constant series | 0 |
//! | frame | ignored: the whole partition is evaluated at once; each row uses only earlier buckets |
//! | complexity | `O(n log n + buckets * c)` per partition (see [`crate::model::scorer`]) |

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{Documentation, PartitionEvaluator, Signature, WindowUDFImpl};
use datafusion_macros::user_doc;

use super::anomaly_baseline::coerce_series_args;
use super::{SeriesEvaluator, positive_int_arg};

#[user_doc(
    doc_section(label = "MRS Detection Functions"),
    description = "Causal anomaly score in [0, 1] of a regularly sampled series: clamp(|z| / 10, 0, 1) where z is the residual of the value against `anomaly_baseline` on a negative-binomial variance-stabilising scale (dispersion fitted on the last four weeks), over a robust scale of the trailing week's residuals floored at the Poisson value, and never further from 0 than the exact count-tail z. 0.5 is the alert threshold (|z| = 5). NULL for NULL/NaN values and during the 2-season warm-up.",
    syntax_example = "anomaly_score(ts, value [, season_buckets]) OVER (PARTITION BY series ORDER BY ts)",
    sql_example = r#"```sql
> SELECT ts, units, anomaly_score(ts, units) OVER (PARTITION BY store_id, sku ORDER BY ts) AS score FROM sales;
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
pub struct AnomalyScore {
    signature: Signature,
}

impl Default for AnomalyScore {
    fn default() -> Self {
        Self::new()
    }
}

impl AnomalyScore {
    pub fn new() -> Self {
        Self {
            signature: super::documented_signature(vec![
                vec![super::utc_ts(), DataType::Float64],
                vec![super::utc_ts(), DataType::Float64, DataType::Int64],
            ]),
        }
    }
}

impl WindowUDFImpl for AnomalyScore {
    fn name(&self) -> &str {
        "anomaly_score"
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
            name: "anomaly_score",
            season: positive_int_arg(self.name(), args.input_exprs(), 2)?,
            want_score: true,
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
