//! Criterion benches of the MRS model functions through DataFusion, on in-memory synthetic
//! series (deterministic, no I/O): the store-level detector, the generic window score, and
//! attribution. `cargo bench --bench functions`.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

const HOUR: i64 = 3_600_000_000;

/// `stores` x `skus` hourly series over `weeks`, with a daily profile and deterministic noise.
fn sales(stores: usize, skus: usize, weeks: usize) -> RecordBatch {
    let hours = weeks * 7 * 24;
    let n = stores * skus * hours;
    let (mut store, mut sku, mut ts, mut units) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for s in 0..stores {
        for k in 0..skus {
            let level = 0.5 + 10.0 / (1.0 + k as f64);
            for h in 0..hours {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = (state % 1000) as f64 / 1000.0;
                let daily = 1.0 + 0.8 * ((h % 24) as f64 / 24.0 * std::f64::consts::TAU).sin();
                store.push(format!("S{s:03}"));
                sku.push(format!("K{k:03}"));
                ts.push(1_748_822_400_000_000 + h as i64 * HOUR);
                units.push((level * daily * (0.5 + noise)).round());
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("store_id", DataType::Utf8, false),
        Field::new("sku", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("units", DataType::Float64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(store)),
            Arc::new(StringArray::from(sku)),
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(Float64Array::from(units)),
        ],
    )
    .expect("batch")
}

fn context(batch: RecordBatch) -> SessionContext {
    let mut ctx = SessionContext::new();
    mrs_pipeline::register_all_functions(&mut ctx).expect("register");
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("table");
    ctx.register_table("sales", Arc::new(table))
        .expect("register table");
    ctx
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let batch = sales(4, 20, 6);
    let rows = batch.num_rows() as u64;
    let ctx = context(batch);
    let run = |sql: &'static str| {
        let ctx = ctx.clone();
        let runtime = &runtime;
        move || {
            runtime.block_on(async {
                ctx.sql(sql)
                    .await
                    .expect("plan")
                    .collect()
                    .await
                    .expect("run")
            })
        }
    };

    let mut group = c.benchmark_group("functions");
    group.throughput(Throughput::Elements(rows));
    group.sample_size(10);
    let detect = run("SELECT store_id, mrs_detect(sku, ts, units) FROM sales GROUP BY store_id");
    group.bench_function("mrs_detect, 4 stores x 20 SKUs x 6 weeks", |b| {
        b.iter(&detect)
    });
    let score = run(
        "SELECT count(anomaly_score(ts, units) OVER (PARTITION BY store_id, sku ORDER BY ts)) FROM sales",
    );
    group.bench_function("anomaly_score window, same rows", |b| b.iter(&score));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
