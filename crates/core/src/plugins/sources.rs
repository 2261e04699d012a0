//! Install sources (spec §6.1): a local path, an uploaded `.tgz`/`.wasm`, an npm package and a
//! git repository at a ref. Each ends in a [`PluginPackage`] read from a staging directory plus
//! an [`InstallSource`] saying where it came from; the installer then validates, stages and
//! records it the same way whatever the source.
//!
//! - **npm**: the host speaks the registry protocol itself (what `npm pack <spec>` does): it
//!   reads the package document, resolves the version (exact, dist-tag or semver range), downloads
//!   the tarball and checks its `dist.integrity`. No npm client, no install scripts, no
//!   dependencies: a plugin package is its manifest and component.
//! - **git**: `git clone` into staging (no hooks, no submodules, no prompts, only the
//!   `https`, `http`, `ssh`, `git` and `file` transports), checkout of the requested ref, commit
//!   recorded. The package is the repository root or `options.path`. When the manifest's
//!   entry is missing and the directory is a cargo project, it is built with
//!   `cargo build --release --target wasm32-wasip2` if the toolchain is installed and the trust
//!   mode is `self_host_open` (a build runs the project's build scripts on the host).

use super::installer::InstallSource;
use super::package::{PackageError, PluginPackage};
use crate::limits::MAX_UPLOAD_BYTES;
use crate::plugins::Plugins;
use crate::plugins::trust::TrustMode;
use base64::Engine as _;
use nitejar_sandbox::manifest::MANIFEST_FILE;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a git clone or cargo build may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long an npm registry request may take.
const NPM_TIMEOUT: Duration = Duration::from_secs(120);

pub use nitejar_api::lifecycle::SourceOptions;

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The request is malformed (unknown kind, bad reference).
    #[error("{0}")]
    BadRequest(String),
    /// The trust policy refuses this source.
    #[error("{0}")]
    Refused(String),
    /// The package or version does not exist upstream.
    #[error("{0}")]
    NotFound(String),
    /// Fetching or building failed (network, registry, git, cargo).
    #[error("{0}")]
    Fetch(String),
    /// The fetched content is not a valid package.
    #[error(transparent)]
    Package(#[from] PackageError),
}

/// A package read from a source.
pub struct Fetched {
    /// The package.
    pub pkg: PluginPackage,
    /// Where it came from.
    pub source: InstallSource,
}

/// Reads a package from `kind` (`local`, `npm`, `git`) and `reference`. The staging
/// directory used is removed before returning.
pub async fn fetch(
    ctx: &Plugins,
    kind: &str,
    reference: &str,
    options: &SourceOptions,
) -> Result<Fetched, SourceError> {
    if reference.trim().is_empty() {
        return Err(SourceError::BadRequest(
            "sourceRef must not be empty".into(),
        ));
    }
    let kind: &'static str = match kind {
        "local" => "local",
        "npm" => "npm",
        "git" => "git",
        "upload" => {
            return Err(SourceError::BadRequest(
                "uploads go to POST /api/admin/plugins/upload (or /preview/upload) with the file as the body".into(),
            ));
        }
        other => {
            return Err(SourceError::BadRequest(format!(
                "sourceKind {other:?} is not one of local, npm, git"
            )));
        }
    };
    ctx.config
        .trust
        .check_source(kind)
        .map_err(SourceError::Refused)?;
    let staging = ctx
        .config
        .staging_dir
        .join(uuid::Uuid::new_v4().to_string());
    let result = match kind {
        "local" => local(reference).await,
        "npm" => npm(ctx, reference, options, &staging).await,
        _ => git(ctx, reference, options, &staging).await,
    };
    let cleanup = staging.clone();
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(cleanup)).await;
    result
}

/// Reads an uploaded body: a `.tgz` (npm layout) or a bare `.wasm`.
pub async fn upload(
    ctx: &Plugins,
    bytes: Vec<u8>,
    name: Option<String>,
) -> Result<Fetched, SourceError> {
    ctx.config
        .trust
        .check_source("upload")
        .map_err(SourceError::Refused)?;
    let staging = ctx
        .config
        .staging_dir
        .join(uuid::Uuid::new_v4().to_string());
    let dir = staging.clone();
    let pkg = blocking(move || {
        if bytes.starts_with(b"\0asm") {
            PluginPackage::from_wasm(bytes)
        } else if bytes.starts_with(&[0x1f, 0x8b]) {
            PluginPackage::from_tgz(&bytes, &dir)
        } else {
            Err(PackageError::Invalid(
                "upload a .tgz package or a .wasm component".into(),
            ))
        }
    })
    .await;
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(staging)).await;
    Ok(Fetched {
        pkg: pkg?,
        source: InstallSource {
            kind: "upload",
            reference: name,
            commit: None,
        },
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PackageError> + Send + 'static,
) -> Result<T, PackageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PackageError::Io(std::io::Error::other(format!("task failed: {e}"))))?
}

