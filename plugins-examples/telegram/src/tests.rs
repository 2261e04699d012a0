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
fn group_text_becomes_a_work_item_with_nitejars_keys() {
    let m = work_item(parse("group-text.json", json!({})));
    assert_eq!(
        m.text,
        "@nitejar_bot can you summarize the deploy failures from last night?"
    );
    assert_eq!(m.session_key, "telegram:-1001748203311");
    assert_eq!(m.source_ref, "telegram:-1001748203311:1893");
    assert_eq!(m.idempotency_key.as_deref(), Some("telegram:730918401"));
    assert_eq!(
        m.title,
        "@nitejar_bot can you summarize the deploy failures from last night?"
    );
    assert_eq!(m.command, None);
    assert_eq!(m.sender.as_ref().unwrap().name, "Ana Ruiz");
    let ctx: Value = serde_json::from_str(m.response_context.as_deref().unwrap()).unwrap();
    assert_eq!(
        ctx,
        json!({ "chatId": -1001748203311i64, "messageId": 1893 })
    );
    let p: Value = serde_json::from_str(&m.payload).unwrap();
    assert_eq!(p["body"], m.text);
    assert_eq!(p["source"], "telegram");
    assert_eq!(
        p["actor"],
        json!({"kind": "human", "externalId": "5120348812", "handle": "anaruiz",
               "displayName": "Ana Ruiz", "source": "telegram"})
    );
    assert_eq!(p["chatId"], -1001748203311i64);
    assert_eq!(p["chatType"], "supergroup");
    assert_eq!(p["chatName"], "Ops Room");
    assert_eq!(p["messageId"], 1893);
    assert_eq!(p["messageThreadId"], Value::Null);
    assert_eq!(p["senderId"], 5120348812i64);
    assert_eq!(p["senderName"], "Ana Ruiz");
    assert_eq!(p["senderUsername"], "anaruiz");
    assert!(p["timestamp"].is_u64());
    assert_eq!(p["replyToMessageId"], Value::Null);
    assert_eq!(p["attachments"], json!([]));
}

#[test]
fn forum_photo_reply_carries_thread_reply_and_largest_photo() {
    let m = work_item(parse("forum-thread-photo-reply.json", json!({})));
    assert_eq!(m.session_key, "telegram:-1001748203311:thread:1877");
    assert_eq!(m.source_ref, "telegram:-1001748203311:1877:1901");
    assert_eq!(m.title, "this one, the red panel");
    let ctx: Value = serde_json::from_str(m.response_context.as_deref().unwrap()).unwrap();
    assert_eq!(
        ctx,
        json!({ "chatId": -1001748203311i64, "messageId": 1901, "messageThreadId": 1877, "replyToMessageId": 1899 })
    );
    let payload: Value = serde_json::from_str(&m.payload).unwrap();
    assert_eq!(
        payload["attachments"],
        json!([{"type": "photo", "fileId": "AgACAgQAAxkBAAIBm2VYlarge", "fileUniqueId": "AQADlg1",
                "width": 1280, "height": 720, "fileSize": 88231,
                "caption": "this one, the red panel"}])
    );
    assert_eq!(payload["messageThreadId"], 1877);
    assert_eq!(payload["replyToMessageId"], 1899);
    assert_eq!(
        payload["replyToMessageText"],
        "Which dashboard do you mean?"
    );
    assert_eq!(payload["replyTo"]["fromBot"], true);
    assert!(m.text.contains("this one, the red panel"));
    assert!(m.text.contains("Which dashboard do you mean?"));
    assert!(
        m.text
            .contains("[Photo attached: 1280x720, file_id AgACAgQAAxkBAAIBm2VYlarge]")
    );
    // Threads can be turned off per instance.
    let m = work_item(parse(
        "forum-thread-photo-reply.json",
        json!({ "useMessageThreads": false }),
    ));
    assert_eq!(m.session_key, "telegram:-1001748203311");
    assert_eq!(m.source_ref, "telegram:-1001748203311:1901");
}

