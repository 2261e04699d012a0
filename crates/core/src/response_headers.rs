//! What a plugin may put in the HTTP answer to a webhook it handles itself (`Respond`).
//!
//! The answer goes out on the host's own connection, on the host's origin, so framing and
//! everything that changes how a client treats the host are the host's alone: a plugin's
//! `content-length`, `transfer-encoding`, `connection` and other hop-by-hop headers are dropped
//! (the body is sent with the host's framing), `set-cookie` and every header not on a short
//! allowlist are dropped, `content-type` passes only for JSON and plain text, and names and values
//! must be well-formed, short tokens (no CR/LF). The host adds `x-content-type-options: nosniff`
//! and a `content-security-policy` that runs nothing, so even a body that looks like HTML is
//! inert. What was dropped is reported (bounded) for the receipt.

use nitejar_sandbox::capabilities::log::sanitize;

/// Most headers a plugin's answer keeps.
pub const MAX_PLUGIN_RESPONSE_HEADERS: usize = 16;
/// Longest header name kept (bytes).
pub const MAX_HEADER_NAME_BYTES: usize = 64;
/// Longest header value kept (bytes).
pub const MAX_HEADER_VALUE_BYTES: usize = 1024;
/// Media types a plugin's answer may declare (parameters such as `charset` allowed).
pub const ALLOWED_CONTENT_TYPES: &[&str] = &["application/json", "text/plain"];

/// Headers the host sets on every answer a plugin wrote.
pub const HOST_RESPONSE_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'; sandbox",
    ),
];

/// `x-` headers a plugin may not set anyway (the host's or a proxy's to decide).
const RESERVED_X: &[&str] = &[
    "x-content-type-options",
    "x-frame-options",
    "x-xss-protection",
    "x-real-ip",
    "x-powered-by",
];

/// The headers of a plugin's answer as the host sends them, and what was dropped and why
/// (each entry escaped and bounded, at most [`MAX_PLUGIN_RESPONSE_HEADERS`] of them).
pub fn filter(headers: Vec<(String, String)>) -> (Vec<(String, String)>, Vec<String>) {
    let mut kept: Vec<(String, String)> = Vec::new();
    let mut dropped = Vec::new();
    let mut drop = |name: &str, why: &str| {
        if dropped.len() < MAX_PLUGIN_RESPONSE_HEADERS {
            dropped.push(format!("{}: {why}", sanitize(name, MAX_HEADER_NAME_BYTES)));
        }
    };
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if name.is_empty()
            || name.len() > MAX_HEADER_NAME_BYTES
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            drop(&name, "not a valid header name");
            continue;
        }
        if value.len() > MAX_HEADER_VALUE_BYTES
            || !value
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            drop(&name, "value too long or not visible ASCII");
            continue;
        }
        let allowed = match name.as_str() {
            "content-type" => {
                let media = value.split(';').next().unwrap_or("").trim();
                if !ALLOWED_CONTENT_TYPES
                    .iter()
                    .any(|t| media.eq_ignore_ascii_case(t))
                {
                    drop(&name, "only application/json and text/plain");
                    continue;
                }
                true
            }
            "cache-control" | "retry-after" => true,
            n if n.starts_with("x-")
                && !n.starts_with("x-forwarded-")
                && !RESERVED_X.contains(&n) =>
            {
                true
            }
            _ => false,
        };
        if !allowed {
            drop(&name, "not a header a plugin may set");
            continue;
        }
        if kept.iter().any(|(k, _)| *k == name) {
            drop(&name, "repeated");
            continue;
        }
        if kept.len() >= MAX_PLUGIN_RESPONSE_HEADERS {
            drop(&name, "too many headers");
            continue;
        }
        kept.push((name, value));
    }
    if !kept.iter().any(|(k, _)| k == "content-type") {
        kept.push(("content-type".into(), "application/octet-stream".into()));
    }
    for (k, v) in HOST_RESPONSE_HEADERS {
        kept.push(((*k).into(), (*v).into()));
    }
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn framing_cookies_and_active_content_are_the_hosts() {
        let (kept, dropped) = filter(h(&[
            ("Content-Length", "2"),
            ("transfer-encoding", "chunked"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "websocket"),
            ("set-cookie", "a=b"),
            ("content-type", "text/html"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-frame-options", "ALLOWALL"),
            ("x-ok", "fine"),
        ]));
        assert_eq!(
            kept,
            h(&[
                ("x-ok", "fine"),
                ("content-type", "application/octet-stream"),
                HOST_RESPONSE_HEADERS[0],
                HOST_RESPONSE_HEADERS[1],
            ])
        );
        assert_eq!(dropped.len(), 9, "{dropped:?}");
    }

    #[test]
    fn values_with_line_breaks_and_bad_names_are_dropped_and_escaped_in_the_report() {
        let (kept, dropped) = filter(h(&[
            ("x-a", "1\r\nset-cookie: b=c"),
            ("x-\u{1b}[31m", "v"),
            ("bad name", "v"),
            ("content-type", "application/json; charset=utf-8"),
        ]));
        assert_eq!(
            kept[0],
            (
                "content-type".into(),
                "application/json; charset=utf-8".into()
            )
        );
        assert_eq!(kept.len(), 1 + HOST_RESPONSE_HEADERS.len());
        assert!(dropped.iter().all(|d| !d.contains('\u{1b}')), "{dropped:?}");
        assert_eq!(dropped.len(), 3);
    }

    #[test]
    fn counts_and_sizes_are_bounded() {
        let many: Vec<(String, String)> = (0..100)
            .map(|i| (format!("x-h{i}"), "v".repeat(10)))
            .chain([("x-long".to_string(), "v".repeat(MAX_HEADER_VALUE_BYTES + 1))])
            .collect();
        let (kept, dropped) = filter(many);
        assert_eq!(
            kept.len(),
            MAX_PLUGIN_RESPONSE_HEADERS + 1 + HOST_RESPONSE_HEADERS.len()
        );
        assert_eq!(dropped.len(), MAX_PLUGIN_RESPONSE_HEADERS);
    }
}
