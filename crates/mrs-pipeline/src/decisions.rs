//! Analyst decisions (DESIGN §7): appended to `minority_decisions_log`, in SQL or through
//! [`record`] (`mrs decide`). They show at once in `minority_events` and `review_queue`; the next
//! run snapshots them into `minority_events_log` and the protection feeds.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::error::{DataFusionError, Result};
use mrs_core::taxonomy::Cause;

use crate::lake::Lake;

/// The actions an analyst (or automation) can take on an event.
pub const ACTIONS: [&str; 5] = ["confirm", "reject", "reattribute", "close", "reopen"];

/// One decision to record.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub event_id: &'a str,
    pub action: &'a str,
    pub cause: Option<&'a str>,
    pub note: &'a str,
    pub decided_by: &'a str,
}

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Validates and appends a decision; returns its id.
pub async fn record(lake: &Lake, decision: &Decision<'_>) -> Result<String> {
    if !ACTIONS.contains(&decision.action) {
        return Err(DataFusionError::Plan(format!(
            "unknown action '{}'; expected one of {}",
            decision.action,
            ACTIONS.join(", ")
        )));
    }
    let cause = match (decision.action, decision.cause) {
        ("reattribute", None) => {
            return Err(DataFusionError::Plan("reattribute needs a cause".into()));
        }
        ("reattribute", Some(c)) => {
            Some(c.parse::<Cause>().map_err(DataFusionError::from)?.as_str())
        }
        (_, Some(_)) => {
            return Err(DataFusionError::Plan(
                "a cause goes with reattribute only".into(),
            ));
        }
        (_, None) => None,
    };
    let ctx = crate::open_session(lake, None).await?;
    let batches = ctx
        .sql(&format!(
            "SELECT count(*) FROM latest_events WHERE report_group_id = {}",
            quoted(decision.event_id)
        ))
        .await?
        .collect()
        .await?;
    let known = batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .map(|b| b.column(0).as_primitive::<Int64Type>().value(0))
        .unwrap_or(0);
    if known == 0 {
        return Err(DataFusionError::Plan(format!(
            "no event {} in {}",
            decision.event_id,
            lake.url()
        )));
    }
    let now = chrono::Utc::now().timestamp_micros();
    let decision_id = format!(
        "D-{}",
        mrs_core::identity::content_hash(&[
            decision.event_id,
            decision.action,
            decision.decided_by,
            &now.to_string()
        ])
    );
    ctx.sql(&format!(
        "INSERT INTO minority_decisions_log VALUES ({}, {}, {}, {}, {}, {}, NULL, \
         CAST('{}' AS TIMESTAMP(6) WITH TIME ZONE), NULL)",
        quoted(&decision_id),
        quoted(decision.event_id),
        quoted(decision.action),
        cause.map_or("NULL".to_string(), quoted),
        quoted(decision.note),
        quoted(decision.decided_by),
        mrs_core::identity::rfc3339_utc_micros(now),
    ))
    .await?
    .collect()
    .await?;
    Ok(decision_id)
}
