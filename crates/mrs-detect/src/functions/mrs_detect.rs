//! `mrs_detect(sku, ts, units)`: the store-level detector, used with `GROUP BY store_id`.
//!
//! | item | contract |
//! |---|---|
//! | inputs | `sku` Utf8 / LargeUtf8 / Utf8View (read as Utf8View); `ts` any Timestamp unit, with or without time zone (naive = UTC); `units` numeric (as Float64) |
//! | output | `List<Struct>` with one element per store-level anomaly window (a report), fields and order as in docs/ARCHITECTURE.md, ordered by `first_detected_from`; never NULL |
//! | model | [`crate::model::store`] over [`crate::model::scorer`]: alert at `abs(z) >= 5` (score 0.5), windows close after 3 normal buckets |
//! | minimum samples | a series is scored after 2 full seasons of its own history (2 weeks for hourly data); a store with one distinct timestamp gives an empty list |
//! | NULL sku / ts / units, NaN / ±inf units, units beyond ±1e15 | row ignored (never an error) |
//! | negative units | kept, counted in `dq_negative_count` |
//! | empty group / constant store | empty list |
//! | grid too large (> 2,000,000 buckets for one store) | `exec_err!` naming the store's span |
//! | state | slices of the incoming Arrow arrays (`(chunk, row)` references per group), concatenated at evaluate; partial state is three lists (sku, ts micros, units) |
//! | complexity | `O(n log n)` per store (sort by `(sku, ts)`, skipped when already sorted) plus scoring, see [`crate::functions`] |

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
    StringViewArray, StringViewBuilder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{cast, filter};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, internal_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature,
};
use datafusion_macros::user_doc;

use super::{coerce_ts, micros, struct_list, struct_list_type, utc_ts, utc_ts_array};
use crate::model::GridError;
use crate::model::checkpoint::StoreCheckpoint;
use crate::model::store::{DetectConfig, Report, detect_store_resumable};

#[user_doc(
    doc_section(label = "MRS Detection Functions"),
    description = "Store-level sales anomaly detector (Minority Reports). Scores every SKU cell series and the store-total series with a causal robust seasonal model (winsorised mean of the same slot over the last 4 weeks, level correction, negative-binomial dispersion, robust z floored at the Poisson scale and capped by the exact count tail), flags store buckets from the total, from strong cell evidence or from sustained runs over 2-8 buckets, and returns one struct per anomaly window: first_detected_from, last_anomalous_ts, alerted_at, window_end (NULL while open), as_of, direction, severity, peak_ts, anomalous_buckets, actual/baseline/excess/noise units, affected_skus, total_skus, sku_evidence, profile and dq_* features.",
    syntax_example = "mrs_detect(sku, ts, units)",
    sql_example = r#"```sql
