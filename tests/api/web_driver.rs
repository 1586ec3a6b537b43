//! A real browser for the web pages' tests: Debian's ChromeDriver and headless Chromium,
//! driven over WebDriver (fantoccini). One chromedriver per test on a free port, one fresh
//! profile per browser; browser tests take turns (`Driver::start` holds a lock) so a
//! loaded 2-core machine runs one Chromium at a time.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::sync::{Mutex, MutexGuard};

use crate::helpers::outside_tool;

/// Every wait for the browser: generous, because a loaded machine is slow; a wait that
/// runs out is a failure, never something to retry.
pub const WAIT: Duration = Duration::from_secs(30);
const SETUP_HINT: &str = "bash .ci/setup.d/10-chromium.sh";

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

fn binary(var: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    outside_tool(path, SETUP_HINT)
}

pub struct Driver {
    process: Child,
    url: String,
    chromium: PathBuf,
    profiles: Vec<tempfile::TempDir>,
    _turn: MutexGuard<'static, ()>,
}

impl Driver {
    /// `None` (the test skips) when Chromium or ChromeDriver is not installed, unless
    /// REQUIRE_SERVICES=1.
    pub async fn start() -> Option<Driver> {
        let chromium = binary("CHROMIUM_BIN", "/usr/bin/chromium")?;
        let chromedriver = binary("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")?;
        let turn = ONE_AT_A_TIME.lock().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let process = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let ready = async {
            loop {
                let answered = reqwest::get(format!("{url}/status"))
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if answered {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(WAIT, ready)
            .await
            .expect("chromedriver answers /status");
        Some(Driver {
            process,
            url,
            chromium,
            profiles: Vec::new(),
            _turn: turn,
        })
    }

    /// A new browser with its own empty profile (cookies are not shared between two).
    pub async fn browser(&mut self) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": self.chromium, "args": args },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session");
        self.profiles.push(profile);
        Browser { client }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

pub struct Browser {
    pub client: Client,
}

impl Browser {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigation");
    }

    /// Waits until an `<h1>` containing `text` is on the page: the page we expect loaded.
    pub async fn wait_heading(&self, text: &str) {
        let xpath = format!("//h1[contains(normalize-space(.), '{text}')]");
        if let Err(e) = self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(&xpath))
            .await
        {
            let url = self.client.current_url().await.map(|u| u.to_string());
            let source = self.client.source().await.unwrap_or_default();
            panic!("no heading {text:?} ({e}); at {url:?}:\n{source}");
        }
    }

    /// Waits for an element whose text contains `text` under `css`.
    pub async fn wait_text(&self, css: &str, text: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(elements) = self.client.find_all(Locator::Css(css)).await {
                for element in elements {
                    if element.text().await.is_ok_and(|t| t.contains(text)) {
                        return;
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                let source = self.client.source().await.unwrap_or_default();
                panic!("no {css:?} containing {text:?}:\n{source}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Finds `css` and runs `act` on it; an element replaced by a navigation in between
    /// (stale) is looked up again, until WAIT runs out.
    async fn on_element<F, Fut>(&self, css: &str, act: F)
    where
        F: Fn(fantoccini::elements::Element) -> Fut,
        Fut: std::future::Future<Output = Result<(), fantoccini::error::CmdError>>,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let found = self
                .client
                .wait()
                .at_most(WAIT)
                .for_element(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("element {css}: {e}"));
            match act(found).await {
                Ok(()) => return,
                Err(e)
                    if e.is_stale_element_reference() && tokio::time::Instant::now() < deadline => {
                }
                Err(e) => panic!("element {css}: {e}"),
            }
        }
    }

    pub async fn fill(&self, css: &str, value: &str) {
        self.on_element(css, |field| async move {
            field.clear().await?;
            field.send_keys(value).await
        })
        .await;
    }

    pub async fn click(&self, css: &str) {
        self.on_element(css, |element| async move { element.click().await })
            .await;
    }

    /// Waits until the address (path and query) is `expected`: the navigation finished.
    pub async fn wait_path(&self, expected: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let now = self.path().await;
            if now == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "at {now}, not {expected}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    /// Signs in through the form and waits for the account page.
    pub async fn sign_in(&self, base: &str, username: &str, password: &str) {
        self.goto(&format!("{base}/login")).await;
        self.fill("#f-username", username).await;
        self.fill("#f-password", password).await;
        self.click("form[action='/login'] button[type=submit]")
            .await;
        self.wait_heading("Your account").await;
    }

    /// Saves the whole page at a desktop (1280) and a phone (390) width under
    /// target/screenshots/NAME-{desktop,phone}.png.
    pub async fn screenshots(&self, name: &str) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        for (label, width) in [("desktop", 1280u32), ("phone", 390u32)] {
            self.client
                .set_window_size(width, 900)
                .await
                .expect("resize");
            // The window's height minus its viewport's is the browser's own frame.
            let script = "return document.documentElement.scrollHeight \
                          + window.outerHeight - window.innerHeight";
            let height = self
                .client
                .execute(script, vec![])
                .await
                .ok()
                .and_then(|v| v.as_u64())
                .unwrap_or(900)
                .clamp(600, 4000) as u32;
            self.client
                .set_window_size(width, height)
                .await
                .expect("resize");
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(dir.join(format!("{name}-{label}.png")), png).expect("save screenshot");
        }
        self.client
            .set_window_size(1280, 900)
            .await
            .expect("resize");
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
