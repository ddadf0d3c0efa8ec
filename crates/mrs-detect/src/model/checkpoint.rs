//! A store's detector state at a resume bucket, so that an incremental run reads only the
//! look-back it needs and still gives exactly the reports of a full recompute.
//!
//! | item | rule |
//! |---|---|
//! | taken at | bucket `Q` = the last covered bucket `P - 1` minus a margin (a day, at least the longest sustained span), moved back to the start of any window still open, or closing, at `Q`: no decision before `Q` can change and no run reaches back past it |
//! | covers | the `H` buckets before `Q` ([`super::store::horizon`]: the seasonal lags, the dispersion and run-inflation windows, the catch-up look-back; four weeks and a few buckets for hourly data), fewer when the store is younger |
//! | holds | the grid (origin, step), `Q`, `P`, the settings; per series (store total and each SKU sold before `Q`) the scorer's carried scalars and arrays ([`ScorerState`]), its full-season z values, its run-inflation schedule, and per SKU its first bucket and last normal value; the store's decided-bucket mask and store baselines |
//! | resumed with | the sales rows from `Q - H` on: buckets before `Q` are not scored again, later ones get what a full run gave them |
//! | encoding | little-endian binary with a magic and a format version; a checkpoint of another format or other settings is refused, never misread |
//!
//! Cost: about `8 (H + 1)` f64 values per series (about 43 KB for hourly data).

use super::scorer::{Carry, ScorerState};
use super::sustained::SPANS;

/// Format tag of an encoded checkpoint.
const MAGIC: &[u8; 8] = b"MRSCKP04";

/// One series' state (store total or one SKU).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesCheckpoint {
    /// Scorer state (`None`: the series had no value before `Q`).
    pub scorer: Option<ScorerState>,
    /// Full-season z values over the covered buckets (`NaN` where none).
    pub full_z: Vec<f64>,
    /// Next inflation refit of the series' sustained runs, relative to the first covered bucket.
    pub next_fit: usize,
    /// The run inflation in force at the resume bucket, per span.
    pub inflation: [f64; SPANS.len()],
}

/// One SKU's state.
#[derive(Debug, Clone, PartialEq)]
pub struct SkuCheckpoint {
    pub sku: String,
    /// First bucket of the SKU's cell series, relative to the first covered bucket (negative
    /// when older).
    pub first: i64,
    /// The SKU's last value that was not an alert (data-quality features), `NaN` if none.
    pub last_normal: f64,
    pub series: SeriesCheckpoint,
}

/// A store's detector state (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreCheckpoint {
    /// Alert threshold and window closing rule the state was computed with.
    pub z_alert: f64,
    pub end_after: usize,
    /// Grid origin (micros) and step (micros).
    pub origin: i64,
    pub step: i64,
    /// Absolute bucket (from the origin) of the first covered bucket, `Q - H`.
    pub first_bucket: i64,
    /// Absolute bucket `Q` where a resumed run starts scoring.
    pub resume_bucket: i64,
    /// Absolute bucket `P`: the first bucket the state's run did not see.
    pub covered_bucket: i64,
    /// Buckets before `Q` decided anomalous by a single bucket (masked from run evidence).
    pub decided: Vec<bool>,
    /// Store-total baselines over the covered buckets (`NaN` where none).
    pub store_baseline: Vec<f64>,
    pub store: SeriesCheckpoint,
    /// SKUs sold before `Q`, ordered by name.
    pub skus: Vec<SkuCheckpoint>,
}

/// Why bytes are not a usable checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointError(pub String);

impl std::fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StoreCheckpoint {
    /// Covered buckets (`Q - first_bucket`).
    pub fn len(&self) -> usize {
        self.decided.len()
    }

    /// Whether no bucket is covered.
    pub fn is_empty(&self) -> bool {
        self.decided.is_empty()
    }

    /// Timestamp (micros) of an absolute bucket.
    pub fn ts_of(&self, bucket: i64) -> i64 {
        self.origin.saturating_add(self.step.saturating_mul(bucket))
    }

