//! Property tests (proptest) for every MRS function and the numeric kernels behind them:
//! arbitrary Arrow inputs with NULLs, NaN, infinities, empty input, huge values, unsorted and
//! duplicate timestamps. Each property asserts no panic, a result or a clean `DataFusionError`,
//! and the function's invariants (scores and severities in [0, 1], finite baselines, ids stable,
//! the same answer whatever the row order and partitioning where the function promises it).
//!
//! Each check prints how many cases it ran (`cargo test --test properties -- --nocapture`).
//! `PROPTEST_CASES` scales every check (256 = the counts below), `PROPTEST_RNG_SEED` changes
//! the fixed seed.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, RecordBatch,
    StringArray, StructArray, TimestampMicrosecondArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Float64Type, Schema, SchemaRef};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use mrs_cluster::cluster::Report as ClusterReport;
use mrs_cluster::cohort::CohortInput;
use mrs_detect::model::store::{DetectConfig, detect_store};
use mrs_detect::model::windows::{Point, build_windows};
use mrs_detect::model::{GridError, robust, score_rows};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// 2025-06-02T00:00:00Z (a Monday).
const T0: i64 = 1_748_822_400_000_000;
const HOUR: i64 = 3_600_000_000;

/// Runs `cases` cases of a property (scaled by `PROPTEST_CASES` / 256 when set) and prints
/// how many ran.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(cases, |c| (cases * c / 256).max(1));
    // A fixed seed keeps CI deterministic; PROPTEST_RNG_SEED explores other cases.
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(20_261_127);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..Config::default()
    });
    let result = runner.run(&strategy, test);
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    println!("property {name}: {cases} cases passed");
}

// ---------------------------------------------------------------------------------------------
// Generators

/// A float that is usually ordinary and sometimes hostile.
fn value() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        12 => (0.0f64..200.0).prop_map(Some),
        1 => Just(None),
        1 => Just(Some(f64::NAN)),
        1 => prop::sample::select(vec![
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            -1e300,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            -5.0,
            0.0,
            -0.0,
            1e15,
        ])
        .prop_map(Some),
    ]
}

/// A corruption of one row of a generated series.
#[derive(Debug, Clone, Copy)]
enum Dirt {
    Value(Option<f64>),
    NullTs,
    OffGrid(i64),
    Duplicate,
    FarAway,
}

fn dirt() -> impl Strategy<Value = Dirt> {
    prop_oneof![
        4 => value().prop_map(Dirt::Value),
        1 => Just(Dirt::NullTs),
        1 => (1i64..HOUR).prop_map(Dirt::OffGrid),
        2 => Just(Dirt::Duplicate),
        1 => Just(Dirt::FarAway),
    ]
}

/// One sales-like row `(store, sku, ts, units)`.
type SalesRow = (Option<String>, Option<String>, Option<i64>, Option<f64>);

/// Sales-like rows `(store, sku, ts, units)`: a daily rhythm plus noise over `hours` hourly
/// buckets per series, then corrupted, duplicated and shuffled.
#[derive(Debug, Clone)]
struct Series {
    rows: Vec<SalesRow>,
}

fn series(max_hours: usize) -> impl Strategy<Value = Series> {
    (
        1usize..=2,
        1usize..=3,
        0usize..=max_hours,
        0.0f64..60.0,
        any::<u64>(),
        prop::collection::vec((any::<prop::sample::Index>(), dirt()), 0..24),
        any::<u64>(),
        prop::option::weighted(0.2, 0usize..48),
    )
        .prop_map(
            |(stores, skus, hours, level, noise_seed, dirts, shuffle_seed, spike_at)| {
                let mut rng = noise_seed | 1;
                let mut next = move || {
                    // xorshift: cheap, deterministic noise from the case's seed
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    (rng >> 11) as f64 / (1u64 << 53) as f64
                };
                let mut rows = Vec::new();
                for st in 0..stores {
                    for sk in 0..skus {
                        for h in 0..hours {
                            let day = (2.0 * std::f64::consts::PI * (h % 24) as f64 / 24.0).sin();
                            let mut u = (level * (1.0 + 0.5 * day) + 4.0 * next()).round();
                            if spike_at.is_some_and(|s| h + 48 >= hours && h + 48 - hours == s) {
                                u += 40.0 * (level + 5.0);
                            }
                            rows.push((
                                Some(format!("S{st}")),
                                Some(format!("K{sk}")),
                                Some(T0 + h as i64 * HOUR),
                                Some(u),
                            ));
                        }
                    }
                }
                if !rows.is_empty() {
                    for (at, d) in dirts {
                        let i = at.index(rows.len());
                        match d {
                            Dirt::Value(v) => rows[i].3 = v,
                            Dirt::NullTs => rows[i].2 = None,
                            Dirt::OffGrid(m) => rows[i].2 = rows[i].2.map(|t| t + m),
                            Dirt::Duplicate => rows.push(rows[i].clone()),
                            Dirt::FarAway => rows[i].2 = Some(T0 + 40 * 365 * 24 * HOUR),
                        }
                    }
                }
                shuffle(&mut rows, shuffle_seed);
                Series { rows }
            },
        )
}

fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed | 1;
    for i in (1..v.len()).rev() {
        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let j = (s >> 33) as usize % (i + 1);
        v.swap(i, j);
    }
}

fn ts_type() -> DataType {
    DataType::Timestamp(
        datafusion::arrow::datatypes::TimeUnit::Microsecond,
        Some("UTC".into()),
    )
}

