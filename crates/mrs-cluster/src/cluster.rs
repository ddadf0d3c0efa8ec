//! `mrs_cluster(...)`: density-based clustering of Minority Reports with per-report
//! neighbourhood features.
//!
//! Contract:
//!
//! | item | value |
//! |---|---|
//! | inputs | `report_id, store_id, retailer_id` (strings), `lat, lon` (numbers), `window_start, window_last` (timestamps), `direction, ` (string), `top_skus` (list of strings), `top_category` (string), `magnitude` (number) |
//! | minimum samples | none: one report gives one singleton cluster; a dense cluster needs `min_pts` (3) reports |
//! | NULL `report_id` | row ignored (it cannot be identified) |
//! | duplicate `report_id` | one row kept: the one with the latest `window_last`, then the largest `magnitude` |
//! | NULL / NaN elsewhere | "no evidence": the distance component is 0.5 (unknown); a missing window makes the report concurrent with nothing, so it is noise |
//! | empty input | empty list |
//! | output order | by `report_id`, whatever the input order or partitioning |
//! | complexity | O(n^2) pairs with a cheap time test first; O(n) memory plus neighbour lists |
//!
//! Distance between two reports `a`, `b` (DESIGN §6, [`ClusterParams`]): if their windows
//! `[window_start, window_last]`, each widened by `time_pad_hours` (3 h) on both sides, do not
//! overlap the distance is +inf. Otherwise it is the weighted sum of components in [0, 1]:
//!
//! | component | value | weight |
//! |---|---|---|
//! | SKUs | 1 - Jaccard(top_skus) | 0.30 |
//! | geo | min(haversine km / 200, 1) | 0.15 |
//! | category | 0 same, 1 different | 0.15 |
//! | direction | 0 same, 1 different | 0.15 |
//! | time | 1 - overlap / shorter widened window | 0.10 |
//! | magnitude | abs(ma - mb) / max(abs ma, abs mb) | 0.10 |
//! | retailer | 0 same, 1 different | 0.05 |
//!
//! A component with a missing side counts 0.5. DBSCAN with `eps` 0.45 and `min_pts` 3
//! (counting the report itself): `core_distance` is the distance to the `(min_pts - 1)`-th
//! nearest other report (NULL if there are not that many concurrent reports), `is_core` is
//! `core_distance <= eps`; clusters are the connected components of core reports within `eps`;
//! a non-core report within `eps` of a core report joins the cluster of its nearest core
//! report (ties: smaller `report_id`); others are noise and form singleton clusters.
//! `cluster_id = "MC-" || first 24 hex of blake3(smallest report_id of the cluster)`.
//!
//! Neighbourhood features count OTHER reports whose widened windows overlap the report's:
//! `co_sku_stores` distinct other stores among those sharing at least one top SKU,
//! `co_sku_retailers` distinct retailers among those same reports (any retailer, the report's
//! own included when another of its stores shares the SKU), `co_retailer_reports` concurrent
//! reports at the same retailer, `co_category_other_retailer_nearby` concurrent reports at
//! other retailers within 50 km sharing the top category (both coordinates needed).

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, Signature,
};
use datafusion_macros::user_doc;

use crate::common::{
    ArgKind, RowStash, check_args, floats, haversine_km, micros, one_row_list, overlaps,
    shared_count, string_lists, strings,
};

const ARGS: [(&str, ArgKind); 11] = [
    ("report_id", ArgKind::Text),
    ("store_id", ArgKind::Text),
    ("retailer_id", ArgKind::Text),
    ("lat", ArgKind::Number),
    ("lon", ArgKind::Number),
    ("window_start", ArgKind::Time),
    ("window_last", ArgKind::Time),
    ("direction", ArgKind::Text),
    ("top_skus", ArgKind::TextList),
    ("top_category", ArgKind::Text),
    ("magnitude", ArgKind::Number),
];

