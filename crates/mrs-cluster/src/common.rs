//! Shared plumbing of the two aggregates: argument type checks, column normalisation, the
//! raw-row stash used as accumulator state, union-find and geo distance.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, StringArray, new_empty_array};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Float64Type, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::StateFieldsArgs;
use datafusion::logical_expr::utils::format_state_name;

/// What an argument must look like; checked at planning time so that a wrong call fails with
/// `plan_err!` before any data is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgKind {
    /// Utf8, LargeUtf8 or Utf8View.
    Text,
    /// Any numeric type.
    Number,
    /// Any timestamp (any unit, with or without time zone) or date.
    Time,
    /// A list (List, LargeList, ListView, FixedSizeList) of strings.
    TextList,
}

impl ArgKind {
    /// The canonical type of the kind (what the pipeline passes), for signatures that
    /// enumerate example types (`SHOW FUNCTIONS`).
    pub(crate) fn canonical(self) -> DataType {
        match self {
            ArgKind::Text => DataType::Utf8,
            ArgKind::Number => DataType::Float64,
            ArgKind::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ArgKind::TextList => {
                DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
            }
        }
    }

    fn accepts(self, dt: &DataType) -> bool {
        if dt.is_null() {
            return true;
        }
        match self {
            ArgKind::Text => matches!(
                dt,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ),
            ArgKind::Number => dt.is_numeric(),
            ArgKind::Time => matches!(
                dt,
                DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
            ),
            ArgKind::TextList => match dt {
                DataType::List(f)
                | DataType::LargeList(f)
                | DataType::ListView(f)
                | DataType::LargeListView(f)
                | DataType::FixedSizeList(f, _) => ArgKind::Text.accepts(f.data_type()),
                _ => false,
            },
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ArgKind::Text => "a string",
            ArgKind::Number => "a number",
            ArgKind::Time => "a timestamp",
            ArgKind::TextList => "a list of strings",
        }
    }
}

/// Checks the argument types of `function` against its `(name, kind)` contract.
pub(crate) fn check_args(
    function: &str,
    contract: &[(&str, ArgKind)],
    arg_types: &[DataType],
) -> Result<()> {
    if arg_types.len() != contract.len() {
        return plan_err!(
            "{function} takes {} arguments ({}), got {}",
            contract.len(),
            contract
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
            arg_types.len()
        );
    }
    for ((name, kind), dt) in contract.iter().zip(arg_types) {
        if !kind.accepts(dt) {
            return plan_err!(
                "{function}: argument '{name}' must be {}, got {dt}",
                kind.describe()
            );
        }
    }
    Ok(())
}

/// Accumulator state: the incoming argument arrays, kept as they arrive (no per-row copy), one
/// vector of chunks per argument. `state` ships each argument as a one-row list; `merge`
/// appends the lists of other partial accumulators.
#[derive(Debug)]
pub(crate) struct RowStash {
    types: Vec<DataType>,
    chunks: Vec<Vec<ArrayRef>>,
}

impl RowStash {
    pub(crate) fn new(types: Vec<DataType>) -> Self {
        let chunks = types.iter().map(|_| Vec::new()).collect();
        Self { types, chunks }
    }