    /// Encodes the state.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(
            64 + self.len() * 8 * 8 * (self.skus.len() + 1),
        ));
        w.0.extend_from_slice(MAGIC);
        w.f64(self.z_alert);
        w.u64(self.end_after as u64);
        for v in [
            self.origin,
            self.step,
            self.first_bucket,
            self.resume_bucket,
            self.covered_bucket,
        ] {
            w.i64(v);
        }
        w.u64(self.decided.len() as u64);
        w.0.extend(self.decided.iter().map(|&d| u8::from(d)));
        w.f64s(&self.store_baseline);
        w.series(&self.store);
        w.u64(self.skus.len() as u64);
        for s in &self.skus {
            w.u64(s.sku.len() as u64);
            w.0.extend_from_slice(s.sku.as_bytes());
            w.i64(s.first);
            w.f64(s.last_normal);
            w.series(&s.series);
        }
        w.0
    }

    /// Decodes a state written by [`Self::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(CheckpointError(
                "not a detector checkpoint of this version (format tag differs)".into(),
            ));
        }
        let z_alert = r.f64()?;
        let end_after = r.len()?;
        let origin = r.i64()?;
        let step = r.i64()?;
        let first_bucket = r.i64()?;
        let resume_bucket = r.i64()?;
        let covered_bucket = r.i64()?;
        let n = r.len()?;
        let decided = r
            .take(n)?
            .iter()
            .map(|&b| match b {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(CheckpointError("a decided flag is not 0 or 1".into())),
            })
            .collect::<Result<Vec<bool>, _>>()?;
        let store_baseline = r.f64s()?;
        let store = r.series()?;
        let n_skus = r.len()?;
        let mut skus = Vec::with_capacity(n_skus.min(1 << 20));
        for _ in 0..n_skus {
            let len = r.len()?;
            let sku = String::from_utf8(r.take(len)?.to_vec())
                .map_err(|_| CheckpointError("a SKU name is not UTF-8".into()))?;
            let first = r.i64()?;
            let last_normal = r.f64()?;
            let series = r.series()?;
            skus.push(SkuCheckpoint {
                sku,
                first,
                last_normal,
                series,
            });
        }
        if r.at != bytes.len() {
            return Err(CheckpointError(
                "trailing bytes after the checkpoint".into(),
            ));
        }
        let cp = Self {
            z_alert,
            end_after,
            origin,
            step,
            first_bucket,
            resume_bucket,
            covered_bucket,
            decided,
            store_baseline,
            store,
            skus,
        };
        cp.check()?;
        Ok(cp)
    }

    /// Structural consistency (array lengths, ordering), so a damaged state is refused.
    fn check(&self) -> Result<(), CheckpointError> {
        let n = self.len();
        let bad = |what: &str| Err(CheckpointError(format!("inconsistent checkpoint: {what}")));
        if self.step <= 0 {
            return bad("step");
        }
        if self.resume_bucket - self.first_bucket != n as i64
            || self.covered_bucket < self.resume_bucket
            || self.first_bucket < 0
        {
            return bad("bucket range");
        }
        if self.store_baseline.len() != n {
            return bad("store baselines");
        }
        let series_ok = |s: &SeriesCheckpoint| {
            s.full_z.len() == n
                && s.scorer.as_ref().is_none_or(|st| {
                    st.len() == n
                        && [
                            &st.ratio,
                            &st.resid,
                            &st.resid_b,
                            &st.resid_ref,
                            &st.resid_div,
                        ]
                        .iter()
                        .all(|v| v.len() == n)
                })
        };
        if !series_ok(&self.store) || !self.skus.iter().all(|s| series_ok(&s.series)) {
            return bad("series arrays");
        }
        if !self.skus.windows(2).all(|w| w[0].sku < w[1].sku) {
            return bad("SKU order");
        }
        Ok(())
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    fn f64s(&mut self, v: &[f64]) {
        self.u64(v.len() as u64);
        for &x in v {
            self.f64(x);
        }
    }
    fn series(&mut self, s: &SeriesCheckpoint) {
        self.f64s(&s.full_z);
        self.u64(s.next_fit as u64);
        for &f in &s.inflation {
            self.f64(f);
        }
        match &s.scorer {
            None => self.0.push(0),
            Some(st) => {
                self.0.push(1);
                self.i64(st.first);
                let c = st.carry;
                self.f64(c.scale);
                self.f64(c.kappa);
                self.u64(c.next_scale_at as u64);
                self.f64(c.level);
                self.u64(c.level_season as u64);
                self.u64(c.season_since as u64);
                self.u64(c.next_level_at as u64);
                for v in [
                    &st.clean,
                    &st.ratio,
                    &st.resid,
                    &st.resid_b,
                    &st.resid_ref,
                    &st.resid_div,
                ] {
                    self.f64s(v);
                }
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CheckpointError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| CheckpointError("checkpoint is truncated".into()))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u64(&mut self) -> Result<u64, CheckpointError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }
    fn i64(&mut self) -> Result<i64, CheckpointError> {
        Ok(self.u64()? as i64)
    }
    fn f64(&mut self) -> Result<f64, CheckpointError> {
        Ok(f64::from_bits(self.u64()?))
    }
    /// A length, bounded by the bytes left (a damaged length must not allocate wildly).
    fn len(&mut self) -> Result<usize, CheckpointError> {
        let v = self.u64()?;
        usize::try_from(v)
            .ok()
            .filter(|&n| n <= self.bytes.len())
            .ok_or_else(|| CheckpointError("checkpoint length out of range".into()))
    }
    fn f64s(&mut self) -> Result<Vec<f64>, CheckpointError> {
        let n = self.len()?;
        (0..n).map(|_| self.f64()).collect()
    }
    fn series(&mut self) -> Result<SeriesCheckpoint, CheckpointError> {
        let full_z = self.f64s()?;
        let next_fit = self.len_unbounded()?;
        let mut inflation = [1.0; SPANS.len()];
        for f in &mut inflation {
            *f = self.f64()?;
        }
        let scorer = match self.take(1)?[0] {
            0 => None,
            1 => {
                let first = self.i64()?;
                // Fields are read in the order they are written (struct literals evaluate in
                // order).
                let carry = Carry {
                    scale: self.f64()?,
                    kappa: self.f64()?,
                    next_scale_at: self.len_unbounded()?,
                    level: self.f64()?,
                    level_season: self.len_unbounded()?,
                    season_since: self.len_unbounded()?,
                    next_level_at: self.len_unbounded()?,
                };
                Some(ScorerState {
                    first,
                    carry,
                    clean: self.f64s()?,
                    ratio: self.f64s()?,
                    resid: self.f64s()?,
                    resid_b: self.f64s()?,
                    resid_ref: self.f64s()?,
                    resid_div: self.f64s()?,
                })
            }
            _ => return Err(CheckpointError("bad series tag".into())),
        };
        Ok(SeriesCheckpoint {
            scorer,
            full_z,
            next_fit,
            inflation,
        })
    }
    /// A bucket index (not a length: not bounded by the bytes left).
    fn len_unbounded(&mut self) -> Result<usize, CheckpointError> {
        usize::try_from(self.u64()?)
            .map_err(|_| CheckpointError("checkpoint index out of range".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoreCheckpoint {
        let n = 5;
        let series = |z: f64| SeriesCheckpoint {
            scorer: Some(ScorerState {
                first: -3,
                carry: Carry {
                    scale: 1.5,
                    kappa: 0.25,
                    next_scale_at: 6,
                    level: 1.1,
                    level_season: 168,
                    season_since: 0,
                    next_level_at: 5,
                },
                clean: vec![1.0, f64::NAN, 3.0, 4.0, 5.0],
                ratio: vec![1.0; n],
                resid: vec![0.5; n],
                resid_b: vec![2.0; n],
                resid_ref: vec![2.0; n],
                resid_div: vec![1.0; n],
            }),
            full_z: vec![z, f64::NAN, -z, 0.0, 1.0],
            next_fit: 7,
            inflation: [1.0, 1.25, 1.5, 2.0],
        };
        StoreCheckpoint {
            z_alert: 5.0,
            end_after: 3,
            origin: 1_700_000_000_000_000,
            step: 3_600_000_000,
            first_bucket: 10,
            resume_bucket: 15,
            covered_bucket: 40,
            decided: vec![false, true, false, false, true],
            store_baseline: vec![10.0, 11.0, f64::NAN, 12.0, 13.0],
            store: series(2.0),
            skus: vec![
                SkuCheckpoint {
                    sku: "A-1".into(),
                    first: -2,
                    last_normal: 4.0,
                    series: series(1.0),
                },
                SkuCheckpoint {
                    sku: "B-é".into(),
                    first: 2,
                    last_normal: f64::NAN,
                    series: SeriesCheckpoint {
                        scorer: None,
                        full_z: vec![f64::NAN; n],
                        next_fit: 0,
                        inflation: [1.0; SPANS.len()],
                    },
                },
            ],
        }
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let cp = sample();
        let bytes = cp.encode();
        let back = StoreCheckpoint::decode(&bytes).expect("decodes");
        // NaN != NaN: compare the encodings
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.skus[1].sku, "B-é");
        assert_eq!(back.ts_of(back.resume_bucket), cp.origin + 15 * cp.step);
    }

    #[test]
    fn damaged_bytes_are_refused_not_misread() {
        let bytes = sample().encode();
        for cut in [0, 7, 8, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(StoreCheckpoint::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut other = bytes.clone();
        other[7] = b'9';
        assert!(StoreCheckpoint::decode(&other).is_err());
        // one encoding per state: a flag byte other than 0 or 1 is refused (found by fuzzing)
        let flags_at = 8 + 8 * 8; // magic, then settings, grid, buckets and the flag count
        let mut flag = bytes.clone();
        assert_eq!(flag[flags_at], 0);
        flag[flags_at] = 2;
        assert!(StoreCheckpoint::decode(&flag).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(StoreCheckpoint::decode(&longer).is_err());
        let mut wrong = sample();
        wrong.store_baseline.pop();
        assert!(StoreCheckpoint::decode(&wrong.encode()).is_err());
    }
}