/// Parameters of the distance and of DBSCAN. Defaults are documented in the module header.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterParams {
    pub eps: f64,
    pub min_pts: usize,
    pub time_pad_hours: f64,
    pub geo_scale_km: f64,
    pub nearby_km: f64,
    pub w_sku: f64,
    pub w_geo: f64,
    pub w_category: f64,
    pub w_direction: f64,
    pub w_time: f64,
    pub w_magnitude: f64,
    pub w_retailer: f64,
}

impl Default for ClusterParams {
    fn default() -> Self {
        Self {
            eps: 0.45,
            min_pts: 3,
            time_pad_hours: 3.0,
            geo_scale_km: 200.0,
            nearby_km: 50.0,
            w_sku: 0.30,
            w_geo: 0.15,
            w_category: 0.15,
            w_direction: 0.15,
            w_time: 0.10,
            w_magnitude: 0.10,
            w_retailer: 0.05,
        }
    }
}

impl ClusterParams {
    fn pad_micros(&self) -> i64 {
        (self.time_pad_hours * 3_600_000_000.0) as i64
    }
}

/// One input report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub report_id: String,
    pub store_id: Option<String>,
    pub retailer_id: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub window_start: Option<i64>,
    pub window_last: Option<i64>,
    pub direction: Option<String>,
    /// Sorted and de-duplicated.
    pub top_skus: Vec<String>,
    pub top_category: Option<String>,
    pub magnitude: Option<f64>,
}

/// One output element.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterRow {
    pub report_id: String,
    pub cluster_id: String,
    pub cluster_size: i64,
    pub is_core: bool,
    pub core_distance: Option<f64>,
    pub cluster_stores: i64,
    pub cluster_retailers: i64,
    pub spread_km: f64,
    pub co_sku_stores: i64,
    pub co_sku_retailers: i64,
    pub co_retailer_reports: i64,
    pub co_category_other_retailer_nearby: i64,
}

/// `MC-` and the first 24 hex chars of BLAKE3 of the smallest report id of the cluster.
pub fn cluster_id(smallest_report_id: &str) -> String {
    format!(
        "MC-{}",
        &blake3::hash(smallest_report_id.as_bytes()).to_hex()[..24]
    )
}

fn same(a: Option<&String>, b: Option<&String>) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => 0.0,
        (Some(_), Some(_)) => 1.0,
        _ => 0.5,
    }
}

/// Mixed distance of two reports (module header); `None` when they are not concurrent.
pub fn distance(a: &Report, b: &Report, p: &ClusterParams) -> Option<f64> {
    let pad = p.pad_micros();
    let wa = (a.window_start, a.window_last);
    let wb = (b.window_start, b.window_last);
    if !overlaps(wa, wb, pad) {
        return None;
    }
    let (s1, l1, s2, l2) = (wa.0?, wa.1?, wb.0?, wb.1?);
    // i128: timestamps near the ends of i64 must not overflow (found by property tests).
    let widen = |s: i64, l: i64| {
        (
            i128::from(s.min(l)) - i128::from(pad),
            i128::from(s.max(l)) + i128::from(pad),
        )
    };
    let ((s1, l1), (s2, l2)) = (widen(s1, l1), widen(s2, l2));
    let overlap = (l1.min(l2) - s1.max(s2)).max(0) as f64;
    let shorter = ((l1 - s1).min(l2 - s2)).max(1) as f64;
    let time = 1.0 - (overlap / shorter).clamp(0.0, 1.0);

    let sku = if a.top_skus.is_empty() || b.top_skus.is_empty() {
        0.5
    } else {
        let shared = shared_count(&a.top_skus, &b.top_skus) as f64;
        let union = (a.top_skus.len() + b.top_skus.len()) as f64 - shared;
        1.0 - shared / union
    };
    let geo = haversine_km((a.lat, a.lon), (b.lat, b.lon))
        .map(|km| (km / p.geo_scale_km).min(1.0))
        .unwrap_or(0.5);
    let magnitude = match (a.magnitude, b.magnitude) {
        (Some(x), Some(y)) => {
            let m = x.abs().max(y.abs());
            if m == 0.0 {
                0.0
            } else {
                ((x - y).abs() / m).min(1.0)
            }
        }
        _ => 0.5,
    };
    Some(
        p.w_sku * sku
            + p.w_geo * geo
            + p.w_category * same(a.top_category.as_ref(), b.top_category.as_ref())
            + p.w_direction * same(a.direction.as_ref(), b.direction.as_ref())
            + p.w_time * time
            + p.w_magnitude * magnitude
            + p.w_retailer * same(a.retailer_id.as_ref(), b.retailer_id.as_ref()),
    )
}

