//! Example integration: a generic JSON webhook.
//!
//! The sender signs the raw body with HMAC-SHA256 using the instance's `secret` and sends
//! `X-Signature-256: sha256=<hex>`. The body is a JSON object:
//! `{"id": "evt-1", "text": "...", "session": "optional", "title": "optional", "sender": "optional"}`.
//! The optional `X-Delivery-Id` header (else `id`, else the body's SHA-256) is the idempotency
//! key. A correctly signed body that is not such an object is answered 400 (not 200 `ignored`:
//! the sender must learn it was not delivered).

use hmac::{Hmac, Mac};
use nitejar_plugin_sdk::integration::*;
use nitejar_plugin_sdk::{Contributions, Integration, Plugin, export_plugin};
use serde_json::Value;
use sha2::{Digest, Sha256};

const TYPE: &str = "webhook";
const SIGNATURE_HEADER: &str = "x-signature-256";

/// The integration (public for the native fuzz targets in `fuzz/`).
pub struct Webhook;

impl Plugin for Webhook {
    fn contributions() -> Contributions {
        Contributions::integrations(&[TYPE])
    }
}

fn header<'a>(req: &'a WebhookRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Constant-time check of `sha256=<hex>` against the HMAC of `body`.
fn signature_valid(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok() // verify_slice compares in constant time (subtle)
}

fn config_secret(config: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(config).map_err(|e| format!("config is not JSON: {e}"))?;
    match v.get("secret").and_then(Value::as_str) {
        Some(s) if s.len() >= 16 => Ok(s.to_string()),
        Some(_) => Err("`secret` must be at least 16 characters".into()),
        None => Err("`secret` is required".into()),
    }
}

impl Integration for Webhook {
    fn describe() -> Vec<Descriptor> {
        vec![Descriptor {
            integration_type: TYPE.into(),
            display_name: "JSON webhook".into(),
            description: "Any system that can POST signed JSON.".into(),
            icon: "webhook".into(),
            category: Category::Other,
            response_mode: ResponseMode::Final,
            config_schema: serde_json::json!({
                "type": "object",
                "required": ["secret"],
                "properties": {
                    "secret": {"type": "string", "minLength": 16, "title": "Signing secret"}
                },
                "additionalProperties": false
            })
            .to_string(),
            ui_schema: None,
            sensitive_fields: vec!["secret".into()],
        }]
    }

    fn validate_config(_t: String, config: String) -> Result<(), Vec<String>> {
        config_secret(&config).map(|_| ()).map_err(|e| vec![e])
    }

    fn parse_webhook(instance: Instance, req: WebhookRequest) -> Result<ParseOutcome, PluginError> {
        let secret =
            config_secret(&instance.config).map_err(|e| PluginError::new("invalid_config", e))?;
        if !signature_valid(&secret, &req.body, header(&req, SIGNATURE_HEADER)) {
            return Ok(ParseOutcome::Unauthorized("signature mismatch".into()));
        }
        let body: Value = match serde_json::from_slice(&req.body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Ok(bad_request("invalid_body", "the body is not a JSON object")),
        };
        let Some(text) = body.get("text").and_then(Value::as_str) else {
            return Ok(bad_request("invalid_body", "the body has no `text` string"));
        };
        // Without a delivery id or `id`, the body's digest identifies the delivery: a
        // redelivery (same bytes) is recognised, distinct messages never collapse into one.
        let id = body
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.trim().is_empty())
            .map_or_else(
                || format!("sha256:{}", hex::encode(Sha256::digest(&req.body))),
                str::to_string,
            );
        let session = body
            .get("session")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let title = body
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| text.chars().take(60).collect());
        let idempotency_key = header(&req, "x-delivery-id")
            .filter(|d| !d.trim().is_empty())
            .map_or_else(|| id.clone(), str::to_string);
        let sender = body.get("sender").and_then(Value::as_str).map(|s| Sender {
            id: s.into(),
            name: s.into(),
            is_bot: false,
        });
        Ok(ParseOutcome::WorkItem(InboundMessage {
            title,
            text: text.to_string(),
            session_key: format!("webhook:{}:{session}", instance.id),
            source_ref: format!("webhook:{id}"),
            sender,
            command: None,
            idempotency_key: Some(idempotency_key),
            payload: body.to_string(),
            response_context: None,
        }))
    }
}

export_plugin!(Webhook: Integration);

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn request(body: &[u8], signature: &str) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: vec![Header {
                name: "x-signature-256".into(),
                value: signature.into(),
            }],
            body: body.to_vec(),
        }
    }

    const SECRET: &str = "0123456789abcdef";

    /// An instance `i1` configured with [`SECRET`].
    fn instance() -> Instance {
        Instance {
            id: "i1".into(),
            integration_type: TYPE.into(),
            config: serde_json::json!({ "secret": SECRET }).to_string(),
        }
    }

    /// The whole export, natively, as the SDK's testing story promises: no server, no wasm.
    #[test]
    fn parses_a_signed_delivery_natively() {
        let (secret, instance) = (SECRET, instance());
        let body = br#"{"id":"e1","text":"hello","session":"s"}"#;
        match Webhook::parse_webhook(instance.clone(), request(body, &sign(secret, body))).unwrap()
        {
            ParseOutcome::WorkItem(m) => {
                assert_eq!(m.text, "hello");
                assert_eq!(m.session_key, "webhook:i1:s");
                assert_eq!(m.idempotency_key.as_deref(), Some("e1"));
            }
            other => panic!("{other:?}"),
        }
        let bad = Webhook::parse_webhook(instance, request(body, "sha256=00")).unwrap();
        assert!(matches!(bad, ParseOutcome::Unauthorized(_)));
    }

    /// Without a delivery id or an `id`, the body's SHA-256 is the key: the same bytes again
    /// are the same delivery, other bytes another.
    #[test]
    fn a_body_without_an_id_is_keyed_by_its_digest() {
        let (secret, instance) = (SECRET, instance());
        let key = |body: &[u8]| match Webhook::parse_webhook(
            instance.clone(),
            request(body, &sign(secret, body)),
        ) {
            Ok(ParseOutcome::WorkItem(m)) => m.idempotency_key.unwrap(),
            other => panic!("{other:?}"),
        };
        let body = br#"{"text":"hello"}"#;
        assert_eq!(
            key(body),
            format!("sha256:{}", hex::encode(Sha256::digest(body)))
        );
        assert_eq!(key(body), key(body));
        assert_ne!(key(body), key(br#"{"text":"hello!"}"#));
    }

    #[test]
    fn signature_checks() {
        let body = br#"{"text":"hi"}"#;
        let good = sign("0123456789abcdef", body);
        assert!(signature_valid("0123456789abcdef", body, Some(&good)));
        assert!(!signature_valid("0123456789abcdeX", body, Some(&good)));
        assert!(!signature_valid("0123456789abcdef", b"{}", Some(&good)));
        assert!(!signature_valid("0123456789abcdef", body, None));
        assert!(!signature_valid(
            "0123456789abcdef",
            body,
            Some("sha256=zz")
        ));
    }
}