fn series_batch(s: &Series) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("store_id", DataType::Utf8, true),
        Field::new("sku", DataType::Utf8, true),
        Field::new("ts", ts_type(), true),
        Field::new("units", DataType::Float64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(
                s.rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                s.rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(s.rows.iter().map(|r| r.2).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(
                s.rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("batch")
}

// ---------------------------------------------------------------------------------------------
// SQL harness

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A context with every MRS function and `t` holding `batch` split into `parts` partitions.
fn context(batch: &RecordBatch, parts: usize) -> SessionContext {
    let config = mrs_pipeline::session::session_config().with_target_partitions(parts.max(1));
    let ctx = mrs_pipeline::session::new_context(config).expect("context");
    let n = batch.num_rows();
    let per = n.div_ceil(parts.max(1)).max(1);
    let mut partitions: Vec<Vec<RecordBatch>> = (0..n)
        .step_by(per)
        .map(|i| vec![batch.slice(i, per.min(n - i))])
        .collect();
    if partitions.is_empty() {
        partitions.push(vec![]);
    }
    let table = MemTable::try_new(batch.schema(), partitions).expect("table");
    ctx.register_table("t", Arc::new(table)).expect("register");
    ctx
}

/// Runs a query: `Ok(batches)`, or the error if it is a clean one. A panic in a DataFusion
/// task resumes here and fails the test; a panic turned into an error fails it too.
fn sql(
    ctx: &SessionContext,
    query: &str,
) -> Result<Result<Vec<RecordBatch>, DataFusionError>, TestCaseError> {
    let rt = runtime();
    let out = rt.block_on(async { ctx.sql(query).await?.collect().await });
    if let Err(e) = &out {
        let msg = e.to_string();
        prop_assert!(!msg.contains("panic"), "panic turned into an error: {msg}");
        prop_assert!(
            !matches!(e.find_root(), DataFusionError::Internal(_)),
            "internal error (a bug) on {query}: {msg}"
        );
    }
    Ok(out)
}

fn text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches)
        .map(|d| d.to_string())
        .unwrap_or_default()
}

fn floats(batches: &[RecordBatch], col: usize) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for b in batches {
        let c = datafusion::arrow::compute::cast(b.column(col), &DataType::Float64).expect("cast");
        let c = c.as_primitive::<Float64Type>();
        out.extend((0..c.len()).map(|i| (!c.is_null(i)).then(|| c.value(i))));
    }
    out
}

fn in_unit(v: Option<f64>) -> bool {
    v.is_none_or(|x| (0.0..=1.0).contains(&x))
}

// ---------------------------------------------------------------------------------------------
// Detection functions

#[test]
fn mrs_detect_is_total_bounded_and_partition_independent() {
    check(
        "mrs_detect",
        96,
        (series(420), any::<u64>()),
        |(s, seed)| {
            let batch = series_batch(&s);
            let q = "SELECT store_id, r['severity'], CAST(r['first_detected_from'] AS BIGINT), \
                 CAST(r['last_anomalous_ts'] AS BIGINT), CAST(r['window_end'] AS BIGINT), \
                 r['baseline_units'], r['actual_units'], r['dq_ratio'] \
                 FROM (SELECT store_id, unnest(mrs_detect(sku, ts, units)) AS r FROM t GROUP BY store_id) \
                 ORDER BY 1, 3";
            let one = sql(&context(&batch, 1), q)?;
            let Ok(one) = one else { return Ok(()) };
            for (sev, first, last, end, base, actual) in itertools(&one) {
                prop_assert!(in_unit(sev), "severity {sev:?}");
                prop_assert!(first <= last);
                prop_assert!(end.is_none_or(|e| e > last));
                prop_assert!(base.is_some_and(f64::is_finite), "baseline {base:?}");
                prop_assert!(actual.is_some_and(f64::is_finite) || actual.is_none());
            }
            // Same rows, another order, three partitions: the same reports.
            let mut shuffled = s.clone();
            shuffle(&mut shuffled.rows, seed);
            let three = sql(&context(&series_batch(&shuffled), 3), q)?;
            prop_assert_eq!(
                Ok(text(&one)),
                three.map(|b| text(&b)).map_err(|e| e.to_string())
            );
            Ok(())
        },
    );
}

