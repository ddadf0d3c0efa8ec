//! Criterion benches of every MRS SQL function through DataFusion, on in-memory synthetic
//! inputs (deterministic, no I/O): the detection functions on 4 stores x 20 SKUs x 6 weeks of
//! hourly sales, clustering, cohorts and attribution on 2,000 synthetic reports, and the identity
//! and tier scalars on every sales row. `cargo bench --bench functions`; results are recorded
//! in README.md (Benchmarks). The end-to-end pipeline benchmark is `scripts/bench.sh`.

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
    mrs_detect::register_table_functions(&ctx);
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

    let setup = |sql: &str| {
        runtime.block_on(async {
            ctx.sql(sql)
                .await
                .expect("plan")
                .collect()
                .await
                .expect("run")
        });
    };
    // Scores per series, the input of anomaly_windows.
    setup(
        "CREATE TABLE scored AS SELECT store_id, sku, ts, \
         anomaly_score(ts, units) OVER (PARTITION BY store_id, sku ORDER BY ts) AS score FROM sales",
    );
    // 2,000 reports over 200 stores of 5 retailers and two weeks, in overlapping waves of a few
    // SKUs and categories: the input of mrs_cluster, mrs_cohort and mrs_attribute.
    setup(
        "CREATE TABLE reports AS SELECT \
           'MR-' || lpad(CAST(i AS VARCHAR), 5, '0') AS report_id, \
           'S' || CAST(i % 200 AS VARCHAR) AS store_id, 'R' || CAST(i % 5 AS VARCHAR) AS retailer_id, \
           50.0 + (i % 200) * 0.02 AS lat, -2.0 + (i % 37) * 0.05 AS lon, \
           to_timestamp_seconds(1754524800 + (i % 336) * 3600) AS window_start, \
           to_timestamp_seconds(1754524800 + (i % 336 + 2 + i % 7) * 3600) AS window_last, \
           CASE WHEN i % 9 = 0 THEN 'drop' ELSE 'spike' END AS direction, \
           ['K' || CAST(i % 13 AS VARCHAR), 'K' || CAST(i % 29 AS VARCHAR)] AS top_skus, \
           'C' || CAST(i % 6 AS VARCHAR) AS top_category, \
           CASE WHEN i % 9 = 0 THEN -8.0 ELSE 3.0 + i % 11 END AS magnitude, \
           CASE i % 5 WHEN 0 THEN 'Data Error' WHEN 1 THEN 'Marketing Misattribution' \
             WHEN 2 THEN 'Competitor Stockout' WHEN 3 THEN 'Social/Viral Event' \
             ELSE 'Operational/Store Issue' END AS cause, \
           0.4 + (i % 60) / 100.0 AS confidence, \
           'MC-' || CAST(i % 150 AS VARCHAR) AS cluster_id \
         FROM (SELECT value AS i FROM generate_series(0, 1999))",
    );
    let reports = 2_000u64;

    let mut group = c.benchmark_group("functions");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows));
    let cases: &[(&str, &'static str)] = &[
        (
            "mrs_detect, 4 stores x 20 SKUs x 6 weeks",
            "SELECT store_id, mrs_detect(sku, ts, units) FROM sales GROUP BY store_id",
        ),
        (
            "detect_anomalies('sales'), same rows",
            "SELECT count(*) FROM detect_anomalies('sales')",
        ),
        (
            "anomaly_score window, same rows",
            "SELECT count(v) FROM (SELECT anomaly_score(ts, units) OVER (PARTITION BY store_id, sku ORDER BY ts) AS v FROM sales)",
        ),
        (
            "anomaly_baseline window, same rows",
            "SELECT count(v) FROM (SELECT anomaly_baseline(ts, units) OVER (PARTITION BY store_id, sku ORDER BY ts) AS v FROM sales)",
        ),
        (
            "anomaly_windows grouped by series, same rows",
            "SELECT store_id, sku, anomaly_windows(ts, score) FROM scored GROUP BY store_id, sku",
        ),
        (
            "mrs_report_id, same rows",
            "SELECT count(DISTINCT mrs_report_id(store_id, ts)) FROM sales",
        ),
        (
            "mrs_content_hash of 4 columns, same rows",
            "SELECT count(DISTINCT mrs_content_hash(store_id, sku, ts, units)) FROM sales",
        ),
        (
            "mrs_event_id, same rows",
            "SELECT count(DISTINCT mrs_event_id(sku)) FROM sales",
        ),
        (
            "mrs_confidence_tier, same rows",
            "SELECT count(*) FROM sales WHERE mrs_confidence_tier(units / 40.0) = 'High'",
        ),
    ];
    for (name, sql) in cases {
        let f = run(sql);
        group.bench_function(*name, |b| b.iter(&f));
    }
    group.throughput(Throughput::Elements(reports));
    let cases: &[(&str, &'static str)] = &[
        (
            "mrs_cluster, 2,000 reports",
            "SELECT cardinality(mrs_cluster(report_id, store_id, retailer_id, lat, lon, window_start, \
             window_last, direction, top_skus, top_category, magnitude)) FROM reports",
        ),
        (
            "mrs_cohort, 2,000 reports",
            "SELECT cardinality(mrs_cohort(report_id, cluster_id, window_start, window_last, cause, \
             confidence, store_id, retailer_id, top_skus, CAST(NULL AS VARCHAR))) FROM reports",
        ),
        (
            "mrs_attribute, 2,000 reports",
            "SELECT count(a['cause']) FROM (SELECT mrs_attribute(named_struct('direction', direction, \
             'severity', 0.8, 'duration_buckets', 4.0, 'magnitude', magnitude, 'relative_change', 1.5, \
             'affected_skus', 2, 'total_skus', 40, 'top_sku_share', 0.6, 'top_sku', top_skus[1], \
             'top_category', top_category, 'store_id', store_id, 'retailer_id', retailer_id, \
             'promo_overlap', 0.0, 'co_sku_stores', 3, 'co_sku_retailers', 2)) AS a FROM reports)",
        ),
    ];
    for (name, sql) in cases {
        let f = run(sql);
        group.bench_function(*name, |b| b.iter(&f));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
