//! The Nitejar admin API contract: the request and response types of the HTTP API, shared by
//! the server (which answers with them), the CLI (which reads them) and the OpenAPI document
//! (generated from them, [`openapi`]).
//!
//! Every type serializes to exactly the JSON the API speaks (camelCase fields) and carries its
//! JSON Schema. A field added here is added for every client at once; a field renamed here is a
//! breaking change of the API.

#![warn(missing_docs)]

pub mod error;
pub mod health;
pub mod import;
pub mod instances;
pub mod lifecycle;
pub mod openapi;
pub mod plugins;
pub mod runs;
pub mod skills;

pub use error::{ErrorBody, ErrorDetail};
