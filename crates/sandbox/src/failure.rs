//! Classified plugin failures: every way a call can fail, as data (never a host panic or 500).

use crate::store::LimitHit;
use serde::Serialize;

/// Why a plugin call failed.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "failure", rename_all = "snake_case")]
pub enum PluginFailure {
    /// The call ran past its deadline and was stopped by the epoch deadline.
    #[error("the plugin did not finish within {timeout_ms} ms and was stopped")]
    Timeout {
        /// The deadline.
        timeout_ms: u64,
    },
    /// The guest tried to grow memory or a table past its limit.
    #[error("the plugin hit a resource limit: {detail}")]
    ResourceLimit {
        /// Which limit.
        detail: String,
    },
    /// The guest exhausted its stack (deep recursion).
    #[error("the plugin overflowed its stack")]
    StackOverflow,
    /// The guest trapped (panic, unreachable, bad memory access).
    #[error("the plugin trapped: {detail}")]
    Trap {
        /// Trap description (and the guest's panic message when it printed one).
        detail: String,
    },
    /// The guest returned more data than the host accepts from one call.
    #[error("the plugin returned {bytes} bytes; the limit is {limit}")]
    OutputTooLarge {
        /// Size returned.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The plugin tried to move more data into the host in one call (a return value, or the
    /// arguments of one host call) than the host copies; stopped while it was being copied.
    #[error("the plugin tried to pass more than {limit} bytes to the host in one transfer")]
    TransferTooLarge {
        /// The limit (bytes copied per transfer, every alias counted).
        limit: usize,
    },
    /// The call used its whole instruction budget.
    #[error("the plugin used its whole instruction budget of {budget}")]
    FuelExhausted {
        /// The budget (wasmtime fuel units, about one per wasm instruction).
        budget: u64,
    },
    /// The plugin returned an error of its own.
    #[error("the plugin reported an error ({code}): {message}")]
    PluginError {
        /// The plugin's error code.
        code: String,
        /// The plugin's message.
        message: String,
        /// Whether it may be retried.
        retryable: bool,
    },
    /// The component does not export what the call needs.
    #[error("the plugin does not export {export}")]
    MissingExport {
        /// The missing export.
        export: String,
    },
    /// The plugin returned a value the host rejects: malformed at the component boundary (a bad
    /// discriminant, a pointer out of bounds, a string that is not UTF-8) or breaking a rule of
    /// its own (a hook patch that breaks a field's rules).
    #[error("the plugin returned an invalid value: {detail}")]
    InvalidOutput {
        /// What is wrong with it.
        detail: String,
    },
    /// The host is at its concurrent-instance limit; retry later.
    #[error("the host is at capacity; retry later")]
    Busy,
    /// Instantiation failed for another reason.
    #[error("the plugin could not be instantiated: {detail}")]
    Instantiate {
        /// Why.
        detail: String,
    },
    /// Crash-loop protection disabled the plugin; the call was not made.
    #[error("the plugin was disabled by crash-loop protection; the call was not made")]
    Disabled,
}

impl PluginFailure {
    /// Receipt status for this failure.
    pub fn receipt_status(&self) -> &'static str {
        match self {
            PluginFailure::Timeout { .. } => "timeout",
            _ => "error",
        }
    }

    /// The failure's kind (`timeout`, `trap`, ...): what may be said to outside callers, who
    /// must not see guest output or details.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginFailure::Timeout { .. } => "timeout",
            PluginFailure::FuelExhausted { .. } => "fuel_exhausted",
            PluginFailure::ResourceLimit { .. } => "resource_limit",
            PluginFailure::StackOverflow => "stack_overflow",
            PluginFailure::Trap { .. } => "trap",
            PluginFailure::OutputTooLarge { .. } | PluginFailure::TransferTooLarge { .. } => {
                "output_too_large"
            }
            PluginFailure::PluginError { .. } => "plugin_error",
            PluginFailure::MissingExport { .. } => "missing_export",
            PluginFailure::Busy => "busy",
            PluginFailure::InvalidOutput { .. } => "invalid_output",
            PluginFailure::Instantiate { .. } => "instantiate",
            PluginFailure::Disabled => "disabled",
        }
    }

    /// Whether this failure counts towards crash-loop protection: the plugin crashed or
    /// misbehaved. Errors a plugin returns on purpose, host capacity and calls not made do not.
    pub fn is_crash(&self) -> bool {
        !matches!(
            self,
            PluginFailure::PluginError { .. } | PluginFailure::Busy | PluginFailure::Disabled
        )
    }

    /// Classifies a wasmtime error from an instantiate or call.
    pub fn classify(err: &wasmtime::Error, timeout_ms: u64, stderr: &str) -> PluginFailure {
        if let Some(hit) = err.downcast_ref::<LimitHit>() {
            return PluginFailure::ResourceLimit {
                detail: hit.to_string(),
            };
        }
        if err
            .downcast_ref::<crate::capabilities::blocking::DeadlineHit>()
            .is_some()
        {
            return PluginFailure::Timeout { timeout_ms };
        }
        if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
            return match trap {
                wasmtime::Trap::Interrupt => PluginFailure::Timeout { timeout_ms },
                // The budget is filled in by the caller, who knows it.
                wasmtime::Trap::OutOfFuel => PluginFailure::FuelExhausted { budget: 0 },
                wasmtime::Trap::StackOverflow => PluginFailure::StackOverflow,
                other => {
                    let mut detail = other.to_string();
                    let stderr = stderr.trim();
                    if !stderr.is_empty() {
                        detail = format!(
                            "{detail}; guest stderr: {}",
                            crate::capabilities::log::sanitize(stderr, 1024)
                        );
                    }
                    PluginFailure::Trap { detail }
                }
            };
        }
        let text = format!("{err:#}");
        // wasmtime's "hostcall fuel" (its error type is private): a lift over the per-store
        // transfer limit.
        if text.contains("fuel allocated for hostcalls has been exhausted") {
            return PluginFailure::TransferTooLarge {
                limit: crate::limits::MAX_TRANSFER_BYTES,
            };
        }
        if text.contains("maximum concurrent") || text.contains("limit reached") {
            return PluginFailure::Busy;
        }
        PluginFailure::Instantiate {
            detail: crate::capabilities::log::sanitize(&text, 1024),
        }
    }
}