/// (severity, first, last, end, baseline, actual) per report row of the query above.
#[allow(clippy::type_complexity)]
fn itertools(
    batches: &[RecordBatch],
) -> Vec<(Option<f64>, i64, i64, Option<i64>, Option<f64>, Option<f64>)> {
    let sev = floats(batches, 1);
    let base = floats(batches, 5);
    let actual = floats(batches, 6);
    let ints = |col: usize| -> Vec<Option<i64>> {
        batches
            .iter()
            .flat_map(|b| {
                let c = b
                    .column(col)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                (0..c.len())
                    .map(|i| (!c.is_null(i)).then(|| c.value(i)))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let (first, last, end) = (ints(2), ints(3), ints(4));
    (0..sev.len())
        .map(|i| {
            (
                sev[i],
                first[i].unwrap_or(i64::MIN),
                last[i].unwrap_or(i64::MAX),
                end[i],
                base[i],
                actual[i],
            )
        })
        .collect()
}

#[test]
fn detect_anomalies_is_total_and_bounded() {
    check("detect_anomalies", 48, series(300), |s| {
        let ctx = context(&series_batch(&s), 2);
        if let Ok(b) = sql(&ctx, "SELECT severity FROM detect_anomalies('t')")? {
            prop_assert!(floats(&b, 0).into_iter().all(in_unit));
        }
        Ok(())
    });
}

fn season() -> impl Strategy<Value = Option<i64>> {
    prop::option::of(prop::sample::select(vec![
        1i64,
        2,
        24,
        168,
        0,
        -3,
        100_000,
        i64::MAX,
    ]))
}

#[test]
fn anomaly_baseline_and_score_are_total_bounded_and_order_independent() {
    check(
        "anomaly_baseline/anomaly_score",
        96,
        (series(400), season(), any::<u64>()),
        |(s, season, seed)| {
            let args = season.map_or(String::new(), |k| format!(", {k}"));
            let q = format!(
                "SELECT store_id, sku, ts, units, anomaly_baseline(ts, units{args}) OVER w AS b, \
                 anomaly_score(ts, units{args}) OVER w AS s FROM t \
                 WINDOW w AS (PARTITION BY store_id, sku ORDER BY ts) \
                 ORDER BY store_id, sku, ts, units, b, s"
            );
            let one = sql(&context(&series_batch(&s), 1), &q)?;
            let Ok(one) = one else { return Ok(()) };
            prop_assert!(
                floats(&one, 4)
                    .into_iter()
                    .all(|b| b.is_none_or(f64::is_finite))
            );
            prop_assert!(floats(&one, 5).into_iter().all(in_unit));
            let mut shuffled = s.clone();
            shuffle(&mut shuffled.rows, seed);
            let three = sql(&context(&series_batch(&shuffled), 3), &q)?;
            prop_assert_eq!(
                Ok(text(&one)),
                three.map(|b| text(&b)).map_err(|e| e.to_string())
            );
            Ok(())
        },
    );
}

#[test]
fn anomaly_windows_is_total_and_partition_independent() {
    let threshold = prop::option::of(prop::sample::select(vec![
        "0.5", "0.0", "1.0", "-1.0", "2.0", "'NaN'", "NULL",
    ]));
    let end_after = prop::sample::select(vec!["3", "1", "0", "-2", "100000"]);
    check(
        "anomaly_windows",
        128,
        (series(200), threshold, end_after, any::<u64>()),
        |(s, thr, end, seed)| {
            // The units stand in for arbitrary scores (NaN, negative, huge, above 1).
            let args = match thr {
                Some(t) => format!(", CAST({t} AS DOUBLE), {end}"),
                None => String::new(),
            };
            let q = format!(
                "SELECT sku, anomaly_windows(ts, units / 100.0{args}) FROM t GROUP BY sku ORDER BY sku"
            );
            let one = sql(&context(&series_batch(&s), 1), &q)?;
            let mut shuffled = s.clone();
            shuffle(&mut shuffled.rows, seed);
            let three = sql(&context(&series_batch(&shuffled), 3), &q)?;
            if let Ok(one) = one {
                prop_assert_eq!(
                    Ok(text(&one)),
                    three.map(|b| text(&b)).map_err(|e| e.to_string())
                );
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Identity functions

fn text_value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => "[A-Za-z0-9_|:-]{0,12}".prop_map(Some),
        1 => Just(None),
        1 => any::<String>().prop_map(Some),
    ]
}

fn micros_value() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        4 => (T0 - 1000 * HOUR..T0 + 1000 * HOUR).prop_map(Some),
        1 => Just(None),
        1 => any::<i64>().prop_map(Some),
        1 => prop::sample::select(vec![i64::MIN, i64::MAX, 0, -1]).prop_map(Some),
    ]
}

#[test]
fn identity_functions_are_total_and_stable() {
    let row = (
        text_value(),
        micros_value(),
        value(),
        any::<Option<bool>>(),
        any::<Option<i64>>(),
    );
    check(
        "mrs_report_id/mrs_event_id/mrs_content_hash",
        128,
        prop::collection::vec(row, 0..40),
        |rows| {
            let schema = Arc::new(Schema::new(vec![
                Field::new("s", DataType::Utf8, true),
                Field::new("ts", ts_type(), true),
                Field::new("x", DataType::Float64, true),
                Field::new("b", DataType::Boolean, true),
                Field::new("i", DataType::Int64, true),
            ]));
            let batch = RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(StringArray::from(
                        rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
                    )),
                    Arc::new(
                        TimestampMicrosecondArray::from(
                            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                        )
                        .with_timezone("UTC"),
                    ),
                    Arc::new(Float64Array::from(
                        rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                    )),
                    Arc::new(BooleanArray::from(
                        rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                    )),
                    Arc::new(Int64Array::from(
                        rows.iter().map(|r| r.4).collect::<Vec<_>>(),
                    )),
                ],
            )
            .expect("batch");
            let q = "SELECT s, CAST(ts AS BIGINT), mrs_report_id(s, ts), mrs_event_id(s), \
                     mrs_content_hash(s, ts, x, b, i) AS h1, mrs_content_hash(s, ts, x, b, i) AS h2 FROM t";
            let out = sql(&context(&batch, 2), q)?;
            let out =
                out.map_err(|e| TestCaseError::fail(format!("identity functions failed: {e}")))?;
            for b in &out {
                let ids = b.column(2).as_string::<i32>();
                let events = b.column(3).as_string::<i32>();
                let stores = b.column(0).as_string::<i32>();
                let ts = b
                    .column(1)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                for i in 0..b.num_rows() {
                    if !ids.is_null(i) {
                        // The SQL id is the library's, for every input.
                        prop_assert_eq!(
                            ids.value(i),
                            mrs_core::identity::report_id(stores.value(i), ts.value(i))
                        );
                    }
                    if !events.is_null(i) {
                        prop_assert!(
                            events.value(i).starts_with("ME-") && events.value(i).len() == 35
                        );
                    }
                }
                // Hashing is deterministic.
                prop_assert_eq!(b.column(4).as_ref(), b.column(5).as_ref());
            }
            Ok(())
        },
    );
}

#[test]
fn confidence_tier_is_total_and_monotone() {
    let tiers = prop::option::of(prop::sample::select(vec![
        ("0.5", "0.8"),
        ("0.9", "0.1"),
        ("'NaN'", "0.8"),
        ("-1.0", "2.0"),
        ("NULL", "0.8"),
    ]));
    check(
        "mrs_confidence_tier",
        128,
        (prop::collection::vec(value(), 0..40), tiers),
        |(xs, tiers)| {
            let xs: Vec<Option<f64>> = xs.into_iter().map(|v| v.map(|x| x / 200.0)).collect();
            let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
            let batch = RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(xs))])
                .expect("batch");
            let args = tiers.map_or(String::new(), |(m, h)| {
                format!(", CAST({m} AS DOUBLE), CAST({h} AS DOUBLE)")
            });
            let q = format!("SELECT x, mrs_confidence_tier(x{args}) FROM t ORDER BY x");
            if let Ok(out) = sql(&context(&batch, 1), &q)? {
                let rank = |t: &str| ["Low", "Medium", "High"].iter().position(|x| *x == t);
                let mut last = 0;
                for b in &out {
                    let tier = b.column(1).as_string::<i32>();
                    let x = b.column(0).as_primitive::<Float64Type>();
                    for i in 0..b.num_rows() {
                        if tier.is_null(i) {
                            continue;
                        }
                        let r = rank(tier.value(i));
                        prop_assert!(r.is_some(), "tier {}", tier.value(i));
                        // Ordered by x, finite x: tiers never go down.
                        if !x.is_null(i) && x.value(i).is_finite() {
                            let r = r.unwrap_or(0);
                            prop_assert!(r >= last, "tiers not monotone");
                            last = r;
                        }
                    }
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Clustering and cohorts

#[derive(Debug, Clone)]
struct ReportRow {
    id: Option<String>,
    store: Option<String>,
    retailer: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    start: Option<i64>,
    last: Option<i64>,
    direction: Option<String>,
    skus: Option<Vec<String>>,
    category: Option<String>,
    magnitude: Option<f64>,
    cause: Option<String>,
    confidence: Option<f64>,
    previous: Option<String>,
}

fn report_row() -> impl Strategy<Value = ReportRow> {
    let small = |prefix: &'static str, n: u32| {
        prop::option::weighted(0.9, (0..n).prop_map(move |i| format!("{prefix}{i}")))
    };
    let coord = prop_oneof![
        6 => (50.0f64..56.0).prop_map(Some),
        1 => Just(None),
        1 => prop::sample::select(vec![f64::NAN, f64::INFINITY, 1000.0, -91.0, 1e300]).prop_map(Some),
    ];
    let time = prop_oneof![
        6 => (0i64..96).prop_map(|h| Some(T0 + h * HOUR)),
        1 => Just(None),
        1 => any::<i64>().prop_map(Some),
    ];
    let direction = prop::option::weighted(
        0.9,
        prop::sample::select(vec!["spike", "drop", "sideways", ""]).prop_map(String::from),
    );
    let skus = prop::option::weighted(
        0.9,
        prop::collection::vec((0..6u32).prop_map(|i| format!("K{i}")), 0..4),
    );
    let cause = prop::option::weighted(
        0.9,
        prop::sample::select(
            mrs_core::taxonomy::Cause::ALL
                .iter()
                .map(|c| c.as_str().to_string())
                .chain(["Aliens".to_string()])
                .collect::<Vec<_>>(),
        ),
    );
    (
        (
            small("MR-", 30),
            small("S", 8),
            small("R", 3),
            coord.clone(),
            coord,
        ),
        (time.clone(), time, direction, skus, small("C", 3)),
        (value(), cause, value(), small("ME-", 4)),
    )
        .prop_map(
            |(
                (id, store, retailer, lat, lon),
                (start, last, direction, skus, category),
                (magnitude, cause, confidence, previous),
            )| ReportRow {
                id,
                store,
                retailer,
                lat,
                lon,
                start,
                last,
                direction,
                skus,
                category,
                magnitude: magnitude.map(|m| m - 50.0),
                cause,
                confidence: confidence.map(|c| c / 150.0),
                previous,
            },
        )
}

fn string_list(rows: &[ReportRow]) -> ArrayRef {
    let mut offsets = vec![0i32];
    let mut values = Vec::new();
    let mut valid = Vec::new();
    for r in rows {
        if let Some(s) = &r.skus {
            values.extend(s.iter().cloned());
        }
        valid.push(r.skus.is_some());
        offsets.push(values.len() as i32);
    }
    Arc::new(ListArray::new(
        Arc::new(Field::new("item", DataType::Utf8, true)),
        OffsetBuffer::new(offsets.into()),
        Arc::new(StringArray::from(values)),
        Some(valid.into()),
    ))
}

fn reports_batch(rows: &[ReportRow]) -> RecordBatch {
    let s = |f: &dyn Fn(&ReportRow) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let f = |g: &dyn Fn(&ReportRow) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from(rows.iter().map(g).collect::<Vec<_>>()))
    };
    let t = |g: &dyn Fn(&ReportRow) -> Option<i64>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(rows.iter().map(g).collect::<Vec<_>>())
                .with_timezone("UTC"),
        )
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("report_id", s(&|r| r.id.clone())),
        ("store_id", s(&|r| r.store.clone())),
        ("retailer_id", s(&|r| r.retailer.clone())),
        ("lat", f(&|r| r.lat)),
        ("lon", f(&|r| r.lon)),
        ("window_start", t(&|r| r.start)),
        ("window_last", t(&|r| r.last)),
        ("direction", s(&|r| r.direction.clone())),
        ("top_skus", string_list(rows)),
        ("top_category", s(&|r| r.category.clone())),
        ("magnitude", f(&|r| r.magnitude)),
        ("cause", s(&|r| r.cause.clone())),
        ("confidence", f(&|r| r.confidence)),
        ("previous_group_id", s(&|r| r.previous.clone())),
    ];
    let schema: SchemaRef = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect()).expect("batch")
}

