//! Network: outbound HTTP through `wasi:http`, checked on every request.
//!
//! - A request must match a granted `permissions.network` rule on scheme, host and port.
//!   Rules: `api.telegram.org` (https, port 443), `*.example.com` (any subdomain, not the apex),
//!   `https://host:8443`, `http://127.0.0.1:8080`.
//! - The host name is resolved by the host (the guest has no DNS and no sockets), and every
//!   resolved address is checked: loopback, private, link-local (cloud metadata), CGNAT,
//!   multicast and reserved ranges are refused unless the matching rule names that address
//!   (an IP literal, or `localhost` for loopback).
//! - Redirects are never followed for the guest: it sees the 3xx and must make (and pass the
//!   check for) a new request.
//! - The operator's outbound overrides (`host -> ip:port`, or `host -> http://ip:port` to speak
//!   plain HTTP to a local stand-in) apply **after** the allowlist check, so tests can point
//!   `api.telegram.org` at a local server without widening any policy.
//! - Connect and response deadlines are bounded by the call's own deadline, because a guest
//!   blocked in a host call is not interrupted by the epoch deadline.

use super::{CallContext, Denial};

use crate::limits::{HTTP_CONNECT_TIMEOUT_MS, MAX_HTTP_RESPONSE_BYTES};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Where requests for one host name are sent instead (applied after the allowlist check).
pub type OutboundOverrides = BTreeMap<String, OutboundTarget>;

/// The destination of an outbound override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundTarget {
    /// Address to connect to.
    pub addr: SocketAddr,
    /// Speak plain HTTP to it even when the plugin asked for `https` (`host=http://ip:port`):
    /// for local stand-ins of platform APIs, which have no certificate for the real name.
    pub plaintext: bool,
}

impl From<SocketAddr> for OutboundTarget {
    /// An override that keeps the request's scheme (TLS stays TLS).
    fn from(addr: SocketAddr) -> Self {
        OutboundTarget {
            addr,
            plaintext: false,
        }
    }
}

/// Host part of a rule.
#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    /// Exact host name (lower case).
    Name(String),
    /// `*.suffix`: any subdomain of `suffix`.
    Wildcard(String),
    /// An IP literal.
    Ip(IpAddr),
}

/// One `permissions.network` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkRule {
    /// The entry as written in the manifest (used in receipts and grants).
    pub raw: String,
    scheme: &'static str,
    host: HostPattern,
    port: u16,
}

