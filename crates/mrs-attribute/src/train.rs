//! Fitting the attribution model on training lakes: a multinomial logistic regression over the
//! signal strengths `phi` (one weight per signal and cause, one prior per cause), L2-penalised,
//! with the penalty chosen and the softmax temperature calibrated by leave-one-lake-out
//! cross-validation. `mrs train-attribution LAKE...` runs it and writes
//! `crates/mrs-attribute/model/attribution.json`, which [`AttributionModel::default`] loads.
//!
//! Training data come from the logs of lakes that went through `mrs run` (any model version:
//! the evidence list records every present signal's value, and [`phi_of`] recovers its
//! strength from that value alone), joined to the lake's ground truth with the evaluation's
//! matching rule: a report is labelled with the true anomaly at its store whose
//! `[start, end + 2 buckets)` overlaps the report's window most (ties: smallest anomaly id);
//! reports matching no anomaly are left out. Evaluate on lakes the fit never saw.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::Result;
use datafusion::prelude::SessionContext;
use mrs_core::taxonomy::{Cause, TierThresholds};

use crate::model::{AttributionModel, SignalWeight, phi_of, softmax};

/// Every signal the model computes ([`crate::model::signals`]), in a fixed order.
pub const SIGNALS: &[&str] = &[
    "dq_integer_multiple",
    "dq_zero_catchup",
    "zero_without_catchup",
    "dq_stuck",
    "dq_negative",
    "dq_ratio_multiple",
    "retailer_wide",
    "step_shape",
    "spike_decay_shape",
    "ramp_shape",
    "sudden_drop",
    "drop_ramp_shape",
    "brand_concentration",
    "spend_uplift",
    "promo_overlap",
    "category_substitution",
    "drop_category_concentration",
    "nearby_other_retailer_category",
    "drop_nearby_other_retailer_category",
    "multi_day",
    "short_duration",
    "drop_multi_day",
    "few_sku_concentration",
    "many_affected_skus",
    "co_sku_stores",
    "co_sku_retailers",
    "social_uplift",
    "co_sku_stores_wide",
    "sku_retailer_coverage",
    "sku_other_retailer_coverage",
    "brand_retailer_coverage",
    "brand_other_retailer_coverage",
    "category_other_retailer_coverage",
    "category_nearby_share",
    "sku_same_retailer_share",
    "brand_same_retailer_share",
    "spend_uplift_any",
    "social_uplift_any",
    "spike_direction",
    "drop_direction",
    "deep_drop",
    "all_skus_affected",
    "isolated",
    "dq_catchup_spike",
    "zero_feed_wide",
    "isolated_spike",
    "dq_ratio_large",
    "dq_multiple_evidence",
    "catchup_after_zeros",
    "sold_below_zero",
];

/// One labelled report.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Which training lake it came from (the cross-validation fold).
    pub lake: String,
    pub report_id: String,
    pub cause: Cause,
    /// `phi` of every signal of [`SIGNALS`], 0 when absent.
    pub x: Vec<f64>,
}

/// The export query: labelled signal values of a run lake (module header). `{step}` is the
/// bucket in seconds. Needs `minority_reports`, `latest_attribution`, `sales_clean` and
/// `truth_anomalies` registered.
pub const EXPORT_SQL: &str = "
WITH r AS (
    SELECT report_id, store_id,
           date_part('epoch', window_start) AS rs,
           coalesce(date_part('epoch', window_end),
                    date_part('epoch', coalesce(last_anomalous_ts, window_start)) + {step}) AS re
    FROM minority_reports
    WHERE window_start IS NOT NULL AND store_id IS NOT NULL
), t AS (
    SELECT anomaly_id, cause, unnest(store_ids) AS store_id,
           date_part('epoch', start_ts) AS ts0, date_part('epoch', end_ts) + 2 * {step} AS ts1
    FROM truth_anomalies
    WHERE start_ts <= (SELECT max(ts) FROM sales_clean)
), m AS (
    SELECT r.report_id, t.cause,
           row_number() OVER (PARTITION BY r.report_id
                              ORDER BY least(r.re, t.ts1) - greatest(r.rs, t.ts0) DESC, t.anomaly_id) AS rk
    FROM r JOIN t ON t.store_id = r.store_id
    WHERE least(r.re, t.ts1) > greatest(r.rs, t.ts0)
)
SELECT m.report_id, m.cause, e['feature'] AS feature, max(e['value']) AS value
FROM m
JOIN (SELECT report_id, unnest(evidence) AS e FROM latest_attribution) a ON a.report_id = m.report_id
WHERE m.rk = 1
GROUP BY m.report_id, m.cause, e['feature']
UNION ALL
SELECT m.report_id, m.cause, NULL AS feature, NULL AS value FROM m WHERE m.rk = 1
ORDER BY 1, 3";

