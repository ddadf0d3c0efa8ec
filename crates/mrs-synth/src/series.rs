//! Values of one store × SKU series. Every bucket is sampled from its own generator, keyed by
//! (seed, store, sku) and the bucket index, so any bucket can be computed on its own: chunked
//! (`until`) writes, threads and the truth calibration all see the same values.

use crate::plan::{DataError, DataErrorKind, Lake, MeanEffect};
use crate::rng::{Rng, nb_sd, position_key, stream_key};

pub struct SeriesCtx<'a> {
    lake: &'a Lake,
    s: usize,
    k: usize,
    key: u64,
    phi: f64,
    price: f64,
    /// (start, end, lift in noise units) of promotions covering this series.
    promos: Vec<(usize, usize, f64)>,
    effects: Vec<&'a MeanEffect>,
    errors: Vec<&'a DataError>,
}

impl<'a> SeriesCtx<'a> {
    pub fn new(lake: &'a Lake, s: usize, k: usize) -> Self {
        let w = &lake.world;
        let store = &w.stores[s];
        let sku = &w.skus[k];
        let promos = lake
            .promos
            .iter()
            .filter(|p| {
                p.lift > 0.0
                    && p.retailer == store.retailer
                    && p.brand.is_none_or(|b| b == sku.brand)
                    && p.category.is_none_or(|c| c == sku.category)
            })
            .map(|p| (p.start, p.end, p.lift))
            .collect();
        let effects = lake
            .effects
            .iter()
            .filter(|e| e.stores[s] && e.skus[k])
            .collect();
        let errors = lake
            .errors
            .iter()
            .filter(|e| e.stores[s] && e.skus[k])
            .collect();
        Self {
            lake,
            s,
            k,
            key: stream_key(lake.seed, &["sales", &store.id, &sku.id]),
            phi: sku.phi,
            price: sku.price,
            promos,
            effects,
            errors,
        }
    }

    /// Expected units without events (seasonality, trend, holidays, promotions).
    #[inline]
    pub fn base(&self, t: usize) -> f64 {
        let mu = self.lake.world.base_mean(self.s, self.k, t);
        if self.promos.is_empty() {
            return mu;
        }
        let sd = nb_sd(mu, self.phi);
        let lift: f64 = self
            .promos
            .iter()
            .filter(|(a, b, _)| (*a..*b).contains(&t))
            .map(|p| p.2)
            .sum();
        mu + lift * sd
    }

    /// Expected units with the injected mean effects.
    #[inline]
    pub fn mean(&self, t: usize) -> f64 {
        let mu = self.base(t);
        let mut add = 0.0;
        let mut mult = 1.0;
        for e in &self.effects {
            if t >= e.start && t < e.end {
                if e.add_sd != 0.0 {
                    add += e.add_sd * e.shape.at(t - e.start);
                }
                mult *= e.mult;
            }
        }
        if add != 0.0 {
            (mu + add * nb_sd(mu, self.phi)) * mult
        } else {
            mu * mult
        }
    }

    /// Sampled units and unit price of bucket `t`, before feed errors.
    #[inline]
    pub fn clean(&self, t: usize) -> (f64, f64) {
        let mut rng = Rng::new(position_key(self.key, t as u64));
        let units = rng.neg_binomial(self.mean(t), self.phi) as f64;
        let price = (self.price * (1.0 + 0.015 * rng.normal()) * 100.0).round() / 100.0;
        (units, price)
    }

    /// Units and revenue as written to the lake, feed errors included.
    pub fn value(&self, t: usize) -> (f64, f64) {
        for e in &self.errors {
            let hit = match e.kind {
                DataErrorKind::ZerosCatchup => t >= e.start && t <= e.end,
                _ => t >= e.start && t < e.end,
            };
            if !hit {
                continue;
            }
            let (units, price) = self.clean(t);
            return match e.kind {
                DataErrorKind::Multiply(f) => {
                    let u = units * f;
                    (u, revenue(u, price))
                }
                DataErrorKind::Negative => (-units, -revenue(units, price)),
                DataErrorKind::Stuck => {
                    let (u, p) = self.clean(e.start.saturating_sub(1));
                    (u, revenue(u, p))
                }
                DataErrorKind::ZerosCatchup => {
                    if t < e.end {
                        (0.0, 0.0)
                    } else {
                        let missed: f64 = (e.start..e.end).map(|i| self.clean(i).0).sum();
                        let u = units + missed;
                        (u, revenue(u, price))
                    }
                }
            };
        }
        let (units, price) = self.clean(t);
        (units, revenue(units, price))
    }
}

#[inline]
fn revenue(units: f64, price: f64) -> f64 {
    (units * price * 100.0).round() / 100.0
}
