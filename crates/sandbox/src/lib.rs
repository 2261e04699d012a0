//! The Nitejar plugin sandbox: runs plugin components under wasmtime with every permission
//! enforced at the import boundary.
//!
//! This is the lowest layer of the host. It owns the engine and compile cache ([`engine`],
//! [`cache`]), the bounded stores and instances ([`store`], [`instance`]), the call path and
//! loader ([`runtime`]), webhook parse calls on the caller's thread ([`inline`]), failure
//! classes ([`failure`]), output caps ([`output`]), one module per capability
//! ([`capabilities`]), the manifest a plugin declares ([`manifest`]), the hook
//! vocabulary ([`hooks`]), crash-loop counting ([`crash_guard`]), receipts as records
//! ([`receipts`]) and every bound on a guest ([`limits`]).
//!
//! It depends on no layer above it: where it needs storage it defines the trait
//! ([`capabilities::kv::KvStore`]) and where it reports it hands out a queue
//! ([`receipts::ReceiptSink::channel`]); the application wires both.

#![warn(missing_docs)]

pub mod bindings;
pub mod cache;
pub mod capabilities;
pub mod crash_guard;
pub mod engine;
pub mod failure;
pub mod hooks;
pub mod inline;
pub mod instance;
pub mod limits;
pub mod manifest;
pub mod output;
pub mod receipts;
pub mod runtime;
pub mod store;
