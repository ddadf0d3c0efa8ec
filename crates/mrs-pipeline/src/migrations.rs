//! Versioned migrations under `sql/migrations/` (DESIGN §6).
//!
//! A migration's `CREATE EXTERNAL TABLE` statements declare log tables over append-only folders;
//! they are registered in every session, in version order. A later migration changes a log's
//! columns by `DROP TABLE IF EXISTS` and a new declaration over the same folder: the latest
//! declaration is the schema, and old files read a column they lack as NULL. Its
//! other statements (seed rows) run once, when the migration is first applied. Applied
//! migrations are recorded in `meta/migrations` with a BLAKE3 checksum; a changed applied script
//! is refused with both checksums named.
//!
//! A run can be killed between a migration's seed rows and its record in `meta/migrations`, so
//! the next run applies it again. Its one-time `INSERT`s into log tables therefore write one
//! file each with a fixed name (`<migration>-<statement>.parquet` in the table's folder) by a
//! single atomic put: applying again replaces the same file instead of adding rows.

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::catalog::TableProvider;
use datafusion::datasource::listing::ListingTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{DmlStatement, LogicalPlan, WriteOp};
use datafusion::object_store::{ObjectStoreExt, PutPayload};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{DataFrame, SessionContext};

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
    register_tables_from(ctx, lake, MIGRATIONS).await
}

/// [`register_tables`] for a given list of migrations (tests use their own).
pub async fn register_tables_from(
    ctx: &SessionContext,
    lake: &Lake,
    migrations: &[Script],
) -> Result<()> {
    register_migrations_log(ctx, lake).await?;
    for m in migrations {
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

/// Runs a one-time statement of a migration; an `INSERT` into a listing table writes its rows
/// to a file named after the migration and the statement, so running it again is harmless.
async fn run_once(
    ctx: &SessionContext,
    lake: &Lake,
    m: &Script,
    index: usize,
    stmt: Statement,
) -> Result<()> {
    let plan = ctx.state().statement_to_plan(stmt).await?;
    let LogicalPlan::Dml(DmlStatement {
        table_name,
        op: WriteOp::Insert(_),
        input,
        ..
    }) = &plan
    else {
        ctx.execute_logical_plan(plan).await?.collect().await?;
        return Ok(());
    };
    let provider: std::sync::Arc<dyn TableProvider> =
        ctx.table_provider(table_name.clone()).await?;
    let Some(folder) = provider
        .downcast_ref::<ListingTable>()
        .and_then(|t| t.table_paths().first())
    else {
        ctx.execute_logical_plan(plan).await?.collect().await?;
        return Ok(());
    };
    // The insert's input is already cast to the table's columns.
    let batches = DataFrame::new(ctx.state(), input.as_ref().clone())
        .collect()
        .await?;
    let schema = std::sync::Arc::new(input.schema().as_arrow().clone());
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, None)?;
    for batch in &batches {
        writer.write(batch)?;
    }
    writer.close()?;
    let stem = m
        .name
        .rsplit('/')
        .next()
        .unwrap_or(m.name)
        .trim_end_matches(".sql");
    let file = folder
        .prefix()
        .clone()
        .join(format!("{stem}-{index}.parquet"));
    lake.store()
        .put(&file, PutPayload::from(bytes))
        .await
        .map_err(|e| DataFusionError::ObjectStore(Box::new(e)))?;
    Ok(())
}

/// Applies pending migrations and refuses changed applied ones. Returns the versions applied.
pub async fn apply(ctx: &SessionContext, lake: &Lake) -> Result<Vec<String>> {
    apply_scripts(ctx, lake, MIGRATIONS).await
}

/// [`apply`] for a given list of migrations, in version order (tests use their own).
pub async fn apply_scripts(
    ctx: &SessionContext,
    lake: &Lake,
    migrations: &[Script],
) -> Result<Vec<String>> {
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
    for m in migrations {
        let sum = checksum(m);
        let previous = recorded.get(m.name);
        if let Some(other) = previous.and_then(|sums| sums.iter().find(|s| **s != sum)) {
            return Err(DataFusionError::Plan(format!(
                "migration {} was applied with checksum {other} but the script now has \
                 checksum {sum}: applied migrations must not change; add a new migration",
                m.name
            )));
        }
        for (i, stmt) in statements(&render(m.sql, lake))?.into_iter().enumerate() {
            if is_declaration(&stmt) {
                run_parsed(ctx, stmt)
                    .await
                    .map_err(|e| script_error(m, &e))?;
            } else if previous.is_none() {
                run_once(ctx, lake, m, i + 1, stmt)
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
