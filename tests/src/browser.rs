//! A real browser for the admin UI tests: Debian's `chromium`, headless, driven over WebDriver
//! by `chromedriver` (started here on a free port, stopped on drop). `scripts/test.sh` installs
//! both when missing (as root); without them the browser tests skip, except in CI where they
//! fail. Chromium runs with a fresh profile and without its background networking (this
//! machine's network is closed; nothing but the test host is reached).

use fantoccini::{Client, ClientBuilder};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running chromedriver and one browser session.
pub struct Browser {
    driver: Child,
    _profile: tempfile::TempDir,
    /// The WebDriver client.
    pub client: Client,
}

impl Browser {
    /// Starts chromedriver and a headless chromium `width` pixels wide, or `None` when they are
    /// not installed and this is not CI.
    pub async fn start(width: u32) -> Option<Browser> {
        let found = Command::new("sh")
            .args(["-c", "command -v chromedriver && command -v chromium"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs chromium and chromedriver (scripts/test.sh installs them as root)"
            );
            eprintln!("skipped: chromium and chromedriver are not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("profile dir");
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--hide-scrollbars".into(),
            format!("--window-size={width},900"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        let mut options = serde_json::json!({ "binary": "/usr/bin/chromium", "args": args });
        if width < 500 {
            // Headless windows are at least 500 pixels wide: a phone width is emulated.
            options["mobileEmulation"] = serde_json::json!({
                "deviceMetrics": { "width": width, "height": 844, "pixelRatio": 1.0 }
            });
        }
        caps.insert("goog:chromeOptions".into(), options);
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::native()
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Some(Browser {
                        driver,
                        _profile: profile,
                        client,
                    });
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer: {last:?}");
    }

    /// Saves a PNG of the page to `target/ui-screenshots/<name>.png`; returns the path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.client.screenshot().await.expect("screenshot");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Ends the session and stops chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
