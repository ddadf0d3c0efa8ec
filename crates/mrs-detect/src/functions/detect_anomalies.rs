//! `detect_anomalies('sales_table' [, 'store_col', 'sku_col', 'ts_col', 'units_col'])`: the
//! analyst entry point, a table function that expands to a *view* (DESIGN §6 scale-out rule:
//! a plain logical plan over a registered table that calls `mrs_detect`, so Ballista can ship
//! it; no custom provider executes anything).
//!
//! | item | contract |
//! |---|---|
//! | arguments | string literals: a registered table name (may be qualified), then optionally the store, sku, ts and units column names (defaults `store_id`, `sku`, `ts`, `units`); either 1 or 5 arguments |
//! | expansion | `SELECT store_col AS store_id, r.first_detected_from, ..., r.dq_negative_count FROM (SELECT store_col, unnest(mrs_detect(sku_col, ts_col, units_col)) AS r FROM sales_table GROUP BY store_col)` |
//! | output | one row per report: `store_id` (the store column's type) followed by the report fields of docs/ARCHITECTURE.md, in order |
//! | NULL store | NULL store ids form one group like any GROUP BY |
//! | errors | `plan_err!` for non-literal or missing arguments and unknown tables/columns |
//! | cost | that of `mrs_detect` plus a hash aggregate on the store column |
//!
//! Table functions have no `user_doc`; [`documentation`] carries the same text for
//! `SHOW FUNCTIONS`-style listings.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Column, Result, ScalarValue, TableReference, plan_err};
use datafusion::datasource::{ViewTable, provider_as_source};
use datafusion::execution::session_state::SessionState;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::{DocSection, Documentation, Expr, LogicalPlanBuilder};

use super::mrs_detect::report_fields;

/// Name under which the table function is registered.
pub const NAME: &str = "detect_anomalies";

/// Hand-written documentation (table functions have no `user_doc`).
pub fn documentation() -> Documentation {
    Documentation::builder(
        DocSection {
            include: true,
            label: "MRS Detection Functions",
            description: None,
        },
        "Runs the store-level detector `mrs_detect` over a registered sales table and returns one row per Minority Report: `store_id` then the report fields (first_detected_from, last_anomalous_ts, window_end, as_of, direction, severity, ...). Expands to a plain view, so it runs anywhere the aggregate runs.",
        "detect_anomalies('sales_table' [, 'store_col', 'sku_col', 'ts_col', 'units_col'])",
    )
    .with_sql_example(
        "```sql\n> SELECT store_id, first_detected_from, direction, severity FROM detect_anomalies('sales');\n```",
    )
    .with_argument("sales_table", "Name of a registered table (string literal).")
    .with_argument("store_col", "Store column (default `store_id`).")
    .with_argument("sku_col", "SKU column (default `sku`).")
    .with_argument("ts_col", "Bucket timestamp column (default `ts`).")
    .with_argument("units_col", "Units column (default `units`).")
    .build()
}

/// The table function.
#[derive(Debug, Default)]
pub struct DetectAnomalies;

fn string_arg(e: &Expr, i: usize) -> Result<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Ok(s.clone()),
        other => plan_err!(
            "{NAME}: argument {} must be a string literal, got {other}",
            i + 1
        ),
    }
}

/// Polls a catalog lookup once: registered in-memory and listing schemas answer immediately;
/// a lookup that would wait on I/O is refused rather than blocking the planner.
fn ready<T>(fut: impl Future<Output = T>) -> Option<T> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

impl TableFunctionImpl for DetectAnomalies {
    fn call_with_args(&self, args: TableFunctionArgs<'_, '_>) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let names: Vec<String> = exprs
            .iter()
            .enumerate()
            .map(|(i, e)| string_arg(e, i))
            .collect::<Result<_>>()?;
        let (table, store, sku, ts, units) = match names.as_slice() {
            [t] => (t.as_str(), "store_id", "sku", "ts", "units"),
            [t, s, k, ts, u] => (t.as_str(), s.as_str(), k.as_str(), ts.as_str(), u.as_str()),
            _ => {
                return plan_err!(
                    "{NAME} expects ('table') or ('table', 'store_col', 'sku_col', 'ts_col', 'units_col'), got {} arguments",
                    names.len()
                );
            }
        };
        let Some(state) = args.session().as_any().downcast_ref::<SessionState>() else {
            return plan_err!("{NAME}: needs a DataFusion SessionState");
        };
        let table_ref = TableReference::from(table);
        let schema = state.schema_for_ref(table_ref.clone())?;
        let provider = match ready(schema.table(table_ref.table())) {
            Some(Ok(Some(p))) => p,
            Some(Ok(None)) => return plan_err!("{NAME}: table '{table}' not found"),
            Some(Err(e)) => return Err(e),
            None => {
                return plan_err!(
                    "{NAME}: table '{table}' is not available without I/O; register it first"
                );
            }
        };
        let column = |n: &str| Expr::Column(Column::from_name(n));
        let detect = crate::mrs_detect_udaf()
            .call(vec![column(sku), column(ts), column(units)])
            .alias("report");
        let mut projection = vec![column(store).alias("store_id")];
        projection.extend(
            report_fields()
                .iter()
                .map(|f| get_field(column("report"), f.name().as_str()).alias(f.name())),
        );
        let plan = LogicalPlanBuilder::scan(table_ref, provider_as_source(provider), None)?
            .aggregate(vec![column(store)], vec![detect])?
            .unnest_column("report")?
            .project(projection)?
            .build()?;
        let definition = format!(
            "SELECT {store} AS store_id, report.* FROM (SELECT {store}, unnest(mrs_detect({sku}, {ts}, {units})) AS report FROM {table} GROUP BY {store})"
        );
        Ok(Arc::new(ViewTable::new(plan, Some(definition))))
    }
}