/// Labelled samples of one run lake (its session must have `truth_anomalies` registered).
pub async fn samples(ctx: &SessionContext, lake: &str, step_seconds: i64) -> Result<Vec<Sample>> {
    let sql = EXPORT_SQL.replace("{step}", &step_seconds.to_string());
    let batches = ctx.sql(&sql).await?.collect().await?;
    let index: BTreeMap<&str, usize> = SIGNALS.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let mut by_report: BTreeMap<String, Sample> = BTreeMap::new();
    for b in &batches {
        let utf8 = |i: usize| cast(b.column(i), &DataType::Utf8);
        let (ids, causes, feats) = (utf8(0)?, utf8(1)?, utf8(2)?);
        let (ids, causes, feats) = (
            ids.as_string::<i32>(),
            causes.as_string::<i32>(),
            feats.as_string::<i32>(),
        );
        let vals = cast(b.column(3), &DataType::Float64)?;
        let vals = vals.as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            if ids.is_null(r) || causes.is_null(r) {
                continue;
            }
            let Ok(cause) = causes.value(r).parse::<Cause>() else {
                continue;
            };
            let s = by_report
                .entry(ids.value(r).to_string())
                .or_insert_with(|| Sample {
                    lake: lake.to_string(),
                    report_id: ids.value(r).to_string(),
                    cause,
                    x: vec![0.0; SIGNALS.len()],
                });
            if feats.is_null(r) || vals.is_null(r) {
                continue;
            }
            if let Some(k) = index.get(feats.value(r)) {
                s.x[*k] = phi_of(SIGNALS[*k], vals.value(r));
            }
        }
    }
    Ok(by_report.into_values().collect())
}

/// Weights `w[cause][signal]` and biases of a multinomial logistic regression.
#[derive(Debug, Clone, PartialEq)]
pub struct Logit {
    pub w: Vec<[f64; 5]>,
    pub b: [f64; 5],
}

impl Logit {
    fn scores(&self, x: &[f64]) -> [f64; 5] {
        let mut s = self.b;
        for (xi, wi) in x.iter().zip(&self.w) {
            if *xi != 0.0 {
                for c in 0..5 {
                    s[c] += wi[c] * xi;
                }
            }
        }
        s
    }
}

/// Fits the regression by full-batch gradient descent (Adam) on the class-weighted mean
/// negative log-likelihood (weights `sqrt(n / (5 n_cause))`, mean 1) plus `lambda / 2 * |w|^2` (biases not penalised). Deterministic.
pub fn fit_logit(samples: &[&Sample], lambda: f64, iterations: usize) -> Logit {
    let d = SIGNALS.len();
    let mut m = Logit {
        w: vec![[0.0; 5]; d],
        b: [0.0; 5],
    };
    if samples.is_empty() {
        return m;
    }
    // Class weights: sqrt of the balanced weights n / (5 n_c), normalised to a mean of 1, so that
    // rare causes (data errors, outages) are not drowned by the frequent ones.
    let mut count = [0usize; 5];
    for s in samples {
        count[s.cause.index()] += 1;
    }
    let raw: Vec<f64> = (0..5)
        .map(|c| {
            if count[c] == 0 {
                0.0
            } else {
                (samples.len() as f64 / (5.0 * count[c] as f64)).sqrt()
            }
        })
        .collect();
    let mean_w = samples.iter().map(|s| raw[s.cause.index()]).sum::<f64>() / samples.len() as f64;
    let class_w: Vec<f64> = raw.iter().map(|w| w / mean_w).collect();
    let n = samples.len() as f64;
    let (lr, b1, b2, eps): (f64, f64, f64, f64) = (0.05, 0.9, 0.999, 1e-8);
    let mut mw = vec![[0.0; 5]; d];
    let mut vw = vec![[0.0; 5]; d];
    let (mut mb, mut vb) = ([0.0; 5], [0.0; 5]);
    // Sparse rows: (signal index, phi) of the present signals.
    let rows: Vec<(Vec<(usize, f64)>, usize)> = samples
        .iter()
        .map(|s| {
            let nz =
                s.x.iter()
                    .enumerate()
                    .filter(|(_, v)| **v != 0.0)
                    .map(|(k, v)| (k, *v))
                    .collect();
            (nz, s.cause.index())
        })
        .collect();
    for it in 1..=iterations {
        let mut gw = vec![[0.0; 5]; d];
        let mut gb = [0.0; 5];
        for (nz, y) in &rows {
            let mut sc = m.b;
            for (k, v) in nz {
                for (s, w) in sc.iter_mut().zip(&m.w[*k]) {
                    *s += w * v;
                }
            }
            let p = softmax(&sc, 1.0);
            for c in 0..5 {
                let g = class_w[*y] * (p[c] - f64::from(u8::from(c == *y))) / n;
                gb[c] += g;
                for (k, v) in nz {
                    gw[*k][c] += g * v;
                }
            }
        }
        let t = it as i32;
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for k in 0..d {
            for c in 0..5 {
                let g = gw[k][c] + lambda * m.w[k][c];
                mw[k][c] = b1 * mw[k][c] + (1.0 - b1) * g;
                vw[k][c] = b2 * vw[k][c] + (1.0 - b2) * g * g;
                m.w[k][c] -= lr * (mw[k][c] / c1) / ((vw[k][c] / c2).sqrt() + eps);
            }
        }
        for c in 0..5 {
            mb[c] = b1 * mb[c] + (1.0 - b1) * gb[c];
            vb[c] = b2 * vb[c] + (1.0 - b2) * gb[c] * gb[c];
            m.b[c] -= lr * (mb[c] / c1) / ((vb[c] / c2).sqrt() + eps);
        }
    }
    m
}