/// Sorts by `report_id` and keeps one row per id (module header).
fn canonical(mut reports: Vec<Report>) -> Vec<Report> {
    reports.sort_by(|a, b| {
        a.report_id
            .cmp(&b.report_id)
            .then(a.window_last.cmp(&b.window_last))
            .then(
                a.magnitude
                    .unwrap_or(f64::NEG_INFINITY)
                    .total_cmp(&b.magnitude.unwrap_or(f64::NEG_INFINITY)),
            )
            .then(a.window_start.cmp(&b.window_start))
            .then(a.store_id.cmp(&b.store_id))
    });
    // Keep the last of each run of equal ids.
    let mut out: Vec<Report> = Vec::with_capacity(reports.len());
    for r in reports {
        if out.last().is_some_and(|l| l.report_id == r.report_id) {
            out.pop();
        }
        out.push(r);
    }
    out
}

/// Clusters the reports; one row per distinct report id, ordered by report id.
pub fn cluster_reports(reports: Vec<Report>, p: &ClusterParams) -> Vec<ClusterRow> {
    let reports = canonical(reports);
    let n = reports.len();
    let k = p.min_pts.saturating_sub(1);
    let pad = p.pad_micros();
    let mut neighbours: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    let mut nearest: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut co_sku_stores: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); n];
    let mut co_sku_retailers: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); n];
    let mut co_retailer = vec![0i64; n];
    let mut co_category = vec![0i64; n];

    let push_nearest = |v: &mut Vec<f64>, d: f64| {
        if k == 0 {
            return;
        }
        let pos = v.partition_point(|x| *x <= d);
        if pos < k {
            v.insert(pos, d);
            v.truncate(k);
        }
    };

    for i in 0..n {
        let a = &reports[i];
        for j in (i + 1)..n {
            let b = &reports[j];
            if !overlaps(
                (a.window_start, a.window_last),
                (b.window_start, b.window_last),
                pad,
            ) {
                continue;
            }
            // Neighbourhood features.
            if shared_count(&a.top_skus, &b.top_skus) > 0 {
                for (x, y) in [(i, b), (j, a)] {
                    let own = reports[x].store_id.as_deref();
                    if let Some(s) = y.store_id.as_deref().filter(|s| Some(*s) != own) {
                        co_sku_stores[x].insert(s);
                    }
                    if let Some(r) = y.retailer_id.as_deref() {
                        co_sku_retailers[x].insert(r);
                    }
                }
            }
            let same_retailer =
                matches!((&a.retailer_id, &b.retailer_id), (Some(x), Some(y)) if x == y);
            if same_retailer {
                co_retailer[i] += 1;
                co_retailer[j] += 1;
            }
            let other_retailer =
                matches!((&a.retailer_id, &b.retailer_id), (Some(x), Some(y)) if x != y);
            let same_category = matches!((&a.top_category, &b.top_category), (Some(x), Some(y)) if x.eq_ignore_ascii_case(y));
            if other_retailer
                && same_category
                && haversine_km((a.lat, a.lon), (b.lat, b.lon)).is_some_and(|d| d <= p.nearby_km)
            {
                co_category[i] += 1;
                co_category[j] += 1;
            }
            // Distances.
            if let Some(d) = distance(a, b, p) {
                push_nearest(&mut nearest[i], d);
                push_nearest(&mut nearest[j], d);
                if d <= p.eps {
                    neighbours[i].push((j, d));
                    neighbours[j].push((i, d));
                }
            }
        }
    }

    let core_distance: Vec<Option<f64>> = (0..n)
        .map(|i| {
            if k == 0 {
                Some(0.0)
            } else if nearest[i].len() >= k {
                Some(nearest[i][k - 1])
            } else {
                None
            }
        })
        .collect();
    let is_core: Vec<bool> = core_distance
        .iter()
        .map(|d| d.is_some_and(|d| d <= p.eps))
        .collect();

    // Core components (label = smallest index of the component, which has the smallest id).
    let mut label: Vec<Option<usize>> = vec![None; n];
    for i in 0..n {
        if !is_core[i] || label[i].is_some() {
            continue;
        }
        label[i] = Some(i);
        let mut stack = vec![i];
        while let Some(x) = stack.pop() {
            for &(y, _) in &neighbours[x] {
                if is_core[y] && label[y].is_none() {
                    label[y] = Some(i);
                    stack.push(y);
                }
            }
        }
    }
    // Border points: nearest core neighbour, ties by smaller index.
    for i in 0..n {
        if is_core[i] {
            continue;
        }
        let best = neighbours[i]
            .iter()
            .filter(|(y, _)| is_core[*y])
            .min_by(|(y1, d1), (y2, d2)| d1.total_cmp(d2).then(y1.cmp(y2)));
        label[i] = Some(best.and_then(|(y, _)| label[*y]).unwrap_or(i));
    }
    let label: Vec<usize> = label
        .iter()
        .enumerate()
        .map(|(i, l)| l.unwrap_or(i))
        .collect();

    // Members per cluster; the smallest member index gives the id.
    let mut members: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, l) in label.iter().enumerate() {
        members.entry(*l).or_default().push(i);
    }
    struct Meta {
        id: String,
        size: i64,
        stores: i64,
        retailers: i64,
        spread: f64,
    }
    let mut meta: std::collections::BTreeMap<usize, Meta> = Default::default();
    for (l, m) in &members {
        let smallest = m.iter().copied().min().unwrap_or(*l);
        let stores: BTreeSet<&str> = m
            .iter()
            .filter_map(|&x| reports[x].store_id.as_deref())
            .collect();
        let retailers: BTreeSet<&str> = m
            .iter()
            .filter_map(|&x| reports[x].retailer_id.as_deref())
            .collect();
        let mut spread = 0.0f64;
        for (ix, &x) in m.iter().enumerate() {
            for &y in &m[ix + 1..] {
                if let Some(d) = haversine_km(
                    (reports[x].lat, reports[x].lon),
                    (reports[y].lat, reports[y].lon),
                ) {
                    spread = spread.max(d);
                }
            }
        }
        meta.insert(
            *l,
            Meta {
                id: cluster_id(&reports[smallest].report_id),
                size: m.len() as i64,
                stores: stores.len() as i64,
                retailers: retailers.len() as i64,
                spread,
            },
        );
    }

    (0..n)
        .map(|i| {
            let m = &meta[&label[i]];
            ClusterRow {
                report_id: reports[i].report_id.clone(),
                cluster_id: m.id.clone(),
                cluster_size: m.size,
                is_core: is_core[i],
                core_distance: core_distance[i],
                cluster_stores: m.stores,
                cluster_retailers: m.retailers,
                spread_km: m.spread,
                co_sku_stores: co_sku_stores[i].len() as i64,
                co_sku_retailers: co_sku_retailers[i].len() as i64,
                co_retailer_reports: co_retailer[i],
                co_category_other_retailer_nearby: co_category[i],
            }
        })
        .collect()
}