#[test]
fn mrs_cluster_is_total_bounded_and_order_independent() {
    check(
        "mrs_cluster",
        128,
        (prop::collection::vec(report_row(), 0..40), any::<u64>()),
        |(rows, seed)| {
            let q = "SELECT c['report_id'], c['cluster_id'], c['cluster_size'], c['core_distance'], \
                     c['spread_km'], c['is_core'], c['co_sku_stores'], c['co_retailer_reports'] \
                     FROM (SELECT unnest(mrs_cluster(report_id, store_id, retailer_id, lat, lon, \
                     window_start, window_last, direction, top_skus, top_category, magnitude)) AS c FROM t) \
                     ORDER BY 1";
            let one = sql(&context(&reports_batch(&rows), 1), q)?;
            let Ok(one) = one else { return Ok(()) };
            prop_assert!(
                floats(&one, 2)
                    .into_iter()
                    .all(|n| n.is_some_and(|n| n >= 1.0))
            );
            prop_assert!(
                floats(&one, 3)
                    .into_iter()
                    .all(|d| d.is_none_or(f64::is_finite))
            );
            prop_assert!(
                floats(&one, 4)
                    .into_iter()
                    .all(|d| d.is_some_and(|d| d.is_finite() && d >= 0.0))
            );
            let ids: std::collections::BTreeSet<&String> =
                rows.iter().filter_map(|r| r.id.as_ref()).collect();
            prop_assert_eq!(one.iter().map(|b| b.num_rows()).sum::<usize>(), ids.len());
            let mut shuffled = rows.clone();
            shuffle(&mut shuffled, seed);
            let three = sql(&context(&reports_batch(&shuffled), 3), q)?;
            prop_assert_eq!(
                Ok(text(&one)),
                three.map(|b| text(&b)).map_err(|e| e.to_string())
            );
            Ok(())
        },
    );
}

