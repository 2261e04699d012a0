//! The host's log filter: what `RUST_LOG` selects, minus the tracers that would write secrets.
//!
//! wasmtime's generated WASI bindings trace every guest call with its arguments at `trace`
//! level: the request path of an outgoing HTTP request (a Telegram bot token is part of the
//! path), header values (`Authorization`), file contents. Those targets are switched off after
//! the operator's directives, so no `RUST_LOG` value turns them back on; everything else keeps
//! the level asked for. A test runs the built-in integrations with this filter at `trace` and
//! scans the output for every secret they handle.

use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,wasmtime=warn";

/// Targets never logged: they trace guest calls with their arguments.
pub const SILENCED_TARGETS: &[&str] = &[
    "wasmtime_wasi::p2::bindings",
    "wasmtime_wasi::p3::bindings",
    "wasmtime_wasi_http::p2::bindings",
    "wasmtime_wasi_http::p3::bindings",
    "wasmtime_wasi_io::bindings",
    "nitejar_sandbox::bindings",
];

/// The filter for `directives` (`RUST_LOG` syntax; [`DEFAULT_FILTER`] when `None` or invalid),
/// with [`SILENCED_TARGETS`] switched off.
pub fn filter(directives: Option<&str>) -> EnvFilter {
    let mut filter = directives
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    for target in SILENCED_TARGETS {
        filter = filter.add_directive(
            format!("{target}=off")
                .parse()
                .expect("a silenced target is a valid directive"),
        );
    }
    filter
}
