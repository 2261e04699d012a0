//! Install-source stand-ins: a local npm registry (the registry protocol: package documents and
//! tarballs with `dist.integrity`) and local git repositories made with the real `git`.

use base64::Engine as _;
use serde_json::json;
use sha2::Digest;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// Packs a package directory as npm does: every file under `package/` in a gzipped tar.
pub fn npm_tgz(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    b.append_dir_all("package", dir).unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

#[derive(Default)]
struct Registry {
    /// name -> version -> tarball bytes.
    packages: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// name -> dist-tag -> version.
    tags: BTreeMap<String, BTreeMap<String, String>>,
    /// Versions served with a wrong integrity (a tampered mirror).
    corrupt: Vec<(String, String)>,
    /// Authorization headers seen.
    auth: Vec<Option<String>>,
}

/// A local npm registry started by a test.
pub struct NpmRegistry {
    /// Base URL (`http://127.0.0.1:port`).
    pub url: String,
    state: Arc<Mutex<Registry>>,
}

impl NpmRegistry {
    /// Starts an empty registry on a free loopback port.
    pub async fn start() -> NpmRegistry {
        let state: Arc<Mutex<Registry>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let st = state.clone();
        let base = url.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let st = st.clone();
            let base = base.clone();
            async move {
                let path = percent_decode(req.uri().path());
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string);
                let mut reg = st.lock().unwrap();
                reg.auth.push(auth);
                let not_found = || {
                    axum::response::IntoResponse::into_response((
                        axum::http::StatusCode::NOT_FOUND,
                        axum::Json(json!({"error": "Not found"})),
                    ))
                };
                // Tarballs: /<name>/-/<file>-<version>.tgz
                if let Some((name, file)) = path.trim_start_matches('/').split_once("/-/") {
                    let version = file
                        .trim_end_matches(".tgz")
                        .rsplit_once('-')
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_default();
                    return match reg.packages.get(name).and_then(|v| v.get(&version)) {
                        Some(bytes) => axum::response::IntoResponse::into_response(bytes.clone()),
                        None => not_found(),
                    };
                }
                let name = path.trim_start_matches('/');
                let Some(versions) = reg.packages.get(name) else {
                    return not_found();
                };
                let basename = name.rsplit('/').next().unwrap_or(name);
                let mut vs = serde_json::Map::new();
                for (v, bytes) in versions {
                    let mut integrity = format!(
                        "sha512-{}",
                        base64::engine::general_purpose::STANDARD
                            .encode(sha2::Sha512::digest(bytes))
                    );
                    if reg.corrupt.contains(&(name.to_string(), v.clone())) {
                        integrity = format!(
                            "sha512-{}",
                            base64::engine::general_purpose::STANDARD
                                .encode(sha2::Sha512::digest(b"something else"))
                        );
                    }
                    vs.insert(
                        v.clone(),
                        json!({
                            "name": name, "version": v,
                            "scripts": {"postinstall": "echo pwned > /tmp/nitejar-npm-pwned"},
                            "dist": {
                                "tarball": format!("{base}/{name}/-/{basename}-{v}.tgz"),
                                "integrity": integrity,
                            }
                        }),
                    );
                }
                let tags = reg.tags.get(name).cloned().unwrap_or_default();
                axum::response::IntoResponse::into_response(axum::Json(json!({
                    "name": name, "dist-tags": tags, "versions": vs,
                })))
            }
        });
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        NpmRegistry { url, state }
    }

    /// Publishes `dir` as `name@version` (the `latest` tag follows the highest version).
    pub fn publish(&self, name: &str, version: &str, dir: &Path) {
        let mut reg = self.state.lock().unwrap();
        reg.packages
            .entry(name.into())
            .or_default()
            .insert(version.into(), npm_tgz(dir));
        let latest = reg.packages[name]
            .keys()
            .max_by(|a, b| {
                let p =
                    |s: &str| -> Vec<u64> { s.split('.').filter_map(|x| x.parse().ok()).collect() };
                p(a).cmp(&p(b))
            })
            .cloned()
            .unwrap();
        reg.tags
            .entry(name.into())
            .or_default()
            .insert("latest".into(), latest);
    }

    /// Serves `name@version` with an integrity that does not match its tarball.
    pub fn corrupt(&self, name: &str, version: &str) {
        self.state
            .lock()
            .unwrap()
            .corrupt
            .push((name.into(), version.into()));
    }

    /// Authorization headers of every request so far.
    pub fn auth_headers(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().auth.clone()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A local git repository made with the real `git` binary.
pub struct GitRepo {
    /// The repository directory (its work tree).
    pub dir: tempfile::TempDir,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl GitRepo {
    /// An empty repository on branch `main`.
    pub fn new() -> GitRepo {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "--quiet"]);
        GitRepo { dir }
    }

    /// Replaces the work tree's content under `subdir` ("" = root) with the files of `package`,
    /// commits, and returns the commit id.
    pub fn commit_package(&self, subdir: &str, package: &Path, message: &str) -> String {
        let target = self.dir.path().join(subdir);
        std::fs::create_dir_all(&target).unwrap();
        copy_dir(package, &target);
        git(self.dir.path(), &["add", "-A"]);
        git(self.dir.path(), &["commit", "--quiet", "-m", message]);
        git(self.dir.path(), &["rev-parse", "HEAD"])
    }

    /// Writes one file, commits, returns the commit id.
    pub fn commit_file(&self, rel: &str, content: &[u8], message: &str) -> String {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        git(self.dir.path(), &["add", "-A"]);
        git(self.dir.path(), &["commit", "--quiet", "-m", message]);
        git(self.dir.path(), &["rev-parse", "HEAD"])
    }

    /// Tags HEAD.
    pub fn tag(&self, name: &str) {
        git(self.dir.path(), &["tag", name]);
    }

    /// Runs any git command in the repository.
    pub fn git(&self, args: &[&str]) -> String {
        git(self.dir.path(), args)
    }

    /// The URL to clone it from.
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }
}

impl Default for GitRepo {
    fn default() -> Self {
        Self::new()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}
