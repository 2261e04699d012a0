//! The install wizard: choose a source (upload, npm, git, local directory) -> preview
//! (identity, permissions, contributions, trust verdict, checksum, signature; against the
//! installed version for an upgrade) -> install or upgrade -> the plugin's page, where its
//! permissions are granted and it is enabled with consent -> for an integration, a new
//! instance.
//!
//! An uploaded package is kept in memory between its preview and the install (at most
//! [`STAGED_MAX`] at once, one per session, for [`STAGED_FOR`]) so it is not sent twice; a
//! package from npm, git or a directory is fetched again at install and must have the
//! previewed checksum.

use super::forms::{Fields, FileForm, act, api_error, bad_form, file_form, plugin_path};
use super::{SignedIn, Ui};
use crate::admin::Upload;
use crate::error::{ApiError, ApiJson};
use axum::Extension;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use nitejar_api::lifecycle::{InstallRequest, Preview, SourceOptions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Uploaded packages kept between preview and install, at most.
pub const STAGED_MAX: usize = 4;

/// How long an uploaded package waits for its install.
pub const STAGED_FOR: Duration = Duration::from_secs(30 * 60);

/// An uploaded package waiting for its install.
struct Staged {
    session: String,
    file_name: Option<String>,
    bytes: Vec<u8>,
    at: Instant,
}

/// Uploaded packages between preview and install, by token.
#[derive(Default)]
pub struct Staging(Mutex<HashMap<String, Staged>>);

impl Staging {
    /// Keeps an upload for `session` (replacing its earlier one); returns its token.
    fn put(&self, session: &str, file_name: Option<String>, bytes: Vec<u8>) -> String {
        let mut map = self.0.lock().expect("staging lock");
        map.retain(|_, s| s.session != session && s.at.elapsed() < STAGED_FOR);
        while map.len() >= STAGED_MAX {
            let Some(oldest) = map.iter().min_by_key(|(_, s)| s.at).map(|(k, _)| k.clone()) else {
                break;
            };
            map.remove(&oldest);
        }
        let token = super::random_token();
        map.insert(
            token.clone(),
            Staged {
                session: session.to_string(),
                file_name,
                bytes,
                at: Instant::now(),
            },
        );
        token
    }

    /// Takes the upload `token` names, if it belongs to `session` and has not expired.
    fn take(&self, session: &str, token: &str) -> Option<Upload> {
        let mut map = self.0.lock().expect("staging lock");
        let staged = map.remove(token)?;
        if staged.session != session || staged.at.elapsed() >= STAGED_FOR {
            return None;
        }
        Some(Upload {
            bytes: staged.bytes,
            file_name: staged.file_name,
        })
    }

    /// Forgets the uploads of a session that ended.
    pub fn drop_session(&self, session: &str) {
        self.0
            .lock()
            .expect("staging lock")
            .retain(|_, s| s.session != session);
    }
}

/// `GET /admin/install`: the four sources.
pub async fn start(State(ui): State<Arc<Ui>>, Extension(s): Extension<SignedIn>) -> Response {
    ui.page(
        &s,
        "install.html",
        "Install a plugin",
        "install",
        context! {
            max_mib => nitejar_core::limits::MAX_UPLOAD_BYTES >> 20,
            trust_mode => ui.app.config.trust.mode.as_str(),
        },
    )
}

/// A source named in a form: `sourceKind`, `sourceRef` and the options (`registry`, `ref`,
/// `path`).
fn remote_source(form: &Fields) -> Result<InstallRequest, ApiError> {
    let kind = form.text("sourceKind").unwrap_or_default();
    if !["npm", "git", "local"].contains(&kind.as_str()) {
        return Err(ApiError::bad_request(
            "choose where the package comes from: npm, git or a local directory",
        ));
    }
    let Some(reference) = form.text("sourceRef") else {
        return Err(ApiError::bad_request(match kind.as_str() {
            "npm" => "type the npm package name (with a version or range if you like)",
            "git" => "type the git repository URL",
            _ => "type the directory's path on the host",
        }));
    };
    Ok(InstallRequest {
        source_kind: Some(kind),
        source_ref: Some(reference),
        options: SourceOptions {
            registry: form.text("registry"),
            git_ref: form.text("ref"),
            path: form.text("path"),
        },
    })
}

/// The preview page: what installing would do, and the form that does it.
fn preview_page(ui: &Ui, s: &SignedIn, preview: &Preview, carry: Value) -> Response {
    ui.page(
        s,
        "preview.html",
        &format!("Review {}", preview.name),
        "install",
        context! {
            preview => Value::from_serialize(preview),
            carry => carry,
        },
    )
}

/// `POST /admin/install/preview`: preview a package from npm, git or a local directory.
pub async fn preview(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    form: Fields,
) -> Response {
    if !form.csrf_ok(&s) {
        return bad_form(&ui, &s);
    }
    let request = match remote_source(&form) {
        Ok(r) => r,
        Err(e) => return api_error(&ui, &s, e),
    };
    match crate::admin::preview_plugin(State(ui.app.clone()), ApiJson(request.clone())).await {
        Ok(p) => preview_page(
            &ui,
            &s,
            &p.0,
            Value::from_serialize(serde_json::json!({
                "sourceKind": request.source_kind,
                "sourceRef": request.source_ref,
                "registry": request.options.registry,
                "ref": request.options.git_ref,
                "path": request.options.path,
            })),
        ),
        Err(e) => api_error(&ui, &s, e),
    }
}

/// `POST /admin/install/upload`: preview an uploaded `.tgz` or `.wasm` (multipart, size-limited
/// by the route); the package is staged for the install.
pub async fn preview_upload(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    form: Multipart,
) -> Response {
    let FileForm { fields, file } = match file_form(&ui, &s, form).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    if !fields.csrf_ok(&s) {
        return bad_form(&ui, &s);
    }
    let Some((file_name, bytes)) = file else {
        return ui.error_page(
            StatusCode::BAD_REQUEST,
            Some(&s),
            "Choose a package file (.tgz or .wasm) to upload.",
        );
    };
    let upload = Upload {
        bytes: bytes.clone(),
        file_name: file_name.clone(),
    };
    match crate::admin::preview_upload(State(ui.app.clone()), upload).await {
        Ok(p) => {
            let token = ui.staged.put(&s.id, file_name.clone(), bytes);
            preview_page(
                &ui,
                &s,
                &p.0,
                Value::from_serialize(
                    serde_json::json!({ "staged": token, "fileName": file_name }),
                ),
            )
        }
        Err(e) => api_error(&ui, &s, e),
    }
}

/// `POST /admin/install`: installs (or, when the plugin is installed, upgrades to) the
/// previewed package: the staged upload, or the named source fetched again, which must still
/// have the previewed `checksum`.
pub async fn install(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    form: Fields,
) -> Response {
    let app = ui.app.clone();
    let staged = form.text("staged");
    let expected = form.text("checksum");
    let id_hint = form.text("pluginId").unwrap_or_default();
    let action = async {
        let fetched = match &staged {
            Some(token) => {
                let upload = ui.staged.take(&s.id, token).ok_or_else(|| {
                    ApiError::bad_request(
                        "the uploaded package is no longer kept (it waits 30 minutes, one per session); upload it again",
                    )
                })?;
                crate::admin::fetch_upload(&app, upload).await?
            }
            None => {
                let request = remote_source(&form)?;
                let (kind, reference) = crate::admin::required_source(&request)?;
                crate::admin::fetch_package(&app, kind, reference, &request.options).await?
            }
        };
        if expected.as_deref() != Some(fetched.pkg.digest.as_str()) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "checksum_changed",
                format!(
                    "the package changed since its preview (its checksum is now {}); review it again",
                    fetched.pkg.digest
                ),
            ));
        }
        let id = fetched.pkg.manifest.id.clone();
        let installed = app.store.get_plugin(&id).await?.is_some();
        if installed {
            let report = nitejar_core::plugins::lifecycle::upgrade(
                &app.plugins,
                fetched.pkg,
                fetched.source,
            )
            .await?;
            Ok(super::lifecycle::upgrade_notice(&report))
        } else {
            let report = nitejar_core::plugins::installer::install(
                &app.plugins,
                fetched.pkg,
                fetched.source,
            )
            .await
            .map_err(crate::admin::install_error)?;
            Ok(format!(
                "Installed {} {}. It is disabled: review and grant its permissions, then enable it below.",
                report.plugin_id, report.version
            ))
        }
    };
    act(&ui, &s, &form, &plugin_path(&id_hint), action, |notice| {
        notice
    })
    .await
}

/// `GET /admin/plugins/{id}/upgrade`: a newer version by upload or another source, through the
/// same preview.
pub async fn upgrade_start(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Response {
    let extra = context! {
        upgrading => true,
        max_mib => nitejar_core::limits::MAX_UPLOAD_BYTES >> 20,
        trust_mode => ui.app.config.trust.mode.as_str(),
    };
    super::plugins::about_plugin(&ui, &s, id, "install.html", "Upgrade", extra).await
}
