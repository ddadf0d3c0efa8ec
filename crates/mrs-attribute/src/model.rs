//! The attribution model: bounded signals computed from the features, a table of weights (data,
//! serde) turning them into per-cause scores, a softmax into probabilities, and the evidence,
//! localisation and narrative built from the same numbers.
//!
//! Score of a cause `c`: `s_c = prior_c + sum over signals k of weight(k, c) * phi_k`, where
//! every `phi_k` is in [0, 1] and absent when its inputs are NULL (no evidence). Probabilities
//! are `softmax(s / temperature)`. This is a multinomial logistic regression over the `phi`:
//! the shipped model ([`AttributionModel::default`], `model/attribution.json`) is fitted on
//! training lakes by [`crate::train`] (`mrs train-attribution`), with the temperature
//! calibrated on held-out lakes. [`AttributionModel::hand_set`] keeps the hand-set starting
//! weights of the table below. The evidence `weight` reported for a signal is its contribution
//! `weight * phi` before the temperature; the logged evidence lists, per present signal, the
//! causes it raises (or, if it raises none, the one it lowers least), so every present signal
//! and its `value` are on record and `phi` is a function of that value alone ([`phi_of`]).
//!
//! Signals (`value` recorded, `phi` from it, hand-set weights of [`AttributionModel::hand_set`]):
//!
//! | signal | value | phi | favours (hand-set weight) |
//! |---|---|---|---|
//! | `dq_integer_multiple` | `dq_integer_multiple_share` | value | Data Error 3.0 |
//! | `dq_multiple_evidence` | `dq_multiple_evidence`: `-log10` of the chance of the window's exact multiples of 2, 3, 10, 100 or 1000 | `(value - 2) / 4` | Data Error 3.0 |
//! | `dq_zero_catchup` | `dq_catchup` when `dq_zero_share > 0`, else 0 | value | Data Error 3.0 |
//! | `zero_without_catchup` | `dq_zero_share * (1 - dq_catchup)` | value | Operational 2.0 |
//! | `dq_stuck` | `dq_stuck_share` | value | Data Error 2.5 |
//! | `dq_negative` | `dq_negative_count` | `min(1, value)` | Data Error 3.0 |
//! | `dq_ratio_multiple` | `dq_ratio` | `max(0, 1 - abs(ln(value / k)) / 0.1)`, k in {2, 10, 100, 1/2, 1/10, 1/100} | Data Error 2.0 |
//! | `retailer_wide` | `co_retailer_share` | value | Data Error 1.5, Marketing 1.5 |
//! | `step_shape` | profile step score, spikes only | value | Marketing 2.0 |
//! | `spike_decay_shape` | profile spike-and-decay score, spikes only | value | Social 2.0 |
//! | `ramp_shape` | profile ramp score, spikes only | value | Competitor 2.5 |
//! | `sudden_drop` | profile rise speed, drops only | value | Operational 1.5 |
//! | `drop_ramp_shape` | profile ramp score, drops only | value | Competitor 1.0 |
//! | `brand_concentration` | `top_brand_share` | `(value - 0.3) / 0.5` | Marketing 1.5 |
//! | `spend_uplift` | `spend_ratio` | `value - 1` | Marketing 2.5 |
//! | `promo_overlap` | `promo_overlap` | value | Marketing 1.5 |
//! | `category_substitution` | `top_category_share * (1 - top_sku_share)` (top_sku_share 0.5 if NULL) | `value / 0.6` | Competitor 1.5 |
//! | `drop_category_concentration` | `top_category_share`, drops only | `(value - 0.3) / 0.5` | Competitor 1.5 |
//! | `nearby_other_retailer_category` | `co_category_other_retailer_nearby` | `value / 3` | Competitor 3.0 |
//! | `drop_nearby_other_retailer_category` | the same, drops only | `value / 3` | Competitor 2.0 |
//! | `multi_day` | duration in hours | `(value - 24) / 48` | Competitor 2.0 |
//! | `drop_multi_day` | the same, drops only | `(value - 24) / 48` | Competitor 1.5 |
//! | `short_duration` | duration in hours | `(36 - value) / 24` | Operational 1.0 |
//! | `few_sku_concentration` | `top_sku_share` | `(value - 0.3) / 0.5` | Social 2.0 |
//! | `many_affected_skus` | `affected_skus` | `(value - 3) / 10` | Operational 0.5 |
//! | `co_sku_stores` | `co_sku_stores` | `value / 10` | Social 2.5 |
//! | `co_sku_stores_wide` | `co_sku_stores` | `value / 40` | (fitted only) |
//! | `sku_retailer_coverage` | share of the retailer's other stores with a concurrent same-direction report sharing a top SKU | value | (fitted only) |
//! | `sku_other_retailer_coverage` | share of other retailers' stores with such a report | value | (fitted only) |
//! | `brand_retailer_coverage` | share of the retailer's other stores with a concurrent same-direction report on the same top brand | value | (fitted only) |
//! | `brand_other_retailer_coverage` | share of other retailers' stores with such a report | value | (fitted only) |
//! | `category_other_retailer_coverage` | share of other retailers' stores with a concurrent same-direction report in the same top category | value | (fitted only) |
//! | `category_nearby_share` | share of those that are within 50 km | value | (fitted only) |
//! | `sku_same_retailer_share` | of the other stores with a concurrent same-direction report sharing a top SKU, the share at the report's retailer | value | (fitted only) |
//! | `brand_same_retailer_share` | the same for the top brand | value | (fitted only) |
//! | `spend_uplift_any` | `spend_ratio_max`: the largest spend ratio over the brands of the top 3 SKUs | `value - 1` | (fitted only) |
//! | `social_uplift_any` | `social_ratio_max`: the largest mention ratio over the top 3 SKUs | `(value - 1) / 3` | (fitted only) |
//! | `co_sku_retailers` | `co_sku_retailers` | `(value - 1) / 2` | Social 1.5 |
//! | `social_uplift` | `social_ratio` | `(value - 1) / 3` | Social 3.0 |
//! | `spike_direction` | 1 for a spike | value | Marketing 0.5, Competitor 0.5, Social 0.5 |
//! | `drop_direction` | 1 for a drop | value | Operational 1.0 |
//! | `deep_drop` | `relative_change`, drops only | `-value` | Operational 1.0 |
//! | `all_skus_affected` | `affected_skus / total_skus` | `(value - 0.3) / 0.5` | Operational 2.0, Data Error 0.5 |
//! | `isolated` | `co_sku_stores + co_category_other_retailer_nearby + 10 co_retailer_share` (needs one of them) | `1 - value / 3` | Operational 2.0 |
//! | `dq_catchup_spike` | `dq_catchup`, spikes only, whether or not the zeros are in the same report (detector 0.3 reports the zero run and the catch-up separately) | value | (fitted only) |
//! | `zero_feed_wide` | `dq_zero_share * min(1, co_retailer_share)`: zeros while the retailer's other stores report too (one feed) | value | (fitted only) |
//! | `isolated_spike` | the `isolated` value, spikes only (a one-store spike on few SKUs: unit slips, duplicates) | `1 - value / 3` | (fitted only) |
//! | `dq_ratio_large` | `dq_ratio`, spikes only | `(value - 3) / 7` | (fitted only) |
//! | `catchup_after_zeros` | `preceding_zero_share`, spikes only: the zero share of a drop at the store that began before the spike and was still anomalous at most 3 hours before it began (a feed's zero run, then its catch-up as a report of its own) | value | (fitted only) |
//! | `sold_below_zero` | `relative_change`, drops whose window sums below zero: units that no store sells, a feed's negated values outweighing the rest | `(-value - 1) / 0.1` | (fitted only) |
//!
//! Every phi is clamped to [0, 1]. Duration comes from the profile's timestamps, else from
//! `duration_buckets` read as hours. Hand-set: temperature 1.5, priors 0.
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
    ("dq_multiple_evidence", DE, 3.0),
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
    ("drop_ramp_shape", CS, 1.0),
    ("drop_category_concentration", CS, 1.5),
    ("drop_nearby_other_retailer_category", CS, 2.0),
    ("drop_multi_day", CS, 1.5),
    ("many_affected_skus", OP, 0.5),
];

