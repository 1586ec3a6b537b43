use std::process::ExitCode;

use auth_service::cli::{self, Cli};
use auth_service::config::Config;
use auth_service::telemetry;
use clap::Parser;

/// glibc raises its mmap threshold after a large block is freed, so later blocks of that
/// size come from per-thread arenas and stay resident after they are freed (argon2id's
/// 19 MiB hashing memory: hundreds of MiB after a login storm). A fixed threshold keeps
/// every large block mmapped, so it goes back to the system when freed; the hasher threads
/// reuse theirs during a burst and free it when idle (services/hasher_pool.rs).
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> ExitCode {
    return_large_blocks_to_the_system();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
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
