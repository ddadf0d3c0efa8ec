//! The attribution model: bounded signals computed from the features, a table of weights (data,
//! serde) turning them into per-cause scores, a softmax into probabilities, and the evidence,
//! localisation and narrative built from the same numbers.
//!
//! Score of a cause `c`: `s_c = prior_c + sum over signals k of weight(k, c) * phi_k`, where
//! every `phi_k` is in [0, 1] and absent when its inputs are NULL (no evidence). A weight is a
//! log-likelihood ratio in nats: how much more likely the signal at full strength is under `c`
//! than under a cause it does not name. Probabilities are `softmax(s / temperature)`. With no
//! evidence at all every cause scores its prior (0 by default), so each gets 0.2.
//! The evidence `weight` reported for a signal is its contribution `weight * phi` before the
//! temperature.
//!
//! Signals (`phi`, the feature(s) read, and the default weights of [`AttributionModel::default`]):
//!
//! | signal | phi | favours (weight) |
//! |---|---|---|
//! | `dq_integer_multiple` | `dq_integer_multiple_share` | Data Error 3.0 |
//! | `dq_zero_catchup` | `dq_catchup` when `dq_zero_share > 0` | Data Error 3.0 |
//! | `dq_stuck` | `dq_stuck_share` | Data Error 2.5 |
//! | `dq_negative` | `min(1, dq_negative_count)` | Data Error 3.0 |
//! | `dq_ratio_multiple` | `max(0, 1 - abs(ln(dq_ratio / k)) / 0.1)`, k in {2, 10, 100, 1/2, 1/10, 1/100} | Data Error 2.0 |
//! | `zero_without_catchup` | `dq_zero_share * (1 - dq_catchup)` | Operational 2.0 |
//! | `retailer_wide` | `co_retailer_share` | Data Error 1.5, Marketing 1.5 |
//! | `step_shape` | profile step score, spikes only | Marketing 2.0 |
//! | `brand_concentration` | `(top_brand_share - 0.3) / 0.5` | Marketing 1.5 |
//! | `spend_uplift` | `spend_ratio - 1` | Marketing 2.5 |
//! | `promo_overlap` | `promo_overlap` | Marketing 1.5 |
//! | `ramp_shape` | profile ramp score | Competitor 2.5 |
//! | `category_substitution` | `(top_category_share - 0.3) / 0.5 * (1 - top_sku_share)` (top_sku_share 0.5 if NULL) | Competitor 1.5 |
//! | `nearby_other_retailer_category` | `co_category_other_retailer_nearby / 3` | Competitor 3.0 |
//! | `multi_day` | `(duration_hours - 24) / 48` | Competitor 2.0 |
//! | `spike_decay_shape` | profile spike-and-decay score, spikes only | Social 2.0 |
//! | `few_sku_concentration` | `(top_sku_share - 0.3) / 0.5`, halved when `affected_skus > 3` | Social 2.0 |
//! | `co_sku_stores` | `co_sku_stores / 10` | Social 2.5 |
//! | `co_sku_retailers` | `(co_sku_retailers - 1) / 2` | Social 1.5 |
//! | `social_uplift` | `(social_ratio - 1) / 3` | Social 3.0 |
//! | `spike_direction` | 1 for a spike | Marketing 0.5, Competitor 0.5, Social 0.5 |
//! | `drop_direction` | 1 for a drop | Operational 1.0 |
//! | `sudden_drop` | profile rise speed, drops only | Operational 1.5 |
//! | `deep_drop` | `-relative_change`, drops only | Operational 1.0 |
//! | `all_skus_affected` | `(affected_skus / total_skus - 0.3) / 0.5` | Operational 2.0, Data Error 0.5 |
//! | `short_duration` | 1 up to 12 h, linear to 0 at 36 h | Operational 1.0 |
//! | `isolated` | `1 - (co_sku_stores + co_category_other_retailer_nearby + 10 co_retailer_share) / 3`, needs one of them | Operational 2.0 |
//!
//! Every phi is clamped to [0, 1]. `duration_hours` comes from the profile's timestamps, else
//! from `duration_buckets` read as hours. Temperature 1.5 (the hand-set weights are optimistic;
//! a temperature above 1 keeps confidences honest until calibrated); priors 0.
//!
//! Impact vector: `Cause::default_impact`, except a Marketing Misattribution with
//! `spend_uplift >= 0.5` and no recorded promotion (`promo_overlap` 0 or NULL) is
//! `spend leakage` (spend is credited with an uplift it did not cause), and a Social/Viral
//! drop is `baseline drift`.

