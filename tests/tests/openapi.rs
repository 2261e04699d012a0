//! The OpenAPI document is served, valid in shape, and every operation it lists is routed by
//! the server (a request to it never gets the router's own bare 404/405).

use nitejar_tests::{ADMIN_TOKEN, TestHost};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let host = TestHost::start().await;
    let doc: Value = reqwest::get(format!("{}/api/openapi.json", host.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, methods) in paths {
        for (method, op) in methods.as_object().unwrap() {
            operations += 1;
            assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()));
            let url = format!(
                "{}{}",
                host.base,
                path.split('/')
                    .map(|s| if s.starts_with('{') { "x" } else { s })
                    .collect::<Vec<_>>()
                    .join("/")
            );
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut req = host.client.request(m, &url).bearer_auth(ADMIN_TOKEN);
            if method != "get" && method != "delete" {
                req = req.header("content-type", "application/json").body("{}");
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap();
            let unrouted = (status == 404 || status == 405) && body.is_empty();
            assert!(!unrouted, "{method} {path} is not routed ({status})");
            assert!(status < 500, "{method} {path} -> {status}: {body}");
        }
    }
    assert!(operations >= 50, "{operations}");
    host.stop().await;
}
