//! `mrs`: the Minority Report System command. See `mrs --help` and README.md.

use std::process::ExitCode;

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    mrs_cli::main().await
}
