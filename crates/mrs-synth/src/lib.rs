//! MRS synthetic lake generator (`mrs-synth`).
//!
//! Writes a complete, realistic and fully deterministic lake so that every other part of MRS
//! (detection, clustering, attribution, evaluation, benchmarks) can be developed and scored
//! against a known ground truth:
//!
//! - `input/sales`: hourly units and revenue per retailer × store × SKU from 2025-06-02 (a
//!   Monday), with a daily and weekly rhythm, slow trends, store sizes, Zipf-like SKU
//!   popularity (many sparse SKUs), over-dispersed negative-binomial noise and national
//!   holidays (whole-day uplift, not anomalies);
//! - `input/stores`, `input/skus`, `input/holidays`: dimensions (UK-like regions and towns where
//!   stores of different retailers sit close to each other; categories and brands);
//! - `input/promotions`, `input/marketing_spend`, `input/social_mentions`: context consistent
//!   with what happened (background promotions with sub-noise lift, spend credited to
//!   misattributed uplifts, mention bursts before viral events and a few without any effect);
//! - `truth/anomalies`: the injected anomalies of the five causes of DESIGN §5 with their
//!   signatures, scopes, windows and magnitudes; `truth/synth.json`: the generator manifest.
//!
//! Every value is a pure function of (preset, seed, position): each store × SKU × hour has its
//! own random stream (SplitMix64 / xoshiro256**, samplers implemented in [`rng`]), so outputs
//! are byte-identical across runs, thread counts and `until` replays, and never change with a
//! dependency upgrade. `until` writes only the buckets before it; a later call with a larger
//! `until` appends the next buckets as new files, which is how tests simulate live arrivals.
//!
//! Magnitudes are in units of the affected cells' noise: for additive effects the per-cell
//! expected excess is `magnitude × sd` of the cell's negative-binomial noise (sd-weighted over
//! the effect's shape); for drops and feed errors the recorded magnitude is the realised
//! `Σ|excess| / Σ sd` over the affected cells.

pub mod plan;
pub mod rng;
pub mod series;
pub mod tables;
pub mod world;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::object_store::path::Path;
use datafusion::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use mrs_core::identity::rfc3339_utc_micros;
use mrs_core::{MrsError, MrsResult};
use serde::{Deserialize, Serialize};

use crate::plan::Lake;
use crate::tables::{bucket_micros, df_err, parquet_bytes};
use crate::world::{PresetParams, START_MICROS, STEP_MICROS, STEP_SECONDS};

/// Size of the generated lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// 3 retailers, 12 stores, 8 SKUs, 35 days (80,640 sales rows).
    Tiny,
    /// 4 retailers, 100 stores, 25 SKUs, 84 days (5,040,000 sales rows).
    Small,
    /// 5 retailers, 200 stores, 40 SKUs, 112 days (21,504,000 sales rows).
    Bench,
}

impl Preset {
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Small => "small",
            Preset::Bench => "bench",
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Preset {
    type Err = MrsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tiny" => Ok(Preset::Tiny),
            "small" => Ok(Preset::Small),
            "bench" => Ok(Preset::Bench),
            other => Err(MrsError::InvalidArgument(format!(
                "unknown preset '{other}'; expected tiny, small or bench"
            ))),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthConfig {
    pub preset: Preset,
    pub seed: u64,
    /// Microseconds since the epoch (UTC): only sales buckets with `ts < until` are written.
    /// `None` writes everything.
    pub until: Option<i64>,
    /// Inject anomalies (and write their truth); `false` gives a clean lake and empty truth.
    pub inject_anomalies: bool,
}

impl SynthConfig {
    pub fn new(preset: Preset, seed: u64) -> Self {
        Self {
            preset,
            seed,
            until: None,
            inject_anomalies: true,
        }
    }
}

/// What a call to [`write_lake`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    /// Sales rows written by this call.
    pub sales_rows: u64,
    /// Objects (Parquet files and the manifest) written by this call.
    pub files: usize,
    /// Rows of the truth table.
    pub anomalies: usize,
    pub stores: usize,
    pub skus: usize,
    /// First bucket of the data.
    pub start_micros: i64,
    /// Exclusive end of the data (first bucket after the last).
    pub end_micros: i64,
    /// Exclusive end of the sales written so far (over all calls).
    pub written_until_micros: i64,
}

/// `truth/synth.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub generator: String,
    pub generator_version: u32,
    pub preset: Preset,
    pub seed: u64,
    pub start: String,
    pub end: String,
    pub start_micros: i64,
    pub end_micros: i64,
    pub step_seconds: i64,
    pub until: String,
    pub until_micros: i64,
    pub inject_anomalies: bool,
    pub stores: usize,
    pub skus: usize,
    pub anomalies: usize,
}

