//! The admin API client behind the CLI, and how its failures map to exit codes.

use super::Connection;
use serde_json::Value;
use std::time::Duration;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server refused (4xx) or the operation failed for a reason the operator can fix.
    #[error("{0}")]
    Refused(String),
    /// The server is unreachable, failed (5xx), or answered something unexpected.
    #[error("{0}")]
    Server(String),
    /// Consent is needed.
    #[error("{0}")]
    Consent(String),
    /// A local problem (file unreadable, bad `--set`, no token).
    #[error("{0}")]
    Local(String),
}

impl CliError {
    /// The process exit code (see the module docs).
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Refused(_) | CliError::Local(_) => 1,
            CliError::Server(_) => 3,
            CliError::Consent(_) => 4,
        }
    }
}

/// Percent-encodes one path segment.
pub fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An authenticated admin API client.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

fn resolve_token(conn: &Connection) -> Result<String, CliError> {
    if let Some(t) = &conn.token {
        return Ok(t.clone());
    }
    for var in ["NITEJAR_ADMIN_TOKEN", "SLOPBOT_ADMIN_TOKEN"] {
        if let Ok(t) = std::env::var(var)
            && !t.is_empty()
        {
            return Ok(t);
        }
    }
    let dir = conn
        .data_dir
        .clone()
        .or_else(|| {
            ["NITEJAR_DATA_DIR", "SLOPBOT_DATA_DIR"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
                .map(Into::into)
        })
        .unwrap_or_else(|| "data".into());
    let path = dir.join("admin-token");
    std::fs::read_to_string(&path)
        .map(|t| t.trim().to_string())
        .map_err(|_| {
            CliError::Local(format!(
                "no admin token: pass --token, set NITEJAR_ADMIN_TOKEN, or run where {} exists",
                path.display()
            ))
        })
}

impl Client {
    /// A client for `conn`.
    pub fn new(conn: &Connection) -> Result<Client, CliError> {
        let token = resolve_token(conn)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| CliError::Local(e.to_string()))?;
        Ok(Client {
            http,
            base: format!("{}/api/admin", conn.url.trim_end_matches('/')),
            token,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, CliError> {
        let resp = req.bearer_auth(&self.token).send().await.map_err(|e| {
            CliError::Server(format!("cannot reach the server at {}: {e}", self.base))
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| CliError::Server(format!("reading the answer failed: {e}")))?;
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .map_err(|_| CliError::Server(format!("unexpected answer ({status}): {text}")))?
        };
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| text.clone());
        let code = body["error"]["code"].as_str().unwrap_or("error");
        let msg = format!("{message} ({code}, HTTP {})", status.as_u16());
        if status.is_client_error() {
            Err(CliError::Refused(msg))
        } else {
            Err(CliError::Server(msg))
        }
    }

    /// `GET`, read as the API contract's type `T`.
    pub async fn get_as<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        decode(self.get(path).await?)
    }

    /// `POST` of the API contract's request type, read as its response type `T`.
    pub async fn post_as<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, CliError> {
        let body = serde_json::to_value(body)
            .map_err(|e| CliError::Local(format!("encoding the request failed: {e}")))?;
        decode(self.post(path, &body).await?)
    }

    /// `GET`.
    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// `PUT` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// `PATCH` with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Uploads raw bytes with a progress bar (on a terminal), then a spinner while the server
    /// validates and compiles the component.
    pub async fn upload(
        &self,
        path: &str,
        bytes: Vec<u8>,
        progress: bool,
    ) -> Result<Value, CliError> {
        let total = bytes.len() as u64;
        let bar = if progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            indicatif::ProgressBar::new(total)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message("uploading");
        bar.enable_steady_tick(Duration::from_millis(120));
        let counter = bar.clone();
        let chunks: Vec<bytes::Bytes> = bytes
            .chunks(64 << 10)
            .map(bytes::Bytes::copy_from_slice)
            .collect();
        let stream = futures::stream::iter(chunks.into_iter().map(move |c| {
            counter.inc(c.len() as u64);
            if counter.position() >= total {
                counter.set_message("uploaded; the server validates and compiles the component");
            }
            Ok::<_, std::io::Error>(c)
        }));
        let result = self
            .send(
                self.http
                    .post(format!("{}{path}", self.base))
                    .header("content-type", "application/octet-stream")
                    .body(reqwest::Body::wrap_stream(stream)),
            )
            .await;
        bar.finish_and_clear();
        result
    }

    /// `POST` with a spinner (on a terminal) saying what the server is doing meanwhile
    /// (fetching from npm or git, building, compiling).
    pub async fn post_busy(
        &self,
        path: &str,
        body: &Value,
        progress: bool,
        message: &str,
    ) -> Result<Value, CliError> {
        let spinner = if progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            indicatif::ProgressBar::new_spinner()
        } else {
            indicatif::ProgressBar::hidden()
        };
        spinner.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        spinner.set_message(message.to_string());
        spinner.enable_steady_tick(Duration::from_millis(120));
        let result = self.post(path, body).await;
        spinner.finish_and_clear();
        result
    }
}

/// An answer read as the API contract's type; a mismatch means client and server disagree.
pub fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, CliError> {
    serde_json::from_value(v).map_err(|e| {
        CliError::Server(format!(
            "the server's answer does not match this CLI's API version: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("builtin.telegram"), "builtin.telegram");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(CliError::Refused(String::new()).exit_code(), 1);
        assert_eq!(CliError::Server(String::new()).exit_code(), 3);
        assert_eq!(CliError::Consent(String::new()).exit_code(), 4);
    }
}
