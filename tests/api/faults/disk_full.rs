//! SQLite on a volume that fills (a small tmpfs): writes answer 503 `storage_full` with
//! Retry-After, never 500; reads are served; the file passes `PRAGMA integrity_check`;
//! writes resume once space is freed. Needs `mount` (root); skipped where it is not
//! permitted, a failure under REQUIRE_SERVICES=1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{Connection, SqliteConnection};

use crate::helpers::*;

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallVolume {
    dir: tempfile::TempDir,
}

impl SmallVolume {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            assert!(
                !services_required(),
                "REQUIRE_SERVICES=1 but a tmpfs cannot be mounted (the disk-full test needs root)"
            );
            eprintln!("skipping: cannot mount a tmpfs here");
            return None;
        }
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the volume has no space left.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let small = [0u8; 512];
        while file.write_all(&small).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallVolume {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_serves_reads_and_recovers() {
    let Some(volume) = SmallVolume::mount("24m") else {
        return;
    };
    let db_path = volume.path().join("auth.db");
    let db_url = format!("sqlite://{}", db_path.display());
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.insert("DATABASE_URL".into(), db_url.clone());
    })
    .await;
    let user = app.register("fullrider").await;
    let filler = volume.fill();

    // Writes until the database itself cannot grow: each is 200 or 503 storage_full.
    let mut refused = 0;
    for i in 0..400 {
        let r = app
            .client
            .post(app.url("/credits/add"))
            .header("X-API-Key", "internal-key-one")
            .json(&json!({"user_id": user.id, "amount": 1,
                          "reference_id": format!("fill-{i}"),
                          "description": "x".repeat(200)}))
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::OK => continue,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(r.headers().contains_key("retry-after"));
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["code"], "storage_full", "{body}");
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
            other => panic!("{other}: {}", r.text().await.unwrap()),
        }
    }
    assert!(refused > 0, "the full volume never refused a write");
    // A new account is a write too (it may still fit in a free page, or not); a read is
    // served.
    let r = app
        .register_raw("early", "early@example.com", "password123")
        .await;
    assert!(
        matches!(
            r.status(),
            StatusCode::CREATED | StatusCode::SERVICE_UNAVAILABLE
        ),
        "{}",
        r.status()
    );
    assert_eq!(me_status(&app, &user.access).await, StatusCode::OK);
    let r = app.get("/credits/balance", Some(&user.access)).await;
    assert_eq!(r.status(), StatusCode::OK);

    std::fs::remove_file(filler).unwrap();
    let r = app
        .register_raw("latecomer", "latecomer@example.com", "password123")
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let r = app
        .client
        .post(app.url("/credits/add"))
        .header("X-API-Key", "internal-key-one")
        .json(&json!({"user_id": user.id, "amount": 1, "reference_id": "after-space"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let mut conn = SqliteConnection::connect(&db_url).await.unwrap();
    let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    // The ledger agrees with the balances after the refused writes.
    let mismatches = app.state.store.ledger_mismatches().await.unwrap();
    assert!(mismatches.is_empty(), "{mismatches:?}");
    drop(app);
}
