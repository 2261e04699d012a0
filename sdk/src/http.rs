//! Outbound HTTP for plugins, over `wasi:http/outgoing-handler`.
//!
//! The host checks every request against the manifest's `permissions.network` allowlist (scheme,
//! host, port) and the resolved address; redirects are returned to the plugin, never followed.
//! A refused request fails with [`HttpError::Denied`].

/// An outbound HTTP request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Method, upper case.
    pub method: String,
    /// Absolute URL (`https://host[:port]/path?query`).
    pub url: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// A response to an outbound request.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Invalid(e.to_string()))
    }
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why an outbound request failed.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpError {
    /// The host refused the request (not in `permissions.network`, or a private address).
    Denied,
    /// The URL or a header was malformed.
    Invalid(String),
    /// The transport failed (connect, TLS, timeout); the text says how.
    Transport(String),
}

impl core::fmt::Display for HttpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HttpError::Denied => write!(f, "request denied by the host's network policy"),
            HttpError::Invalid(m) => write!(f, "invalid request: {m}"),
            HttpError::Transport(m) => write!(f, "transport error: {m}"),
        }
    }
}

impl From<HttpError> for crate::PluginError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Denied => crate::PluginError::new("permission_denied", e.to_string()),
            HttpError::Invalid(_) => crate::PluginError::new("invalid_request", e.to_string()),
            HttpError::Transport(_) => {
                crate::PluginError::retryable("upstream_error", e.to_string())
            }
        }
    }
}

impl Request {
    /// A request with `method` to `url`.
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_string(),
            url: url.to_string(),
            headers: vec![],
            body: vec![],
        }
    }
    /// A GET request.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }
    /// A POST request.
    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    /// Sets a JSON body and its content type.
    pub fn json(mut self, value: &serde_json::Value) -> Self {
        self.body = value.to_string().into_bytes();
        self.header("content-type", "application/json")
    }
    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        #[cfg(target_arch = "wasm32")]
        return wasi_send(self);
        #[cfg(not(target_arch = "wasm32"))]
        {
            // Malformed URLs fail natively exactly as they do in the sandbox.
            split_url(&self.url)?;
            crate::testing::with_host(|h| h.http(&self))
        }
    }
}

/// The parts of an absolute URL the request needs.
#[derive(Debug, PartialEq)]
pub(crate) struct UrlParts<'a> {
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path_and_query: &'a str,
}

/// Splits `scheme://authority/path?query`; rejects anything else.
pub(crate) fn split_url(url: &str) -> Result<UrlParts<'_>, HttpError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| HttpError::Invalid(format!("not an absolute URL: {url}")))?;
    if scheme != "http" && scheme != "https" {
        return Err(HttpError::Invalid(format!("unsupported scheme {scheme:?}")));
    }
    let (authority, path_and_query) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(HttpError::Invalid(format!("bad authority in {url}")));
    }
    Ok(UrlParts {
        scheme,
        authority,
        path_and_query,
    })
}

#[cfg(target_arch = "wasm32")]
fn wasi_send(req: Request) -> Result<Response, HttpError> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
    use wasip2::io::streams::StreamError;

    let parts = split_url(&req.url)?;
    let entries: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into_bytes()))
        .collect();
    let fields = Fields::from_list(&entries).map_err(|e| HttpError::Invalid(format!("{e:?}")))?;
    let out = OutgoingRequest::new(fields);
    let method = match req.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_string()),
    };
    let bad = |what: &str| HttpError::Invalid(format!("bad {what}"));
    out.set_method(&method).map_err(|_| bad("method"))?;
    let scheme = if parts.scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    out.set_scheme(Some(&scheme)).map_err(|_| bad("scheme"))?;
    out.set_authority(Some(parts.authority))
        .map_err(|_| bad("authority"))?;
    out.set_path_with_query(Some(parts.path_and_query))
        .map_err(|_| bad("path"))?;
    let body = out.body().map_err(|_| bad("body"))?;
    let map_code = |code: ErrorCode| match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied,
        other => HttpError::Transport(format!("{other:?}")),
    };
    let future = outgoing_handler::handle(out, None).map_err(map_code)?;
    {
        let stream = body.write().map_err(|_| bad("body stream"))?;
        for chunk in req.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| HttpError::Transport(format!("{e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(map_code)?;
    future.subscribe().block();
    let resp = match future.get() {
        Some(Ok(Ok(resp))) => resp,
        Some(Ok(Err(code))) => return Err(map_code(code)),
        _ => return Err(HttpError::Transport("response future failed".into())),
    };
    let status = resp.status();
    let headers = resp
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = resp
        .consume()
        .map_err(|_| HttpError::Transport("no body".into()))?;
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|_| HttpError::Transport("no body stream".into()))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(bytes) => body.extend_from_slice(&bytes),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(HttpError::Transport(format!("{e:?}"))),
            }
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let p = split_url("https://api.telegram.org/bot1/sendMessage?x=1").unwrap();
        assert_eq!(p.scheme, "https");
        assert_eq!(p.authority, "api.telegram.org");
        assert_eq!(p.path_and_query, "/bot1/sendMessage?x=1");
        assert_eq!(split_url("http://h:8080").unwrap().path_and_query, "/");
        assert_eq!(split_url("http://h?q=1").unwrap().path_and_query, "?q=1");
        assert!(split_url("ftp://h/").is_err());
        assert!(split_url("https://user@h/").is_err());
        assert!(split_url("h/x").is_err());
    }
}