fn output_fields() -> Fields {
    Fields::from(vec![
        Field::new("report_id", DataType::Utf8, false),
        Field::new("cluster_id", DataType::Utf8, false),
        Field::new("cluster_size", DataType::Int64, false),
        Field::new("is_core", DataType::Boolean, false),
        Field::new("core_distance", DataType::Float64, true),
        Field::new("cluster_stores", DataType::Int64, false),
        Field::new("cluster_retailers", DataType::Int64, false),
        Field::new("spread_km", DataType::Float64, false),
        Field::new("co_sku_stores", DataType::Int64, false),
        Field::new("co_sku_retailers", DataType::Int64, false),
        Field::new("co_retailer_reports", DataType::Int64, false),
        Field::new("co_category_other_retailer_nearby", DataType::Int64, false),
    ])
}

fn item_type() -> DataType {
    DataType::Struct(output_fields())
}

fn rows_to_struct(rows: &[ClusterRow]) -> Result<StructArray> {
    let i64s = |f: fn(&ClusterRow) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| &r.report_id),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| &r.cluster_id),
        )),
        i64s(|r| r.cluster_size),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| Some(r.is_core)),
        )),
        Arc::new(Float64Array::from_iter(
            rows.iter().map(|r| r.core_distance),
        )),
        i64s(|r| r.cluster_stores),
        i64s(|r| r.cluster_retailers),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| r.spread_km),
        )),
        i64s(|r| r.co_sku_stores),
        i64s(|r| r.co_sku_retailers),
        i64s(|r| r.co_retailer_reports),
        i64s(|r| r.co_category_other_retailer_nearby),
    ];
    Ok(StructArray::try_new(output_fields(), columns, None)?)
}

