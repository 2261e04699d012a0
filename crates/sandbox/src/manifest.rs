//! `nitejar.plugin.json` v1 (spec §9): parsing and validation.
//!
//! Validation is strict and early (STYLE #3): unknown keys, malformed permissions, hook names
//! that do not exist, an `engine.nitejar` range this host does not satisfy, and requests the
//! sandbox cannot honour (process spawn) all fail here with a message that says what to change.

use crate::capabilities::network::NetworkRule;
use crate::hooks::{FailPolicy, HookName};
use serde::{Deserialize, Serialize};

/// The host version plugins' `engine.nitejar` ranges are checked against.
pub const HOST_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The manifest file name at a package's root.
pub const MANIFEST_FILE: &str = "nitejar.plugin.json";

/// Largest manifest accepted (bytes): a manifest is a few KiB; anything near this is hostile.
pub const MAX_MANIFEST_BYTES: usize = 256 << 10;
/// Longest hook timeout a manifest may ask for.
pub const MAX_MANIFEST_HOOK_TIMEOUT_MS: u64 = 60_000;

/// A manifest problem; the message says what to change.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("nitejar.plugin.json: {0}")]
pub struct ManifestError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ManifestError> {
    Err(ManifestError(msg.into()))
}

/// The manifest (schema version 1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Always 1.
    pub schema_version: u32,
    /// Plugin id, reverse-DNS style (`com.acme.jira`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Semver version.
    pub version: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Path of the `.wasm` component inside the package.
    pub entry: String,
    /// Host compatibility.
    pub engine: Engine,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// SPDX license.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Home page URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    /// Source repository URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Activation hints (kept for compatibility; the host activates enabled plugins at boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<serde_json::Value>,
    /// Declared permissions.
    #[serde(default)]
    pub permissions: Permissions,
    /// Declared contributions.
    #[serde(default)]
    pub contributes: Contributes,
    /// Resource budgets the plugin asks for (within the host's maximums).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ManifestLimits>,
}

/// `limits`: budgets a plugin asks for instead of the host's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestLimits {
    /// Instructions (wasmtime fuel) each call may use, at most
    /// [`crate::limits::MAX_FUEL_PER_CALL`]; the operator may override it per plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_per_call: Option<u64>,
}

/// `engine`: which hosts the plugin runs on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Engine {
    /// Semver range of Nitejar versions.
    pub nitejar: String,
    /// Accepted for compatibility with the spec's JS plugins; ignored by the wasm host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// `permissions`: what the plugin may reach. Each entry needs an operator grant too.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Permissions {
    /// Outbound HTTP allowlist: `host`, `*.host`, `https://host:port`, `http://127.0.0.1:8080`.
    #[serde(default)]
    pub network: Vec<String>,
    /// Secret keys the plugin may read.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Directories (names in the plugin's file area) visible read-only at `/<name>`.
    #[serde(default)]
    pub filesystem_read: Vec<String>,
    /// Directories visible read-write at `/<name>`.
    #[serde(default)]
    pub filesystem_write: Vec<String>,
    /// Must be absent or false: there is no process spawning in the sandbox.
    #[serde(default)]
    pub allow_process_spawn: bool,
}

/// `contributes`: what the plugin adds to the host.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Contributes {
    /// Integration type keys.
    #[serde(default)]
    pub integrations: Vec<String>,
    /// Hook registrations: an event name, or an object with options.
    #[serde(default)]
    pub hooks: Vec<HookEntry>,
    /// Skill ids.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Agent tool names.
    #[serde(default)]
    pub tools: Vec<String>,
}

/// One `contributes.hooks` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum HookEntry {
    /// `"tool.pre_exec"`: defaults for priority, policy and timeout.
    Name(String),
    /// `{"event": "tool.pre_exec", "priority": 10, "failPolicy": "fail_closed", "timeoutMs": 500}`.
    Detailed(HookEntryOptions),
}

/// Options of a hook registration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookEntryOptions {
    /// Hook event name.
    pub event: String,
    /// Higher runs first (default 0).
    #[serde(default)]
    pub priority: i32,
    /// `fail_open` (default) or `fail_closed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_policy: Option<String>,
    /// Per-handler timeout in milliseconds (default 1500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// A validated hook registration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRegistration {
    /// The event.
    pub event: HookName,
    /// Priority (higher first).
    pub priority: i32,
    /// What a failure means.
    pub fail_policy: FailPolicy,
    /// Timeout, when the manifest sets one (else the host default).
    pub timeout_ms: Option<u64>,
}

