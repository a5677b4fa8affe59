//! `ward audit`: the exposure auditor's command line. The scanning is `ward-scan`'s.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ward_scan::{ScanOptions, Target};

// The subcommand's summary (for one's own systems only) is on `Command::Audit` in main.rs.
#[derive(clap::Args)]
#[command(
    after_help = "Targets: dicom://HOST:PORT, dicom+tls://HOST:PORT, http://HOST:PORT, \
                  https://HOST:PORT.\n\
                  Exit status: 0 nothing of medium severity or above, 1 findings of medium \
                  severity or above, 2 the scan itself failed.\n\
                  Finding ids are documented in docs/audit-findings.md."
)]
pub struct ScanArgs {
    /// What to scan (one or more).
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<Target>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also retrieve and write: C-GET one instance a C-FIND listed (counted, then dropped);
    /// C-STORE a synthetic object (patient WARD^AUDIT^PROBE) and a different object under the
    /// same UID; STOW-RS one with an MZ preamble. Changes the archive under test.
    #[arg(long)]
    intrusive: bool,
    /// A file of AE titles to try besides the built-in well-known ones (one a line).
    #[arg(long, value_name = "FILE")]
    ae_list: Option<PathBuf>,
    /// At most this many associations or HTTP requests per second.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    rate: u32,
    /// Seconds allowed for each step (connect, handshake, each response).
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    timeout: u64,
    /// Client certificate (PEM) for dicom+tls and https targets.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// CA certificate (PEM) to verify the server certificate against.
    #[arg(long)]
    ca: Option<PathBuf>,
}

pub async fn run(args: ScanArgs) -> Result<ExitCode> {
    let extra_titles = match &args.ae_list {
        None => Vec::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            match ward_scan::parse_title_list(&text) {
                Ok(titles) => titles,
                Err(e) => bail!("{}: {e}", path.display()),
            }
        }
    };
    let options = ScanOptions {
        intrusive: args.intrusive,
        extra_titles,
        rate: args.rate,
        timeout: Duration::from_secs(args.timeout),
        client_cert: args.cert.zip(args.key),
        ca: args.ca,
    };
    let report = ward_scan::scan_all(&args.targets, &options).await;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(ExitCode::from(report.exit_code()))
}
