//! `mrs_detect_resume(sku, ts, units, checkpoint)`: `mrs_detect` for incremental runs, used
//! with `GROUP BY store_id`. It resumes each store from the detector checkpoint of an earlier
//! run and returns, beside the reports, the store's new checkpoint.
//!
//! | item | contract |
//! |---|---|
//! | inputs | `sku`, `ts`, `units` as for `mrs_detect`; `checkpoint` Binary / LargeBinary: one row per store carries the store's checkpoint (its other arguments may be NULL), every other row NULL |
//! | rows needed | with a checkpoint, the store's rows from its `read_from` on (older rows are ignored); without one, all rows (a full detection) |
//! | output | `Struct{reports, checkpoint, read_from, resume_from, covered_to, recomputed_from, rows_read}`: `reports` as `mrs_detect` returns them but, when resumed, only those starting at or after the old checkpoint's `resume_from` (= `recomputed_from`; NULL for a full detection): those are exactly what a full detection returns there; `checkpoint` the state at the new `resume_from` (NULL when the store has fewer than two timestamps), to be read again from `read_from`; `covered_to` the first bucket it has not seen; `rows_read` the rows this call used |
//! | model | [`crate::model::store`] resumed through [`crate::model::checkpoint`] |
//! | NULL / NaN / bad rows | as `mrs_detect` |
//! | two checkpoints for one store, an unreadable one, or one of other settings | `exec_err!` naming the cure: run without checkpoints (`mrs run --full`) |
//! | state | `mrs_detect`'s four lists plus the group's checkpoint bytes |
//! | complexity | `mrs_detect`'s over the rows read, plus `O(skus * horizon)` to restore and write the checkpoint (about 43 KB per SKU for hourly data) |

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, LargeBinaryArray, StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{Result, ScalarValue, exec_err, internal_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature,
};
use datafusion_macros::user_doc;

use super::mrs_detect::{
    DetectGroups, GroupRows, MrsDetect, STATE_COLUMNS, report_list_type, reports_to_array,
};
use super::{utc_ts, utc_ts_array};

#[user_doc(
    doc_section(label = "MRS Detection Functions"),
    description = "Incremental form of mrs_detect: resumes each store from a detector checkpoint taken by an earlier run (one row per store carries it in the checkpoint argument) and needs only the store's rows from the checkpoint's read_from on. Returns a struct: reports (as mrs_detect, from the old checkpoint's resume point on, identical to a full detection there), checkpoint (the new state), read_from, resume_from, covered_to and recomputed_from (NULL for a full detection).",
    syntax_example = "mrs_detect_resume(sku, ts, units, checkpoint)",
    sql_example = r#"```sql
> SELECT store_id, mrs_detect_resume(sku, ts, units, checkpoint) AS out
  FROM (SELECT store_id, sku, ts, units, CAST(NULL AS BYTEA) AS checkpoint FROM sales
        UNION ALL SELECT store_id, NULL, NULL, NULL, checkpoint FROM detector_checkpoint)
  GROUP BY store_id;
