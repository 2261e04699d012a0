//! The admin web UI over HTTP (issue 16's first slice; the browser tests come with the pages
//! they drive): sign-in and the session cookie, redirects without a session, the security
//! headers, CSRF and cross-site refusals, hostile plugin strings escaped, and the posture shown
//! word for word as the API reports it.

use nitejar_tests::{ADMIN_TOKEN, TestHost, package_with_manifest};
use reqwest::Method;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

/// A hostile string: markup, an attribute break-out and a script URL.
const HOSTILE: &str = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>'javascript:x";

/// A client that does not follow redirects (the tests look at them).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
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
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(!login.body.contains("<script"), "no script at all");
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
    for path in ["/admin/plugins".to_string(), format!("/admin/plugins/{id}")] {
        let page = get(&host, &path, Some(&session)).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(
            page.body.contains(&escaped(HOSTILE)),
            "{path} shows the name escaped"
        );
        for raw in ["<script", "<img", "onerror=alert"] {
            assert!(
                !page.body.replace(&escaped(HOSTILE), "").contains(raw),
                "{path}: raw {raw}"
            );
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
