//! `ward store`: a C-STORE client for files and folders.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ward_dimse::{ClientAssociation, ClientOptions, Proposal};

#[derive(Args)]
pub struct StoreArgs {
    /// The storage SCP, as HOST:PORT.
    address: String,
    /// Files or folders (searched recursively) to send.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Our (calling) AE title.
    #[arg(long, default_value = "WARDSCU")]
    aet: String,
    /// The SCP's (called) AE title.
    #[arg(long, default_value = "WARD")]
    aec: String,
    /// Seconds to wait for the network before giving up.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

/// A file to send and the presentation context it needs.
struct Item {
    path: PathBuf,
    size: u64,
    proposal: Proposal,
}

pub async fn run(args: StoreArgs) -> Result<ExitCode> {
    let (items, skipped) = collect(&args.paths).await?;
    for (path, reason) in &skipped {
        eprintln!("skipped {}: {reason}", path.display());
    }
    if items.is_empty() {
        bail!("no DICOM files to send");
    }
    let total_bytes: u64 = items.iter().map(|i| i.size).sum();
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let options = ClientOptions {
        calling_ae: args.aet.clone(),
        called_ae: args.aec.clone(),
        max_pdu: 256 * 1024,
        timeout: Duration::from_secs(args.timeout),
    };
    let started = Instant::now();
    let mut sent = 0usize;
    let mut failed = 0usize;
    // One association per group of at most 128 distinct presentation contexts.
    for group in group_by_contexts(&items) {
        let proposals: Vec<Proposal> = group
            .iter()
            .map(|i| i.proposal.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut assoc = ClientAssociation::connect(&args.address, options.clone(), &proposals)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.address))?;
        for item in group {
            match assoc.store_file(&item.path).await {
                Ok((status, _)) if ward_dimse::command::status::is_success_or_warning(status) => {
                    sent += 1;
                }
                Ok((status, comment)) => {
                    failed += 1;
                    let comment = comment.map(|c| format!(" ({c})")).unwrap_or_default();
                    bar.suspend(|| {
                        eprintln!(
                            "failed {}: status {status:#06x}{comment}",
                            item.path.display()
                        )
                    });
                }
                Err(e @ ward_dimse::ClientError::NoContext) => {
                    failed += 1;
                    bar.suspend(|| eprintln!("failed {}: {e}", item.path.display()));
                }
                Err(e) => {
                    bar.abandon();
                    bail!("{}: {e} (after {sent} sent)", item.path.display());
                }
            }
            bar.inc(item.size);
        }
        assoc
            .release()
            .await
            .map_err(|e| anyhow::anyhow!("release: {e}"))?;
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "sent {sent}, failed {failed}, skipped {} — {:.1} MB in {secs:.2} s ({:.1} objects/s, {:.1} MB/s)",
        skipped.len(),
        total_bytes as f64 / 1e6,
        sent as f64 / secs,
        total_bytes as f64 / 1e6 / secs
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Finds every file under `paths` and reads its meta group; files that are not Part 10
/// DICOM are reported and skipped.
async fn collect(paths: &[PathBuf]) -> Result<(Vec<Item>, Vec<(PathBuf, String)>)> {
    let paths = paths.to_vec();
    let found = tokio::task::spawn_blocking(move || {
        let mut items = Vec::new();
        let mut skipped = Vec::new();
        for root in paths {
            for entry in walkdir::WalkDir::new(&root)
                .follow_links(true)
                .sort_by_file_name()
            {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        skipped.push((root.clone(), e.to_string()));
                        continue;
                    }
                };
                if !entry.file_type().is_file() {
                    continue;
                }
                let path = entry.into_path();
                match ward_dicom::read_part10_info(&path) {
                    Ok(info) => items.push(Item {
                        size: info.file_len,
                        proposal: Proposal {
                            abstract_syntax: info.sop_class_uid.to_string(),
                            transfer_syntaxes: vec![info.transfer_syntax.to_string()],
                            scp_role: false,
                        },
                        path,
                    }),
                    Err(e) => skipped.push((path, e.to_string())),
                }
            }
        }
        (items, skipped)
    })
    .await?;
    Ok(found)
}

/// Splits the items so that each association proposes at most 128 contexts.
fn group_by_contexts(items: &[Item]) -> Vec<Vec<&Item>> {
    let mut by_proposal: BTreeMap<&Proposal, Vec<&Item>> = BTreeMap::new();
    for item in items {
        by_proposal.entry(&item.proposal).or_default().push(item);
    }
    let mut groups = Vec::new();
    let mut current: Vec<&Item> = Vec::new();
    let mut contexts = 0;
    for (_, members) in by_proposal {
        if contexts == ward_dimse::negotiation::MAX_CONTEXTS {
            groups.push(std::mem::take(&mut current));
            contexts = 0;
        }
        current.extend(members);
        contexts += 1;
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}