async fn local(reference: &str) -> Result<Fetched, SourceError> {
    let path = PathBuf::from(reference);
    if !path.is_absolute() {
        return Err(SourceError::BadRequest(format!(
            "a local source must be an absolute directory path on the server, got {reference:?}"
        )));
    }
    let pkg = blocking(move || PluginPackage::from_dir(&path)).await?;
    Ok(Fetched {
        pkg,
        source: InstallSource {
            kind: "local",
            reference: Some(reference.to_string()),
            commit: None,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// npm

/// Splits `name[@spec]` (scoped names start with `@`).
fn split_npm_spec(spec: &str) -> Result<(&str, Option<&str>), SourceError> {
    let spec = spec.trim();
    let (name, version) = match spec.strip_prefix('@') {
        Some(rest) => match rest.find('@') {
            Some(i) => (&spec[..i + 1], Some(&rest[i + 1..])),
            None => (spec, None),
        },
        None => match spec.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (spec, None),
        },
    };
    let valid_part = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~".contains(&b))
    };
    let ok = match name.strip_prefix('@') {
        Some(scoped) => {
            matches!(scoped.split_once('/'), Some((s, n)) if valid_part(s) && valid_part(n))
        }
        None => valid_part(name),
    };
    if !ok || name.len() > 214 {
        return Err(SourceError::BadRequest(format!(
            "{spec:?} is not an npm package name (name, name@version, name@tag, @scope/name@range)"
        )));
    }
    Ok((name, version.filter(|v| !v.is_empty())))
}

/// Picks the version a spec means: exact, dist-tag, or the highest release matching a range.
fn resolve_npm_version(doc: &serde_json::Value, spec: Option<&str>) -> Option<String> {
    let versions = doc.get("versions")?.as_object()?;
    let tags = doc.get("dist-tags").and_then(|t| t.as_object());
    let spec = spec.unwrap_or("latest");
    if versions.contains_key(spec) {
        return Some(spec.to_string());
    }
    if let Some(v) = tags.and_then(|t| t.get(spec)).and_then(|v| v.as_str()) {
        return Some(v.to_string());
    }
    // npm ranges separate comparators with spaces; the semver crate with commas.
    let normalized = if spec.contains(',') || spec.contains("||") {
        spec.to_string()
    } else {
        spec.split_whitespace().collect::<Vec<_>>().join(", ")
    };
    let req = semver::VersionReq::parse(&normalized).ok()?;
    versions
        .keys()
        .filter_map(|k| semver::Version::parse(k).ok())
        .filter(|v| req.matches(v))
        .max()
        .map(|v| v.to_string())
}

/// Checks a Subresource-Integrity string (`sha512-<base64>`, also sha384/sha256).
fn check_integrity(bytes: &[u8], integrity: &str) -> Result<(), String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    for item in integrity.split_whitespace() {
        let Some((alg, want)) = item.split_once('-') else {
            continue;
        };
        let have = match alg {
            "sha512" => sha2::Sha512::digest(bytes).to_vec(),
            "sha384" => sha2::Sha384::digest(bytes).to_vec(),
            "sha256" => sha2::Sha256::digest(bytes).to_vec(),
            _ => continue,
        };
        return if b64.decode(want).ok().as_deref() == Some(have.as_slice()) {
            Ok(())
        } else {
            Err(format!("the tarball does not match its {alg} integrity"))
        };
    }
    Err(format!(
        "the registry gave no supported integrity (sha512/sha384/sha256) for the tarball: {integrity:?}"
    ))
}

async fn npm(
    ctx: &Plugins,
    reference: &str,
    options: &SourceOptions,
    staging: &Path,
) -> Result<Fetched, SourceError> {
    let (name, spec) = split_npm_spec(reference)?;
    let registry = options
        .registry
        .as_deref()
        .unwrap_or(&ctx.config.npm_registry)
        .trim_end_matches('/')
        .to_string();
    let registry_url = reqwest::Url::parse(&registry)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            SourceError::BadRequest(format!("registry {registry:?} is not an http(s) URL"))
        })?;
    let client = reqwest::Client::builder()
        .timeout(NPM_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(|e| SourceError::Fetch(format!("building the HTTP client failed: {e}")))?;
    // The token only ever goes to the registry's own host.
    let auth = |req: reqwest::RequestBuilder, url: &reqwest::Url| match &ctx.config.npm_token {
        Some(t) if url.host_str() == registry_url.host_str() => req.bearer_auth(&t.0),
        _ => req,
    };
    let doc_url = reqwest::Url::parse(&format!("{registry}/{}", name.replacen('/', "%2f", 1)))
        .map_err(|e| SourceError::BadRequest(format!("bad package URL: {e}")))?;
    let resp = auth(client.get(doc_url.clone()), &doc_url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| SourceError::Fetch(format!("npm registry {registry} unreachable: {e}")))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(SourceError::NotFound(format!(
            "npm package {name} not found in {registry}"
        )));
    }
    if !resp.status().is_success() {
        return Err(SourceError::Fetch(format!(
            "npm registry {registry} answered {} for {name}",
            resp.status()
        )));
    }
    let doc: serde_json::Value = read_limited(resp, 16 << 20)
        .await
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| SourceError::Fetch(format!("reading the package document of {name}: {e}")))?;
    let version = resolve_npm_version(&doc, spec).ok_or_else(|| {
        SourceError::NotFound(format!(
            "npm package {name} has no version matching {:?} in {registry}",
            spec.unwrap_or("latest")
        ))
    })?;
    let dist = &doc["versions"][&version]["dist"];
    let tarball = dist["tarball"]
        .as_str()
        .and_then(|t| reqwest::Url::parse(t).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| SourceError::Fetch(format!("{name}@{version} has no tarball URL")))?;
    let integrity = dist["integrity"].as_str().unwrap_or_default().to_string();
    let resp = auth(client.get(tarball.clone()), &tarball)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| SourceError::Fetch(format!("downloading {name}@{version}: {e}")))?;
    let bytes = read_limited(resp, MAX_UPLOAD_BYTES)
        .await
        .map_err(|e| SourceError::Fetch(format!("downloading {name}@{version}: {e}")))?;
    check_integrity(&bytes, &integrity)
        .map_err(|e| SourceError::Fetch(format!("{name}@{version}: {e}")))?;
    let dir = staging.to_path_buf();
    let pkg = blocking(move || PluginPackage::from_tgz(&bytes, &dir)).await?;
    Ok(Fetched {
        pkg,
        source: InstallSource {
            kind: "npm",
            reference: Some(format!("{name}@{version}")),
            commit: None,
        },
    })
}