fn nll(scored: &[([f64; 5], usize)], t: f64) -> f64 {
    scored
        .iter()
        .map(|(s, y)| -softmax(s, t)[*y].max(1e-300).ln())
        .sum::<f64>()
        / scored.len().max(1) as f64
}

/// Temperature minimising the negative log-likelihood of held-out scores (golden section on
/// [0.25, 8]).
pub fn fit_temperature(scored: &[([f64; 5], usize)]) -> f64 {
    let (mut lo, mut hi) = (0.25f64.ln(), 8f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..80 {
        let a = hi - g * (hi - lo);
        let b = lo + g * (hi - lo);
        if nll(scored, a.exp()) < nll(scored, b.exp()) {
            hi = b;
        } else {
            lo = a;
        }
    }
    ((lo + hi) / 2.0).exp()
}

/// What the fit did, for the log of `mrs train-attribution`.
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    pub samples: usize,
    pub per_cause: BTreeMap<String, usize>,
    /// (lambda, cross-validated NLL at temperature 1, top-1 accuracy) per candidate penalty.
    pub lambdas: Vec<(f64, f64, f64)>,
    pub lambda: f64,
    pub temperature: f64,
    /// Cross-validated NLL after the temperature, and top-1.
    pub cv_nll: f64,
    pub cv_top1: f64,
    /// Held-out confusion: `confusion[truth][predicted]` in `Cause::ALL` order.
    pub cv_confusion: [[usize; 5]; 5],
    /// Held-out reliability by confidence decile after the temperature: (n, mean confidence,
    /// accuracy).
    pub cv_calibration: Vec<(usize, f64, f64)>,
}

/// Candidate L2 penalties tried by cross-validation.
pub const LAMBDAS: [f64; 4] = [0.0003, 0.001, 0.003, 0.01];
/// Gradient steps per fit.
pub const ITERATIONS: usize = 1500;

/// Leave-one-lake-out held-out scores for one penalty.
fn held_out(samples: &[Sample], lambda: f64) -> Vec<([f64; 5], usize)> {
    let lakes: std::collections::BTreeSet<&str> = samples.iter().map(|s| s.lake.as_str()).collect();
    let mut out = Vec::new();
    for lake in &lakes {
        let train: Vec<&Sample> = samples.iter().filter(|s| s.lake != *lake).collect();
        let test: Vec<&Sample> = samples.iter().filter(|s| s.lake == *lake).collect();
        let m = if train.is_empty() {
            fit_logit(&test, lambda, ITERATIONS)
        } else {
            fit_logit(&train, lambda, ITERATIONS)
        };
        out.extend(test.iter().map(|s| (m.scores(&s.x), s.cause.index())));
    }
    out
}

fn top1(scored: &[([f64; 5], usize)]) -> f64 {
    let ok = scored
        .iter()
        .filter(|(s, y)| {
            let best = (0..5).max_by(|a, b| s[*a].total_cmp(&s[*b]).then(b.cmp(a)));
            best == Some(*y)
        })
        .count();
    ok as f64 / scored.len().max(1) as f64
}

fn argmax(s: &[f64; 5]) -> usize {
    (0..5)
        .max_by(|a, b| s[*a].total_cmp(&s[*b]).then(b.cmp(a)))
        .unwrap_or(0)
}