impl NetworkRule {
    /// Parses a manifest entry; the error says what is wrong.
    pub fn parse(raw: &str) -> Result<NetworkRule, String> {
        let (scheme, rest) = match raw.split_once("://") {
            Some(("https", r)) => ("https", r),
            Some(("http", r)) => ("http", r),
            Some((s, _)) => return Err(format!("{raw:?}: scheme {s:?} is not http or https")),
            None => ("https", raw),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!(
                "{raw:?}: write only [scheme://]host[:port], without path or user"
            ));
        }
        let (host, port) =
            split_host_port(rest).ok_or_else(|| format!("{raw:?}: bad host or port"))?;
        let port = port.unwrap_or(if scheme == "https" { 443 } else { 80 });
        let host = if let Ok(ip) = host.parse::<IpAddr>() {
            HostPattern::Ip(ip)
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if !valid_hostname(suffix) || !suffix.contains('.') {
                return Err(format!(
                    "{raw:?}: a wildcard needs a domain with a dot, like *.example.com"
                ));
            }
            HostPattern::Wildcard(suffix.to_ascii_lowercase())
        } else if valid_hostname(host) {
            HostPattern::Name(host.to_ascii_lowercase())
        } else {
            return Err(format!("{raw:?}: {host:?} is not a host name"));
        };
        Ok(NetworkRule {
            raw: raw.to_string(),
            scheme,
            host,
            port,
        })
    }

    /// Whether the rule allows `scheme://host:port`.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if scheme != self.scheme || port != self.port {
            return false;
        }
        // Brackets only around an IPv6 literal, both or neither: `a]` is not the host `a`.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_ascii_lowercase();
        match &self.host {
            HostPattern::Name(n) => *n == host,
            // The name must be a host name too: a URI allows `!`, `%`, `'`, ... in a name, and
            // the request goes to whatever the resolver makes of them.
            HostPattern::Wildcard(s) => {
                host.len() > s.len() + 1
                    && host.ends_with(&format!(".{s}"))
                    && valid_hostname(&host)
            }
            HostPattern::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
        }
    }

    /// Whether the rule names `ip` explicitly, which allows a special-range address.
    /// The host part as matched: a lowercase name, `*.suffix` for a wildcard, or an address.
    pub fn host(&self) -> String {
        match &self.host {
            HostPattern::Name(n) => n.clone(),
            HostPattern::Wildcard(s) => format!("*.{s}"),
            HostPattern::Ip(ip) => ip.to_string(),
        }
    }

    /// The port the rule allows.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn names_address(&self, ip: IpAddr) -> bool {
        match &self.host {
            HostPattern::Ip(rule_ip) => *rule_ip == ip,
            HostPattern::Name(n) => n == "localhost" && ip.is_loopback(),
            HostPattern::Wildcard(_) => false,
        }
    }
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Splits `host[:port]` and `[v6][:port]`.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((h, port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p.parse().ok()?))),
        Some(_) => None,
        None => Some((s, None)),
    }
}

/// Whether `ip` is in a range a plugin must not reach unless a rule names it: loopback,
/// private, link-local (incl. cloud metadata 169.254.169.254), CGNAT, multicast, reserved,
/// unspecified, and the IPv6 equivalents (incl. IPv4-mapped and NAT64 forms).
pub fn is_special_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return special_v4(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                return special_v4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0) // v4-compatible
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        }
    }
}

fn special_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64/10 (incl. 100.100.100.200 metadata)
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240 // reserved
}

/// The granted rules of one plugin plus the operator's overrides.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    /// Declared and granted rules.
    pub rules: Vec<NetworkRule>,
    /// Declared rules the operator has not granted (for clearer denials).
    pub ungranted: Vec<NetworkRule>,
    /// Operator overrides, applied after the allowlist check.
    pub overrides: OutboundOverrides,
}

impl NetworkPolicy {
    /// Checks a request target against the rules.
    pub fn check(&self, scheme: &str, host: &str, port: u16) -> Result<&NetworkRule, Denial> {
        if let Some(rule) = self.rules.iter().find(|r| r.matches(scheme, host, port)) {
            return Ok(rule);
        }
        let target = format!("{scheme}://{host}:{port}");
        let ungranted = self
            .ungranted
            .iter()
            .find(|r| r.matches(scheme, host, port));
        let (required_grant, reason) = match ungranted {
            Some(r) => (
                format!("operator grant network:{}", r.raw),
                "declared but not granted by the operator".to_string(),
            ),
            None => {
                let suggestion =
                    if (scheme == "https" && port == 443) || (scheme == "http" && port == 80) {
                        if scheme == "https" {
                            host.to_string()
                        } else {
                            format!("http://{host}")
                        }
                    } else {
                        format!("{scheme}://{host}:{port}")
                    };
                (
                    format!("permissions.network: [\"{suggestion}\"] and an operator grant"),
                    "not in permissions.network".to_string(),
                )
            }
        };
        Err(Denial {
            capability: "network",
            target,
            required_grant,
            reason,
        })
    }

