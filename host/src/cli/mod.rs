//! The operator CLI: `nitejar plugin|instance|skill|run ...`, a client of the admin API (spec §16).
//!
//! Every command talks to a running server (`--url`, default `http://127.0.0.1:3000`) with the
//! admin token (`--token`, `NITEJAR_ADMIN_TOKEN`, else the `admin-token` file of the data
//! directory). Output is a readable table or, with `--json`, the API's JSON. Exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | refused: the server said no (4xx), a connection test failed, bad input |
//! | 2 | usage error (unknown command or flag) |
//! | 3 | the server is unreachable or failed (5xx, unexpected answer) |
//! | 4 | consent needed: run interactively or pass `--yes` |
//!
//! Instance configs are built from the type's JSON Schema (`GET /integration-types`), with no
//! per-type code: `--set key=value` (typed by the schema; `key=@file` reads a file), and prompts
//! for missing required fields on a terminal (sensitive fields without echo).

mod client;
mod form;
mod render;

use client::{CliError, Client};
use nitejar_api::instances::{
    ConnectionCheck, CreateInstanceRequest, Instance, InstanceList, IntegrationTypeList,
    UpdateInstanceRequest,
};
use nitejar_api::lifecycle::{
    ApproveRequest, HealthReport, InstallReport, InstallRequest, PluginHealth, Preview,
    ReloadReport, RollbackRequest, RollbackResponse, SourceOptions, UninstallRequest,
    UninstallResponse, UpgradeReport, VersionList,
};
use nitejar_api::plugins::{
    EnableRequest, EnableResponse, EventPage, GrantRequest, GrantResponse, LimitsRequest,
    LimitsResponse, PluginDetail, PluginList, RevokeResponse,
};
use nitejar_api::skills::{
    AssignSkillRequest, CreateSkillRequest, Skill, SkillList, SyncReport, UpdateSkillRequest,
};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;

/// Where and how to reach the server.
#[derive(clap::Args, Debug, Clone)]
pub struct Connection {
    /// Server base URL.
    #[arg(
        long,
        env = "NITEJAR_URL",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    pub url: String,
    /// Admin token (default: $NITEJAR_ADMIN_TOKEN, $SLOPBOT_ADMIN_TOKEN, else
    /// <data-dir>/admin-token).
    #[arg(long, global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Data directory holding `admin-token` (default: $NITEJAR_DATA_DIR or ./data).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Never prompt (missing input is an error; consent needs `--yes`).
    #[arg(long, global = true)]
    pub no_input: bool,
}

/// Client commands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ClientCommand {
    /// Installed plugins: list, show, install, enable, disable, upgrade, rollback, versions,
    /// uninstall, logs.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Integration instances (configured connections).
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Agent runs.
    #[command(subcommand)]
    Run(RunCommand),
    /// Skills: list, show, assign, admin skills.
    #[command(subcommand)]
    Skill(SkillCommand),
    /// Bring another product's data here.
    #[command(subcommand)]
    Import(ImportCommand),
}

/// `nitejar import ...`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ImportCommand {
    /// Import a Nitejar database: integration instances (same ids, types, config blobs and
    /// webhook URLs), agent assignments, work items and idempotency keys; lists the
    /// third-party plugins installed there. Safe to run again: rows already here are left as
    /// they are.
    Nitejar {
        /// The Nitejar database: a SQLite file (a path on the server's machine) or a
        /// `postgres://user:password@host:port/database` URL.
        #[arg(long)]
        from: String,
        /// Only show what would be done.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `nitejar skill ...`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum SkillCommand {
    /// List skills (filter by source, or by an assignment scope and ref).
    List {
        /// `repo`, `plugin` or `admin`.
        #[arg(long)]
        source: Option<String>,
        /// `global`, `team`, `agent` or `integration_type`.
        #[arg(long)]
        scope: Option<String>,
        /// The scope's team name, agent id or integration type.
        #[arg(long = "ref")]
        scope_ref: Option<String>,
    },
    /// Show a skill with its content and files.
    Show {
        /// Stable skill id.
        id: String,
    },
    /// Assign a skill to a scope (setSkillAssignment).
    Assign {
        /// Stable skill id.
        id: String,
        /// `global`, `team`, `agent` or `integration_type`.
        #[arg(long)]
        scope: String,
        /// The team name, agent id or integration type (none for global).
        #[arg(long = "ref", default_value = "")]
        scope_ref: String,
    },
    /// Remove an assignment.
    Unassign {
        /// Stable skill id.
        id: String,
        /// Scope.
        #[arg(long)]
        scope: String,
        /// Scope ref.
        #[arg(long = "ref", default_value = "")]
        scope_ref: String,
    },
    /// Create an admin skill (content inline or `@file`).
    Create {
        /// Name (the `use_skill` alias).
        #[arg(long)]
        name: String,
        /// One-line description.
        #[arg(long, default_value = "")]
        description: String,
        /// Markdown content, or `@path`.
        #[arg(long)]
        content: String,
    },
    /// Enable a skill.
    Enable {
        /// Stable skill id.
        id: String,
    },
    /// Disable a skill.
    Disable {
        /// Stable skill id.
        id: String,
    },
    /// Delete an admin skill.
    Delete {
        /// Stable skill id.
        id: String,
    },
    /// Re-read the repository skills directory.
    Sync,
}