> SELECT store_id, unnest(mrs_detect(sku, ts, units)) AS report FROM sales GROUP BY store_id;
```"#,
    argument(
        name = "sku",
        description = "SKU identifier (Utf8, LargeUtf8 or Utf8View)."
    ),
    argument(
        name = "ts",
        description = "Bucket start (timestamp of any unit; naive means UTC)."
    ),
    argument(
        name = "units",
        description = "Units sold in the bucket (numeric; NULL/NaN rows are ignored)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MrsDetect {
    signature: Signature,
}

impl Default for MrsDetect {
    fn default() -> Self {
        Self::new()
    }
}

impl MrsDetect {
    pub fn new() -> Self {
        Self {
            signature: super::documented_signature(vec![vec![
                DataType::Utf8View,
                utc_ts(),
                DataType::Float64,
            ]]),
        }
    }
}

/// Fields of one SKU evidence entry.
fn evidence_fields() -> Fields {
    Fields::from(vec![
        Field::new("sku", DataType::Utf8, false),
        Field::new("actual", DataType::Float64, false),
        Field::new("baseline", DataType::Float64, false),
        Field::new("excess", DataType::Float64, false),
        Field::new("peak_score", DataType::Float64, false),
    ])
}

/// Fields of one profile point.
fn profile_fields() -> Fields {
    Fields::from(vec![
        Field::new("ts", utc_ts(), false),
        Field::new("actual", DataType::Float64, false),
        Field::new("baseline", DataType::Float64, false),
    ])
}

/// Fields of one report, in the order of docs/ARCHITECTURE.md.
pub fn report_fields() -> Fields {
    let f64f = |n: &str| Field::new(n, DataType::Float64, false);
    let i64f = |n: &str| Field::new(n, DataType::Int64, false);
    Fields::from(vec![
        Field::new("first_detected_from", utc_ts(), false),
        Field::new("last_anomalous_ts", utc_ts(), false),
        Field::new("alerted_at", utc_ts(), false),
        Field::new("window_end", utc_ts(), true),
        Field::new("as_of", utc_ts(), false),
        Field::new("direction", DataType::Utf8, false),
        f64f("severity"),
        Field::new("peak_ts", utc_ts(), false),
        i64f("anomalous_buckets"),
        f64f("actual_units"),
        f64f("baseline_units"),
        f64f("excess_units"),
        f64f("noise_units"),
        i64f("affected_skus"),
        i64f("total_skus"),
        Field::new("sku_evidence", struct_list_type(evidence_fields()), false),
        Field::new("profile", struct_list_type(profile_fields()), false),
        Field::new("dq_ratio", DataType::Float64, true),
        f64f("dq_integer_multiple_share"),
        f64f("dq_zero_share"),
        f64f("dq_catchup"),
        f64f("dq_stuck_share"),
        i64f("dq_negative_count"),
    ])
}

/// The return type `List<Struct{report_fields}>`.
pub fn report_list_type() -> DataType {
    struct_list_type(report_fields())
}

impl AggregateUDFImpl for MrsDetect {
    fn name(&self) -> &str {
        "mrs_detect"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        let [sku, ts, units] = arg_types else {
            return plan_err!(
                "{name} expects (sku, ts, units), got {} arguments",
                arg_types.len()
            );
        };
        if !matches!(
            sku,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
        ) {
            return plan_err!("{name}: sku must be a string, got {sku}");
        }
        Ok(vec![
            DataType::Utf8View,
            coerce_ts(name, "ts", ts)?,
            super::coerce_numeric(name, "units", units, DataType::Float64)?,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(report_list_type())
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        let list = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[sku]", args.name),
                list(DataType::Utf8View),
                true,
            )),
            Arc::new(Field::new(
                format!("{}[ts]", args.name),
                list(DataType::Int64),
                true,
            )),
            Arc::new(Field::new(
                format!("{}[units]", args.name),
                list(DataType::Float64),
                true,
            )),
        ])
    }

    fn accumulator(&self, _args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(DetectAccumulator(DetectGroups::default())))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs<'_>) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs<'_>,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(DetectGroups::default()))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// Rows kept from one input (or state) batch.
#[derive(Debug)]
struct Chunk {
    sku: StringViewArray,
    ts: Int64Array,
    units: Float64Array,
}

impl Chunk {
    fn size(&self) -> usize {
        self.sku.get_array_memory_size()
            + self.ts.get_array_memory_size()
            + self.units.get_array_memory_size()
    }
}

/// Packs a `(chunk, row)` reference.
#[inline]
fn pack(chunk: usize, row: usize) -> u64 {
    ((chunk as u64) << 32) | row as u64
}

#[inline]
fn unpack(r: u64) -> (usize, usize) {
    ((r >> 32) as usize, (r & 0xFFFF_FFFF) as usize)
}

/// One group's detection.
pub(super) struct Detected {
    pub reports: Vec<Report>,
    /// The new checkpoint (when asked for).
    pub checkpoint: Option<StoreCheckpoint>,
    /// Where the old checkpoint resumed (micros), when there was one.
    pub resumed_from: Option<i64>,
}

/// The groups accumulator: per group, references into retained chunks.
#[derive(Debug, Default)]
pub struct DetectGroups {
    chunks: Vec<Chunk>,
    pub(super) groups: Vec<Vec<u64>>,
    cfg: DetectConfig,
}

/// Normalises the three argument arrays into a chunk.
fn to_chunk(values: &[ArrayRef]) -> Result<Chunk> {
    let [sku, ts, units, ..] = values else {
        return internal_err!("mrs_detect: expected 3 arguments, got {}", values.len());
    };
    let sku = cast(sku, &DataType::Utf8View)?.as_string_view().clone();
    let ts = micros(ts)?.reinterpret_cast::<Int64Type>();
    let units = cast(units, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone();
    Ok(Chunk { sku, ts, units })
}

#[inline]
fn row_ok(c: &Chunk, i: usize) -> bool {
    c.sku.is_valid(i)
        && c.ts.is_valid(i)
        && c.units.is_valid(i)
        && crate::model::usable(c.units.value(i))
}

impl DetectGroups {
    fn push_chunk(&mut self, chunk: Chunk) -> Result<usize> {
        let id = self.chunks.len();
        if id >= u32::MAX as usize || chunk.sku.len() >= u32::MAX as usize {
            return exec_err!("mrs_detect: too many input batches for one aggregation");
        }
        self.chunks.push(chunk);
        Ok(id)
    }

    /// Reports of the given groups as a list array (one list per group).
    fn evaluate_groups(&self, groups: &[Vec<u64>]) -> Result<ArrayRef> {
        let per_group = self
            .detect_groups(groups, &vec![None; groups.len()], false)?
            .into_iter()
            .map(|d| d.reports)
            .collect::<Vec<_>>();
        reports_to_array(&per_group)
    }

    /// Runs the detector over each group, resumed from its checkpoint when given, returning
    /// its reports and (with `checkpoint`) its new checkpoint.
    pub(super) fn detect_groups(
        &self,
        groups: &[Vec<u64>],
        checkpoints: &[Option<Vec<u8>>],
        checkpoint: bool,
    ) -> Result<Vec<Detected>> {
        let mut out = Vec::with_capacity(groups.len());
        let mut rows: Vec<(&str, i64, f64)> = Vec::new();
        let mut ids: Vec<(u32, i64, f64)> = Vec::new();
        for (refs, bytes) in groups.iter().zip(checkpoints) {
            let resume = match bytes {
                Some(b) => Some(StoreCheckpoint::decode(b).map_err(|e| {
                    DataFusionError::Execution(format!(
                        "mrs_detect_resume: a store's checkpoint is unusable ({e}); run without it (mrs run --full)"
                    ))
                })?),
                None => None,
            };
            rows.clear();
            rows.extend(refs.iter().map(|&r| {
                let (c, i) = unpack(r);
                let c = &self.chunks[c];
                (c.sku.value(i), c.ts.value(i), c.units.value(i))
            }));
            let sorted = rows
                .windows(2)
                .all(|w| (w[0].0, w[0].1) <= (w[1].0, w[1].1));
            if !sorted {
                rows.sort_unstable_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
            }
            // SKU names: the rows' and the checkpoint's, sorted (ids index them).
            let mut names: Vec<&str> = rows.iter().map(|r| r.0).collect();
            if let Some(cp) = &resume {
                names.extend(cp.skus.iter().map(|s| s.sku.as_str()));
            }
            names.sort_unstable();
            names.dedup();
            ids.clear();
            let mut id = 0usize;
            for &(sku, ts, u) in &rows {
                while names[id] != sku {
                    id += 1;
                }
                ids.push((id as u32, ts, u));
            }
            let resumed_from = resume.as_ref().map(|cp| cp.ts_of(cp.resume_bucket));
            match detect_store_resumable(&ids, &names, &self.cfg, resume.as_ref(), checkpoint) {
                Ok((reports, checkpoint)) => out.push(Detected {
                    reports,
                    checkpoint,
                    resumed_from,
                }),
                Err(GridError::TooManyBuckets(n)) => {
                    return exec_err!(
                        "mrs_detect: a store's rows span {n} buckets (more than {}); check its timestamps",
                        crate::model::grid::MAX_BUCKETS
                    );
                }
                Err(GridError::BadCheckpoint(m)) => {
                    return exec_err!(
                        "mrs_detect_resume: a store's checkpoint cannot resume this detection: {m}; run without it (mrs run --full)"
                    );
                }
            }
        }
        Ok(out)
    }

    /// The partial state of the given groups.
    pub(super) fn state_groups(&self, groups: &[Vec<u64>]) -> Result<Vec<ArrayRef>> {
        let total: usize = groups.iter().map(Vec::len).sum();
        let mut sku = StringViewBuilder::with_capacity(total);
        let mut ts = Vec::with_capacity(total);
        let mut units = Vec::with_capacity(total);
        for refs in groups {
            for &r in refs {
                let (c, i) = unpack(r);
                let c = &self.chunks[c];
                sku.append_value(c.sku.value(i));
                ts.push(c.ts.value(i));
                units.push(c.units.value(i));
            }
        }
        let offsets = OffsetBuffer::from_lengths(groups.iter().map(Vec::len));
        let list = |values: ArrayRef| -> ArrayRef {
            let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
            Arc::new(ListArray::new(item, offsets.clone(), values, None))
        };
        Ok(vec![
            list(Arc::new(sku.finish())),
            list(Arc::new(Int64Array::from(ts))),
            list(Arc::new(Float64Array::from(units))),
        ])
    }

    /// Frees the retained batches once no group refers to them.
    pub(super) fn release(&mut self) {
        if self.groups.iter().all(Vec::is_empty) {
            self.chunks.clear();
        }
    }
}

impl GroupsAccumulator for DetectGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        let chunk = to_chunk(values)?;
        let id = self.chunks.len();
        let mut any = false;
        for (i, &g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(i) || !f.value(i)) || !row_ok(&chunk, i) {
                continue;
            }
            self.groups[g].push(pack(id, i));
            any = true;
        }
        if any {
            self.push_chunk(chunk)?;
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.groups);
        let out = self.evaluate_groups(&groups);
        self.release();
        out
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = emit_to.take_needed(&mut self.groups);
        let out = self.state_groups(&groups);
        self.release();
        out
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        let [sku, ts, units, ..] = values else {
            return internal_err!("mrs_detect: expected 3 state columns, got {}", values.len());
        };
        let (sku, ts, units) = (
            sku.as_list::<i32>(),
            ts.as_list::<i32>(),
            units.as_list::<i32>(),
        );
        // state columns: sku Utf8View, ts Int64 micros, units Float64
        let chunk = Chunk {
            sku: cast(sku.values(), &DataType::Utf8View)?
                .as_string_view()
                .clone(),
            ts: cast(ts.values(), &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .clone(),
            units: cast(units.values(), &DataType::Float64)?
                .as_primitive::<Float64Type>()
                .clone(),
        };
        let id = self.chunks.len();
        let offsets = sku.value_offsets();
        let mut any = false;
        for (i, &g) in group_indices.iter().enumerate() {
            if sku.is_null(i) {
                continue;
            }
            for row in offsets[i] as usize..offsets[i + 1] as usize {
                if row_ok(&chunk, row) {
                    self.groups[g].push(pack(id, row));
                    any = true;
                }
            }
        }
        if any {
            self.push_chunk(chunk)?;
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let chunk = to_chunk(values)?;
        let keep: BooleanArray = (0..chunk.sku.len())
            .map(|i| {
                Some(row_ok(&chunk, i) && opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i)))
            })
            .collect();
        let offsets = OffsetBuffer::from_lengths(keep.iter().map(|k| usize::from(k == Some(true))));
        let list = |values: ArrayRef| -> Result<ArrayRef> {
            let values = filter(&values, &keep)?;
            let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
            Ok(Arc::new(ListArray::new(
                item,
                offsets.clone(),
                values,
                None,
            )))
        };
        Ok(vec![
            list(Arc::new(chunk.sku))?,
            list(Arc::new(chunk.ts))?,
            list(Arc::new(chunk.units))?,
        ])
    }

    fn size(&self) -> usize {
        self.chunks.iter().map(Chunk::size).sum::<usize>()
            + self
                .groups
                .iter()
                .map(|g| g.capacity() * 8 + 24)
                .sum::<usize>()
    }
}

/// `Accumulator` face (one group) for contexts without a groups accumulator.
#[derive(Debug)]
struct DetectAccumulator(DetectGroups);

impl Accumulator for DetectAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values.first().map_or(0, |v| v.len());
        self.0.update_batch(values, &vec![0; n], None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let groups = if self.0.groups.is_empty() {
            vec![Vec::new()]
        } else {
            self.0.groups[..1].to_vec()
        };
        let array = self.0.evaluate_groups(&groups)?;
        ScalarValue::try_from_array(&array, 0)
    }

    fn size(&self) -> usize {
        self.0.size() + size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let groups = if self.0.groups.is_empty() {
            vec![Vec::new()]
        } else {
            self.0.groups[..1].to_vec()
        };
        self.0
            .state_groups(&groups)?
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let n = states.first().map_or(0, |v| v.len());
        self.0.merge_batch(states, &vec![0; n], 1)
    }
}

/// Builds the `List<Struct>` output, one list per group.
pub(super) fn reports_to_array(per_group: &[Vec<Report>]) -> Result<ArrayRef> {
    let all: Vec<&Report> = per_group.iter().flatten().collect();
    let mut offsets = Vec::with_capacity(per_group.len() + 1);
    offsets.push(0i32);
    for g in per_group {
        offsets.push(offsets[offsets.len() - 1] + g.len() as i32);
    }
    let ts = |f: fn(&Report) -> i64| utc_ts_array(all.iter().map(|r| Some(f(r))).collect());
    let f64s = |f: fn(&Report) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(all.iter().map(|r| f(r))))
    };
    let i64s = |f: fn(&Report) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(all.iter().map(|r| f(r))))
    };

    // sku_evidence
    let ev: Vec<_> = all.iter().flat_map(|r| r.sku_evidence.iter()).collect();
    let mut ev_off = vec![0i32];
    for r in &all {
        ev_off.push(ev_off[ev_off.len() - 1] + r.sku_evidence.len() as i32);
    }
    let evidence = struct_list(
        evidence_fields(),
        vec![
            Arc::new(StringArray::from_iter_values(
                ev.iter().map(|e| e.sku.as_str()),
            )),
            Arc::new(Float64Array::from_iter_values(ev.iter().map(|e| e.actual))),
            Arc::new(Float64Array::from_iter_values(
                ev.iter().map(|e| e.baseline),
            )),
            Arc::new(Float64Array::from_iter_values(ev.iter().map(|e| e.excess))),
            Arc::new(Float64Array::from_iter_values(
                ev.iter().map(|e| e.peak_score),
            )),
        ],
        ev_off,
    )?;
    // profile
    let pr: Vec<_> = all.iter().flat_map(|r| r.profile.iter()).collect();
    let mut pr_off = vec![0i32];
    for r in &all {
        pr_off.push(pr_off[pr_off.len() - 1] + r.profile.len() as i32);
    }
    let profile = struct_list(
        profile_fields(),
        vec![
            utc_ts_array(pr.iter().map(|p| Some(p.0)).collect()),
            Arc::new(Float64Array::from_iter_values(pr.iter().map(|p| p.1))),
            Arc::new(Float64Array::from_iter_values(pr.iter().map(|p| p.2))),
        ],
        pr_off,
    )?;

    let columns: Vec<ArrayRef> = vec![
        ts(|r| r.first_detected_from),
        ts(|r| r.last_anomalous_ts),
        ts(|r| r.alerted_at),
        utc_ts_array(all.iter().map(|r| r.window_end).collect()),
        ts(|r| r.as_of),
        Arc::new(StringArray::from_iter_values(
            all.iter().map(|r| r.direction),
        )),
        f64s(|r| r.severity),
        ts(|r| r.peak_ts),
        i64s(|r| r.anomalous_buckets),
        f64s(|r| r.actual_units),
        f64s(|r| r.baseline_units),
        f64s(|r| r.excess_units),
        f64s(|r| r.noise_units),
        i64s(|r| r.affected_skus),
        i64s(|r| r.total_skus),
        evidence,
        profile,
        Arc::new(Float64Array::from(
            all.iter().map(|r| r.dq_ratio).collect::<Vec<_>>(),
        )),
        f64s(|r| r.dq_integer_multiple_share),
        f64s(|r| r.dq_zero_share),
        f64s(|r| r.dq_catchup),
        f64s(|r| r.dq_stuck_share),
        i64s(|r| r.dq_negative_count),
    ];
    struct_list(report_fields(), columns, offsets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::TimestampSecondArray;

    fn batch(rows: &[(Option<&str>, Option<i64>, Option<f64>)]) -> Vec<ArrayRef> {
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(TimestampSecondArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ]
    }

    fn series(
        sku: &str,
        hours: i64,
        spike_at: i64,
    ) -> Vec<(Option<&str>, Option<i64>, Option<f64>)> {
        (0..hours)
            .map(|h| {
                let v = if h == spike_at {
                    200.0
                } else {
                    10.0 + (h % 24) as f64
                };
                (Some(sku), Some(h * 3600), Some(v))
            })
            .collect()
    }

    #[test]
    fn groups_state_merge_and_emit_first() {
        let hours = 24 * 7 * 3;
        let mut rows = series("a", hours, hours - 5);
        rows.extend(series("b", hours, -1));
        rows.push((None, Some(0), Some(1.0)));
        rows.push((Some("a"), None, Some(1.0)));
        rows.push((Some("a"), Some(7200), Some(f64::NAN)));
        rows.push((Some("a"), Some(7200), None));
        let values = batch(&rows);
        // group 0 = store with the spike, group 1 = quiet store b only
        let groups: Vec<usize> = rows.iter().map(|r| usize::from(r.0 == Some("b"))).collect();
        let mut direct = DetectGroups::default();
        direct
            .update_batch(&values, &groups, None, 2)
            .expect("update");
        // two-stage: convert_to_state then merge
        let mut merged = DetectGroups::default();
        let state = direct.convert_to_state(&values, None).expect("convert");
        merged.merge_batch(&state, &groups, 2).expect("merge");
        // state round trip
        let mut partial = DetectGroups::default();
        partial
            .update_batch(&values, &groups, None, 2)
            .expect("update");
        let st = partial.state(EmitTo::All).expect("state");
        let mut again = DetectGroups::default();
        again.merge_batch(&st, &[0, 1], 2).expect("merge");

        let first = direct.evaluate(EmitTo::First(1)).expect("eval");
        assert_eq!(first.len(), 1);
        let rest = direct.evaluate(EmitTo::All).expect("eval");
        assert_eq!(rest.len(), 1);
        let list = first.as_list::<i32>();
        assert_eq!(list.value(0).len(), 1, "one report for the spiked store");
        assert_eq!(rest.as_list::<i32>().value(0).len(), 0);
        let m = merged.evaluate(EmitTo::All).expect("eval");
        assert_eq!(&m.as_list::<i32>().value(0), &list.value(0));
        let a = again.evaluate(EmitTo::All).expect("eval");
        assert_eq!(&a.as_list::<i32>().value(0), &list.value(0));
        assert_eq!(a.data_type(), &report_list_type());
        let r = list.value(0);
        let r = r.as_struct();
        let fdf = r
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(fdf.value(0), (hours - 5) * 3_600_000_000);
    }

    #[test]
    fn filter_and_empty() {
        let values = batch(&series("a", 10, -1));
        let mut g = DetectGroups::default();
        let f = BooleanArray::from(vec![false; 10]);
        g.update_batch(&values, &[0; 10], Some(&f), 1)
            .expect("update");
        let out = g.evaluate(EmitTo::All).expect("eval");
        assert_eq!(out.len(), 1);
        assert_eq!(out.as_list::<i32>().value(0).len(), 0);
        let mut acc = DetectAccumulator(DetectGroups::default());
        let v = acc.evaluate().expect("eval");
        assert!(!v.is_null());
    }
}
