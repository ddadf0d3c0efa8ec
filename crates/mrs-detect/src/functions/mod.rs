//! Detection functions: the SQL face of [`crate::model`].
//!
//! | function | kind | inputs | returns |
//! |---|---|---|---|
//! | `mrs_detect(sku, ts, units)` | UDAF (GroupsAccumulator), `GROUP BY store_id` | sku Utf8/LargeUtf8/Utf8View, ts any Timestamp (naive = UTC), units numeric (as Float64) | `List<Struct>` of reports, fields as in docs/ARCHITECTURE.md |
//! | `mrs_detect_resume(sku, ts, units, checkpoint)` | UDAF (GroupsAccumulator), `GROUP BY store_id` | as `mrs_detect`, plus one row per store carrying its checkpoint (Binary) | `Struct{reports, checkpoint, read_from, resume_from, covered_to, recomputed_from}`: incremental detection, see [`crate::model::checkpoint`] |
//! | `anomaly_baseline(ts, value [, season_buckets])` | UDWF, `OVER (PARTITION BY .. ORDER BY ts)` | ts any Timestamp, value numeric, season a positive integer literal | Float64 expected value |
//! | `anomaly_score(ts, value [, season_buckets])` | UDWF, same | same | Float64 score in [0, 1], 0.5 = alert |
//! | `anomaly_windows(ts, score [, threshold [, end_after]])` | UDAF | ts any Timestamp, score numeric, threshold Float64 literal (0.5), end_after integer literal (3) | `List<Struct{start, end, peak_score, peak_ts, buckets}>` |
//! | `detect_anomalies('table' [, 'store_col', 'sku_col', 'ts_col', 'units_col'])` | UDTF expanding to a view | names of a registered table and its columns | one row per report: `store_id` then the report fields |
//!
//! Edge cases (the model is in [`crate::model::scorer`]):
//!
//! | case | `mrs_detect` | `anomaly_baseline` / `anomaly_score` | `anomaly_windows` |
//! |---|---|---|---|
//! | minimum samples | 2 full seasons of a series before it is scored (weekly season: 2 weeks; daily: 2 days; weekly data: 2 buckets) | same, per row | none: one anomalous point makes a window |
//! | NULL sku / ts / value | row ignored | NULL output for that row, ignored as history | row ignored |
//! | NaN / ±inf value | row ignored | NULL output, ignored as history | row ignored |
//! | negative value | kept (reflected Anscombe scale), counted in `dq_negative_count` | kept | compared to the threshold as is |
//! | empty group / partition | empty list | no rows | empty list |
//! | constant series | z = 0, no report | baseline = the constant, score 0 | no window unless the score is above the threshold |
//! | very short (< 2 seasons, or one distinct ts) | empty list | NULL | as usual |
//! | duplicate ts | units summed (a duplicated feed shows as ×2) | values averaged | each point used |
//!
//! Frame semantics: the window functions ignore the frame and evaluate the whole partition at
//! once (row order comes from the data's timestamps, not the `ORDER BY`); each row still only
//! depends on buckets before it, so the result equals a running evaluation.
//!
//! Complexity: `mrs_detect` is `O(n)` per store to order its rows (SKUs are interned per store
//! as rows arrive) plus `O(skus * buckets * c)` for scoring (`c` about 7 to 50, see the scorer),
//! run twice for stores with reports only by `mrs_detect_resume`, which takes a checkpoint; the
//! window functions `O(n log n + buckets * c)` per partition; `anomaly_windows` `O(n log n)`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, ListArray, StructArray, TimestampMicrosecondArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{Signature, TypeSignature, Volatility};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;

pub mod anomaly_baseline;
pub mod anomaly_score;
pub mod anomaly_windows;
pub mod detect_anomalies;
pub mod mrs_detect;
pub mod mrs_detect_resume;

/// `Timestamp(Microsecond, "UTC")`, the type of every timestamp MRS writes.
pub fn utc_ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A `Timestamp(us, "UTC")` array from values.
pub(crate) fn utc_ts_array(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

/// A signature that `SHOW FUNCTIONS` can describe: the user-defined coercion comes first (so
/// `coerce_types` still decides, with its own error messages), followed by the canonical
/// argument lists as `Exact` signatures (DataFusion 55 lists a function's parameters and return
/// type only from signatures that yield example types; a pure `user_defined` one yields none).
pub(crate) fn documented_signature(canonical: Vec<Vec<DataType>>) -> Signature {
    let mut sigs = vec![TypeSignature::UserDefined];
    sigs.extend(canonical.into_iter().map(TypeSignature::Exact));
    Signature::one_of(sigs, Volatility::Immutable)
}

/// Checks a timestamp argument type (NULL is accepted and read as `Timestamp(us, UTC)`).
pub(crate) fn coerce_ts(name: &str, arg: &str, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Timestamp(_, _) => Ok(t.clone()),
        DataType::Null => Ok(utc_ts()),
        _ => plan_err!("{name}: {arg} must be a timestamp, got {t}"),
    }
}

