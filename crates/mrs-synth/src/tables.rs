//! Arrow batches of every table of the lake, in the canonical schemas of `mrs_core::schema`,
//! and their Parquet encoding.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Date32Array, Float64Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use datafusion::error::DataFusionError;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use mrs_core::schema;
use mrs_core::{MrsError, MrsResult};

use crate::plan::{CHANNELS, Lake};
use crate::rng::{Rng, position_key, stream_key};
use crate::series::SeriesCtx;
use crate::world::{START_MICROS, STEP_MICROS};

pub fn df_err<E: Into<DataFusionError>>(e: E) -> MrsError {
    MrsError::DataFusion(e.into())
}

fn utf8<S: AsRef<str>>(v: impl IntoIterator<Item = S>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

fn opt_utf8(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

fn f64s(v: Vec<f64>) -> ArrayRef {
    Arc::new(Float64Array::from(v))
}

fn ts(v: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
}

pub fn bucket_micros(t: usize) -> i64 {
    START_MICROS + t as i64 * STEP_MICROS
}

/// Days since the epoch of day index `d` of the lake.
fn epoch_day(d: usize) -> i32 {
    (START_MICROS / 86_400_000_000) as i32 + d as i32
}

/// Parquet bytes of one batch.
pub fn parquet_bytes(batch: &RecordBatch) -> MrsResult<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let mut buf = Vec::with_capacity(1 << 16);
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).map_err(df_err)?;
    writer.write(batch).map_err(df_err)?;
    writer.close().map_err(df_err)?;
    Ok(buf)
}

pub fn stores(lake: &Lake) -> MrsResult<RecordBatch> {
    let w = &lake.world;
    RecordBatch::try_new(
        schema::stores_schema(),
        vec![
            utf8(w.stores.iter().map(|s| s.id.as_str())),
            utf8(w.stores.iter().map(|s| w.retailers[s.retailer])),
            utf8(w.stores.iter().map(|s| w.regions[s.region])),
            f64s(w.stores.iter().map(|s| s.lat).collect()),
            f64s(w.stores.iter().map(|s| s.lon).collect()),
        ],
    )
    .map_err(df_err)
}

pub fn skus(lake: &Lake) -> MrsResult<RecordBatch> {
    let w = &lake.world;
    RecordBatch::try_new(
        schema::skus_schema(),
        vec![
            utf8(w.skus.iter().map(|k| k.id.as_str())),
            utf8(w.skus.iter().map(|k| w.categories[k.category])),
            utf8(w.skus.iter().map(|k| w.brands[k.brand].name)),
        ],
    )
    .map_err(df_err)
}

pub fn holidays(lake: &Lake) -> MrsResult<RecordBatch> {
    let w = &lake.world;
    RecordBatch::try_new(
        schema::holidays_schema(),
        vec![
            Arc::new(Date32Array::from(
                w.holidays
                    .iter()
                    .map(|h| epoch_day(h.day))
                    .collect::<Vec<_>>(),
            )),
            opt_utf8(w.holidays.iter().map(|_| None).collect()),
            opt_utf8(
                w.holidays
                    .iter()
                    .map(|h| Some(h.name.to_string()))
                    .collect(),
            ),
        ],
    )
    .map_err(df_err)
}

pub fn promotions(lake: &Lake) -> MrsResult<RecordBatch> {
    let w = &lake.world;
    let mut promos: Vec<_> = lake.promos.iter().collect();
    promos.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
    RecordBatch::try_new(
        schema::promotions_schema(),
        vec![
            opt_utf8(promos.iter().map(|p| Some(p.id.clone())).collect()),
            opt_utf8(
                promos
                    .iter()
                    .map(|p| Some(w.retailers[p.retailer].to_string()))
                    .collect(),
            ),
            opt_utf8(promos.iter().map(|_| None).collect()),
            opt_utf8(promos.iter().map(|_| None).collect()),
            opt_utf8(
                promos
                    .iter()
                    .map(|p| p.brand.map(|b| w.brands[b].name.to_string()))
                    .collect(),
            ),
            opt_utf8(
                promos
                    .iter()
                    .map(|p| p.category.map(|c| w.categories[c].to_string()))
                    .collect(),
            ),
            ts(promos.iter().map(|p| bucket_micros(p.start)).collect()),
            ts(promos.iter().map(|p| bucket_micros(p.end)).collect()),
            opt_utf8(promos.iter().map(|p| Some(p.kind.to_string())).collect()),
        ],
    )
    .map_err(df_err)
}

