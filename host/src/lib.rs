//! Nitejar plugin host: runs third-party plugins as sandboxed WebAssembly components.
//!
//! The layout follows the architecture: [`runtime`] (engine, limits, stores), [`capabilities`]
//! (one module per host import, each enforcing its permission), [`plugins`] (manifest, packages,
//! installation, registry), [`hooks`], [`ingress`] (webhooks to work items), [`db`] (all SQL),
//! [`receipts`], and [`http`] (admin API and webhook routes).

#![warn(missing_docs)]

pub mod agent;
pub mod app;
pub mod cli;
pub mod config;
pub mod crashpoint;
pub mod crypto;
pub mod hooks;
pub mod http;
pub mod ingress;
pub mod instances;
pub mod limits;
pub mod plugins;
pub mod receipts;
pub mod skills;
