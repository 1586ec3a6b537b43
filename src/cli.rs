//! The command line: `serve` (default), `migrate`, `create-admin`, `openapi`.

use std::io::BufRead;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::Config;
use crate::domain::{Email, Password, Username};
use crate::routes::docs::openapi_json;
use crate::services::passwords::PasswordService;
use crate::store::{self, now, NewUser};

#[derive(Debug, Parser)]
#[command(
    name = "auth-service",
    version,
    about = "Authentication and credits service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply, revert or list database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Create a verified admin, or promote an existing user. The password is read from the
    /// first line of standard input, or from ADMIN_PASSWORD.
    CreateAdmin {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// GET /health/live of the server this configuration describes (HOST, PORT); exits
    /// non-zero unless it answers 200. For container HEALTHCHECKs: the image has no curl.
    Healthcheck,
    /// Check the credits ledger.
    Ledger {
        #[command(subcommand)]
        action: LedgerAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerAction {
    /// Check that every user's ledger sums to their balance; exits non-zero naming the
    /// users where it does not.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the newest N applied migrations (default 1).
    Down {
        #[arg(default_value_t = 1)]
        steps: usize,
    },
    /// List migrations and whether each is applied.
    Status,
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => App::build(config).await?.run_until(shutdown_signal()).await,
        Command::Migrate { action } => migrate(&config, action).await,
        Command::CreateAdmin { username, email } => create_admin(&config, &username, &email).await,
        Command::Ledger {
            action: LedgerAction::Verify,
        } => verify_ledger(&config).await,
        Command::Healthcheck => crate::healthcheck::check(&config).await,
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(openapi_json())?);
            Ok(())
        }
    }
}

async fn migrate(config: &Config, action: MigrateAction) -> anyhow::Result<()> {
    let store = store::connect(config).await?;
    match action {
        MigrateAction::Up => {
            store.migrate_up().await?;
            println!("migrations applied");
        }
        MigrateAction::Down { steps } => {
            let reverted = store.migrate_down(steps).await?;
            if reverted.is_empty() {
                println!("nothing to revert");
            }
            for version in reverted {
                println!("reverted {version}");
            }
        }
        MigrateAction::Status => {
            for m in store.migration_status().await? {
                let state = if m.applied { "applied" } else { "pending" };
                println!("{:>6} {state:<8} {}", m.version, m.description);
            }
        }
    }
    Ok(())
}

async fn verify_ledger(config: &Config) -> anyhow::Result<()> {
    let store = store::connect_and_migrate(config).await?;
    let mismatches = store.ledger_mismatches().await?;
    if mismatches.is_empty() {
        println!("ledger ok: every balance equals the sum of its transactions");
        return Ok(());
    }
    for m in &mismatches {
        println!(
            "user {}: balance {} cents, ledger sums to {} cents",
            m.user_id, m.balance, m.ledger_sum
        );
    }
    bail!(
        "ledger verification failed for {} user(s)",
        mismatches.len()
    )
}

async fn create_admin(config: &Config, username: &str, email: &str) -> anyhow::Result<()> {
    let username = Username::parse(username)
        .map_err(anyhow::Error::msg)
        .context("--username")?;
    let email = Email::parse(email)
        .map_err(anyhow::Error::msg)
        .context("--email")?;
    let password = match std::env::var("ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if password.is_empty() {
        bail!("no password: pipe it on standard input or set ADMIN_PASSWORD");
    }
    let password = Password::parse(password).map_err(anyhow::Error::msg)?;
    let passwords = PasswordService::new(config);
    let password_hash = passwords
        .hash(&password, "password")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = store::connect_and_migrate(config).await?;
    let new_user = NewUser {
        username_key: username.key(),
        username: username.into(),
        email: email.into(),
        password_hash,
        is_admin: true,
        is_verified: true,
        created_at: now(),
    };
    match store.upsert_admin(&new_user).await {
        Ok((user, true)) => println!("created admin {} (id {})", user.username, user.id),
        Ok((user, false)) => println!("promoted {} (id {}) to admin", user.username, user.id),
        Err(store::StoreError::EmailTaken) => bail!("that email belongs to another account"),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