/// Checks a numeric argument type and coerces it to `target`.
pub(crate) fn coerce_numeric(
    name: &str,
    arg: &str,
    t: &DataType,
    target: DataType,
) -> Result<DataType> {
    if t.is_numeric() || t.is_null() {
        Ok(target)
    } else {
        plan_err!("{name}: {arg} must be numeric, got {t}")
    }
}

/// Timestamps of any unit as UTC microseconds (naive timestamps are read as UTC).
pub(crate) fn micros(array: &ArrayRef) -> Result<TimestampMicrosecondArray> {
    let tz = match array.data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        DataType::Null => None,
        other => return exec_err!("expected a timestamp array, got {other}"),
    };
    let casted = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, tz))?;
    Ok(casted.as_primitive::<TimestampMicrosecondType>().clone())
}

/// A list array with one list per entry of `offsets` (which starts at 0) over a struct of
/// `fields` / `columns`.
pub(crate) fn struct_list(
    fields: Fields,
    columns: Vec<ArrayRef>,
    offsets: Vec<i32>,
) -> Result<ArrayRef> {
    let values = StructArray::try_new(fields.clone(), columns, None)?;
    let item = Arc::new(Field::new_list_field(DataType::Struct(fields), true));
    let list = ListArray::try_new(
        item,
        OffsetBuffer::new(offsets.into()),
        Arc::new(values),
        None,
    )?;
    Ok(Arc::new(list))
}

/// `List<Struct{fields}>` with the standard `item` field.
pub(crate) fn struct_list_type(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(fields),
        true,
    )))
}

/// The value of an optional literal argument at `index`; `plan_err!` when it is not a literal.
pub(crate) fn literal_arg(
    name: &str,
    exprs: &[Arc<dyn PhysicalExpr>],
    index: usize,
) -> Result<Option<ScalarValue>> {
    let Some(expr) = exprs.get(index) else {
        return Ok(None);
    };
    match expr.downcast_ref::<Literal>() {
        Some(lit) if lit.value().is_null() => Ok(None),
        Some(lit) => Ok(Some(lit.value().clone())),
        None => plan_err!("{name}: argument {} must be a literal", index + 1),
    }
}

/// A positive integer literal argument (`season_buckets`, `end_after`).
pub(crate) fn positive_int_arg(
    name: &str,
    exprs: &[Arc<dyn PhysicalExpr>],
    index: usize,
) -> Result<Option<usize>> {
    let Some(v) = literal_arg(name, exprs, index)? else {
        return Ok(None);
    };
    match v.cast_to(&DataType::Int64)? {
        ScalarValue::Int64(Some(n)) if n > 0 => Ok(usize::try_from(n).ok()),
        _ => plan_err!(
            "{name}: argument {} must be a positive integer, got {v}",
            index + 1
        ),
    }
}

/// The rows of a Float64 array as options (NULL, NaN, ±inf and values beyond
/// [`crate::model::MAX_ABS_VALUE`] become `None`).
pub(crate) fn finite_values(array: &ArrayRef) -> Result<Vec<Option<f64>>> {
    let casted = cast(array, &DataType::Float64)?;
    let v = casted.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    Ok(v.iter()
        .map(|x| x.filter(|f| crate::model::usable(*f)))
        .collect())
}

/// Shared evaluator of `anomaly_baseline` and `anomaly_score`.
#[derive(Debug)]
pub(crate) struct SeriesEvaluator {
    pub(crate) name: &'static str,
    pub(crate) season: Option<usize>,
    pub(crate) want_score: bool,
}

impl datafusion::logical_expr::PartitionEvaluator for SeriesEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let (Some(ts), Some(value)) = (values.first(), values.get(1)) else {
            return datafusion::common::internal_err!("{}: missing arguments", self.name);
        };
        let ts = micros(ts)?;
        let ts: Vec<Option<i64>> = ts.iter().collect();
        let value = finite_values(value)?;
        if ts.len() != num_rows || value.len() != num_rows {
            return datafusion::common::internal_err!("{}: argument lengths differ", self.name);
        }
        let scored = match crate::model::score_rows(
            &ts,
            &value,
            self.season,
            crate::model::scorer::DEFAULT_Z_ALERT,
        ) {
            Ok(s) => s,
            Err(crate::model::GridError::TooManyBuckets(n)) => {
                return exec_err!(
                    "{}: the partition spans {n} buckets (more than {}); check its timestamps",
                    self.name,
                    crate::model::grid::MAX_BUCKETS
                );
            }
            Err(crate::model::GridError::BadCheckpoint(m)) => {
                return datafusion::common::internal_err!(
                    "{}: unexpected checkpoint: {m}",
                    self.name
                );
            }
        };
        let out = if self.want_score {
            scored.score
        } else {
            scored.baseline
        };
        Ok(Arc::new(datafusion::arrow::array::Float64Array::from(out)))
    }
}
