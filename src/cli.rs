//! The command line: `serve` (default), `migrate`, `create-admin`, `openapi`.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::Config;
use crate::domain::{Email, Password, Username};
use crate::routes::docs::openapi_json;
use crate::services::passwords::PasswordService;
use crate::store::{self, now, NewUser};

/// The settings every command reads (a `.env` file in the working directory first); the
/// README's configuration table has the full list with defaults.
const ENVIRONMENT_HELP: &str = "\
Environment variables (a .env file is read first):
  DATABASE_URL          sqlite://./data/auth.db | postgres://USER:PASS@HOST:PORT/DB
  SECRET_KEY            JWT key; required (>= 32 bytes) when ENVIRONMENT=production
  ENVIRONMENT           development (default) | production
  HOST, PORT            listen address (127.0.0.1, 8080)
  REDIS_URL             redis://HOST:PORT to share rate limits between instances
  INTERNAL_API_KEYS     comma-separated keys for internal services (X-API-Key / api-key)
  PASSWORD_HASH         argon2id (default) | bcrypt;  BCRYPT_COST (12, for bcrypt)
  PASSWORD_HASH_CONCURRENCY (cores; argon2id holds 19 MiB per running hash)
  ACCESS_TOKEN_EXPIRE_MINUTES (60), SESSION_LIFETIME_DAYS (30), ALGORITHM (HS256)
  REQUIRE_EMAIL_VERIFICATION (true), FRONTEND_URL, CORS_ORIGINS, TRUSTED_PROXIES
  RATE_LIMIT_AUTH_PER_MINUTE (100), RATE_LIMIT_DEFAULT_PER_MINUTE (1000)
  MAIL_SERVER, MAIL_PORT, MAIL_USERNAME, MAIL_PASSWORD, MAIL_FROM, MAIL_SSL_TLS, MAIL_STARTTLS
  LOG_LEVEL (INFO), JSON_LOGS, ENABLE_LOGSTASH, SYSLOG_HOST, SYSLOG_PORT
  DATA_DIR (./data), DB_MAX_CONNECTIONS (8), ADMIN_PASSWORD (create-admin)";

#[derive(Debug, Parser)]
#[command(
    name = "auth-service",
    version,
    about = "Authentication and credits service",
    after_help = ENVIRONMENT_HELP
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
    /// Create a verified admin. The password is read from the first line of standard
    /// input, or from ADMIN_PASSWORD. An existing account is never taken over: it is
    /// promoted only with --promote and only when --email is that account's own.
    CreateAdmin {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Make an existing account (whose email is --email) an admin; its password stays.
        #[arg(long)]
        promote: bool,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// GET /health/live of the server this configuration describes (HOST, PORT); exits
    /// non-zero unless it answers 200. For container HEALTHCHECKs: the image has no curl.
    Healthcheck,
    /// Copy users, flags, balances and credit history from the original FastAPI service's
    /// PostgreSQL database; idempotent (a second run changes nothing).
    ImportFastapi {
        /// The original's database, e.g. postgresql://user:pass@host/auth
        #[arg(long = "from", value_name = "POSTGRES_URL")]
        from: String,
    },
    /// List or rotate the access-token signing keys (DESIGN §13).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Check the credits ledger.
    Ledger {
        #[command(subcommand)]
        action: LedgerAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// kid, alg, state and dates of every key (never a private part).
    List,
    /// next → current, current → previous, a new next; every instance follows within 60 s.
    Rotate,
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
        /// Revert without asking (required when standard input is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// List migrations and whether each is applied.
    Status,
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    // Say which database a command acts on (never the password), so nobody migrates or
    // promotes on a database they did not mean.
    eprintln!(
        "database: {}",
        store::connect_error::describe_url(&config.database_url)
    );
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => App::build(config).await?.run_until(shutdown_signal()).await,
        Command::Migrate { action } => migrate(&config, action).await,
        Command::CreateAdmin {
            username,
            email,
            promote,
        } => create_admin(&config, &username, &email, promote).await,
        Command::Ledger {
            action: LedgerAction::Verify,
        } => verify_ledger(&config).await,
        Command::Keys { action } => signing_keys(&config, action).await,
        Command::Healthcheck => crate::healthcheck::check(&config).await,
        Command::ImportFastapi { from } => import_fastapi(&config, &from).await,
        Command::Openapi => match print_openapi() {
            ExitCode::SUCCESS => Ok(()),
            _ => bail!("could not print the OpenAPI document"),
        },
    }
}

