//! The error body every failed request answers with.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `{"error": {"code", "message"}}`: the body of every 4xx and 5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// A stable machine-readable code and a message safe to show (never internals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable code: `not_found`, `bad_request`, `grants_required`, `safe_mode`, `internal`, ...
    pub code: String,
    /// What happened and, where possible, what to do.
    pub message: String,
}
