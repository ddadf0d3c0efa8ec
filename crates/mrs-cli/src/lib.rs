//! The `mrs` command.
//!
//! - `mrs` / `mrs sql`: datafusion-cli's shell (`-c`, `-f`, `--format`, `-q`, `--maxrows`, `\d`)
//!   with every MRS function, the lake's inputs, logs and hydrated views registered;
//! - `mrs run`: migrations, then the pipeline; non-zero exit and the failing script named on error;
//! - `mrs synth`: a synthetic lake with ground truth;
//! - `mrs eval`: the lake against its ground truth;
//! - `mrs decide`: an analyst decision on an event;
//! - `mrs demo`: synth `tiny`, run, print the events and the evaluation.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use datafusion::error::{DataFusionError, Result};
use datafusion_cli::object_storage::instrumented::InstrumentedObjectStoreRegistry;
use datafusion_cli::print_format::PrintFormat;
use datafusion_cli::print_options::{MaxRows, PrintOptions};
use mrs_pipeline::{Lake, RunOptions};

#[derive(Debug, Parser)]
#[command(
    name = "mrs",
    version,
    about = "Minority Report System: sales anomalies, events and protection feeds on DataFusion"
)]
pub struct Cli {
    /// Lake location: a local directory or a URL (file://, s3://...).
    #[arg(long, global = true, default_value = "./mrs-lake", env = "MRS_LAKE")]
    lake: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The SQL shell (datafusion-cli) over the lake, with the MRS functions.
    Sql(ShellArgs),
    /// Apply pending migrations, then run every pipeline stage.
    Run {
        /// Run as if at this instant (RFC 3339); later sales buckets are not seen.
        #[arg(long)]
        as_of: Option<String>,
        /// Detect every store from its whole history in one pass, ignoring the detector
        /// checkpoints.
        #[arg(long)]
        full: bool,
        /// Days each slice of a first run's backfill adds (README "Backfill"); 0: one pass.
        #[arg(long, default_value_t = mrs_pipeline::Backfill::default().slice_days,
              value_parser = clap::value_parser!(i64).range(0..))]
        backfill_slice_days: i64,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Write a deterministic synthetic lake with ground truth.
    Synth {
        #[arg(long, default_value = "tiny")]
        preset: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write only the buckets that had arrived by this instant (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Inject no anomalies (for false-positive measurements).
        #[arg(long)]
        no_anomalies: bool,
    },
    /// Evaluate the lake's reports and events against its ground truth.
    Eval {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Record an analyst decision on an event.
    Decide {
        event_id: String,
        #[arg(value_parser = ["confirm", "reject", "reattribute", "close", "reopen"])]
        action: String,
        /// The cause, with `reattribute`.
        #[arg(long)]
        cause: Option<String>,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long, env = "USER", default_value = "analyst")]
        by: String,
    },
    /// Refit the attribution model on run training lakes (synthetic, with ground truth) and
    /// write it as JSON (ship it as crates/mrs-attribute/model/attribution.json).
    TrainAttribution {
        /// Training lakes, each already processed by `mrs run`; never the evaluation lakes.
        #[arg(required = true)]
        lakes: Vec<String>,
        #[arg(long, default_value = "crates/mrs-attribute/model/attribution.json")]
        out: String,
    },
    /// Synthesise the `tiny` preset into a lake, run the pipeline, print events and evaluation.
    Demo {
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Debug, clap::Args)]
struct ShellArgs {
    /// Execute the given command string(s), then exit.
    #[arg(short = 'c', long = "command", num_args = 0..)]
    command: Vec<String>,
    /// Execute commands from file(s), then exit.
    #[arg(short = 'f', long = "file", num_args = 0..)]
    file: Vec<String>,
    #[arg(long, value_enum, default_value_t = PrintFormat::Automatic)]
    format: PrintFormat,
    /// Reduce printing other than the results.
    #[arg(short, long)]
    quiet: bool,
    /// The max number of rows to display for 'Table' format (a number or 'inf').
    #[arg(long, default_value = "40")]
    maxrows: MaxRows,
}

