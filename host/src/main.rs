//! The `nitejar` binary: `nitejar serve` runs the host.

use clap::{Parser, Subcommand};
use nitejar::app::App;
use nitejar::config::Config;
use std::path::PathBuf;

/// Nitejar: an agent host whose plugins run as sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "nitejar", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (admin API and webhooks) on the data directory.
    Serve {
        /// Data directory (default: $NITEJAR_DATA_DIR, $SLOPBOT_DATA_DIR, or ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to bind (default: $NITEJAR_BIND or 127.0.0.1:3000).
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,wasmtime=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { data_dir, bind } => {
            let mut config = Config::from_env(data_dir)?;
            if let Some(b) = bind {
                config.bind = b;
            }
            serve(config).await
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let bind = config.bind;
    let (app, shutdown) = App::start(config).await?;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    tracing::info!(
        "nitejar {} listening on http://{} (data: {}, plugins loaded: {:?})",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr()?,
        app.config.data_dir.display(),
        app.registry.loaded_ids()
    );
    axum::serve(listener, nitejar::http::router(app.clone()))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down: flushing receipts");
        })
        .await?;
    shutdown.run(app).await;
    Ok(())
}
