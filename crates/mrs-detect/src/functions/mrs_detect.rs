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
//! | state | per group, SKUs interned into ids (first appearance order) and the rows as compact `(id u32, ts i64, units f64)` columns, freed group by group at evaluate; partial state is four lists (the group's SKU names, then per row id, ts micros, units) |
//! | complexity | `O(n)` per store to order rows by `(sku, ts)` (a counting sort by SKU id; ts sorted only where out of order) plus scoring, see [`crate::functions`] |

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
    StringBuilder, StringViewArray, UInt32Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{cast, filter};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Float64Type, Int64Type, UInt32Type,
};
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
        f64f("dq_multiple_evidence"),
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
        let list = |n: &str, t: DataType| -> FieldRef {
            Arc::new(Field::new(
                format!("{}[{n}]", args.name),
                DataType::List(Arc::new(Field::new_list_field(t, true))),
                true,
            ))
        };
        Ok(vec![
            list("sku_names", DataType::Utf8),
            list("sku", DataType::UInt32),
            list("ts", DataType::Int64),
            list("units", DataType::Float64),
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

/// Number of partial state columns: the group's SKU names, then per row its SKU (an index into
/// those names), ts micros and units.
pub(super) const STATE_COLUMNS: usize = 4;

/// Hasher for the canonical 16-byte form of a short SKU (see [`short_key`]): SKU maps are
/// small and probed once per row, so one multiply beats SipHash.
#[derive(Default)]
struct ShortKeyHasher(u64);

impl Hasher for ShortKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u128(&mut self, v: u128) {
        let x = (v as u64) ^ ((v >> 64) as u64).rotate_left(29);
        self.0 = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

/// The bytes of a string of at most 12 bytes and its length, as one integer (the layout of
/// an inline string view with its padding zeroed, so equal strings give equal keys).
#[inline]
fn short_key(view: u128) -> Option<u128> {
    let len = (view as u32) as usize;
    (len <= 12).then(|| view & ((1u128 << (32 + 8 * len)) - 1))
}

/// [`short_key`] of a string.
#[inline]
fn short_key_of(s: &str) -> Option<u128> {
    let bytes = s.as_bytes();
    if bytes.len() > 12 {
        return None;
    }
    let mut buf = [0u8; 16];
    buf[..4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf[4..4 + bytes.len()].copy_from_slice(bytes);
    Some(u128::from_le_bytes(buf))
}

/// One group's rows: SKUs interned into ids in order of first appearance (so rows are never
/// sorted by string), and the rows as three compact columns.
#[derive(Debug, Default, Clone)]
pub(super) struct GroupRows {
    names: Vec<String>,
    short: HashMap<u128, u32, BuildHasherDefault<ShortKeyHasher>>,
    long: HashMap<String, u32>,
    sku: Vec<u32>,
    ts: Vec<i64>,
    units: Vec<f64>,
}

impl GroupRows {
    /// Rows held.
    pub(super) fn len(&self) -> usize {
        self.ts.len()
    }

    /// The id of a SKU, given its string view when there is one.
    #[inline]
    fn intern(&mut self, view: Option<u128>, sku: &str) -> Result<u32> {
        let key = match view {
            Some(v) => short_key(v),
            None => short_key_of(sku),
        };
        let found = match key {
            Some(k) => self.short.get(&k),
            None => self.long.get(sku),
        };
        if let Some(&id) = found {
            return Ok(id);
        }
        let Ok(id) = u32::try_from(self.names.len()) else {
            return exec_err!("mrs_detect: too many distinct SKUs in one store");
        };
        self.names.push(sku.to_string());
        match key {
            Some(k) => self.short.insert(k, id),
            None => self.long.insert(sku.to_string(), id),
        };
        Ok(id)
    }

    #[inline]
    fn push(&mut self, sku: u32, ts: i64, units: f64) {
        self.sku.push(sku);
        self.ts.push(ts);
        self.units.push(units);
    }

    /// Room for `n` more rows: exactly when they at least double the group (a merged group
    /// gets its rows in a few large state rows, where doubling would leave up to half of its
    /// memory unused), else amortised (many small state rows).
    fn reserve_for(&mut self, n: usize) {
        if n >= self.len() {
            self.sku.reserve_exact(n);
            self.ts.reserve_exact(n);
            self.units.reserve_exact(n);
        } else {
            self.sku.reserve(n);
            self.ts.reserve(n);
            self.units.reserve(n);
        }
    }

    /// Heap bytes held (the struct itself is counted by its owner).
    fn size(&self) -> usize {
        self.sku.capacity() * 4
            + self.ts.capacity() * 8
            + self.units.capacity() * 8
            + self.names.iter().map(|n| n.capacity() + 24).sum::<usize>()
            + self.short.capacity() * 24
            + self.long.capacity() * 32
    }
}

/// One group's detection.
pub(super) struct Detected {
    pub reports: Vec<Report>,
    /// The new checkpoint (when asked for).
    pub checkpoint: Option<StoreCheckpoint>,
    /// Where the old checkpoint resumed (micros), when there was one.
    pub resumed_from: Option<i64>,
    /// Rows the detection read.
    pub rows_read: usize,
}

/// The groups accumulator: per group, its rows in compact columns.
#[derive(Debug, Default)]
pub struct DetectGroups {
    pub(super) groups: Vec<GroupRows>,
    cfg: DetectConfig,
}

/// The three argument arrays, normalised.
struct Args {
    sku: StringViewArray,
    ts: Int64Array,
    units: Float64Array,
}

/// Normalises the three argument arrays.
fn to_args(values: &[ArrayRef]) -> Result<Args> {
    let [sku, ts, units, ..] = values else {
        return internal_err!("mrs_detect: expected 3 arguments, got {}", values.len());
    };
    let sku = cast(sku, &DataType::Utf8View)?.as_string_view().clone();
    let ts = micros(ts)?.reinterpret_cast::<Int64Type>();
    let units = cast(units, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone();
    Ok(Args { sku, ts, units })
}

#[inline]
fn row_ok(c: &Args, i: usize) -> bool {
    c.sku.is_valid(i)
        && c.ts.is_valid(i)
        && c.units.is_valid(i)
        && crate::model::usable(c.units.value(i))
}

/// Per-group scratch reused across the groups of one evaluation.
#[derive(Default)]
struct Scratch {
    rank: Vec<u32>,
    starts: Vec<usize>,
    rows: Vec<(u32, i64, f64)>,
}

impl DetectGroups {
    /// Reports of the given groups as a list array (one list per group).
    fn evaluate_groups(&self, groups: Vec<GroupRows>) -> Result<ArrayRef> {
        let n = groups.len();
        let per_group = self
            .detect_groups(groups, vec![None; n], false)?
            .into_iter()
            .map(|d| d.reports)
            .collect::<Vec<_>>();
        reports_to_array(&per_group)
    }

    /// Runs the detector over each group, resumed from its checkpoint when given, returning
    /// its reports and (with `checkpoint`) its new checkpoint. Each group's rows are freed as
    /// soon as it is done.
    pub(super) fn detect_groups(
        &self,
        groups: Vec<GroupRows>,
        checkpoints: Vec<Option<Vec<u8>>>,
        checkpoint: bool,
    ) -> Result<Vec<Detected>> {
        let mut out = Vec::with_capacity(groups.len());
        let mut scratch = Scratch::default();
        for (group, bytes) in groups.into_iter().zip(checkpoints) {
            let resume = match bytes {
                Some(b) => Some(StoreCheckpoint::decode(&b).map_err(|e| {
                    DataFusionError::Execution(format!(
                        "mrs_detect_resume: a store's checkpoint is unusable ({e}); run without it (mrs run --full)"
                    ))
                })?),
                None => None,
            };
            let rows_read = group.len();
            // SKU names: the rows' and the checkpoint's, sorted (ids index them).
            let mut names: Vec<&str> = group.names.iter().map(String::as_str).collect();
            if let Some(cp) = &resume {
                names.extend(cp.skus.iter().map(|s| s.sku.as_str()));
            }
            names.sort_unstable();
            names.dedup();
            sorted_rows(&group, &names, &mut scratch);
            let resumed_from = resume.as_ref().map(|cp| cp.ts_of(cp.resume_bucket));
            let detected = detect_store_resumable(
                &scratch.rows,
                &names,
                &self.cfg,
                resume.as_ref(),
                checkpoint,
            );
            match detected {
                Ok((reports, checkpoint)) => out.push(Detected {
                    reports,
                    checkpoint,
                    resumed_from,
                    rows_read,
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

    /// The partial state of the given groups (see [`STATE_COLUMNS`]); each group's rows are
    /// freed once copied.
    pub(super) fn state_groups(groups: Vec<GroupRows>) -> Result<Vec<ArrayRef>> {
        let total: usize = groups.iter().map(GroupRows::len).sum();
        let n_names: usize = groups.iter().map(|g| g.names.len()).sum();
        let names_bytes: usize = groups
            .iter()
            .flat_map(|g| g.names.iter().map(String::len))
            .sum();
        let mut names = StringBuilder::with_capacity(n_names, names_bytes);
        let mut name_lens = Vec::with_capacity(groups.len());
        let mut row_lens = Vec::with_capacity(groups.len());
        let mut sku = Vec::with_capacity(total);
        let mut ts = Vec::with_capacity(total);
        let mut units = Vec::with_capacity(total);
        for g in groups {
            for n in &g.names {
                names.append_value(n);
            }
            name_lens.push(g.names.len());
            row_lens.push(g.len());
            sku.extend_from_slice(&g.sku);
            ts.extend_from_slice(&g.ts);
            units.extend_from_slice(&g.units);
        }
        let list = |values: ArrayRef, lens: &[usize]| -> ArrayRef {
            let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
            let offsets = OffsetBuffer::from_lengths(lens.iter().copied());
            Arc::new(ListArray::new(item, offsets, values, None))
        };
        Ok(vec![
            list(Arc::new(names.finish()), &name_lens),
            list(Arc::new(UInt32Array::from(sku)), &row_lens),
            list(Arc::new(Int64Array::from(ts)), &row_lens),
            list(Arc::new(Float64Array::from(units)), &row_lens),
        ])
    }
}

/// The group's rows with ids indexing `names` (sorted), grouped by id in increasing order and
/// by ts within an id (rows of one id and ts keep their arrival order), into `scratch.rows`.
fn sorted_rows(group: &GroupRows, names: &[&str], scratch: &mut Scratch) {
    let Scratch { rank, starts, rows } = scratch;
    rank.clear();
    rank.extend(group.names.iter().map(|n| {
        // every group name is in `names`
        names.binary_search(&n.as_str()).unwrap_or(0) as u32
    }));
    // Counting sort by id (stable), then by ts within each id where not already in order.
    starts.clear();
    starts.resize(names.len() + 1, 0);
    for &s in &group.sku {
        starts[rank[s as usize] as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    rows.clear();
    rows.resize(group.len(), (0, 0, 0.0));
    let mut next = starts.clone();
    for ((&s, &t), &u) in group.sku.iter().zip(&group.ts).zip(&group.units) {
        let id = rank[s as usize];
        let at = &mut next[id as usize];
        rows[*at] = (id, t, u);
        *at += 1;
    }
    for w in starts.windows(2) {
        let seg = &mut rows[w[0]..w[1]];
        if !seg.is_sorted_by_key(|r| r.1) {
            seg.sort_by_key(|r| r.1);
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
        self.groups
            .resize_with(total_num_groups, GroupRows::default);
        let args = to_args(values)?;
        let views = args.sku.views();
        for (i, &g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(i) || !f.value(i)) || !row_ok(&args, i) {
                continue;
            }
            let group = &mut self.groups[g];
            let id = group.intern(Some(views[i]), args.sku.value(i))?;
            group.push(id, args.ts.value(i), args.units.value(i));
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.groups);
        self.evaluate_groups(groups)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = emit_to.take_needed(&mut self.groups);
        Self::state_groups(groups)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups
            .resize_with(total_num_groups, GroupRows::default);
        let [names, sku, ts, units, ..] = values else {
            return internal_err!(
                "mrs_detect: expected {STATE_COLUMNS} state columns, got {}",
                values.len()
            );
        };
        let (names, sku, ts, units) = (
            names.as_list::<i32>(),
            sku.as_list::<i32>(),
            ts.as_list::<i32>(),
            units.as_list::<i32>(),
        );
        let name_values = cast(names.values(), &DataType::Utf8)?;
        let name_values = name_values.as_string::<i32>();
        let sku_values = sku.values().as_primitive::<UInt32Type>();
        let ts_values = ts.values().as_primitive::<Int64Type>();
        let unit_values = units.values().as_primitive::<Float64Type>();
        let mut ids: Vec<u32> = Vec::new();
        let (name_offsets, row_offsets) = (names.value_offsets(), sku.value_offsets());
        for (i, &g) in group_indices.iter().enumerate() {
            if names.is_null(i) || sku.is_null(i) {
                continue;
            }
            let group = &mut self.groups[g];
            // This state row's name ids, as this group's ids.
            ids.clear();
            for n in name_offsets[i] as usize..name_offsets[i + 1] as usize {
                if name_values.is_null(n) {
                    return internal_err!("mrs_detect: NULL SKU name in a partial state");
                }
                ids.push(group.intern(None, name_values.value(n))?);
            }
            let rows = row_offsets[i] as usize..row_offsets[i + 1] as usize;
            group.reserve_for(rows.len());
            for row in rows {
                let Some(&id) = ids.get(sku_values.value(row) as usize) else {
                    return internal_err!("mrs_detect: SKU id out of range in a partial state");
                };
                group.push(id, ts_values.value(row), unit_values.value(row));
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let args = to_args(values)?;
        let keep: BooleanArray = (0..args.sku.len())
            .map(|i| {
                Some(row_ok(&args, i) && opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i)))
            })
            .collect();
        let kept = keep.true_count();
        let offsets = OffsetBuffer::from_lengths(keep.iter().map(|k| usize::from(k == Some(true))));
        let list = |values: ArrayRef| -> ArrayRef {
            let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
            Arc::new(ListArray::new(item, offsets.clone(), values, None))
        };
        // One row per kept input row: its SKU is its only name (id 0).
        let names = cast(&filter(&args.sku, &keep)?, &DataType::Utf8)?;
        Ok(vec![
            list(names),
            list(Arc::new(UInt32Array::from(vec![0u32; kept]))),
            list(filter(&args.ts, &keep)?),
            list(filter(&args.units, &keep)?),
        ])
    }

    fn size(&self) -> usize {
        self.groups.iter().map(GroupRows::size).sum::<usize>()
            + self.groups.capacity() * size_of::<GroupRows>()
    }
}

/// `Accumulator` face (one group) for contexts without a groups accumulator.
#[derive(Debug)]
struct DetectAccumulator(DetectGroups);

impl DetectAccumulator {
    /// The group (a copy: `evaluate` may be called again with more rows).
    fn group(&self) -> Vec<GroupRows> {
        vec![self.0.groups.first().cloned().unwrap_or_default()]
    }
}

impl Accumulator for DetectAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values.first().map_or(0, |v| v.len());
        self.0.update_batch(values, &vec![0; n], None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let array = self.0.evaluate_groups(self.group())?;
        ScalarValue::try_from_array(&array, 0)
    }

    fn size(&self) -> usize {
        self.0.size() + size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        DetectGroups::state_groups(self.group())?
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
        f64s(|r| r.dq_multiple_evidence),
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
