//! `vhs`: the operator's side of a vhs store (DynamoDB items whose large
//! attributes live in S3). Provisions the table and the bucket, prints
//! least-privilege IAM policies, lists and reads items and their objects,
//! verifies the store's invariants and collects orphans, on any table vhs
//! wrote, without its Rust model. Every command calls the library's own
//! function for the job (`vhs::AnyTable`, `Store::ensure_table_spec`,
//! `vhs::iam`, ...).

mod cli;
mod engine;
mod output;
mod provision;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    output::init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(run::EXIT_OTHER);
        }
    };
    match runtime.block_on(run::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(run::exit_code(&e))
        }
    }
}
