//! Probes: `GET /healthz` (the process answers) and `GET /readyz` (it can take work).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `GET /readyz` when the host can take work: a probe write to the database went through within
/// 2 s and the disk holding it has room. Otherwise the answer is 503 `not_ready` with the
/// reason and `Retry-After`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// Always `true` in a success answer.
    pub ready: bool,
}