    pub(crate) fn state_fields(args: &StateFieldsArgs<'_>) -> Vec<FieldRef> {
        args.input_fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                Arc::new(Field::new_list(
                    format_state_name(args.name, &format!("arg{i}")),
                    Field::new_list_field(f.data_type().clone(), true),
                    true,
                ))
            })
            .collect()
    }

    pub(crate) fn update(&mut self, values: &[ArrayRef]) {
        for (chunks, v) in self.chunks.iter_mut().zip(values) {
            if !v.is_empty() {
                chunks.push(Arc::clone(v));
            }
        }
    }

    pub(crate) fn merge(&mut self, states: &[ArrayRef]) -> Result<()> {
        for (chunks, s) in self.chunks.iter_mut().zip(states) {
            let lists = s.as_list_opt::<i32>().ok_or_else(|| {
                datafusion::common::DataFusionError::Internal(format!(
                    "state column is {}, expected a list",
                    s.data_type()
                ))
            })?;
            for i in 0..lists.len() {
                if lists.is_valid(i) {
                    let v = lists.value(i);
                    if !v.is_empty() {
                        chunks.push(v);
                    }
                }
            }
        }
        Ok(())
    }

    /// Every argument as one array.
    pub(crate) fn columns(&self) -> Result<Vec<ArrayRef>> {
        self.chunks
            .iter()
            .zip(&self.types)
            .map(|(chunks, dt)| {
                if chunks.is_empty() {
                    Ok(new_empty_array(dt))
                } else {
                    let refs: Vec<&dyn Array> = chunks.iter().map(|a| a.as_ref()).collect();
                    Ok(concat(&refs)?)
                }
            })
            .collect()
    }

    pub(crate) fn state(&self) -> Result<Vec<ScalarValue>> {
        self.columns()?
            .into_iter()
            .zip(&self.types)
            .map(|(col, dt)| Ok(ScalarValue::List(Arc::new(one_row_list(col, dt)))))
            .collect()
    }

    pub(crate) fn size(&self) -> usize {
        size_of::<Self>()
            + self
                .chunks
                .iter()
                .flatten()
                .map(|a| a.get_array_memory_size())
                .sum::<usize>()
    }
}

/// A list array with a single row holding `values`.
pub(crate) fn one_row_list(values: ArrayRef, item_type: &DataType) -> ListArray {
    let field = Arc::new(Field::new_list_field(item_type.clone(), true));
    ListArray::new(
        field,
        OffsetBuffer::from_lengths([values.len()]),
        values,
        None,
    )
}

/// Strings of any string type, NULL and empty strings as `None`.
pub(crate) fn strings(array: &ArrayRef) -> Result<Vec<Option<String>>> {
    let casted = cast(array, &DataType::Utf8)?;
    let s: &StringArray = casted.as_string::<i32>();
    Ok((0..s.len())
        .map(|i| {
            (s.is_valid(i) && !s.value(i).trim().is_empty()).then(|| s.value(i).trim().to_string())
        })
        .collect())
}

/// Numbers as f64, NULL and NaN as `None`.
pub(crate) fn floats(array: &ArrayRef) -> Result<Vec<Option<f64>>> {
    let casted = cast(array, &DataType::Float64)?;
    let f = casted.as_primitive::<Float64Type>();
    Ok((0..f.len())
        .map(|i| (f.is_valid(i) && f.value(i).is_finite()).then(|| f.value(i)))
        .collect())
}

/// Timestamps as microseconds since the epoch (UTC; naive values are read as UTC).
pub(crate) fn micros(array: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let casted = cast(
        array,
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    )?;
    let t = casted.as_primitive::<TimestampMicrosecondType>();
    Ok((0..t.len())
        .map(|i| t.is_valid(i).then(|| t.value(i)))
        .collect())
}

/// Lists of strings, sorted and de-duplicated; NULL lists and NULL items are dropped.
pub(crate) fn string_lists(array: &ArrayRef) -> Result<Vec<Vec<String>>> {
    let target = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    let casted = cast(array, &target)?;
    let lists = casted.as_list::<i32>();
    let mut out = Vec::with_capacity(lists.len());
    for i in 0..lists.len() {
        if lists.is_null(i) {
            out.push(Vec::new());
            continue;
        }
        let v = lists.value(i);
        let s = v.as_string::<i32>();
        let mut items: Vec<String> = (0..s.len())
            .filter(|&j| s.is_valid(j) && !s.value(j).trim().is_empty())
            .map(|j| s.value(j).trim().to_string())
            .collect();
        items.sort();
        items.dedup();
        out.push(items);
    }
    Ok(out)
}

/// The first non-empty (trimmed) item of each list, in the input order; `None` for a NULL or
/// empty list.
pub(crate) fn first_strings(array: &ArrayRef) -> Result<Vec<Option<String>>> {
    let target = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    let casted = cast(array, &target)?;
    let lists = casted.as_list::<i32>();
    let mut out = Vec::with_capacity(lists.len());
    for i in 0..lists.len() {
        if lists.is_null(i) {
            out.push(None);
            continue;
        }
        let v = lists.value(i);
        let s = v.as_string::<i32>();
        out.push(
            (0..s.len())
                .find(|&j| s.is_valid(j) && !s.value(j).trim().is_empty())
                .map(|j| s.value(j).trim().to_string()),
        );
    }
    Ok(out)
}