use std::collections::BTreeMap;

use mrs_core::taxonomy::{Cause, ImpactVector, TierThresholds};
use serde::{Deserialize, Serialize};

use crate::features::Features;
use crate::shape::{duration_hours, excess_units, shape};

/// One row of the weight table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalWeight {
    pub signal: String,
    pub cause: Cause,
    pub weight: f64,
}

/// The attribution model as data: fit and calibrate it, then serialise it (JSON) and load it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionModel {
    /// Identifies the weights in logs and evaluations.
    pub version: String,
    /// Softmax temperature applied to the scores.
    pub temperature: f64,
    /// Prior log-odds per cause (missing causes: 0).
    pub priors: Vec<(Cause, f64)>,
    /// The weight table.
    pub weights: Vec<SignalWeight>,
    /// Confidence tiers.
    pub tiers: TierThresholds,
}

const DE: Cause = Cause::DataError;
const MM: Cause = Cause::MarketingMisattribution;
const CS: Cause = Cause::CompetitorStockout;
const SV: Cause = Cause::SocialViral;
const OP: Cause = Cause::OperationalStoreIssue;

/// Default weights (module header table).
const DEFAULT_WEIGHTS: &[(&str, Cause, f64)] = &[
    ("dq_integer_multiple", DE, 3.0),
    ("dq_zero_catchup", DE, 3.0),
    ("dq_stuck", DE, 2.5),
    ("dq_negative", DE, 3.0),
    ("dq_ratio_multiple", DE, 2.0),
    ("zero_without_catchup", OP, 2.0),
    ("retailer_wide", DE, 1.5),
    ("retailer_wide", MM, 1.5),
    ("step_shape", MM, 2.0),
    ("brand_concentration", MM, 1.5),
    ("spend_uplift", MM, 2.5),
    ("promo_overlap", MM, 1.5),
    ("ramp_shape", CS, 2.5),
    ("category_substitution", CS, 1.5),
    ("nearby_other_retailer_category", CS, 3.0),
    ("multi_day", CS, 2.0),
    ("spike_decay_shape", SV, 2.0),
    ("few_sku_concentration", SV, 2.0),
    ("co_sku_stores", SV, 2.5),
    ("co_sku_retailers", SV, 1.5),
    ("social_uplift", SV, 3.0),
    ("spike_direction", MM, 0.5),
    ("spike_direction", CS, 0.5),
    ("spike_direction", SV, 0.5),
    ("drop_direction", OP, 1.0),
    ("sudden_drop", OP, 1.5),
    ("deep_drop", OP, 1.0),
    ("all_skus_affected", OP, 2.0),
    ("all_skus_affected", DE, 0.5),
    ("short_duration", OP, 1.0),
    ("isolated", OP, 2.0),
];

impl Default for AttributionModel {
    fn default() -> Self {
        Self {
            version: "mrs-attribute-default-1".to_string(),
            temperature: 1.5,
            priors: Cause::ALL.iter().map(|c| (*c, 0.0)).collect(),
            weights: DEFAULT_WEIGHTS
                .iter()
                .map(|(s, c, w)| SignalWeight {
                    signal: (*s).to_string(),
                    cause: *c,
                    weight: *w,
                })
                .collect(),
            tiers: TierThresholds::default(),
        }
    }
}

/// A signal observed on a report: `value` is the raw feature it comes from, `phi` its
/// strength in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub name: &'static str,
    pub value: f64,
    pub phi: f64,
}

/// One evidence item: a signal's contribution `weight * phi` to the score of `favours`.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub feature: String,
    pub value: f64,
    pub favours: Cause,
    pub weight: f64,
}