fn valid_id(id: &str) -> bool {
    let ok_chars = id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    (2..=128).contains(&id.len())
        && ok_chars
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && !id.contains("..")
        && !id.ends_with('.')
}

fn valid_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A relative path inside a package or file area: no `..`, not absolute, no backslashes.
pub fn safe_relative_path(p: &str) -> bool {
    let p = p.strip_prefix("./").unwrap_or(p);
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && !p.contains('\0')
        && p.split('/')
            .all(|seg| !seg.is_empty() && seg != ".." && seg != ".")
}

/// Parses an npm-style semver range (`>=0.1.0 <1.0.0`, `^0.1 || ^0.2`, `0.1.0 - 0.3.0`, or the
/// comma form `>=0.1.0, <1.0.0`) into alternatives, any of which may match.
pub fn parse_npm_range(range: &str) -> Result<Vec<semver::VersionReq>, semver::Error> {
    range
        .split("||")
        .map(|alt| {
            let alt = alt.trim();
            let normalized = match alt.split_once(" - ") {
                Some((lo, hi)) => format!(">={}, <={}", lo.trim(), hi.trim()),
                None if alt.is_empty() => "*".to_string(),
                // Operators may be separated from their version by spaces (`>= 0.1.0`).
                None => {
                    let mut parts: Vec<String> = Vec::new();
                    for tok in alt.split([' ', ',']).filter(|t| !t.is_empty()) {
                        match parts.last_mut() {
                            Some(last) if last.chars().all(|c| "<>=~^".contains(c)) => {
                                last.push_str(tok)
                            }
                            _ => parts.push(tok.to_string()),
                        }
                    }
                    parts.join(", ")
                }
            };
            semver::VersionReq::parse(&normalized)
        })
        .collect()
}

impl Manifest {
    /// Parses and validates manifest JSON.
    pub fn parse(json: &[u8]) -> Result<Manifest, ManifestError> {
        if json.len() > MAX_MANIFEST_BYTES {
            return err(format!(
                "the manifest is {} bytes; at most {MAX_MANIFEST_BYTES}",
                json.len()
            ));
        }
        // serde's message quotes the offending field name or value: escaped and bounded, as
        // it reaches API answers and terminals.
        let m: Manifest = serde_json::from_slice(json)
            .map_err(|e| ManifestError(crate::capabilities::log::sanitize(&e.to_string(), 1024)))?;
        // Validation messages quote the offending values: bounded the same way.
        m.validate()
            .map_err(|e| ManifestError(crate::capabilities::log::sanitize(&e.0, 1024)))?;
        Ok(m)
    }

