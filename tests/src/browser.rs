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

    /// Runs a Chrome DevTools Protocol command (through chromedriver's `goog/cdp/execute`).
    pub async fn cdp(&self, cmd: &'static str, params: serde_json::Value) -> serde_json::Value {
        self.client
            .issue_cmd(Cdp { cmd, params })
            .await
            .unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    /// Saves a PNG of the whole page (not only the window) to
    /// `target/ui-screenshots/<name>.png`; returns the path. Fails when the page is wider than
    /// the window.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let metrics = self
            .cdp("Page.getLayoutMetrics", serde_json::json!({}))
            .await;
        let size = &metrics["cssContentSize"];
        // A page wider than the window scrolls sideways: at a phone width, that is a layout
        // bug (wide tables scroll inside their own box instead).
        let window = metrics["cssLayoutViewport"]["clientWidth"]
            .as_f64()
            .unwrap_or(0.0);
        let width = size["width"].as_f64().unwrap_or(0.0);
        assert!(
            width <= window + 1.0,
            "{name}: the page is {width} px wide in a {window} px window"
        );
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                serde_json::json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
                }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot base64");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Waits (up to 10 s) for an element the page navigation leads to; fails with the page
    /// shown.
    pub async fn wait_for(&self, css: &str, what: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(fantoccini::Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(_) => panic!(
                "no {what} ({css}) at {}: {}",
                self.client.current_url().await.expect("url"),
                self.client.source().await.expect("source")
            ),
        }
    }

    /// Waits (up to 10 s) until the element `css` finds holds `text` (after a navigation, the
    /// old page may still be there at first); fails with the page shown.
    pub async fn wait_text(&self, css: &str, text: &str) {
        for _ in 0..200 {
            if let Ok(e) = self.client.find(fantoccini::Locator::Css(css)).await
                && e.text().await.is_ok_and(|t| t.contains(text))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no {css} holding {text:?} at {}: {}",
            self.client.current_url().await.expect("url"),
            self.client.source().await.expect("source")
        );
    }

    /// Clicks the element `css` finds.
    pub async fn click(&self, css: &str) {
        self.wait_for(css, "element to click")
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Types `text` into the field `css` finds.
    pub async fn fill(&self, css: &str, text: &str) {
        self.wait_for(css, "field to fill")
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    /// The text of the element `css` finds.
    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css, "element to read")
            .await
            .text()
            .await
            .expect("element text")
    }

    /// Opens `base/admin/login` and signs in with `token`; waits for the overview.
    pub async fn sign_in(&self, base: &str, token: &str) {
        self.client
            .goto(&format!("{base}/admin/login"))
            .await
            .expect("sign-in page");
        self.fill("#token", token).await;
        self.click("form button[type=submit]").await;
        self.wait_for("#enforced", "the overview after sign-in")
            .await;
    }

    /// Ends the session and stops chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A Chrome DevTools Protocol command for chromedriver.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or("")
        ))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        let body = serde_json::json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
