//! The application: configuration, database, runtime, registry and receipts, booted together.
//!
//! Boot (spec §17.2): open the database and run migrations, start the receipt writer, build the
//! runtime, register bundled plugins, activate every enabled plugin (a plugin that fails to load
//! is recorded and skipped, never blocking boot), and emit a startup receipt summary.

use crate::config::Config;
use crate::crypto::SecretBox;
use crate::db::Db;
use crate::plugins::registry::PluginRegistry;
use crate::receipts::{Receipt, ReceiptSink, ReceiptWriter};
use crate::runtime::{PluginRuntime, RuntimeOptions};
use std::sync::Arc;

/// Receipt plugin id for host-level events (startup summaries).
pub const HOST_RECEIPT_ID: &str = "nitejar.host";

/// Everything the handlers share.
pub struct App {
    /// Configuration.
    pub config: Config,
    /// Database.
    pub db: Db,
    /// The sandbox.
    pub runtime: Arc<PluginRuntime>,
    /// Loaded plugins.
    pub registry: PluginRegistry,
    /// Secrets at rest.
    pub secrets: SecretBox,
    /// Receipts.
    pub receipts: ReceiptSink,
    /// Admin API bearer token.
    pub admin_token: String,
}

/// Handles needed to stop cleanly.
pub struct Shutdown {
    writer: ReceiptWriter,
}

impl Shutdown {
    /// Flushes every queued receipt and closes the database.
    pub async fn run(self, app: Arc<App>) {
        self.writer.shutdown(app.receipts.clone()).await;
        app.db.close().await;
    }
}

impl App {
    /// Boots the application.
    pub async fn start(config: Config) -> anyhow::Result<(Arc<App>, Shutdown)> {
        std::fs::create_dir_all(&config.data_dir)?;
        for dir in [&config.plugins_dir, &config.staging_dir, &config.cache_dir] {
            std::fs::create_dir_all(dir)?;
        }
        // A crash mid-install leaves only staging leftovers: clear them.
        for entry in std::fs::read_dir(&config.staging_dir)?.flatten() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
        let db = Db::open(&config.database_path).await?;
        let (receipts, writer) = ReceiptSink::start(db.clone());
        let secrets = SecretBox::from_config(config.encryption_key.as_deref(), &config.data_dir)?;
        let admin_token = admin_token(&config)?;
        let runtime = Arc::new(PluginRuntime::new(RuntimeOptions {
            memory_bytes: config.guest_memory_bytes,
            cache_dir: config.cache_dir.clone(),
            files_root: config.data_dir.join("plugin-files"),
            outbound_overrides: config.outbound_overrides.clone(),
            db: Some(db.clone()),
            receipts: receipts.clone(),
        })?);
        let app = Arc::new(App {
            config,
            db,
            runtime,
            registry: PluginRegistry::default(),
            secrets,
            receipts,
            admin_token,
        });
        let started = std::time::Instant::now();
        let bundled = crate::plugins::bundled::register_all(&app).await?;
        let mut loaded = Vec::new();
        let mut failed = Vec::new();
        for row in app.db.list_plugins().await? {
            if !row.enabled {
                continue;
            }
            match app.registry.activate(&app, &row.id).await {
                Ok(_) => loaded.push(row.id),
                Err(e) => {
                    tracing::warn!(plugin.id = %row.id, "plugin failed to load: {e}");
                    failed.push(serde_json::json!({ "pluginId": row.id, "error": e }));
                }
            }
        }
        app.receipts.emit(
            Receipt::new(
                HOST_RECEIPT_ID,
                "startup",
                if failed.is_empty() { "ok" } else { "error" },
            )
            .version(crate::plugins::manifest::HOST_VERSION)
            .duration(started.elapsed())
            .detail(serde_json::json!({ "bundled": bundled, "loaded": loaded, "failed": failed })),
        );
        Ok((app, Shutdown { writer }))
    }
}

/// The configured admin token, or one generated into `<data>/admin-token` (owner-only).
fn admin_token(config: &Config) -> anyhow::Result<String> {
    if let Some(t) = &config.admin_token {
        anyhow::ensure!(
            t.len() >= 16,
            "NITEJAR_ADMIN_TOKEN must be at least 16 characters"
        );
        return Ok(t.clone());
    }
    let path = config.data_dir.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok(t.trim().to_string());
    }
    use aes_gcm::aead::{OsRng, rand_core::RngCore};
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    crate::crypto::write_owner_only(&path, token.as_bytes())?;
    tracing::warn!(
        "NITEJAR_ADMIN_TOKEN is not set: generated an admin token in {} (owner-only)",
        path.display()
    );
    Ok(token)
}
