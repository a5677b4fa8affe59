//! `ward ae`: the registry of peers, and certificates for them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ward_index::Index;
use ward_types::{AePeer, AeTitle, HostPattern, IdentityMode, OperationSet};

use crate::data_dir::{DataDir, create_private_dir, write_private_file};

#[derive(Subcommand)]
pub enum AeCommand {
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
        /// Pin this externally issued certificate (PEM) for the AE, for DIMSE over TLS.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// A legacy modality that cannot do TLS: accept plain TCP from its (single) address.
        /// A declared risk, listed at every start and by `ward ae list`.
        #[arg(long)]
        legacy_plain: bool,
        /// User identity its associations must carry: none, optional or required.
        #[arg(long, default_value = "none")]
        identity: IdentityMode,
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
    /// Issue a client certificate for an AE from Ward's CA: writes key.pem, cert.pem and
    /// ca.pem into OUT (PEM files DCMTK's +tls options and pynetdicom's ssl context read).
    IssueCert {
        aet: AeTitle,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "ward-data")]
        data: PathBuf,
    },
}

pub async fn run(command: AeCommand) -> Result<ExitCode> {
    match command {
        AeCommand::Add {
            aet,
            host,
            port,
            allow,
            cert,
            legacy_plain,
            identity,
            data,
        } => {
            if allow.is_empty() {
                bail!("--allow needs at least one operation (echo, store, find, get, move)");
            }
            if legacy_plain && host.single_address().is_none() {
                bail!("a --legacy-plain peer must be registered with one address, not a network");
            }
            let cert_sha256 = match cert {
                None => None,
                Some(path) => {
                    let pem = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let der = ward_auth::pki::first_cert_der(&pem)
                        .with_context(|| format!("{} holds no certificate", path.display()))?;
                    Some(ward_auth::pki::fingerprint(&der))
                }
            };
            let index = DataDir::open(&data)?.index().await?;
            let peer = AePeer {
                aet: aet.clone(),
                host,
                port,
                allow,
                cert_sha256,
                legacy_plain,
                identity,
            };
            index
                .ae_add(&peer)
                .await
                .with_context(|| format!("cannot register {aet}"))?;
            println!("registered {aet}: from {host}, may {allow}");
            if legacy_plain {
                println!(
                    "risk: {aet} may connect over plain TCP from {host}; its traffic is neither \
                     encrypted nor authenticated beyond its address"
                );
            }
        }
        AeCommand::List { data } => {
            let index = DataDir::open(&data)?.index().await?;
            let peers = index.ae_list().await?;
            println!(
                "{:<16}  {:<24}  {:<5}  {:<22}  {:<16}  {:<8}  RISK",
                "AE TITLE", "HOST", "PORT", "ALLOWED", "TRANSPORT", "IDENTITY"
            );
            for p in peers {
                let port = p.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                let transport = match (p.cert_sha256, p.legacy_plain) {
                    (_, true) => "plain (legacy)",
                    (Some(_), false) => "TLS, pinned cert",
                    (None, false) => "TLS, Ward cert",
                };
                let risk = if p.legacy_plain {
                    "unencrypted, address-only identity"
                } else {
                    "-"
                };
                println!(
                    "{:<16}  {:<24}  {:<5}  {:<22}  {:<16}  {:<8}  {risk}",
                    p.aet.as_str(),
                    p.host.to_string(),
                    port,
                    p.allow.to_string(),
                    transport,
                    p.identity.name()
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
        AeCommand::IssueCert { aet, out, data } => {
            let dir = DataDir::open(&data)?;
            let ca = dir.ca()?;
            let client = ward_auth::pki::issue_client_cert(&ca, &aet)
                .with_context(|| format!("cannot issue a certificate for {aet}"))?;
            create_private_dir(&out)?;
            write_private_file(&out.join("key.pem"), client.key_pem.as_bytes())?;
            write_private_file(&out.join("cert.pem"), client.cert_pem.as_bytes())?;
            write_private_file(&out.join("ca.pem"), ca.cert_pem.as_bytes())?;
            println!(
                "wrote key.pem, cert.pem and ca.pem for {aet} into {}",
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