/// `nitejar plugin ...`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum PluginCommand {
    /// List installed plugins.
    List,
    /// Show one plugin: permissions, grants, posture.
    Show {
        /// Plugin id.
        id: String,
    },
    /// Preview, then install a package. Installed plugins start disabled.
    Install {
        /// Where the package comes from.
        #[command(flatten)]
        source: SourceArgs,
        /// Only show the preview (identity, permissions, contributions, trust); install nothing.
        #[arg(long)]
        preview: bool,
    },
    /// Create a signing key for packages (`nitejar plugin sign`); prints the public key to
    /// put in the server's NITEJAR_PLUGIN_TRUSTED_KEYS. Local: no server needed.
    Keygen {
        /// Where to write the private key (created with mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a package directory: writes `nitejar.plugin.sig` covering the manifest, the
    /// component and the packaged files. Local: no server needed.
    Sign {
        /// Package directory.
        dir: PathBuf,
        /// Private key file from `nitejar plugin keygen`.
        #[arg(long)]
        key: PathBuf,
    },
    /// Make a self-contained `.wasm` (the manifest embedded in a custom section) from a package
    /// directory, for upload. Local: no server needed.
    Pack {
        /// Package directory.
        dir: PathBuf,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Grant the declared permissions and enable (asks for consent unless `--yes`).
    Enable {
        /// Plugin id.
        id: String,
        /// Consent without asking (for scripts).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Disable: stops the plugin at once.
    Disable {
        /// Plugin id.
        id: String,
    },
    /// Withdraw grants of declared permissions (a loaded plugin is reloaded without them).
    Revoke {
        /// Plugin id.
        id: String,
        /// Permissions to withdraw, as `plugin show` lists them (`network:...`, `secret:...`).
        #[arg(required = true)]
        permissions: Vec<String>,
    },
    /// Set the plugin's instruction budget per call (wasmtime fuel), overriding its manifest
    /// and the host's defaults; `--default` removes the override. `plugin show` prints the
    /// budget in force and what its calls used.
    Limits {
        /// Plugin id.
        id: String,
        /// Instructions each call may use (1 to the host's maximum).
        #[arg(long, conflicts_with = "default", required_unless_present = "default")]
        fuel_per_call: Option<u64>,
        /// Remove the override (back to the manifest's value or the defaults).
        #[arg(long)]
        default: bool,
    },
    /// Upgrade to a newer version (default: from the source it was installed from: npm's
    /// newest release, the git ref again, the same directory); asks for consent when it adds
    /// permissions (unless `--yes`).
    Upgrade {
        /// Plugin id.
        id: String,
        /// Where the new version comes from.
        #[command(flatten)]
        source: OptionalSourceArgs,
        /// Consent to the added permissions without asking.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Re-read a plugin installed from a local directory (after rebuilding it, same version).
    Reload {
        /// Plugin id.
        id: String,
    },
    /// Roll back to an installed version (default: the newest one older than the active one).
    Rollback {
        /// Plugin id.
        id: String,
        /// Version to activate.
        #[arg(long, alias = "to")]
        version: Option<String>,
    },
    /// Health of one plugin or all: load status, grants, files, checksums, cache, and what to
    /// do about each problem (exit 1 when something is wrong).
    Doctor {
        /// Plugin id (default: every plugin).
        id: Option<String>,
    },
    /// Installed versions, the active and the pending one.
    Versions {
        /// Plugin id.
        id: String,
    },
    /// Uninstall (receipts, instances and work items stay).
    Uninstall {
        /// Plugin id.
        id: String,
        /// Also remove every installed version's files.
        #[arg(long)]
        purge_files: bool,
        /// Also remove the plugin's stored data, secret values and file areas.
        #[arg(long)]
        purge_data: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Receipts, newest first.
    Logs {
        /// Plugin id.
        id: String,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// Options naming where a package comes from.
#[derive(clap::Args, Debug, Clone)]
pub struct SourceArgs {
    /// A directory (read by the server, which must see the same path), a `.tgz`/`.wasm` file
    /// (uploaded), an npm package (`npm:name@range`, or a bare name), or a git repository
    /// (`git+https://...`, a URL ending in `.git`, or any URL with `--git`; `#ref` selects a
    /// branch, tag or commit).
    pub source: String,
    /// How to read it.
    #[command(flatten)]
    pub options: SourceFlags,
}

/// [`SourceArgs`] where the source may be left out.
#[derive(clap::Args, Debug, Clone)]
pub struct OptionalSourceArgs {
    /// As for install; default: the source the plugin was installed from.
    pub source: Option<String>,
    /// How to read it.
    #[command(flatten)]
    pub options: SourceFlags,
}

/// Flags that shape how a source is read.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SourceFlags {
    /// Treat the source as an npm package.
    #[arg(long, conflicts_with = "git")]
    pub npm: bool,
    /// Treat the source as a git repository URL.
    #[arg(long)]
    pub git: bool,
    /// git: branch, tag or commit.
    #[arg(long = "ref")]
    pub git_ref: Option<String>,
    /// git: the package directory inside the repository.
    #[arg(long)]
    pub subdir: Option<String>,
    /// npm: registry URL (default: the server's NITEJAR_NPM_REGISTRY).
    #[arg(long)]
    pub registry: Option<String>,
}

/// A source as the CLI resolved it.
#[derive(Debug, PartialEq)]
enum Source {
    /// A file to upload.
    Upload(PathBuf),
    /// `sourceKind` + `sourceRef` for the server.
    Remote(&'static str, String),
}

/// Decides what kind of source `s` is (see [`SourceArgs`]).
fn resolve_source(s: &str, flags: &SourceFlags) -> Result<Source, CliError> {
    if flags.npm {
        return Ok(Source::Remote(
            "npm",
            s.trim_start_matches("npm:").to_string(),
        ));
    }
    if let Some(rest) = s.strip_prefix("npm:") {
        return Ok(Source::Remote("npm", rest.to_string()));
    }
    if let Some(rest) = s.strip_prefix("git+") {
        return Ok(Source::Remote("git", rest.to_string()));
    }
    let url_like = s.contains("://");
    let base = s.split('#').next().unwrap_or(s);
    if flags.git || (url_like && (base.ends_with(".git") || !base.contains("registry"))) {
        return Ok(Source::Remote("git", s.to_string()));
    }
    let path = PathBuf::from(s);
    if path.is_dir() {
        let abs = std::fs::canonicalize(&path).map_err(|e| CliError::Local(format!("{s}: {e}")))?;
        return Ok(Source::Remote("local", abs.to_string_lossy().into_owned()));
    }
    if path.is_file() {
        return Ok(Source::Upload(path));
    }
    let npm_name = |n: &str| {
        !n.is_empty()
            && n.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~@/^<>=*|x ".contains(&b)
            })
    };
    if (!s.contains(std::path::MAIN_SEPARATOR) || s.starts_with('@')) && npm_name(s) {
        return Ok(Source::Remote("npm", s.to_string()));
    }
    Err(CliError::Local(format!(
        "{s}: no such file or directory, and not an npm package name or git URL (use npm:<name>, git+<url>, --npm or --git)"
    )))
}

fn source_options(flags: &SourceFlags) -> SourceOptions {
    SourceOptions {
        registry: flags.registry.clone(),
        git_ref: flags.git_ref.clone(),
        path: flags.subdir.clone(),
    }
}

fn busy_message(kind: &str) -> &'static str {
    match kind {
        "npm" => {
            "downloading from the npm registry; the server validates and compiles the component"
        }
        "git" => {
            "cloning (and building when needed); the server validates and compiles the component"
        }
        _ => "the server reads, validates and compiles the component",
    }
}

/// Sends `source` to `path` (JSON) or `upload_path` (file body); reads the answer as `T`.
async fn send_source<T: serde::de::DeserializeOwned>(
    client: &Client,
    conn: &Connection,
    source: &Source,
    flags: &SourceFlags,
    path: &str,
    upload_path: &str,
) -> Result<T, CliError> {
    client::decode(match source {
        Source::Upload(file) => {
            let bytes = std::fs::read(file)
                .map_err(|e| CliError::Local(format!("{}: {e}", file.display())))?;
            client.upload(upload_path, bytes, !conn.json).await
        }
        Source::Remote(kind, reference) => {
            let request = InstallRequest {
                source_kind: Some(kind.to_string()),
                source_ref: Some(reference.to_string()),
                options: source_options(flags),
            };
            client
                .post_busy(path, &to_json(&request)?, !conn.json, busy_message(kind))
                .await
        }
    }?)
}

/// A request of the API contract as JSON.
fn to_json(request: &impl serde::Serialize) -> Result<Value, CliError> {
    serde_json::to_value(request)
        .map_err(|e| CliError::Local(format!("encoding the request failed: {e}")))
}

/// Local package commands (no server): keygen, sign, pack.
fn local_plugin_command(
    command: &PluginCommand,
    out: &mut dyn Write,
) -> Option<Result<(), CliError>> {
    use nitejar_core::plugins::{package, trust};
    let local = |e: String| CliError::Local(e);
    Some(match command {
        PluginCommand::Keygen { out: path } => (|| {
            let key = trust::generate_key();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(path).map_err(|e| {
                local(format!(
                    "{}: {e} (keys are never overwritten)",
                    path.display()
                ))
            })?;
            writeln!(f, "{}", trust::encode_signing_key(&key)).map_err(|e| local(e.to_string()))?;
            writeln!(
                out,
                "wrote {}\npublic key (add it to NITEJAR_PLUGIN_TRUSTED_KEYS on the server): {}",
                path.display(),
                trust::encode_public_key(&key.verifying_key())
            )
            .map_err(|e| local(e.to_string()))
        })(),
        PluginCommand::Sign { dir, key } => (|| {
            let text = std::fs::read_to_string(key)
                .map_err(|e| local(format!("{}: {e}", key.display())))?;
            let key = trust::parse_signing_key(&text).map_err(local)?;
            let pkg = package::PluginPackage::from_dir(dir).map_err(|e| local(e.to_string()))?;
            let sig = trust::sign(&pkg, &key);
            let path = dir.join(trust::SIGNATURE_FILE);
            std::fs::write(
                &path,
                serde_json::to_vec_pretty(&sig).expect("signature serializes"),
            )
            .map_err(|e| local(format!("{}: {e}", path.display())))?;
            writeln!(
                out,
                "signed {} {} (component sha256 {}) -> {}",
                pkg.manifest.id,
                pkg.manifest.version,
                pkg.digest,
                path.display()
            )
            .map_err(|e| local(e.to_string()))
        })(),
        PluginCommand::Pack { dir, out: path } => (|| {
            let pkg = package::PluginPackage::from_dir(dir).map_err(|e| local(e.to_string()))?;
            let wasm = package::embed_manifest(&pkg.wasm, &pkg.manifest_json);
            std::fs::write(path, &wasm).map_err(|e| local(format!("{}: {e}", path.display())))?;
            writeln!(
                out,
                "packed {} {} -> {} ({} bytes)",
                pkg.manifest.id,
                pkg.manifest.version,
                path.display(),
                wasm.len()
            )
            .map_err(|e| local(e.to_string()))
        })(),
        _ => return None,
    })
}

/// `nitejar instance ...`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum InstanceCommand {
    /// Integration types and their config fields.
    Types,
    /// List instances (secrets redacted).
    List,
    /// Show one instance.
    Show {
        /// Instance id.
        id: String,
    },
    /// Create an instance from the type's schema (enabled after a passing connection test).
    Create {
        /// Integration type, e.g. `telegram`.
        integration_type: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// A config field: `key=value` (typed by the schema) or `key=@file`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Store it disabled (no connection test).
        #[arg(long)]
        disabled: bool,
    },
    /// Change name or config fields (others, secrets included, stay as stored).
    Update {
        /// Instance id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// A config field to set.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A config field to remove.
        #[arg(long = "unset", value_name = "KEY")]
        unset: Vec<String>,
    },
    /// Enable (after a passing connection test).
    Enable {
        /// Instance id.
        id: String,
    },
    /// Disable (webhooks answer 404).
    Disable {
        /// Instance id.
        id: String,
    },
    /// Test the stored config against the platform.
    Test {
        /// Instance id.
        id: String,
    },
    /// Delete (work items and runs stay).
    Delete {
        /// Instance id.
        id: String,
    },
}

/// `nitejar run ...`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum RunCommand {
    /// A work item's run: steps, every receipt in order, delivery.
    Show {
        /// Work item id.
        work_item_id: String,
    },
}

/// Runs a client command, writing to `out`; returns the process exit code.
pub async fn run(conn: &Connection, command: ClientCommand, out: &mut dyn Write) -> i32 {
    let result = async {
        if let ClientCommand::Plugin(c) = &command
            && let Some(done) = local_plugin_command(c, out)
        {
            return done;
        }
        let client = Client::new(conn)?;
        match command {
            ClientCommand::Plugin(c) => plugin(&client, conn, c, out).await,
            ClientCommand::Instance(c) => instance(&client, conn, c, out).await,
            ClientCommand::Skill(c) => skill(&client, conn.json, c, out).await,
            ClientCommand::Import(ImportCommand::Nitejar { from, dry_run }) => {
                // The server opens the file: a path that exists here is made absolute (the
                // server's working directory is not the caller's). A URL is passed as it is.
                let from = (!from.contains("://"))
                    .then(|| std::fs::canonicalize(&from).ok())
                    .flatten()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or(from);
                let v: nitejar_api::import::ImportReport = client
                    .post_as(
                        "/import/nitejar",
                        &nitejar_api::import::ImportRequest { from, dry_run },
                    )
                    .await?;
                emit_typed(out, conn.json, &v, render::import)
            }
            ClientCommand::Run(RunCommand::Show { work_item_id }) => {
                let v: nitejar_api::runs::RunView = client
                    .get_as(&format!("/work-items/{}/run", client::seg(&work_item_id)))
                    .await?;
                emit_typed(out, conn.json, &v, render::run)
            }
        }
    }
    .await;
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            e.exit_code()
        }
    }
}