/// Bumped whenever a change alters generated values.
pub const GENERATOR_VERSION: u32 = 1;

fn child(root: &Path, rel: &str) -> Path {
    rel.split('/').fold(root.clone(), |p, part| p.join(part))
}

async fn put(store: &Arc<dyn ObjectStore>, path: &Path, bytes: Vec<u8>) -> MrsResult<()> {
    store
        .put(path, PutPayload::from(bytes))
        .await
        .map(|_| ())
        .map_err(df_err)
}

async fn read_manifest(store: &Arc<dyn ObjectStore>, root: &Path) -> MrsResult<Option<Manifest>> {
    let path = child(root, "truth/synth.json");
    match store.get(&path).await {
        Ok(r) => {
            let bytes = r.bytes().await.map_err(df_err)?;
            Ok(Some(serde_json::from_slice(&bytes)?))
        }
        Err(datafusion::object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(df_err(e)),
    }
}

/// Number of buckets with `ts < until`.
fn buckets_before(until: Option<i64>, n_hours: usize) -> usize {
    match until {
        None => n_hours,
        Some(u) if u <= START_MICROS => 0,
        Some(u) => {
            let n = (u - START_MICROS + STEP_MICROS - 1) / STEP_MICROS;
            (n.max(0) as usize).min(n_hours)
        }
    }
}

/// Sales Parquet files of stores `[from, to)`, generated on up to `threads` OS threads. Each
/// store is independent and deterministic, so the result does not depend on the split.
fn sales_files(
    lake: &Lake,
    stores: std::ops::Range<usize>,
    t_lo: usize,
    t_hi: usize,
    threads: usize,
) -> MrsResult<Vec<(String, Vec<u8>, u64)>> {
    let one = |s: usize| -> MrsResult<(String, Vec<u8>, u64)> {
        let batch = tables::sales(lake, s, t_lo, t_hi)?;
        let rows = batch.num_rows() as u64;
        let name = format!(
            "input/sales/{}-{}.parquet",
            lake.world.stores[s].id,
            bucket_micros(t_lo) / 1_000_000
        );
        Ok((name, parquet_bytes(&batch)?, rows))
    };
    let ids: Vec<usize> = stores.collect();
    if threads <= 1 || ids.len() <= 1 {
        return ids.into_iter().map(one).collect();
    }
    let per = ids.len().div_ceil(threads);
    let results: Vec<MrsResult<Vec<_>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ids
            .chunks(per)
            .map(|chunk| {
                scope.spawn(|| chunk.iter().map(|s| one(*s)).collect::<MrsResult<Vec<_>>>())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(MrsError::BadData(
                        "synthetic generator thread panicked".into(),
                    ))
                })
            })
            .collect()
    });
    let mut out = Vec::with_capacity(ids.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// Writes (or extends, see `until`) a synthetic lake under `root`.
pub async fn write_lake(
    store: Arc<dyn ObjectStore>,
    root: &Path,
    cfg: &SynthConfig,
) -> MrsResult<SynthSummary> {
    let params = PresetParams::of(cfg.preset);
    let n_hours = params.hours();
    let end_micros = bucket_micros(n_hours);
    let t_hi = buckets_before(cfg.until, n_hours);

    // Replay: continue after what an earlier call of the same lake wrote.
    let previous = read_manifest(&store, root).await?;
    let t_lo = match &previous {
        None => 0,
        Some(m) => {
            if m.preset != cfg.preset
                || m.seed != cfg.seed
                || m.inject_anomalies != cfg.inject_anomalies
                || m.generator_version != GENERATOR_VERSION
                || m.step_seconds != STEP_SECONDS
            {
                return Err(MrsError::InvalidArgument(format!(
                    "{root} already holds a synthetic lake (preset {}, seed {}, inject_anomalies {}, \
                     generator version {}); write preset {}, seed {}, inject_anomalies {} to an empty location",
                    m.preset,
                    m.seed,
                    m.inject_anomalies,
                    m.generator_version,
                    cfg.preset,
                    cfg.seed,
                    cfg.inject_anomalies
                )));
            }
            buckets_before(Some(m.until_micros), n_hours)
        }
    };
    let t_written = t_hi.max(t_lo);

    let lake = Lake::build(cfg.preset, cfg.seed, cfg.inject_anomalies);
    let mut files = 0usize;

    // Dimensions, context and truth: rewritten whole, identical every time.
    let whole = [
        ("input/stores/part-0.parquet", tables::stores(&lake)?),
        ("input/skus/part-0.parquet", tables::skus(&lake)?),
        ("input/holidays/part-0.parquet", tables::holidays(&lake)?),
        (
            "input/promotions/part-0.parquet",
            tables::promotions(&lake)?,
        ),
        (
            "input/marketing_spend/part-0.parquet",
            tables::marketing_spend(&lake)?,
        ),
        (
            "input/social_mentions/part-0.parquet",
            tables::social_mentions(&lake)?,
        ),
        ("truth/anomalies/part-0.parquet", tables::truth(&lake)?),
    ];
    for (rel, batch) in &whole {
        put(&store, &child(root, rel), parquet_bytes(batch)?).await?;
        files += 1;
    }

    // Sales: new files for buckets [t_lo, t_hi), one per store, a few stores at a time.
    let mut sales_rows = 0u64;
    if t_hi > t_lo {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        let n_stores = lake.world.stores.len();
        let batch = threads * 2;
        let mut from = 0;
        while from < n_stores {
            let to = (from + batch).min(n_stores);
            let out = sales_files(&lake, from..to, t_lo, t_hi, threads)?;
            let puts = out.into_iter().map(|(rel, bytes, rows)| {
                sales_rows += rows;
                let path = child(root, &rel);
                let store = &store;
                async move { put(store, &path, bytes).await }
            });
            let written = futures::future::try_join_all(puts).await?;
            files += written.len();
            from = to;
        }
    }

    // The manifest goes last: an interrupted call is simply repeated.
    let until_micros = bucket_micros(t_written);
    let manifest = Manifest {
        generator: "mrs-synth".into(),
        generator_version: GENERATOR_VERSION,
        preset: cfg.preset,
        seed: cfg.seed,
        start: rfc3339_utc_micros(START_MICROS),
        end: rfc3339_utc_micros(end_micros),
        start_micros: START_MICROS,
        end_micros,
        step_seconds: STEP_SECONDS,
        until: rfc3339_utc_micros(until_micros),
        until_micros,
        inject_anomalies: cfg.inject_anomalies,
        stores: lake.world.stores.len(),
        skus: lake.world.skus.len(),
        anomalies: lake.truth.len(),
    };
    let json = serde_json::to_vec_pretty(&manifest)?;
    put(&store, &child(root, "truth/synth.json"), json).await?;
    files += 1;

    Ok(SynthSummary {
        sales_rows,
        files,
        anomalies: lake.truth.len(),
        stores: lake.world.stores.len(),
        skus: lake.world.skus.len(),
        start_micros: START_MICROS,
        end_micros,
        written_until_micros: until_micros,
    })
}
