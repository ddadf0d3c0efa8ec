//! `anomaly_windows(ts, score [, threshold [, end_after]])`: scored points to anomaly windows.
//!
//! | item | contract |
//! |---|---|
//! | inputs | `ts` any Timestamp (naive = UTC); `score` numeric; `threshold` Float64 literal (default 0.5, a point is anomalous when `score >= threshold`); `end_after` positive integer literal (default 3) |
//! | output | `List<Struct{start, end, peak_score, peak_ts, buckets}>`, timestamps `Timestamp(us, UTC)`, ordered by `start` |
//! | rule | [`crate::model::windows`]: runs of anomalous points bridging fewer than `end_after` normal points; `end` = first point after the last anomalous one once `end_after` normal points followed it, else NULL (open) |
//! | minimum samples | none |
//! | NULL ts / NULL or NaN score | row ignored |
//! | empty group | empty list |
//! | constant score | one open window from the first point if `>= threshold`, else none |
//! | duplicate ts | each point used, in score order within the timestamp |
//! | complexity | `O(n log n)` per group (sort), `O(n)` memory |

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array, Int64Array, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, internal_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature};
use datafusion_macros::user_doc;

use super::{
    coerce_numeric, coerce_ts, finite_values, literal_arg, micros, positive_int_arg, struct_list,
    struct_list_type, utc_ts, utc_ts_array,
};
use crate::model::store::DEFAULT_END_AFTER;
use crate::model::windows::{Point, build_windows};

/// Default score threshold (the detectors' alert level).
pub const DEFAULT_THRESHOLD: f64 = 0.5;

#[user_doc(
    doc_section(label = "MRS Detection Functions"),
    description = "Turns scored points into anomaly windows: consecutive points with score >= threshold (default 0.5), bridging runs of fewer than end_after (default 3) normal points. `end` is the first point after the last anomalous one once end_after normal points followed it, NULL while the window is open. Returns List<Struct{start, end, peak_score, peak_ts, buckets}>.",
    syntax_example = "anomaly_windows(ts, score [, threshold [, end_after]])",
    sql_example = r#"```sql
