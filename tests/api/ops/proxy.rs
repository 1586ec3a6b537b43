//! A TCP proxy the test controls: `stop` drops every open connection and refuses new ones
//! (the port is released), `start` listens on the same port again. A database "outage"
//! without touching the shared PostgreSQL server.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

pub struct TcpProxy {
    pub port: u16,
    target: String,
    tasks: Arc<Mutex<Option<JoinSet<()>>>>,
}

impl TcpProxy {
    /// A proxy to `target` (host:port) on a free port, not listening yet.
    pub async fn reserve(target: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self {
            port,
            target: target.to_owned(),
            tasks: Arc::new(Mutex::new(None)),
        }
    }

    pub async fn started(target: &str) -> Self {
        let proxy = Self::reserve(target).await;
        proxy.start().await;
        proxy
    }

    pub async fn start(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind the proxy port");
        let target = self.target.clone();
        let mut tasks = JoinSet::new();
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let held = connections.clone();
        tasks.spawn(async move {
            // Owning the connection tasks here: aborting this task drops them all.
            let _held = held;
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                connections.lock().await.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        *self.tasks.lock().await = Some(tasks);
    }

    pub async fn stop(&self) {
        if let Some(mut tasks) = self.tasks.lock().await.take() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// `url` with its host:port replaced by `127.0.0.1:port`, and the host:port it had.
pub fn via_port(url: &str, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    (
        format!("{scheme}://{userinfo}127.0.0.1:{port}/{path}"),
        hostport,
    )
}
