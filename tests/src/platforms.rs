//! Local stand-ins for `api.telegram.org` and `api.github.com`, reached through the host's
//! outbound override (`host=http://127.0.0.1:port`) while the plugins' allowlists stay as
//! shipped. Each records every request and answers the way the real API does for the calls the
//! built-in plugins make (and refuses the way it does: bad token 401, unknown path 404).

use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use rsa::{RsaPrivateKey, pkcs1::DecodeRsaPrivateKey};
use serde_json::{Value, json};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One request a stand-in received.
#[derive(Debug, Clone)]
pub struct ApiCall {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl ApiCall {
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Shared state of a stand-in.
#[derive(Default)]
pub struct ApiState {
    /// Every request, in order.
    pub calls: Mutex<Vec<ApiCall>>,
    /// Telegram: answer `parse_mode: HTML` messages with "can't parse entities".
    pub reject_html: AtomicBool,
    /// GitHub: installation tokens issued.
    pub tokens_issued: AtomicU64,
    /// While set, replies (Telegram `sendMessage`, GitHub comment creation) are taken in and
    /// recorded but not answered: a process killed meanwhile has handed its reply over
    /// without getting the answer.
    pub hold_replies: AtomicBool,
    /// Replies taken in and waiting for their answer (see `hold_replies`).
    pub held_replies: AtomicU64,
    /// GitHub: the comments created, as (`owner/repo/number`, comment).
    pub comments: Mutex<Vec<(String, Value)>>,
    next_id: AtomicU64,
}

/// A running stand-in.
pub struct PlatformApi {
    /// Its address (for the outbound override).
    pub addr: SocketAddr,
    /// What it received and how it behaves.
    pub state: Arc<ApiState>,
}

impl PlatformApi {
    /// The override value that sends a plugin's requests here over plain HTTP.
    pub fn target(&self) -> nitejar_core::config::OutboundTarget {
        nitejar_core::config::OutboundTarget {
            addr: self.addr,
            plaintext: true,
        }
    }

    /// Requests received so far.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.state.calls.lock().unwrap().clone()
    }