/// The fitted model shipped with the crate: `model/attribution.json`, written by
/// `mrs train-attribution` (see [`crate::train`]).
pub const FITTED_MODEL_JSON: &str = include_str!("../model/attribution.json");

static FITTED: std::sync::LazyLock<AttributionModel> = std::sync::LazyLock::new(|| {
    AttributionModel::from_json(FITTED_MODEL_JSON)
        .expect("crates/mrs-attribute/model/attribution.json is a valid AttributionModel")
});

impl Default for AttributionModel {
    /// The fitted model shipped with the crate ([`FITTED_MODEL_JSON`]).
    fn default() -> Self {
        FITTED.clone()
    }
}

impl AttributionModel {
    /// The fitted model, shared (no copy).
    pub fn fitted() -> &'static AttributionModel {
        &FITTED
    }

    /// The hand-set weights of the module header table (temperature 1.5, priors 0): the
    /// starting point before any fit, kept for comparison and tests.
    pub fn hand_set() -> Self {
        Self {
            version: "mrs-attribute-hand-set-2".to_string(),
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

/// The logged evidence ([`AttributionModel::evidence`]): per present signal, the causes it
/// raises, else the one it lowers least, else (no weight at all) one item with weight 0 for
/// `top`, so that every present signal's value is on record.
fn evidence_of(signals: &[Signal], all: &[Evidence], top: Cause) -> Vec<Evidence> {
    let mut out: Vec<Evidence> = Vec::new();
    for s in signals.iter().filter(|s| s.phi > 0.0) {
        let group: Vec<&Evidence> = all.iter().filter(|e| e.feature == s.name).collect();
        if group.iter().any(|e| e.weight > 0.0) {
            out.extend(
                group
                    .iter()
                    .filter(|e| e.weight > 0.0)
                    .map(|e| (*e).clone()),
            );
        } else if let Some(e) = group.iter().max_by(|a, b| {
            a.weight
                .total_cmp(&b.weight)
                .then(b.favours.index().cmp(&a.favours.index()))
        }) {
            out.push((*e).clone());
        } else {
            out.push(Evidence {
                feature: s.name.to_string(),
                value: s.value,
                favours: top,
                weight: 0.0,
            });
        }
    }
    out
}

/// `softmax(score / t)`; a non-finite or non-positive temperature counts as 1.
pub fn softmax(score: &[f64; 5], t: f64) -> [f64; 5] {
    let t = if t.is_finite() && t > 0.0 { t } else { 1.0 };
    let max = score.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = score.iter().map(|s| ((s - max) / t).exp()).collect();
    let z: f64 = exp.iter().sum();
    let mut p = [0.0; 5];
    for (i, e) in exp.iter().enumerate() {
        p[i] = e / z;
    }
    p
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

/// Strength `phi` in [0, 1] of a signal from its recorded `value` (module header table). Every
/// signal's strength is a function of its value alone, so the `evidence` list of the attribution
/// log (which records each present signal's value) is enough to refit the weights.
pub fn phi_of(name: &str, v: f64) -> f64 {
    let x = match name {
        "dq_negative" => v.min(1.0),
        "dq_ratio_multiple" => {
            if v > 0.0 {
                [2.0, 10.0, 100.0, 0.5, 0.1, 0.01]
                    .iter()
                    .map(|k: &f64| 1.0 - (v / k).ln().abs() / 0.1)
                    .fold(0.0f64, f64::max)
            } else {
                0.0
            }
        }
        "brand_concentration" | "few_sku_concentration" | "drop_category_concentration" => {
            (v - 0.3) / 0.5
        }
        "all_skus_affected" => (v - 0.3) / 0.5,
        "spend_uplift" | "spend_uplift_any" => v - 1.0,
        "category_substitution" => v / 0.6,
        "nearby_other_retailer_category" | "drop_nearby_other_retailer_category" => v / 3.0,
        "multi_day" | "drop_multi_day" => (v - 24.0) / 48.0,
        "short_duration" => (36.0 - v) / 24.0,
        "co_sku_stores" => v / 10.0,
        "co_sku_stores_wide" => v / 40.0,
        "co_sku_retailers" => (v - 1.0) / 2.0,
        "social_uplift" | "social_uplift_any" => (v - 1.0) / 3.0,
        "deep_drop" => -v,
        "sold_below_zero" => (-v - 1.0) / 0.1,
        "isolated" | "isolated_spike" => 1.0 - v / 3.0,
        "dq_ratio_large" => (v - 3.0) / 7.0,
        "dq_multiple_evidence" => (v - 2.0) / 4.0,
        "many_affected_skus" => (v - 3.0) / 10.0,
        _ => v,
    };
    clamp01(x)
}

/// Every signal present in the features (module header table).
pub fn signals(f: &Features) -> Vec<Signal> {
    let mut out = Vec::new();
    let mut push = |name: &'static str, value: f64| {
        if value.is_finite() {
            out.push(Signal {
                name,
                value,
                phi: phi_of(name, value),
            });
        }
    };
    let sign = orientation(f);
    let spike = sign.is_some_and(|s| s > 0.0);
    let drop = sign.is_some_and(|s| s < 0.0);
    if let Some(v) = f.dq_integer_multiple_share {
        push("dq_integer_multiple", v);
    }
    if let Some(v) = f.dq_multiple_evidence {
        push("dq_multiple_evidence", v);
    }
    if let (Some(z), Some(c)) = (f.dq_zero_share, f.dq_catchup) {
        push("dq_zero_catchup", if z > 0.0 { c } else { 0.0 });
    }
    if let Some(z) = f.dq_zero_share {
        let c = clamp01(f.dq_catchup.unwrap_or(0.0));
        push("zero_without_catchup", clamp01(z) * (1.0 - c));
    }
    if let Some(v) = f.dq_stuck_share {
        push("dq_stuck", v);
    }
    if let Some(v) = f.dq_negative_count {
        push("dq_negative", v);
    }
    if let Some(r) = f.dq_ratio.filter(|r| *r > 0.0) {
        push("dq_ratio_multiple", r);
    }
    if let Some(v) = f.co_retailer_share {
        push("retailer_wide", v);
    }
    let sh = sign.and_then(|s| shape(&f.profile, s));
    match (sign, sh) {
        (Some(s), Some(sh)) if s > 0.0 => {
            push("step_shape", sh.step);
            push("spike_decay_shape", sh.spike_decay);
            push("ramp_shape", sh.ramp);
        }
        (Some(_), Some(sh)) => {
            push("sudden_drop", sh.rise_fast);
            push("drop_ramp_shape", sh.ramp);
        }
        _ => {}
    }
    if let Some(v) = f.top_brand_share {
        push("brand_concentration", v);
    }
    if let Some(v) = f.spend_ratio {
        push("spend_uplift", v);
    }
    if let Some(v) = f.promo_overlap {
        push("promo_overlap", v);
    }
    if let Some(v) = f.top_category_share {
        let sku = clamp01(f.top_sku_share.unwrap_or(0.5));
        push("category_substitution", clamp01(v) * (1.0 - sku));
        if drop {
            push("drop_category_concentration", v);
        }
    }
    if let Some(v) = f.co_category_other_retailer_nearby {
        push("nearby_other_retailer_category", v);
        if drop {
            push("drop_nearby_other_retailer_category", v);
        }
    }
    if let Some(h) = hours(f) {
        push("multi_day", h);
        push("short_duration", h);
        if drop {
            push("drop_multi_day", h);
        }
    }
    if let Some(v) = f.top_sku_share {
        push("few_sku_concentration", v);
    }
    if let Some(a) = f.affected_skus {
        push("many_affected_skus", a);
    }
    if let Some(v) = f.co_sku_stores {
        push("co_sku_stores", v);
    }
    if let Some(v) = f.co_sku_retailers {
        push("co_sku_retailers", v);
    }
    if let Some(v) = f.social_ratio {
        push("social_uplift", v);
    }
    if let Some(v) = f.co_sku_stores {
        push("co_sku_stores_wide", v);
    }
    if let Some(v) = f.sku_retailer_coverage {
        push("sku_retailer_coverage", v);
    }
    if let Some(v) = f.sku_other_retailer_coverage {
        push("sku_other_retailer_coverage", v);
    }
    if let Some(v) = f.brand_retailer_coverage {
        push("brand_retailer_coverage", v);
    }
    if let Some(v) = f.brand_other_retailer_coverage {
        push("brand_other_retailer_coverage", v);
    }
    if let Some(v) = f.category_other_retailer_coverage {
        push("category_other_retailer_coverage", v);
    }
    if let Some(v) = f.category_nearby_share {
        push("category_nearby_share", v);
    }
    if let Some(v) = f.sku_same_retailer_share {
        push("sku_same_retailer_share", v);
    }
    if let Some(v) = f.brand_same_retailer_share {
        push("brand_same_retailer_share", v);
    }
    if let Some(v) = f.spend_ratio_max {
        push("spend_uplift_any", v);
    }
    if let Some(v) = f.social_ratio_max {
        push("social_uplift_any", v);
    }

    if spike {
        push("spike_direction", 1.0);
    }
    if drop {
        push("drop_direction", 1.0);
        if let Some(r) = f.relative_change {
            push("deep_drop", r);
            // An outage can take sales to zero, never below: only negated values do that.
            if r < -1.0 {
                push("sold_below_zero", r);
            }
        }
    }
    if let (Some(a), Some(t)) = (f.affected_skus, f.total_skus.filter(|t| *t > 0.0)) {
        push("all_skus_affected", a / t);
    }
    let co = [
        f.co_sku_stores,
        f.co_category_other_retailer_nearby,
        f.co_retailer_share.map(|s| 10.0 * s),
    ];
    if co.iter().any(Option::is_some) {
        let total: f64 = co.iter().flatten().map(|v| v.max(0.0)).sum();
        push("isolated", total);
        if spike {
            push("isolated_spike", total);
        }
    }
    // Data-error signatures that detector 0.3 splits across reports: the catch-up spike is its
    // own report (its zeros are in the previous one), and a feed's zeros come as one report per
    // store, concurrent across the retailer.
    if spike && let Some(c) = f.dq_catchup {
        push("dq_catchup_spike", c);
    }
    if let (Some(z), Some(r)) = (f.dq_zero_share, f.co_retailer_share) {
        push("zero_feed_wide", clamp01(z) * clamp01(r));
    }
    if spike && let Some(r) = f.dq_ratio {
        push("dq_ratio_large", r);
    }
    if spike && let Some(z) = f.preceding_zero_share {
        push("catchup_after_zeros", z);
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

    /// Every non-zero contribution `weight * phi` of a signal to a cause (positive or negative).
    pub fn contributions_all(&self, signals: &[Signal]) -> Vec<Evidence> {
        let mut out = Vec::new();
        for s in signals.iter().filter(|s| s.phi > 0.0) {
            for w in self
                .weights
                .iter()
                .filter(|w| w.signal == s.name && w.weight != 0.0 && w.weight.is_finite())
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

    /// Evidence items: for every signal with non-zero strength, one item per cause it raises
    /// (positive contribution `weight * phi`); a signal that raises no cause appears once, for
    /// the cause it lowers least, so every present signal and its value are on record.
    pub fn evidence(&self, signals: &[Signal]) -> Vec<Evidence> {
        let p = self.probabilities(signals);
        let top = Cause::ALL
            .iter()
            .copied()
            .max_by(|a, b| {
                p[a.index()]
                    .total_cmp(&p[b.index()])
                    .then(b.index().cmp(&a.index()))
            })
            .unwrap_or(Cause::DataError);
        evidence_of(signals, &self.contributions_all(signals), top)
    }

    /// Scores (logits before the temperature) of the five causes, in `Cause::ALL` order:
    /// priors plus `weight * phi` over every signal.
    pub fn scores(&self, signals: &[Signal]) -> [f64; 5] {
        let mut score = [0.0f64; 5];
        for (c, p) in &self.priors {
            if p.is_finite() {
                score[c.index()] += p;
            }
        }
        for s in signals.iter().filter(|s| s.phi > 0.0) {
            for w in self
                .weights
                .iter()
                .filter(|w| w.signal == s.name && w.weight.is_finite())
            {
                score[w.cause.index()] += w.weight * s.phi;
            }
        }
        score
    }

    /// Probabilities of the five causes (in `Cause::ALL` order): `softmax(scores / temperature)`.
    pub fn probabilities(&self, signals: &[Signal]) -> [f64; 5] {
        softmax(&self.scores(signals), self.temperature)
    }

    /// Attributes one report.
    pub fn attribute(&self, f: &Features) -> Attribution {
        let sig = signals(f);
        let all = self.contributions_all(&sig);
        let p = self.probabilities(&sig);
        let mut ranked: Vec<(Cause, f64)> = Cause::ALL.iter().map(|c| (*c, p[c.index()])).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.index().cmp(&b.0.index())));
        let top = ranked[0].0;
        let evidence = evidence_of(&sig, &all, top);
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
        let narrative = crate::narrative::narrative(f, &ranked, &all);
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
            dq_multiple_evidence: Some(12.0),
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

    /// One clear-cut feature set per cause.
    fn clear_cut_cases() -> [(Features, Cause); 5] {
        [
            (data_error(), Cause::DataError),
            (marketing(), Cause::MarketingMisattribution),
            (stockout(), Cause::CompetitorStockout),
            (viral(), Cause::SocialViral),
            (outage(), Cause::OperationalStoreIssue),
        ]
    }

    #[test]
    fn each_clear_cut_case_ranks_its_cause_first() {
        let m = AttributionModel::hand_set();
        for (f, cause) in clear_cut_cases() {
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
    fn fitted_model_ranks_clear_cut_cases_among_its_top_three() {
        let m = AttributionModel::default();
        for (f, cause) in clear_cut_cases() {
            let a = m.attribute(&f);
            let rank = a.ranked.iter().position(|r| r.0 == cause);
            eprintln!("{cause}: rank {rank:?} {:?}", a.ranked[0]);
            assert!(rank.is_some_and(|r| r < 3), "{cause}: {:?}", a.ranked);
        }
    }

    #[test]
    fn a_spike_after_a_zero_run_carries_the_catch_up_signal() {
        let value = |f: &Features| {
            signals(f)
                .iter()
                .find(|s| s.name == "catchup_after_zeros")
                .map(|s| (s.value, s.phi))
        };
        let spike = Features {
            preceding_zero_share: Some(0.9),
            ..base("spike")
        };
        assert_eq!(value(&spike), Some((0.9, 0.9)));
        let drop = Features {
            preceding_zero_share: Some(0.9),
            ..base("drop")
        };
        assert_eq!(value(&drop), None, "a drop is the zero run itself");
        assert_eq!(value(&base("spike")), None);
    }

    #[test]
    fn only_a_window_summing_below_zero_is_sold_below_zero() {
        let value = |relative_change: f64, direction: &str| {
            let f = Features {
                relative_change: Some(relative_change),
                ..base(direction)
            };
            signals(&f)
                .iter()
                .find(|s| s.name == "sold_below_zero")
                .map(|s| s.phi)
        };
        assert_eq!(value(-1.0, "drop"), None, "a store that sold nothing");
        assert_eq!(value(-0.9, "drop"), None);
        assert!(value(-1.05, "drop").is_some_and(|phi| (phi - 0.5).abs() < 1e-9));
        assert_eq!(value(-1.4, "drop"), Some(1.0));
        assert_eq!(value(-1.4, "spike"), None, "drops only");
    }

    #[test]
    fn null_features_give_low_confidence() {
        let m = AttributionModel::hand_set();
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
        // The rules, not the fit: the hand-set weights rank these sparse fixtures as named
        // (the fitted model leans on neighbourhood signals the fixtures leave out).
        let m = AttributionModel::hand_set();
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
            crate::train::SIGNALS.iter().copied().collect();
        let computed: std::collections::BTreeSet<&str> =
            [data_error(), marketing(), stockout(), viral(), outage()]
                .iter()
                .flat_map(signals)
                .map(|s| s.name)
                .collect();
        assert!(computed.is_subset(&known), "{computed:?}");
        for m in [AttributionModel::default(), AttributionModel::hand_set()] {
            for w in &m.weights {
                assert!(
                    known.contains(w.signal.as_str()),
                    "{} is never computed",
                    w.signal
                );
            }
        }
    }

    #[test]
    fn phi_is_a_function_of_the_recorded_value() {
        for f in [data_error(), marketing(), stockout(), viral(), outage()] {
            for s in signals(&f) {
                assert_eq!(s.phi, phi_of(s.name, s.value), "{}", s.name);
            }
        }
    }

    #[test]
    fn fitted_model_gives_valid_probabilities_without_evidence() {
        let a = AttributionModel::default().attribute(&Features::default());
        let sum: f64 = a.ranked.iter().map(|r| r.1).sum();
        assert!((sum - 1.0).abs() < 1e-12);
        assert!(a.ranked[0].1 < 0.8, "{:?}", a.ranked);
    }
}