    /// Checks a resolved address for a request allowed by `rule`.
    pub fn check_address(
        &self,
        rule: &NetworkRule,
        host: &str,
        addr: SocketAddr,
    ) -> Result<(), Denial> {
        if is_special_address(addr.ip()) && !rule.names_address(addr.ip()) {
            return Err(Denial {
                capability: "network",
                target: format!("{host} -> {}", addr.ip()),
                required_grant: format!(
                    "a permissions.network entry naming the address explicitly, e.g. \"http://{}:{}\"",
                    addr.ip(),
                    addr.port()
                ),
                reason: "resolves to a private, loopback, link-local or reserved address".into(),
            });
        }
        Ok(())
    }
}

/// The `wasi:sockets` address check of one call: every raw socket use is refused with a
/// receipt. (TCP/UDP are enabled in WASI only so that attempts reach this check instead of
/// failing silently; no address ever passes it. Name lookup stays disabled.)
pub fn refuse_raw_sockets(
    ctx: Arc<CallContext>,
) -> impl Fn(
    SocketAddr,
    wasmtime_wasi::sockets::SocketAddrUse,
) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + Sync>>
+ Send
+ Sync
+ 'static {
    move |addr, usage| {
        ctx.deny(&Denial {
            capability: "network",
            target: format!("raw socket {usage:?} {addr}"),
            required_grant:
                "none: plugins cannot use raw sockets; make HTTP requests through wasi:http \
                             to hosts in permissions.network"
                    .into(),
            reason: "raw sockets are not available in the sandbox".into(),
        });
        Box::pin(std::future::ready(false))
    }
}

/// The name-lookup interface whose `resolve-addresses` is refused (the version wasmtime-wasi
/// links; guests importing any 0.2.x resolve to it).
const IP_NAME_LOOKUP: &str = "wasi:sockets/ip-name-lookup@0.2.12";