> SELECT sku, anomaly_windows(ts, score, 0.5, 3) FROM scored GROUP BY sku;
```"#,
    argument(
        name = "ts",
        description = "Point time (timestamp of any unit; naive means UTC)."
    ),
    argument(
        name = "score",
        description = "Score of the point (numeric, e.g. from `anomaly_score`)."
    ),
    argument(
        name = "threshold",
        description = "Optional literal: anomalous when score >= threshold (0.5)."
    ),
    argument(
        name = "end_after",
        description = "Optional positive integer literal: normal points that close a window (3)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AnomalyWindows {
    signature: Signature,
}

impl Default for AnomalyWindows {
    fn default() -> Self {
        Self::new()
    }
}

impl AnomalyWindows {
    pub fn new() -> Self {
        Self {
            signature: super::documented_signature(vec![
                vec![utc_ts(), DataType::Float64],
                vec![utc_ts(), DataType::Float64, DataType::Float64],
                vec![
                    utc_ts(),
                    DataType::Float64,
                    DataType::Float64,
                    DataType::Int64,
                ],
            ]),
        }
    }
}

/// Fields of one window.
pub fn window_fields() -> Fields {
    Fields::from(vec![
        Field::new("start", utc_ts(), false),
        Field::new("end", utc_ts(), true),
        Field::new("peak_score", DataType::Float64, false),
        Field::new("peak_ts", utc_ts(), false),
        Field::new("buckets", DataType::Int64, false),
    ])
}

impl AggregateUDFImpl for AnomalyWindows {
    fn name(&self) -> &str {
        "anomaly_windows"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        if !(2..=4).contains(&arg_types.len()) {
            return plan_err!(
                "{name} expects (ts, score [, threshold [, end_after]]), got {} arguments",
                arg_types.len()
            );
        }
        let mut out = vec![
            coerce_ts(name, "ts", &arg_types[0])?,
            coerce_numeric(name, "score", &arg_types[1], DataType::Float64)?,
        ];
        if let Some(t) = arg_types.get(2) {
            out.push(coerce_numeric(name, "threshold", t, DataType::Float64)?);
        }
        if let Some(t) = arg_types.get(3) {
            out.push(coerce_numeric(name, "end_after", t, DataType::Int64)?);
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(struct_list_type(window_fields()))
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn accumulator(&self, args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        let threshold = match literal_arg(self.name(), args.exprs, 2)? {
            None => DEFAULT_THRESHOLD,
            Some(v) => match v.cast_to(&DataType::Float64)? {
                ScalarValue::Float64(Some(t)) if t.is_finite() => t,
                _ => {
                    return plan_err!(
                        "anomaly_windows: threshold must be a finite number, got {v}"
                    );
                }
            },
        };
        let end_after = positive_int_arg(self.name(), args.exprs, 3)?.unwrap_or(DEFAULT_END_AFTER);
        Ok(Box::new(WindowsAccumulator {
            threshold,
            end_after,
            points: Vec::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[ts]", args.name),
                DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
                true,
            )),
            Arc::new(Field::new(
                format!("{}[score]", args.name),
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
                true,
            )),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[derive(Debug)]
struct WindowsAccumulator {
    threshold: f64,
    end_after: usize,
    points: Vec<(i64, f64)>,
}

impl Accumulator for WindowsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (Some(ts), Some(score)) = (values.first(), values.get(1)) else {
            return internal_err!("anomaly_windows: missing arguments");
        };
        let ts = micros(ts)?;
        let score = finite_values(score)?;
        self.points
            .extend(ts.iter().zip(score).filter_map(|(t, s)| Some((t?, s?))));
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.points
            .sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let threshold = self.threshold;
        let windows = build_windows(
            self.points.iter().map(|&(_, s)| {
                if s >= threshold {
                    Point::Anomalous {
                        direction: 1,
                        score: s,
                    }
                } else {
                    Point::Normal
                }
            }),
            self.end_after,
        );
        let ts = |i: usize| self.points[i].0;
        let columns: Vec<ArrayRef> = vec![
            utc_ts_array(windows.iter().map(|w| Some(ts(w.start))).collect()),
            utc_ts_array(windows.iter().map(|w| w.end.map(ts)).collect()),
            Arc::new(Float64Array::from_iter_values(
                windows.iter().map(|w| w.peak_score),
            )),
            utc_ts_array(windows.iter().map(|w| Some(ts(w.peak))).collect()),
            Arc::new(Int64Array::from_iter_values(
                windows.iter().map(|w| w.anomalous as i64),
            )),
        ];
        let list = struct_list(window_fields(), columns, vec![0, windows.len() as i32])?;
        ScalarValue::try_from_array(&list, 0)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.points.capacity() * size_of::<(i64, f64)>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let ts = Int64Array::from_iter_values(self.points.iter().map(|p| p.0));
        let sc = Float64Array::from_iter_values(self.points.iter().map(|p| p.1));
        Ok(vec![
            ScalarValue::List(Arc::new(single_list(Arc::new(ts)))),
            ScalarValue::List(Arc::new(single_list(Arc::new(sc)))),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (Some(ts), Some(sc)) = (states.first(), states.get(1)) else {
            return internal_err!("anomaly_windows: missing state");
        };
        let ts = ts.as_list::<i32>();
        let sc = sc.as_list::<i32>();
        let tv = ts.values().as_primitive::<Int64Type>();
        let sv = sc.values().as_primitive::<Float64Type>();
        if tv.len() != sv.len() {
            return internal_err!("anomaly_windows: state lists differ in length");
        }
        for i in 0..datafusion::arrow::array::Array::len(ts) {
            let r = ts.value_offsets()[i] as usize..ts.value_offsets()[i + 1] as usize;
            self.points.extend(r.map(|j| (tv.value(j), sv.value(j))));
        }
        Ok(())
    }
}

/// A one-row list array holding `values`.
fn single_list(values: ArrayRef) -> ListArray {
    let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    ListArray::new(
        item,
        datafusion::arrow::buffer::OffsetBuffer::from_lengths([values.len()]),
        values,
        None,
    )
}
