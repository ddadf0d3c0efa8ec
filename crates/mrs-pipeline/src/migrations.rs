//! Versioned migrations under `sql/migrations/` (DESIGN §6).
//!
//! A migration's `CREATE EXTERNAL TABLE` statements declare log tables over append-only folders;
//! they are registered in every session, in version order, so the latest declaration of a
//! table is its schema (a later migration that adds a column reads old files with NULLs). Its
//! other statements (seed rows) run once, when the migration is first applied. Applied
//! migrations are recorded in `meta/migrations` with a BLAKE3 checksum; a changed applied script
//! is refused with both checksums named.

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;

use crate::lake::Lake;
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast;

use crate::script::{MIGRATIONS, Script, render, run_parsed, run_statement, statements};

const MIGRATIONS_LOG: &str = "mrs_migrations_log";

/// Checksum of a migration's text.
pub fn checksum(script: &Script) -> String {
    blake3::hash(script.sql.as_bytes()).to_hex().to_string()
}

/// Declarations are registered in every session; everything else runs once.
fn is_declaration(stmt: &Statement) -> bool {
    match stmt {
        Statement::CreateExternalTable(_) => true,
        Statement::Statement(s) => matches!(
            s.as_ref(),
            ast::Statement::CreateView { .. } | ast::Statement::Drop { .. }
        ),
        _ => false,
    }
}

async fn register_migrations_log(ctx: &SessionContext, lake: &Lake) -> Result<()> {
    let ddl = format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS {MIGRATIONS_LOG} (version VARCHAR, checksum VARCHAR, \
         applied_at TIMESTAMP(6) WITH TIME ZONE) STORED AS PARQUET LOCATION '{}'",
        lake.folder_url("meta/migrations")
    );
    run_statement(ctx, &ddl).await
}

/// Registers every table the migrations declare, without applying anything (the shell's way).
pub async fn register_tables(ctx: &SessionContext, lake: &Lake) -> Result<()> {
    register_migrations_log(ctx, lake).await?;
    for m in MIGRATIONS {
        for stmt in statements(&render(m.sql, lake))? {
            if is_declaration(&stmt) {
                run_parsed(ctx, stmt)
                    .await
                    .map_err(|e| script_error(m, &e))?;
            }
        }
    }
    Ok(())
}

fn script_error(m: &Script, e: &DataFusionError) -> DataFusionError {
    DataFusionError::Execution(format!("migration {}: {e}", m.name))
}

/// Applies pending migrations and refuses changed applied ones. Returns the versions applied.
pub async fn apply(ctx: &SessionContext, lake: &Lake) -> Result<Vec<String>> {
    register_migrations_log(ctx, lake).await?;
    let applied: Vec<RecordBatch> = ctx
        .sql(&format!("SELECT version, checksum FROM {MIGRATIONS_LOG}"))
        .await?
        .collect()
        .await?;
    // Every checksum ever recorded for a version counts: one that differs is a changed script.
    let mut recorded: std::collections::HashMap<String, Vec<String>> = Default::default();
    for batch in &applied {
        let versions = batch.column(0).as_string::<i32>();
        let sums = batch.column(1).as_string::<i32>();
        for i in 0..batch.num_rows() {
            recorded
                .entry(versions.value(i).to_string())
                .or_default()
                .push(sums.value(i).to_string());
        }
    }
    let mut newly_applied = Vec::new();
    for m in MIGRATIONS {
        let sum = checksum(m);
        let previous = recorded.get(m.name);
        if let Some(other) = previous.and_then(|sums| sums.iter().find(|s| **s != sum)) {
            return Err(DataFusionError::Plan(format!(
                "migration {} was applied with checksum {other} but the script now has \
                 checksum {sum}: applied migrations must not change; add a new migration",
                m.name
            )));
        }
        for stmt in statements(&render(m.sql, lake))? {
            if is_declaration(&stmt) || previous.is_none() {
                run_parsed(ctx, stmt)
                    .await
                    .map_err(|e| script_error(m, &e))?;
            }
        }
        if previous.is_none() {
            run_statement(
                ctx,
                &format!(
                    "INSERT INTO {MIGRATIONS_LOG} VALUES ('{}', '{sum}', now())",
                    m.name
                ),
            )
            .await?;
            newly_applied.push(m.name.to_string());
        }
    }
    Ok(newly_applied)
}
