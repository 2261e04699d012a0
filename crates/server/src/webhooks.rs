//! The public webhook route. Bodies over the limit are refused with 413 before any plugin runs.
//! Every answer's time is recorded ([`timed`]) for `GET /api/admin/metrics`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use nitejar_core::app::App;
use nitejar_core::ingress::{InboundRequest, handle_webhook};
use std::sync::Arc;

/// `POST /api/webhooks/plugins/{type}/{instanceId}`.
pub async fn receive(
    State(app): State<Arc<App>>,
    Path((integration_type, instance_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = InboundRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (k.as_str().to_ascii_lowercase(), v.to_string()))
            })
            .collect(),
        body: body.to_vec(),
    };
    let reply = handle_webhook(&app.ingress, &integration_type, &instance_id, req).await;
    // The headers were filtered in core (`response_headers`); anything that still does not parse
    // is dropped here, and the body always goes out with the host's own framing.
    let mut resp = Response::new(Body::from(reply.body));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (k, v) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

/// Times a webhook route's answer, from the route being called (the request's headers read)
/// until its answer is ready, whatever it is (a 413 from the body limit included), into the
/// ingress's histogram.
pub async fn timed(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    app.ingress
        .latency
        .record(started.elapsed(), response.status().as_u16());
    response
}