    /// Validates every field; see the module docs.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.schema_version != 1 {
            return err(format!(
                "schemaVersion {} is not supported; use 1",
                self.schema_version
            ));
        }
        if let Some(fuel) = self.limits.as_ref().and_then(|l| l.fuel_per_call)
            && !(1..=crate::limits::MAX_FUEL_PER_CALL).contains(&fuel)
        {
            return err(format!(
                "limits.fuelPerCall must be between 1 and {} (got {fuel})",
                crate::limits::MAX_FUEL_PER_CALL
            ));
        }
        if !valid_id(&self.id) {
            return err(format!(
                "id {:?} is invalid: use 2-128 lowercase letters, digits, '.', '_' or '-', like com.acme.jira",
                self.id
            ));
        }
        if self.name.trim().is_empty() {
            return err("name must not be empty");
        }
        semver::Version::parse(&self.version)
            .map_err(|e| ManifestError(format!("version {:?} is not semver: {e}", self.version)))?;
        if !safe_relative_path(&self.entry) || !self.entry.ends_with(".wasm") {
            return err(format!(
                "entry {:?} must be a relative path to a .wasm component inside the package",
                self.entry
            ));
        }
        self.check_engine()?;
        let p = &self.permissions;
        for rule in &p.network {
            NetworkRule::parse(rule)
                .map_err(|e| ManifestError(format!("permissions.network: {e}")))?;
        }
        for key in &p.secrets {
            if !valid_key(key) {
                return err(format!(
                    "permissions.secrets: {key:?} must be 1-128 of [A-Za-z0-9._-]"
                ));
            }
        }
        for (field, dirs) in [
            ("filesystemRead", &p.filesystem_read),
            ("filesystemWrite", &p.filesystem_write),
        ] {
            for d in dirs {
                if !safe_relative_path(d) || d.contains('/') {
                    return err(format!(
                        "permissions.{field}: {d:?} must be a single directory name (it becomes /{d} \
                         inside the sandbox, backed by the plugin's own file area)"
                    ));
                }
            }
        }
        if p.allow_process_spawn {
            return err(
                "permissions.allowProcessSpawn: plugins run as WebAssembly components and cannot \
                 spawn processes; remove the field or set it to false",
            );
        }
        for t in &self.contributes.integrations {
            if !valid_key(t) || t.contains('.') {
                return err(format!(
                    "contributes.integrations: {t:?} must be [A-Za-z0-9_-]"
                ));
            }
        }
        self.hook_registrations()?;
        Ok(())
    }

    fn check_engine(&self) -> Result<(), ManifestError> {
        let alternatives = parse_npm_range(&self.engine.nitejar).map_err(|e| {
            ManifestError(format!(
                "engine.nitejar {:?} is not a semver range: {e}",
                self.engine.nitejar
            ))
        })?;
        let host = semver::Version::parse(HOST_VERSION).expect("host version is semver");
        if !alternatives.iter().any(|req| req.matches(&host)) {
            return err(format!(
                "engine.nitejar {:?} does not include this host's version {HOST_VERSION}",
                self.engine.nitejar
            ));
        }
        Ok(())
    }

    /// The validated hook registrations, in manifest order.
    pub fn hook_registrations(&self) -> Result<Vec<HookRegistration>, ManifestError> {
        let mut out: Vec<HookRegistration> = Vec::new();
        for entry in &self.contributes.hooks {
            let opts = match entry {
                HookEntry::Name(n) => HookEntryOptions {
                    event: n.clone(),
                    priority: 0,
                    fail_policy: None,
                    timeout_ms: None,
                },
                HookEntry::Detailed(o) => o.clone(),
            };
            let event = HookName::parse(&opts.event).ok_or_else(|| {
                ManifestError(format!(
                    "contributes.hooks: {:?} is not a hook; use one of {}",
                    opts.event,
                    HookName::ALL
                        .iter()
                        .map(|h| h.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            if out.iter().any(|r| r.event == event) {
                return err(format!(
                    "contributes.hooks: {:?} is listed twice",
                    opts.event
                ));
            }
            let fail_policy = match opts.fail_policy.as_deref() {
                None => FailPolicy::FailOpen,
                Some(s) => FailPolicy::parse(s).ok_or_else(|| {
                    ManifestError(format!(
                        "contributes.hooks: failPolicy {s:?} must be fail_open or fail_closed"
                    ))
                })?,
            };
            if let Some(t) = opts.timeout_ms
                && (t == 0 || t > MAX_MANIFEST_HOOK_TIMEOUT_MS)
            {
                return err(format!(
                    "contributes.hooks: timeoutMs {t} must be between 1 and {MAX_MANIFEST_HOOK_TIMEOUT_MS}"
                ));
            }
            out.push(HookRegistration {
                event,
                priority: opts.priority,
                fail_policy,
                timeout_ms: opts.timeout_ms,
            });
        }
        Ok(out)
    }

    /// The disclosures an operator must acknowledge: one key per declared capability
    /// (`network:<rule>`, `secret:<key>`, `fs:read:<dir>`, `fs:write:<dir>`).
    pub fn disclosures(&self) -> Vec<String> {
        let p = &self.permissions;
        let mut out = Vec::new();
        out.extend(p.network.iter().map(|n| format!("network:{n}")));
        out.extend(p.secrets.iter().map(|s| format!("secret:{s}")));
        out.extend(p.filesystem_read.iter().map(|d| format!("fs:read:{d}")));
        out.extend(p.filesystem_write.iter().map(|d| format!("fs:write:{d}")));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_manifest_is_refused_before_it_is_parsed() {
        let mut m = base();
        m["description"] = serde_json::json!("x".repeat(MAX_MANIFEST_BYTES));
        let e = Manifest::parse(m.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
        assert!(e.to_string().len() < 200);
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "schemaVersion": 1, "id": "com.acme.jira", "name": "Jira", "version": "1.0.0",
            "entry": "dist/plugin.wasm", "engine": {"nitejar": ">=0.1.0 <1.0.0"},
            "permissions": {"network": ["api.atlassian.com"], "secrets": ["jira.api_token"]},
            "contributes": {"integrations": ["jira"], "hooks": [
                "tool.pre_exec",
                {"event": "response.pre_deliver", "priority": 5, "failPolicy": "fail_closed", "timeoutMs": 200}
            ]}
        })
    }

    fn parse(v: serde_json::Value) -> Result<Manifest, ManifestError> {
        Manifest::parse(v.to_string().as_bytes())
    }

    #[test]
    fn accepts_a_complete_manifest() {
        let m = parse(base()).unwrap();
        let hooks = m.hook_registrations().unwrap();
        assert_eq!(hooks[0].event, HookName::ToolPreExec);
        assert_eq!(hooks[0].fail_policy, FailPolicy::FailOpen);
        assert_eq!(hooks[1].priority, 5);
        assert_eq!(hooks[1].fail_policy, FailPolicy::FailClosed);
        assert_eq!(
            m.disclosures(),
            vec!["network:api.atlassian.com", "secret:jira.api_token"]
        );
    }

    #[test]
    fn rejects_bad_manifests_with_actionable_messages() {
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|v| v["surprise"] = 1.into()),
                "unknown field `surprise`",
            ),
            (
                Box::new(|v| v["schemaVersion"] = 2.into()),
                "schemaVersion 2",
            ),
            (Box::new(|v| v["id"] = "Bad Id".into()), "id \"Bad Id\""),
            (Box::new(|v| v["version"] = "one".into()), "not semver"),
            (Box::new(|v| v["entry"] = "../escape.wasm".into()), "entry"),
            (Box::new(|v| v["entry"] = "/abs.wasm".into()), "entry"),
            (
                Box::new(|v| v["entry"] = "dist/index.js".into()),
                ".wasm component",
            ),
            (
                Box::new(|v| v["engine"]["nitejar"] = ">=9.0.0".into()),
                "does not include this host",
            ),
            (
                Box::new(|v| v["permissions"]["allowProcessSpawn"] = true.into()),
                "cannot spawn",
            ),
            (
                Box::new(|v| v["permissions"]["network"] = serde_json::json!(["ftp://x"])),
                "permissions.network",
            ),
            (
                Box::new(|v| v["permissions"]["secrets"] = serde_json::json!(["a b"])),
                "permissions.secrets",
            ),
            (
                Box::new(|v| v["permissions"]["filesystemRead"] = serde_json::json!(["../etc"])),
                "filesystemRead",
            ),
            (
                Box::new(|v| v["permissions"]["filesystemWrite"] = serde_json::json!(["/tmp"])),
                "filesystemWrite",
            ),
            (
                Box::new(|v| v["contributes"]["hooks"] = serde_json::json!(["tool.run"])),
                "is not a hook",
            ),
            (
                Box::new(|v| {
                    v["contributes"]["hooks"] =
                        serde_json::json!(["tool.pre_exec", "tool.pre_exec"])
                }),
                "twice",
            ),
            (
                Box::new(|v| {
                    v["contributes"]["hooks"] =
                        serde_json::json!([{"event": "tool.pre_exec", "failPolicy": "maybe"}])
                }),
                "failPolicy",
            ),
            (
                Box::new(|v| {
                    v["contributes"]["hooks"] =
                        serde_json::json!([{"event": "tool.pre_exec", "timeoutMs": 0}])
                }),
                "timeoutMs",
            ),
        ];
        for (mutate, expected) in cases {
            let mut v = base();
            mutate(&mut v);
            let e = parse(v).unwrap_err().0;
            assert!(e.contains(expected), "{e:?} should mention {expected:?}");
        }
    }

    #[test]
    fn npm_ranges() {
        let host = semver::Version::parse("0.1.0").unwrap();
        for (range, want) in [
            (">=0.1.0 <1.0.0", true),
            (">=0.1.0, <1.0.0", true),
            (">= 0.1.0 < 0.2.0", true),
            ("^0.2 || ^0.1", true),
            ("0.0.1 - 0.1.5", true),
            (">=0.2.0", false),
            ("*", true),
        ] {
            let alts = parse_npm_range(range).unwrap();
            assert_eq!(alts.iter().any(|r| r.matches(&host)), want, "{range}");
        }
        assert!(parse_npm_range("banana").is_err());
    }

    #[test]
    fn relative_paths() {
        assert!(safe_relative_path("dist/plugin.wasm"));
        assert!(safe_relative_path("./plugin.wasm"));
        for bad in ["", "/x", "a/../b", "..", "a//b", "a\\b", "./"] {
            assert!(!safe_relative_path(bad), "{bad}");
        }
    }
}
