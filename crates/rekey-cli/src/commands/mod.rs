//! What each command does, one module per noun. The management commands call typed
//! methods of `rekey-client`'s native API; the server commands work on the configuration and
//! the database directly.

mod agent;
mod apps;
mod audit;
mod destinations;
mod doctor;
mod members;
mod rotation_policy;
mod secrets;
mod server;
mod store_copy;

use std::process::ExitCode;

use crate::cli::Command;

pub(crate) async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => server::serve(&args).await,
        Command::Migrate(args) => server::migrate(&args).await,
        Command::Init(args) => server::init(args).await,
        Command::ConsoleLink(args) => server::console_link(args).await,
        Command::Healthcheck(args) => server::healthcheck(&args.url).await,
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut cmd = crate::cli::Cli::command();
            clap_complete::generate(shell, &mut cmd, "rekey", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::DefaultConfig => {
            print!("{}", rekey_server::config::EXAMPLE_CONFIG);
            Ok(ExitCode::SUCCESS)
        }
        Command::SigningKeys(cmd) => server::signing_keys(cmd).await,
        Command::ServerAdmins(cmd) => server::server_admins(cmd).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Store(crate::cli::StoreCommand::Copy(args)) => store_copy::run(args).await,
        Command::ServerKey(crate::cli::ServerKeyCommand::Generate) => {
            println!("{}", rekey_core::crypto::ServerKey::generate().to_base64());
            Ok(ExitCode::SUCCESS)
        }
        Command::Rotate(args) => Ok(crate::rotate::run(*args).await),
        Command::Agent(args) => agent::run(*args).await,
        Command::Apps(cmd) => apps::run(cmd).await,
        Command::Secrets(cmd) => secrets::run(cmd).await,
        Command::Members(cmd) => members::run(cmd).await,
        Command::ApiTokens(cmd) => members::api_tokens(cmd).await,
        Command::Audit(cmd) => audit::run(cmd).await,
        Command::RotationPolicy(cmd) => rotation_policy::run(cmd).await,
        Command::Destinations(cmd) => destinations::run(cmd).await,
        Command::Deliveries(cmd) => destinations::deliveries(cmd).await,
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
