//! The static world of a synthetic lake: retailers, regions and towns, stores, SKUs, holidays,
//! and the expected (noise-free) sales rate of every store × SKU × hour.

use crate::Preset;
use crate::rng::Rng;

/// First bucket of every preset: Monday 2025-06-02T00:00:00Z, in microseconds.
pub const START_MICROS: i64 = 1_748_822_400_000_000;
/// Bucket width.
pub const STEP_SECONDS: i64 = 3600;
pub const STEP_MICROS: i64 = STEP_SECONDS * 1_000_000;
/// Days at the start that never hold an injected anomaly (the detector's warm-up).
pub const WARMUP_DAYS: usize = 14;

/// Size knobs of a preset.
#[derive(Debug, Clone, Copy)]
pub struct PresetParams {
    pub retailers: usize,
    pub stores: usize,
    pub skus: usize,
    pub days: usize,
    pub regions: usize,
    pub categories: usize,
    pub towns_per_region: usize,
    pub per_cause: usize,
    pub background_promos: usize,
    pub mention_bursts: usize,
    pub holidays: usize,
    pub clean_days: usize,
}

impl PresetParams {
    pub fn of(preset: Preset) -> Self {
        match preset {
            Preset::Tiny => Self {
                retailers: 3,
                stores: 12,
                skus: 8,
                days: 35,
                regions: 4,
                categories: 4,
                towns_per_region: 1,
                per_cause: 2,
                background_promos: 3,
                mention_bursts: 1,
                holidays: 1,
                clean_days: 3,
            },
            Preset::Small => Self {
                retailers: 4,
                stores: 100,
                skus: 25,
                days: 84,
                regions: 5,
                categories: 6,
                towns_per_region: 3,
                per_cause: 8,
                background_promos: 12,
                mention_bursts: 4,
                holidays: 2,
                clean_days: 5,
            },
            Preset::Bench => Self {
                retailers: 5,
                stores: 200,
                skus: 40,
                days: 112,
                regions: 6,
                categories: 8,
                towns_per_region: 4,
                per_cause: 10,
                background_promos: 16,
                mention_bursts: 5,
                holidays: 2,
                clean_days: 5,
            },
        }
    }

    pub fn hours(&self) -> usize {
        self.days * 24
    }
}

const RETAILERS: [(&str, &str); 5] = [
    ("ALDERMART", "ALD"),
    ("BEACONS", "BEA"),
    ("COOPERSONS", "COO"),
    ("DAILYFRESH", "DAI"),
    ("EVERSAVE", "EVE"),
];
const RETAILER_WEIGHTS: [f64; 5] = [0.32, 0.26, 0.2, 0.13, 0.09];

