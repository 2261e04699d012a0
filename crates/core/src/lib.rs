//! Nitejar core: the application the server serves, on the sandbox and the store.
//!
//! [`plugins`] (packages, install sources, trust, installation, lifecycle, registry, doctor),
//! [`hooks`] (the hook table, the result rules of each event, the dispatcher), [`ingress`]
//! (webhooks to work items; [`response_headers`] for a plugin's own answer), [`agent`] (durable runs, models, tools), [`instances`]
//! (integration instances), [`skills`], [`receipts`] (the writer), [`config`] and [`app`] (the
//! wiring of one host process). It depends on `nitejar-sandbox`, `nitejar-store` and
//! `nitejar-api`, never on the server or the CLI.

#![warn(missing_docs)]

pub mod agent;
pub mod app;
pub mod config;
pub mod crashpoint;
pub mod crypto;
pub mod hooks;
pub mod ingress;
pub mod instances;
pub mod limits;
pub mod logging;
pub mod nitejar_import;
pub mod plugins;
pub mod receipts;
pub mod response_headers;
pub mod skills;

/// Text from plugins and packages as the host shows it: what counts as deceptive (control,
/// bidirectional-override and invisible characters) and how it is escaped.
pub mod text {
    pub use nitejar_sandbox::capabilities::log::{is_deceptive, sanitize};
}
