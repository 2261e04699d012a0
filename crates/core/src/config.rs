//! Operator configuration, read from the environment (and `nitejar serve` flags).
//!
//! Every spec variable `SLOPBOT_X` is accepted; `NITEJAR_X` is the documented name and wins
//! when both are set.

use crate::plugins::trust::{self, TrustMode, TrustPolicy};
use nitejar_sandbox::capabilities::kv::KvQuota;
pub use nitejar_sandbox::capabilities::network::{OutboundOverrides, OutboundTarget};
use std::net::SocketAddr;
use std::path::PathBuf;

/// A configuration problem, reported at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable was set to something unusable.
    #[error("{var}: {problem}")]
    Invalid {
        /// The variable name.
        var: String,
        /// What is wrong and what is expected.
        problem: String,
    },
}

/// Resolved host configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Root of all durable state (`NITEJAR_DATA_DIR`, alias `SLOPBOT_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Installed plugins (`NITEJAR_PLUGINS_DIR`, alias `SLOPBOT_PLUGINS_DIR`, default `<data>/plugins`).
    pub plugins_dir: PathBuf,
    /// Staging area for installs (`NITEJAR_PLUGIN_STAGING_DIR`, alias `SLOPBOT_PLUGIN_STAGING_DIR`, default `<plugins>/_staging`).
    pub staging_dir: PathBuf,
    /// Compiled-component cache (`NITEJAR_PLUGIN_CACHE_DIR`, alias `SLOPBOT_PLUGIN_CACHE_DIR`, default `<plugins>/_cache`).
    pub cache_dir: PathBuf,
    /// SQLite database file (`DATABASE_URL`, default `<data>/nitejar.db`).
    pub database_path: PathBuf,
    /// Address the HTTP server binds (`NITEJAR_BIND`, default `127.0.0.1:3000`).
    pub bind: SocketAddr,
    /// Admin API bearer token (`NITEJAR_ADMIN_TOKEN`); generated into the data dir when unset.
    pub admin_token: Option<String>,
    /// Host-level outbound overrides (`NITEJAR_OUTBOUND_OVERRIDES=host=ip:port,host=http://ip:port,...`).
    pub outbound_overrides: OutboundOverrides,
    /// Hex AES-256 key for secrets at rest (`ENCRYPTION_KEY`); generated into the data dir when unset.
    pub encryption_key: Option<String>,
    /// Per-handler hook timeout (`NITEJAR_HOOK_TIMEOUT_MS`).
    pub hook_timeout_ms: u64,
    /// Per-event hook chain budget (`NITEJAR_HOOK_CHAIN_BUDGET_MS`).
    pub hook_chain_budget_ms: u64,
    /// Guest memory limit (`NITEJAR_PLUGIN_MEMORY_BYTES`).
    pub guest_memory_bytes: usize,
    /// Every plugin's kv storage quota (`NITEJAR_PLUGIN_KV_MAX_KEYS`,
    /// `NITEJAR_PLUGIN_KV_MAX_BYTES`).
    pub kv_quota: KvQuota,
    /// Deadline of integration calls such as parse-webhook (`NITEJAR_INTEGRATION_TIMEOUT_MS`).
    pub integration_timeout_ms: u64,
    /// OpenAI-compatible chat-completions base URL (`NITEJAR_MODEL_BASE_URL`, else
    /// `OPENAI_BASE_URL`), used by agents whose provider is `openai`.
    pub model_base_url: Option<String>,
    /// API key for it (`NITEJAR_MODEL_API_KEY`, else `OPENAI_API_KEY`). Never logged.
    pub model_api_key: Option<String>,
    /// Provider of the default agent (`NITEJAR_MODEL_PROVIDER`: `offline`, the default, or
    /// `openai`) and its model (`NITEJAR_MODEL`).
    pub default_provider: String,
    /// Model name of the default agent.
    pub default_model: String,
    /// Agent-run workers (`NITEJAR_RUN_WORKERS`).
    pub run_workers: usize,
    /// How much lower the run workers' threads are scheduled than the ingress's
    /// (`NITEJAR_RUN_NICE`: nice steps, 0 to 19; see `agent::runs_runtime`).
    pub run_nice: u8,
    /// The request workers' busy share (percent) at which most run workers wait to start runs
    /// (`NITEJAR_RUN_YIELD_PERCENT`, 0 to 100; 0 never; see `agent::ingress_load`).
    pub run_yield_percent: u8,
    /// What a committed write survives (`NITEJAR_DB_SYNC`: `normal`, the default, a process
    /// crash; `full`, power loss too; see [`nitejar_store::Durability`]).
    pub durability: nitejar_store::Durability,
    /// Crash-loop protection: failures that disable a plugin (`NITEJAR_PLUGIN_CRASH_THRESHOLD`, alias `SLOPBOT_PLUGIN_CRASH_THRESHOLD`,
    /// default 5; 0 turns it off) ...
    pub crash_threshold: usize,
    /// ... inside this window (`NITEJAR_PLUGIN_CRASH_WINDOW_MS`, alias `SLOPBOT_PLUGIN_CRASH_WINDOW_MS`, default 300000).
    pub crash_window_ms: u64,
    /// Repository skills directory (`NITEJAR_SKILLS_DIR`, default `<data>/skills`).
    pub skills_dir: PathBuf,
    /// Safe mode (`NITEJAR_SAFE_MODE`, alias `SLOPBOT_SAFE_MODE`, `=1`): only built-in plugins are loaded; third-party plugins
    /// stay installed (and enabled in the database) but are not run until it is turned off.
    pub safe_mode: bool,
    /// Public base URL of this server (`NITEJAR_PUBLIC_URL`, e.g. `https://bots.example.com`),
    /// used to show full webhook URLs; without it they are shown as paths.
    pub public_url: Option<String>,
    /// Trust policy (`NITEJAR_PLUGIN_TRUST_MODE`, alias `SLOPBOT_PLUGIN_TRUST_MODE`: `self_host_open` (default),
    /// `self_host_guarded`, `saas_locked`; `NITEJAR_PLUGIN_TRUSTED_KEYS`,
    /// `NITEJAR_PLUGIN_PLATFORM_KEYS`: base64 Ed25519 public keys; `NITEJAR_PLUGIN_ALLOWLIST`:
    /// `<id>@<sha256>` entries).
    pub trust: TrustPolicy,
    /// npm registry for `npm` installs (`NITEJAR_NPM_REGISTRY`, default
    /// `https://registry.npmjs.org`).
    pub npm_registry: String,
    /// Bearer token for that registry (`NITEJAR_NPM_TOKEN`). Never logged.
    pub npm_token: Option<Redacted>,
    /// Whether a git install may build a cargo project that has no prebuilt component
    /// (`NITEJAR_PLUGIN_GIT_BUILD`, default 1; only ever in `self_host_open`, because a build
    /// runs the project's build scripts on the host, outside the sandbox).
    pub git_build: bool,
}

