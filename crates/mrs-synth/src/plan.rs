//! Events of a synthetic lake: background promotions and mention bursts (normal business), and
//! the injected anomalies with their ground truth (DESIGN §5 signatures).

use mrs_core::taxonomy::Cause;

use crate::Preset;
use crate::rng::{Rng, nb_sd};
use crate::series::SeriesCtx;
use crate::world::{WARMUP_DAYS, World};

/// Time profile of an additive effect, by hours since its start.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// Flat plateau (step).
    Flat,
    /// Linear ramp reaching the plateau after `hours`.
    Ramp { hours: f64 },
    /// Fast rise over `rise` hours, then exponential decay with time constant `tau` hours.
    Decay { rise: usize, tau: f64 },
}

impl Shape {
    #[inline]
    pub fn at(self, h: usize) -> f64 {
        match self {
            Shape::Flat => 1.0,
            Shape::Ramp { hours } => ((h as f64 + 1.0) / hours).min(1.0),
            Shape::Decay { rise, tau } => {
                if h + 1 < rise {
                    (h + 1) as f64 / rise as f64
                } else {
                    (-((h + 1 - rise) as f64) / tau).exp()
                }
            }
        }
    }
}

/// A change of the expected units of a set of store × SKU cells over [start, end):
/// mean = (base + add_sd · shape · sd(base)) · mult.
#[derive(Debug, Clone)]
pub struct MeanEffect {
    pub stores: Vec<bool>,
    pub skus: Vec<bool>,
    pub start: usize,
    pub end: usize,
    pub mult: f64,
    pub add_sd: f64,
    pub shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DataErrorKind {
    /// Every row counted `factor` times (×2 duplicates, ×10/×100 unit slips).
    Multiply(f64),
    /// Zeros over [start, end), then the missed units added to bucket `end`.
    ZerosCatchup,
    /// Every bucket repeats the values of bucket `start - 1`.
    Stuck,
    /// Units (and revenue) reported with the wrong sign.
    Negative,
}

/// A feed error applied after sampling.
#[derive(Debug, Clone)]
pub struct DataError {
    pub stores: Vec<bool>,
    pub skus: Vec<bool>,
    pub start: usize,
    pub end: usize,
    pub kind: DataErrorKind,
}

impl DataError {
    /// First bucket after the last affected one (the catch-up bucket is affected).
    pub fn affected_end(&self) -> usize {
        match self.kind {
            DataErrorKind::ZerosCatchup => self.end + 1,
            _ => self.end,
        }
    }
}

/// A promotion row; `lift` (in noise units) is its real effect on sales.
#[derive(Debug, Clone)]
pub struct Promo {
    pub id: String,
    pub retailer: usize,
    pub brand: Option<usize>,
    pub category: Option<usize>,
    pub start: usize,
    pub end: usize,
    pub lift: f64,
    pub kind: &'static str,
}

/// Extra marketing spend: brands × channels × [day_start, day_end) multiplied by `mult`.
#[derive(Debug, Clone)]
pub struct SpendBoost {
    pub brands: Vec<usize>,
    pub channels: Vec<usize>,
    pub day_start: usize,
    pub day_end: usize,
    pub mult: f64,
}

/// Social mentions burst: `amp · exp(-(t - start) / tau)` extra mentions per hour.
#[derive(Debug, Clone)]
pub struct MentionBurst {
    pub sku: usize,
    pub start: usize,
    pub amp: f64,
    pub tau: f64,
}

/// How a truth row's magnitude is obtained once the plan is complete.
#[derive(Debug, Clone, Copy)]
enum MagSpec {
    /// Calibrate the additive effect so the sd-weighted mean excess equals the target.
    Additive { effect: usize, target: f64 },
    /// Mean excess of a multiplicative drop, in noise units.
    Drop { effect: usize },
    /// Realised excess of a data error, in noise units.
    Data { error: usize },
}

#[derive(Debug, Clone)]
pub struct TruthRow {
    pub id: String,
    pub cause: Cause,
    pub retailers: Vec<usize>,
    pub stores: Vec<usize>,
    pub skus: Vec<usize>,
    pub start: usize,
    pub end: usize,
    pub magnitude: f64,
    pub direction: &'static str,
    pub description: String,
    spec: MagSpec,
    /// For data errors whose direction follows the realised sign.
    direction_from_sign: bool,
}

pub const CHANNELS: [&str; 4] = ["tv", "search", "social", "display"];
const PROMO_KINDS: [&str; 3] = ["price_cut", "display", "multibuy"];

/// The world plus every event: what the generator writes.
#[derive(Debug, Clone)]
pub struct Lake {
    pub world: World,
    pub seed: u64,
    pub preset: Preset,
    pub inject: bool,
    pub effects: Vec<MeanEffect>,
    pub errors: Vec<DataError>,
    pub promos: Vec<Promo>,
    pub spend_boosts: Vec<SpendBoost>,
    pub bursts: Vec<MentionBurst>,
    pub truth: Vec<TruthRow>,
}

fn mask(n: usize, idx: &[usize]) -> Vec<bool> {
    let mut m = vec![false; n];
    for i in idx {
        m[*i] = true;
    }
    m
}

fn draw_magnitude(rng: &mut Rng) -> f64 {
    let u = rng.uniform();
    let m = if u < 0.15 {
        rng.range_f64(1.2, 2.5)
    } else if u < 0.8 {
        rng.range_f64(3.0, 8.0)
    } else {
        rng.range_f64(10.0, 18.0)
    };
    (m * 100.0).round() / 100.0
}

#[derive(Debug, Clone, Copy)]
enum Align {
    DayStart,
    Hours(usize, usize),
}

struct Planner<'a> {
    w: &'a World,
    rng: Rng,
    blocked: Vec<(usize, usize)>,
    effects: Vec<MeanEffect>,
    errors: Vec<DataError>,
    promos: Vec<Promo>,
    spend_boosts: Vec<SpendBoost>,
    bursts: Vec<MentionBurst>,
    truth: Vec<TruthRow>,
    seed: u64,
}

