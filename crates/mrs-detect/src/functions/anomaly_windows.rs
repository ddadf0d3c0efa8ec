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
//! | state | per group, its `(ts micros, score)` points (a `GroupsAccumulator`, for `GROUP BY` over many series); partial state is two lists (ts, score) |
//! | complexity | `O(n log n)` per group (sort), `O(n)` memory |

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err, internal_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature,
};
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
        let (threshold, end_after) = self.params(&args)?;
        Ok(Box::new(WindowsAccumulator {
            threshold,
            end_after,
            points: Vec::new(),
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs<'_>) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs<'_>,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let (threshold, end_after) = self.params(&args)?;
        Ok(Box::new(WindowsGroups {
            threshold,
            end_after,
            groups: Vec::new(),
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

impl AnomalyWindows {
    /// The `threshold` and `end_after` literals (or their defaults).
    fn params(&self, args: &AccumulatorArgs<'_>) -> Result<(f64, usize)> {
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
        Ok((threshold, end_after))
    }
}

/// The usable `(ts micros, score)` points of an argument batch, with their row.
fn batch_points(values: &[ArrayRef]) -> Result<Vec<Option<(i64, f64)>>> {
    let (Some(ts), Some(score)) = (values.first(), values.get(1)) else {
        return internal_err!("anomaly_windows: missing arguments");
    };
    let ts = micros(ts)?;
    let score = finite_values(score)?;
    Ok(ts.iter().zip(score).map(|(t, s)| Some((t?, s?))).collect())
}

/// The windows of each group's points (sorted here), as one list per group.
fn windows_array(
    groups: &mut [Vec<(i64, f64)>],
    threshold: f64,
    end_after: usize,
) -> Result<ArrayRef> {
    let (mut start, mut end, mut peak_score, mut peak_ts, mut buckets) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut offsets = vec![0i32];
    for points in groups.iter_mut() {
        points.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let windows = build_windows(
            points.iter().map(|&(_, s)| {
                if s >= threshold {
                    Point::Anomalous {
                        direction: 1,
                        score: s,
                    }
                } else {
                    Point::Normal
                }
            }),
            end_after,
        );
        let ts = |i: usize| points[i].0;
        for w in &windows {
            start.push(Some(ts(w.start)));
            end.push(w.end.map(ts));
            peak_score.push(w.peak_score);
            peak_ts.push(Some(ts(w.peak)));
            buckets.push(w.anomalous as i64);
        }
        let Ok(n) = i32::try_from(start.len()) else {
            return exec_err!("anomaly_windows: too many windows for one batch");
        };
        offsets.push(n);
    }
    let columns: Vec<ArrayRef> = vec![
        utc_ts_array(start),
        utc_ts_array(end),
        Arc::new(Float64Array::from(peak_score)),
        utc_ts_array(peak_ts),
        Arc::new(Int64Array::from(buckets)),
    ];
    struct_list(window_fields(), columns, offsets)
}

/// Appends the points of state lists `(ts, score)` to `push(row, point)`.
fn merge_points(states: &[ArrayRef], mut push: impl FnMut(usize, (i64, f64))) -> Result<()> {
    let (Some(ts), Some(sc)) = (states.first(), states.get(1)) else {
        return internal_err!("anomaly_windows: missing state");
    };
    let ts = ts.as_list::<i32>();
    let sc = sc.as_list::<i32>();
    let tv = ts.values().as_primitive::<Int64Type>();
    let sv = sc.values().as_primitive::<Float64Type>();
    if tv.len() != sv.len() || ts.value_offsets() != sc.value_offsets() {
        return internal_err!("anomaly_windows: state lists differ in length");
    }
    let offsets = ts.value_offsets();
    for i in 0..ts.len() {
        for j in offsets[i] as usize..offsets[i + 1] as usize {
            push(i, (tv.value(j), sv.value(j)));
        }
    }
    Ok(())
}

/// Two lists `(ts, score)`, one row per group.
fn state_lists(groups: &[Vec<(i64, f64)>]) -> Vec<ArrayRef> {
    let offsets = OffsetBuffer::from_lengths(groups.iter().map(Vec::len));
    let ts = Int64Array::from_iter_values(groups.iter().flatten().map(|p| p.0));
    let sc = Float64Array::from_iter_values(groups.iter().flatten().map(|p| p.1));
    let list = |values: ArrayRef| -> ArrayRef {
        let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
        Arc::new(ListArray::new(item, offsets.clone(), values, None))
    };
    vec![list(Arc::new(ts)), list(Arc::new(sc))]
}

/// The groups accumulator: each group's points.
#[derive(Debug)]
struct WindowsGroups {
    threshold: f64,
    end_after: usize,
    groups: Vec<Vec<(i64, f64)>>,
}

impl GroupsAccumulator for WindowsGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        let points = batch_points(values)?;
        for (i, (&g, p)) in group_indices.iter().zip(points).enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(i) || !f.value(i)) {
                continue;
            }
            if let Some(p) = p {
                self.groups[g].push(p);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut groups = emit_to.take_needed(&mut self.groups);
        windows_array(&mut groups, self.threshold, self.end_after)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = emit_to.take_needed(&mut self.groups);
        Ok(state_lists(&groups))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        let groups = &mut self.groups;
        let mut bad = false;
        merge_points(values, |row, p| match group_indices.get(row) {
            Some(&g) => groups[g].push(p),
            None => bad = true,
        })?;
        if bad {
            return internal_err!("anomaly_windows: more state rows than group indices");
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // One state row per input row: its point, or none.
        let rows: Vec<Vec<(i64, f64)>> = batch_points(values)?
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let kept = opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i));
                p.filter(|_| kept).into_iter().collect()
            })
            .collect();
        Ok(state_lists(&rows))
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self.groups.capacity() * size_of::<Vec<(i64, f64)>>()
            + self
                .groups
                .iter()
                .map(|g| g.capacity() * size_of::<(i64, f64)>())
                .sum::<usize>()
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
        self.points
            .extend(batch_points(values)?.into_iter().flatten());
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut groups = [std::mem::take(&mut self.points)];
        let list = windows_array(&mut groups, self.threshold, self.end_after);
        // kept (sorted) for a later call
        let [points] = groups;
        self.points = points;
        ScalarValue::try_from_array(&list?, 0)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.points.capacity() * size_of::<(i64, f64)>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        state_lists(std::slice::from_ref(&self.points))
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let points = &mut self.points;
        merge_points(states, |_, p| points.push(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::TimestampSecondArray;

    fn batch(points: &[(i64, Option<f64>)]) -> Vec<ArrayRef> {
        vec![
            Arc::new(TimestampSecondArray::from(
                points.iter().map(|p| Some(p.0)).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                points.iter().map(|p| p.1).collect::<Vec<_>>(),
            )),
        ]
    }

    /// The groups accumulator, directly and through a partial state, gives each group what
    /// the one-group accumulator gives it alone.
    #[test]
    fn groups_equal_single_group_accumulators() {
        // group 0: a window at 2-3 closed after three normal points; group 1: an open one,
        // with a NULL and a NaN score ignored; group 2: no point.
        let g0: Vec<(i64, Option<f64>)> = (0..8)
            .map(|t| (t * 3600, Some(if (2..4).contains(&t) { 0.9 } else { 0.1 })))
            .collect();
        let mut g1: Vec<(i64, Option<f64>)> = vec![(0, Some(0.2)), (3600, Some(0.7))];
        g1.extend([(7200, None), (10800, Some(f64::NAN)), (14400, Some(0.6))]);
        // rows of both groups interleaved, out of time order
        let mut rows = Vec::new();
        for (i, p) in g0.iter().enumerate().rev() {
            rows.push((0usize, *p));
            if let Some(q) = g1.get(i) {
                rows.push((1usize, *q));
            }
        }
        let values = batch(&rows.iter().map(|r| r.1).collect::<Vec<_>>());
        let groups: Vec<usize> = rows.iter().map(|r| r.0).collect();
        let new = || WindowsGroups {
            threshold: DEFAULT_THRESHOLD,
            end_after: DEFAULT_END_AFTER,
            groups: Vec::new(),
        };
        let mut direct = new();
        direct
            .update_batch(&values, &groups, None, 3)
            .expect("update");
        let mut partial = new();
        partial
            .update_batch(&values, &groups, None, 3)
            .expect("update");
        let state = partial.state(EmitTo::All).expect("state");
        let mut merged = new();
        merged.merge_batch(&state, &[0, 1, 2], 3).expect("merge");
        let first = direct.evaluate(EmitTo::First(1)).expect("eval");
        let rest = direct.evaluate(EmitTo::All).expect("eval");
        let all = merged.evaluate(EmitTo::All).expect("eval");
        assert_eq!((first.len(), rest.len(), all.len()), (1, 2, 3));

        let single = |points: &[(i64, Option<f64>)]| -> ScalarValue {
            let mut acc = WindowsAccumulator {
                threshold: DEFAULT_THRESHOLD,
                end_after: DEFAULT_END_AFTER,
                points: Vec::new(),
            };
            acc.update_batch(&batch(points)).expect("update");
            acc.evaluate().expect("eval")
        };
        let at = |a: &ArrayRef, i: usize| ScalarValue::try_from_array(a, i).expect("scalar");
        assert_eq!(at(&first, 0), single(&g0));
        assert_eq!(at(&rest, 0), single(&g1));
        assert_eq!(at(&rest, 1), single(&[]));
        for (i, g) in [&g0[..], &g1[..], &[]].into_iter().enumerate() {
            assert_eq!(at(&all, i), single(g), "group {i}");
        }
        let w0 = first.as_list::<i32>().value(0);
        assert_eq!(w0.len(), 1, "one window in group 0");
        let w1 = rest.as_list::<i32>().value(0);
        assert_eq!(w1.len(), 1, "one open window in group 1");
        assert!(w1.as_struct().column(1).is_null(0));

        // a filtered-out row is not used
        let mut filtered = new();
        let keep = BooleanArray::from(vec![false; rows.len()]);
        filtered
            .update_batch(&values, &groups, Some(&keep), 2)
            .expect("update");
        let none = filtered.evaluate(EmitTo::All).expect("eval");
        assert!((0..2).all(|i| none.as_list::<i32>().value(i).is_empty()));
    }
}