/// A configuration value that must never be printed.
#[derive(Clone)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

fn flag(name: &str, default: bool) -> Result<bool, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some((_, v)) if matches!(v.trim(), "1" | "true" | "yes") => Ok(true),
        Some((_, v)) if matches!(v.trim(), "0" | "false" | "no") => Ok(false),
        Some((key, v)) => Err(ConfigError::Invalid {
            var: key,
            problem: format!("expected 1 or 0, got {v:?}"),
        }),
    }
}

fn trust_policy() -> Result<TrustPolicy, ConfigError> {
    let mode = match var("PLUGIN_TRUST_MODE") {
        None => TrustMode::SelfHostOpen,
        Some((key, v)) => TrustMode::parse(&v).ok_or_else(|| ConfigError::Invalid {
            var: key,
            problem: format!(
                "expected self_host_open, self_host_guarded or saas_locked, got {v:?}"
            ),
        })?,
    };
    let keys = |name: &str| match var(name) {
        None => Ok(Vec::new()),
        Some((key, v)) => {
            trust::parse_keys(&v).map_err(|problem| ConfigError::Invalid { var: key, problem })
        }
    };
    Ok(TrustPolicy {
        mode,
        trusted_keys: keys("PLUGIN_TRUSTED_KEYS")?,
        platform_keys: keys("PLUGIN_PLATFORM_KEYS")?,
        allowlist: match var("PLUGIN_ALLOWLIST") {
            None => Vec::new(),
            Some((key, v)) => trust::parse_allowlist(&v)
                .map_err(|problem| ConfigError::Invalid { var: key, problem })?,
        },
    })
}

/// Reads `NITEJAR_<name>`, then `SLOPBOT_<name>`.
fn var(name: &str) -> Option<(String, String)> {
    for prefix in ["NITEJAR_", "SLOPBOT_"] {
        let key = format!("{prefix}{name}");
        if let Ok(v) = std::env::var(&key)
            && !v.trim().is_empty()
        {
            return Some((key, v));
        }
    }
    None
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some((key, v)) => v.trim().parse().map_err(|_| ConfigError::Invalid {
            var: key,
            problem: format!("expected a whole number, got {v:?}"),
        }),
    }
}

