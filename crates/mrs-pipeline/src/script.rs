//! The `sql/` scripts, embedded in the binary, and a statement runner.
//!
//! Scripts are plain DataFusion SQL. The only non-SQL token is `${lake}`, the lake URL, which
//! the runner and the shell substitute (it appears only in `LOCATION` clauses). A failing
//! statement fails the whole run with the script's name, the statement's number and its first
//! line (datafusion-cli's `-f` would print and go on).

use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;

use crate::lake::Lake;

/// A named SQL script.
#[derive(Debug, Clone, Copy)]
pub struct Script {
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! script {
    ($dir:literal, $name:literal) => {
        Script {
            name: concat!($dir, "/", $name),
            sql: include_str!(concat!("../../../sql/", $dir, "/", $name)),
        }
    };
}

/// Migrations, in version order.
pub const MIGRATIONS: &[Script] = &[
    script!("migrations", "V001__create_report_logs.sql"),
    script!("migrations", "V002__create_event_logs.sql"),
    script!("migrations", "V003__default_automation_rules.sql"),
    script!("migrations", "V004__report_alerted_at.sql"),
    script!("migrations", "V005__report_multiple_evidence.sql"),
];

/// Views over inputs and logs: the hydrated objects, recreated in every session.
pub const VIEWS: &[Script] = &[
    script!("views", "00_inputs.sql"),
    script!("views", "01_latest.sql"),
    script!("views", "02_hydrated.sql"),
    script!("views", "03_protection.sql"),
];

/// Pipeline stages, run in order on every arrival.
pub const STAGES: &[Script] = &[
    script!("pipeline", "00_quarantine.sql"),
    script!("pipeline", "01_detect.sql"),
    script!("pipeline", "02_end.sql"),
    script!("pipeline", "03_cluster.sql"),
    script!("pipeline", "04_attribute.sql"),
    script!("pipeline", "05_cohort.sql"),
    script!("pipeline", "06_events.sql"),
    script!("pipeline", "07_automation.sql"),
    script!("pipeline", "08_event_snapshots.sql"),
];

/// Substitutes `${lake}` with the lake URL.
pub fn render(sql: &str, lake: &Lake) -> String {
    sql.replace("${lake}", lake.url())
}

/// Splits a script into parsed statements. (A statement is executed as parsed: the Display form
/// of `CREATE EXTERNAL TABLE` drops the column list, so it is used for messages only.)
pub fn statements(sql: &str) -> Result<Vec<Statement>> {
    Ok(DFParser::parse_sql_with_dialect(sql, &GenericDialect {})?.into())
}

/// Runs every statement of a script; the first failure stops with a message naming the script
/// and the statement.
pub async fn run_script(ctx: &SessionContext, lake: &Lake, script: &Script) -> Result<()> {
    let sql = render(script.sql, lake);
    let stmts = statements(&sql)
        .map_err(|e| DataFusionError::Plan(format!("script {}: cannot parse: {e}", script.name)))?;
    for (i, stmt) in stmts.iter().enumerate() {
        run_parsed(ctx, stmt.clone()).await.map_err(|e| {
            let first_line: String = stmt.to_string().chars().take(160).collect();
            DataFusionError::Execution(format!(
                "script {} statement {} failed: {e}\n  statement: {first_line}…",
                script.name,
                i + 1
            ))
        })?;
    }
    Ok(())
}

/// Runs one statement given as text to completion.
pub async fn run_statement(ctx: &SessionContext, sql: &str) -> Result<()> {
    ctx.sql(sql).await?.collect().await?;
    Ok(())
}

/// Runs one parsed statement to completion.
pub async fn run_parsed(ctx: &SessionContext, statement: Statement) -> Result<()> {
    let plan = ctx.state().statement_to_plan(statement).await?;
    ctx.execute_logical_plan(plan).await?.collect().await?;
    Ok(())
}

/// Recreates every view of `sql/views`.
pub async fn run_views(ctx: &SessionContext, lake: &Lake) -> Result<()> {
    for script in VIEWS {
        run_script(ctx, lake, script).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_script_parses() {
        for s in MIGRATIONS.iter().chain(VIEWS).chain(STAGES) {
            let n = statements(s.sql).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert!(!n.is_empty(), "{} has no statement", s.name);
        }
    }
}