/// Prints the OpenAPI document; reads no configuration and touches nothing.
pub fn print_openapi() -> ExitCode {
    use std::io::Write;
    let written = serde_json::to_string_pretty(openapi_json())
        .map_err(std::io::Error::other)
        .and_then(|text| writeln!(std::io::stdout().lock(), "{text}"));
    match written {
        // A reader that stops early (`| head`) is not an error of ours.
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(config: &Config, action: MigrateAction) -> anyhow::Result<()> {
    if let MigrateAction::Status = action {
        if let Some(path) = missing_sqlite_file(config) {
            // Looking must not create: an absent file means nothing is applied.
            eprintln!(
                "no database file at {} yet: nothing applied",
                path.display()
            );
            print_status(&store::sqlite_unapplied_migrations());
            return Ok(());
        }
    }
    if let MigrateAction::Down { steps, yes: false } = action {
        confirm_down(steps)?;
    }
    let store = store::connect(config).await?;
    match action {
        MigrateAction::Up => {
            store.migrate_up().await?;
            println!("migrations applied");
        }
        MigrateAction::Down { steps, .. } => {
            let reverted = store.migrate_down(steps).await?;
            if reverted.is_empty() {
                println!("nothing to revert");
            }
            for version in reverted {
                println!("reverted {version}");
            }
        }
        MigrateAction::Status => print_status(&store.migration_status().await?),
    }
    Ok(())
}

fn print_status(migrations: &[store::MigrationStatus]) {
    for m in migrations {
        let state = if m.applied { "applied" } else { "pending" };
        println!("{:>6} {state:<8} {}", m.version, m.description);
    }
}

/// The SQLite file DATABASE_URL names, when it does not exist (None for PostgreSQL and
/// in-memory databases).
fn missing_sqlite_file(config: &Config) -> Option<std::path::PathBuf> {
    let rest = config.database_url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let path = std::path::PathBuf::from(path);
    (!path.exists()).then_some(path)
}

/// `migrate down` drops tables and their data: a person at a terminal confirms, a script
/// says `--yes`.
fn confirm_down(steps: usize) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        bail!(
            "migrate down reverts {steps} migration(s) and drops their data: pass --yes to confirm"
        );
    }
    eprint!("Revert the newest {steps} migration(s)? Their tables and data are dropped. [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("not confirmed: nothing reverted");
    }
    Ok(())
}

async fn import_fastapi(config: &Config, from: &str) -> anyhow::Result<()> {
    eprintln!(
        "importing from: {}",
        store::connect_error::describe_url(from)
    );
    let store = store::connect_and_migrate(config).await?;
    let report = crate::import::import_fastapi(from, store.as_ref()).await?;
    println!(
        "users: {} created, {} already here; transactions: {} written, {} already here; balances adjusted: {}; skipped: {}",
        report.users_created,
        report.users_existing,
        report.transactions_written,
        report.transactions_existing,
        report.balances_adjusted,
        report.skipped.len()
    );
    for reason in &report.skipped {
        println!("skipped {reason}");
    }
    Ok(())
}

