//! A plugin's lifecycle from its page: upgrade from the recorded source, approve or discard
//! an upgrade waiting for consent, roll back to an installed version, reload a local plugin,
//! uninstall (with purge choices and a typed confirmation).

use super::forms::{Fields, act, api_error, bad_form, plugin_path};
use super::{SignedIn, Ui};
use crate::error::{ApiError, ApiJson};
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use nitejar_api::lifecycle::{ApproveRequest, RollbackRequest, UninstallRequest, UpgradeReport};
use std::sync::Arc;

/// The notice after an upgrade: activated, or waiting for consent to what it adds.
pub fn upgrade_notice(r: &UpgradeReport) -> String {
    if r.status == "activated" {
        format!(
            "Upgraded {} from {} to {}.",
            r.plugin_id, r.from_version, r.version
        )
    } else {
        format!(
            "{} {} is installed and waits for your consent to the {} permission(s) it adds (below).",
            r.plugin_id,
            r.version,
            r.added_permissions.len()
        )
    }
}

/// `POST /admin/plugins/{id}/upgrade`: the newest version from the source it was installed
/// from (npm: the newest release; git: the same ref; local: the same directory).
pub async fn upgrade(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    let action = crate::lifecycle::upgrade(State(ui.app.clone()), Path(id.clone()), None);
    act(&ui, &s, &form, &plugin_path(&id), action, |r| {
        upgrade_notice(&r.0)
    })
    .await
}

/// `POST /admin/plugins/{id}/upgrade/approve`: consent to the ticked added permissions (the
/// API refuses anything but exactly the added ones).
pub async fn approve(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    let body = ApiJson(ApproveRequest {
        permissions: form.all("permission"),
    });
    let action = crate::lifecycle::approve(State(ui.app.clone()), Path(id.clone()), body);
    act(&ui, &s, &form, &plugin_path(&id), action, |r| {
        upgrade_notice(&r.0)
    })
    .await
}

/// `POST /admin/plugins/{id}/upgrade/discard`: drops the upgrade waiting for consent.
pub async fn discard(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    let action = crate::lifecycle::discard(State(ui.app.clone()), Path(id.clone()));
    act(&ui, &s, &form, &plugin_path(&id), action, |_| {
        "The pending upgrade was discarded; the active version stays.".into()
    })
    .await
}

/// `POST /admin/plugins/{id}/rollback`: activates the chosen installed `version`.
pub async fn rollback(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    let body = Some(ApiJson(RollbackRequest {
        version: form.text("version"),
    }));
    let action = crate::lifecycle::rollback(State(ui.app.clone()), Path(id.clone()), body);
    act(&ui, &s, &form, &plugin_path(&id), action, |r| {
        format!("Rolled {} back to {}.", r.0.plugin_id, r.0.version)
    })
    .await
}

/// `POST /admin/plugins/{id}/reload`: re-reads a plugin installed from a local directory.
pub async fn reload(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    let action = crate::lifecycle::reload(State(ui.app.clone()), Path(id.clone()));
    act(&ui, &s, &form, &plugin_path(&id), action, |r| {
        let r = r.0;
        let mut notice = format!("Reload of {} {}: {}.", r.plugin_id, r.version, r.status);
        if !r.ungranted_permissions.is_empty() {
            notice.push_str(&format!(
                " Not granted yet: {}.",
                r.ungranted_permissions.join(", ")
            ));
        }
        notice
    })
    .await
}

/// `GET /admin/plugins/{id}/uninstall`: what uninstalling removes, the purge choices and the
/// confirmation to type.
pub async fn uninstall_form(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Response {
    super::plugins::about_plugin(&ui, &s, id, "uninstall.html", "Uninstall", context! {}).await
}

/// `POST /admin/plugins/{id}/uninstall`: with `confirm` equal to the plugin id, and the
/// ticked `purgeFiles` / `purgeData`.
pub async fn uninstall(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    if !form.csrf_ok(&s) {
        return bad_form(&ui, &s);
    }
    if form.get("confirm").map(str::trim) != Some(id.as_str()) {
        return api_error(
            &ui,
            &s,
            ApiError::bad_request(format!(
                "type the plugin id ({id}) to confirm; nothing was uninstalled"
            )),
        );
    }
    let options = UninstallRequest {
        purge_files: form.ticked("purgeFiles"),
        purge_data: form.ticked("purgeData"),
    };
    match crate::lifecycle::uninstall(
        State(ui.app.clone()),
        Path(id.clone()),
        Some(ApiJson(options)),
    )
    .await
    {
        Ok(r) => {
            let r = r.0;
            let kept = match (r.purge_files, r.purge_data) {
                (true, true) => "its files and data were removed",
                (true, false) => {
                    "its files were removed; its data (storage, secrets, file area) was kept"
                }
                (false, true) => "its data was removed; its installed files were kept",
                (false, false) => "its files and data were kept (installing it again finds them)",
            };
            ui.notify(&s, format!("Uninstalled {}: {kept}.", r.plugin_id));
            Redirect::to("/admin/plugins").into_response()
        }
        Err(e) => api_error(&ui, &s, e),
    }
}
