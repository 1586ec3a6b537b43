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

/// `mi_option_arena_eager_commit` and `mi_option_purge_delay` in mimalloc.h's `mi_option_e`
/// (libmimalloc-sys names only some options; the test below pins the order).
#[cfg(target_os = "linux")]
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
#[cfg(target_os = "linux")]
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc's defaults keep freed memory for a while and commit whole arenas eagerly: an
/// idle instance then stays at ~50 MB resident, and argon2id's 19 MiB blocks freed by an
/// idle hasher thread (services/hasher_pool.rs) stay resident. Purging at once and
/// committing on demand keeps idle RSS where glibc had it (~20 MB) at no measurable cost to
/// throughput. They are only defaults: MIMALLOC_PURGE_DELAY and MIMALLOC_ARENA_EAGER_COMMIT
/// still override them.
///
/// This runs as an ELF constructor, before `main`: the runtime allocates before `main`, and
/// the first allocation reserves mimalloc's first arena with the options of that moment.
#[cfg(target_os = "linux")]
extern "C" fn tune_allocator() {
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::{ARENA_EAGER_COMMIT, PURGE_DELAY};
    use libmimalloc_sys::{mi_option_get, mi_option_use_numa_nodes, mi_option_verbose};

    /// The constructor ran before the harness started (mimalloc's own defaults are 2 and
    /// 10), and the two indices sit where mimalloc.h puts them relative to options the
    /// bindings name (verbose, eager_commit, arena_eager_commit; purge_delay, then
    /// use_numa_nodes). Fails if MIMALLOC_PURGE_DELAY or
    /// MIMALLOC_ARENA_EAGER_COMMIT is set in the test's environment.
    #[test]
    fn the_allocator_is_tuned_before_main() {
        assert_eq!(ARENA_EAGER_COMMIT, mi_option_verbose + 2);
        assert_eq!(PURGE_DELAY, mi_option_use_numa_nodes - 1);
        // SAFETY: reads two option values.
        let (eager, delay) = unsafe {
            (
                mi_option_get(ARENA_EAGER_COMMIT),
                mi_option_get(PURGE_DELAY),
            )
        };
        assert_eq!((eager, delay), (0, 0));
    }
}
