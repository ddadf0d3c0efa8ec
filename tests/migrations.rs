//! Migrations with a test-only set of scripts: a later migration that adds a column to a log
//! reads the old files with NULL in it; an applied migration whose text changed is refused
//! with its name and both checksums; a one-time seed applied twice (a run killed before the
//! migration was recorded) adds its rows once.

mod common;

use common::{runtime, strings};
use datafusion::prelude::SessionContext;
use mrs_pipeline::Lake;
use mrs_pipeline::migrations::{apply_scripts, checksum, register_tables_from};
use mrs_pipeline::script::Script;

const V1: Script = Script {
    name: "migrations/V001__notes.sql",
    sql: "CREATE EXTERNAL TABLE IF NOT EXISTS notes_log (id VARCHAR, note VARCHAR) \
          STORED AS PARQUET LOCATION '${lake}/logs/notes_log/';
          INSERT INTO notes_log VALUES ('seed', 'from the first migration');",
};

/// Adds `priority` to the log: drop the declaration, declare it again over the same folder.
const V2: Script = Script {
    name: "migrations/V002__notes_priority.sql",
    sql: "DROP TABLE IF EXISTS notes_log;
          CREATE EXTERNAL TABLE notes_log (id VARCHAR, note VARCHAR, priority BIGINT) \
          STORED AS PARQUET LOCATION '${lake}/logs/notes_log/';",
};

async fn session(lake: &Lake) -> SessionContext {
    let ctx = mrs_pipeline::session::new_context(mrs_pipeline::session::session_config())
        .expect("context");
    lake.register_object_store(&ctx).expect("store");
    ctx
}

async fn sql(ctx: &SessionContext, text: &str) -> Vec<datafusion::arrow::array::RecordBatch> {
    ctx.sql(text)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run")
}

#[test]
fn an_added_column_reads_old_files_as_null() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(dir.path().to_str().expect("utf-8")).expect("lake");
        let ctx = session(&lake).await;
        assert_eq!(
            apply_scripts(&ctx, &lake, &[V1]).await.expect("V1"),
            vec![V1.name]
        );
        sql(&ctx, "INSERT INTO notes_log VALUES ('old', 'before V2')").await;

        let ctx = session(&lake).await;
        assert_eq!(
            apply_scripts(&ctx, &lake, &[V1, V2]).await.expect("V2"),
            vec![V2.name]
        );
        sql(&ctx, "INSERT INTO notes_log VALUES ('new', 'after V2', 3)").await;

        // A fresh session (the shell's way) sees the latest declaration.
        let ctx = session(&lake).await;
        register_tables_from(&ctx, &lake, &[V1, V2])
            .await
            .expect("register");
        let b = sql(
            &ctx,
            "SELECT id, CAST(priority AS VARCHAR) FROM notes_log ORDER BY id",
        )
        .await;
        assert_eq!(
            strings(&b, 0),
            vec![Some("new".into()), Some("old".into()), Some("seed".into())]
        );
        assert_eq!(strings(&b, 1), vec![Some("3".into()), None, None]);
        // Applying again applies nothing and changes nothing.
        assert!(
            apply_scripts(&ctx, &lake, &[V1, V2])
                .await
                .expect("again")
                .is_empty()
        );
    });
}

#[test]
fn a_changed_applied_migration_is_refused_with_both_checksums() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(dir.path().to_str().expect("utf-8")).expect("lake");
        apply_scripts(&session(&lake).await, &lake, &[V1])
            .await
            .expect("V1");
        let changed = Script {
            name: V1.name,
            sql: "CREATE EXTERNAL TABLE IF NOT EXISTS notes_log (id VARCHAR, note VARCHAR) \
                  STORED AS PARQUET LOCATION '${lake}/logs/notes_log/';
                  INSERT INTO notes_log VALUES ('seed', 'edited after it was applied');",
        };
        let err = apply_scripts(&session(&lake).await, &lake, &[changed])
            .await
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains(V1.name)
                && err.contains(&checksum(&V1))
                && err.contains(&checksum(&changed)),
            "{err}"
        );
    });
}

#[test]
fn a_seed_applied_again_after_a_crash_adds_its_rows_once() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(dir.path().to_str().expect("utf-8")).expect("lake");
        apply_scripts(&session(&lake).await, &lake, &[V1])
            .await
            .expect("V1");
        // The run was killed after the seed, before the record: forget the record.
        std::fs::remove_dir_all(dir.path().join("meta/migrations")).expect("forget");
        let ctx = session(&lake).await;
        assert_eq!(
            apply_scripts(&ctx, &lake, &[V1]).await.expect("again"),
            vec![V1.name]
        );
        let b = sql(&ctx, "SELECT count(*) FROM notes_log").await;
        assert_eq!(strings(&b, 0), vec![Some("1".into())]);
    });
}