    /// Requests whose path ends with `suffix`.
    pub fn calls_to(&self, suffix: &str) -> Vec<ApiCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.path.ends_with(suffix))
            .collect()
    }

    async fn serve(
        handler: impl Fn(&ApiState, &ApiCall) -> (u16, Value) + Send + Sync + 'static,
    ) -> PlatformApi {
        let state: Arc<ApiState> = Arc::default();
        state.next_id.store(1000, Ordering::SeqCst);
        let st = state.clone();
        let handler = Arc::new(handler);
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let st = st.clone();
            let handler = handler.clone();
            async move {
                let method = req.method().to_string();
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_ascii_lowercase(),
                            v.to_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect();
                let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
                    .await
                    .unwrap_or_default();
                let call = ApiCall {
                    method,
                    path,
                    headers,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                st.calls.lock().unwrap().push(call.clone());
                let (status, body) = handler(&st, &call);
                let reply = call.method == "POST"
                    && (call.path.ends_with("/sendMessage") || call.path.ends_with("/comments"));
                if reply && st.hold_replies.load(Ordering::SeqCst) {
                    st.held_replies.fetch_add(1, Ordering::SeqCst);
                    while st.hold_replies.load(Ordering::SeqCst) {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                    st.held_replies.fetch_sub(1, Ordering::SeqCst);
                }
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    axum::Json(body),
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        PlatformApi { addr, state }
    }

    /// A Telegram Bot API stand-in accepting `token`.
    pub async fn telegram(token: &str) -> PlatformApi {
        let prefix = format!("/bot{token}/");
        Self::serve(move |st, call| {
            let Some(method) = call.path.strip_prefix(&prefix) else {
                return (
                    401,
                    json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
                );
            };
            if call.method != "POST" {
                return (405, json!({"ok": false, "description": "use POST"}));
            }
            match method {
                "getMe" => (
                    200,
                    json!({"ok": true, "result": {"id": 7001, "is_bot": true, "first_name": "Nitejar", "username": "nitejar_bot"}}),
                ),
                "sendMessage" => {
                    let html = call.body.get("parse_mode").and_then(Value::as_str) == Some("HTML");
                    if html && st.reject_html.load(Ordering::SeqCst) {
                        return (
                            400,
                            json!({"ok": false, "error_code": 400, "description": "Bad Request: can't parse entities: unsupported start tag"}),
                        );
                    }
                    if call.body.get("chat_id").is_none() || call.body.get("text").is_none() {
                        return (
                            400,
                            json!({"ok": false, "error_code": 400, "description": "Bad Request: message text is empty"}),
                        );
                    }
                    let id = st.next_id.fetch_add(1, Ordering::SeqCst);
                    (
                        200,
                        json!({"ok": true, "result": {"message_id": id, "chat": {"id": call.body["chat_id"]}, "text": call.body["text"]}}),
                    )
                }
                "sendChatAction" | "setMessageReaction" => (200, json!({"ok": true, "result": true})),
                _ => (
                    404,
                    json!({"ok": false, "error_code": 404, "description": "Not Found"}),
                ),
            }
        })
        .await
    }

    /// A GitHub REST API stand-in: App `app_id` with the public half of `private_key_pem`
    /// (JWTs are verified: RS256 signature, issuer, expiry), and a personal token `pat`.
    pub async fn github(app_id: u64, private_key_pem: &str, pat: &str) -> PlatformApi {
        let key = RsaPrivateKey::from_pkcs1_pem(private_key_pem).expect("test key");
        let verifier = VerifyingKey::<Sha256>::new(key.to_public_key());
        let pat = pat.to_string();
        let issued: Arc<Mutex<Vec<String>>> = Arc::default();
        Self::serve(move |st, call| {
            let bearer = call
                .header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or("");
            let jwt_ok = || jwt_valid(&verifier, app_id, bearer);
            if call.header("user-agent").is_none_or(str::is_empty) {
                return (403, json!({"message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"}));
            }
            let unauthorized = (401, json!({"message": "Bad credentials"}));
            let path = call.path.split('?').next().unwrap_or_default();
            let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            match (call.method.as_str(), segments.as_slice()) {
                ("GET", ["app"]) => {
                    if !jwt_ok() {
                        return unauthorized;
                    }
                    (200, json!({"id": app_id, "slug": "nitejar-test", "name": "Nitejar Test"}))
                }
                ("GET", ["user"]) => {
                    if bearer != pat {
                        return unauthorized;
                    }
                    (200, json!({"login": "octo-bot", "id": 1}))
                }
                ("POST", ["app", "installations", id, "access_tokens"]) => {
                    if !jwt_ok() {
                        return unauthorized;
                    }
                    let n = st.tokens_issued.fetch_add(1, Ordering::SeqCst);
                    let token = format!("ghs_installation_{id}_{n}");
                    issued.lock().unwrap().push(token.clone());
                    (201, json!({"token": token, "expires_at": "2099-01-01T00:00:00Z"}))
                }
                ("POST", ["repos", owner, repo, "issues", number, "comments"]) => {
                    let known = bearer == pat || issued.lock().unwrap().iter().any(|t| t == bearer);
                    if !known {
                        return unauthorized;
                    }
                    if call.body.get("body").and_then(Value::as_str).is_none_or(str::is_empty) {
                        return (422, json!({"message": "Validation Failed"}));
                    }
                    let id = st.next_id.fetch_add(1, Ordering::SeqCst);
                    let comment = json!({"id": id, "html_url": format!("https://github.com/{owner}/{repo}/issues/{number}#issuecomment-{id}"), "body": call.body["body"]});
                    st.comments
                        .lock()
                        .unwrap()
                        .push((format!("{owner}/{repo}/{number}"), comment.clone()));
                    (201, comment)
                }
                ("GET", ["repos", owner, repo, "issues", number, "comments"]) => {
                    let known = bearer == pat || issued.lock().unwrap().iter().any(|t| t == bearer);
                    if !known {
                        return unauthorized;
                    }
                    let issue = format!("{owner}/{repo}/{number}");
                    let list: Vec<Value> = st
                        .comments
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(i, _)| *i == issue)
                        .map(|(_, c)| c.clone())
                        .collect();
                    (200, Value::Array(list))
                }
                _ => (404, json!({"message": "Not Found"})),
            }
        })
        .await
    }
}

/// Verifies an App JWT the way GitHub does: RS256 signature, `iss` = app id, not expired, at
/// most ten minutes long.
fn jwt_valid(verifier: &VerifyingKey<Sha256>, app_id: u64, jwt: &str) -> bool {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, sig] = parts.as_slice() else {
        return false;
    };
    let Ok(sig) = b64
        .decode(sig)
        .map_err(|_| ())
        .and_then(|s| Signature::try_from(s.as_slice()).map_err(|_| ()))
    else {
        return false;
    };
    if verifier
        .verify(format!("{header}.{claims}").as_bytes(), &sig)
        .is_err()
    {
        return false;
    }
    let Ok(claims) = b64
        .decode(claims)
        .map_err(|_| ())
        .and_then(|c| serde_json::from_slice::<Value>(&c).map_err(|_| ()))
    else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap_or(0),
        claims["exp"].as_i64().unwrap_or(0),
    );
    claims["iss"].as_u64() == Some(app_id) && exp > now && iat <= now && exp - iat <= 600
}
