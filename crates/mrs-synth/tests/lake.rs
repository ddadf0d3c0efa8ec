//! End-to-end tests of the synthetic lake on in-memory and local object stores (tiny preset).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    Array, AsArray, Float64Array, RecordBatch, RecordBatchReader, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::object_store::memory::InMemory;
use datafusion::object_store::path::Path;
use datafusion::object_store::{ObjectStore, ObjectStoreExt};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures::TryStreamExt;
use mrs_core::schema;
use mrs_core::taxonomy::Cause;
use mrs_synth::{Preset, SynthConfig, write_lake};

const DAY: i64 = 86_400_000_000;

async fn list(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<Path> {
    let prefix = Path::from(prefix);
    let mut v: Vec<Path> = store
        .list(Some(&prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .expect("list");
    v.sort();
    v
}

async fn all_bytes(store: &Arc<dyn ObjectStore>) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for p in list(store, "").await {
        let b = store
            .get(&p)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        out.insert(p.to_string(), b.to_vec());
    }
    out
}

async fn read(store: &Arc<dyn ObjectStore>, path: &Path) -> (SchemaRef, Vec<RecordBatch>) {
    let b = store
        .get(path)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    let reader = ParquetRecordBatchReaderBuilder::try_new(b)
        .expect("parquet")
        .build()
        .expect("reader");
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("batches");
    (schema, batches)
}

async fn read_table(store: &Arc<dyn ObjectStore>, prefix: &str) -> (SchemaRef, Vec<RecordBatch>) {
    let files = list(store, prefix).await;
    assert!(!files.is_empty(), "no files under {prefix}");
    let mut schema = None;
    let mut all = Vec::new();
    for f in files {
        let (s, b) = read(store, &f).await;
        if let Some(prev) = &schema {
            assert_eq!(prev, &s);
        }
        schema = Some(s);
        all.extend(b);
    }
    (schema.expect("schema"), all)
}

/// (store, sku, ts) -> (units, revenue) of every sales row.
async fn sales_rows(store: &Arc<dyn ObjectStore>) -> BTreeMap<(String, String, i64), (u64, u64)> {
    let (_, batches) = read_table(store, "lake/input/sales").await;
    let mut out = BTreeMap::new();
    for b in batches {
        let st = b
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("store");
        let sku = b
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("sku");
        let ts = b
            .column(3)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .expect("ts");
        let u = b
            .column(4)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("units");
        let r = b
            .column(5)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("revenue");
        for i in 0..b.num_rows() {
            let key = (
                st.value(i).to_string(),
                sku.value(i).to_string(),
                ts.value(i),
            );
            let prev = out.insert(key, (u.value(i).to_bits(), r.value(i).to_bits()));
            assert!(prev.is_none(), "duplicate sales row");
        }
    }
    out
}

fn mem() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

#[tokio::test]
async fn tiny_is_deterministic_complete_and_canonical() {
    let root = Path::from("lake");
    let cfg = SynthConfig::new(Preset::Tiny, 42);
    let (a, b) = (mem(), mem());
    let t0 = Instant::now();
    let sa = write_lake(a.clone(), &root, &cfg).await.expect("write a");
    eprintln!("tiny generated in {:?}: {sa:?}", t0.elapsed());
    let sb = write_lake(b.clone(), &root, &cfg).await.expect("write b");
    assert_eq!(sa, sb);
    assert_eq!(
        all_bytes(&a).await,
        all_bytes(&b).await,
        "same config, same bytes"
    );

    assert!(
        sa.sales_rows > 50_000 && sa.sales_rows < 100_000,
        "{}",
        sa.sales_rows
    );
    assert_eq!(sa.sales_rows, (sa.stores * sa.skus * 35 * 24) as u64);
    assert_eq!(sa.written_until_micros, sa.end_micros);

    // Canonical schemas.
    for (table, expected) in [
        ("sales", schema::sales_schema()),
        ("stores", schema::stores_schema()),
        ("skus", schema::skus_schema()),
        ("promotions", schema::promotions_schema()),
        ("marketing_spend", schema::marketing_spend_schema()),
        ("social_mentions", schema::social_mentions_schema()),
        ("holidays", schema::holidays_schema()),
    ] {
        let (s, _) = read_table(&a, &format!("lake/input/{table}")).await;
        assert_eq!(s.fields(), expected.fields(), "{table}");
    }
    let (ts, truth) = read_table(&a, "lake/truth/anomalies").await;
    assert_eq!(ts.fields(), schema::truth_schema().fields());

    // Sales rows: count and sort order per file.
    let rows = sales_rows(&a).await;
    assert_eq!(rows.len() as u64, sa.sales_rows);
    for f in list(&a, "lake/input/sales").await {
        let (_, batches) = read(&a, &f).await;
        let mut prev: Option<(String, String, i64)> = None;
        for b in batches {
            let st = b.column(1).as_string::<i32>();
            let sku = b.column(2).as_string::<i32>();
            let t = b
                .column(3)
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .expect("ts");
            for i in 0..b.num_rows() {
                let k = (
                    st.value(i).to_string(),
                    sku.value(i).to_string(),
                    t.value(i),
                );
                if let Some(p) = &prev {
                    assert!(p < &k, "{f} not sorted");
                }
                prev = Some(k);
            }
        }
    }

    // Truth: every cause, exact spellings, windows after the warm-up and inside the data.
    let truth = datafusion::arrow::compute::concat_batches(&ts, &truth).expect("concat");
    assert_eq!(truth.num_rows(), sa.anomalies);
    assert!(sa.anomalies >= 10, "{}", sa.anomalies);
    let causes = truth.column(1).as_string::<i32>();
    let impacts = truth.column(2).as_string::<i32>();
    for c in Cause::ALL {
        let n = (0..truth.num_rows())
            .filter(|i| causes.value(*i) == c.as_str())
            .count();
        assert!(n >= 1, "no {c} in truth");
    }
    for i in 0..truth.num_rows() {
        let c: Cause = causes.value(i).parse().expect("cause");
        assert_eq!(impacts.value(i), c.default_impact().as_str());
    }
    let start = truth
        .column(6)
        .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
    let end = truth
        .column(7)
        .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
    let mag = truth
        .column(8)
        .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    let dir = truth.column(9).as_string::<i32>();
    let stores = truth.column(4).as_list::<i32>();
    for i in 0..truth.num_rows() {
        assert!(start.value(i) >= sa.start_micros + 14 * DAY);
        assert!(end.value(i) <= sa.end_micros);
        assert!(start.value(i) < end.value(i));
        assert!(mag.value(i) > 0.0, "row {i} magnitude");
        assert!(["spike", "drop"].contains(&dir.value(i)));
        assert!(!stores.value(i).is_empty());
        assert!(truth.column(10).as_string::<i32>().value(i).ends_with('.'));
    }

    // Manifest.
    let m = a
        .get(&Path::from("lake/truth/synth.json"))
        .await
        .expect("manifest")
        .bytes()
        .await
        .expect("bytes");
    let m: serde_json::Value = serde_json::from_slice(&m).expect("json");
    assert_eq!(m["preset"], "tiny");
    assert_eq!(m["seed"], 42);
    assert_eq!(m["step_seconds"], 3600);
    assert_eq!(m["start"], "2025-06-02T00:00:00Z");

    // Another seed gives another lake.
    let c = mem();
    write_lake(c.clone(), &root, &SynthConfig::new(Preset::Tiny, 43))
        .await
        .expect("write c");
    assert_ne!(sales_rows(&c).await, rows);
}

#[tokio::test]
async fn until_replay_in_three_steps_equals_one_full_write() {
    let root = Path::from("lake");
    let full = mem();
    let s_full = write_lake(full.clone(), &root, &SynthConfig::new(Preset::Tiny, 7))
        .await
        .expect("full");

    let inc = mem();
    let start = s_full.start_micros;
    // Not bucket-aligned on purpose: buckets with ts < until are written.
    let steps = [start + 20 * DAY + 1, start + 27 * DAY, start + 40 * DAY];
    let mut total = 0;
    let mut files_before = 0;
    for (i, until) in steps.iter().enumerate() {
        let mut cfg = SynthConfig::new(Preset::Tiny, 7);
        cfg.until = Some(*until);
        let s = write_lake(inc.clone(), &root, &cfg).await.expect("step");
        total += s.sales_rows;
        let files = list(&inc, "lake/input/sales").await;
        assert!(files.len() > files_before, "step {i} wrote new sales files");
        files_before = files.len();
        if i == 0 {
            assert_eq!(s.written_until_micros, start + 20 * DAY + 3_600_000_000);
        }
    }
    assert_eq!(total, s_full.sales_rows);
    assert_eq!(sales_rows(&inc).await, sales_rows(&full).await);
    // Same truth and context.
    for p in [
        "lake/truth/anomalies/part-0.parquet",
        "lake/input/social_mentions/part-0.parquet",
        "lake/input/promotions/part-0.parquet",
    ] {
        let p = Path::from(p);
        let a = full.get(&p).await.expect("a").bytes().await.expect("a");
        let b = inc.get(&p).await.expect("b").bytes().await.expect("b");
        assert_eq!(a, b, "{p}");
    }
    // Repeating the last call appends nothing.
    let again = write_lake(inc.clone(), &root, &SynthConfig::new(Preset::Tiny, 7))
        .await
        .expect("again");
    assert_eq!(again.sales_rows, 0);
    // A different seed on the same lake is refused.
    assert!(
        write_lake(inc.clone(), &root, &SynthConfig::new(Preset::Tiny, 8))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn clean_lake_has_empty_truth_and_local_fs_works() {
    let dir = std::env::temp_dir().join(format!("mrs-synth-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let fs: Arc<dyn ObjectStore> = Arc::new(
        datafusion::object_store::local::LocalFileSystem::new_with_prefix(&dir).expect("fs"),
    );
    let mut cfg = SynthConfig::new(Preset::Tiny, 42);
    cfg.inject_anomalies = false;
    cfg.until = Some(1_748_822_400_000_000 + 16 * DAY);
    let s = write_lake(fs.clone(), &Path::from("lake"), &cfg)
        .await
        .expect("write");
    assert_eq!(s.anomalies, 0);
    assert_eq!(s.sales_rows, (s.stores * s.skus * 16 * 24) as u64);
    let (schema_, batches) = read_table(&fs, "lake/truth/anomalies").await;
    assert_eq!(schema_.fields(), schema::truth_schema().fields());
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    // Units are never negative without injected feed errors.
    let (_, sales) = read_table(&fs, "lake/input/sales").await;
    for b in sales {
        let u = b
            .column(4)
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert!(u.iter().all(|v| v.is_some_and(|v| v >= 0.0)));
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