/// One localisation item (Adtributor-style explanatory power of a dimension's top value).
#[derive(Debug, Clone, PartialEq)]
pub struct Localisation {
    pub dimension: &'static str,
    pub value: String,
    pub share: f64,
}

/// The result for one report.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// Causes with their probabilities, best first (ties in `Cause::ALL` order).
    pub ranked: Vec<(Cause, f64)>,
    pub impact_vector: ImpactVector,
    pub confidence_tier: mrs_core::taxonomy::ConfidenceTier,
    pub narrative: String,
    pub evidence: Vec<Evidence>,
    pub localisation: Vec<Localisation>,
}

fn clamp01(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

/// Direction as +1 (spike) / -1 (drop): the `direction` field, else the sign of the relative
/// change, else of the profile's excess.
fn orientation(f: &Features) -> Option<f64> {
    match f.direction.as_deref() {
        Some("spike") | Some("up") => return Some(1.0),
        Some("drop") | Some("down") => return Some(-1.0),
        _ => {}
    }
    let x = f.relative_change.or_else(|| excess_units(&f.profile))?;
    (x != 0.0).then_some(x.signum())
}

/// Duration in hours (profile timestamps, else `duration_buckets` as hours).
pub fn hours(f: &Features) -> Option<f64> {
    duration_hours(&f.profile).or(f.duration_buckets.filter(|d| *d >= 0.0))
}

/// Every signal present in the features (module header table).
pub fn signals(f: &Features) -> Vec<Signal> {
    let mut out = Vec::new();
    let mut push = |name: &'static str, value: f64, phi: f64| {
        out.push(Signal {
            name,
            value,
            phi: clamp01(phi),
        });
    };
    if let Some(v) = f.dq_integer_multiple_share {
        push("dq_integer_multiple", v, v);
    }
    if let (Some(z), Some(c)) = (f.dq_zero_share, f.dq_catchup) {
        push("dq_zero_catchup", c, if z > 0.0 { c } else { 0.0 });
    }
    if let Some(z) = f.dq_zero_share {
        let c = clamp01(f.dq_catchup.unwrap_or(0.0));
        push("zero_without_catchup", z, clamp01(z) * (1.0 - c));
    }
    if let Some(v) = f.dq_stuck_share {
        push("dq_stuck", v, v);
    }
    if let Some(v) = f.dq_negative_count {
        push("dq_negative", v, v);
    }
    if let Some(r) = f.dq_ratio.filter(|r| *r > 0.0) {
        let phi = [2.0, 10.0, 100.0, 0.5, 0.1, 0.01]
            .iter()
            .map(|k: &f64| 1.0 - (r / k).ln().abs() / 0.1)
            .fold(0.0f64, f64::max);
        push("dq_ratio_multiple", r, phi);
    }
    if let Some(v) = f.co_retailer_share {
        push("retailer_wide", v, v);
    }
    let sign = orientation(f);
    let sh = sign.and_then(|s| shape(&f.profile, s));
    match (sign, sh) {
        (Some(s), Some(sh)) if s > 0.0 => {
            push("step_shape", sh.step, sh.step);
            push("spike_decay_shape", sh.spike_decay, sh.spike_decay);
            push("ramp_shape", sh.ramp, sh.ramp);
        }
        (Some(_), Some(sh)) => {
            push("sudden_drop", sh.rise_fast, sh.rise_fast);
            push("ramp_shape", sh.ramp, sh.ramp);
        }
        _ => {}
    }
    if let Some(v) = f.top_brand_share {
        push("brand_concentration", v, (v - 0.3) / 0.5);
    }
    if let Some(v) = f.spend_ratio {
        push("spend_uplift", v, v - 1.0);
    }
    if let Some(v) = f.promo_overlap {
        push("promo_overlap", v, v);
    }
    if let Some(v) = f.top_category_share {
        let sku = clamp01(f.top_sku_share.unwrap_or(0.5));
        push(
            "category_substitution",
            v,
            clamp01((v - 0.3) / 0.5) * (1.0 - sku),
        );
    }
    if let Some(v) = f.co_category_other_retailer_nearby {
        push("nearby_other_retailer_category", v, v / 3.0);
    }
    if let Some(h) = hours(f) {
        push("multi_day", h, (h - 24.0) / 48.0);
        push("short_duration", h, (36.0 - h) / 24.0);
    }
    if let Some(v) = f.top_sku_share {
        let few = if f.affected_skus.is_some_and(|a| a > 3.0) {
            0.5
        } else {
            1.0
        };
        push("few_sku_concentration", v, clamp01((v - 0.3) / 0.5) * few);
    }
    if let Some(v) = f.co_sku_stores {
        push("co_sku_stores", v, v / 10.0);
    }
    if let Some(v) = f.co_sku_retailers {
        push("co_sku_retailers", v, (v - 1.0) / 2.0);
    }
    if let Some(v) = f.social_ratio {
        push("social_uplift", v, (v - 1.0) / 3.0);
    }
    match sign {
        Some(s) if s > 0.0 => push("spike_direction", 1.0, 1.0),
        Some(_) => {
            push("drop_direction", -1.0, 1.0);
            if let Some(r) = f.relative_change {
                push("deep_drop", r, -r);
            }
        }
        None => {}
    }
    if let (Some(a), Some(t)) = (f.affected_skus, f.total_skus.filter(|t| *t > 0.0)) {
        let share = a / t;
        push("all_skus_affected", share, (share - 0.3) / 0.5);
    }
    let co = [
        f.co_sku_stores,
        f.co_category_other_retailer_nearby,
        f.co_retailer_share.map(|s| 10.0 * s),
    ];
    if co.iter().any(Option::is_some) {
        let total: f64 = co.iter().flatten().map(|v| v.max(0.0)).sum();
        push("isolated", total, 1.0 - total / 3.0);
    }
    out
}

