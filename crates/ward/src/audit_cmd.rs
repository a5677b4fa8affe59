//! `ward audit-log`: read and verify the audit trail.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ward_audit::{Action, Actor, AuditError, AuditEvent};

use crate::data_dir::DataDir;

#[derive(Subcommand)]
pub enum AuditLogCommand {
    /// Check every record's hash and link, the sequence, and every signed checkpoint: detects
    /// modified, removed, reordered or truncated records. Exit status 1 when anything is wrong.
    Verify {
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
    },
    /// Print the records (PHI included: this is the one place it belongs).
    Show {
        /// Only records at or after this time (RFC 3339, e.g. 2026-11-29T10:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
    },
}

pub async fn run(command: AuditLogCommand) -> Result<ExitCode> {
    match command {
        AuditLogCommand::Verify { data } => {
            let dir = DataDir::open(&data)?;
            let key = dir.audit_public_key()?;
            let report = ward_audit::verify(&dir.audit_dir(), &key)
                .context("cannot read the audit trail")?;
            record_read(&dir, "verify").await;
            println!(
                "{} records, {} checkpoints, last record {}, last signed checkpoint {}",
                report.records, report.checkpoints, report.last_seq, report.last_checkpoint_seq
            );
            if report.is_ok() {
                println!("audit trail intact");
                return Ok(ExitCode::SUCCESS);
            }
            for p in &report.problems {
                let seq = p.seq.map(|s| format!("record {s}")).unwrap_or_default();
                println!("problem: {:?} {seq} ({} line {})", p.kind, p.file, p.line);
            }
            if report.problems_omitted > 0 {
                println!("… and {} more problems", report.problems_omitted);
            }
            Ok(ExitCode::from(1))
        }
        AuditLogCommand::Show { since, json, data } => {
            let dir = DataDir::open(&data)?;
            let since_ms = since.as_deref().map(parse_time).transpose()?;
            let records = ward_audit::read(&dir.audit_dir(), since_ms)
                .context("cannot read the audit trail")?;
            for record in records {
                let record = record.context("unreadable audit record")?;
                if json {
                    println!("{}", record.to_json_line()?);
                } else {
                    println!(
                        "{} #{} {:?} {} {}",
                        record.time_rfc3339(),
                        record.seq,
                        record.event.action,
                        serde_json::to_string(&record.event.actor)?,
                        serde_json::to_string(&record.event.outcome)?,
                    );
                    if !record.event.detail.is_null() {
                        println!("    {}", record.event.detail);
                    }
                }
            }
            record_read(&dir, "show").await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reading the trail is itself recorded. While a server runs it holds the trail, and this
/// command cannot add to it: say so rather than pretend.
async fn record_read(dir: &DataDir, what: &str) {
    let event = AuditEvent::new(
        Action::AuditRead,
        Actor {
            user: ward_config::invoking_user(),
            ..Actor::default()
        },
    )
    .with_detail(serde_json::json!({ "command": what }));
    match dir.audit_log().await {
        Ok(log) => {
            let _ = log.append(event).await;
            let _ = log.close().await;
        }
        Err(e)
            if e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<AuditError>(),
                    Some(AuditError::Locked { .. })
                )
            }) =>
        {
            eprintln!(
                "note: a running server holds the audit trail; this read is not recorded in it"
            );
        }
        Err(e) => eprintln!("warning: this read could not be recorded: {e:#}"),
    }
}

/// RFC 3339 / ISO 8601 UTC (`YYYY-MM-DDTHH:MM:SSZ`) to Unix milliseconds.
fn parse_time(text: &str) -> Result<i64> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{text:?} is not an RFC 3339 time (e.g. 2026-11-29T10:00:00Z)"))?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    match i64::try_from(ms) {
        Ok(ms) => Ok(ms),
        Err(_) => bail!("{text:?} is out of range"),
    }
}