/// Great-circle distance in km; `None` when a coordinate is missing or out of range.
pub(crate) fn haversine_km(
    a: (Option<f64>, Option<f64>),
    b: (Option<f64>, Option<f64>),
) -> Option<f64> {
    let (lat1, lon1, lat2, lon2) = (a.0?, a.1?, b.0?, b.1?);
    if [lat1, lat2].iter().any(|l| l.abs() > 90.0) || [lon1, lon2].iter().any(|l| l.abs() > 360.0) {
        return None;
    }
    const R: f64 = 6371.0088;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    Some(2.0 * R * h.sqrt().min(1.0).asin())
}

/// Number of shared items of two sorted, de-duplicated lists.
pub(crate) fn shared_count(a: &[String], b: &[String]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// Whether two `[start, last]` windows overlap once each is widened by `pad` on both sides.
/// A missing bound makes the windows not overlap (no evidence of concurrency).
pub(crate) fn overlaps(
    a: (Option<i64>, Option<i64>),
    b: (Option<i64>, Option<i64>),
    pad: i64,
) -> bool {
    match (a, b) {
        ((Some(s1), Some(l1)), (Some(s2), Some(l2))) => {
            s1.saturating_sub(pad) <= l2.saturating_add(pad)
                && s2.saturating_sub(pad) <= l1.saturating_add(pad)
        }
        _ => false,
    }
}

/// Union-find with path halving; the representative is the smallest index, so components do
/// not depend on the order of unions.
#[derive(Debug)]
pub(crate) struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
        }
    }

    pub(crate) fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    pub(crate) fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi] = lo;
        }
    }
}

/// Signature of a function taking `args`: any types (checked by name in `return_type`), and
/// the canonical types as the example `SHOW FUNCTIONS` lists. `Any` comes first so that
/// arguments are never coerced.
pub(crate) fn signature_of(args: &[(&str, ArgKind)]) -> datafusion::logical_expr::Signature {
    use datafusion::logical_expr::{Signature, TypeSignature, Volatility};
    Signature::one_of(
        vec![
            TypeSignature::Any(args.len()),
            TypeSignature::Exact(args.iter().map(|(_, k)| k.canonical()).collect()),
        ],
        Volatility::Immutable,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_london_paris() {
        let d = haversine_km(
            (Some(51.5074), Some(-0.1278)),
            (Some(48.8566), Some(2.3522)),
        );
        let d = d.unwrap_or(0.0);
        assert!((d - 343.5).abs() < 2.0, "{d}");
        assert_eq!(
            haversine_km((None, Some(1.0)), (Some(1.0), Some(1.0))),
            None
        );
        assert_eq!(
            haversine_km((Some(91.0), Some(1.0)), (Some(1.0), Some(1.0))),
            None
        );
    }

    #[test]
    fn shared_and_overlap() {
        let a = vec!["a".to_string(), "b".to_string()];
        let b = vec!["b".to_string(), "c".to_string()];
        assert_eq!(shared_count(&a, &b), 1);
        assert!(overlaps((Some(0), Some(10)), (Some(15), Some(20)), 3));
        assert!(!overlaps((Some(0), Some(10)), (Some(17), Some(20)), 3));
        assert!(!overlaps((None, Some(10)), (Some(0), Some(20)), 3));
    }

    #[test]
    fn union_find_uses_smallest_root() {
        let mut uf = UnionFind::new(4);
        uf.union(3, 2);
        uf.union(2, 1);
        assert_eq!(uf.find(3), 1);
        assert_eq!(uf.find(0), 0);
    }

    #[test]
    fn stash_round_trips_through_state() -> Result<()> {
        use datafusion::arrow::array::Int64Array;
        let mut a = RowStash::new(vec![DataType::Int64]);
        a.update(&[Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef]);
        let state = a.state()?;
        let ScalarValue::List(l) = &state[0] else {
            return datafusion::common::internal_err!("not a list");
        };
        let mut b = RowStash::new(vec![DataType::Int64]);
        b.update(&[Arc::new(Int64Array::from(vec![3])) as ArrayRef]);
        b.merge(&[Arc::clone(l) as ArrayRef])?;
        assert_eq!(b.columns()?[0].len(), 3);
        Ok(())
    }
}