```"#,
    argument(
        name = "sku",
        description = "SKU identifier (NULL on the checkpoint row)."
    ),
    argument(
        name = "ts",
        description = "Bucket start (NULL on the checkpoint row)."
    ),
    argument(
        name = "units",
        description = "Units sold (NULL on the checkpoint row)."
    ),
    argument(
        name = "checkpoint",
        description = "The store's checkpoint bytes on one row, NULL elsewhere (Binary or LargeBinary)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MrsDetectResume {
    signature: Signature,
}

impl Default for MrsDetectResume {
    fn default() -> Self {
        Self::new()
    }
}

impl MrsDetectResume {
    pub fn new() -> Self {
        Self {
            signature: super::documented_signature(vec![vec![
                DataType::Utf8View,
                utc_ts(),
                DataType::Float64,
                DataType::LargeBinary,
            ]]),
        }
    }
}

/// Fields of the output struct.
pub fn resume_fields() -> Fields {
    Fields::from(vec![
        Field::new("reports", report_list_type(), false),
        Field::new("checkpoint", DataType::LargeBinary, true),
        Field::new("read_from", utc_ts(), true),
        Field::new("resume_from", utc_ts(), true),
        Field::new("covered_to", utc_ts(), true),
        Field::new("recomputed_from", utc_ts(), true),
        Field::new("rows_read", DataType::Int64, false),
    ])
}

impl AggregateUDFImpl for MrsDetectResume {
    fn name(&self) -> &str {
        "mrs_detect_resume"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        let [sku, ts, units, checkpoint] = arg_types else {
            return plan_err!(
                "{name} expects (sku, ts, units, checkpoint), got {} arguments",
                arg_types.len()
            );
        };
        if !matches!(
            checkpoint,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null
        ) {
            return plan_err!("{name}: checkpoint must be binary, got {checkpoint}");
        }
        let mut out = MrsDetect::new().coerce_types(&[sku.clone(), ts.clone(), units.clone()])?;
        // Any binary type is read as is (cast to LargeBinary inside).
        out.push(if checkpoint == &DataType::Null {
            DataType::LargeBinary
        } else {
            checkpoint.clone()
        });
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(resume_fields()))
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        let name = args.name.to_string();
        let mut fields = MrsDetect::new().state_fields(args)?;
        fields.push(Arc::new(Field::new(
            format!("{name}[checkpoint]"),
            DataType::LargeBinary,
            true,
        )));
        Ok(fields)
    }

    fn accumulator(&self, _args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ResumeAccumulator(ResumeGroups::default())))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs<'_>) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs<'_>,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(ResumeGroups::default()))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// `mrs_detect`'s groups plus each group's checkpoint.
#[derive(Debug, Default)]
struct ResumeGroups {
    rows: DetectGroups,
    checkpoints: Vec<Option<Vec<u8>>>,
}

impl ResumeGroups {
    /// Takes each group's checkpoint from a binary column (one non-NULL value per group).
    fn take_checkpoints(
        &mut self,
        column: &ArrayRef,
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.checkpoints.resize(total_num_groups, None);
        let column = cast(column, &DataType::LargeBinary)?;
        let column = column.as_binary::<i64>();
        for (i, &g) in group_indices.iter().enumerate() {
            if column.is_null(i) || opt_filter.is_some_and(|f| !f.is_valid(i) || !f.value(i)) {
                continue;
            }
            if self.checkpoints[g].is_some() {
                return exec_err!(
                    "mrs_detect_resume: a store has two checkpoints; run without them (mrs run --full)"
                );
            }
            self.checkpoints[g] = Some(column.value(i).to_vec());
        }
        Ok(())
    }

    fn evaluate_groups(
        &self,
        groups: Vec<GroupRows>,
        checkpoints: Vec<Option<Vec<u8>>>,
    ) -> Result<ArrayRef> {
        let detected = self.rows.detect_groups(groups, checkpoints, true)?;
        let rows_read: Vec<i64> = detected.iter().map(|d| d.rows_read as i64).collect();
        let mut reports = Vec::with_capacity(detected.len());
        let mut bytes: Vec<Option<Vec<u8>>> = Vec::with_capacity(detected.len());
        let (mut read_from, mut resume_from, mut covered_to) = (Vec::new(), Vec::new(), Vec::new());
        let mut recomputed_from = Vec::with_capacity(detected.len());
        for d in detected {
            reports.push(d.reports);
            recomputed_from.push(d.resumed_from);
            let cp = d.checkpoint;
            read_from.push(cp.as_ref().map(|c| c.ts_of(c.first_bucket)));
            resume_from.push(cp.as_ref().map(|c| c.ts_of(c.resume_bucket)));
            covered_to.push(cp.as_ref().map(|c| c.ts_of(c.covered_bucket)));
            bytes.push(cp.map(|c| c.encode()));
        }
        let columns: Vec<ArrayRef> = vec![
            reports_to_array(&reports)?,
            Arc::new(LargeBinaryArray::from_iter(bytes)),
            utc_ts_array(read_from),
            utc_ts_array(resume_from),
            utc_ts_array(covered_to),
            utc_ts_array(recomputed_from),
            Arc::new(Int64Array::from(rows_read)),
        ];
        Ok(Arc::new(StructArray::try_new(
            resume_fields(),
            columns,
            None,
        )?))
    }
}

impl GroupsAccumulator for ResumeGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let Some(checkpoint) = values.get(3) else {
            return internal_err!(
                "mrs_detect_resume: expected 4 arguments, got {}",
                values.len()
            );
        };
        self.take_checkpoints(checkpoint, group_indices, opt_filter, total_num_groups)?;
        self.rows
            .update_batch(&values[..3], group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.rows.groups);
        self.checkpoints
            .resize(groups.len().max(self.checkpoints.len()), None);
        let checkpoints = emit_to.take_needed(&mut self.checkpoints);
        self.evaluate_groups(groups, checkpoints)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = emit_to.take_needed(&mut self.rows.groups);
        self.checkpoints
            .resize(groups.len().max(self.checkpoints.len()), None);
        let checkpoints = emit_to.take_needed(&mut self.checkpoints);
        let mut out = DetectGroups::state_groups(groups)?;
        out.push(Arc::new(LargeBinaryArray::from_iter(checkpoints)));
        Ok(out)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let Some(checkpoint) = values.get(STATE_COLUMNS) else {
            return internal_err!(
                "mrs_detect_resume: expected {} state columns, got {}",
                STATE_COLUMNS + 1,
                values.len()
            );
        };
        self.take_checkpoints(checkpoint, group_indices, None, total_num_groups)?;
        self.rows
            .merge_batch(&values[..STATE_COLUMNS], group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let Some(checkpoint) = values.get(3) else {
            return internal_err!(
                "mrs_detect_resume: expected 4 arguments, got {}",
                values.len()
            );
        };
        let mut out = self.rows.convert_to_state(&values[..3], opt_filter)?;
        let mut checkpoint = cast(checkpoint, &DataType::LargeBinary)?;
        if let Some(f) = opt_filter {
            let keep: BooleanArray = (0..f.len())
                .map(|i| Some(f.is_valid(i) && f.value(i)))
                .collect();
            let nulls = LargeBinaryArray::new_null(checkpoint.len());
            checkpoint = datafusion::arrow::compute::kernels::zip::zip(&keep, &checkpoint, &nulls)?;
        }
        out.push(checkpoint);
        Ok(out)
    }

    fn size(&self) -> usize {
        self.rows.size()
            + self
                .checkpoints
                .iter()
                .map(|c| c.as_ref().map_or(0, Vec::capacity) + 24)
                .sum::<usize>()
    }
}

/// `Accumulator` face (one group).
#[derive(Debug)]
struct ResumeAccumulator(ResumeGroups);

impl Accumulator for ResumeAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values.first().map_or(0, |v| v.len());
        self.0.update_batch(values, &vec![0; n], None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let array = self.0.evaluate(EmitTo::All)?;
        if array.is_empty() {
            let empty = self
                .0
                .evaluate_groups(vec![GroupRows::default()], vec![None])?;
            return ScalarValue::try_from_array(&empty, 0);
        }
        ScalarValue::try_from_array(&array, 0)
    }

    fn size(&self) -> usize {
        self.0.size() + size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        if self.0.rows.groups.is_empty() {
            self.0.rows.groups.push(GroupRows::default());
        }
        self.0
            .state(EmitTo::All)?
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let n = states.first().map_or(0, |v| v.len());
        self.0.merge_batch(states, &vec![0; n], 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, StringArray, TimestampSecondArray};

    /// Hourly rows of two SKUs with a spike; `from` and `to` in hours.
    fn rows(from: i64, to: i64) -> Vec<ArrayRef> {
        let mut sku = Vec::new();
        let mut ts = Vec::new();
        let mut units = Vec::new();
        for h in from..to {
            for s in ["a", "b"] {
                sku.push(Some(s));
                ts.push(Some(h * 3600));
                let spike = s == "a" && h == 24 * 7 * 3 + 5;
                units.push(Some(if spike { 300.0 } else { 10.0 + (h % 24) as f64 }));
            }
        }
        let n = sku.len();
        vec![
            Arc::new(StringArray::from(sku)),
            Arc::new(TimestampSecondArray::from(ts)),
            Arc::new(Float64Array::from(units)),
            Arc::new(LargeBinaryArray::new_null(n)),
        ]
    }

    fn with_checkpoint(bytes: &[u8]) -> Vec<ArrayRef> {
        vec![
            Arc::new(StringArray::from(vec![None::<&str>])),
            Arc::new(TimestampSecondArray::from(vec![None])),
            Arc::new(Float64Array::from(vec![None])),
            Arc::new(LargeBinaryArray::from_iter(vec![Some(bytes)])),
        ]
    }

    fn run(batches: &[Vec<ArrayRef>]) -> StructArray {
        let mut g = ResumeGroups::default();
        for b in batches {
            let n = b[0].len();
            g.update_batch(b, &vec![0; n], None, 1).expect("update");
        }
        g.evaluate(EmitTo::All).expect("eval").as_struct().clone()
    }

    #[test]
    fn resumed_from_its_checkpoint_it_returns_the_full_runs_later_reports() {
        let end = 24 * 7 * 4;
        let full = run(&[rows(0, end)]);
        let first = run(&[rows(0, 24 * 7 * 3)]);
        assert_eq!(first.column(1).null_count(), 0, "a checkpoint");
        let cp = first.column(1).as_binary::<i64>().value(0).to_vec();
        let read_from = first
            .column(2)
            .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
            .value(0);
        let resumed = run(&[rows(read_from / 3_600_000_000, end), with_checkpoint(&cp)]);
        assert!(resumed.column(5).is_valid(0), "recomputed_from is set");
        let recomputed_from = resumed
            .column(5)
            .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
            .value(0);
        let full_reports = full.column(0).as_list::<i32>().value(0);
        let resumed_reports = resumed.column(0).as_list::<i32>().value(0);
        let later: Vec<usize> = (0..full_reports.len())
            .filter(|&i| {
                full_reports
                    .as_struct()
                    .column(0)
                    .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                    .value(i)
                    >= recomputed_from
            })
            .collect();
        assert_eq!(later.len(), 1, "the spike");
        assert_eq!(resumed_reports.len(), 1);
        // the same report, except as_of which describes the run
        let a = full_reports.slice(later[0], 1);
        let a = a.as_struct();
        let b = resumed_reports.as_struct();
        for (i, f) in a.fields().iter().enumerate() {
            if f.name() != "as_of" {
                assert_eq!(a.column(i), b.column(i), "field {}", f.name());
            }
        }
        assert!(full.column(5).is_null(0));
        // damaged and doubled checkpoints are errors, never a silent full run
        let mut g = ResumeGroups::default();
        let bad = with_checkpoint(&cp[..cp.len() / 2]);
        g.update_batch(&bad, &[0], None, 1).expect("update");
        let err = g.evaluate(EmitTo::All).expect_err("damaged");
        assert!(err.to_string().contains("mrs run --full"), "{err}");
        let mut g = ResumeGroups::default();
        g.update_batch(&with_checkpoint(&cp), &[0], None, 1)
            .expect("update");
        let err = g
            .update_batch(&with_checkpoint(&cp), &[0], None, 1)
            .expect_err("two");
        assert!(err.to_string().contains("two checkpoints"), "{err}");
    }

    #[test]
    fn state_and_merge_carry_the_checkpoint() {
        let first = run(&[rows(0, 24 * 7 * 3)]);
        let cp = first.column(1).as_binary::<i64>().value(0).to_vec();
        let mut partial = ResumeGroups::default();
        let b = with_checkpoint(&cp);
        partial.update_batch(&b, &[0], None, 1).expect("update");
        let state = partial.state(EmitTo::All).expect("state");
        let converted = partial.convert_to_state(&b, None).expect("convert");
        for st in [state, converted] {
            let mut merged = ResumeGroups::default();
            merged.merge_batch(&st, &[0], 1).expect("merge");
            assert_eq!(merged.checkpoints[0].as_deref(), Some(cp.as_slice()));
        }
        let mut acc = ResumeAccumulator(ResumeGroups::default());
        let v = acc.evaluate().expect("empty");
        assert!(!v.is_null());
    }
}