/// Daily spend per brand × channel: a noisy baseline with a weekly rhythm, raised over the
/// promotions and misattributed uplifts it is credited to.
pub fn marketing_spend(lake: &Lake) -> MrsResult<RecordBatch> {
    let w = &lake.world;
    const WEEKLY: [f64; 7] = [0.95, 0.95, 1.0, 1.05, 1.15, 1.0, 0.9];
    const LEVEL: [f64; 4] = [1500.0, 600.0, 400.0, 250.0];
    let (mut brand, mut channel, mut day, mut spend) = (vec![], vec![], vec![], vec![]);
    for (b, br) in w.brands.iter().enumerate() {
        for (c, ch) in CHANNELS.iter().enumerate() {
            let key = stream_key(lake.seed, &["spend", br.name, ch]);
            let level = {
                let mut r = Rng::new(key);
                LEVEL[c] * (0.5 * r.normal()).exp()
            };
            for d in 0..w.params.days {
                let mut r = Rng::new(position_key(key, d as u64 + 1));
                let mut v = level * WEEKLY[d % 7] * (0.15 * r.normal()).exp();
                for boost in &lake.spend_boosts {
                    if boost.brands.contains(&b)
                        && boost.channels.contains(&c)
                        && (boost.day_start..boost.day_end).contains(&d)
                    {
                        v *= boost.mult;
                    }
                }
                brand.push(br.name);
                channel.push(*ch);
                day.push(epoch_day(d));
                spend.push((v * 100.0).round() / 100.0);
            }
        }
    }
    RecordBatch::try_new(
        schema::marketing_spend_schema(),
        vec![
            utf8(brand),
            utf8(channel),
            Arc::new(Date32Array::from(day)),
            f64s(spend),
        ],
    )
    .map_err(df_err)
}

/// Hourly mentions per SKU: a low Poisson baseline following the daily rhythm, plus bursts.
pub fn social_mentions(lake: &Lake) -> MrsResult<RecordBatch> {
    let w = &lake.world;
    let n = w.skus.len() * w.n_hours;
    let (mut sku, mut t_col, mut mentions) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (k, s) in w.skus.iter().enumerate() {
        let key = stream_key(lake.seed, &["mentions", &s.id]);
        let bursts: Vec<_> = lake.bursts.iter().filter(|b| b.sku == k).collect();
        for t in 0..w.n_hours {
            let mut lambda = s.mention_rate * (0.3 + 0.7 * w.daily[t % 24]);
            for b in &bursts {
                if t >= b.start {
                    let h = (t - b.start) as f64;
                    if h < 8.0 * b.tau {
                        lambda += b.amp * (-h / b.tau).exp();
                    }
                }
            }
            let mut r = Rng::new(position_key(key, t as u64));
            sku.push(s.id.as_str());
            t_col.push(bucket_micros(t));
            mentions.push(r.poisson(lambda) as f64);
        }
    }
    RecordBatch::try_new(
        schema::social_mentions_schema(),
        vec![utf8(sku), ts(t_col), f64s(mentions)],
    )
    .map_err(df_err)
}

pub fn truth(lake: &Lake) -> MrsResult<RecordBatch> {
    let w = &lake.world;
    let list = |f: &dyn Fn(&crate::plan::TruthRow) -> Vec<String>| -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new());
        for t in &lake.truth {
            for v in f(t) {
                b.values().append_value(v);
            }
            b.append(true);
        }
        Arc::new(b.finish())
    };
    let tr = &lake.truth;
    RecordBatch::try_new(
        schema::truth_schema(),
        vec![
            utf8(tr.iter().map(|t| t.id.as_str())),
            utf8(tr.iter().map(|t| t.cause.as_str())),
            utf8(tr.iter().map(|t| t.cause.default_impact().as_str())),
            list(&|t| {
                t.retailers
                    .iter()
                    .map(|r| w.retailers[*r].to_string())
                    .collect()
            }),
            list(&|t| t.stores.iter().map(|s| w.stores[*s].id.clone()).collect()),
            list(&|t| t.skus.iter().map(|k| w.skus[*k].id.clone()).collect()),
            ts(tr.iter().map(|t| bucket_micros(t.start)).collect()),
            ts(tr.iter().map(|t| bucket_micros(t.end)).collect()),
            f64s(tr.iter().map(|t| t.magnitude).collect()),
            utf8(tr.iter().map(|t| t.direction)),
            opt_utf8(tr.iter().map(|t| Some(t.description.clone())).collect()),
        ],
    )
    .map_err(df_err)
}

/// Sales of store `s` over buckets [t_lo, t_hi), sorted by sku then ts.
pub fn sales(lake: &Lake, s: usize, t_lo: usize, t_hi: usize) -> MrsResult<RecordBatch> {
    let w = &lake.world;
    let store = &w.stores[s];
    let n = w.skus.len() * (t_hi - t_lo);
    let mut sku_col = Vec::with_capacity(n);
    let mut ts_col = Vec::with_capacity(n);
    let mut units = Vec::with_capacity(n);
    let mut revenue = Vec::with_capacity(n);
    for (k, sku) in w.skus.iter().enumerate() {
        let ctx = SeriesCtx::new(lake, s, k);
        for t in t_lo..t_hi {
            let (u, r) = ctx.value(t);
            sku_col.push(sku.id.as_str());
            ts_col.push(bucket_micros(t));
            units.push(u);
            revenue.push(r);
        }
    }
    RecordBatch::try_new(
        schema::sales_schema(),
        vec![
            utf8(std::iter::repeat_n(w.retailers[store.retailer], n)),
            utf8(std::iter::repeat_n(store.id.as_str(), n)),
            utf8(sku_col),
            ts(ts_col),
            f64s(units),
            f64s(revenue),
        ],
    )
    .map_err(df_err)
}
