//! The admin web UI over HTTP (issue 16's first slice; the browser tests come with the pages
//! they drive): sign-in and the session cookie, redirects without a session, the security
//! headers, CSRF and cross-site refusals, hostile plugin strings escaped, and the posture shown
//! word for word as the API reports it.

use nitejar_tests::{ADMIN_TOKEN, TestHost, package_with_manifest};
use reqwest::Method;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

/// A hostile string: markup, an attribute break-out and a script URL.
const HOSTILE: &str = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>'javascript:x";

/// A client that does not follow redirects (the tests look at them).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The page's own script tag (`/admin/app.js` with its integrity hash).
fn own_script(body: &str) -> String {
    let start = body
        .find("<script src=\"/admin/app.js\"")
        .expect("the UI's script tag");
    let end = start + body[start..].find("</script>").unwrap() + "</script>".len();
    body[start..end].to_string()
}

/// The HTML escaping every page applies to a value.
fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

async fn get(host: &TestHost, path: &str, cookie: Option<&str>) -> Page {
    let mut req = browser().get(format!("{}{path}", host.base));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().await.unwrap();
    Page {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

async fn post(
    host: &TestHost,
    path: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    form: &[(&str, &str)],
) -> Page {
    let mut req = browser().post(format!("{}{path}", host.base)).form(form);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let resp = req.send().await.unwrap();
    Page {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

/// Signs in; returns the `Cookie` header value.
async fn sign_in(host: &TestHost) -> String {
    let page = post(host, "/admin/login", None, None, &[("token", ADMIN_TOKEN)]).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let set = page.headers[SET_COOKIE].to_str().unwrap().to_string();
    set.split(';').next().unwrap().to_string()
}

/// The CSRF token of a page's forms.
fn csrf(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf token")
        + 19;
    body[at..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sessions_and_headers() {
    let host = TestHost::start().await;
    // Without a session every page redirects to sign-in.
    for path in [
        "/admin",
        "/admin/",
        "/admin/plugins",
        "/admin/plugins/builtin.telegram",
    ] {
        let page = get(&host, path, None).await;
        assert_eq!(page.status, 303, "{path}");
        assert_eq!(page.headers[LOCATION], "/admin/login", "{path}");
    }
    let page = get(&host, "/admin", Some("nitejar_session=forged")).await;
    assert_eq!(page.status, 303, "an unknown session is no session");

    // The sign-in page, with the security headers every UI answer carries.
    let login = get(&host, "/admin/login", None).await;
    assert_eq!(login.status, 200);
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    // The one script is the UI's own file, allowed by its hash (not by this origin, where
    // plugins answer webhooks): no inline script anywhere.
    let js = get(&host, "/admin/app.js", None).await;
    assert_eq!(js.status, 200);
    let sri = {
        use base64::Engine as _;
        use sha2::Digest as _;
        format!(
            "sha384-{}",
            base64::engine::general_purpose::STANDARD
                .encode(sha2::Sha384::digest(js.body.as_bytes()))
        )
    };
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains(&format!("script-src '{sri}';"))
            && !csp.contains("unsafe")
            && !csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(login.body.matches("<script").count(), 1);
    assert_eq!(
        own_script(&login.body),
        format!(
            "<script src=\"/admin/app.js\" integrity=\"{}\" defer></script>",
            escaped(&sri)
        )
    );
    assert!(
        js.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(login.headers["x-content-type-options"], "nosniff");
    assert_eq!(login.headers["cache-control"], "no-store");
    let css = get(&host, "/admin/app.css", None).await;
    assert_eq!(css.status, 200);
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );

    // A wrong token is refused; the right one gives a strict cookie (Secure over TLS).
    let wrong = post(&host, "/admin/login", None, None, &[("token", "nope")]).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.headers.get(SET_COOKIE).is_none());
    let ok = post(&host, "/admin/login", None, None, &[("token", ADMIN_TOKEN)]).await;
    let cookie = ok.headers[SET_COOKIE].to_str().unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let tls = browser()
        .post(format!("{}/admin/login", host.base))
        .header("x-forwarded-proto", "https")
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert!(
        tls.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
    // A sign-in form posted from another site is refused.
    let cross = post(
        &host,
        "/admin/login",
        None,
        Some("http://evil.example"),
        &[("token", ADMIN_TOKEN)],
    )
    .await;
    assert_eq!(cross.status, 403);

    // Signed in: the overview; signed out: back to sign-in, and the session is gone.
    let session = sign_in(&host).await;
    let overview = get(&host, "/admin", Some(&session)).await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(overview.body.contains("Runtime posture"));
    let token = csrf(&overview.body);
    let bad = post(
        &host,
        "/admin/logout",
        Some(&session),
        None,
        &[("csrf", "x")],
    )
    .await;
    assert_eq!(bad.status, 403, "sign-out needs the form token too");
    let out = post(
        &host,
        "/admin/logout",
        Some(&session),
        None,
        &[("csrf", &token)],
    )
    .await;
    assert_eq!(out.status, 303);
    assert!(
        out.headers[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(get(&host, "/admin", Some(&session)).await.status, 303);
    // Unknown pages are the UI's 404, never the API's JSON.
    let session = sign_in(&host).await;
    let missing = get(&host, "/admin/nope", Some(&session)).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("There is no such page"));
    host.stop().await;
}

/// Spec §24.8.8: the posture shown is what the API reports, word for word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_posture_shown_is_the_apis() {
    let host = TestHost::start().await;
    let api = host.admin_json(Method::GET, "/plugins", None, 200).await;
    let session = sign_in(&host).await;
    let page = get(&host, "/admin", Some(&session)).await;
    let section = |id: &str| -> Vec<String> {
        let start = page.body.find(&format!("<ul id=\"{id}\">")).unwrap();
        let end = start + page.body[start..].find("</ul>").unwrap();
        page.body[start..end]
            .split("<li>")
            .skip(1)
            .map(|li| li.split("</li>").next().unwrap().to_string())
            .collect()
    };
    let expect = |key: &str| -> Vec<String> {
        api["runtime"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| escaped(v.as_str().unwrap()))
            .collect()
    };
    assert_eq!(section("enforced"), expect("hostEnforcedControls"));
    assert_eq!(section("limitations"), expect("effectiveLimitations"));
    assert!(!section("limitations").is_empty());
    assert!(
        page.body
            .contains(&escaped(api["runtime"]["executionMode"].as_str().unwrap()))
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_are_escaped_and_forms_need_the_token_and_this_site() {
    let host = TestHost::start().await;
    let pkg = package_with_manifest("hostile", |m| {
        m["name"] = json!(HOSTILE);
        m["description"] = json!(HOSTILE);
    });
    host.admin_json(
        Method::POST,
        "/plugins/install",
        Some(json!({"sourceKind": "local", "sourceRef": pkg.path()})),
        201,
    )
    .await;
    let id = "test.hostile";
    let session = sign_in(&host).await;
    for path in [
        "/admin".to_string(),
        "/admin/plugins".to_string(),
        format!("/admin/plugins/{id}"),
        format!("/admin/plugins/{id}/events"),
        format!("/admin/plugins/{id}/uninstall"),
        format!("/admin/plugins/{id}/upgrade"),
    ] {
        let page = get(&host, &path, Some(&session)).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(
            page.body.contains(&escaped(HOSTILE)) || path == "/admin",
            "{path} shows the name escaped"
        );
        // The page's own script tag aside, nothing the plugin wrote is markup.
        let body = page
            .body
            .replace(&escaped(HOSTILE), "")
            .replace(&own_script(&page.body), "");
        for raw in ["<script", "<img", "onerror=alert"] {
            assert!(!body.contains(raw), "{path}: raw {raw}");
        }
    }

    // Enabling from the page: refused from another site and without the token; with both it
    // enables (with the consent box ticked).
    let page = get(&host, &format!("/admin/plugins/{id}"), Some(&session)).await;
    let token = csrf(&page.body);
    let action = format!("/admin/plugins/{id}/enable");
    let enabled = async || -> bool {
        host.admin_json(Method::GET, &format!("/plugins/{id}"), None, 200)
            .await["enabled"]
            .as_bool()
            .unwrap()
    };
    let cross = post(
        &host,
        &action,
        Some(&session),
        Some("http://evil.example"),
        &[("csrf", &token), ("consent", "yes")],
    )
    .await;
    assert_eq!(cross.status, 403);
    let no_token = post(&host, &action, Some(&session), None, &[("consent", "yes")]).await;
    assert_eq!(no_token.status, 403);
    let no_session = post(
        &host,
        &action,
        None,
        None,
        &[("csrf", &token), ("consent", "yes")],
    )
    .await;
    assert_eq!(no_session.status, 303, "no session: to sign-in");
    assert!(!enabled().await, "nothing was changed");
    // Without consent the API's refusal is shown as a page.
    let refused = post(&host, &action, Some(&session), None, &[("csrf", &token)]).await;
    assert!(refused.status >= 400, "{}", refused.body);
    assert!(refused.body.contains("consent"), "{}", refused.body);
    let ok = post(
        &host,
        &action,
        Some(&session),
        Some(&host.base),
        &[("csrf", &token), ("consent", "yes")],
    )
    .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert!(enabled().await);
    host.stop().await;
}

/// In a real browser (headless chromium over WebDriver), at a desktop and a phone width: sign
/// in, see the posture, open a plugin whose name and description try to run script, enable it
/// with consent. No script runs; every page is screenshotted (`target/ui-screenshots/`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_sign_in_look_and_enable() {
    use fantoccini::Locator;
    for width in [1280u32, 390] {
        let Some(browser) = nitejar_tests::browser::Browser::start(width).await else {
            return;
        };
        let host = TestHost::start().await;
        let pwn =
            "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>";
        let pkg = package_with_manifest("hostile", |m| {
            m["name"] = json!(format!("Hostile {pwn}"));
            m["description"] = json!(pwn);
        });
        host.admin_json(
            Method::POST,
            "/plugins/install",
            Some(json!({"sourceKind": "local", "sourceRef": pkg.path()})),
            201,
        )
        .await;
        let c = &browser.client;
        let shot = |name: &str| format!("{name}-{width}");

        // Without a session: the sign-in page.
        c.goto(&format!("{}/admin/plugins", host.base))
            .await
            .unwrap();
        assert!(
            c.current_url()
                .await
                .unwrap()
                .path()
                .ends_with("/admin/login")
        );
        browser.screenshot(&shot("login")).await;
        c.find(Locator::Id("token"))
            .await
            .unwrap()
            .send_keys(ADMIN_TOKEN)
            .await
            .unwrap();
        c.find(Locator::Css("form button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The overview, with the posture as the API reports it.
        wait_for(c, "#enforced", "the overview after sign-in").await;
        let api = host.admin_json(Method::GET, "/plugins", None, 200).await;
        let shown: Vec<String> = {
            let mut v = Vec::new();
            for li in c.find_all(Locator::Css("#enforced li")).await.unwrap() {
                v.push(li.text().await.unwrap());
            }
            v
        };
        let expected: Vec<String> = api["runtime"]["hostEnforcedControls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert_eq!(shown, expected);
        browser.screenshot(&shot("overview")).await;

        // The plugin list and the hostile plugin's page: its strings shown as text.
        c.find(Locator::LinkText("Plugins"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser.screenshot(&shot("plugins")).await;
        let link = c
            .find(Locator::Css("a[href='/admin/plugins/test.hostile']"))
            .await
            .unwrap();
        assert_eq!(link.text().await.unwrap(), format!("Hostile {pwn}"));
        link.click().await.unwrap();
        assert_eq!(
            c.find(Locator::Css("h1"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            format!("Hostile {pwn} test.hostile")
        );
        // The payload would set the title to `pwned`; the title is the page's own, with the
        // name as text.
        assert_eq!(
            c.title().await.unwrap(),
            format!("Hostile {pwn} · Nitejar"),
            "no script ran"
        );
        assert_eq!(
            c.find_all(Locator::Css("main img, main script"))
                .await
                .unwrap()
                .len(),
            0,
            "no element was injected"
        );
        browser.screenshot(&shot("plugin")).await;
        // Enable with consent.
        c.find(Locator::Css("input[name=consent]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.find(Locator::Css("form.consent button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The page comes back offering to disable it.
        wait_for(
            c,
            "form[action$='/disable']",
            "the page offering to disable",
        )
        .await;
        let v = host
            .admin_json(Method::GET, "/plugins/test.hostile", None, 200)
            .await;
        assert_eq!(v["enabled"], true, "enabled from the browser");
        browser.screenshot(&shot("plugin-enabled")).await;
        browser.close().await;
        host.stop().await;
    }
}

/// Waits (up to 10 s) for an element the page navigation leads to; fails with the page shown.
async fn wait_for(c: &fantoccini::Client, css: &str, what: &str) {
    if c.wait()
        .at_most(std::time::Duration::from_secs(10))
        .for_element(fantoccini::Locator::Css(css))
        .await
        .is_err()
    {
        panic!(
            "no {what} at {}: {}",
            c.current_url().await.unwrap(),
            c.source().await.unwrap()
        );
    }
}

/// The `value` of the hidden field `name` in a page's form.
fn hidden(body: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let at = body
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} field in {body}"))
        + needle.len();
    body[at..].split('"').next().unwrap().to_string()
}

/// Posts a multipart form (the wizard's upload) with the session's token and `file`.
async fn post_file(
    host: &TestHost,
    path: &str,
    cookie: &str,
    token: &str,
    file: (&str, Vec<u8>),
) -> Page {
    let form = reqwest::multipart::Form::new()
        .text("csrf", token.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(file.1).file_name(file.0.to_string()),
        );
    let resp = browser()
        .post(format!("{}{path}", host.base))
        .header("cookie", cookie)
        .multipart(form)
        .send()
        .await
        .unwrap();
    Page {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

/// The chain test plugin at `version` declaring `network` and the secret `apiKey`.
fn chain_at(version: &str, network: &[&str]) -> tempfile::TempDir {
    let (version, network) = (version.to_string(), json!(network));
    nitejar_tests::chain_package(move |m| {
        m["version"] = json!(version);
        m["permissions"]["network"] = network;
        m["permissions"]["secrets"] = json!(["apiKey"]);
    })
}

/// Every plugin task of the CLI from the pages, over HTTP: the wizard (local source; an
/// upload that upgrades), grant and revoke, a secret, a hook override, limits, enable with
/// consent, the upgrade's permission diff and approval, rollback, receipts filtered and paged,
/// uninstall with a typed confirmation and each purge choice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_plugin_task_from_the_pages() {
    let host = TestHost::start().await;
    let session = sign_in(&host).await;
    let s = Some(session.as_str());
    let id = "test.chain";
    let page = get(&host, "/admin/install", s).await;
    assert_eq!(page.status, 200);
    let token = csrf(&page.body);
    let api = |path: String| {
        let host = &host;
        async move { host.admin_json(Method::GET, &path, None, 200).await }
    };

    // The wizard with a local directory: preview, then install with the previewed checksum.
    let v1 = chain_at("1.0.0", &["http://a.example"]);
    let v1_path = v1.path().to_str().unwrap();
    let source = [
        ("csrf", token.as_str()),
        ("sourceKind", "local"),
        ("sourceRef", v1_path),
    ];
    let preview = post(&host, "/admin/install/preview", s, None, &source).await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    for shown in [
        "Chain test plugin",
        "network:http://a.example",
        "secret:apiKey",
        "chat",
    ] {
        assert!(preview.body.contains(&escaped(shown)), "{shown}");
    }
    let checksum = hidden(&preview.body, "checksum");
    assert_eq!(checksum.len(), 64);
    let mut install = source.to_vec();
    install.extend([("checksum", "0000"), ("pluginId", id)]);
    let stale = post(&host, "/admin/install", s, None, &install).await;
    assert_eq!(
        stale.status, 409,
        "a package that changed since its preview"
    );
    assert!(stale.body.contains("changed since its preview"));
    host.admin_json(Method::GET, &format!("/plugins/{id}"), None, 404)
        .await;
    install[3].1 = &checksum;
    let done = post(&host, "/admin/install", s, None, &install).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.headers[LOCATION], format!("/admin/plugins/{id}"));
    let page = get(&host, &format!("/admin/plugins/{id}"), s).await;
    assert!(
        page.body.contains("Installed test.chain 1.0.0"),
        "the notice"
    );
    let again = get(&host, &format!("/admin/plugins/{id}"), s).await;
    assert!(!again.body.contains("Installed test.chain"), "shown once");
    let overview = get(&host, "/admin", s).await;
    assert!(
        overview
            .body
            .contains("<code>test.chain</code>: 2 declared permission(s) not granted"),
        "needs attention: {}",
        overview.body
    );
    let token = csrf(&page.body);
    let at = |action: &str| format!("/admin/plugins/{id}/{action}");

    // Grant, revoke, grant; a secret (never shown back); a hook override; limits.
    let granted = |v: &Value, p: &str| {
        v["disclosures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["permission"] == p && d["acknowledged"] == true)
    };
    let net = "network:http://a.example";
    for (action, want) in [("grants", true), ("revoke", false), ("grants", true)] {
        let r = post(
            &host,
            &at(action),
            s,
            None,
            &[("csrf", &token), ("permission", net)],
        )
        .await;
        assert_eq!(r.status, 303, "{action}: {}", r.body);
        assert_eq!(granted(&api(format!("/plugins/{id}")).await, net), want);
    }
    let bad = post(
        &host,
        &at("grants"),
        s,
        None,
        &[
            ("csrf", &token),
            ("permission", "network:http://evil.example"),
        ],
    )
    .await;
    assert_eq!(bad.status, 400, "only declared permissions can be granted");
    let secret = "s3cret-value-never-shown";
    let r = post(
        &host,
        &at("secrets"),
        s,
        None,
        &[("csrf", &token), ("key", "apiKey"), ("value", secret)],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let v = api(format!("/plugins/{id}")).await;
    assert_eq!(v["secrets"], json!([{"key": "apiKey", "set": true}]));
    let page = get(&host, &format!("/admin/plugins/{id}"), s).await;
    assert!(!page.body.contains(secret) && !v.to_string().contains(secret));
    let r = post(
        &host,
        &at("secrets"),
        s,
        None,
        &[("csrf", &token), ("key", "undeclared"), ("value", "x")],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post(
        &host,
        &at("limits"),
        s,
        None,
        &[("csrf", &token), ("fuel", "not a number")],
    )
    .await;
    assert_eq!(r.status, 400);
    let r = post(
        &host,
        &at("limits"),
        s,
        None,
        &[("csrf", &token), ("fuel", "2000000")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        host.app.store.fuel_override(id).await.unwrap(),
        Some(2_000_000)
    );

    // Enable with consent (refused without), then a hook override shows in the hook table.
    let r = post(&host, &at("enable"), s, None, &[("csrf", &token)]).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post(
        &host,
        &at("enable"),
        s,
        None,
        &[("csrf", &token), ("consent", "yes")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let hook = "run.pre_prompt";
    let priority_of = async || -> Value {
        let t = api("/hooks".into()).await;
        t["hooks"][hook]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["pluginId"] == id)
            .map(|h| h["priority"].clone())
            .unwrap_or(Value::Null)
    };
    let r = post(
        &host,
        &at(&format!("hooks/{hook}")),
        s,
        None,
        &[
            ("csrf", &token),
            ("priority", "7"),
            ("failPolicy", ""),
            ("timeoutMs", ""),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(priority_of().await, 7);
    let r = post(
        &host,
        &at(&format!("hooks/{hook}")),
        s,
        None,
        &[("csrf", &token), ("priority", "1"), ("unregister", "yes")],
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(priority_of().await, Value::Null, "unregistered");
    let r = post(
        &host,
        &at(&format!("hooks/{hook}")),
        s,
        None,
        &[("csrf", &token), ("reset", "yes")],
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(priority_of().await, 0, "the manifest's again");

    // An upload of 1.1.0, which adds a permission: previewed as an upgrade, staged, then
    // waiting for consent with the diff side by side.
    let v2 = chain_at("1.1.0", &["http://a.example", "http://b.example"]);
    let tgz = nitejar_tests::sources::npm_tgz(v2.path());
    let preview = post_file(
        &host,
        "/admin/install/upload",
        &session,
        &token,
        ("chain-1.1.0.tgz", tgz.clone()),
    )
    .await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(preview.body.contains("Upgrade to 1.1.0"));
    let staged = hidden(&preview.body, "staged");
    let checksum = hidden(&preview.body, "checksum");
    let no_token = post_file(
        &host,
        "/admin/install/upload",
        &session,
        "x",
        ("a.tgz", tgz),
    )
    .await;
    assert_eq!(no_token.status, 403);
    let r = post(
        &host,
        "/admin/install",
        s,
        None,
        &[
            ("csrf", &token),
            ("staged", &staged),
            ("checksum", &checksum),
            ("pluginId", id),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = post(
        &host,
        "/admin/install",
        s,
        None,
        &[
            ("csrf", &token),
            ("staged", &staged),
            ("checksum", &checksum),
            ("pluginId", id),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "a staged upload is used once");
    let page = get(&host, &format!("/admin/plugins/{id}"), s).await;
    assert!(
        page.body.contains("waits for your consent"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"pending-upgrade\""));
    // Needs attention: the pending upgrade, and only what the active 1.0.0 declares and is
    // not granted (its secret), not the new version's network rule.
    let overview = get(&host, "/admin", s).await;
    assert!(
        overview.body.contains(
            "<code>test.chain</code>: the upgrade to 1.1.0 waits for consent; 1 declared permission(s) not granted"
        ),
        "{}",
        overview.body
    );
    let added = "network:http://b.example";
    assert!(page.body.contains(&format!(
        "<tr class=\"added\"><td><code>{}</code></td><td>-</td><td>declared",
        escaped(added)
    )));
    let pending = &page.body[page.body.find("id=\"pending-upgrade\"").unwrap()..];
    let pending = &pending[..pending.find("</section>").unwrap()];
    for p in [added, "secret:apiKey"] {
        assert!(
            pending.contains(&format!("name=\"permission\" value=\"{}\"", escaped(p))),
            "{p}: {pending}"
        );
    }
    let r = post(
        &host,
        &at("upgrade/approve"),
        s,
        None,
        &[("csrf", &token), ("permission", added)],
    )
    .await;
    assert_eq!(r.status, 422, "consent to exactly the added permissions");
    let r = post(
        &host,
        &at("upgrade/approve"),
        s,
        None,
        // Everything declared and not granted: the new network rule, and the secret that was
        // given a value but never granted.
        &[
            ("csrf", &token),
            ("permission", added),
            ("permission", "secret:apiKey"),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(api(format!("/plugins/{id}")).await["version"], "1.1.0");

    // Roll back to 1.0.0 from the versions table.
    let r = post(
        &host,
        &at("rollback"),
        s,
        None,
        &[("csrf", &token), ("version", "1.0.0")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(api(format!("/plugins/{id}")).await["version"], "1.0.0");
    // The versions' history, newest first: the rollback, the upgrade's activation, its wait
    // for consent, 1.1.0 staged, 1.0.0 installed.
    let page = get(&host, &format!("/admin/plugins/{id}"), s).await;
    let history = &page.body[page.body.find("id=\"history\"").expect("a history")..];
    let history = &history[..history.find("</ol>").unwrap()];
    let kinds: Vec<&str> = history
        .split("<strong>")
        .skip(1)
        .map(|k| k.split('<').next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["rollback", "upgrade", "upgrade", "install", "install"],
        "{history}"
    );

    // Receipts: hostile details shown as text; filtered by kind; paged 50 at a time.
    let rows: Vec<nitejar_store::EventRow> = (0..120)
        .map(|n| nitejar_store::EventRow {
            id: format!("0000{n:04}-hostile"),
            plugin_id: id.into(),
            plugin_version: Some("1.0.0".into()),
            kind: if n % 2 == 0 { "tool" } else { "integration" }.into(),
            status: "error".into(),
            work_item_id: None,
            job_id: None,
            hook_name: None,
            duration_ms: Some(1),
            execution_mode: "wasm_sandbox".into(),
            detail_json: Some(json!({ "error": HOSTILE }).to_string()),
            created_at: 0,
        })
        .collect();
    host.app.store.insert_events(&rows).await.unwrap();
    let events = get(
        &host,
        &format!("/admin/plugins/{id}/events?kind=tool&status=error"),
        s,
    )
    .await;
    assert_eq!(events.status, 200);
    let shown = events.body.matches("<tr class=\"status-error\">").count();
    assert_eq!(shown, 50, "one page");
    assert!(
        !events.body.contains("<td>integration</td>"),
        "filtered by kind"
    );
    assert!(!events.body.contains("<script>"), "details are escaped");
    let next = events
        .body
        .split("href=\"?")
        .find(|s| s.contains("cursor="))
        .and_then(|s| s.split('"').next())
        .expect("a link to older receipts")
        .replace("&amp;", "&");
    let older = get(&host, &format!("/admin/plugins/{id}/events?{next}"), s).await;
    assert_eq!(
        older.body.matches("<tr class=\"status-error\">").count(),
        10
    );
    assert!(!older.body.contains("rel=\"next\""), "the last page");

    // Uninstall: a wrong confirmation changes nothing; the right one with purge choices.
    let page = get(&host, &at("uninstall"), s).await;
    assert_eq!(page.status, 200);
    let r = post(
        &host,
        &at("uninstall"),
        s,
        None,
        &[("csrf", &token), ("confirm", "test"), ("purgeFiles", "yes")],
    )
    .await;
    assert_eq!(r.status, 400);
    api(format!("/plugins/{id}")).await;
    let files = host.app.config.plugins_dir.join(id);
    let r = post(
        &host,
        &at("uninstall"),
        s,
        None,
        &[("csrf", &token), ("confirm", id), ("purgeData", "yes")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.headers[LOCATION], "/admin/plugins");
    host.admin_json(Method::GET, &format!("/plugins/{id}"), None, 404)
        .await;
    assert!(files.exists(), "files kept without purgeFiles");
    assert!(
        host.app.store.list_secrets(id).await.unwrap().is_empty(),
        "data purged"
    );
    let list = get(&host, "/admin/plugins", s).await;
    assert!(
        list.body
            .contains("Uninstalled test.chain: its data was removed")
    );
    // Again from the local directory, then uninstall with both purges: the files go too.
    let preview = post(
        &host,
        "/admin/install/preview",
        s,
        None,
        &source_with(&token, v1_path),
    )
    .await;
    let checksum = hidden(&preview.body, "checksum");
    let mut install = source_with(&token, v1_path).to_vec();
    install.extend([("checksum", checksum.as_str()), ("pluginId", id)]);
    assert_eq!(
        post(&host, "/admin/install", s, None, &install)
            .await
            .status,
        303
    );
    let r = post(
        &host,
        &at("uninstall"),
        s,
        None,
        &[
            ("csrf", &token),
            ("confirm", id),
            ("purgeFiles", "yes"),
            ("purgeData", "yes"),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(!files.exists(), "files purged");
    host.stop().await;
}

fn source_with<'a>(token: &'a str, path: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("csrf", token),
        ("sourceKind", "local"),
        ("sourceRef", path),
    ]
}

/// In a real browser at a desktop and a phone width, the plugin lifecycle end to end: the
/// wizard with an upload, grants and consent, enable; an upgrade by upload whose added
/// permissions are shown beside the active ones and approved; a rollback; the receipts; an
/// uninstall with a purge choice; a crash-looping plugin's alert and its re-enable. Every page
/// is screenshotted (`target/ui-screenshots/`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_the_plugin_lifecycle() {
    let id = "test.chain";
    for width in [1280u32, 390] {
        let Some(b) = nitejar_tests::browser::Browser::start(width).await else {
            return;
        };
        let host = TestHost::start_with(nitejar_tests::HostOptions {
            crash_threshold: Some(3),
            integration_timeout_ms: Some(300),
            ..Default::default()
        })
        .await;
        let shot = |name: &str| format!("{name}-{width}");
        let files = tempfile::tempdir().unwrap();
        let tgz = |version: &str, network: &[&str]| {
            let dir = chain_at(version, network);
            let path = files.path().join(format!("chain-{version}.tgz"));
            std::fs::write(&path, nitejar_tests::sources::npm_tgz(dir.path())).unwrap();
            path.to_str().unwrap().to_string()
        };
        let version = async || {
            host.admin_json(Method::GET, &format!("/plugins/{id}"), None, 200)
                .await["version"]
                .clone()
        };
        b.sign_in(&host.base, ADMIN_TOKEN).await;

        // The wizard: upload, review, install.
        b.click("nav a[href='/admin/install']").await;
        b.wait_for("#upload-form", "the install wizard").await;
        b.screenshot(&shot("install")).await;
        b.fill("#file", &tgz("1.0.0", &["http://a.example"])).await;
        b.click("#upload-form button").await;
        b.wait_for("#confirm-install", "the preview").await;
        let checksum = b.text("#checksum").await;
        assert_eq!(checksum.len(), 64);
        b.screenshot(&shot("preview")).await;
        b.click("#confirm-install button").await;
        // The plugin page: grant both permissions, consent, enable.
        b.wait_for("#grant-form", "the installed plugin's page")
            .await;
        assert!(
            b.text(".notice")
                .await
                .contains("Installed test.chain 1.0.0")
        );
        for el in b
            .client
            .find_all(fantoccini::Locator::Css("input[form=grant-form]"))
            .await
            .unwrap()
        {
            el.click().await.unwrap();
        }
        b.click("button[form=grant-form]").await;
        b.wait_text(".notice", "Granted 2 permission(s)").await;
        b.click("form.consent input[name=consent]").await;
        b.click("form.consent button").await;
        b.wait_for("form[action$='/disable']", "the enabled plugin")
            .await;
        assert_eq!(
            checksum,
            host.admin_json(Method::GET, &format!("/plugins/{id}"), None, 200)
                .await["checksum"]
        );
        b.screenshot(&shot("plugin-installed")).await;

        // Upgrade by upload: 1.1.0 adds a network rule; the diff waits for consent.
        b.click("a[href$='/upgrade']").await;
        b.fill(
            "#file",
            &tgz("1.1.0", &["http://a.example", "http://b.example"]),
        )
        .await;
        b.click("#upload-form button").await;
        b.wait_for("#confirm-install", "the upgrade's preview")
            .await;
        b.screenshot(&shot("preview-upgrade")).await;
        b.click("#confirm-install button").await;
        b.wait_for("#pending-upgrade", "the pending upgrade").await;
        let added = b.text("#pending-upgrade tr.added").await;
        assert!(added.contains("network:http://b.example"), "{added}");
        b.screenshot(&shot("plugin-pending-upgrade")).await;
        for el in b
            .client
            .find_all(fantoccini::Locator::Css(
                "#pending-upgrade input[name=permission]",
            ))
            .await
            .unwrap()
        {
            el.click().await.unwrap();
        }
        b.click("#pending-upgrade form.stack button").await;
        b.wait_text(".notice", "Upgraded test.chain from 1.0.0 to 1.1.0")
            .await;
        assert_eq!(version().await, "1.1.0");

        // Roll back from the versions table.
        b.click("form[action$='/rollback'] button").await;
        b.wait_text(".notice", "Rolled test.chain back to 1.0.0")
            .await;
        assert_eq!(version().await, "1.0.0");
        b.screenshot(&shot("plugin-versions")).await;

        // The receipts, filtered.
        b.click("a[href$='/events']").await;
        b.wait_for("form.filters", "the receipts").await;
        b.click("#kind option[value=upgrade]").await;
        b.click("form.filters button").await;
        // The `selected` attribute comes with the page the filter loads.
        b.wait_for(
            "#kind option[value=upgrade][selected]",
            "the filtered receipts",
        )
        .await;
        assert!(
            b.client
                .current_url()
                .await
                .unwrap()
                .query()
                .unwrap()
                .contains("kind=upgrade")
        );
        b.screenshot(&shot("events")).await;

        // Uninstall, purging the files.
        b.client
            .goto(&format!("{}/admin/plugins/{id}/uninstall", host.base))
            .await
            .unwrap();
        b.click("input[name=purgeFiles]").await;
        b.fill("#confirm", id).await;
        b.screenshot(&shot("uninstall")).await;
        b.click("form button.danger").await;
        b.wait_text(".notice", "Uninstalled test.chain").await;
        host.admin_json(Method::GET, &format!("/plugins/{id}"), None, 404)
            .await;
        assert!(!host.app.config.plugins_dir.join(id).exists());

        // A crash-looping plugin: the alert shows; re-enable clears it.
        host.install_and_enable(&nitejar_tests::guest_package("hostile"), &[])
            .await;
        let instance = host.create_instance("hostile", json!({})).await;
        for (n, attack) in ["trap", "loop", "trap"].into_iter().enumerate() {
            let body = json!({"attack": attack, "target": "", "id": format!("a{n}")});
            host.webhook("hostile", &instance, &[], body.to_string().into_bytes())
                .await;
        }
        for _ in 0..100 {
            let p = host
                .admin_json(Method::GET, "/plugins/test.hostile", None, 200)
                .await;
            if p["alert"].is_object() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        b.client
            .goto(&format!("{}/admin", host.base))
            .await
            .unwrap();
        b.click("a[href='/admin/plugins/test.hostile']").await;
        assert!(b.text(".banner.alert").await.contains("crash_loop"));
        b.screenshot(&shot("plugin-crash-loop")).await;
        b.click("#re-enable").await;
        b.wait_text(".notice", "Enabled test.hostile").await;
        let p = host
            .admin_json(Method::GET, "/plugins/test.hostile", None, 200)
            .await;
        assert_eq!(
            (p["enabled"].clone(), p["alert"].clone()),
            (json!(true), Value::Null)
        );
        assert!(
            b.client
                .find(fantoccini::Locator::Css(".banner.alert"))
                .await
                .is_err()
        );
        b.close().await;
        host.stop().await;
    }
}

const TG_TOKEN: &str = "123456789:AAEhBOweik9ai3Fs2yZ-uiTestBotToken";
const TG_SECRET: &str = "ui-webhook-secret-token-7";

/// A host whose Telegram API calls reach a local stand-in.
async fn telegram_host() -> (TestHost, nitejar_tests::platforms::PlatformApi) {
    let api = nitejar_tests::platforms::PlatformApi::telegram(TG_TOKEN).await;
    let host = TestHost::start_with(nitejar_tests::HostOptions {
        overrides: [("api.telegram.org".to_string(), api.target())].into(),
        ..Default::default()
    })
    .await;
    (host, api)
}

/// Instances from the form generated from the Telegram type's schema, over HTTP: a refused
/// form comes back with what was typed (never a secret); secrets are masked and leaving the
/// mask keeps them; test connection, disable/enable, agent assignment, delete with a typed
/// confirmation; a signed delivery's run in the runs list (filtered) and as a timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_from_generated_forms_and_their_runs() {
    let (host, api) = telegram_host().await;
    let session = sign_in(&host).await;
    let s = Some(session.as_str());
    let list = get(&host, "/admin/instances", s).await;
    assert!(list.body.contains("/admin/instances/new?type=telegram"));
    let form = get(&host, "/admin/instances/new?type=telegram", s).await;
    assert_eq!(form.status, 200);
    let token = csrf(&form.body);
    // The schema's ui:order, widgets and defaults.
    let order: Vec<usize> = [
        "cfg.botToken",
        "cfg.webhookSecret",
        "cfg.allowedChatIds",
        "cfg.useMessageThreads",
        "cfg.apiBaseUrl",
    ]
    .iter()
    .map(|n| {
        form.body
            .find(&format!("name=\"{n}\""))
            .unwrap_or_else(|| panic!("{n}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert!(
        form.body
            .contains("id=\"cfg-botToken\" name=\"cfg.botToken\" type=\"password\"")
    );
    assert!(
        form.body
            .contains("name=\"cfg.useMessageThreads\" value=\"yes\" checked")
    );
    assert!(form.body.contains("<details><summary>Advanced</summary>"));
    let unknown = get(&host, "/admin/instances/new?type=nope", s).await;
    assert_eq!(unknown.status, 400);

    // Refused: the token is too short; the name and the chat ids come back, the secret not.
    let refused = post(
        &host,
        "/admin/instances",
        s,
        None,
        &[
            ("csrf", &token),
            ("type", "telegram"),
            ("name", "Support bot"),
            ("cfg.botToken", "short"),
            ("cfg.webhookSecret", TG_SECRET),
            ("cfg.allowedChatIds", "-1001, 42"),
            ("enable", "yes"),
        ],
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("value=\"Support bot\""));
    assert!(refused.body.contains("-1001, 42"));
    assert!(
        !refused.body.contains(TG_SECRET),
        "a typed secret is not echoed"
    );
    let bad_type = post(
        &host,
        "/admin/instances",
        s,
        None,
        &[
            ("csrf", &token),
            ("type", "telegram"),
            ("name", "x"),
            ("cfg.botToken", TG_TOKEN),
            ("cfg.allowedChatIds", "1.5"),
        ],
    )
    .await;
    assert_eq!(bad_type.status, 422, "{}", bad_type.body);
    assert!(
        bad_type.body.contains("is not a chat id"),
        "{}",
        bad_type.body
    );

    let created = post(
        &host,
        "/admin/instances",
        s,
        None,
        &[
            ("csrf", &token),
            ("type", "telegram"),
            ("name", "Support bot"),
            ("cfg.botToken", TG_TOKEN),
            ("cfg.webhookSecret", TG_SECRET),
            ("cfg.allowedChatIds", ""),
            ("cfg.useMessageThreads", "yes"),
            ("enable", "yes"),
        ],
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let path = created.headers[LOCATION].to_str().unwrap().to_string();
    let id = path.rsplit('/').next().unwrap().to_string();
    let v = host
        .admin_json(Method::GET, &format!("/instances/{id}"), None, 200)
        .await;
    assert_eq!(v["enabled"], true, "{v}");
    assert_eq!(api.calls_to("/getMe").len(), 1, "the connection test ran");

    // The page: masked secrets, the webhook URL; saving with the masks keeps the secrets.
    let page = get(&host, &path, s).await;
    assert!(page.body.contains("Created Support bot and enabled it"));
    assert!(!page.body.contains(TG_TOKEN) && !page.body.contains(TG_SECRET));
    assert!(page.body.contains("value=\"********\""));
    assert!(
        page.body.contains(&format!(
            "value=\"{}&#x2f;api&#x2f;webhooks&#x2f;plugins&#x2f;telegram&#x2f;{id}\"",
            host.base.replace('/', "&#x2f;")
        )),
        "the absolute webhook URL"
    );
    let saved = post(
        &host,
        &path,
        s,
        None,
        &[
            ("csrf", &token),
            ("name", "Support bot (EU)"),
            ("cfg.botToken", "********"),
            ("cfg.webhookSecret", "********"),
            ("cfg.allowedChatIds", ""),
            ("cfg.useMessageThreads", "yes"),
        ],
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let stored = host.app.store.get_instance(&id).await.unwrap().unwrap();
    assert!(!stored.config_json.contains(TG_TOKEN), "encrypted at rest");
    // A signed delivery is accepted: the stored secret is the one typed at creation.
    let (status, v) = host
        .webhook(
            "telegram",
            &id,
            &[("x-telegram-bot-api-secret-token", TG_SECRET)],
            nitejar_tests::webhook_fixture("telegram", "group-text.json"),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let work_item = v["workItemId"].as_str().unwrap().to_string();
    host.wait_for_run(&work_item).await;

    // Runs: listed under their filter, and the run as a timeline with its delivery.
    let runs = get(&host, &format!("/admin/runs?instance={id}&status=done"), s).await;
    assert!(
        runs.body.contains(&format!("/admin/runs/{work_item}")),
        "{}",
        runs.body
    );
    let none = get(
        &host,
        &format!("/admin/runs?instance={id}&status=failed"),
        s,
    )
    .await;
    assert!(!none.body.contains(&format!("/admin/runs/{work_item}")));
    let run = get(&host, &format!("/admin/runs/{work_item}"), s).await;
    assert_eq!(run.status, 200);
    assert!(run.body.contains("id=\"timeline\""));
    for what in [
        "<strong>integration</strong>",
        "<strong>model_call</strong>",
        ">delivered<",
    ] {
        assert!(run.body.contains(what), "{what}: {}", run.body);
    }
    let bad_cursor = host
        .admin(Method::GET, "/work-items?cursor=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_cursor.status(), 400);

    // Test connection, disable, enable, the agent, delete.
    let act = |action: &'static str, extra: Vec<(&'static str, String)>| {
        let (host, path, session, token) = (&host, &path, &session, &token);
        async move {
            let mut form = vec![("csrf", token.clone())];
            form.extend(extra);
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(
                host,
                &format!("{path}/{action}"),
                Some(session),
                None,
                &form,
            )
            .await
        }
    };
    assert_eq!(act("test", vec![]).await.status, 303);
    assert!(
        get(&host, &path, s)
            .await
            .body
            .contains("Connection test passed")
    );
    assert_eq!(act("disable", vec![]).await.status, 303);
    let (status, _) = host
        .webhook(
            "telegram",
            &id,
            &[("x-telegram-bot-api-secret-token", TG_SECRET)],
            nitejar_tests::webhook_fixture("telegram", "private-command.json"),
        )
        .await;
    assert!(status >= 400, "a disabled instance refuses webhooks");
    assert_eq!(act("enable", vec![]).await.status, 303);
    let agents = host.admin_json(Method::GET, "/agents", None, 200).await;
    let agent = agents["agents"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        act("agent", vec![("agentId", agent.clone())]).await.status,
        303
    );
    assert_eq!(
        host.app
            .store
            .agent_for_instance(&id)
            .await
            .unwrap()
            .unwrap()
            .id,
        agent
    );
    assert_eq!(
        act("agent", vec![("agentId", "nope".into())]).await.status,
        400
    );
    assert_eq!(
        act("delete", vec![("confirm", "Support bot".into())])
            .await
            .status,
        400
    );
    let deleted = act("delete", vec![("confirm", "Support bot (EU)".into())]).await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    host.admin_json(Method::GET, &format!("/instances/{id}"), None, 404)
        .await;
    host.stop().await;
}

/// The host-wide pages over HTTP: hooks in dispatch order, the doctor, admin skills (create,
/// assign, edit, disable, delete), agents (create, edit, refusals), and the overview's hour
/// (a delivery counted, a failure listed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_skills_agents_doctor_and_the_hour() {
    let host = TestHost::start().await;
    let pkg = chain_at("1.0.0", &["http://chat.test"]);
    host.install_and_enable(pkg.path(), &["network:http://chat.test"])
        .await;
    let session = sign_in(&host).await;
    let s = Some(session.as_str());
    let page = get(&host, "/admin/hooks", s).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<code>tool.pre_exec</code>"));
    assert!(page.body.contains("href=\"/admin/plugins/test.chain\""));
    let token = csrf(&page.body);
    let doctor = get(&host, "/admin/doctor", s).await;
    assert_eq!(doctor.status, 200);
    let api = host.admin_json(Method::GET, "/doctor", None, 200).await;
    for p in api["plugins"].as_array().unwrap() {
        assert!(
            doctor
                .body
                .contains(&escaped(p["pluginId"].as_str().unwrap()))
        );
    }

    // Skills: an admin skill in Markdown, offered to every agent, edited, disabled, deleted.
    let created = post(
        &host,
        "/admin/skills",
        s,
        None,
        &[
            ("csrf", &token),
            ("name", "triage"),
            ("description", "How to triage"),
            ("tags", "support, <b>"),
            ("content", "# Triage\n\nAsk for the <order id>."),
        ],
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let list = host.admin_json(Method::GET, "/skills", None, 200).await;
    let skill = list["skills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "triage")
        .unwrap()
        .clone();
    let sid = skill["skillId"].as_str().unwrap().to_string();
    let at = format!("/admin/skills/{}", sid.replace(':', "%3A"));
    let page = get(&host, &at, s).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Ask for the &lt;order id&gt;."));
    let r = post(
        &host,
        &format!("{at}/assignments"),
        s,
        None,
        &[("csrf", &token), ("scope", "global"), ("ref", "")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = post(
        &host,
        &format!("{at}/assignments"),
        s,
        None,
        &[("csrf", &token), ("scope", "nowhere"), ("ref", "")],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post(
        &host,
        &at,
        s,
        None,
        &[
            ("csrf", &token),
            ("description", "d2"),
            ("tags", ""),
            ("content", "Be brief."),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = post(&host, &at, s, None, &[("csrf", &token), ("enabled", "no")]).await;
    assert_eq!(r.status, 303);
    let v = host
        .admin_json(Method::GET, &format!("/skills/{sid}"), None, 200)
        .await;
    assert_eq!(
        (
            v["content"].clone(),
            v["enabled"].clone(),
            v["assignments"].clone()
        ),
        (
            json!("Be brief."),
            json!(false),
            json!([{"scope": "global", "ref": ""}])
        )
    );
    let r = post(&host, &format!("{at}/delete"), s, None, &[("csrf", &token)]).await;
    assert_eq!(r.status, 303);
    host.admin_json(Method::GET, &format!("/skills/{sid}"), None, 404)
        .await;

    // Agents: created, edited; a bad number and a bad provider are refused with a page.
    let fields = |name: &'static str, turns: &'static str, provider: &'static str| {
        vec![
            ("name", name),
            ("systemPrompt", "You help."),
            ("provider", provider),
            ("model", "offline"),
            ("temperature", "0.5"),
            ("maxTokens", "256"),
            ("maxTurns", turns),
            ("team", ""),
        ]
    };
    let mut form = vec![("csrf", token.as_str())];
    form.extend(fields("helper", "3", "offline"));
    assert_eq!(
        post(&host, "/admin/agents", s, None, &form).await.status,
        303
    );
    let mut form = vec![("csrf", token.as_str())];
    form.extend(fields("helper2", "three", "offline"));
    assert_eq!(
        post(&host, "/admin/agents", s, None, &form).await.status,
        400
    );
    let mut form = vec![("csrf", token.as_str())];
    form.extend(fields("helper2", "3", "skynet"));
    assert_eq!(
        post(&host, "/admin/agents", s, None, &form).await.status,
        400
    );
    let agents = host.admin_json(Method::GET, "/agents", None, 200).await;
    let helper = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "helper")
        .unwrap()
        .clone();
    assert_eq!(helper["model"]["maxTurns"], 3);
    let mut form = vec![("csrf", token.as_str())];
    form.extend(fields("helper", "5", "offline"));
    let r = post(
        &host,
        &format!("/admin/agents/{}", helper["id"].as_str().unwrap()),
        s,
        None,
        &form,
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let v = host
        .admin_json(
            Method::GET,
            &format!("/agents/{}", helper["id"].as_str().unwrap()),
            None,
            200,
        )
        .await;
    assert_eq!(v["model"]["maxTurns"], 5);
    assert!(
        get(&host, "/admin/agents", s)
            .await
            .body
            .contains("Saved the agent helper.")
    );

    // The hour: one delivery and its run counted. Every handler traps, so the crash guard
    // disables the plugin mid-run and its reply cannot be delivered: the run failed, and the
    // traps are the recent failures.
    let instance = host
        .create_instance("chat", json!({ "token": "chat-token-123" }))
        .await;
    let body = json!({"id": "m1", "text": "!trap please", "chat": "r"}).to_string();
    let (status, v) = host
        .webhook(
            "chat",
            &instance,
            &[("x-chat-token", "chat-token-123")],
            body.into_bytes(),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    host.wait_for_run(v["workItemId"].as_str().unwrap()).await;
    let overview = get(&host, "/admin", s).await;
    assert!(
        overview
            .body
            .contains("1 webhooks became work items; 0 runs done, 1 failed."),
        "{}",
        overview.body
    );
    let failures = &overview.body[overview.body.find("id=\"failures\"").unwrap()..];
    assert!(failures.contains("<td>hook <code>"), "{failures}");
    assert!(failures.contains("href=\"/admin/plugins/test.chain\""));
    host.stop().await;
}

/// In a real browser at a desktop and a phone width: a Telegram instance created from the
/// form generated from its schema, its webhook URL copied (the UI's script runs under the
/// CSP), a signed delivery to that URL, and its run opened as a timeline; then the hooks,
/// skills, agents and doctor pages. Every page is screenshotted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_an_instance_and_its_run() {
    for width in [1280u32, 390] {
        let Some(b) = nitejar_tests::browser::Browser::start(width).await else {
            return;
        };
        let (host, _api) = telegram_host().await;
        let shot = |name: &str| format!("{name}-{width}");
        b.sign_in(&host.base, ADMIN_TOKEN).await;
        b.screenshot(&shot("overview-empty")).await;
        b.click("nav a[href='/admin/instances']").await;
        b.click("a[href='/admin/instances/new?type=telegram']")
            .await;
        b.wait_for("#instance-form", "the generated form").await;
        b.screenshot(&shot("instance-new")).await;
        b.fill("#name", "Support bot").await;
        b.fill("#cfg-botToken", TG_TOKEN).await;
        b.fill("#cfg-webhookSecret", TG_SECRET).await;
        b.click("#instance-form button[type=submit]").await;
        b.wait_text(".notice", "Created Support bot and enabled it")
            .await;
        // The copy button: the script ran (the CSP allows the UI's own file).
        b.click("button[data-copy]").await;
        let mut label = String::new();
        for _ in 0..100 {
            label = b.text("button[data-copy]").await;
            if label != "Copy" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            label == "Copied" || label == "Press Ctrl+C",
            "the copy button reacted: {label:?}"
        );
        let url = b
            .wait_for("#webhook-url", "the webhook URL")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap();
        assert!(url.starts_with(&host.base), "{url}");
        assert!(
            !b.client.source().await.unwrap().contains(TG_TOKEN),
            "the token is never in the page"
        );
        b.screenshot(&shot("instance")).await;

        // A signed delivery to the URL the page shows, then its run.
        let resp = reqwest::Client::new()
            .post(&url)
            .header("x-telegram-bot-api-secret-token", TG_SECRET)
            .header("content-type", "application/json")
            .body(nitejar_tests::webhook_fixture(
                "telegram",
                "group-text.json",
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let v: Value = resp.json().await.unwrap();
        let work_item = v["workItemId"].as_str().unwrap().to_string();
        host.wait_for_run(&work_item).await;
        b.click("nav a[href='/admin/runs']").await;
        b.wait_for("table.work-items a", "the runs list").await;
        b.screenshot(&shot("runs")).await;
        b.click(&format!("a[href='/admin/runs/{work_item}']")).await;
        b.wait_text("#delivery", "delivered").await;
        let steps = b
            .client
            .find_all(fantoccini::Locator::Css("#timeline li"))
            .await
            .unwrap()
            .len();
        assert!(steps >= 4, "{steps} timeline entries");
        b.screenshot(&shot("run")).await;

        b.click("nav a[href='/admin/instances']").await;
        b.wait_for("ul.types", "the instances list").await;
        b.screenshot(&shot("instances")).await;

        // The host-wide pages (with an admin skill to open).
        let skill = host
            .admin_json(
                Method::POST,
                "/skills",
                Some(json!({"name": "triage", "description": "How to triage", "content": "# Triage\n\nAsk for the order id.", "tags": ["support"]})),
                201,
            )
            .await;
        for (nav, ready, name) in [
            ("hooks", "main h1", "hooks"),
            ("skills", "#new-skill", "skills"),
            ("agents", "#new-agent", "agents"),
            ("doctor", "main h1", "doctor"),
            ("import", "#import-form", "import"),
            ("", "#totals", "overview-busy"),
        ] {
            b.click(&format!(
                "nav a[href='/admin{}{nav}']",
                if nav.is_empty() { "" } else { "/" }
            ))
            .await;
            b.wait_for(ready, name).await;
            b.screenshot(&shot(name)).await;
        }
        b.client
            .goto(&format!(
                "{}/admin/skills/{}",
                host.base,
                skill["skillId"].as_str().unwrap().replace(':', "%3A")
            ))
            .await
            .unwrap();
        b.wait_for("#assign-form", "the skill page").await;
        b.screenshot(&shot("skill")).await;
        b.close().await;
        host.stop().await;
    }
}

/// The import of a Nitejar database from its page: a dry run reports without writing, the
/// import writes, a bad source is shown on the form; the source's strings are escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_nitejar_from_its_page() {
    use sqlx::ConnectOptions;
    let host = TestHost::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nitejar.sqlite");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    let schema = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/nitejar/schema.sql"),
    )
    .unwrap();
    sqlx::raw_sql(&schema).execute(&mut conn).await.unwrap();
    // A third-party plugin with a hostile name, and an instance of its type (not here).
    sqlx::query(
        "INSERT INTO plugins (id, name, enabled, trust_level, source_kind, source_ref,
           current_version, manifest_json, installed_at, updated_at)
         VALUES ('acme.slack', ?, 1, 'untrusted', 'npm', '@acme/slack', '1.0.0', '{}', 1, 1)",
    )
    .bind(HOSTILE)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO plugin_instances (id, plugin_id, name, config_json, enabled, created_at, updated_at)
         VALUES ('inst-1', 'acme.slack', 'Slack', '{}', 1, 1, 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let session = sign_in(&host).await;
    let s = Some(session.as_str());
    let page = get(&host, "/admin/import", s).await;
    assert_eq!(page.status, 200);
    let token = csrf(&page.body);
    let from = db.to_str().unwrap();
    let dry = post(
        &host,
        "/admin/import",
        s,
        None,
        &[("csrf", &token), ("from", from), ("dryRun", "yes")],
    )
    .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert!(dry.body.contains("Dry run of "));
    assert!(dry.body.contains(&escaped(HOSTILE)), "the name, escaped");
    assert!(!dry.body.contains("<script>alert(1)"));
    assert!(dry.body.contains("<code>inst-1</code>"), "{}", dry.body);
    let bad = post(
        &host,
        "/admin/import",
        s,
        None,
        &[("csrf", &token), ("from", "/nonexistent/nitejar.sqlite")],
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("id=\"import-form\"") && bad.body.contains("role=\"alert\""));
    let done = post(
        &host,
        "/admin/import",
        s,
        None,
        &[("csrf", &token), ("from", from)],
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Imported "));
    host.stop().await;
}

/// What a hostile plugin makes the host record (a refused read of a secret named with markup:
/// the permission_denied receipt, the work item it returns, the run) is shown as text on every
/// page that shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_plugins_receipts_and_work_items_are_text() {
    let host = TestHost::start().await;
    host.install_and_enable(&nitejar_tests::guest_package("hostile"), &[])
        .await;
    let instance = host.create_instance("hostile", json!({})).await;
    let target = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
    let body = json!({"attack": "secret", "target": target, "id": "h1"}).to_string();
    let (status, v) = host
        .webhook("hostile", &instance, &[], body.into_bytes())
        .await;
    assert_eq!(status, 202, "{v}");
    let work_item = v["workItemId"].as_str().unwrap().to_string();
    host.wait_for_run(&work_item).await;
    let receipts = host.receipts("test.hostile").await;
    assert!(
        receipts
            .iter()
            .any(|r| r["detailJson"].as_str().unwrap_or("").contains("<script>")),
        "a receipt carries the markup: {receipts:?}"
    );
    let session = sign_in(&host).await;
    for path in [
        "/admin".to_string(),
        "/admin/plugins/test.hostile".into(),
        "/admin/plugins/test.hostile/events".into(),
        "/admin/runs".into(),
        format!("/admin/runs/{work_item}"),
    ] {
        let page = get(&host, &path, Some(&session)).await;
        assert_eq!(page.status, 200, "{path}");
        let body = page.body.replace(&own_script(&page.body), "");
        for raw in ["<script", "<img", "onerror=alert(2)>"] {
            assert!(!body.contains(raw), "{path}: raw {raw}");
        }
        if path.contains("events") || path.contains("runs/") {
            assert!(
                body.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
                "{path} shows the markup as text"
            );
        }
    }
    host.stop().await;
}
