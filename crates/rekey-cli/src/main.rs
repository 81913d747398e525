//! The `rekey` command. Definitions are in `cli`, behaviour in `commands` and `api`.

mod api;
mod cli;
mod commands;
mod rotate;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing to a closed pipe would panic; restore the default.
    sigpipe::reset();
    let cli = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(commands::run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
