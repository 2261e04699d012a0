//! The `nitejar` binary's library: the operator CLI ([`cli`]), an admin API client that reads
//! the shared API types of `nitejar-api`. The server is `nitejar-server`, the application it
//! serves is `nitejar-core`.

#![warn(missing_docs)]

pub mod cli;