fn reports_from_columns(cols: &[ArrayRef]) -> Result<Vec<Report>> {
    let ids = strings(&cols[0])?;
    let stores = strings(&cols[1])?;
    let retailers = strings(&cols[2])?;
    let lats = floats(&cols[3])?;
    let lons = floats(&cols[4])?;
    let starts = micros(&cols[5])?;
    let lasts = micros(&cols[6])?;
    let directions = strings(&cols[7])?;
    let skus = string_lists(&cols[8])?;
    let categories = strings(&cols[9])?;
    let magnitudes = floats(&cols[10])?;
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.into_iter().enumerate() {
        let Some(report_id) = id else { continue };
        out.push(Report {
            report_id,
            store_id: stores[i].clone(),
            retailer_id: retailers[i].clone(),
            lat: lats[i],
            lon: lons[i],
            window_start: starts[i],
            window_last: lasts[i],
            direction: directions[i].as_ref().map(|d| d.to_ascii_lowercase()),
            top_skus: skus[i].clone(),
            top_category: categories[i].clone(),
            magnitude: magnitudes[i],
        });
    }
    Ok(out)
}

#[user_doc(
    doc_section(label = "MRS Clustering Functions"),
    description = "Density-based clustering (DBSCAN over a mixed time/geo/SKU/category/retailer/direction/magnitude distance) of all Minority Reports in the aggregate, with per-report neighbourhood features. Returns one struct per distinct report id, ordered by report id: report_id, cluster_id (MC- and 24 hex), cluster_size, is_core, core_distance, cluster_stores, cluster_retailers, spread_km, co_sku_stores, co_sku_retailers, co_retailer_reports, co_category_other_retailer_nearby.",
    syntax_example = "mrs_cluster(report_id, store_id, retailer_id, lat, lon, window_start, window_last, direction, top_skus, top_category, magnitude)",
    sql_example = r#"```sql
> SELECT unnest(mrs_cluster(report_id, store_id, retailer_id, lat, lon, window_start,
         window_last, direction, top_skus, top_category, magnitude)) AS c
  FROM report_features;