#[test]
fn mrs_cohort_is_total_bounded_and_order_independent() {
    check(
        "mrs_cohort",
        128,
        (prop::collection::vec(report_row(), 0..40), any::<u64>()),
        |(rows, seed)| {
            let q = "SELECT c['report_id'], c['report_group_id'], c['group_size'], \
                     c['group_confidence'], c['founding_report_id'], c['merged_from'] \
                     FROM (SELECT unnest(mrs_cohort(report_id, store_id, window_start, window_last, cause, \
                     confidence, store_id, retailer_id, top_skus, previous_group_id)) AS c FROM t) \
                     ORDER BY 1";
            let one = sql(&context(&reports_batch(&rows), 1), q)?;
            let Ok(one) = one else { return Ok(()) };
            prop_assert!(
                floats(&one, 2)
                    .into_iter()
                    .all(|n| n.is_some_and(|n| n >= 1.0))
            );
            prop_assert!(
                floats(&one, 3)
                    .into_iter()
                    .all(|c| c.is_some_and(|c| (0.0..=1.0).contains(&c)))
            );
            for b in &one {
                let group = b.column(1).as_string::<i32>();
                let founder = b.column(4).as_string::<i32>();
                for i in 0..b.num_rows() {
                    // The event id is the founding report's, or an id the event already had.
                    let id = group.value(i).to_string();
                    prop_assert!(
                        id == mrs_core::identity::event_id(founder.value(i))
                            || rows
                                .iter()
                                .any(|r| r.previous.as_deref() == Some(id.as_str())),
                        "group id {id}"
                    );
                }
            }
            let mut shuffled = rows.clone();
            shuffle(&mut shuffled, seed);
            let three = sql(&context(&reports_batch(&shuffled), 3), q)?;
            prop_assert_eq!(
                Ok(text(&one)),
                three.map(|b| text(&b)).map_err(|e| e.to_string())
            );
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Attribution

fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}

/// An array of `len` arbitrary values of `data_type` (the canonical feature struct's field
/// types: Utf8, Float64, and the profile list).
fn arbitrary_array(data_type: &DataType, len: usize, seed: &mut u64) -> ArrayRef {
    match data_type {
        DataType::Utf8 => {
            let pool = [
                None,
                Some("spike"),
                Some("drop"),
                Some(""),
                Some("S1"),
                Some("Acme"),
                Some("ünïcödé"),
            ];
            Arc::new(StringArray::from(
                (0..len)
                    .map(|_| pool[next(seed) as usize % pool.len()])
                    .collect::<Vec<_>>(),
            ))
        }
        DataType::Float64 => {
            let pool = [
                None,
                Some(0.0),
                Some(0.5),
                Some(1.0),
                Some(3.0),
                Some(-2.0),
                Some(250.0),
                Some(f64::NAN),
                Some(f64::INFINITY),
                Some(f64::NEG_INFINITY),
                Some(1e300),
            ];
            Arc::new(Float64Array::from(
                (0..len)
                    .map(|_| pool[next(seed) as usize % pool.len()])
                    .collect::<Vec<_>>(),
            ))
        }
        DataType::Timestamp(_, _) => Arc::new(
            TimestampMicrosecondArray::from(
                (0..len)
                    .map(|_| match next(seed) % 8 {
                        0 => None,
                        1 => Some(i64::MAX),
                        k => Some(T0 + (k as i64 * 5 + (next(seed) % 3) as i64) * HOUR),
                    })
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        DataType::List(item) => {
            let mut offsets = vec![0i32];
            let mut total = 0usize;
            let mut valid = Vec::new();
            for _ in 0..len {
                let n = (next(seed) % 30) as usize;
                total += n;
                offsets.push(total as i32);
                valid.push(!next(seed).is_multiple_of(10));
            }
            let values = arbitrary_array(item.data_type(), total, seed);
            Arc::new(ListArray::new(
                Arc::clone(item),
                OffsetBuffer::new(offsets.into()),
                values,
                Some(valid.into()),
            ))
        }
        DataType::Struct(fields) => {
            let columns: Vec<ArrayRef> = fields
                .iter()
                .map(|f| arbitrary_array(f.data_type(), len, seed))
                .collect();
            let valid: Vec<bool> = (0..len).map(|_| !next(seed).is_multiple_of(12)).collect();
            Arc::new(StructArray::new(
                fields.clone(),
                columns,
                Some(valid.into()),
            ))
        }
        other => datafusion::arrow::array::new_null_array(other, len),
    }
}

#[test]
fn mrs_attribute_is_total_and_its_confidences_are_ranked_probabilities() {
    check(
        "mrs_attribute",
        128,
        (0usize..24, any::<u64>()),
        |(len, seed)| {
            let mut seed = seed;
            let features = arbitrary_array(
                &mrs_attribute::attribute::canonical_features_type(),
                len,
                &mut seed,
            );
            let fields: Fields = vec![Field::new("f", features.data_type().clone(), true)].into();
            let batch =
                RecordBatch::try_new(Arc::new(Schema::new(fields)), vec![features]).expect("batch");
            let q = "SELECT a['cause'], a['confidence'], a['confidence_2'], a['confidence_3'], a['confidence_tier'] \
                 FROM (SELECT mrs_attribute(f) AS a FROM t)";
            let out = sql(&context(&batch, 2), q)?;
            let Ok(out) = out else { return Ok(()) };
            let causes: Vec<&str> = mrs_core::taxonomy::Cause::ALL
                .iter()
                .map(|c| c.as_str())
                .collect();
            let (c1, c2, c3) = (floats(&out, 1), floats(&out, 2), floats(&out, 3));
            for i in 0..c1.len() {
                let Some(p1) = c1[i] else { continue };
                prop_assert!((0.0..=1.0).contains(&p1), "confidence {p1}");
                let p2 = c2[i].unwrap_or(0.0);
                let p3 = c3[i].unwrap_or(0.0);
                prop_assert!(p1 >= p2 && p2 >= p3, "{p1} {p2} {p3}");
                prop_assert!(p1 + p2 + p3 <= 1.0 + 1e-9);
            }
            for b in &out {
                let cause = b.column(0).as_string::<i32>();
                for i in 0..b.num_rows() {
                    prop_assert!(cause.is_null(i) || causes.contains(&cause.value(i)));
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Numeric kernels

#[test]
fn score_rows_is_total_bounded_and_order_independent() {
    let rows = prop::collection::vec((micros_value(), value()), 0..600);
    let season = prop::option::of(prop::sample::select(vec![1usize, 2, 24, 168, 1000]));
    check(
        "kernel score_rows",
        256,
        (rows, season, any::<u64>()),
        |(rows, season, seed)| {
            // Mostly a regular hourly series: snap most timestamps onto the grid near T0.
            let rows: Vec<(Option<i64>, Option<f64>)> = rows
                .into_iter()
                .enumerate()
                .map(|(i, (t, v))| {
                    (
                        t.map(|t| {
                            if i % 7 == 0 {
                                t
                            } else {
                                T0 + (t.rem_euclid(500)) * HOUR
                            }
                        }),
                        v,
                    )
                })
                .collect();
            let ts: Vec<Option<i64>> = rows.iter().map(|r| r.0).collect();
            let vs: Vec<Option<f64>> = rows.iter().map(|r| r.1).collect();
            let Ok(out) = score_rows(&ts, &vs, season, 3.5) else {
                return Ok(()); // TooManyBuckets: a clean error
            };
            prop_assert_eq!(out.score.len(), rows.len());
            prop_assert!(out.score.iter().all(|s| in_unit(*s)));
            prop_assert!(out.baseline.iter().all(|b| b.is_none_or(f64::is_finite)));
            let mut order: Vec<usize> = (0..rows.len()).collect();
            shuffle(&mut order, seed);
            let ts2: Vec<Option<i64>> = order.iter().map(|i| ts[*i]).collect();
            let vs2: Vec<Option<f64>> = order.iter().map(|i| vs[*i]).collect();
            let out2 = score_rows(&ts2, &vs2, season, 3.5)
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            for (k, i) in order.iter().enumerate() {
                prop_assert_eq!(
                    out2.score[k].map(f64::to_bits),
                    out.score[*i].map(f64::to_bits)
                );
                prop_assert_eq!(
                    out2.baseline[k].map(f64::to_bits),
                    out.baseline[*i].map(f64::to_bits)
                );
            }
            Ok(())
        },
    );
}

#[test]
fn detect_store_is_total_bounded_and_order_independent() {
    use mrs_detect::model::store::detect_store_resumable;
    check(
        "kernel detect_store",
        128,
        (series(420), any::<u64>()),
        |(s, seed)| {
            // One store's finite rows, as the aggregate hands them over (grouped by SKU).
            let mut rows: Vec<(u32, i64, f64)> = s
                .rows
                .iter()
                .filter(|r| r.0.as_deref() == Some("S0"))
                .filter_map(|r| {
                    let sku =
                        r.1.as_deref()?
                            .trim_start_matches('K')
                            .parse::<u32>()
                            .ok()?;
                    // The kernel's precondition, as the aggregate filters rows.
                    Some((sku, r.2?, r.3.filter(|u| mrs_detect::model::usable(*u))?))
                })
                .collect();
            rows.sort_by_key(|r| r.0);
            let names = ["K0", "K1", "K2"];
            let cfg = DetectConfig::default();
            let reports = match detect_store(&rows, &names, &cfg) {
                Ok(r) => r,
                Err(GridError::TooManyBuckets(_)) => return Ok(()),
                Err(e) => return Err(TestCaseError::fail(format!("{e:?}"))),
            };
            // Resumed from a checkpoint taken at any cut: the full run's later reports.
            if let Some(&(_, last_ts, _)) = rows.iter().max_by_key(|r| r.1) {
                let first_ts = rows.iter().map(|r| r.1).min().unwrap_or(last_ts);
                let cut = first_ts + (seed % 1000) as i64 * (last_ts - first_ts + 1) / 1000;
                let before: Vec<_> = rows.iter().copied().filter(|r| r.1 < cut).collect();
                // The checkpoint freezes the store's grid: compare where the later rows keep it
                // (the pipeline quarantines rows off the lake's grid).
                let grid = |rs: &[(u32, i64, f64)]| {
                    let mut u: Vec<i64> = rs.iter().map(|r| r.1).collect();
                    u.sort_unstable();
                    u.dedup();
                    (u.first().copied(), mrs_detect::model::grid::infer_step(&u))
                };
                let same_grid = grid(&before) == grid(&rows)
                    && grid(&rows)
                        .1
                        .is_some_and(|step| rows.iter().all(|r| (r.1 - first_ts) % step == 0));
                if let (true, Ok((_, Some(cp)))) = (
                    same_grid,
                    detect_store_resumable(&before, &names, &cfg, None, true),
                ) {
                    let from = cp.ts_of(cp.first_bucket);
                    let later: Vec<_> = rows.iter().copied().filter(|r| r.1 >= from).collect();
                    let (resumed, _) =
                        detect_store_resumable(&later, &names, &cfg, Some(&cp), true)
                            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                    let resume_ts = cp.ts_of(cp.resume_bucket);
                    let plain = |r: &mrs_detect::model::store::Report| {
                        format!(
                            "{:?}",
                            mrs_detect::model::store::Report {
                                as_of: 0,
                                total_skus: 0,
                                ..r.clone()
                            }
                        )
                    };
                    let want: Vec<String> = reports
                        .iter()
                        .filter(|r| r.first_detected_from >= resume_ts)
                        .map(plain)
                        .collect();
                    let got: Vec<String> = resumed.iter().map(plain).collect();
                    prop_assert_eq!(got, want, "resumed at {}", resume_ts);
                }
            }
            for r in &reports {
                prop_assert!((0.0..=1.0).contains(&r.severity), "severity {}", r.severity);
                prop_assert!(r.first_detected_from <= r.last_anomalous_ts);
                prop_assert!(r.window_end.is_none_or(|e| e > r.last_anomalous_ts));
                prop_assert!(r.baseline_units.is_finite() && r.actual_units.is_finite());
                prop_assert!(r.affected_skus <= r.total_skus);
                for share in [
                    r.dq_integer_multiple_share,
                    r.dq_zero_share,
                    r.dq_stuck_share,
                    r.dq_catchup,
                ] {
                    prop_assert!((0.0..=1.0).contains(&share), "share {share}");
                }
                prop_assert!(
                    (0.0..=300.0).contains(&r.dq_multiple_evidence),
                    "multiple evidence {}",
                    r.dq_multiple_evidence
                );
            }
            // Shuffled within each SKU: the same reports.
            let mut shuffled = rows.clone();
            shuffle(&mut shuffled, seed);
            shuffled.sort_by_key(|r| r.0);
            let again = detect_store(&shuffled, &names, &cfg)
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(format!("{again:?}"), format!("{reports:?}"));
            Ok(())
        },
    );
}

#[test]
fn build_windows_gives_ordered_disjoint_windows() {
    let point = prop_oneof![
        2 => Just(Point::Unscored),
        4 => Just(Point::Normal),
        3 => (prop::bool::ANY, 0.0f64..1.0).prop_map(|(up, score)| Point::Anomalous {
            direction: if up { 1 } else { -1 },
            score
        }),
    ];
    check(
        "kernel build_windows",
        512,
        (prop::collection::vec(point, 0..200), 0usize..6),
        |(points, end_after)| {
            let windows = build_windows(points.iter().copied(), end_after);
            let mut previous_end = 0usize;
            for w in &windows {
                prop_assert!(w.start >= previous_end, "windows overlap");
                prop_assert!(w.start <= w.peak && w.peak <= w.last);
                prop_assert!(w.anomalous >= 1 && w.anomalous <= w.last - w.start + 1);
                prop_assert!(w.direction == 1 || w.direction == -1);
                prop_assert!(
                    matches!(points[w.start], Point::Anomalous { .. }),
                    "a window starts on an anomalous point"
                );
                prop_assert!(
                    matches!(points[w.last], Point::Anomalous { .. }),
                    "a window's last point is anomalous"
                );
                match w.end {
                    Some(e) => {
                        prop_assert!(e > w.last);
                        previous_end = e;
                    }
                    None => previous_end = points.len(),
                }
            }
            // Only the last window may be open.
            prop_assert!(windows.iter().rev().skip(1).all(|w| w.end.is_some()));
            Ok(())
        },
    );
}

#[test]
fn robust_statistics_are_finite_and_order_free() {
    let xs = prop::collection::vec(
        prop_oneof![8 => -1e6f64..1e6, 1 => Just(0.0), 1 => Just(1e12)],
        1..80,
    );
    check("kernel robust", 512, (xs, any::<u64>()), |(xs, seed)| {
        let mut a = xs.clone();
        let mut b = xs.clone();
        shuffle(&mut b, seed);
        let (ma, mb) = (
            robust::median_in_place(&mut a),
            robust::median_in_place(&mut b),
        );
        prop_assert_eq!(ma.to_bits(), mb.to_bits());
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        prop_assert!(ma >= lo && ma <= hi);
        let mut c = xs.clone();
        let sd = robust::robust_sd_in_place(&mut c);
        prop_assert!(sd.is_finite() && sd >= 0.0, "sd {sd}");
        for x in xs.iter().map(|x| x.abs()) {
            let back = robust::inverse_anscombe(robust::anscombe(x));
            prop_assert!((back - x).abs() <= 1e-6 * (1.0 + x), "{x} -> {back}");
        }
        Ok(())
    });
}

fn cluster_report(r: &ReportRow) -> Option<ClusterReport> {
    let mut skus = r.skus.clone().unwrap_or_default();
    skus.sort();
    skus.dedup();
    Some(ClusterReport {
        report_id: r.id.clone()?,
        store_id: r.store.clone(),
        retailer_id: r.retailer.clone(),
        lat: r.lat,
        lon: r.lon,
        window_start: r.start,
        window_last: r.last,
        direction: r.direction.clone(),
        top_skus: skus,
        top_category: r.category.clone(),
        magnitude: r.magnitude,
    })
}

#[test]
fn cluster_kernel_distance_is_symmetric_and_bounded() {
    check(
        "kernel cluster distance",
        512,
        (report_row(), report_row()),
        |(a, b)| {
            let (Some(a), Some(b)) = (cluster_report(&a), cluster_report(&b)) else {
                return Ok(());
            };
            let p = mrs_cluster::ClusterParams::default();
            let ab = mrs_cluster::cluster::distance(&a, &b, &p);
            let ba = mrs_cluster::cluster::distance(&b, &a, &p);
            prop_assert_eq!(ab.map(f64::to_bits), ba.map(f64::to_bits));
            prop_assert!(ab.is_none_or(|d| d.is_finite() && d >= 0.0), "{ab:?}");
            Ok(())
        },
    );
}

#[test]
fn cohort_kernel_ids_are_stable() {
    check(
        "kernel cohort_reports",
        256,
        (prop::collection::vec(report_row(), 0..30), any::<u64>()),
        |(rows, seed)| {
            let inputs: Vec<CohortInput> = rows
                .iter()
                .filter_map(|r| {
                    Some(CohortInput {
                        report_id: r.id.clone()?,
                        cluster_id: r.store.clone(),
                        window_start: r.start,
                        window_last: r.last,
                        cause: r.cause.clone(),
                        confidence: r.confidence,
                        store_id: r.store.clone(),
                        retailer_id: r.retailer.clone(),
                        top_skus: {
                            let mut s = r.skus.clone().unwrap_or_default();
                            s.sort();
                            s.dedup();
                            s
                        },
                        lead_sku: r
                            .skus
                            .as_ref()
                            .and_then(|s| s.iter().find(|k| !k.is_empty()).cloned()),
                        previous_group_id: r.previous.clone(),
                    })
                })
                .collect();
            let out = mrs_cluster::cohort_reports(inputs.clone());
            for row in &out {
                prop_assert!(
                    row.report_group_id == mrs_core::identity::event_id(&row.founding_report_id)
                        || rows
                            .iter()
                            .any(|r| r.previous.as_ref() == Some(&row.report_group_id)),
                    "group id {}",
                    row.report_group_id
                );
                prop_assert!((0.0..=1.0).contains(&row.group_confidence));
            }
            let mut shuffled = inputs;
            shuffle(&mut shuffled, seed);
            prop_assert_eq!(mrs_cluster::cohort_reports(shuffled), out);
            Ok(())
        },
    );
}