/// A town: (code, lat, lon).
type TownDef = (&'static str, f64, f64);

/// Regions with their towns. UK-like coordinates.
const REGIONS: [(&str, [TownDef; 4]); 6] = [
    (
        "London",
        [
            ("LON", 51.507, -0.128),
            ("CRO", 51.376, -0.098),
            ("WAT", 51.656, -0.390),
            ("ROM", 51.575, 0.183),
        ],
    ),
    (
        "Midlands",
        [
            ("BIR", 52.486, -1.890),
            ("COV", 52.406, -1.512),
            ("WOL", 52.587, -2.129),
            ("LEI", 52.637, -1.139),
        ],
    ),
    (
        "North West",
        [
            ("MAN", 53.480, -2.242),
            ("LIV", 53.408, -2.991),
            ("PRE", 53.763, -2.703),
            ("BOL", 53.578, -2.429),
        ],
    ),
    (
        "Yorkshire",
        [
            ("LEE", 53.801, -1.549),
            ("SHE", 53.381, -1.470),
            ("YOR", 53.960, -1.082),
            ("BRD", 53.796, -1.759),
        ],
    ),
    (
        "Scotland",
        [
            ("GLA", 55.864, -4.252),
            ("EDI", 55.953, -3.188),
            ("DUN", 56.462, -2.971),
            ("ABE", 57.149, -2.094),
        ],
    ),
    (
        "South West",
        [
            ("BRS", 51.455, -2.588),
            ("EXE", 50.718, -3.534),
            ("PLY", 50.376, -4.143),
            ("BAT", 51.381, -2.359),
        ],
    ),
];

/// Categories: (name, SKU prefix, typical price, brands).
const CATEGORIES: [(&str, &str, f64, [&str; 4]); 8] = [
    (
        "Snacks",
        "SNK",
        1.5,
        ["Crunchwell", "Golden Bite", "Saltmarsh", "Nibbly"],
    ),
    (
        "Beverages",
        "BEV",
        1.8,
        ["Fizzbury", "Clearspring", "Morning Leaf", "Voltra"],
    ),
    (
        "Dairy",
        "DAI",
        1.4,
        ["Meadowvale", "Creamfield", "Daisy Farm", "Northmilk"],
    ),
    (
        "Bakery",
        "BAK",
        1.2,
        ["Hearthstone", "Bakers Row", "Rise & Co", "Oatloaf"],
    ),
    (
        "Personal Care",
        "PER",
        3.5,
        ["Purelle", "Softtouch", "Glowday", "Brisk"],
    ),
    (
        "Household",
        "HOU",
        2.8,
        ["Sparkwell", "Homeguard", "Freshfold", "Tidyhome"],
    ),
    (
        "Frozen",
        "FRZ",
        3.0,
        ["Iceberg Kitchen", "Frostline", "Polar Pantry", "Chillbox"],
    ),
    (
        "Confectionery",
        "CON",
        1.1,
        ["Cocoa Lane", "Sugarloaf", "Mintwick", "Fudgery"],
    ),
];

const HOLIDAY_NAMES: [&str; 2] = ["Midsummer Bank Holiday", "Late Summer Bank Holiday"];

/// Relative sales by hour of day (UTC, UK-like trading hours): night near zero, peaks at
/// midday and early evening. Normalised to mean 1 when the world is built.
const DAILY_RAW: [f64; 24] = [
    0.03, 0.02, 0.02, 0.02, 0.02, 0.04, 0.15, 0.4, 0.8, 1.0, 1.2, 1.4, 1.65, 1.5, 1.2, 1.1, 1.25,
    1.55, 1.65, 1.3, 0.9, 0.5, 0.2, 0.06,
];
/// Relative sales by day of week, Monday first; weekends higher.
const WEEKLY_RAW: [f64; 7] = [0.9, 0.88, 0.93, 0.98, 1.1, 1.3, 1.15];

#[derive(Debug, Clone)]
pub struct Town {
    pub code: &'static str,
    pub region: usize,
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone)]
pub struct Store {
    pub id: String,
    pub retailer: usize,
    pub region: usize,
    pub town: usize,
    pub lat: f64,
    pub lon: f64,
    /// Size factor (footfall) multiplying every SKU's rate.
    pub size: f64,
    /// Slow trend over the whole period (relative change end vs start).
    pub slope: f64,
}

#[derive(Debug, Clone)]
pub struct Sku {
    pub id: String,
    pub category: usize,
    /// Index into `World::brands`.
    pub brand: usize,
    /// Mean units per hour in an average store and hour.
    pub rate: f64,
    /// Negative binomial dispersion (variance = mean + mean²/phi).
    pub phi: f64,
    pub price: f64,
    pub slope: f64,
    /// Baseline social mentions per hour.
    pub mention_rate: f64,
}

#[derive(Debug, Clone)]
pub struct Brand {
    pub name: &'static str,
    pub category: usize,
}

#[derive(Debug, Clone)]
pub struct Holiday {
    pub day: usize,
    pub name: &'static str,
    pub uplift: f64,
}