async fn signing_keys(config: &Config, action: KeysAction) -> anyhow::Result<()> {
    use crate::services::signing_keys::{KeyPolicy, SigningKeys};
    let store = store::connect_and_migrate(config).await?;
    let ttl = chrono::Duration::seconds(config.jwt.access_ttl_seconds);
    let keys = SigningKeys::new(
        store,
        config.secret_key.expose().as_bytes(),
        KeyPolicy {
            algorithm: config.algorithm,
            retire_after: ttl + chrono::Duration::from_std(config.jwt.retire_grace)?,
        },
    )?;
    if let KeysAction::Rotate = action {
        let kid = keys.rotate().await?;
        println!("rotated: {kid} signs from now on");
    }
    println!(
        "{:<18} {:<6} {:<9} {:<25} {:<25} {:<25}",
        "KID", "ALG", "STATE", "CREATED", "ACTIVATED", "RETIRED"
    );
    let date = |d: Option<chrono::DateTime<chrono::Utc>>| {
        d.map(|d| d.to_rfc3339()).unwrap_or_else(|| "-".into())
    };
    for k in keys.list().await? {
        println!(
            "{:<18} {:<6} {:<9} {:<25} {:<25} {:<25}",
            k.kid,
            k.alg,
            k.state,
            k.created_at.to_rfc3339(),
            date(k.activated_at),
            date(k.retired_at)
        );
    }
    Ok(())
}

async fn verify_ledger(config: &Config) -> anyhow::Result<()> {
    let store = store::connect_and_migrate(config).await?;
    let mismatches = store.ledger_mismatches().await?;
    let overheld = crate::services::credits::holds::overheld(&*store).await?;
    for (user_id, balance, held) in &overheld {
        println!("user {user_id}: active holds reserve {held} cents, balance is {balance} cents");
    }
    let stale = crate::services::credits::holds::stale_held(&*store).await?;
    for (user_id, on_row, summed) in &stale {
        println!("user {user_id}: balance row says holds reserve {on_row} cents, they reserve {summed} cents");
    }
    if mismatches.is_empty() && overheld.is_empty() && stale.is_empty() {
        println!("ledger ok: every balance equals the sum of its transactions; no account's holds exceed its balance");
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
        mismatches.len() + overheld.len() + stale.len()
    )
}

async fn create_admin(
    config: &Config,
    username: &str,
    email: &str,
    promote: bool,
) -> anyhow::Result<()> {
    let username = Username::parse(username)
        .map_err(anyhow::Error::msg)
        .context("--username")?;
    let email = Email::parse(email)
        .map_err(anyhow::Error::msg)
        .context("--email")?;
    let store = store::connect_and_migrate(config).await?;
    if let Some(existing) = store.user_by_username(&username.key()).await? {
        if !promote {
            bail!(
                "an account named {} already exists; nothing was changed. To make that account \
                 an admin, run again with --promote and its own email as --email",
                existing.username
            );
        }
        // Compared in the UPDATE itself, so the account cannot change in between.
        let Some(user) = store
            .promote_admin(&username.key(), email.as_str(), now())
            .await?
        else {
            bail!(
                "--email does not match the email of the account named {}; nothing was changed",
                existing.username
            );
        };
        println!(
            "promoted {} (id {}) to admin; its password is unchanged",
            user.username, user.id
        );
        return Ok(());
    }
    let password = Password::parse(read_admin_password()?).map_err(anyhow::Error::msg)?;
    let passwords = PasswordService::new(config)?;
    let password_hash = passwords
        .hash(&password, "password")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let new_user = NewUser {
        username_key: username.key(),
        username: username.into(),
        email: email.into(),
        password_hash,
        is_admin: true,
        is_verified: true,
        created_at: now(),
    };
    match store.create_admin(&new_user).await {
        Ok(user) => println!("created admin {} (id {})", user.username, user.id),
        Err(store::StoreError::EmailTaken) => {
            bail!("that email belongs to another account; nothing was changed")
        }
        Err(store::StoreError::UsernameTaken) => {
            bail!("that username was just taken by another account; nothing was changed")
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

fn read_admin_password() -> anyhow::Result<String> {
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
    Ok(password)
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
