//! The attribution input: a struct of named features (docs/ARCHITECTURE.md, "Attribution
//! input"), read by name. Missing fields, NULLs, NaNs and infinities are "no evidence".

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StructArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Float64Type, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::{Result, exec_datafusion_err, plan_err};

/// One point of the store-level profile.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProfilePoint {
    /// Microseconds since the epoch, UTC.
    pub ts: Option<i64>,
    pub actual: Option<f64>,
    pub baseline: Option<f64>,
}

/// Every feature the model reads; `None` is "no evidence".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    pub direction: Option<String>,
    pub severity: Option<f64>,
    pub duration_buckets: Option<f64>,
    pub magnitude: Option<f64>,
    pub relative_change: Option<f64>,
    pub affected_skus: Option<f64>,
    pub total_skus: Option<f64>,
    pub top_sku_share: Option<f64>,
    pub top_brand: Option<String>,
    pub top_brand_share: Option<f64>,
    pub top_category: Option<String>,
    pub top_category_share: Option<f64>,
    pub top_sku: Option<String>,
    pub profile: Vec<ProfilePoint>,
    pub dq_ratio: Option<f64>,
    pub dq_integer_multiple_share: Option<f64>,
    pub dq_zero_share: Option<f64>,
    pub dq_catchup: Option<f64>,
    pub dq_stuck_share: Option<f64>,
    pub dq_negative_count: Option<f64>,
    pub promo_overlap: Option<f64>,
    pub spend_ratio: Option<f64>,
    pub social_ratio: Option<f64>,
    pub cluster_size: Option<f64>,
    pub co_sku_stores: Option<f64>,
    pub co_sku_retailers: Option<f64>,
    pub co_retailer_share: Option<f64>,
    pub co_category_other_retailer_nearby: Option<f64>,
    pub sku_retailer_coverage: Option<f64>,
    pub sku_other_retailer_coverage: Option<f64>,
    pub brand_retailer_coverage: Option<f64>,
    pub brand_other_retailer_coverage: Option<f64>,
    pub category_other_retailer_coverage: Option<f64>,
    pub category_nearby_share: Option<f64>,
    pub sku_same_retailer_share: Option<f64>,
    pub brand_same_retailer_share: Option<f64>,
    pub spend_ratio_max: Option<f64>,
    pub social_ratio_max: Option<f64>,
    pub dq_multiple_evidence: Option<f64>,
    /// The largest zero share of a drop at the store that began before this report and whose
    /// last anomalous bucket is at most 3 hours before this report's start, or later (0 when
    /// none).
    pub preceding_zero_share: Option<f64>,
    pub store_id: Option<String>,
    pub retailer_id: Option<String>,
    pub region: Option<String>,
}

pub(crate) const TEXT_FIELDS: [&str; 7] = [
    "direction",
    "top_brand",
    "top_category",
    "top_sku",
    "store_id",
    "retailer_id",
    "region",
];

pub(crate) const NUMBER_FIELDS: [&str; 35] = [
    "severity",
    "duration_buckets",
    "magnitude",
    "relative_change",
    "affected_skus",
    "total_skus",
    "top_sku_share",
    "top_brand_share",
    "top_category_share",
    "dq_ratio",
    "dq_integer_multiple_share",
    "dq_zero_share",
    "dq_catchup",
    "dq_stuck_share",
    "dq_negative_count",
    "promo_overlap",
    "spend_ratio",
    "social_ratio",
    "cluster_size",
    "co_sku_stores",
    "co_sku_retailers",
    "co_retailer_share",
    "co_category_other_retailer_nearby",
    "sku_retailer_coverage",
    "sku_other_retailer_coverage",
    "brand_retailer_coverage",
    "brand_other_retailer_coverage",
    "category_other_retailer_coverage",
    "category_nearby_share",
    "sku_same_retailer_share",
    "brand_same_retailer_share",
    "spend_ratio_max",
    "social_ratio_max",
    "dq_multiple_evidence",
    "preceding_zero_share",
];

fn is_text(dt: &DataType) -> bool {
    dt.is_null()
        || matches!(
            dt,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
}

fn is_number(dt: &DataType) -> bool {
    dt.is_null() || dt.is_numeric() || matches!(dt, DataType::Boolean)
}

fn profile_item(dt: &DataType) -> Option<&DataType> {
    match dt {
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _) => Some(f.data_type()),
        _ => None,
    }
}

/// Plan-time check of the argument: a struct (or NULL) whose known fields have usable types.
/// Unknown fields are ignored.
pub(crate) fn check_type(function: &str, dt: &DataType) -> Result<()> {
    let fields = match dt {
        DataType::Null => return Ok(()),
        DataType::Struct(fields) => fields,
        other => {
            return plan_err!(
                "{function} expects one struct argument (named_struct(...)), got {other}"
            );
        }
    };
    for f in fields.iter() {
        let (name, t) = (f.name().as_str(), f.data_type());
        if TEXT_FIELDS.contains(&name) && !is_text(t) {
            return plan_err!("{function}: field '{name}' must be a string, got {t}");
        }
        if NUMBER_FIELDS.contains(&name) && !is_number(t) {
            return plan_err!("{function}: field '{name}' must be a number, got {t}");
        }
        if name == "profile" && !t.is_null() {
            let ok = match profile_item(t) {
                Some(DataType::Struct(inner)) => inner.iter().all(|c| match c.name().as_str() {
                    "ts" => {
                        c.data_type().is_null()
                            || matches!(
                                c.data_type(),
                                DataType::Timestamp(_, _)
                                    | DataType::Date32
                                    | DataType::Date64
                                    | DataType::Int64
                            )
                    }
                    "actual" | "baseline" => is_number(c.data_type()),
                    _ => true,
                }),
                Some(DataType::Null) => true,
                _ => false,
            };
            if !ok {
                return plan_err!(
                    "{function}: field 'profile' must be a list of struct{{ts timestamp, actual number, baseline number}}, got {t}"
                );
            }
        }
    }
    Ok(())
}