```"#,
    argument(
        name = "report_id",
        description = "Report id; rows with NULL are ignored."
    ),
    argument(name = "store_id", description = "Store of the report."),
    argument(name = "retailer_id", description = "Retailer of the store."),
    argument(name = "lat", description = "Store latitude in degrees (nullable)."),
    argument(name = "lon", description = "Store longitude in degrees (nullable)."),
    argument(name = "window_start", description = "First anomalous bucket."),
    argument(name = "window_last", description = "Last anomalous bucket."),
    argument(name = "direction", description = "`spike` or `drop`."),
    argument(
        name = "top_skus",
        description = "List of the SKUs driving the report."
    ),
    argument(
        name = "top_category",
        description = "Category with the largest share of the excess."
    ),
    argument(name = "magnitude", description = "Excess over noise of the report.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ClusterFunc {
    signature: Signature,
}

impl Default for ClusterFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterFunc {
    pub fn new() -> Self {
        Self {
            signature: crate::common::signature_of(&ARGS),
        }
    }
}

impl AggregateUDFImpl for ClusterFunc {
    fn name(&self) -> &str {
        "mrs_cluster"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_args(self.name(), &ARGS, arg_types)?;
        Ok(DataType::List(Arc::new(Field::new_list_field(
            item_type(),
            true,
        ))))
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        Ok(RowStash::state_fields(&args))
    }

    fn accumulator(&self, acc_args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        let types = acc_args
            .expr_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        Ok(Box::new(ClusterAccumulator {
            stash: RowStash::new(types),
            params: ClusterParams::default(),
        }))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[derive(Debug)]
struct ClusterAccumulator {
    stash: RowStash,
    params: ClusterParams,
}

impl Accumulator for ClusterAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.stash.update(values);
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.stash.merge(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.stash.state()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let cols = self.stash.columns()?;
        let rows = cluster_reports(reports_from_columns(&cols)?, &self.params);
        let values = Arc::new(rows_to_struct(&rows)?) as ArrayRef;
        Ok(ScalarValue::List(Arc::new(one_row_list(
            values,
            &item_type(),
        ))))
    }

    fn size(&self) -> usize {
        self.stash.size() + size_of::<ClusterParams>()
    }
}

/// The `mrs_cluster` aggregate.
pub fn mrs_cluster_udaf() -> Arc<AggregateUDF> {
    static UDAF: LazyLock<Arc<AggregateUDF>> =
        LazyLock::new(|| Arc::new(AggregateUDF::new_from_impl(ClusterFunc::new())));
    Arc::clone(&UDAF)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Array;

    use super::*;

    const H: i64 = 3_600_000_000;

    #[test]
    fn distance_of_windows_at_the_ends_of_time_does_not_overflow() {
        // Regression (property test): widening by the pad overflowed i64.
        let a = Report {
            report_id: "a".into(),
            window_start: Some(i64::MIN),
            window_last: Some(i64::MAX),
            ..Report::default()
        };
        let b = Report {
            report_id: "b".into(),
            window_start: Some(i64::MAX - 5),
            window_last: Some(i64::MAX),
            ..Report::default()
        };
        let d = distance(&a, &b, &ClusterParams::default()).expect("concurrent");
        assert!(d.is_finite() && (0.0..=1.0).contains(&d));
        assert_eq!(
            cluster_reports(vec![a, b], &ClusterParams::default()).len(),
            2
        );
    }

    fn report(id: &str, store: &str, retailer: &str, lat: f64, skus: &[&str], cat: &str) -> Report {
        Report {
            report_id: id.into(),
            store_id: Some(store.into()),
            retailer_id: Some(retailer.into()),
            lat: Some(lat),
            lon: Some(0.0),
            window_start: Some(10 * H),
            window_last: Some(14 * H),
            direction: Some("spike".into()),
            top_skus: skus.iter().map(|s| s.to_string()).collect(),
            top_category: Some(cat.into()),
            magnitude: Some(5.0),
        }
    }

    fn viral_and_outage() -> Vec<Report> {
        let mut v: Vec<Report> = (0..6)
            .map(|i| {
                report(
                    &format!("MR-v{i}"),
                    &format!("S{i}"),
                    ["A", "B", "C"][i % 3],
                    50.0 + i as f64,
                    &["SKU1"],
                    "snacks",
                )
            })
            .collect();
        let mut outage = report("MR-o", "S9", "A", 51.0, &["SKU7", "SKU8"], "dairy");
        outage.direction = Some("drop".into());
        outage.magnitude = Some(-20.0);
        v.push(outage);
        v
    }

    #[test]
    fn viral_reports_cluster_and_outage_is_noise() {
        let rows = cluster_reports(viral_and_outage(), &ClusterParams::default());
        assert_eq!(rows.len(), 7);
        let viral: Vec<&ClusterRow> = rows
            .iter()
            .filter(|r| r.report_id.starts_with("MR-v"))
            .collect();
        assert!(viral.iter().all(|r| r.cluster_id == cluster_id("MR-v0")));
        assert!(
            viral
                .iter()
                .all(|r| r.cluster_size == 6 && r.cluster_retailers == 3)
        );
        assert!(
            viral
                .iter()
                .all(|r| r.co_sku_stores == 5 && r.co_sku_retailers == 3)
        );
        let outage = rows.iter().find(|r| r.report_id == "MR-o");
        let outage = outage.map(|r| (r.cluster_id.clone(), r.cluster_size, r.co_sku_stores));
        assert_eq!(outage, Some((cluster_id("MR-o"), 1, 0)));
        // Ordered by report id.
        assert!(rows.windows(2).all(|w| w[0].report_id < w[1].report_id));
    }

    #[test]
    fn order_does_not_matter() {
        let a = cluster_reports(viral_and_outage(), &ClusterParams::default());
        let mut rev = viral_and_outage();
        rev.reverse();
        let b = cluster_reports(rev, &ClusterParams::default());
        assert_eq!(a, b);
    }

    #[test]
    fn non_overlapping_windows_are_far() {
        let a = report("MR-a", "S1", "A", 50.0, &["X"], "c");
        let mut b = a.clone();
        b.report_id = "MR-b".into();
        b.window_start = Some(30 * H);
        b.window_last = Some(31 * H);
        assert_eq!(distance(&a, &b, &ClusterParams::default()), None);
        b.window_start = Some(16 * H);
        let d = distance(&a, &b, &ClusterParams::default());
        assert!(d.is_some_and(|d| d < 0.2), "{d:?}");
    }

    #[test]
    fn neighbourhood_features() {
        let a = report("MR-a", "S1", "A", 50.0, &["X"], "milk");
        let b = report("MR-b", "S2", "B", 50.1, &["Y"], "milk");
        let c = report("MR-c", "S3", "A", 55.0, &["Z"], "bread");
        let rows = cluster_reports(vec![a, b, c], &ClusterParams::default());
        assert_eq!(rows[0].co_category_other_retailer_nearby, 1);
        assert_eq!(rows[0].co_retailer_reports, 1);
        assert_eq!(rows[2].co_category_other_retailer_nearby, 0);
        assert_eq!(rows[0].co_sku_stores, 0);
    }

    #[test]
    fn duplicates_and_empty_input() {
        assert!(cluster_reports(vec![], &ClusterParams::default()).is_empty());
        let a = report("MR-a", "S1", "A", 50.0, &["X"], "milk");
        let rows = cluster_reports(vec![a.clone(), a], &ClusterParams::default());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].cluster_size, 1);
        assert_eq!(rows[0].core_distance, None);
    }

    #[test]
    fn output_struct_builds() -> Result<()> {
        let rows = cluster_reports(viral_and_outage(), &ClusterParams::default());
        let s = rows_to_struct(&rows)?;
        assert_eq!((s.len(), s.num_columns()), (7, 12));
        Ok(())
    }

    #[test]
    fn null_fields_do_not_panic() {
        let r = Report {
            report_id: "MR-x".into(),
            ..Default::default()
        };
        let rows = cluster_reports(
            vec![
                r.clone(),
                Report {
                    report_id: "MR-y".into(),
                    ..r
                },
            ],
            &ClusterParams::default(),
        );
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.cluster_size == 1 && !r.is_core));
    }
}
