//! Native unit tests over the repository's webhook fixtures (`tests/fixtures/webhooks/telegram`).

use super::*;
use nitejar_plugin_sdk::http::HttpError;
use nitejar_plugin_sdk::testing::MockHost;

const TOKEN: &str = "123456789:AAEhBOweik9ai3Fs2yZ-test_token_x";

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/webhooks/telegram")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

fn instance(extra: Value) -> Instance {
    let mut config = json!({ "botToken": TOKEN, "webhookSecret": "s3cret-token" });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    Instance {
        id: "inst-1".into(),
        integration_type: TYPE.into(),
        config: config.to_string(),
    }
}

fn request(body: Vec<u8>, secret: Option<&str>) -> WebhookRequest {
    WebhookRequest {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: secret
            .map(|s| Header {
                name: SECRET_HEADER.into(),
                value: s.into(),
            })
            .into_iter()
            .collect(),
        body,
    }
}

fn parse(name: &str, extra: Value) -> ParseOutcome {
    Telegram::parse_webhook(
        instance(extra),
        request(fixture(name), Some("s3cret-token")),
    )
    .unwrap()
}

fn work_item(outcome: ParseOutcome) -> InboundMessage {
    match outcome {
        ParseOutcome::WorkItem(m) => m,
        other => panic!("expected a work item, got {other:?}"),
    }
}

#[test]
fn group_text_becomes_a_work_item() {
    let m = work_item(parse("group-text.json", json!({})));
    assert_eq!(
        m.text,
        "@nitejar_bot can you summarize the deploy failures from last night?"
    );
    assert_eq!(m.session_key, "telegram:-1001748203311");
    assert_eq!(m.idempotency_key.as_deref(), Some("update:730918401"));
    assert_eq!(m.command, None);
    assert_eq!(m.sender.as_ref().unwrap().name, "Ana Ruiz");
    let ctx: Value = serde_json::from_str(m.response_context.as_deref().unwrap()).unwrap();
    assert_eq!(
        ctx,
        json!({ "chatId": -1001748203311i64, "messageId": 1893 })
    );
}

#[test]
fn forum_photo_reply_carries_thread_reply_and_largest_photo() {
    let m = work_item(parse("forum-thread-photo-reply.json", json!({})));
    assert_eq!(m.session_key, "telegram:-1001748203311:1877");
    let ctx: Value = serde_json::from_str(m.response_context.as_deref().unwrap()).unwrap();
    assert_eq!(
        ctx,
        json!({ "chatId": -1001748203311i64, "messageId": 1901, "messageThreadId": 1877, "replyToMessageId": 1899 })
    );
    let payload: Value = serde_json::from_str(&m.payload).unwrap();
    assert_eq!(payload["photo"]["fileId"], "AgACAgQAAxkBAAIBm2VYlarge");
    assert_eq!(payload["photo"]["width"], 1280);
    assert_eq!(payload["replyTo"]["fromBot"], true);
    assert!(m.text.contains("this one, the red panel"));
    assert!(m.text.contains("Which dashboard do you mean?"));
    assert!(m.text.contains("AgACAgQAAxkBAAIBm2VYlarge"));
    // Threads can be turned off per instance.
    let m = work_item(parse(
        "forum-thread-photo-reply.json",
        json!({ "useMessageThreads": false }),
    ));
    assert_eq!(m.session_key, "telegram:-1001748203311");
}

#[test]
fn command_is_reported() {
    let m = work_item(parse("private-command.json", json!({})));
    assert_eq!(m.command.as_deref(), Some("clear"));
    assert_eq!(m.session_key, "telegram:88123");
}

#[test]
fn ignored_updates() {
    for name in [
        "from-bot-ignored.json",
        "channel-post-ignored.json",
        "edited-message.json",
    ] {
        assert!(
            matches!(parse(name, json!({})), ParseOutcome::Ignored(_)),
            "{name}"
        );
    }
    // Chat allowlist.
    let out = parse("group-text.json", json!({ "allowedChatIds": [42] }));
    assert!(matches!(out, ParseOutcome::Ignored(r) if r.contains("allowedChatIds")));
    let m = work_item(parse(
        "group-text.json",
        json!({ "allowedChatIds": ["-1001748203311"] }),
    ));
    assert_eq!(m.idempotency_key.as_deref(), Some("update:730918401"));
}

#[test]
fn secret_token_is_required_when_configured() {
    let body = fixture("group-text.json");
    for presented in [None, Some("wrong"), Some("s3cret-token-longer"), Some("")] {
        let out = Telegram::parse_webhook(instance(json!({})), request(body.clone(), presented));
        assert!(
            matches!(out, Ok(ParseOutcome::Unauthorized(_))),
            "{presented:?}"
        );
    }
    // Without a configured secret, no header is needed.
    let open = Instance {
        config: json!({ "botToken": TOKEN }).to_string(),
        ..instance(json!({}))
    };
    assert!(matches!(
        Telegram::parse_webhook(open, request(body, None)),
        Ok(ParseOutcome::WorkItem(_))
    ));
}

#[test]
fn config_validation() {
    assert!(Config::parse(&json!({ "botToken": TOKEN }).to_string()).is_ok());
    let problems = Config::parse(
        &json!({ "botToken": "nope", "webhookSecret": "bad secret!", "allowedChatIds": [true] })
            .to_string(),
    )
    .unwrap_err();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(Config::parse("{}").unwrap_err()[0].contains("botToken"));
}

fn ok(result: Value) -> Result<Response, HttpError> {
    Ok(Response {
        status: 200,
        headers: vec![],
        body: json!({ "ok": true, "result": result })
            .to_string()
            .into_bytes(),
    })
}