/// Everything about a lake that is not an event.
#[derive(Debug, Clone)]
pub struct World {
    pub params: PresetParams,
    pub n_hours: usize,
    pub retailers: Vec<&'static str>,
    pub retailer_factor: Vec<f64>,
    pub regions: Vec<&'static str>,
    pub towns: Vec<Town>,
    pub stores: Vec<Store>,
    pub categories: Vec<&'static str>,
    pub brands: Vec<Brand>,
    pub skus: Vec<Sku>,
    pub holidays: Vec<Holiday>,
    pub daily: [f64; 24],
    pub weekly: [f64; 7],
    /// Per-day multiplier (holidays).
    pub day_mult: Vec<f64>,
}

fn normalised<const N: usize>(raw: [f64; N]) -> [f64; N] {
    let mean = raw.iter().sum::<f64>() / N as f64;
    raw.map(|x| x / mean)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl World {
    pub fn build(preset: Preset, seed: u64) -> Self {
        let p = PresetParams::of(preset);
        let mut rng = Rng::keyed(seed, &["world", preset.as_str()]);
        let n_hours = p.hours();

        let retailers: Vec<&'static str> = RETAILERS[..p.retailers].iter().map(|r| r.0).collect();
        let retailer_factor: Vec<f64> = (0..p.retailers)
            .map(|_| rng.range_f64(0.85, 1.15))
            .collect();
        let regions: Vec<&'static str> = REGIONS[..p.regions].iter().map(|r| r.0).collect();
        let mut towns = Vec::new();
        for (ri, (_, ts)) in REGIONS[..p.regions].iter().enumerate() {
            for (code, lat, lon) in &ts[..p.towns_per_region] {
                towns.push(Town {
                    code,
                    region: ri,
                    lat: *lat,
                    lon: *lon,
                });
            }
        }

        // Stores: every retailer present in every region first, then weighted by retailer size.
        let weights = &RETAILER_WEIGHTS[..p.retailers];
        let mut per_retailer = vec![0usize; p.retailers];
        let mut stores = Vec::with_capacity(p.stores);
        for i in 0..p.stores {
            let region = i % p.regions;
            let retailer = if i < p.regions * p.retailers {
                (i / p.regions) % p.retailers
            } else {
                rng.weighted(weights)
            };
            let town = region * p.towns_per_region + rng.range_usize(0, p.towns_per_region - 1);
            per_retailer[retailer] += 1;
            let t = &towns[town];
            let id = format!(
                "{}_{}_{:03}",
                RETAILERS[retailer].1, t.code, per_retailer[retailer]
            );
            // About 3 km of jitter around the town centre.
            let lat = round5(t.lat + 0.025 * rng.normal());
            let lon = round5(t.lon + 0.04 * rng.normal());
            let size = (0.35 * rng.normal()).exp().clamp(0.4, 2.5);
            let slope = rng.range_f64(-0.05, 0.05);
            stores.push(Store {
                id,
                retailer,
                region,
                town,
                lat,
                lon,
                size,
                slope,
            });
        }
        stores.sort_by(|a, b| a.id.cmp(&b.id));

        // Categories, brands and SKUs.
        let categories: Vec<&'static str> =
            CATEGORIES[..p.categories].iter().map(|c| c.0).collect();
        let mut per_cat = vec![0usize; p.categories];
        for i in 0..p.skus {
            per_cat[i % p.categories] += 1;
        }
        let mut brands = Vec::new();
        let mut cat_brands: Vec<Vec<usize>> = Vec::new();
        for (c, n_in_cat) in per_cat.iter().enumerate() {
            let nb = rng.range_usize(2, 4).min((*n_in_cat).max(1));
            let mut ids = Vec::new();
            for name in &CATEGORIES[c].3[..nb] {
                ids.push(brands.len());
                brands.push(Brand { name, category: c });
            }
            cat_brands.push(ids);
        }
        let mut ranks: Vec<usize> = (0..p.skus).collect();
        rng.shuffle(&mut ranks);
        let mut skus = Vec::with_capacity(p.skus);
        let mut seen_in_cat = vec![0usize; p.categories];
        for (i, rank) in ranks.iter().enumerate() {
            let c = i % p.categories;
            let j = seen_in_cat[c];
            seen_in_cat[c] += 1;
            let brand = cat_brands[c][j % cat_brands[c].len()];
            // Zipf-like popularity: a few best sellers, a long sparse tail (< 0.5 units/hour).
            let rate = 2.4 / ((*rank + 1) as f64).powf(1.1);
            let phi = rng.range_f64(1.5, 5.0);
            let price = round2((CATEGORIES[c].2 * (0.3 * rng.normal()).exp()).max(0.25));
            let slope = rng.range_f64(-0.12, 0.12);
            let mention_rate = 0.15 + 2.0 * rate / 2.4;
            skus.push(Sku {
                id: format!("{}-{:03}", CATEGORIES[c].1, 100 + i),
                category: c,
                brand,
                rate,
                phi,
                price,
                slope,
                mention_rate,
            });
        }
        skus.sort_by(|a, b| a.id.cmp(&b.id));

        // National holidays on Mondays after the warm-up, whole-day uplift.
        let mut day_mult = vec![1.0; p.days];
        let mut mondays: Vec<usize> = (WARMUP_DAYS + 1..p.days.saturating_sub(1))
            .filter(|d| d % 7 == 0)
            .collect();
        rng.shuffle(&mut mondays);
        let mut hol_days: Vec<usize> = mondays.into_iter().take(p.holidays).collect();
        hol_days.sort_unstable();
        let holidays: Vec<Holiday> = hol_days
            .iter()
            .enumerate()
            .map(|(i, day)| {
                let uplift = rng.range_f64(1.3, 1.6);
                day_mult[*day] = uplift;
                Holiday {
                    day: *day,
                    name: HOLIDAY_NAMES[i % HOLIDAY_NAMES.len()],
                    uplift,
                }
            })
            .collect();

        Self {
            params: p,
            n_hours,
            retailers,
            retailer_factor,
            regions,
            towns,
            stores,
            categories,
            brands,
            skus,
            holidays,
            daily: normalised(DAILY_RAW),
            weekly: normalised(WEEKLY_RAW),
            day_mult,
        }
    }

    /// Expected units (before promotions and events) of store `s`, SKU `k`, bucket `t`.
    #[inline]
    pub fn base_mean(&self, s: usize, k: usize, t: usize) -> f64 {
        let st = &self.stores[s];
        let sku = &self.skus[k];
        let day = t / 24;
        let trend = 1.0 + (sku.slope + st.slope) * (t as f64 / self.n_hours as f64 - 0.5);
        sku.rate
            * st.size
            * self.retailer_factor[st.retailer]
            * self.daily[t % 24]
            * self.weekly[day % 7]
            * trend
            * self.day_mult.get(day).copied().unwrap_or(1.0)
    }

    pub fn stores_of_retailer(&self, r: usize) -> Vec<usize> {
        (0..self.stores.len())
            .filter(|s| self.stores[*s].retailer == r)
            .collect()
    }

    pub fn skus_of_brand(&self, b: usize) -> Vec<usize> {
        (0..self.skus.len())
            .filter(|k| self.skus[*k].brand == b)
            .collect()
    }

    pub fn skus_of_category(&self, c: usize) -> Vec<usize> {
        (0..self.skus.len())
            .filter(|k| self.skus[*k].category == c)
            .collect()
    }

    /// Great-circle distance between two stores in km.
    pub fn distance_km(&self, a: usize, b: usize) -> f64 {
        let (sa, sb) = (&self.stores[a], &self.stores[b]);
        let (la1, lo1, la2, lo2) = (
            sa.lat.to_radians(),
            sa.lon.to_radians(),
            sb.lat.to_radians(),
            sb.lon.to_radians(),
        );
        let h = ((la2 - la1) / 2.0).sin().powi(2)
            + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
        2.0 * 6371.0 * h.sqrt().min(1.0).asin()
    }

    pub fn is_holiday(&self, day: usize) -> bool {
        self.holidays.iter().any(|h| h.day == day)
    }
}

fn round5(x: f64) -> f64 {
    (x * 100_000.0).round() / 100_000.0
}
