//! Credentials for the GitHub API: a token, or a GitHub App (RS256 JWT exchanged for an
//! installation token).
//!
//! Installation tokens are cached in the plugin's key-value storage until five minutes before
//! they expire, encrypted with AES-256-GCM under a key derived from the App's private key (the
//! storage lives in the host's database; the token is never stored in plaintext there).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nitejar_plugin_sdk::{PluginError, kv, random};
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Refresh a cached installation token this long before GitHub's expiry.
const EXPIRY_MARGIN_SECS: i64 = 300;

/// How the plugin authenticates.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// A personal access or fine-grained token.
    Token(String),
    /// A GitHub App: its id and PEM private key (PKCS#1 as GitHub issues it, or PKCS#8).
    App {
        /// App id (`iss` of the JWT).
        app_id: String,
        /// PEM private key.
        private_key: String,
    },
}

/// Parses a PEM RSA private key in either encoding.
pub fn parse_key(pem: &str) -> Result<RsaPrivateKey, String> {
    RsaPrivateKey::from_pkcs1_pem(pem.trim())
        .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem.trim()))
        .map_err(|_| "`privateKey` is not a PEM RSA private key".to_string())
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An App JWT valid for nine minutes (GitHub allows ten), backdated a minute for clock drift.
pub fn app_jwt(app_id: &str, private_key: &str, now: i64) -> Result<String, PluginError> {
    let key = parse_key(private_key).map_err(|e| PluginError::new("invalid_config", e))?;
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "RS256", "typ": "JWT" }).to_string());
    let iss: Value = app_id
        .parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(app_id));
    let claims = URL_SAFE_NO_PAD
        .encode(json!({ "iat": now - 60, "exp": now + 540, "iss": iss }).to_string());
    let signing_input = format!("{header}.{claims}");
    let signature = SigningKey::<Sha256>::new(key).sign(signing_input.as_bytes());
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses GitHub's `2026-11-23T10:09:40Z` timestamps.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    Some(days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se)
}

fn cache_cipher(private_key: &str) -> Aes256Gcm {
    let mut h = Sha256::new();
    h.update(b"nitejar builtin.github installation-token cache v1\0");
    h.update(private_key.trim().as_bytes());
    Aes256Gcm::new_from_slice(&h.finalize()).expect("a SHA-256 digest is a valid AES-256 key")
}

fn cache_key(installation_id: u64) -> String {
    format!("installation-token:{installation_id}")
}

/// A cached token that is still good at `now`.
pub fn cached_token(private_key: &str, installation_id: u64, now: i64) -> Option<String> {
    let stored = kv::get(&cache_key(installation_id)).ok()??;
    if stored.len() < 13 {
        return None;
    }
    let (nonce, sealed) = stored.split_at(12);
    let plain = cache_cipher(private_key)
        .decrypt(Nonce::from_slice(nonce), sealed)
        .ok()?;
    let v: Value = serde_json::from_slice(&plain).ok()?;
    let expires = v.get("expiresAt").and_then(Value::as_i64)?;
    if now + EXPIRY_MARGIN_SECS >= expires {
        return None;
    }
    v.get("token").and_then(Value::as_str).map(str::to_string)
}

/// Caches `token` until `expires_at` (best effort: a failure only costs a new exchange).
pub fn store_token(private_key: &str, installation_id: u64, token: &str, expires_at: i64) {
    let nonce = random::bytes(12);
    let plain = json!({ "token": token, "expiresAt": expires_at }).to_string();
    if let Ok(sealed) =
        cache_cipher(private_key).encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
    {
        let mut value = nonce;
        value.extend_from_slice(&sealed);
        let _ = kv::set(&cache_key(installation_id), &value);
    }
}

/// Forgets a cached token (GitHub refused it).
pub fn forget_token(installation_id: u64) {
    let _ = kv::delete(&cache_key(installation_id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp("2026-11-23T10:09:40Z"), Some(1_795_428_580));
        assert_eq!(parse_timestamp("2026-11-23 10:09:40"), None);
    }
}
