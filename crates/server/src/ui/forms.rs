//! What every form handler shares: the posted fields, the CSRF check, and the answer after an
//! action (a redirect with a notice, or the API's refusal as a page).

use super::{SignedIn, Ui};
use crate::auth::token_matches;
use crate::error::ApiError;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

/// The fields of a posted form, in order; a name may repeat (checkbox lists).
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// Fields from name-value pairs (tests).
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Fields {
        Fields(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed; `None` when missing or blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Whether the checkbox `name` was ticked (sent as `yes`).
    pub fn ticked(&self, name: &str) -> bool {
        self.get(name) == Some("yes")
    }

    /// Whether the form carries the session's CSRF token.
    pub fn csrf_ok(&self, s: &SignedIn) -> bool {
        self.get("csrf").is_some_and(|t| token_matches(t, &s.csrf))
    }
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Form::<Vec<(String, String)>>::from_request(req, state).await {
            Ok(f) => Ok(Fields(f.0)),
            Err(e) => Err((e.status(), e.body_text()).into_response()),
        }
    }
}

/// A posted `multipart/form-data` form: its text fields, and its file (the `file` field).
pub struct FileForm {
    /// The text fields.
    pub fields: Fields,
    /// The chosen file's name and bytes; `None` when no file was chosen.
    pub file: Option<(Option<String>, Vec<u8>)>,
}

/// Reads a multipart form (size-limited by its route); a body over the limit is a 413 page.
pub async fn file_form(ui: &Ui, s: &SignedIn, mut form: Multipart) -> Result<FileForm, Response> {
    let failed = |e: axum::extract::multipart::MultipartError| {
        let status = e.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!(
                "The file is larger than {} MiB; nothing was changed.",
                nitejar_core::limits::MAX_UPLOAD_BYTES >> 20
            )
        } else {
            format!("The form could not be read ({}).", e.body_text())
        };
        ui.error_page(status, Some(s), &message)
    };
    let mut fields = Vec::new();
    let mut file = None;
    while let Some(field) = form.next_field().await.map_err(failed)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            let file_name = field.file_name().map(str::to_string);
            let bytes = field.bytes().await.map_err(failed)?;
            if !bytes.is_empty() {
                file = Some((file_name.filter(|n| !n.is_empty()), bytes.to_vec()));
            }
        } else {
            let value = field.text().await.map_err(failed)?;
            fields.push((name, value));
        }
    }
    Ok(FileForm {
        fields: Fields(fields),
        file,
    })
}

/// An API error as a page (its message is written for people and never holds secrets).
pub fn api_error(ui: &Ui, s: &SignedIn, e: ApiError) -> Response {
    ui.error_page(e.status, Some(s), &e.message)
}

/// The page for a form without the session's token.
pub fn bad_form(ui: &Ui, s: &SignedIn) -> Response {
    ui.error_page(
        StatusCode::FORBIDDEN,
        Some(s),
        "The form's token is missing or stale (reload the page and try again); nothing was changed.",
    )
}

/// Runs a form's action once its token checks out: on success, back to `to` with the notice
/// `done` makes of the answer; on failure, the API's refusal as a page.
pub async fn act<T>(
    ui: &Ui,
    s: &SignedIn,
    form: &Fields,
    to: &str,
    action: impl Future<Output = Result<T, ApiError>>,
    done: impl FnOnce(T) -> String,
) -> Response {
    if !form.csrf_ok(s) {
        return bad_form(ui, s);
    }
    match action.await {
        Ok(answer) => {
            ui.notify(s, done(answer));
            Redirect::to(to).into_response()
        }
        Err(e) => api_error(ui, s, e),
    }
}

/// `s` percent-encoded for a path segment or a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A plugin page's path, its id percent-encoded.
pub fn plugin_path(id: &str) -> String {
    format!("/admin/plugins/{}", encode(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_for_paths() {
        assert_eq!(plugin_path("a.b-c_d"), "/admin/plugins/a.b-c_d");
        assert_eq!(plugin_path("a/b c?"), "/admin/plugins/a%2Fb%20c%3F");
    }

    #[test]
    fn fields_repeat_and_trim() {
        let f = Fields(vec![
            ("p".into(), "a".into()),
            ("p".into(), "b".into()),
            ("x".into(), "  ".into()),
            ("c".into(), "yes".into()),
        ]);
        assert_eq!(f.all("p"), ["a", "b"]);
        assert_eq!(f.get("p"), Some("a"));
        assert_eq!(f.text("x"), None);
        assert!(f.ticked("c") && !f.ticked("p"));
    }
}