/// Prints an answer of the API contract's type: as JSON with `--json`, else as `table`.
fn emit_typed<T: serde::Serialize>(
    out: &mut dyn Write,
    json: bool,
    v: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<(), CliError> {
    let text = if json {
        serde_json::to_string_pretty(v).unwrap_or_default()
    } else {
        table(v)
    };
    writeln!(out, "{}", text.trim_end()).map_err(|e| CliError::Local(e.to_string()))
}

fn emit(
    out: &mut dyn Write,
    json: bool,
    v: &Value,
    table: impl FnOnce(&Value) -> String,
) -> Result<(), CliError> {
    let text = if json {
        serde_json::to_string_pretty(v).unwrap_or_default()
    } else {
        table(v)
    };
    writeln!(out, "{}", text.trim_end()).map_err(|e| CliError::Local(e.to_string()))
}

async fn skill(
    client: &Client,
    json: bool,
    command: SkillCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let one = |id: &str| format!("/skills/{}", client::seg(id));
    match command {
        SkillCommand::List {
            source,
            scope,
            scope_ref,
        } => {
            let mut q = Vec::new();
            for (k, v) in [("source", source), ("scope", scope), ("ref", scope_ref)] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", client::seg(&v)));
                }
            }
            let path = if q.is_empty() {
                "/skills".to_string()
            } else {
                format!("/skills?{}", q.join("&"))
            };
            emit_typed(
                out,
                json,
                &client.get_as::<SkillList>(&path).await?,
                render::skills,
            )
        }
        SkillCommand::Show { id } => emit_typed(
            out,
            json,
            &client.get_as::<Skill>(&one(&id)).await?,
            render::skill,
        ),
        SkillCommand::Assign {
            id,
            scope,
            scope_ref,
        } => set_assignment(client, json, out, &one(&id), &scope, &scope_ref, true).await,
        SkillCommand::Unassign {
            id,
            scope,
            scope_ref,
        } => set_assignment(client, json, out, &one(&id), &scope, &scope_ref, false).await,
        SkillCommand::Create {
            name,
            description,
            content,
        } => {
            let content = match content.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| CliError::Local(format!("--content @{path}: {e}")))?,
                None => content,
            };
            let v: Skill = client
                .post_as(
                    "/skills",
                    &CreateSkillRequest {
                        name,
                        description,
                        content,
                        tags: Vec::new(),
                        enabled: true,
                    },
                )
                .await?;
            emit_typed(out, json, &v, render::skill)
        }
        SkillCommand::Enable { ref id } | SkillCommand::Disable { ref id } => {
            let enabled = matches!(command, SkillCommand::Enable { .. });
            let request = UpdateSkillRequest {
                enabled: Some(enabled),
                ..Default::default()
            };
            let v: Skill = client::decode(client.patch(&one(id), &to_json(&request)?).await?)?;
            emit_typed(out, json, &v, render::skill)
        }
        SkillCommand::Delete { id } => {
            client.delete(&one(&id)).await?;
            emit(out, json, &json!({ "deleted": id }), |_| {
                format!("deleted {id}")
            })
        }
        SkillCommand::Sync => {
            let v: SyncReport = client.post_as("/skills/sync", &json!({})).await?;
            emit_typed(out, json, &v, |v| {
                let mut s = format!("synced {}, removed {}", v.synced.len(), v.removed.len());
                for p in &v.problems {
                    s.push_str(&format!("\nproblem: {p}"));
                }
                s
            })
        }
    }
}

