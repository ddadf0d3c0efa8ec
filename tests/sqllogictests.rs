//! Runs every `.slt` file of the workspace (`tests/slt/` and `crates/*/tests/slt/`) against a
//! `SessionContext` with all MRS functions registered, the datafusion-variant way.
//!
//! `cargo test --test sqllogictests` checks; `cargo test --test sqllogictests -- --complete`
//! rewrites the expected results. A name filter may follow (`-- detect`). Every failing file is
//! reported, not only the first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_sqllogictest::{DataFusion, df_value_validator, value_normalizer};
use indicatif::ProgressBar;
use sqllogictest::strict_column_validator;

fn slt_files(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.join("tests/slt")];
    if let Ok(crates) = std::fs::read_dir(root.join("crates")) {
        for c in crates.flatten() {
            dirs.push(c.path().join("tests/slt"));
        }
    }
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

fn context() -> datafusion::error::Result<SessionContext> {
    // Two target partitions so that multi-partition plans are exercised even on one core.
    let config = SessionConfig::new()
        .with_target_partitions(2)
        .with_information_schema(true);
    let mut ctx = SessionContext::new_with_config(config);
    // Every crate's functions and the pipeline's own (`mrs_row_key`), as `mrs sql` has them.
    mrs_pipeline::register_all_functions(&mut ctx)?;
    mrs_detect::register_table_functions(&ctx);
    Ok(ctx)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let complete = args.iter().any(|a| a == "--complete");
    let filter: Option<&String> = args.iter().find(|a| !a.starts_with('-'));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    let mut ran = 0usize;
    for path in slt_files(root) {
        let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        if filter.is_some_and(|f| !relative.to_string_lossy().contains(f.as_str())) {
            continue;
        }
        ran += 1;
        let ctx = match context() {
            Ok(c) => Arc::new(c),
            Err(e) => {
                failures.push(format!("{}: context: {e}", relative.display()));
                continue;
            }
        };
        let rel = relative.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let ctx = SessionContext::clone(&ctx);
            let rel = rel.clone();
            async move { Ok(DataFusion::new(ctx, rel, ProgressBar::hidden())) }
        });
        let result = if complete {
            runner
                .update_test_file(
                    &path,
                    " ",
                    df_value_validator,
                    value_normalizer,
                    strict_column_validator,
                )
                .await
                .map_err(|e| e.to_string())
        } else {
            runner.with_column_validator(strict_column_validator);
            runner.with_normalizer(value_normalizer);
            runner.with_validator(df_value_validator);
            runner
                .run_file_async(&path)
                .await
                .map_err(|e| e.to_string())
        };
        match result {
            Ok(()) => println!("ok      {}", relative.display()),
            Err(e) => {
                println!("FAILED  {}", relative.display());
                failures.push(format!("{}:\n{e}", relative.display()));
            }
        }
    }
    let failed = failures.len();
    for f in &failures {
        eprintln!("\n{f}");
    }
    println!("\nsqllogictest: {} passed, {failed} failed", ran - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