fn parse_instant(s: &str) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp_micros())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
                .map(|d| d.and_utc().timestamp_micros())
        })
        .map_err(|e| DataFusionError::Plan(format!("invalid instant '{s}' (want RFC 3339): {e}")))
}

async fn shell(lake: &Lake, args: ShellArgs) -> Result<()> {
    for f in &args.file {
        if !std::path::Path::new(f).is_file() {
            return Err(DataFusionError::Plan(format!("invalid file '{f}'")));
        }
    }
    let ctx = mrs_pipeline::open_session(lake, None).await?;
    let mut print_options = PrintOptions {
        format: args.format,
        quiet: args.quiet,
        maxrows: args.maxrows,
        color: false,
        instrumented_registry: Arc::new(InstrumentedObjectStoreRegistry::new()),
    };
    if !args.quiet && args.command.is_empty() && args.file.is_empty() {
        println!(
            "MRS shell over {} (DataFusion CLI v{}). \\d lists tables, SHOW FUNCTIONS the functions.",
            lake.url(),
            datafusion_cli::DATAFUSION_CLI_VERSION
        );
    }
    if args.command.is_empty() && args.file.is_empty() {
        return datafusion_cli::exec::exec_from_repl(ctx.as_ref(), &mut print_options)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)));
    }
    if !args.file.is_empty() {
        datafusion_cli::exec::exec_from_files(ctx.as_ref(), args.file, &print_options).await?;
    }
    if !args.command.is_empty() {
        datafusion_cli::exec::exec_from_commands(ctx.as_ref(), args.command, &print_options)
            .await?;
    }
    Ok(())
}

async fn synth(
    lake: &Lake,
    preset: &str,
    seed: u64,
    until: Option<i64>,
    no_anomalies: bool,
) -> Result<()> {
    let preset: mrs_synth::Preset = preset.parse().map_err(DataFusionError::from)?;
    let mut cfg = mrs_synth::SynthConfig::new(preset, seed);
    cfg.until = until;
    cfg.inject_anomalies = !no_anomalies;
    let summary = mrs_synth::write_lake(lake.store(), lake.root(), &cfg).await?;
    println!(
        "synth {} seed {seed}: {} sales rows in {} files, {} stores, {} SKUs, {} injected anomalies, written until {}",
        preset.as_str(),
        summary.sales_rows,
        summary.files,
        summary.stores,
        summary.skus,
        summary.anomalies,
        mrs_core::identity::rfc3339_utc_micros(summary.written_until_micros)
    );
    Ok(())
}

async fn decide(
    lake: &Lake,
    event_id: &str,
    action: &str,
    cause: Option<&str>,
    note: &str,
    by: &str,
) -> Result<()> {
    let decision = mrs_pipeline::decisions::Decision {
        event_id,
        action,
        cause,
        note,
        decided_by: by,
    };
    let id = mrs_pipeline::decisions::record(lake, &decision).await?;
    println!(
        "recorded {id}: {action} {event_id}; it shows in minority_events now, in the logs and feeds after `mrs run`"
    );
    Ok(())
}

async fn demo(lake_location: &str, seed: u64) -> Result<()> {
    let started = std::time::Instant::now();
    let local = std::path::Path::new(lake_location);
    if !lake_location.contains("://") && local.join("truth/synth.json").is_file() {
        // A previous demo's (synthetic) lake: start afresh.
        std::fs::remove_dir_all(local)?;
    }
    let lake = Lake::open(lake_location)?;
    if !lake.list_parquet("input/sales").await?.is_empty() {
        return Err(DataFusionError::Plan(format!(
            "{} already holds a lake that `mrs synth` did not write; `mrs demo` will not touch it \
             (use --lake DIR)",
            lake.url()
        )));
    }
    synth(&lake, "tiny", seed, None, false).await?;
    let summary = mrs_pipeline::run(&lake, &RunOptions::default()).await?;
    println!("{summary}");
    let ctx = mrs_pipeline::open_session(&lake, None).await?;
    let events = ctx
        .sql(
            "SELECT report_group_id, status, cause, round(confidence, 2) AS confidence, n_stores, \
             n_retailers, window_start, round(sum_excess, 1) AS excess FROM minority_events \
             ORDER BY window_start, report_group_id",
        )
        .await?;
    events.show().await?;
    let report = mrs_eval::evaluate_lake(&lake).await?;
    print!("{}", report.to_table());
    println!(
        "demo finished in {:.1}s; explore it with: mrs sql --lake {}",
        started.elapsed().as_secs_f64(),
        lake_location
    );
    Ok(())
}