/// Reads a response body, refusing more than `limit` bytes.
async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("larger than {limit} bytes"));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > limit {
            return Err(format!("larger than {limit} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// git

/// Environment variables a git or cargo child process keeps; everything else (the admin
/// token, the encryption key, registry and model keys) is removed, so a repository's build
/// scripts cannot read the host's secrets from their environment.
const CHILD_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "TMPDIR",
    "SSH_AUTH_SOCK",
    "GIT_SSH_COMMAND",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
];

/// A child process with only [`CHILD_ENV`] from the host's environment.
fn child(program: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env_clear();
    for key in CHILD_ENV {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    cmd
}

fn git_command(args: &[&str]) -> tokio::process::Command {
    let mut cmd = child("git");
    cmd.args([
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "protocol.ext.allow=never",
        "-c",
        "advice.detachedHead=false",
    ])
    .args(args)
    .env("GIT_TERMINAL_PROMPT", "0")
    .env("GIT_ALLOW_PROTOCOL", "https:http:ssh:git:file")
    .env("GIT_CONFIG_NOSYSTEM", "1");
    cmd
}

/// Runs a command with a deadline; returns stdout, or stderr's tail as the error.
async fn run(mut cmd: tokio::process::Command, what: &str) -> Result<String, SourceError> {
    let out = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
        .await
        .map_err(|_| SourceError::Fetch(format!("{what} took longer than {GIT_TIMEOUT:?}")))?
        .map_err(|e| SourceError::Fetch(format!("{what}: could not run it: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(SourceError::Fetch(format!(
            "{what} failed ({}): {}",
            out.status,
            tail.join("\n")
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Splits `url#ref` and checks both are safe to pass to git.
fn git_target<'a>(
    reference: &'a str,
    options: &'a SourceOptions,
) -> Result<(&'a str, Option<&'a str>), SourceError> {
    let (url, frag) = match reference.rsplit_once('#') {
        Some((u, r)) => (u, Some(r)),
        None => (reference, None),
    };
    let git_ref = options
        .git_ref
        .as_deref()
        .or(frag)
        .filter(|r| !r.is_empty());
    let scheme_ok = ["https://", "http://", "ssh://", "git://", "file://"]
        .iter()
        .any(|s| url.starts_with(s))
        || (url.starts_with('/') && !url.contains("::"));
    if !scheme_ok || url.starts_with('-') {
        return Err(SourceError::BadRequest(format!(
            "{url:?} is not a git URL this host clones (https://, http://, ssh://, git://, file:// or an absolute path)"
        )));
    }
    if let Some(r) = git_ref
        && (r.starts_with('-')
            || r.contains("..")
            || !r
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._/+".contains(&b)))
    {
        return Err(SourceError::BadRequest(format!(
            "{r:?} is not a branch, tag or commit name"
        )));
    }
    Ok((url, git_ref))
}

async fn git(
    ctx: &Plugins,
    reference: &str,
    options: &SourceOptions,
    staging: &Path,
) -> Result<Fetched, SourceError> {
    let (url, git_ref) = git_target(reference, options)?;
    let checkout = staging.join("repo");
    tokio::fs::create_dir_all(staging)
        .await
        .map_err(PackageError::Io)?;
    let dest = checkout.to_string_lossy().into_owned();
    run(
        git_command(&["clone", "--quiet", "--no-checkout", "--", url, &dest]),
        &format!("git clone {url}"),
    )
    .await?;
    let commit = match git_ref {
        None => {
            run(
                git_command(&["-C", &dest, "rev-parse", "HEAD^{commit}"]),
                "git rev-parse",
            )
            .await?
        }
        Some(r) => {
            let mut found = None;
            for candidate in [format!("{r}^{{commit}}"), format!("origin/{r}^{{commit}}")] {
                if let Ok(sha) = run(
                    git_command(&["-C", &dest, "rev-parse", "--verify", "--quiet", &candidate]),
                    "git rev-parse",
                )
                .await
                {
                    found = Some(sha);
                    break;
                }
            }
            found.ok_or_else(|| {
                SourceError::NotFound(format!("{url} has no branch, tag or commit {r:?}"))
            })?
        }
    };
    run(
        git_command(&["-C", &dest, "checkout", "--quiet", "--detach", &commit]),
        "git checkout",
    )
    .await?;
    let dir = match options.path.as_deref().filter(|p| !p.is_empty()) {
        None => checkout.clone(),
        Some(p) if nitejar_sandbox::manifest::safe_relative_path(p) => checkout.join(p),
        Some(p) => {
            return Err(SourceError::BadRequest(format!(
                "path {p:?} must be a relative path inside the repository"
            )));
        }
    };
    if !dir.join(MANIFEST_FILE).is_file() {
        return Err(SourceError::Package(PackageError::Invalid(format!(
            "{url} at {commit} has no {MANIFEST_FILE}{}",
            options
                .path
                .as_deref()
                .map(|p| format!(" in {p}"))
                .unwrap_or_default()
        ))));
    }
    build_if_needed(ctx, &dir, staging).await?;
    let read = dir.clone();
    let pkg = blocking(move || PluginPackage::from_dir(&read)).await?;
    let mut shown = url.to_string();
    if let Some(r) = git_ref {
        shown = format!("{shown}#{r}");
    }
    Ok(Fetched {
        pkg,
        source: InstallSource {
            kind: "git",
            reference: Some(shown),
            commit: Some(commit),
        },
    })
}

/// Builds the component with cargo when the entry is missing and the directory is a cargo
/// project (only in `self_host_open`, with the toolchain and target present).
async fn build_if_needed(ctx: &Plugins, dir: &Path, staging: &Path) -> Result<(), SourceError> {
    let text = std::fs::read(dir.join(MANIFEST_FILE)).map_err(PackageError::Io)?;
    let manifest = nitejar_sandbox::manifest::Manifest::parse(&text).map_err(PackageError::from)?;
    let entry = dir.join(manifest.entry.trim_start_matches("./"));
    if entry.exists() {
        return Ok(());
    }
    let missing = |why: &str| {
        SourceError::Package(PackageError::Invalid(format!(
            "the repository has no built component at {} and {why}; commit the built component (cargo build --release --target wasm32-wasip2) or publish the package to npm",
            manifest.entry
        )))
    };
    if !dir.join("Cargo.toml").is_file() {
        return Err(missing("is not a cargo project"));
    }
    if ctx.config.trust.mode != TrustMode::SelfHostOpen {
        return Err(missing(
            "building from source runs the project's build scripts on the host, which only self_host_open allows",
        ));
    }
    if !ctx.config.git_build {
        return Err(missing(
            "building from source is turned off (NITEJAR_PLUGIN_GIT_BUILD=0)",
        ));
    }
    let manifest_path = dir.join("Cargo.toml").to_string_lossy().into_owned();
    let target_dir = staging.join("target");
    let mut meta = child("cargo");
    meta.args([
        "metadata",
        "--no-deps",
        "--format-version",
        "1",
        "--manifest-path",
        &manifest_path,
    ]);
    let meta = match run(meta, "cargo metadata").await {
        Ok(m) => m,
        Err(SourceError::Fetch(e)) if e.contains("could not run it") => {
            return Err(missing("cargo is not installed on this host"));
        }
        Err(e) => return Err(e),
    };
    let meta: serde_json::Value = serde_json::from_str(&meta)
        .map_err(|e| SourceError::Fetch(format!("cargo metadata output: {e}")))?;
    let manifest_real = std::fs::canonicalize(dir.join("Cargo.toml")).map_err(PackageError::Io)?;
    let target_name = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["manifest_path"]
                .as_str()
                .and_then(|m| std::fs::canonicalize(m).ok())
                .is_some_and(|m| m == manifest_real)
        })
        .and_then(|p| {
            p["targets"].as_array()?.iter().find(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "cdylib" || k == "bin"))
            })
        })
        .and_then(|t| t["name"].as_str())
        .map(|n| n.replace('-', "_"))
        .ok_or_else(|| missing("its Cargo.toml has no cdylib or bin target"))?;
    let mut build = child("cargo");
    build
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
            &manifest_path,
        ])
        .env("CARGO_TARGET_DIR", &target_dir);
    run(build, "cargo build --release --target wasm32-wasip2").await?;
    let built = target_dir
        .join("wasm32-wasip2")
        .join("release")
        .join(format!("{target_name}.wasm"));
    if let Some(parent) = entry.parent() {
        std::fs::create_dir_all(parent).map_err(PackageError::Io)?;
    }
    std::fs::copy(&built, &entry).map_err(|e| {
        SourceError::Fetch(format!("the build produced no {}: {e}", built.display()))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_specs_split_and_resolve() {
        assert_eq!(split_npm_spec("a-b").unwrap(), ("a-b", None));
        assert_eq!(split_npm_spec("a@1.2.3").unwrap(), ("a", Some("1.2.3")));
        assert_eq!(split_npm_spec("@s/a").unwrap(), ("@s/a", None));
        assert_eq!(split_npm_spec("@s/a@^1").unwrap(), ("@s/a", Some("^1")));
        for bad in ["", "A", "../x", "@s", "@/a", "a b", "@s/a/b"] {
            assert!(split_npm_spec(bad).is_err(), "{bad}");
        }
        let doc = serde_json::json!({
            "dist-tags": {"latest": "1.1.0", "next": "2.0.0-rc.1"},
            "versions": {"1.0.0": {}, "1.1.0": {}, "1.2.0": {}, "2.0.0-rc.1": {}}
        });
        assert_eq!(resolve_npm_version(&doc, None).unwrap(), "1.1.0");
        assert_eq!(
            resolve_npm_version(&doc, Some("next")).unwrap(),
            "2.0.0-rc.1"
        );
        assert_eq!(resolve_npm_version(&doc, Some("1.0.0")).unwrap(), "1.0.0");
        assert_eq!(resolve_npm_version(&doc, Some("^1.0.0")).unwrap(), "1.2.0");
        assert_eq!(
            resolve_npm_version(&doc, Some(">=1.0.0 <1.2.0")).unwrap(),
            "1.1.0"
        );
        assert_eq!(resolve_npm_version(&doc, Some("^3")), None);
    }

    #[test]
    fn integrity_is_checked() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let good = format!("sha512-{}", b64.encode(sha2::Sha512::digest(b"tgz")));
        assert!(check_integrity(b"tgz", &good).is_ok());
        assert!(check_integrity(b"tampered", &good).is_err());
        assert!(check_integrity(b"tgz", "").is_err());
        assert!(check_integrity(b"tgz", "sha1-abc").is_err());
    }

    #[test]
    fn git_targets_refuse_option_injection() {
        let none = SourceOptions::default();
        assert_eq!(
            git_target("https://h/r.git#v1", &none).unwrap(),
            ("https://h/r.git", Some("v1"))
        );
        assert!(git_target("--upload-pack=x", &none).is_err());
        assert!(git_target("ext::sh -c x", &none).is_err());
        assert!(git_target("relative/path", &none).is_err());
        assert!(git_target("https://h/r#--force", &none).is_err());
        let opts = SourceOptions {
            git_ref: Some("feature/a".into()),
            ..Default::default()
        };
        assert_eq!(git_target("/srv/r", &opts).unwrap().1, Some("feature/a"));
    }
}
