use std::process::ExitCode;

use auth_service::cli::{self, Cli};
use auth_service::config::Config;
use auth_service::telemetry;
use clap::Parser;

/// mimalloc instead of glibc malloc: in the read benchmarks' profiles (bench/, BENCHMARKS.md)
/// malloc and free were ~17 % of the service's CPU, with glibc's arena consolidation among
/// the hottest functions; with mimalloc the same runs serve 12–18 % more requests/s.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's defaults keep freed memory for a while and commit whole arenas eagerly: an
/// idle instance then stays at ~50 MB resident, and argon2id's 19 MiB blocks freed by an
/// idle hasher thread (services/hasher_pool.rs) stay resident. Purging at once and
/// committing on demand keeps idle RSS where glibc had it (~20 MB) at no measurable cost to
/// throughput. They are only defaults: MIMALLOC_PURGE_DELAY and MIMALLOC_ARENA_EAGER_COMMIT
/// still override them. The values are the `mi_option_e` order of mimalloc.h (pinned by
/// Cargo.lock).
///
/// This runs as an ELF constructor, before `main`: the runtime allocates before `main`, and
/// the first allocation reserves mimalloc's first arena with the options of that moment.
#[cfg(target_os = "linux")]
extern "C" fn tune_allocator() {
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: only stores two option values; allocates nothing and runs before any thread.
    unsafe {
        libmimalloc_sys::mi_option_set_default(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set_default(PURGE_DELAY, 0);
    }
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

fn main() -> ExitCode {
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
