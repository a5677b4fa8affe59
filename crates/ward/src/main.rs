//! `ward`: the command line. Parsing, startup wiring and output only; every decision lives in
//! the library crates.

mod data_dir;
mod qr_cmd;
mod store_cmd;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tracing::{info, warn};
use ward_config::Config;
use ward_index::Index;
use ward_types::{AePeer, AeTitle, HostPattern, OperationSet};

use crate::data_dir::DataDir;

/// Ward: a picture archiving and communication system that is closed until configured.
#[derive(Parser)]
#[command(name = "ward", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: configuration, index and blob store, owner-only.
    Init {
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
    },
    /// Run the archive (initialising the data directory on first run).
    Serve {
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
        /// DIMSE listener address (default from ward.toml: 127.0.0.1:11112).
        #[arg(long)]
        dicom_listen: Option<SocketAddr>,
        /// Ward's AE title (default from ward.toml: WARD).
        #[arg(long)]
        ae_title: Option<AeTitle>,
    },
    /// Manage the registry of peers allowed to connect.
    Ae {
        #[command(subcommand)]
        command: AeCommand,
    },
    /// Send DICOM files (and folders, recursively) to a storage SCP.
    Store(store_cmd::StoreArgs),
    /// Query an SCP (C-FIND).
    Find(qr_cmd::FindArgs),
    /// Retrieve from an SCP onto this machine (C-GET).
    Get(qr_cmd::GetArgs),
    /// Ask an SCP to send objects to another AE (C-MOVE).
    Move(qr_cmd::MoveArgs),
}

#[derive(Subcommand)]
enum AeCommand {
    /// Register a peer: its AE title, the address(es) it connects from, and what it may do.
    Add {
        aet: AeTitle,
        /// Address or network the peer connects from: IP or IP/PREFIX.
        #[arg(long)]
        host: HostPattern,
        /// Port the peer listens on (needed only for C-MOVE destinations).
        #[arg(long)]
        port: Option<u16>,
        /// Operations allowed: comma-separated among echo, store, find, get, move.
        #[arg(long)]
        allow: OperationSet,
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
    },
    /// List registered peers.
    List {
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
    },
    /// Remove a registered peer.
    Remove {
        aet: AeTitle,
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Init { data } => {
            DataDir::init(&data).await?;
            println!("initialised {}", data.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            data,
            dicom_listen,
            ae_title,
        } => serve(data, dicom_listen, ae_title).await,
        Command::Ae { command } => ae(command).await,
        Command::Store(args) => store_cmd::run(args).await,
        Command::Find(args) => qr_cmd::find(args).await,
        Command::Get(args) => qr_cmd::get(args).await,
        Command::Move(args) => qr_cmd::move_(args).await,
    }
}

async fn ae(command: AeCommand) -> Result<ExitCode> {
    match command {
        AeCommand::Add {
            aet,
            host,
            port,
            allow,
            data,
        } => {
            if allow.is_empty() {
                bail!("--allow needs at least one operation (echo, store, find, get, move)");
            }
            let index = DataDir::open(&data)?.index().await?;
            let peer = AePeer {
                aet: aet.clone(),
                host,
                port,
                allow,
            };
            index
                .ae_add(&peer)
                .await
                .with_context(|| format!("cannot register {aet}"))?;
            println!("registered {aet}: from {host}, may {allow}");
        }
        AeCommand::List { data } => {
            let index = DataDir::open(&data)?.index().await?;
            let peers = index.ae_list().await?;
            println!("{:<16}  {:<24}  {:<5}  ALLOWED", "AE TITLE", "HOST", "PORT");
            for p in peers {
                let port = p.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "{:<16}  {:<24}  {:<5}  {}",
                    p.aet.as_str(),
                    p.host.to_string(),
                    port,
                    p.allow
                );
            }
        }
        AeCommand::Remove { aet, data } => {
            let index = DataDir::open(&data)?.index().await?;
            if !index.ae_remove(&aet).await? {
                bail!("{aet} is not registered");
            }
            println!("removed {aet}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    data: PathBuf,
    dicom_listen: Option<SocketAddr>,
    ae_title: Option<AeTitle>,
) -> Result<ExitCode> {
    if !data.join(ward_config::CONFIG_FILE).exists() {
        DataDir::init(&data).await?;
    }
    let dir = DataDir::open(&data)?;
    let mut config = Config::load(&data)?;
    config.apply_env()?;
    if let Some(listen) = dicom_listen {
        config.dicom.listen = listen;
    }
    if let Some(aet) = ae_title {
        config.dicom.ae_title = aet;
    }
    init_tracing();

    let shutdown = shutdown_signal()?;
    let running = dir.mark_running()?;
    let index = dir.server_index().await?;
    let ingest = Arc::new(dir.ingest(index.clone(), &config)?);
    let report = ingest
        .recover(running.was_unclean)
        .await
        .context("recovery failed")?;
    if running.was_unclean {
        warn!(
            spool_files_removed = report.spool_files_removed,
            orphan_blobs_indexed = report.orphan_blobs_indexed,
            orphan_blobs_removed = report.orphan_blobs_removed,
            rows_missing_blob = report.rows_missing_blob,
            "recovered after an unclean stop"
        );
    }
    if report.rows_missing_blob > 0 {
        bail!(
            "{} indexed objects have no blob: the storage under {} lost data",
            report.rows_missing_blob,
            data.display()
        );
    }

    let listener = tokio::net::TcpListener::bind(config.dicom.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.dicom.listen))?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        warn!(
            address = %local,
            "DIMSE listener is reachable beyond this machine over plain TCP; only registered peers are served"
        );
    }
    let server = ward_dimse::Server::new(
        ward_dimse::ServerConfig {
            ae_title: config.dicom.ae_title.clone(),
            max_associations: config.dicom.max_associations,
            max_pdu: config.dicom.max_pdu_length,
            artim_timeout: Duration::from_secs(config.dicom.artim_timeout_secs),
            idle_timeout: Duration::from_secs(config.dicom.idle_timeout_secs),
            max_matches: config.query.max_matches,
            max_retrieve: config.query.max_retrieve_instances,
            pn_case_insensitive: config.query.pn_case_insensitive,
            connect_timeout: Duration::from_secs(config.dicom.connect_timeout_secs),
        },
        ingest,
    );
    info!(address = %local, ae_title = %config.dicom.ae_title, "DIMSE listening on {local}");
    server
        .serve(listener, shutdown, Duration::from_secs(30))
        .await;
    index.close().await;
    running.clear()?;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Installs the SIGTERM/SIGINT handlers now, so that a signal arriving right after the
/// listener is announced stops the server gracefully instead of killing it, and returns the
/// future that completes on the first of them.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        info!("shutting down");
    })
}

fn init_tracing() {
    let filter = ward_config::log_filter_from_env().unwrap_or_else(|| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