fn child<'a>(s: &'a StructArray, name: &str) -> Option<&'a ArrayRef> {
    s.column_by_name(name)
}

fn strings(a: Option<&ArrayRef>, rows: usize) -> Result<Vec<Option<String>>> {
    let Some(a) = a else {
        return Ok(vec![None; rows]);
    };
    let c = cast(a, &DataType::Utf8)?;
    let s = c.as_string::<i32>();
    Ok((0..rows)
        .map(|i| {
            (s.is_valid(i) && !s.value(i).trim().is_empty()).then(|| s.value(i).trim().to_string())
        })
        .collect())
}

fn floats(a: Option<&ArrayRef>, rows: usize) -> Result<Vec<Option<f64>>> {
    let Some(a) = a else {
        return Ok(vec![None; rows]);
    };
    let c = cast(a, &DataType::Float64)?;
    let f = c.as_primitive::<Float64Type>();
    Ok((0..rows)
        .map(|i| (f.is_valid(i) && f.value(i).is_finite()).then(|| f.value(i)))
        .collect())
}

fn profiles(a: Option<&ArrayRef>, rows: usize) -> Result<Vec<Vec<ProfilePoint>>> {
    let Some(a) = a else {
        return Ok(vec![Vec::new(); rows]);
    };
    if a.data_type().is_null() {
        return Ok(vec![Vec::new(); rows]);
    }
    let item = profile_item(a.data_type())
        .cloned()
        .ok_or_else(|| exec_datafusion_err!("profile is {}, expected a list", a.data_type()))?;
    let list = cast(
        a,
        &DataType::List(Arc::new(Field::new_list_field(item, true))),
    )?;
    let list = list.as_list::<i32>();
    let values = list.values();
    let n = values.len();
    let (ts, actual, baseline) = match values.as_struct_opt() {
        Some(s) => {
            let ts = match child(s, "ts") {
                Some(t) if !t.data_type().is_null() => {
                    let c = cast(
                        t,
                        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    )?;
                    let p = c.as_primitive::<TimestampMicrosecondType>();
                    (0..n).map(|i| p.is_valid(i).then(|| p.value(i))).collect()
                }
                _ => vec![None; n],
            };
            (
                ts,
                floats(child(s, "actual"), n)?,
                floats(child(s, "baseline"), n)?,
            )
        }
        None => (vec![None; n], vec![None; n], vec![None; n]),
    };
    let offsets = list.value_offsets();
    Ok((0..rows)
        .map(|r| {
            if list.is_null(r) {
                return Vec::new();
            }
            let (lo, hi) = (offsets[r] as usize, offsets[r + 1] as usize);
            (lo..hi)
                .filter(|&i| values.is_valid(i))
                .map(|i| ProfilePoint {
                    ts: ts[i],
                    actual: actual[i],
                    baseline: baseline[i],
                })
                .collect()
        })
        .collect())
}

/// Reads one `Features` per row of the argument (a struct array or a NULL array).
pub(crate) fn read_features(arg: &ArrayRef) -> Result<Vec<Features>> {
    let rows = arg.len();
    let Some(s) = arg.as_struct_opt() else {
        return Ok(vec![Features::default(); rows]);
    };
    let text: Vec<Vec<Option<String>>> = TEXT_FIELDS
        .iter()
        .map(|n| strings(child(s, n), rows))
        .collect::<Result<_>>()?;
    let num: Vec<Vec<Option<f64>>> = NUMBER_FIELDS
        .iter()
        .map(|n| floats(child(s, n), rows))
        .collect::<Result<_>>()?;
    let mut prof = profiles(child(s, "profile"), rows)?;
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        if s.is_null(r) {
            out.push(Features::default());
            continue;
        }
        let t = |k: usize| text[k][r].clone();
        let x = |k: usize| num[k][r];
        out.push(Features {
            direction: t(0).map(|d| d.to_ascii_lowercase()),
            top_brand: t(1),
            top_category: t(2),
            top_sku: t(3),
            store_id: t(4),
            retailer_id: t(5),
            region: t(6),
            severity: x(0),
            duration_buckets: x(1),
            magnitude: x(2),
            relative_change: x(3),
            affected_skus: x(4),
            total_skus: x(5),
            top_sku_share: x(6),
            top_brand_share: x(7),
            top_category_share: x(8),
            dq_ratio: x(9),
            dq_integer_multiple_share: x(10),
            dq_zero_share: x(11),
            dq_catchup: x(12),
            dq_stuck_share: x(13),
            dq_negative_count: x(14),
            promo_overlap: x(15),
            spend_ratio: x(16),
            social_ratio: x(17),
            cluster_size: x(18),
            co_sku_stores: x(19),
            co_sku_retailers: x(20),
            co_retailer_share: x(21),
            co_category_other_retailer_nearby: x(22),
            sku_retailer_coverage: x(23),
            sku_other_retailer_coverage: x(24),
            brand_retailer_coverage: x(25),
            brand_other_retailer_coverage: x(26),
            category_other_retailer_coverage: x(27),
            category_nearby_share: x(28),
            sku_same_retailer_share: x(29),
            brand_same_retailer_share: x(30),
            spend_ratio_max: x(31),
            social_ratio_max: x(32),
            dq_multiple_evidence: x(33),
            preceding_zero_share: x(34),

            profile: std::mem::take(&mut prof[r]),
        });
    }
    Ok(out)
}
