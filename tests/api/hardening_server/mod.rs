//! Issue 8, server side: slow clients, response headers, CORS configuration, text a
//! database cannot store, exact and bounded credits, the last admin, private files.

mod connections;
mod cors;
mod credits;
mod files;
mod headers;
mod input;
mod last_admin;

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::logs::{base_env, BINARY};

#[derive(Debug)]
struct Exit {
    code: Option<i32>,
    stderr: String,
}

/// Runs the server binary with `extra` settings and expects it to exit on its own (a
/// configuration it refuses); fails if it is still running after 30 s.
async fn run_to_exit(extra: &[(&str, &str)]) -> Exit {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let mut child = Command::new(BINARY)
        .env_clear()
        .envs(&env)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            return Exit {
                code: status.code(),
                stderr,
            };
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the binary kept running with {extra:?}: the setting was not refused");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