/// A whole number from 0 to `max` (a variable out of range stops the start, named).
fn number_up_to(name: &str, default: u8, max: u8) -> Result<u8, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some((key, v)) => match v.trim().parse::<u8>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(ConfigError::Invalid {
                var: key,
                problem: format!("expected a whole number from 0 to {max}, got {v:?}"),
            }),
        },
    }
}

/// Parses `host=ip:port,host2=ip:port`.
pub fn parse_overrides(text: &str) -> Result<OutboundOverrides, String> {
    let mut map = OutboundOverrides::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (host, target) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not host=ip:port or host=http://ip:port"))?;
        let target = target.trim();
        let (plaintext, addr) = match target.strip_prefix("http://") {
            Some(rest) => (true, rest.trim_end_matches('/')),
            None => (false, target),
        };
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| format!("{target:?} is not ip:port or http://ip:port"))?;
        map.insert(
            host.trim().to_ascii_lowercase(),
            OutboundTarget { addr, plaintext },
        );
    }
    Ok(map)
}

impl Config {
    /// Configuration from the environment, with `data_dir` overriding `NITEJAR_DATA_DIR` (alias `SLOPBOT_DATA_DIR`).
    pub fn from_env(data_dir: Option<PathBuf>) -> Result<Config, ConfigError> {
        let data_dir = data_dir
            .or_else(|| var("DATA_DIR").map(|(_, v)| PathBuf::from(v)))
            .unwrap_or_else(|| PathBuf::from("data"));
        let plugins_dir = var("PLUGINS_DIR")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| data_dir.join("plugins"));
        let staging_dir = var("PLUGIN_STAGING_DIR")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| plugins_dir.join("_staging"));
        let cache_dir = var("PLUGIN_CACHE_DIR")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| plugins_dir.join("_cache"));
        let database_path = match std::env::var("DATABASE_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            None => data_dir.join("nitejar.db"),
            Some(v) if v.contains("://") && !v.starts_with("sqlite://") => {
                return Err(ConfigError::Invalid {
                    var: "DATABASE_URL".into(),
                    problem: "only the embedded SQLite database is supported in this version; \
                              set a file path such as /app/data/nitejar.db"
                        .into(),
                });
            }
            Some(v) => PathBuf::from(
                v.trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:"),
            ),
        };
        let bind = match var("BIND") {
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
            Some((key, v)) => v.parse().map_err(|_| ConfigError::Invalid {
                var: key,
                problem: format!("expected ip:port, got {v:?}"),
            })?,
        };
        let outbound_overrides = match var("OUTBOUND_OVERRIDES") {
            None => OutboundOverrides::new(),
            Some((key, v)) => {
                parse_overrides(&v).map_err(|problem| ConfigError::Invalid { var: key, problem })?
            }
        };
        let skills_dir = var("SKILLS_DIR")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| data_dir.join("skills"));
        Ok(Config {
            data_dir,
            plugins_dir,
            staging_dir,
            cache_dir,
            database_path,
            bind,
            admin_token: var("ADMIN_TOKEN").map(|(_, v)| v),
            outbound_overrides,
            encryption_key: std::env::var("ENCRYPTION_KEY")
                .ok()
                .filter(|v| !v.is_empty()),
            hook_timeout_ms: number("HOOK_TIMEOUT_MS", crate::limits::DEFAULT_HOOK_TIMEOUT_MS)?,
            hook_chain_budget_ms: number(
                "HOOK_CHAIN_BUDGET_MS",
                crate::limits::DEFAULT_HOOK_CHAIN_BUDGET_MS,
            )?,
            guest_memory_bytes: number(
                "PLUGIN_MEMORY_BYTES",
                crate::limits::DEFAULT_GUEST_MEMORY_BYTES,
            )?,
            kv_quota: KvQuota {
                max_keys: number("PLUGIN_KV_MAX_KEYS", crate::limits::MAX_KV_KEYS_PER_PLUGIN)?,
                max_bytes: number(
                    "PLUGIN_KV_MAX_BYTES",
                    crate::limits::MAX_KV_BYTES_PER_PLUGIN,
                )?,
            },
            integration_timeout_ms: number(
                "INTEGRATION_TIMEOUT_MS",
                crate::limits::DEFAULT_INTEGRATION_TIMEOUT_MS,
            )?,
            model_base_url: var("MODEL_BASE_URL").map(|(_, v)| v).or_else(|| {
                std::env::var("OPENAI_BASE_URL")
                    .ok()
                    .filter(|v| !v.is_empty())
            }),
            model_api_key: var("MODEL_API_KEY").map(|(_, v)| v).or_else(|| {
                std::env::var("OPENAI_API_KEY")
                    .ok()
                    .filter(|v| !v.is_empty())
            }),
            default_provider: match var("MODEL_PROVIDER") {
                None => "offline".into(),
                Some((_, v)) if v == "offline" || v == "openai" => v,
                Some((key, v)) => {
                    return Err(ConfigError::Invalid {
                        var: key,
                        problem: format!("expected offline or openai, got {v:?}"),
                    });
                }
            },
            default_model: var("MODEL")
                .map(|(_, v)| v)
                .unwrap_or_else(|| "nitejar-offline".into()),
            run_workers: number("RUN_WORKERS", crate::limits::RUN_WORKERS)?,
            run_nice: number_up_to("RUN_NICE", crate::limits::RUN_NICE, 19)?,
            run_yield_percent: number_up_to(
                "RUN_YIELD_PERCENT",
                crate::limits::RUN_YIELD_PERCENT,
                100,
            )?,
            durability: match var("DB_SYNC") {
                None => nitejar_store::Durability::Process,
                Some((_, v)) if v.trim().eq_ignore_ascii_case("normal") => {
                    nitejar_store::Durability::Process
                }
                Some((_, v)) if v.trim().eq_ignore_ascii_case("full") => {
                    nitejar_store::Durability::Power
                }
                Some((key, v)) => {
                    return Err(ConfigError::Invalid {
                        var: key,
                        problem: format!("expected normal or full, got {v:?}"),
                    });
                }
            },
            crash_threshold: number(
                "PLUGIN_CRASH_THRESHOLD",
                crate::limits::DEFAULT_CRASH_THRESHOLD as u64,
            )? as usize,
            crash_window_ms: number(
                "PLUGIN_CRASH_WINDOW_MS",
                crate::limits::DEFAULT_CRASH_WINDOW_MS,
            )?,
            skills_dir,
            safe_mode: match var("SAFE_MODE") {
                None => false,
                Some((_, v)) if matches!(v.trim(), "1" | "true" | "yes") => true,
                Some((_, v)) if matches!(v.trim(), "0" | "false" | "no" | "") => false,
                Some((key, v)) => {
                    return Err(ConfigError::Invalid {
                        var: key,
                        problem: format!("expected 1 or 0, got {v:?}"),
                    });
                }
            },
            trust: trust_policy()?,
            npm_registry: match var("NPM_REGISTRY") {
                None => "https://registry.npmjs.org".into(),
                Some((_, v)) if v.starts_with("https://") || v.starts_with("http://") => {
                    v.trim_end_matches('/').to_string()
                }
                Some((key, v)) => {
                    return Err(ConfigError::Invalid {
                        var: key,
                        problem: format!("expected an http(s) URL, got {v:?}"),
                    });
                }
            },
            npm_token: var("NPM_TOKEN").map(|(_, v)| Redacted(v)),
            git_build: flag("PLUGIN_GIT_BUILD", true)?,
            public_url: match var("PUBLIC_URL") {
                None => None,
                Some((_, v)) if v.starts_with("https://") || v.starts_with("http://") => {
                    Some(v.trim_end_matches('/').to_string())
                }
                Some((key, v)) => {
                    return Err(ConfigError::Invalid {
                        var: key,
                        problem: format!("expected an http(s) URL, got {v:?}"),
                    });
                }
            },
        })
    }

    /// A configuration rooted at `data_dir` with every default (used by tests and benches).
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        let data_dir = data_dir.into();
        let plugins_dir = data_dir.join("plugins");
        let skills_dir = data_dir.join("skills");
        Config {
            staging_dir: plugins_dir.join("_staging"),
            cache_dir: plugins_dir.join("_cache"),
            database_path: data_dir.join("nitejar.db"),
            plugins_dir,
            data_dir,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_token: None,
            outbound_overrides: OutboundOverrides::new(),
            encryption_key: None,
            hook_timeout_ms: crate::limits::DEFAULT_HOOK_TIMEOUT_MS,
            hook_chain_budget_ms: crate::limits::DEFAULT_HOOK_CHAIN_BUDGET_MS,
            guest_memory_bytes: crate::limits::DEFAULT_GUEST_MEMORY_BYTES,
            kv_quota: KvQuota::default(),
            integration_timeout_ms: crate::limits::DEFAULT_INTEGRATION_TIMEOUT_MS,
            model_base_url: None,
            model_api_key: None,
            default_provider: "offline".into(),
            default_model: "nitejar-offline".into(),
            run_workers: crate::limits::RUN_WORKERS,
            run_nice: crate::limits::RUN_NICE,
            run_yield_percent: crate::limits::RUN_YIELD_PERCENT,
            durability: nitejar_store::Durability::Process,
            crash_threshold: crate::limits::DEFAULT_CRASH_THRESHOLD,
            crash_window_ms: crate::limits::DEFAULT_CRASH_WINDOW_MS,
            skills_dir,
            safe_mode: false,
            public_url: None,
            trust: TrustPolicy::default(),
            npm_registry: "https://registry.npmjs.org".into(),
            npm_token: None,
            git_build: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test in this crate that touches these variables (the environment is process-wide).
    #[test]
    fn spec_variables_work_and_nitejar_names_win() {
        // SAFETY: no other test reads or writes these variables concurrently.
        unsafe {
            std::env::set_var("SLOPBOT_DATA_DIR", "/tmp/slop-data");
            std::env::set_var("SLOPBOT_HOOK_TIMEOUT_MS", "700");
            std::env::set_var("NITEJAR_HOOK_CHAIN_BUDGET_MS", "900");
            std::env::set_var("SLOPBOT_HOOK_CHAIN_BUDGET_MS", "1");
        }
        let c = Config::from_env(None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/slop-data"));
        assert_eq!(c.plugins_dir, PathBuf::from("/tmp/slop-data/plugins"));
        assert_eq!(c.cache_dir, PathBuf::from("/tmp/slop-data/plugins/_cache"));
        assert_eq!(c.hook_timeout_ms, 700);
        assert_eq!(c.hook_chain_budget_ms, 900, "NITEJAR_ wins over SLOPBOT_");
        unsafe { std::env::set_var("DATABASE_URL", "postgres://db/nitejar") };
        let e = Config::from_env(None).unwrap_err().to_string();
        assert!(e.contains("DATABASE_URL") && e.contains("SQLite"), "{e}");
        unsafe { std::env::set_var("DATABASE_URL", "sqlite:///tmp/x.db") };
        assert_eq!(
            Config::from_env(None).unwrap().database_path,
            PathBuf::from("/tmp/x.db")
        );
        unsafe { std::env::remove_var("DATABASE_URL") };
        assert_eq!(
            Config::from_env(None).unwrap().durability,
            nitejar_store::Durability::Process
        );
        unsafe { std::env::set_var("NITEJAR_DB_SYNC", "FULL") };
        assert_eq!(
            Config::from_env(None).unwrap().durability,
            nitejar_store::Durability::Power
        );
        unsafe { std::env::set_var("NITEJAR_DB_SYNC", "sometimes") };
        let e = Config::from_env(None).unwrap_err().to_string();
        assert!(
            e.contains("NITEJAR_DB_SYNC") && e.contains("normal or full"),
            "{e}"
        );
        unsafe { std::env::remove_var("NITEJAR_DB_SYNC") };
        unsafe { std::env::set_var("SLOPBOT_HOOK_TIMEOUT_MS", "soon") };
        let e = Config::from_env(Some("/x".into())).unwrap_err().to_string();
        assert!(
            e.contains("SLOPBOT_HOOK_TIMEOUT_MS") && e.contains("whole number"),
            "{e}"
        );
        unsafe {
            for v in [
                "SLOPBOT_DATA_DIR",
                "SLOPBOT_HOOK_TIMEOUT_MS",
                "NITEJAR_HOOK_CHAIN_BUDGET_MS",
                "SLOPBOT_HOOK_CHAIN_BUDGET_MS",
            ] {
                std::env::remove_var(v);
            }
        }
    }

    #[test]
    fn parses_overrides() {
        let m = parse_overrides("api.telegram.org=127.0.0.1:8081, API.github.com=[::1]:9").unwrap();
        assert_eq!(m["api.telegram.org"].addr.port(), 8081);
        assert!(!m["api.telegram.org"].plaintext);
        assert!(m["api.github.com"].addr.is_ipv6());
        let m = parse_overrides("api.github.com=http://127.0.0.1:9/").unwrap();
        assert!(m["api.github.com"].plaintext);
        assert_eq!(m["api.github.com"].addr.port(), 9);
        assert!(parse_overrides("h=https://127.0.0.1:9").is_err());
        assert!(parse_overrides("nohost").is_err());
        assert!(parse_overrides("h=notanaddr").is_err());
        assert!(parse_overrides("").unwrap().is_empty());
    }
}