fn confusion(scored: &[([f64; 5], usize)]) -> [[usize; 5]; 5] {
    let mut m = [[0; 5]; 5];
    for (s, y) in scored {
        m[*y][argmax(s)] += 1;
    }
    m
}

fn reliability(scored: &[([f64; 5], usize)], t: f64) -> Vec<(usize, f64, f64)> {
    let mut bins = vec![(0usize, 0.0, 0.0); 10];
    for (s, y) in scored {
        let p = softmax(s, t);
        let k = argmax(s);
        let d = ((p[k] * 10.0).floor() as usize).min(9);
        bins[d].0 += 1;
        bins[d].1 += p[k];
        bins[d].2 += f64::from(u8::from(k == *y));
    }
    bins.into_iter()
        .map(|(n, c, a)| {
            let m = n.max(1) as f64;
            (n, c / m, a / m)
        })
        .collect()
}

/// Held-out scores of one sample and its true cause index.
type Scored = ([f64; 5], usize);

/// Fits the model (module header): penalty by leave-one-lake-out NLL, temperature on the
/// held-out scores of that penalty, final weights on every sample.
pub fn fit(samples: &[Sample], version: &str) -> (AttributionModel, FitReport) {
    let mut lambdas = Vec::new();
    let mut best: Option<(f64, f64, Vec<Scored>)> = None;
    for lambda in LAMBDAS {
        let scored = held_out(samples, lambda);
        let t = fit_temperature(&scored);
        let loss = nll(&scored, t);
        lambdas.push((lambda, nll(&scored, 1.0), top1(&scored)));
        if best.as_ref().is_none_or(|(_, l, _)| loss < *l) {
            best = Some((lambda, loss, scored));
        }
    }
    let (lambda, cv_nll, scored) = best.unwrap_or((LAMBDAS[0], f64::NAN, Vec::new()));
    let temperature = fit_temperature(&scored);
    let all: Vec<&Sample> = samples.iter().collect();
    let logit = fit_logit(&all, lambda, ITERATIONS);
    let mut weights = Vec::new();
    for (k, name) in SIGNALS.iter().enumerate() {
        for c in Cause::ALL {
            let w = logit.w[k][c.index()];
            if w != 0.0 {
                weights.push(SignalWeight {
                    signal: (*name).to_string(),
                    cause: c,
                    weight: (w * 1e6).round() / 1e6,
                });
            }
        }
    }
    let mut per_cause = BTreeMap::new();
    for s in samples {
        *per_cause.entry(s.cause.as_str().to_string()).or_insert(0) += 1;
    }
    let model = AttributionModel {
        version: version.to_string(),
        temperature: (temperature * 1e6).round() / 1e6,
        priors: Cause::ALL
            .iter()
            .map(|c| (*c, (logit.b[c.index()] * 1e6).round() / 1e6))
            .collect(),
        weights,
        tiers: TierThresholds::default(),
    };
    let report = FitReport {
        samples: samples.len(),
        per_cause,
        lambdas,
        lambda,
        temperature,
        cv_nll,
        cv_top1: top1(&scored),
        cv_confusion: confusion(&scored),
        cv_calibration: reliability(&scored, temperature),
    };
    (model, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(lake: &str, cause: Cause, k: usize) -> Sample {
        let mut x = vec![0.0; SIGNALS.len()];
        x[k] = 1.0;
        Sample {
            lake: lake.into(),
            report_id: format!("{lake}-{k}"),
            cause,
            x,
        }
    }

    #[test]
    fn separable_signals_are_learned_with_a_finite_temperature() {
        let mut s = Vec::new();
        for lake in ["a", "b", "c"] {
            for _ in 0..5 {
                s.push(sample(lake, Cause::DataError, 0));
                s.push(sample(lake, Cause::SocialViral, 26));
            }
            s.push(sample(lake, Cause::OperationalStoreIssue, 0));
        }
        let (m, r) = fit(&s, "test");
        assert!(r.temperature.is_finite() && r.temperature > 0.0);
        let w = |sig: &str, c: Cause| {
            m.weights
                .iter()
                .find(|w| w.signal == sig && w.cause == c)
                .map_or(0.0, |w| w.weight)
        };
        assert!(
            w("dq_integer_multiple", Cause::DataError)
                > w("dq_integer_multiple", Cause::SocialViral)
        );
        assert!(w("social_uplift", Cause::SocialViral) > w("social_uplift", Cause::DataError));
        assert_eq!(r.samples, 33);
    }

    #[test]
    fn every_signal_has_a_name_the_model_computes() {
        assert_eq!(
            SIGNALS.len(),
            SIGNALS
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
    }
}