/// `skill assign|unassign` (setSkillAssignment).
async fn set_assignment(
    client: &Client,
    json: bool,
    out: &mut dyn Write,
    skill_path: &str,
    scope: &str,
    scope_ref: &str,
    assigned: bool,
) -> Result<(), CliError> {
    let v: Skill = client
        .post_as(
            &format!("{skill_path}/assignments"),
            &AssignSkillRequest {
                scope: scope.into(),
                scope_ref: scope_ref.into(),
                assigned,
            },
        )
        .await?;
    emit_typed(out, json, &v, render::skill)
}

async fn plugin(
    client: &Client,
    conn: &Connection,
    command: PluginCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let json = conn.json;
    match command {
        PluginCommand::List => emit_typed(
            out,
            json,
            &client.get_as::<PluginList>("/plugins").await?,
            render::plugins,
        ),
        PluginCommand::Show { id } => emit_typed(
            out,
            json,
            &client
                .get_as::<PluginDetail>(&format!("/plugins/{}", client::seg(&id)))
                .await?,
            render::plugin,
        ),
        PluginCommand::Install { source, preview } => {
            let src = resolve_source(&source.source, &source.options)?;
            let p: Preview = send_source(
                client,
                conn,
                &src,
                &source.options,
                "/plugins/preview",
                "/plugins/preview/upload",
            )
            .await?;
            if preview {
                return emit_typed(out, json, &p, render::preview);
            }
            if !json {
                let _ = writeln!(out, "{}", render::preview(&p).trim_end());
            }
            if !p.trust.allowed {
                return Err(CliError::Refused(format!(
                    "not installed: {}",
                    p.trust
                        .reason
                        .as_deref()
                        .unwrap_or("the trust policy refuses it")
                )));
            }
            let v: InstallReport = send_source(
                client,
                conn,
                &src,
                &source.options,
                "/plugins/install",
                "/plugins/upload",
            )
            .await?;
            emit_typed(out, json, &v, |v| {
                format!(
                    "installed {} {} (disabled). Review its permissions with `nitejar plugin show {}`, then `nitejar plugin enable {}`.",
                    v.plugin_id, v.version, v.plugin_id, v.plugin_id,
                )
            })
        }
        PluginCommand::Enable { id, yes } => {
            let path = format!("/plugins/{}", client::seg(&id));
            let p: PluginDetail = client.get_as(&path).await?;
            let pending: Vec<String> = p
                .disclosures
                .into_iter()
                .filter(|d| !d.acknowledged)
                .map(|d| d.permission)
                .collect();
            let third_party = p.plugin.trust_level != "builtin";
            if third_party && !yes {
                let mut question = format!(
                    "{id} runs in the wasm sandbox; enabling it lets it act on what it receives."
                );
                if pending.is_empty() {
                    question.push_str(" It declares no ungranted permissions.");
                } else {
                    question.push_str(" It asks for:");
                    for perm in &pending {
                        question.push_str(&format!("\n  - {perm}"));
                    }
                }
                question.push_str("\nGrant and enable?");
                if !form::confirm(&question, form::interactive(conn.no_input), out)? {
                    return Err(CliError::Consent(
                        "not enabled: consent not given (rerun with --yes to consent non-interactively)".into(),
                    ));
                }
            }
            if !pending.is_empty() {
                let _: GrantResponse = client
                    .post_as(
                        &format!("{path}/grants"),
                        &GrantRequest {
                            permissions: pending,
                        },
                    )
                    .await?;
            }
            let v: EnableResponse = client
                .post_as(&format!("{path}/enable"), &EnableRequest { consent: true })
                .await?;
            emit_typed(out, json, &v, |_| format!("enabled {id}"))
        }
        PluginCommand::Disable { id } => {
            let v: EnableResponse = client
                .post_as(
                    &format!("/plugins/{}/disable", client::seg(&id)),
                    &json!({}),
                )
                .await?;
            emit_typed(out, json, &v, |_| format!("disabled {id}"))
        }
        PluginCommand::Revoke { id, permissions } => {
            let v: RevokeResponse = client
                .post_as(
                    &format!("/plugins/{}/revoke", client::seg(&id)),
                    &json!({ "permissions": permissions }),
                )
                .await?;
            emit_typed(out, json, &v, |v| {
                format!("revoked {} permission(s) of {id}", v.revoked)
            })
        }
        PluginCommand::Limits {
            id,
            fuel_per_call,
            default: _,
        } => {
            let body = serde_json::to_value(LimitsRequest { fuel_per_call })
                .map_err(|e| CliError::Local(format!("encoding the request failed: {e}")))?;
            let v: LimitsResponse = client::decode(
                client
                    .put(&format!("/plugins/{}/limits", client::seg(&id)), &body)
                    .await?,
            )?;
            emit_typed(out, json, &v, |v| match v.fuel_per_call {
                Some(n) => format!("{id}: at most {n} instructions per call (operator)"),
                None => format!("{id}: no operator budget; the manifest's or the defaults apply"),
            })
        }
        PluginCommand::Upgrade { id, source, yes } => {
            let base = format!("/plugins/{}", client::seg(&id));
            let v: UpgradeReport = match &source.source {
                Some(s) => {
                    let src = resolve_source(s, &source.options)?;
                    send_source(
                        client,
                        conn,
                        &src,
                        &source.options,
                        &format!("{base}/upgrade"),
                        &format!("{base}/upgrade/upload"),
                    )
                    .await?
                }
                None => {
                    let request = InstallRequest {
                        options: source_options(&source.options),
                        ..Default::default()
                    };
                    client::decode(
                        client
                            .post_busy(
                                &format!("{base}/upgrade"),
                                &to_json(&request)?,
                                !json,
                                "fetching the newest version from the plugin's source; the server validates and compiles it",
                            )
                            .await?,
                    )?
                }
            };
            if v.status != "pending_consent" {
                return emit_typed(out, json, &v, render::upgrade);
            }
            let added = v.added_permissions.clone();
            let mut question = format!(
                "{id} {} asks for permissions that {} did not have:",
                v.version, v.from_version
            );
            for p in &added {
                question.push_str(&format!("\n  + {p}"));
            }
            question.push_str("\nGrant them and activate it?");
            if !yes && !form::confirm(&question, form::interactive(conn.no_input), out)? {
                return Err(CliError::Consent(format!(
                    "{id} {} is installed but waits for consent: rerun with --yes, or approve with \
                     POST /api/admin/plugins/{id}/upgrade/approve",
                    v.version
                )));
            }
            let v: UpgradeReport = client
                .post_as(
                    &format!("{base}/upgrade/approve"),
                    &ApproveRequest { permissions: added },
                )
                .await?;
            emit_typed(out, json, &v, render::upgrade)
        }
        PluginCommand::Reload { id } => {
            let v: ReloadReport = client
                .post_as(&format!("/plugins/{}/reload", client::seg(&id)), &json!({}))
                .await?;
            emit_typed(out, json, &v, |v| {
                let mut s = format!("{id} {}: {} (sha256 {})", v.version, v.status, v.checksum);
                for p in &v.ungranted_permissions {
                    s.push_str(&format!("\n  not granted: {p}"));
                }
                s
            })
        }
        PluginCommand::Rollback { id, version } => {
            let v: RollbackResponse = client
                .post_as(
                    &format!("/plugins/{}/rollback", client::seg(&id)),
                    &RollbackRequest { version },
                )
                .await?;
            emit_typed(out, json, &v, |v| {
                format!("{id} rolled back to {}", v.version)
            })
        }
        PluginCommand::Doctor { id } => {
            let healthy = match &id {
                Some(id) => {
                    let one: PluginHealth = client
                        .get_as(&format!("/plugins/{}/doctor", client::seg(id)))
                        .await?;
                    let healthy = one.healthy;
                    emit_typed(out, json, &one, |p| render::doctor(std::slice::from_ref(p)))?;
                    healthy
                }
                None => {
                    let all: HealthReport = client.get_as("/doctor").await?;
                    emit_typed(out, json, &all, |r| render::doctor(&r.plugins))?;
                    all.healthy
                }
            };
            if healthy {
                Ok(())
            } else {
                Err(CliError::Refused("problems found (see above)".into()))
            }
        }
        PluginCommand::Versions { id } => {
            let v: VersionList = client
                .get_as(&format!("/plugins/{}/versions", client::seg(&id)))
                .await?;
            emit_typed(out, json, &v, render::versions)
        }
        PluginCommand::Uninstall {
            id,
            purge_files,
            purge_data,
            yes,
        } => {
            let question = format!(
                "Uninstall {id}{}{}?",
                if purge_files {
                    ", removing its files"
                } else {
                    ""
                },
                if purge_data {
                    ", deleting its data"
                } else {
                    ""
                }
            );
            if !yes && !form::confirm(&question, form::interactive(conn.no_input), out)? {
                return Err(CliError::Consent(
                    "not uninstalled: confirm, or pass --yes".into(),
                ));
            }
            let v: UninstallResponse = client
                .post_as(
                    &format!("/plugins/{}/uninstall", client::seg(&id)),
                    &UninstallRequest {
                        purge_files,
                        purge_data,
                    },
                )
                .await?;
            emit_typed(out, json, &v, |_| format!("uninstalled {id}"))
        }
        PluginCommand::Keygen { .. } | PluginCommand::Sign { .. } | PluginCommand::Pack { .. } => {
            Err(CliError::Local(
                "a local command reached the server path".into(),
            ))
        }
        PluginCommand::Logs { id, limit } => {
            let v: EventPage = client
                .get_as(&format!(
                    "/plugins/{}/events?limit={}",
                    client::seg(&id),
                    limit.clamp(1, 500)
                ))
                .await?;
            emit_typed(out, json, &v, render::events)
        }
    }
}

