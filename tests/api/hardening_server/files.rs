//! The SQLite database (with its -wal and -shm files) and the development mail files,
//! which hold live one-time links, are readable by the service's user only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::helpers::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_and_mail_files_are_private() {
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.remove("MAIL_SERVER");
    })
    .await;
    app.register("private_files").await;

    let mail_dir = app.dir.path().join("mail");
    let deadline = tokio::time::Instant::now() + MAIL_WAIT;
    let mail = loop {
        let found = std::fs::read_dir(&mail_dir).ok().and_then(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.extension().is_some_and(|x| x == "eml"))
        });
        if let Some(path) = found {
            break path;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no mail file written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(mode(&mail), 0o600, "{}", mail.display());
    assert_eq!(mode(&mail_dir), 0o700, "{}", mail_dir.display());

    for name in ["auth.db", "auth.db-wal", "auth.db-shm"] {
        let path = app.dir.path().join(name);
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}