/// Every attachment kind, in the shapes the Bot API sends (a video note in a forum topic was
/// answered `ignored` before).
#[test]
fn every_attachment_kind_becomes_a_work_item() {
    let cases = [
        (
            "video-note-forum-topic.json",
            "video_note",
            "video_note from Ops Room",
        ),
        (
            "document-caption.json",
            "document",
            "runbook, page 3 is wrong",
        ),
        ("voice-private.json", "voice", "voice from anaruiz"),
        (
            "sticker-group.json",
            "sticker",
            "sticker from Chat -4099887766",
        ),
        ("animation.json", "document", "document from Ops Room"),
        ("audio.json", "audio", "audio from Ops Room"),
        ("video.json", "video", "video from Ops Room"),
    ];
    for (name, kind, title) in cases {
        let m = work_item(parse(name, json!({})));
        let p: Value = serde_json::from_str(&m.payload).unwrap();
        assert_eq!(p["attachments"][0]["type"], kind, "{name}");
        assert_eq!(m.title, title, "{name}");
        assert!(m.text.contains("attached: "), "{name}: {}", m.text);
    }
    let m = work_item(parse("video-note-forum-topic.json", json!({})));
    assert_eq!(m.session_key, "telegram:-1001748203311:thread:1877");
    let p: Value = serde_json::from_str(&m.payload).unwrap();
    assert_eq!(
        p["attachments"],
        json!([{"type": "video_note", "fileId": "DQACAgQAAxkBAAIBnWVnote", "fileUniqueId": "AgADnote",
                "width": 240, "height": 240, "duration": 9, "fileSize": 310442}])
    );
    assert!(
        m.text
            .contains("[Video note attached: 240x240, 9 s, file_id DQACAgQAAxkBAAIBnWVnote]")
    );
    let m = work_item(parse("document-caption.json", json!({})));
    let p: Value = serde_json::from_str(&m.payload).unwrap();
    let doc = &p["attachments"][0];
    assert_eq!(doc["fileName"], "runbook.pdf");
    assert_eq!(doc["mimeType"], "application/pdf");
    assert_eq!(doc["caption"], "runbook, page 3 is wrong");
    let m = work_item(parse("sticker-group.json", json!({})));
    let p: Value = serde_json::from_str(&m.payload).unwrap();
    let s = &p["attachments"][0];
    assert_eq!(
        (&s["emoji"], &s["isAnimated"], &s["isVideo"]),
        (&json!("👍"), &json!(false), &json!(true))
    );
    // One item per kind present, in Nitejar's order (Telegram sends an animation twice).
    let m = work_item(parse("animation.json", json!({})));
    let p: Value = serde_json::from_str(&m.payload).unwrap();
    let kinds: Vec<&str> = p["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["document", "animation"]);
    let m = work_item(parse("audio.json", json!({})));
    let p: Value = serde_json::from_str(&m.payload).unwrap();
    assert_eq!(p["attachments"][0]["performer"], "Ops Band");
    assert_eq!(p["attachments"][0]["title"], "Rollback Blues");
}

#[test]
fn titles_are_cut_as_nitejar_cuts_them() {
    let long = "é".repeat(150);
    let update = json!({"update_id": 9, "message": {"message_id": 3, "date": 1,
        "from": {"id": 1, "is_bot": false, "first_name": "A"},
        "chat": {"id": 5, "type": "private", "username": "a"}, "text": format!("  {long}  ")}});
    let out = Telegram::parse_webhook(
        instance(json!({})),
        request(update.to_string().into_bytes(), Some("s3cret-token")),
    );
    let m = work_item(out.unwrap());
    assert_eq!(m.title.chars().count(), 100);
    assert!(m.title.ends_with("é..."));
    assert_eq!(m.text, long, "the body is the trimmed text");
}

#[test]
fn command_is_reported() {
    let m = work_item(parse("private-command.json", json!({})));
    assert_eq!(m.command.as_deref(), Some("clear"));
    assert_eq!(m.session_key, "telegram:88123");
    assert_eq!(command_of("/clear@nitejar_bot now"), Some("clear".into()));
    assert_eq!(
        command_of("/summarize_all please"),
        Some("summarize_all".into())
    );
    assert_eq!(command_of("please /clear"), None);
    assert_eq!(command_of("/ clear"), None);
}

#[test]
fn edited_messages_are_answered_like_nitejar_does() {
    let m = work_item(parse("edited-message.json", json!({})));
    assert_eq!(m.idempotency_key.as_deref(), Some("telegram:730918405"));
    assert_eq!(m.source_ref, "telegram:-1001748203311:1893");
    let p: Value = serde_json::from_str(&m.payload).unwrap();
    assert_eq!(p["edited"], true);
}

#[test]
fn ignored_updates() {
    for name in ["from-bot-ignored.json", "channel-post-ignored.json"] {
        assert!(
            matches!(parse(name, json!({})), ParseOutcome::Ignored(_)),
            "{name}"
        );
    }
    // Nothing to answer: whitespace only, no attachment.
    let update = json!({"update_id": 9, "message": {"message_id": 3, "date": 1,
        "from": {"id": 1, "is_bot": false, "first_name": "A"},
        "chat": {"id": 5, "type": "private"}, "text": "  \n "}});
    let out = Telegram::parse_webhook(
        instance(json!({})),
        request(update.to_string().into_bytes(), Some("s3cret-token")),
    );
    assert!(matches!(out, Ok(ParseOutcome::Ignored(r)) if r.contains("no text")));
    // Chat allowlist.
    let out = parse("group-text.json", json!({ "allowedChatIds": [42] }));
    assert!(matches!(out, ParseOutcome::Ignored(r) if r.contains("allowedChatIds")));
    let m = work_item(parse(
        "group-text.json",
        json!({ "allowedChatIds": ["-1001748203311"] }),
    ));
    assert_eq!(m.idempotency_key.as_deref(), Some("telegram:730918401"));
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