fn hours_text(h: usize) -> String {
    if h.is_multiple_of(24) {
        let d = h / 24;
        format!("{d} day{}", if d == 1 { "" } else { "s" })
    } else {
        format!("{h} hours")
    }
}

impl Planner<'_> {
    fn n_stores(&self) -> usize {
        self.w.stores.len()
    }
    fn n_skus(&self) -> usize {
        self.w.skus.len()
    }

    /// A window of `dur` buckets after the warm-up, inside the data, avoiding the clean
    /// stretch and holidays when possible.
    fn pick(&mut self, dur: usize, align: Align) -> (usize, usize) {
        let n_hours = self.w.n_hours;
        let days = self.w.params.days;
        let hour = |rng: &mut Rng| match align {
            Align::DayStart => 0,
            Align::Hours(lo, hi) => rng.range_usize(lo, hi),
        };
        for _ in 0..400 {
            let day = self.rng.range_usize(WARMUP_DAYS, days - 1);
            let start = day * 24 + hour(&mut self.rng);
            let end = start + dur;
            if end > n_hours {
                continue;
            }
            if self.blocked.iter().any(|(a, b)| start < *b && *a < end) {
                continue;
            }
            return (start, end);
        }
        // Fallback (very dense plans only): right after the warm-up.
        let start = WARMUP_DAYS * 24 + hour(&mut self.rng);
        (start, (start + dur).min(n_hours))
    }

    fn store_names(&self, stores: &[usize]) -> String {
        if stores.len() == 1 {
            format!("store {}", self.w.stores[stores[0]].id)
        } else {
            format!("{} stores", stores.len())
        }
    }

    fn sku_names(&self, skus: &[usize]) -> String {
        skus.iter()
            .map(|k| self.w.skus[*k].id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn retailers_of(&self, stores: &[usize]) -> Vec<usize> {
        let mut r: Vec<usize> = stores.iter().map(|s| self.w.stores[*s].retailer).collect();
        r.sort_unstable();
        r.dedup();
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn push_truth(
        &mut self,
        cause: Cause,
        stores: Vec<usize>,
        skus: Vec<usize>,
        (start, end): (usize, usize),
        direction: &'static str,
        description: String,
        spec: MagSpec,
    ) {
        let mut stores = stores;
        stores.sort_unstable();
        stores.dedup();
        let mut skus = skus;
        skus.sort_unstable();
        skus.dedup();
        let retailers = self.retailers_of(&stores);
        let magnitude = match spec {
            MagSpec::Additive { target, .. } => target,
            _ => 0.0,
        };
        self.truth.push(TruthRow {
            id: String::new(),
            cause,
            retailers,
            stores,
            skus,
            start,
            end,
            magnitude,
            direction,
            description,
            spec,
            direction_from_sign: false,
        });
    }

    fn background(&mut self) {
        let p = self.w.params;
        for i in 0..p.background_promos {
            let retailer = self.rng.range_usize(0, p.retailers - 1);
            let by_brand = self.rng.chance(0.7);
            let (brand, category) = if by_brand {
                (Some(self.rng.range_usize(0, self.w.brands.len() - 1)), None)
            } else {
                (None, Some(self.rng.range_usize(0, p.categories - 1)))
            };
            let day = self.rng.range_usize(0, p.days - 6);
            let dur = self.rng.range_usize(2, 5);
            let lift = self.rng.range_f64(0.3, 0.8);
            let kind = PROMO_KINDS[self.rng.range_usize(0, PROMO_KINDS.len() - 1)];
            let brands = match (brand, category) {
                (Some(b), _) => vec![b],
                (None, Some(c)) => (0..self.w.brands.len())
                    .filter(|b| self.w.brands[*b].category == c)
                    .collect(),
                _ => Vec::new(),
            };
            self.spend_boosts.push(SpendBoost {
                brands,
                channels: vec![3],
                day_start: day,
                day_end: day + dur,
                mult: 1.4,
            });
            self.promos.push(Promo {
                id: format!("P-{}-{:03}", self.seed, i + 1),
                retailer,
                brand,
                category,
                start: day * 24,
                end: (day + dur) * 24,
                lift,
                kind,
            });
        }
        for _ in 0..p.mention_bursts {
            let sku = self.rng.range_usize(0, self.n_skus() - 1);
            let start = self.rng.range_usize(24, self.w.n_hours - 48);
            let amp = self.rng.range_f64(15.0, 50.0);
            let tau = self.rng.range_f64(4.0, 12.0);
            self.bursts.push(MentionBurst {
                sku,
                start,
                amp,
                tau,
            });
        }
    }

    fn data_error(&mut self, i: usize, offset: usize) {
        let all_skus: Vec<usize> = (0..self.n_skus()).collect();
        let store = self.rng.range_usize(0, self.n_stores() - 1);
        let retailer = self.w.stores[store].retailer;
        let retailer_wide = |rng: &mut Rng, p: f64| rng.chance(p);
        let popular: Vec<usize> = {
            let mut ks: Vec<usize> = all_skus.clone();
            ks.sort_by(|a, b| self.w.skus[*b].rate.total_cmp(&self.w.skus[*a].rate));
            ks.truncate(3.min(ks.len()));
            ks
        };
        let pick_skus = |rng: &mut Rng, n: usize| {
            let mut ks = popular.clone();
            rng.shuffle(&mut ks);
            ks.truncate(n.max(1));
            ks
        };
        let (stores, skus, dur, kind, text, direction): (
            Vec<usize>,
            Vec<usize>,
            usize,
            DataErrorKind,
            &str,
            &'static str,
        ) = match (offset + i) % 5 {
            0 => {
                let stores = if retailer_wide(&mut self.rng, 0.4) {
                    self.w.stores_of_retailer(retailer)
                } else {
                    vec![store]
                };
                let dur = self.rng.range_usize(2, 8);
                (
                    stores,
                    all_skus,
                    dur,
                    DataErrorKind::Multiply(2.0),
                    "delivered every row twice (x2 duplicates)",
                    "spike",
                )
            }
            1 => {
                let f = if self.rng.chance(0.7) { 10.0 } else { 100.0 };
                let n = self.rng.range_usize(1, 2);
                let skus = pick_skus(&mut self.rng, n);
                let dur = self.rng.range_usize(2, 6);
                let text = if f > 50.0 {
                    "reported units x100 (unit slip)"
                } else {
                    "reported units x10 (unit slip)"
                };
                (
                    vec![store],
                    skus,
                    dur,
                    DataErrorKind::Multiply(f),
                    text,
                    "spike",
                )
            }
            2 => {
                let stores = if retailer_wide(&mut self.rng, 0.3) {
                    self.w.stores_of_retailer(retailer)
                } else {
                    vec![store]
                };
                let dur = self.rng.range_usize(2, 8);
                (
                    stores,
                    all_skus,
                    dur,
                    DataErrorKind::ZerosCatchup,
                    "reported zero units, then a catch-up spike equal to the missed units",
                    "drop",
                )
            }
            3 => {
                let dur = self.rng.range_usize(3, 10);
                (
                    vec![store],
                    all_skus,
                    dur,
                    DataErrorKind::Stuck,
                    "repeated the same values every hour (stuck feed)",
                    "drop",
                )
            }
            _ => {
                let n = self.rng.range_usize(1, 3);
                let skus = pick_skus(&mut self.rng, n);
                let dur = self.rng.range_usize(3, 6);
                (
                    vec![store],
                    skus,
                    dur,
                    DataErrorKind::Negative,
                    "reported units with a negative sign",
                    "drop",
                )
            }
        };
        let span = if kind == DataErrorKind::ZerosCatchup {
            dur + 1
        } else {
            dur
        };
        let (start, end) = self.pick(span, Align::Hours(9, 14));
        let err = DataError {
            stores: mask(self.n_stores(), &stores),
            skus: mask(self.n_skus(), &skus),
            start,
            end: if kind == DataErrorKind::ZerosCatchup {
                end - 1
            } else {
                end
            },
            kind,
        };
        let scope = if stores.len() > 1 {
            format!("retailer {}'s whole feed", self.w.retailers[retailer])
        } else {
            format!("the feed of store {}", self.w.stores[stores[0]].id)
        };
        let sku_text = if skus.len() == self.n_skus() {
            "all SKUs".to_string()
        } else {
            self.sku_names(&skus)
        };
        let description = format!(
            "Data error: {scope} {text} for {sku_text} over {}.",
            hours_text(dur)
        );
        self.errors.push(err);
        let error = self.errors.len() - 1;
        self.push_truth(
            Cause::DataError,
            stores,
            skus,
            (start, end),
            direction,
            description,
            MagSpec::Data { error },
        );
        if kind == DataErrorKind::Stuck
            && let Some(t) = self.truth.last_mut()
        {
            t.direction_from_sign = true;
        }
    }

    fn marketing(&mut self, i: usize) {
        let w = self.w;
        let p = w.params;
        let retailer = self.rng.range_usize(0, p.retailers - 1);
        let stores = w.stores_of_retailer(retailer);
        let by_category = self.rng.chance(0.3);
        let (skus, brands, label, brand, category) = if by_category {
            let c = self.rng.range_usize(0, p.categories - 1);
            let brands: Vec<usize> = (0..w.brands.len())
                .filter(|b| w.brands[*b].category == c)
                .collect();
            (
                w.skus_of_category(c),
                brands,
                format!("category {}", w.categories[c]),
                None,
                Some(c),
            )
        } else {
            let b = self.rng.range_usize(0, w.brands.len() - 1);
            (
                w.skus_of_brand(b),
                vec![b],
                format!("brand {}", w.brands[b].name),
                Some(b),
                None,
            )
        };
        let max_days = if p.days <= 35 { 3 } else { 4 };
        let days = self.rng.range_usize(1, max_days);
        let (start, end) = self.pick(days * 24, Align::DayStart);
        let target = draw_magnitude(&mut self.rng);
        self.effects.push(MeanEffect {
            stores: mask(self.n_stores(), &stores),
            skus: mask(self.n_skus(), &skus),
            start,
            end,
            mult: 1.0,
            add_sd: target,
            shape: Shape::Flat,
        });
        let effect = self.effects.len() - 1;
        let spend_mult = self.rng.range_f64(2.5, 4.0);
        self.spend_boosts.push(SpendBoost {
            brands,
            channels: vec![1, 2],
            day_start: start / 24,
            day_end: end.div_ceil(24),
            mult: spend_mult,
        });
        let recorded = i.is_multiple_of(3);
        if recorded {
            self.promos.push(Promo {
                id: format!("P-{}-M{:02}", self.seed, i + 1),
                retailer,
                brand,
                category,
                start,
                end,
                lift: 0.0,
                kind: "feature",
            });
        }
        let description = format!(
            "Marketing misattribution: flat step uplift on {label} across all {} {} stores for {} while search and social spend was raised x{:.1}; {}.",
            stores.len(),
            w.retailers[retailer],
            hours_text(end - start),
            spend_mult,
            if recorded {
                "a matching promotion was recorded"
            } else {
                "no promotion was recorded"
            }
        );
        self.push_truth(
            Cause::MarketingMisattribution,
            stores,
            skus,
            (start, end),
            "spike",
            description,
            MagSpec::Additive { effect, target },
        );
    }

    fn stockout(&mut self) {
        let w = self.w;
        let p = w.params;
        // Candidates: (retailer, region) with nearby stores of other retailers.
        let mut candidates = Vec::new();
        for r in 0..p.retailers {
            for g in 0..p.regions {
                let down: Vec<usize> = (0..self.n_stores())
                    .filter(|s| w.stores[*s].retailer == r && w.stores[*s].region == g)
                    .collect();
                if down.is_empty() {
                    continue;
                }
                let up: Vec<usize> = (0..self.n_stores())
                    .filter(|s| {
                        w.stores[*s].retailer != r
                            && down.iter().any(|d| w.distance_km(*d, *s) <= 30.0)
                    })
                    .collect();
                if !up.is_empty() {
                    candidates.push((r, g, down, up));
                }
            }
        }
        if candidates.is_empty() {
            return;
        }
        let ci = self.rng.range_usize(0, candidates.len() - 1);
        let (r, g, down, up) = candidates.swap_remove(ci);
        let c = self.rng.range_usize(0, p.categories - 1);
        let skus = w.skus_of_category(c);
        let max_days = if p.days <= 35 { 3 } else { 4 };
        let dur = self.rng.range_usize(24, max_days * 24);
        let (start, end) = self.pick(dur, Align::Hours(6, 9));
        let keep = self.rng.range_f64(0.0, 0.25);
        let ramp = self.rng.range_f64(12.0, 24.0);
        let target = draw_magnitude(&mut self.rng);
        self.effects.push(MeanEffect {
            stores: mask(self.n_stores(), &down),
            skus: mask(self.n_skus(), &skus),
            start,
            end,
            mult: keep,
            add_sd: 0.0,
            shape: Shape::Flat,
        });
        self.effects.push(MeanEffect {
            stores: mask(self.n_stores(), &up),
            skus: mask(self.n_skus(), &skus),
            start,
            end,
            mult: 1.0,
            add_sd: target,
            shape: Shape::Ramp { hours: ramp },
        });
        let effect = self.effects.len() - 1;
        let others = self.retailers_of(&up);
        let description = format!(
            "Competitor stockout: {} ran out of {} in {} ({} stores fell to {:.0}% of normal) and {} nearby stores of {} picked up the demand gradually over {}.",
            w.retailers[r],
            w.categories[c],
            w.regions[g],
            down.len(),
            keep * 100.0,
            up.len(),
            others
                .iter()
                .map(|o| w.retailers[*o])
                .collect::<Vec<_>>()
                .join(", "),
            hours_text(end - start)
        );
        let mut stores = down;
        stores.extend(up);
        self.push_truth(
            Cause::CompetitorStockout,
            stores,
            skus,
            (start, end),
            "spike",
            description,
            MagSpec::Additive { effect, target },
        );
    }

    fn viral(&mut self) -> usize {
        let w = self.w;
        let n_sku = self
            .rng
            .range_usize(1, if self.n_skus() <= 8 { 2 } else { 3 });
        let mut ks: Vec<usize> = (0..self.n_skus()).collect();
        self.rng.shuffle(&mut ks);
        ks.truncate(n_sku);
        let frac = self.rng.range_f64(0.3, 0.7);
        let n_st = ((frac * self.n_stores() as f64).ceil() as usize).max(1);
        let mut ss: Vec<usize> = (0..self.n_stores()).collect();
        self.rng.shuffle(&mut ss);
        let (mut stores, rest) = (ss[..n_st].to_vec(), ss[n_st..].to_vec());
        if self.retailers_of(&stores).len() < 2
            && let Some(extra) = rest
                .iter()
                .find(|s| w.stores[**s].retailer != w.stores[stores[0]].retailer)
        {
            stores.push(*extra);
        }
        let dur = self.rng.range_usize(12, 48);
        let rise = self.rng.range_usize(1, 2);
        let tau = dur as f64 / 3.0;
        let (start, end) = self.pick(dur, Align::Hours(8, 19));
        let target = draw_magnitude(&mut self.rng);
        self.effects.push(MeanEffect {
            stores: mask(self.n_stores(), &stores),
            skus: mask(self.n_skus(), &ks),
            start,
            end,
            mult: 1.0,
            add_sd: target,
            shape: Shape::Decay { rise, tau },
        });
        let effect = self.effects.len() - 1;
        let lag = self.rng.range_usize(0, 3);
        for k in &ks {
            let amp = self.rng.range_f64(60.0, 200.0) * (1.0 + w.skus[*k].mention_rate);
            self.bursts.push(MentionBurst {
                sku: *k,
                start: start.saturating_sub(lag),
                amp,
                tau,
            });
        }
        let n_ret = self.retailers_of(&stores).len();
        let description = format!(
            "Social/viral event: {} spiked within {} at {} stores of {} retailers and decayed over {}; social mentions burst {} before sales.",
            self.sku_names(&ks),
            if rise == 1 { "1 hour" } else { "2 hours" },
            stores.len(),
            n_ret,
            hours_text(dur),
            if lag == 0 {
                "in the same hour".to_string()
            } else {
                format!("{lag} hours")
            }
        );
        self.push_truth(
            Cause::SocialViral,
            stores,
            ks,
            (start, end),
            "spike",
            description,
            MagSpec::Additive { effect, target },
        );
        self.truth.len() - 1
    }

    fn operational(&mut self, overlap_with: Option<usize>) {
        let all_skus: Vec<usize> = (0..self.n_skus()).collect();
        let dur = self.rng.range_usize(3, 12);
        let (store, (start, end)) = match overlap_with.map(|i| self.truth[i].clone()) {
            // Deliberate overlap in time and space with a viral event.
            Some(t) if t.start + 2 + dur <= self.w.n_hours && !t.stores.is_empty() => {
                let s = t.stores[self.rng.range_usize(0, t.stores.len() - 1)];
                (s, (t.start + 2, t.start + 2 + dur))
            }
            _ => {
                let s = self.rng.range_usize(0, self.n_stores() - 1);
                (s, self.pick(dur, Align::Hours(7, 14)))
            }
        };
        let keep = self.rng.range_f64(0.0, 0.3);
        self.effects.push(MeanEffect {
            stores: mask(self.n_stores(), &[store]),
            skus: mask(self.n_skus(), &all_skus),
            start,
            end,
            mult: keep,
            add_sd: 0.0,
            shape: Shape::Flat,
        });
        let effect = self.effects.len() - 1;
        let description = format!(
            "Operational issue: {} sold only {:.0}% of normal across all SKUs for {} (outage).",
            self.store_names(&[store]),
            keep * 100.0,
            hours_text(dur)
        );
        self.push_truth(
            Cause::OperationalStoreIssue,
            vec![store],
            all_skus,
            (start, end),
            "drop",
            description,
            MagSpec::Drop { effect },
        );
    }
}

impl Lake {
    /// Builds the world and plans every event. Deterministic in (preset, seed, inject).
    pub fn build(preset: Preset, seed: u64, inject: bool) -> Self {
        let world = World::build(preset, seed);
        let mut planner = Planner {
            w: &world,
            rng: Rng::keyed(seed, &["events", preset.as_str()]),
            blocked: Vec::new(),
            effects: Vec::new(),
            errors: Vec::new(),
            promos: Vec::new(),
            spend_boosts: Vec::new(),
            bursts: Vec::new(),
            truth: Vec::new(),
            seed,
        };
        planner.background();
        if inject {
            let p = world.params;
            // A clean stretch of several days with no anomaly, and no anomaly on holidays.
            let clean_start = planner
                .rng
                .range_usize(WARMUP_DAYS + 1, p.days.saturating_sub(p.clean_days + 1));
            planner
                .blocked
                .push((clean_start * 24, (clean_start + p.clean_days) * 24));
            for h in &world.holidays {
                planner.blocked.push((h.day * 24, (h.day + 1) * 24));
            }
            let offset = planner.rng.range_usize(0, 4);
            let mut virals = Vec::new();
            // Each event draws from its own keyed stream, so events are independent draws and
            // changing one never shifts the others.
            let key = |cause: Cause, i: usize| {
                Rng::keyed(
                    seed,
                    &["events", preset.as_str(), cause.as_str(), &i.to_string()],
                )
            };
            for i in 0..p.per_cause {
                planner.rng = key(Cause::DataError, i);
                planner.data_error(i, offset);
                planner.rng = key(Cause::MarketingMisattribution, i);
                planner.marketing(i);
                planner.rng = key(Cause::CompetitorStockout, i);
                planner.stockout();
                planner.rng = key(Cause::SocialViral, i);
                virals.push(planner.viral());
                planner.rng = key(Cause::OperationalStoreIssue, i);
                let overlap = if i == 1 {
                    virals.first().copied()
                } else {
                    None
                };
                planner.operational(overlap);
            }
        }
        let Planner {
            effects,
            errors,
            promos,
            spend_boosts,
            bursts,
            truth,
            ..
        } = planner;
        let mut lake = Lake {
            world,
            seed,
            preset,
            inject,
            effects,
            errors,
            promos,
            spend_boosts,
            bursts,
            truth,
        };
        lake.calibrate();
        lake
    }

    /// Cells (store, sku, bucket) of a mask pair over a window.
    fn cells(
        stores: &[bool],
        skus: &[bool],
        start: usize,
        end: usize,
    ) -> impl Iterator<Item = (usize, usize, usize)> {
        let ss: Vec<usize> = (0..stores.len()).filter(|s| stores[*s]).collect();
        let ks: Vec<usize> = (0..skus.len()).filter(|k| skus[*k]).collect();
        ss.into_iter().flat_map(move |s| {
            let ks = ks.clone();
            ks.into_iter()
                .flat_map(move |k| (start..end).map(move |t| (s, k, t)))
        })
    }

    /// Scales additive effects to their target magnitude, then measures drops and data errors.
    fn calibrate(&mut self) {
        // 1. Additive effects: the sd-weighted mean of the shape must equal 1.
        for i in 0..self.truth.len() {
            if let MagSpec::Additive { effect, target } = self.truth[i].spec {
                let e = &self.effects[effect];
                let (mut num, mut den) = (0.0, 0.0);
                for (s, k, t) in Self::cells(&e.stores, &e.skus, e.start, e.end) {
                    let ctx = SeriesCtx::new(self, s, k);
                    let sd = nb_sd(ctx.base(t), self.world.skus[k].phi);
                    num += e.shape.at(t - e.start) * sd;
                    den += sd;
                }
                let r = if den > 0.0 && num > 0.0 {
                    num / den
                } else {
                    1.0
                };
                self.effects[effect].add_sd = target / r;
                self.truth[i].magnitude = target;
            }
        }
        // 2. Drops and data errors, measured on the final plan.
        for i in 0..self.truth.len() {
            let (num, den, signed) = match self.truth[i].spec {
                MagSpec::Additive { .. } => continue,
                MagSpec::Drop { effect } => {
                    let e = &self.effects[effect];
                    let (mut num, mut den) = (0.0, 0.0);
                    for (s, k, t) in Self::cells(&e.stores, &e.skus, e.start, e.end) {
                        let ctx = SeriesCtx::new(self, s, k);
                        let mu = ctx.base(t);
                        num += (1.0 - e.mult) * mu;
                        den += nb_sd(mu, self.world.skus[k].phi);
                    }
                    (num, den, -num)
                }
                MagSpec::Data { error } => {
                    let e = &self.errors[error];
                    let (mut num, mut den, mut signed) = (0.0, 0.0, 0.0);
                    for (s, k, t) in Self::cells(&e.stores, &e.skus, e.start, e.affected_end()) {
                        let ctx = SeriesCtx::new(self, s, k);
                        let clean = ctx.clean(t).0;
                        let value = ctx.value(t).0;
                        num += (value - clean).abs();
                        signed += value - clean;
                        den += nb_sd(ctx.base(t), self.world.skus[k].phi);
                    }
                    (num, den, signed)
                }
            };
            let m = if den > 0.0 { num / den } else { 0.0 };
            self.truth[i].magnitude = (m * 1000.0).round() / 1000.0;
            if self.truth[i].direction_from_sign {
                self.truth[i].direction = if signed >= 0.0 { "spike" } else { "drop" };
            }
        }
        // A feed error that changed nothing (all affected values were zero) is no anomaly.
        let errors = &mut self.errors;
        self.truth.retain(|t| match t.spec {
            MagSpec::Data { error } if t.magnitude <= 0.0 => {
                errors[error].stores.iter_mut().for_each(|s| *s = false);
                false
            }
            _ => true,
        });
        // 3. Stable order and ids.
        self.truth.sort_by(|a, b| {
            (a.start, a.cause.index(), &a.stores).cmp(&(b.start, b.cause.index(), &b.stores))
        });
        for (n, t) in self.truth.iter_mut().enumerate() {
            t.id = format!("A-{}-{}", self.seed, n + 1);
        }
    }
}