#[test]
fn post_response_falls_back_to_plain_text_and_clears_the_reaction() {
    MockHost::default()
        .responder(|req| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            if req.url.ends_with("/sendMessage") && body.get("parse_mode").is_some() {
                return Ok(Response {
                    status: 400,
                    headers: vec![],
                    body: br#"{"ok":false,"error_code":400,"description":"Bad Request: can't parse entities"}"#.to_vec(),
                });
            }
            ok(json!({ "message_id": 77 }))
        })
        .install();
    let ctx = json!({ "chatId": -100, "messageId": 5, "messageThreadId": 9 }).to_string();
    let res = Telegram::post_response(
        instance(json!({})),
        "wi".into(),
        "**hi** <there>".into(),
        Some(ctx),
        PostOptions {
            hit_limit: false,
            idempotency_key: Some("job-1".into()),
        },
    )
    .unwrap();
    assert!(res.delivered);
    assert_eq!(res.external_id.as_deref(), Some("-100:77"));
    let requests = nitejar_plugin_sdk::testing::with_host(|h| h.requests.clone());
    let methods: Vec<&str> = requests
        .iter()
        .map(|r| r.url.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "sendChatAction",
            "sendMessage",
            "sendMessage",
            "setMessageReaction"
        ]
    );
    let html: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(html["text"], "<b>hi</b> &lt;there&gt;");
    assert_eq!(html["message_thread_id"], 9);
    assert_eq!(html["reply_parameters"]["message_id"], 5);
    let plain: Value = serde_json::from_slice(&requests[2].body).unwrap();
    assert_eq!(plain["text"], "**hi** <there>");
    assert!(plain.get("parse_mode").is_none());
    assert!(requests[0].url.contains(TOKEN));
}

#[test]
fn rate_limits_are_retryable_and_errors_never_carry_the_token() {
    MockHost::default()
        .responder(|_| {
            Ok(Response {
                status: 429,
                headers: vec![],
                body: br#"{"ok":false,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#.to_vec(),
            })
        })
        .install();
    let err = Telegram::post_response(
        instance(json!({})),
        "wi".into(),
        "hello".into(),
        Some(json!({ "chatId": 1 }).to_string()),
        PostOptions {
            hit_limit: false,
            idempotency_key: None,
        },
    )
    .unwrap_err();
    assert!(err.retryable);
    assert!(!err.message.contains(TOKEN));
}

#[test]
fn long_replies_resume_after_a_partial_failure() {
    use std::cell::Cell;
    use std::rc::Rc;
    let sends = Rc::new(Cell::new(0));
    let s = sends.clone();
    MockHost::default()
        .responder(move |req| {
            if req.url.ends_with("/sendMessage") {
                s.set(s.get() + 1);
                if s.get() == 2 {
                    return Ok(Response {
                        status: 502,
                        headers: vec![],
                        body: br#"{"ok":false,"description":"Bad Gateway"}"#.to_vec(),
                    });
                }
            }
            ok(json!({ "message_id": s.get() }))
        })
        .install();
    let long = vec!["word ".repeat(500); 3].join("\n\n");
    let opts = PostOptions {
        hit_limit: false,
        idempotency_key: Some("job-9".into()),
    };
    let ctx = Some(json!({ "chatId": 1, "messageId": 2 }).to_string());
    let first = Telegram::post_response(
        instance(json!({})),
        "wi".into(),
        long.clone(),
        ctx.clone(),
        opts.clone(),
    );
    assert!(first.unwrap_err().retryable);
    let again = Telegram::post_response(instance(json!({})), "wi".into(), long, ctx, opts).unwrap();
    assert!(again.delivered);
    // 3 pieces: piece 1 once, piece 2 failed then sent, piece 3 once.
    assert_eq!(sends.get(), 4);
    // The guard's entry says all three were sent (the host deletes it once it has recorded the
    // delivery); a third attempt sends nothing.
    let again = Telegram::post_response(
        instance(json!({})),
        "wi".into(),
        vec!["word ".repeat(500); 3].join("\n\n"),
        Some(json!({ "chatId": 1, "messageId": 2 }).to_string()),
        PostOptions {
            hit_limit: false,
            idempotency_key: Some("job-9".into()),
        },
    )
    .unwrap();
    assert_eq!(
        again.detail.as_deref(),
        Some("already sent by an earlier attempt")
    );
    assert_eq!(sends.get(), 4);
}

#[test]
fn a_message_handed_over_without_an_answer_is_not_sent_again() {
    use std::cell::Cell;
    use std::rc::Rc;
    let sends = Rc::new(Cell::new(0));
    let s = sends.clone();
    MockHost::default()
        .responder(move |req| {
            if req.url.ends_with("/sendMessage") {
                s.set(s.get() + 1);
                // Telegram got it; the answer never came back.
                return Err(HttpError::Transport("connection reset".into()));
            }
            ok(json!(true))
        })
        .install();
    let post = || {
        Telegram::post_response(
            instance(json!({})),
            "wi".into(),
            "hello".into(),
            Some(json!({ "chatId": 1, "messageId": 2 }).to_string()),
            PostOptions {
                hit_limit: false,
                idempotency_key: Some("job-5".into()),
            },
        )
    };
    assert!(post().unwrap_err().retryable);
    // The retry (in this process or after a restart) does not send it again: at most once.
    let err = post().unwrap_err();
    assert_eq!(err.code, "delivery_uncertain", "{err:?}");
    assert!(!err.retryable);
    assert_eq!(sends.get(), 1);
}
