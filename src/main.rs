use std::process::ExitCode;

use auth_service::cli::{self, Cli};
use auth_service::config::Config;
use auth_service::telemetry;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Printing the document needs no configuration, secret or database: no side effects.
    if matches!(cli.command, Some(cli::Command::Openapi)) {
        return cli::print_openapi();
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config);
    match cli::run(cli, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Printed once, to stderr (the log may go there too: not repeated in it).
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
