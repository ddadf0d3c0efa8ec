//! Plain-English narrative of an attribution: where, how much, and why this cause rather than
//! the runner-up (the signal with the largest score difference between the two).

use mrs_core::taxonomy::Cause;

use crate::features::Features;
use crate::model::{Evidence, contributions, hours};
use crate::shape::excess_units;

/// Phrase for a signal, used in "mainly because of ...".
fn phrase(signal: &str) -> &'static str {
    match signal {
        "dq_integer_multiple" => "values that are exact integer multiples of normal",
        "dq_zero_catchup" => "zeros followed by a catch-up spike",
        "dq_stuck" => "stuck repeated values",
        "dq_negative" => "negative unit values",
        "dq_ratio_multiple" => "an actual/baseline ratio close to x2, x10 or x100",
        "zero_without_catchup" => "zero sales with no catch-up",
        "retailer_wide" => "concurrent reports across the retailer's stores",
        "step_shape" => "a step-shaped change",
        "brand_concentration" => "concentration on one brand",
        "spend_uplift" => "marketing spend above its recent level",
        "promo_overlap" => "an overlapping recorded promotion",
        "ramp_shape" => "a gradual ramp",
        "category_substitution" => "a category-wide uplift spread over several SKUs",
        "nearby_other_retailer_category" => "same-category reports at nearby competitors",
        "multi_day" => "a duration of several days",
        "spike_decay_shape" => "a fast rise followed by decay",
        "few_sku_concentration" => "concentration on one to three SKUs",
        "co_sku_stores" => "the same SKU spiking at other stores",
        "co_sku_retailers" => "several retailers sharing the SKU spike",
        "social_uplift" => "a surge in social mentions",
        "spike_direction" => "an upward move",
        "drop_direction" => "a drop in sales",
        "sudden_drop" => "a sudden drop",
        "deep_drop" => "a near-total loss of sales",
        "all_skus_affected" => "most of the store's SKUs being affected",
        "short_duration" => "a duration of hours",
        "isolated" => "no concurrent reports elsewhere",
        "drop_ramp_shape" => "a gradual decline",
        "drop_category_concentration" => "a drop concentrated on one category",
        "drop_nearby_other_retailer_category" => {
            "a same-category drop while nearby competitors rise"
        }
        "drop_multi_day" => "a drop lasting days",
        "many_affected_skus" => "many SKUs affected at once",
        "co_sku_stores_wide" => "the same SKU moving at many other stores",
        "sku_retailer_coverage" => "the same SKUs moving across the retailer's stores",
        "sku_other_retailer_coverage" => "the same SKUs moving at other retailers' stores",
        "brand_retailer_coverage" => "the same brand moving across the retailer's stores",
        "brand_other_retailer_coverage" => "the same brand moving at other retailers' stores",
        "category_other_retailer_coverage" => "the same category moving at other retailers",
        "sku_same_retailer_share" => "the same SKUs moving mostly at this retailer",
        "brand_same_retailer_share" => "the same brand moving mostly at this retailer",
        "spend_uplift_any" => "marketing spend above its recent level on a driving brand",
        "social_uplift_any" => "a surge in social mentions of a driving SKU",
        "category_nearby_share" => "same-category moves concentrated at nearby competitors",
        "dq_catchup_spike" => "a spike that catches up units missed while the feed showed zeros",
        "zero_feed_wide" => "zero sales reported across the retailer's feed at once",
        "isolated_spike" => "a spike at this store alone",
        "dq_ratio_large" => "actual units many times the baseline",
        "catchup_after_zeros" => "a spike right after the store's feed showed zeros",
        "sold_below_zero" => "sales summing below zero, which only negated values give",
        _ => "the combined evidence",
    }
}

fn fmt_num(x: f64) -> String {
    if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// A probability as a rounded percentage that never claims certainty.
fn fmt_pct(p: f64) -> String {
    if p >= 0.995 {
        "over 99%".to_string()
    } else if p < 0.005 {
        "under 1%".to_string()
    } else {
        format!("{:.0}%", p * 100.0)
    }
}

/// One or two sentences (module header).
pub fn narrative(f: &Features, ranked: &[(Cause, f64)], evidence: &[Evidence]) -> String {
    let mut place = match &f.store_id {
        Some(s) => format!("Store {s}"),
        None => "An unknown store".to_string(),
    };
    match (&f.retailer_id, &f.region) {
        (Some(r), Some(g)) => place.push_str(&format!(" ({r}, {g})")),
        (Some(r), None) => place.push_str(&format!(" ({r})")),
        (None, Some(g)) => place.push_str(&format!(" ({g})")),
        (None, None) => {}
    }
    let units = excess_units(&f.profile);
    let pct = f.relative_change.map(|r| r * 100.0);
    let up = units
        .or(f.relative_change)
        .map(|x| x >= 0.0)
        .or(match f.direction.as_deref() {
            Some("spike") => Some(true),
            Some("drop") => Some(false),
            _ => None,
        });
    let amount = match (pct, units) {
        (Some(p), Some(u)) => format!(" {:.0}% ({} units)", p.abs(), fmt_num(u.abs())),
        (Some(p), None) => format!(" {:.0}%", p.abs()),
        (None, Some(u)) => format!(" {} units", fmt_num(u.abs())),
        (None, None) => String::new(),
    };
    let mut first = match up {
        Some(up) => format!(
            "{place} sold{amount} {} baseline",
            if up { "above" } else { "below" }
        ),
        None => format!("{place} has a report without sales figures"),
    };
    if let Some(h) = hours(f) {
        if h >= 48.0 {
            first.push_str(&format!(" over {} days", fmt_num(h / 24.0)));
        } else if fmt_num(h) == "1" {
            first.push_str(" over 1 hour");
        } else {
            first.push_str(&format!(" over {} hours", fmt_num(h)));
        }
    }
    match (&f.top_sku, &f.top_category) {
        (Some(s), Some(c)) => first.push_str(&format!(", led by SKU {s} in {c}")),
        (Some(s), None) => first.push_str(&format!(", led by SKU {s}")),
        (None, Some(c)) => first.push_str(&format!(", led by category {c}")),
        (None, None) => {}
    }
    first.push('.');

    let (top, p1) = ranked[0];
    let (second, p2) = ranked[1];
    let a = contributions(evidence, top);
    let b = contributions(evidence, second);
    let decisive = a
        .keys()
        .chain(b.keys())
        .map(|k| {
            (
                *k,
                a.get(k).copied().unwrap_or(0.0) - b.get(k).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, d)| *d > 0.0)
        .max_by(|x, y| x.1.total_cmp(&y.1).then(y.0.cmp(x.0)));
    let second_sentence = match decisive {
        Some((signal, _)) => format!(
            " Most likely {top} ({}) rather than {second} ({}), mainly because of {}.",
            fmt_pct(p1),
            fmt_pct(p2),
            phrase(signal)
        ),
        None => format!(
            " No evidence separates the causes; {top} ({}) is a low-confidence default.",
            fmt_pct(p1)
        ),
    };
    first + &second_sentence
}
