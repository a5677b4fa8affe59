//! `ward`: the command line. Parsing, startup wiring and output only; every decision lives in
//! the library crates.

mod ae_cmd;
mod audit_cmd;
mod data_dir;
mod qr_cmd;
mod scan_cmd;
mod serve_cmd;
mod store_cmd;
mod token_cmd;
mod user_cmd;
mod verify_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::data_dir::DataDir;

/// glibc's allocator, with a heap per thread and a moving mmap threshold, kept growing a busy
/// server's resident memory through fragmentation (many 256 KiB buffers freed on other
/// threads); mimalloc does not (docs/robustness.md, "Load and soak").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Ward: a picture archiving and communication system that is closed until configured.
#[derive(Parser)]
#[command(name = "ward", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: configuration, index, blob store, and a private certificate
    /// authority with a server certificate; everything owner-only.
    Init(InitArgs),
    /// Run the archive (initialising the data directory on first run).
    Serve(serve_cmd::ServeArgs),
    /// Manage the registry of peers allowed to connect.
    Ae {
        #[command(subcommand)]
        command: ae_cmd::AeCommand,
    },
    /// Manage local users (for user identity negotiation and web logins).
    User {
        #[command(subcommand)]
        command: user_cmd::UserCommand,
    },
    /// Manage API tokens for machines on the web front door.
    Token {
        #[command(subcommand)]
        command: token_cmd::TokenCommand,
    },
    /// Read and verify the tamper-evident audit trail.
    AuditLog {
        #[command(subcommand)]
        command: audit_cmd::AuditLogCommand,
    },
    /// Read every stored object through decryption and check it against its SHA-256 name and
    /// the index. Exit status 1 when anything is wrong.
    Verify(verify_cmd::VerifyArgs),
    /// Manage the master key that encrypts stored objects.
    Key {
        #[command(subcommand)]
        command: verify_cmd::KeyCommand,
    },
    /// Send DICOM files (and folders, recursively) to a storage SCP.
    Store(store_cmd::StoreArgs),
    /// Query an SCP (C-FIND).
    Find(qr_cmd::FindArgs),
    /// Retrieve from an SCP onto this machine (C-GET).
    Get(qr_cmd::GetArgs),
    /// Ask an SCP to send objects to another AE (C-MOVE).
    Move(qr_cmd::MoveArgs),
    /// Check your own DICOM/DICOMweb endpoints for exposure, as an attacker's scan would
    /// (only for systems you run or may test).
    Audit(scan_cmd::ScanArgs),
}

#[derive(clap::Args)]
pub struct InitArgs {
    #[arg(long, default_value = "ward-data")]
    data: PathBuf,
    /// A host name or address the server certificate is valid for (repeatable).
    #[arg(long = "host-name", default_values_t = [String::from("localhost"), String::from("127.0.0.1"), String::from("::1")])]
    host_names: Vec<String>,
}

fn main() -> ExitCode {
    // With transparent huge pages on ("always", the default of many distributions), the
    // kernel backs mimalloc's aligned arenas with 2 MiB pages, so each small allocation can
    // make 2 MiB resident: the ingest benchmark's peak RSS fell from 59 to 38 MiB without them.
    // Ward's heap is small and its work is I/O, so it gains nothing from them. The flag covers
    // the whole process, mappings made before this line included (it is checked at page fault
    // time). A kernel that refuses it costs only memory.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
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
        Command::Init(args) => {
            let dir = DataDir::init(&args.data, &args.host_names).await?;
            let password = ward_auth::identity::generate_password()?;
            let index = dir.index().await?;
            let admin = ward_types::UserName::parse("admin")?;
            user_cmd::add_user(&*index, &admin, ward_types::Role::Administrator, &password).await?;
            index.close().await;
            println!("initialised {}", args.data.display());
            println!("administrator: admin");
            println!("password (shown once, store it now): {password}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => serve_cmd::run(args).await,
        Command::Ae { command } => ae_cmd::run(command).await,
        Command::AuditLog { command } => audit_cmd::run(command).await,
        Command::User { command } => user_cmd::run(command).await,
        Command::Token { command } => token_cmd::run(command).await,
        Command::Verify(args) => verify_cmd::verify(args).await,
        Command::Key { command } => verify_cmd::key(command).await,
        Command::Store(args) => store_cmd::run(args).await,
        Command::Find(args) => qr_cmd::find(args).await,
        Command::Get(args) => qr_cmd::get(args).await,
        Command::Move(args) => qr_cmd::move_(args).await,
        Command::Audit(args) => scan_cmd::run(args).await,
    }
}
