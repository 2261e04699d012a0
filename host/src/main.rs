//! The `nitejar` binary: `nitejar serve` runs the host; `nitejar plugin|instance|run ...` are
//! admin API clients (see [`nitejar::cli`]).

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: the host allocates on every request, receipt and plugin
/// call from several threads (see the performance notes in the README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use nitejar_core::app::App;
use nitejar_core::config::Config;

/// Nitejar: an agent host whose plugins run as sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "nitejar", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    connection: nitejar::cli::Connection,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (admin API and webhooks) on the data directory (`--data-dir`, default
    /// $NITEJAR_DATA_DIR, $SLOPBOT_DATA_DIR, or ./data).
    Serve {
        /// Address to bind (default: $NITEJAR_BIND or 127.0.0.1:3000).
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
    },
    /// Admin commands against a running server (`nitejar plugin list`, ...).
    #[command(flatten)]
    Client(nitejar::cli::ClientCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Client(command) = cli.command {
        let code = nitejar::cli::run(&cli.connection, command, &mut std::io::stdout()).await;
        std::process::exit(code);
    }
    // Colour only on a terminal: logs redirected to a file or a collector stay plain text.
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(nitejar_core::logging::filter(
            std::env::var("RUST_LOG").ok().as_deref(),
        ))
        .init();
    match cli.command {
        Command::Client(_) => unreachable!("handled above"),
        Command::Serve { bind } => {
            let mut config = Config::from_env(cli.connection.data_dir.clone())?;
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
    axum::serve(listener, nitejar_server::router(app.clone()))
        .with_graceful_shutdown(async {
            let signal = stop_signal().await;
            tracing::info!("{signal}: shutting down (finishing requests, flushing receipts)");
        })
        .await?;
    shutdown.run(app).await;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM (`docker stop`, systemd, Kubernetes); both stop the
/// server the same clean way. As PID 1 in a container an unhandled SIGTERM would be ignored.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
