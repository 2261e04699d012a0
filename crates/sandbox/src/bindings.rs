//! Host bindings of the plugin API, one module per supported WIT version.
//!
//! Released WIT versions are frozen (STYLE #5). When `0.2.0` ships, a `v0_2_0` module joins
//! this one and components built against `0.1.0` keep working through a conversion layer.

/// `nitejar:plugin@0.1.0` (generated; the WIT doc comments are the documentation).
#[allow(missing_docs)]
pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1.0",
        world: "plugin",
        additional_derives: [PartialEq],
    });
}

pub use v0_1_0::*;

/// WIT package versions this host accepts.
pub const SUPPORTED_API_VERSIONS: &[&str] = &["0.1.0"];