impl AttributionModel {
    /// Loads a model from JSON.
    pub fn from_json(json: &str) -> serde_json::Result<Self> {
        serde_json::from_str(json)
    }

    /// Serialises the model to pretty JSON.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    /// Evidence items: every signal with non-zero strength, once per cause it has a weight for.
    pub fn evidence(&self, signals: &[Signal]) -> Vec<Evidence> {
        let mut out = Vec::new();
        for s in signals.iter().filter(|s| s.phi > 0.0) {
            for w in self
                .weights
                .iter()
                .filter(|w| w.signal == s.name && w.weight != 0.0)
            {
                out.push(Evidence {
                    feature: s.name.to_string(),
                    value: s.value,
                    favours: w.cause,
                    weight: w.weight * s.phi,
                });
            }
        }
        out
    }

    /// Probabilities of the five causes (in `Cause::ALL` order) from the evidence.
    pub fn probabilities(&self, evidence: &[Evidence]) -> [f64; 5] {
        let mut score = [0.0f64; 5];
        for (c, p) in &self.priors {
            if p.is_finite() {
                score[c.index()] += p;
            }
        }
        for e in evidence {
            if e.weight.is_finite() {
                score[e.favours.index()] += e.weight;
            }
        }
        let t = if self.temperature.is_finite() && self.temperature > 0.0 {
            self.temperature
        } else {
            1.0
        };
        let max = score.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp: Vec<f64> = score.iter().map(|s| ((s - max) / t).exp()).collect();
        let z: f64 = exp.iter().sum();
        let mut p = [0.0; 5];
        for (i, e) in exp.iter().enumerate() {
            p[i] = e / z;
        }
        p
    }

    /// Attributes one report.
    pub fn attribute(&self, f: &Features) -> Attribution {
        let sig = signals(f);
        let evidence = self.evidence(&sig);
        let p = self.probabilities(&evidence);
        let mut ranked: Vec<(Cause, f64)> = Cause::ALL.iter().map(|c| (*c, p[c.index()])).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.index().cmp(&b.0.index())));
        let top = ranked[0].0;
        let spend_leak = sig.iter().any(|s| s.name == "spend_uplift" && s.phi >= 0.5)
            && f.promo_overlap.unwrap_or(0.0) < 0.5;
        let impact_vector = match top {
            Cause::MarketingMisattribution if spend_leak => ImpactVector::SpendLeakage,
            Cause::SocialViral if orientation(f).is_some_and(|s| s < 0.0) => {
                ImpactVector::BaselineDrift
            }
            c => c.default_impact(),
        };
        let localisation = localise(f);
        let narrative = crate::narrative::narrative(f, &ranked, &evidence);
        Attribution {
            confidence_tier: self.tiers.tier(ranked[0].1),
            ranked,
            impact_vector,
            narrative,
            evidence,
            localisation,
        }
    }
}

