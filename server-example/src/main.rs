//! `splitsound-server`: the API (`serve`), the workers (`worker`), both in one
//! process (`all`), or the schema (`migrate`). Configuration: `--config FILE`
//! (JSON) or `SPLITSOUND_SERVER_CONFIG`; with neither, the embedded defaults.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use splitsound_server::{App, Config};
use tokio::sync::watch;

#[derive(Parser)]
#[command(name = "splitsound-server", version, about = "The hosted SplitSound pipeline")]
struct Cli {
    /// JSON configuration (see server-example/README.md)
    #[arg(long, global = true, env = "SPLITSOUND_SERVER_CONFIG")]
    config: Option<PathBuf>,
    /// Log as JSON lines instead of text
    #[arg(long, global = true)]
    json_logs: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API
    Serve,
    /// Run workers that take jobs from the queue
    Worker,
    /// Run the API and the workers in one process
    All,
    /// Apply the database migrations and exit
    Migrate,
    /// Run the retention cleanup once and exit (for cron, when retention.interval_secs is 0)
    Cleanup,
    /// Print the OpenAPI document and exit
    Openapi,
    /// Print the effective configuration as JSON (secrets redacted) and exit
    Config,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Colours only for a terminal: a file or a log collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if cli.json_logs {
        // Each line carries its span's fields: request_id on the API, job_id in workers.
        fmt.json().with_current_span(true).with_span_list(false).init()
    } else {
        fmt.init()
    }
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    match rt.block_on(run(cli.command, cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, mut cfg: Config) -> Result<(), Box<dyn std::error::Error>> {
    if let Command::Config = command {
        println!("{}", serde_json::to_string_pretty(&cfg.redacted())?);
        return Ok(());
    }
    if let Command::Migrate = command {
        cfg.auto_migrate = false;
        let db = splitsound_server::db::Db::connect(&cfg.database_url(), 1).await?;
        let applied = db.migrate().await?;
        println!("applied {} migration(s): {applied:?}", applied.len());
        return Ok(());
    }
    if let Command::Openapi = command {
        println!("{}", splitsound_server::openapi().to_pretty_json()?);
        return Ok(());
    }
    if let Command::Cleanup = command {
        let app = App::new(cfg).await?;
        let now = splitsound_server::db::now_ms();
        let report = app.media.cleanup(&app.db, &app.metrics, now).await?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests and running jobs");
        let _ = tx.send(true);
    });
    let serves = matches!(command, Command::Serve | Command::All);
    let works = matches!(command, Command::Worker | Command::All);
    let listener = if serves { Some(tokio::net::TcpListener::bind(&cfg.listen).await?) } else { None };
    if let (Some(l), None) = (&listener, &cfg.public_url) {
        cfg.public_url = Some(format!("http://{}", l.local_addr()?));
    }
    let app = App::new(cfg).await?;
    let worker = works.then(|| tokio::spawn(splitsound_server::compute::worker::run(app.worker(), rx.clone())));
    if serves {
        let (db, media, metrics) = (app.db.clone(), app.media.clone(), app.metrics.clone());
        tokio::spawn(splitsound_server::media::run_retention(db, media, metrics, rx.clone()));
    }
    if let Some(addr) = &app.cfg.ops.listen {
        // /health and /metrics on their own port, for the operators' network.
        let l = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(address = %l.local_addr()?, "ops endpoints listening");
        tokio::spawn(splitsound_server::serve_ops(app.clone(), l, rx.clone()));
    }
    if let Some(l) = listener {
        tracing::info!(address = %l.local_addr()?, "API listening");
        splitsound_server::serve(app.clone(), l, rx).await?;
    }
    if let Some(w) = worker {
        w.await?;
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
