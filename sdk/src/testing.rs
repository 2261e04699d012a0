//! Test a plugin natively, without a server.
//!
//! On non-wasm targets the SDK's host functions ([`crate::secrets`], [`crate::kv`],
//! [`crate::log`], [`crate::http`]) use a thread-local [`MockHost`]. Configure it with
//! [`with_host`] (or [`MockHost::install`]), call your trait methods directly, then inspect the
//! host:
//!
//! ```
//! use nitejar_plugin_sdk::testing::MockHost;
//! MockHost::default().secret_granted("api.token", "s3cret").install();
//! assert_eq!(nitejar_plugin_sdk::secrets::get("api.token").unwrap(), "s3cret");
//! assert!(nitejar_plugin_sdk::secrets::get("other").is_err());
//! ```

use crate::http::{HttpError, Request, Response};
use crate::{Denial, HostError};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// A responder for outbound HTTP in tests.
pub type HttpResponder = Box<dyn FnMut(&Request) -> Result<Response, HttpError>>;

/// In-memory stand-in for the Nitejar host.
#[derive(Default)]
pub struct MockHost {
    /// Granted secrets.
    pub secrets: BTreeMap<String, String>,
    /// Key-value storage.
    pub kv: BTreeMap<String, Vec<u8>>,
    /// Log lines written, as (level, message).
    pub logs: Vec<(String, String)>,
    /// Requests sent through [`crate::http`].
    pub requests: Vec<Request>,
    /// Answers outbound requests; without one every request is denied.
    pub responder: Option<HttpResponder>,
}

thread_local! {
    static HOST: RefCell<MockHost> = RefCell::new(MockHost::default());
}

/// Runs `f` with this thread's mock host.
pub fn with_host<R>(f: impl FnOnce(&mut MockHost) -> R) -> R {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

impl MockHost {
    /// Adds a granted secret.
    pub fn secret_granted(mut self, key: &str, value: &str) -> Self {
        self.secrets.insert(key.to_string(), value.to_string());
        self
    }
    /// Sets the HTTP responder.
    pub fn responder(
        mut self,
        f: impl FnMut(&Request) -> Result<Response, HttpError> + 'static,
    ) -> Self {
        self.responder = Some(Box::new(f));
        self
    }
    /// Makes this the current thread's host, replacing the previous one.
    pub fn install(self) {
        HOST.with(|h| *h.borrow_mut() = self);
    }
    /// Looks up a secret the way the real host does: ungranted keys are denied.
    pub fn secret(&self, key: &str) -> Result<String, HostError> {
        self.secrets.get(key).cloned().ok_or_else(|| {
            HostError::Denied(Denial {
                capability: "secrets".into(),
                target: key.into(),
                required_grant: format!("permissions.secrets: [\"{key}\"] and an operator grant"),
            })
        })
    }
    /// Records and answers an outbound request.
    pub fn http(&mut self, req: &Request) -> Result<Response, HttpError> {
        self.requests.push(req.clone());
        match self.responder.as_mut() {
            Some(f) => f(req),
            None => Err(HttpError::Denied),
        }
    }
}
