//! Headless Chromium driven over WebDriver (W3C, HTTP+JSON) through
//! Debian's `chromedriver`: a small client for the few commands the UI
//! test needs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::child::ChildGuard;
use crate::ports::free_port;
use crate::wait::wait_until;

/// Where Debian installs them (`apt-get install chromium chromium-driver`).
const CHROMEDRIVER: &str = "chromedriver";
const CHROMIUM_CANDIDATES: [&str; 2] = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"];

/// A running `chromedriver` with one headless Chromium session; drop ends
/// the session (which quits Chromium), then kills and reaps the driver.
#[derive(Debug)]
pub struct Browser {
    session: String,
    port: u16,
    client: Client<HttpConnector, Full<Bytes>>,
    // Dropped after the session is deleted (see Drop).
    _driver: ChildGuard,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session whose
    /// browser log records everything (`goog:loggingPrefs`).
    pub async fn start(log_dir: &Path) -> anyhow::Result<Self> {
        let chromium = (CHROMIUM_CANDIDATES.iter())
            .find(|p| Path::new(p).is_file())
            .context("no Chromium: apt-get install -y chromium chromium-driver")?;
        let port = free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"));
        let driver = ChildGuard::spawn("chromedriver", cmd, &log_dir.join("chromedriver.log"))
            .context("starting chromedriver (apt-get install -y chromium-driver)")?;
        let profile = tempfile::tempdir()?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        let mut browser = Browser {
            session: String::new(),
            port,
            client,
            _driver: driver,
            _profile: profile,
        };
        browser.wait_ready().await?;
        browser.session = browser.new_session(chromium).await?;
        Ok(browser)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let ready = wait_until(
            Duration::from_secs(20),
            Duration::from_millis(100),
            || async {
                let status = self.call("GET", "/status", None).await.ok()?;
                (status["ready"] == true).then_some(())
            },
        )
        .await;
        ready.map(|_| ()).context("chromedriver never became ready")
    }

    async fn new_session(&self, chromium: &str) -> anyhow::Result<String> {
        let profile = self._profile.path().display().to_string();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                // Root in CI needs --no-sandbox; /dev/shm may be small.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1100",
                         format!("--user-data-dir={profile}")],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        } } });
        let v = self.call("POST", "/session", Some(caps)).await?;
        v["sessionId"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no session id in {v}"))
    }

    /// One WebDriver command; its `value`, or the WebDriver error.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let send = self.client.request(req);
        let resp = tokio::time::timeout(Duration::from_secs(60), send)
            .await
            .with_context(|| format!("{method} {url}: timed out"))??;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let v: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{method} {url}: {}", String::from_utf8_lossy(&bytes)))?;
        if !status.is_success() {
            bail!("{method} {url}: HTTP {status}: {}", v["value"]);
        }
        Ok(v["value"].clone())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Navigates to `url` and waits for the load to finish.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        let path = self.session_path("/url");
        self.call("POST", &path, Some(json!({ "url": url })))
            .await
            .map(|_| ())
    }

    /// Runs `script` (a function body) in the page; its return value.
    pub async fn execute(&self, script: &str) -> anyhow::Result<Value> {
        let body = json!({ "script": script, "args": [] });
        let path = self.session_path("/execute/sync");
        self.call("POST", &path, Some(body)).await
    }

    /// The browser's console log since the last call (chromedriver's
    /// `se/log`): entries with `level`, `message`, `source`.
    pub async fn console_log(&self) -> anyhow::Result<Vec<Value>> {
        let body = json!({ "type": "browser" });
        let path = self.session_path("/se/log");
        let v = self.call("POST", &path, Some(body)).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        use base64::Engine;
        let path = self.session_path("/screenshot");
        let v = self.call("GET", &path, None).await?;
        let b64 = v.as_str().context("screenshot is not a string")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
    }
}

impl Drop for Browser {
    /// Deletes the session so chromedriver quits Chromium (a killed driver
    /// would leave it running); blocking and short, as drop must be.
    fn drop(&mut self) {
        if self.session.is_empty() {
            return;
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let req = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            self.session, self.port
        );
        if s.write_all(req.as_bytes()).is_ok() {
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    }
}
