//! `ward verify` and `ward key rotate`: checking the archive at rest, and rotating the master
//! key that protects it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ward_audit::{Action, Actor, AuditEvent, Outcome};

use crate::data_dir::DataDir;

#[derive(clap::Args)]
pub struct VerifyArgs {
    #[arg(long, default_value = "ward-data")]
    data: PathBuf,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Make a new master key, re-wrap every stored object's data key under it (rewriting only
    /// each blob's header) and retire the old key. The server must be stopped. Exit status 1
    /// when some blob could not be re-wrapped or was unreadable.
    Rotate {
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
    },
}

/// Reads every blob through decryption and checks it against its name and the index. Only
/// reads, so it may run while a server does.
pub async fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let dir = DataDir::open(&args.data)?;
    let store = dir.blob_store()?;
    let index = dir.index().await?;
    // Blob keys and SOP Instance UIDs only: neither is patient data.
    let result = ward_ingest::verify(&store, &*index, |problem| {
        let instance = problem
            .sop_instance_uid
            .as_ref()
            .map(|uid| format!(" (instance {uid})"))
            .unwrap_or_default();
        println!(
            "problem: blob {}{instance}: {}",
            problem.blob_key, problem.kind
        );
    })
    .await;
    index.close().await;
    let report = result.context("verification could not finish")?;
    println!(
        "{} index rows, {} blobs read ({} bytes), {} problems",
        report.rows, report.blobs, report.bytes, report.problems
    );
    if report.problems == 0 {
        println!("archive intact");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}

pub async fn key(command: KeyCommand) -> Result<ExitCode> {
    match command {
        KeyCommand::Rotate { data } => rotate(data).await,
    }
}

async fn rotate(data: PathBuf) -> Result<ExitCode> {
    let dir = DataDir::open(&data)?;
    if let Some(pid) = dir.running_server() {
        bail!(
            "a server (pid {pid}) is running on {}: stop it first, or it would go on sealing \
             new objects under the old key",
            data.display()
        );
    }
    // Holding the audit trail also keeps a server from starting until the rotation is over:
    // the trail takes one writer at a time.
    let audit = dir
        .audit_log()
        .await
        .context("cannot open the audit trail (is a server starting on this data directory?)")?;
    let result = dir
        .rotate_master_key(|key, e| println!("problem: blob {key}: {e}"))
        .await;
    let (detail, outcome) = match &result {
        Ok(r) => (
            serde_json::json!({
                "operation": "master key rotation",
                "active_key": r.active.to_string(),
                "retired_keys": r.retired.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "rewrapped": r.rewrapped,
                "unreadable": r.unreadable,
                "failed": r.failed,
            }),
            if r.failed == 0 {
                Outcome::Success
            } else {
                Outcome::Failure {
                    status: None,
                    reason: format!("{} blobs could not be re-wrapped", r.failed),
                }
            },
        ),
        Err(e) => (
            serde_json::json!({ "operation": "master key rotation" }),
            Outcome::Failure {
                status: None,
                reason: format!("{e:#}"),
            },
        ),
    };
    let actor = Actor {
        user: ward_config::invoking_user(),
        ..Actor::default()
    };
    let event = AuditEvent::new(Action::ConfigChange, actor)
        .with_detail(detail)
        .with_outcome(outcome);
    let recorded = audit.append(event).await;
    audit
        .close()
        .await
        .context("cannot close the audit trail")?;
    let report = result?;
    recorded.context("the rotation is done, but could not be recorded in the audit trail")?;

    if report.resumed {
        println!("finished the rotation an earlier run started");
    }
    println!(
        "master key {} is active: {} blobs re-wrapped, {} already under it",
        report.active, report.rewrapped, report.already_current
    );
    let retired: Vec<String> = report.retired.iter().map(ToString::to_string).collect();
    if !retired.is_empty() {
        println!("retired master key {}", retired.join(", "));
    }
    if report.unreadable > 0 {
        println!(
            "{} blobs no key opens were left as they are; `ward verify` lists them",
            report.unreadable
        );
    }
    if report.failed > 0 {
        println!(
            "{} blobs could not be re-wrapped; the old keys stay until a new run of `ward key \
             rotate` finishes the rotation",
            report.failed
        );
    }
    Ok(if report.unreadable + report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