async fn train_attribution(lakes: &[String], out: &str) -> Result<()> {
    let mut samples = Vec::new();
    for location in lakes {
        let lake = Lake::open(location)?;
        let ctx = mrs_pipeline::open_session(&lake, None).await?;
        ctx.register_parquet(
            "truth_anomalies",
            lake.folder_url("truth/anomalies"),
            datafusion::prelude::ParquetReadOptions::default(),
        )
        .await?;
        let step = mrs_eval::step_seconds(&lake).await;
        let got = mrs_attribute::train::samples(&ctx, location, step).await?;
        eprintln!("{location}: {} labelled reports", got.len());
        samples.extend(got);
    }
    let version = format!(
        "mrs-attribute-mlr-8 (multinomial logistic regression on {} reports of {})",
        samples.len(),
        lakes.join(", ")
    );
    let (model, report) = mrs_attribute::train::fit(&samples, &version);
    eprintln!("{report:?}");
    let json = model
        .to_json()
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    std::fs::write(out, json + "\n")?;
    println!("wrote {out}");
    Ok(())
}

async fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        None => {
            let args = ShellArgs {
                command: Vec::new(),
                file: Vec::new(),
                format: PrintFormat::Automatic,
                quiet: false,
                maxrows: MaxRows::Limited(40),
            };
            shell(&Lake::open(&cli.lake)?, args).await
        }
        Some(Command::Sql(args)) => shell(&Lake::open(&cli.lake)?, args).await,
        Some(Command::Run {
            as_of,
            full,
            backfill_slice_days,
            format,
        }) => {
            let lake = Lake::open(&cli.lake)?;
            let options = RunOptions {
                as_of_micros: as_of.as_deref().map(parse_instant).transpose()?,
                full,
                backfill: mrs_pipeline::Backfill {
                    slice_days: backfill_slice_days,
                    ..mrs_pipeline::Backfill::default()
                },
            };
            let summary = mrs_pipeline::run(&lake, &options).await?;
            match format {
                OutputFormat::Text => println!("{summary}"),
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&summary)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?
                ),
            }
            Ok(())
        }
        Some(Command::Synth {
            preset,
            seed,
            until,
            no_anomalies,
        }) => {
            let until = until.as_deref().map(parse_instant).transpose()?;
            synth(&Lake::open(&cli.lake)?, &preset, seed, until, no_anomalies).await
        }
        Some(Command::Eval { format }) => {
            let report = mrs_eval::evaluate_lake(&Lake::open(&cli.lake)?).await?;
            match format {
                OutputFormat::Text => print!("{}", report.to_table()),
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?
                ),
            }
            Ok(())
        }
        Some(Command::Decide {
            event_id,
            action,
            cause,
            note,
            by,
        }) => {
            decide(
                &Lake::open(&cli.lake)?,
                &event_id,
                &action,
                cause.as_deref(),
                &note,
                &by,
            )
            .await
        }
        Some(Command::Demo { seed }) => demo(&cli.lake, seed).await,
        Some(Command::TrainAttribution { lakes, out }) => train_attribution(&lakes, &out).await,
    }
}

/// Entry point of the `mrs` binary.
pub async fn main() -> ExitCode {
    env_logger::init();
    let cli = Cli::parse();
    match dispatch(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mrs: error: {e}");
            ExitCode::FAILURE
        }
    }
}