async fn instance(
    client: &Client,
    conn: &Connection,
    command: InstanceCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let json = conn.json;
    let interactive = form::interactive(conn.no_input);
    let one = |id: &str| format!("/instances/{}", client::seg(id));
    match command {
        InstanceCommand::Types => emit_typed(
            out,
            json,
            &client
                .get_as::<IntegrationTypeList>("/integration-types")
                .await?,
            render::types,
        ),
        InstanceCommand::List => emit_typed(
            out,
            json,
            &client.get_as::<InstanceList>("/instances").await?,
            render::instances,
        ),
        InstanceCommand::Show { id } => emit_typed(
            out,
            json,
            &client.get_as::<Instance>(&one(&id)).await?,
            render::instance,
        ),
        InstanceCommand::Create {
            integration_type,
            name,
            set,
            disabled,
        } => {
            let types: IntegrationTypeList = client.get_as("/integration-types").await?;
            let t = types
                .integration_types
                .iter()
                .find(|t| t.integration_type == integration_type)
                .ok_or_else(|| {
                    CliError::Refused(format!(
                        "no enabled plugin provides integration type {integration_type:?} (see `nitejar instance types`)"
                    ))
                })?;
            let config = form::build(Some(t), &set, true, interactive, out)?;
            let v: Instance = client
                .post_as(
                    "/instances",
                    &CreateInstanceRequest {
                        integration_type,
                        name,
                        config,
                        enabled: !disabled,
                    },
                )
                .await?;
            emit_typed(out, json, &v, render::instance)
        }
        InstanceCommand::Update {
            id,
            name,
            set,
            unset,
        } => {
            let current: Instance = client.get_as(&one(&id)).await?;
            let types: IntegrationTypeList = client.get_as("/integration-types").await?;
            let t = types
                .integration_types
                .iter()
                .find(|t| t.integration_type == current.integration_type);
            let mut config = form::build(t, &set, false, interactive, out)?;
            for key in unset {
                config.insert(key, Value::Null);
            }
            let request = UpdateInstanceRequest {
                name,
                config: (!config.is_empty()).then_some(config),
            };
            let v: Instance = client::decode(client.patch(&one(&id), &to_json(&request)?).await?)?;
            emit_typed(out, json, &v, render::instance)
        }
        InstanceCommand::Enable { id } => {
            let v: Instance = client
                .post_as(&format!("{}/enable", one(&id)), &json!({}))
                .await?;
            emit_typed(out, json, &v, render::instance)
        }
        InstanceCommand::Disable { id } => {
            let v: Instance = client
                .post_as(&format!("{}/disable", one(&id)), &json!({}))
                .await?;
            emit_typed(out, json, &v, render::instance)
        }
        InstanceCommand::Test { id } => {
            let v: ConnectionCheck = client
                .post_as(&format!("{}/test", one(&id)), &json!({}))
                .await?;
            emit_typed(out, json, &v, |v| {
                format!(
                    "connection {}: {}",
                    if v.ok { "ok" } else { "FAILED" },
                    v.detail.as_deref().unwrap_or("")
                )
            })?;
            if v.ok {
                Ok(())
            } else {
                Err(CliError::Refused("the connection test failed".into()))
            }
        }
        InstanceCommand::Delete { id } => {
            client.delete(&one(&id)).await?;
            emit(out, json, &json!({ "deleted": id }), |_| {
                format!("deleted {id} (its work items and runs stay)")
            })
        }
    }
}