/// Replaces `wasi:sockets/ip-name-lookup.resolve-addresses` with a refusal that writes a
/// receipt: the host resolves names itself for allowed HTTP requests, plugins never do.
pub fn link_name_lookup_refusal(
    linker: &mut wasmtime::component::Linker<crate::store::HostState>,
) -> wasmtime::Result<()> {
    use wasmtime::component::{Resource, ResourceAny};
    use wasmtime_wasi::p2::Network;
    use wasmtime_wasi::p2::bindings::sockets::network::ErrorCode;
    linker.allow_shadowing(true);
    linker.instance(IP_NAME_LOOKUP)?.func_wrap(
        "resolve-addresses",
        |store: wasmtime::StoreContextMut<'_, crate::store::HostState>,
         (_network, name): (Resource<Network>, String)|
         -> wasmtime::Result<(Result<ResourceAny, ErrorCode>,)> {
            store.data().caps.ctx.deny(&Denial {
                capability: "network",
                target: format!("DNS lookup of {name}"),
                required_grant: "none: plugins cannot resolve names; make HTTP requests through \
                                 wasi:http to hosts in permissions.network (the host resolves them)"
                    .into(),
                reason: "name lookup is not available in the sandbox".into(),
            });
            Ok((Err(ErrorCode::AccessDenied),))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The `WasiHttpHooks` of one call: every outbound request passes through [`Self::send_request`].
pub struct NetworkGuard {
    /// The plugin's policy.
    pub policy: Arc<NetworkPolicy>,
    /// The call (for receipts).
    pub ctx: Arc<CallContext>,
    /// When the call must end; HTTP waits never outlast it.
    pub deadline: Instant,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for NetworkGuard {
    fn is_supported_scheme(&mut self, scheme: &http::uri::Scheme) -> bool {
        *scheme == http::uri::Scheme::HTTP || *scheme == http::uri::Scheme::HTTPS
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let (scheme, host, port) = request_target(request.uri());
        let rule = match self.policy.check(&scheme, &host, port) {
            Ok(rule) => rule.clone(),
            Err(denial) => {
                self.ctx.deny(&denial);
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            }
        };
        let policy = self.policy.clone();
        let ctx = self.ctx.clone();
        let deadline = self.deadline;
        Box::new(async move {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let (addr, scheme) = match policy.overrides.get(&host.to_ascii_lowercase()) {
                Some(t) if t.plaintext => (t.addr, "http".to_string()),
                Some(t) => (t.addr, scheme),
                None => (
                    resolve_checked(&policy, &rule, &ctx, &host, port, remaining).await?,
                    scheme,
                ),
            };
            let resp =
                tokio::time::timeout(remaining, send(request, addr, &scheme, &host, remaining))
                    .await
                    .map_err(|_| HttpError::HttpResponseTimeout)??;
            Ok((
                resp,
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// The `(scheme, host, port)` a guest's request goes to, as the policy checks it and the
/// connection is made (default port by scheme; the host as the URI spells it, IPv6 in brackets).
pub fn request_target(uri: &http::Uri) -> (String, String, u16) {
    let scheme = uri.scheme_str().unwrap_or("https").to_string();
    let host = uri.host().unwrap_or("").to_string();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    (scheme, host, port)
}

/// Resolves `host` and returns the first address, refusing the request if any address is special.
async fn resolve_checked(
    policy: &NetworkPolicy,
    rule: &NetworkRule,
    ctx: &CallContext,
    host: &str,
    port: u16,
    remaining: Duration,
) -> Result<SocketAddr, HttpError> {
    // An IP literal (IPv6 in brackets, as URIs write it) needs no lookup.
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse::<std::net::IpAddr>();
    let addrs: Vec<SocketAddr> = if let Ok(ip) = literal {
        vec![SocketAddr::new(ip, port)]
    } else {
        match tokio::time::timeout(remaining, tokio::net::lookup_host((host, port))).await {
            Err(_) => return Err(HttpError::DnsTimeout),
            Ok(Err(e)) => {
                return Err(HttpError::DnsError {
                    rcode: Some(e.to_string()),
                    info_code: None,
                });
            }
            Ok(Ok(a)) => a.collect(),
        }
    };
    // Every address must pass: otherwise a name with one public and one private record could
    // be steered to the private one.
    for addr in &addrs {
        if let Err(denial) = policy.check_address(rule, host, *addr) {
            ctx.deny(&denial);
            return Err(HttpError::HttpRequestDenied);
        }
    }
    addrs.first().copied().ok_or(HttpError::DestinationNotFound)
}

/// Sends one request to the vetted address (no redirects, bounded response body).
async fn send(
    mut request: http::Request<WasiBody>,
    addr: SocketAddr,
    scheme: &str,
    host: &str,
    remaining: Duration,
) -> Result<http::Response<WasiBody>, HttpError> {
    let connect = remaining.min(Duration::from_millis(HTTP_CONNECT_TIMEOUT_MS));
    let tcp = tokio::time::timeout(connect, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
            _ => HttpError::Connect(e),
        })?;
    // Only the path goes on the wire; the Host header carries the original authority.
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    *request.uri_mut() = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let response = if scheme == "https" {
        let tls = tls_connector();
        let name = rustls::pki_types::ServerName::try_from(host.to_string())?;
        let stream = tls.connect(name, tcp).await.map_err(HttpError::Tls)?;
        handshake_and_send(TokioIo::new(stream), request).await?
    } else {
        handshake_and_send(TokioIo::new(tcp), request).await?
    };
    Ok(response.map(|body| {
        http_body_util::Limited::new(body, MAX_HTTP_RESPONSE_BYTES)
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    HttpError::HttpResponseBodySize(Some(MAX_HTTP_RESPONSE_BYTES as u64))
                } else {
                    HttpError::InternalError(Some(e.to_string()))
                }
            })
            .boxed_unsync()
    }))
}

async fn handshake_and_send<S>(
    io: TokioIo<S>,
    request: http::Request<WasiBody>,
) -> Result<http::Response<hyper::body::Incoming>, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("plugin outbound connection ended: {e}");
        }
    });
    Ok(sender.send_request(request).await?)
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> NetworkRule {
        NetworkRule::parse(s).unwrap()
    }

    #[test]
    fn rules_match_scheme_host_and_port() {
        let cases = [
            ("api.telegram.org", "https", "api.telegram.org", 443, true),
            ("api.telegram.org", "http", "api.telegram.org", 80, false),
            ("api.telegram.org", "https", "api.telegram.org", 8443, false),
            ("api.telegram.org", "https", "API.Telegram.org", 443, true),
            (
                "api.telegram.org",
                "https",
                "evil-api.telegram.org",
                443,
                false,
            ),
            ("*.example.com", "https", "a.example.com", 443, true),
            ("*.example.com", "https", "a.b.example.com", 443, true),
            ("*.example.com", "https", "example.com", 443, false),
            ("*.example.com", "https", "badexample.com", 443, false),
            // Found by fuzzing (fuzz/regressions/network): URI names a resolver may not take
            // as written.
            ("*.example.com", "https", "a!b.example.com", 443, false),
            (
                "*.example.com",
                "https",
                "evil.test%00.example.com",
                443,
                false,
            ),
            ("*.example.com", "https", "a..example.com", 443, false),
            ("http://127.0.0.1:8080", "http", "127.0.0.1", 8080, true),
            ("http://127.0.0.1:8080", "http", "127.0.0.1", 8081, false),
            ("https://[::1]:9443", "https", "[::1]", 9443, true),
            ("http://allowed.test", "http", "allowed.test", 80, true),
        ];
        for (r, scheme, host, port, want) in cases {
            assert_eq!(
                rule(r).matches(scheme, host, port),
                want,
                "{r} vs {scheme}://{host}:{port}"
            );
        }
    }

    #[test]
    fn bad_rules_are_rejected() {
        for bad in [
            "",
            "ftp://x.com",
            "x.com/path",
            "user@x.com",
            "*.com",
            "*",
            "x.com:99999",
            "http://",
            "a b",
        ] {
            assert!(
                NetworkRule::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn special_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::ffff:10.0.0.1",
        ] {
            assert!(
                is_special_address(ip.parse().unwrap()),
                "{ip} should be special"
            );
        }
        for ip in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(
                !is_special_address(ip.parse().unwrap()),
                "{ip} should be public"
            );
        }
    }

    #[test]
    fn private_addresses_need_an_explicit_rule() {
        let policy = NetworkPolicy {
            rules: vec![rule("internal.test"), rule("http://127.0.0.1:9")],
            ..Default::default()
        };
        let a: SocketAddr = "10.0.0.5:443".parse().unwrap();
        let d = policy
            .check_address(&policy.rules[0], "internal.test", a)
            .unwrap_err();
        assert_eq!(d.target, "internal.test -> 10.0.0.5");
        let lo: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(
            policy
                .check_address(&policy.rules[1], "127.0.0.1", lo)
                .is_ok()
        );
        let public: SocketAddr = "93.184.216.34:443".parse().unwrap();
        assert!(
            policy
                .check_address(&policy.rules[0], "internal.test", public)
                .is_ok()
        );
    }

    #[test]
    fn denials_name_the_grant_that_would_allow() {
        let policy = NetworkPolicy {
            rules: vec![rule("api.github.com")],
            ungranted: vec![rule("uploads.github.com")],
            ..Default::default()
        };
        let d = policy.check("https", "evil.test", 443).unwrap_err();
        assert_eq!(
            d.required_grant,
            "permissions.network: [\"evil.test\"] and an operator grant"
        );
        let d = policy.check("http", "evil.test", 8080).unwrap_err();
        assert!(d.required_grant.contains("http://evil.test:8080"));
        let d = policy
            .check("https", "uploads.github.com", 443)
            .unwrap_err();
        assert_eq!(
            d.required_grant,
            "operator grant network:uploads.github.com"
        );
    }
}