/// Adtributor-style localisation: for each dimension present in the features, its top value and
/// the share of the report's excess that value explains. SKU, brand and category shares come
/// from the features; a report is one store, so its retailer and region explain all of it
/// (share 1). Ordered by share (desc), ties from the finest dimension (sku, brand, category,
/// region, retailer). Dimensions whose value is NULL are left out.
pub fn localise(f: &Features) -> Vec<Localisation> {
    let dims: [(&'static str, &Option<String>, Option<f64>); 5] = [
        ("sku", &f.top_sku, f.top_sku_share),
        ("brand", &f.top_brand, f.top_brand_share),
        ("category", &f.top_category, f.top_category_share),
        ("region", &f.region, Some(1.0)),
        ("retailer", &f.retailer_id, Some(1.0)),
    ];
    let mut out: Vec<(usize, Localisation)> = dims
        .iter()
        .enumerate()
        .filter_map(|(i, (d, v, s))| {
            let v = (*v).clone()?;
            Some((
                i,
                Localisation {
                    dimension: d,
                    value: v,
                    share: s.map(clamp01).unwrap_or(0.0),
                },
            ))
        })
        .collect();
    out.sort_by(|a, b| b.1.share.total_cmp(&a.1.share).then(a.0.cmp(&b.0)));
    out.into_iter().map(|(_, l)| l).collect()
}

/// Summed contribution of each signal to one cause.
pub(crate) fn contributions(evidence: &[Evidence], cause: Cause) -> BTreeMap<&str, f64> {
    let mut m = BTreeMap::new();
    for e in evidence.iter().filter(|e| e.favours == cause) {
        *m.entry(e.feature.as_str()).or_insert(0.0) += e.weight;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::tests::profile;

    fn base(direction: &str) -> Features {
        Features {
            direction: Some(direction.into()),
            store_id: Some("S1".into()),
            retailer_id: Some("R1".into()),
            region: Some("North".into()),
            ..Default::default()
        }
    }

    pub(crate) fn data_error() -> Features {
        Features {
            dq_integer_multiple_share: Some(0.9),
            dq_ratio: Some(2.0),
            dq_stuck_share: Some(0.0),
            dq_zero_share: Some(0.0),
            dq_catchup: Some(0.0),
            dq_negative_count: Some(0.0),
            co_retailer_share: Some(0.8),
            relative_change: Some(1.0),
            profile: profile(&[20.0; 8], 10.0),
            ..base("spike")
        }
    }

    pub(crate) fn marketing() -> Features {
        Features {
            top_brand: Some("Acme".into()),
            top_brand_share: Some(0.9),
            spend_ratio: Some(2.5),
            promo_overlap: Some(0.0),
            co_retailer_share: Some(0.6),
            relative_change: Some(0.4),
            profile: profile(&[14.0; 24], 10.0),
            ..base("spike")
        }
    }

    pub(crate) fn stockout() -> Features {
        let ramp: Vec<f64> = (0..72).map(|i| 10.0 + i as f64 / 6.0).collect();
        Features {
            top_category: Some("Milk".into()),
            top_category_share: Some(0.9),
            top_sku_share: Some(0.2),
            affected_skus: Some(8.0),
            total_skus: Some(60.0),
            co_category_other_retailer_nearby: Some(4.0),
            co_sku_stores: Some(1.0),
            relative_change: Some(0.5),
            profile: profile(&ramp, 10.0),
            ..base("spike")
        }
    }

    pub(crate) fn viral() -> Features {
        let spike = [
            60.0, 100.0, 60.0, 40.0, 30.0, 20.0, 15.0, 12.0, 11.0, 11.0, 10.5, 10.5,
        ];
        Features {
            top_sku: Some("SKU-42".into()),
            top_sku_share: Some(0.9),
            affected_skus: Some(1.0),
            total_skus: Some(60.0),
            co_sku_stores: Some(25.0),
            co_sku_retailers: Some(3.0),
            social_ratio: Some(6.0),
            relative_change: Some(2.0),
            profile: profile(&spike, 10.0),
            ..base("spike")
        }
    }

    pub(crate) fn outage() -> Features {
        Features {
            affected_skus: Some(40.0),
            total_skus: Some(40.0),
            relative_change: Some(-0.95),
            co_sku_stores: Some(0.0),
            co_category_other_retailer_nearby: Some(0.0),
            co_retailer_share: Some(0.0),
            profile: profile(&[0.5; 6], 10.0),
            ..base("drop")
        }
    }

    #[test]
    fn each_clear_cut_case_ranks_its_cause_first() {
        let m = AttributionModel::default();
        for (f, cause) in [
            (data_error(), Cause::DataError),
            (marketing(), Cause::MarketingMisattribution),
            (stockout(), Cause::CompetitorStockout),
            (viral(), Cause::SocialViral),
            (outage(), Cause::OperationalStoreIssue),
        ] {
            let a = m.attribute(&f);
            assert_eq!(a.ranked[0].0, cause, "{:?}", a.ranked);
            assert!(a.ranked[0].1 >= 0.5, "{cause}: {:?}", a.ranked);
            let sum: f64 = a.ranked.iter().map(|r| r.1).sum();
            assert!((sum - 1.0).abs() < 1e-12);
            assert!(a.narrative.contains("S1"), "{}", a.narrative);
            assert!(a.narrative.contains(cause.as_str()), "{}", a.narrative);
            assert!(a.evidence.iter().any(|e| e.favours == cause));
        }
    }

    #[test]
    fn null_features_give_low_confidence() {
        let m = AttributionModel::default();
        let a = m.attribute(&Features::default());
        assert!(a.ranked.iter().all(|(_, p)| (p - 0.2).abs() < 1e-12));
        assert_eq!(a.ranked[0].0, Cause::DataError);
        assert_eq!(a.confidence_tier, mrs_core::taxonomy::ConfidenceTier::Low);
        assert!(a.evidence.is_empty() && a.localisation.is_empty());
        assert!(a.narrative.contains("No evidence"), "{}", a.narrative);
    }

    #[test]
    fn nan_features_are_no_evidence() {
        let f = Features {
            dq_ratio: Some(f64::NAN),
            ..Default::default()
        };
        let a = AttributionModel::default().attribute(&f);
        let sum: f64 = a.ranked.iter().map(|r| r.1).sum();
        assert!((sum - 1.0).abs() < 1e-12);
    }

    #[test]
    fn impact_vector_rules() {
        let m = AttributionModel::default();
        assert_eq!(
            m.attribute(&marketing()).impact_vector,
            ImpactVector::SpendLeakage
        );
        let mut promo = marketing();
        promo.promo_overlap = Some(1.0);
        assert_eq!(
            m.attribute(&promo).impact_vector,
            ImpactVector::AttributionError
        );
        assert_eq!(
            m.attribute(&outage()).impact_vector,
            ImpactVector::OperationalDisruption
        );
    }

    #[test]
    fn localisation_orders_by_share_then_granularity() {
        let l = localise(&viral());
        let dims: Vec<&str> = l.iter().map(|l| l.dimension).collect();
        assert_eq!(dims, vec!["region", "retailer", "sku"]);
        assert_eq!(l[2].value, "SKU-42");
    }

    #[test]
    fn model_round_trips_through_json() -> serde_json::Result<()> {
        let m = AttributionModel::default();
        let back = AttributionModel::from_json(&m.to_json()?)?;
        assert_eq!(m, back);
        Ok(())
    }

    #[test]
    fn weights_name_known_signals() {
        let known: std::collections::BTreeSet<&str> =
            [data_error(), marketing(), stockout(), viral(), outage()]
                .iter()
                .flat_map(signals)
                .map(|s| s.name)
                .collect();
        for w in &AttributionModel::default().weights {
            assert!(
                known.contains(w.signal.as_str()),
                "{} is never computed",
                w.signal
            );
        }
    }
}
