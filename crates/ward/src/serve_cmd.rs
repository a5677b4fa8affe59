//! `ward serve`: startup wiring, the security posture summary and the exposure guard.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tracing::{info, warn};
use ward_audit::{Action, Actor, AuditEvent};
use ward_config::Config;
use ward_index::Index;
use ward_types::{AePeer, AeTitle};

use crate::data_dir::DataDir;

#[derive(clap::Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "ward-data")]
    data: PathBuf,
    /// Plain DIMSE listener (default from ward.toml: 127.0.0.1:11112).
    #[arg(long)]
    dicom_listen: Option<SocketAddr>,
    /// DIMSE over TLS listener (default from ward.toml: 127.0.0.1:2762).
    #[arg(long)]
    dicom_tls_listen: Option<SocketAddr>,
    /// Ward's AE title (default from ward.toml: WARD).
    #[arg(long)]
    ae_title: Option<AeTitle>,
    /// HTTPS listener for DICOMweb and the admin API (default from ward.toml: 127.0.0.1:8443).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Also serve plain HTTP here; loopback addresses only (default: off).
    #[arg(long)]
    http_plain_listen: Option<SocketAddr>,
}

pub async fn run(args: ServeArgs) -> Result<ExitCode> {
    let data = args.data;
    if !data.join(ward_config::CONFIG_FILE).exists() {
        DataDir::init(
            &data,
            &["localhost".into(), "127.0.0.1".into(), "::1".into()],
        )
        .await?;
    }
    let dir = DataDir::open(&data)?;
    let mut config = Config::load(&data)?;
    config.apply_env()?;
    if let Some(listen) = args.dicom_listen {
        config.dicom.listen = listen;
    }
    if let Some(listen) = args.dicom_tls_listen {
        config.dicom.tls_listen = listen;
    }
    if let Some(aet) = args.ae_title {
        config.dicom.ae_title = aet;
    }
    if let Some(listen) = args.http_listen {
        config.web.listen = listen;
    }
    if args.http_plain_listen.is_some() {
        config.web.plain_listen = args.http_plain_listen;
    }
    config.validate()?;
    init_tracing();

    let shutdown = shutdown_signal()?;
    let running = dir.mark_running()?;
    let index = dir.server_index().await?;
    let peers = index.ae_list().await?;
    exposure_guard(&config, &peers)?;

    let audit = dir.audit_log().await?;
    for warning in audit.warnings() {
        warn!(warning = ?warning, "audit trail repaired at open");
    }
    let ingest = Arc::new(dir.ingest(index.clone(), Arc::clone(&audit), &config)?);
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

    let pinned: ward_auth::tls::PinnedCertificates = Arc::default();
    let ca = dir.ca()?;
    let policy = ward_auth::tls::ClientCertPolicy::new(&ca.cert_pem, Arc::clone(&pinned))
        .context("cannot load Ward's CA")?;
    let tls_config = ward_auth::tls::server_config(&dir.server_credentials()?, Arc::clone(&policy))
        .context("cannot load the server certificate")?;
    let plain = bind(config.dicom.listen).await?;
    let tls = bind(config.dicom.tls_listen).await?;
    let plain_addr = plain.local_addr()?;
    let tls_addr = tls.local_addr()?;
    let https = bind(config.web.listen).await?;
    let https_addr = https.local_addr()?;
    let http = match config.web.plain_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let http_addr = http.as_ref().map(|l| l.local_addr()).transpose()?;
    let jwt = load_jwt(&data, &config)?;
    let web = web_app(&dir, &config, &ingest, jwt.clone())?;
    let https_config = ward_auth::tls::https_server_config(&dir.server_credentials()?)
        .context("cannot load the server certificate")?;

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
            tls: Some(ward_dimse::server::TlsSetup {
                config: tls_config,
                policy,
                pinned,
            }),
            failure_threshold: config.security.failed_associations_threshold,
            failure_window: Duration::from_secs(config.security.failure_window_secs),
            backoff: Duration::from_secs(config.security.backoff_secs),
            max_backoff: Duration::from_secs(config.security.max_backoff_secs),
            max_matches_per_hour: config.query.max_matches_per_hour,
            jwt,
        },
        Arc::clone(&ingest),
    );
    posture(&config, &peers, plain_addr, tls_addr);
    info!(
        "posture: DICOMweb and admin API over HTTPS on {https_addr} ({}); every route but /health needs a bearer token",
        if https_addr.ip().is_loopback() {
            "loopback only"
        } else {
            "reachable from the network"
        }
    );
    let start = AuditEvent::new(Action::ApplicationStart, Actor::default()).with_detail(
        serde_json::json!({
            "ae_title": config.dicom.ae_title.as_str(),
            "dicom_listen": plain_addr.to_string(),
            "dicom_tls_listen": tls_addr.to_string(),
            "https_listen": https_addr.to_string(),
            "http_listen": http_addr.map(|a| a.to_string()),
            "legacy_plain_peers": peers.iter().filter(|p| p.legacy_plain).map(|p| p.aet.as_str()).collect::<Vec<_>>(),
            "dangerous_allow_plain_dimse_beyond_loopback":
                config.dicom.dangerous_allow_plain_dimse_beyond_loopback,
            "recovered_after_unclean_stop": running.was_unclean,
        }),
    );
    audit
        .append(start)
        .await
        .context("cannot write to the audit trail")?;
    // One shutdown signal, seen by every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let grace = Duration::from_secs(30);
    let mut web_tasks = vec![tokio::spawn(ward_web::serve(
        https,
        Some(https_config),
        web.clone(),
        stopped(),
        grace,
    ))];
    if let Some(http) = http {
        web_tasks.push(tokio::spawn(ward_web::serve(
            http,
            None,
            web,
            stopped(),
            grace,
        )));
    }
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    // The exporter stops after the trail is closed, so that the last records go too.
    let (export_stop, export_stopped) = tokio::sync::oneshot::channel::<()>();
    let exporter = match &config.audit.syslog {
        Some(syslog) => {
            let target = syslog_target(&data, syslog, &config)?;
            info!(
                "posture: audit messages exported to syslog over TLS at {}",
                syslog.address
            );
            Some(tokio::spawn(ward_audit::export_to_syslog(
                dir.audit_dir(),
                target,
                async move {
                    let _ = export_stopped.await;
                },
            )))
        }
        None => None,
    };
    if let Some(addr) = http_addr {
        warn!(address = %addr, "HTTP (plain, loopback) listening on {addr}");
    }
    info!(address = %https_addr, "HTTPS listening on {https_addr}");
    // The plain listener's line comes last: tools waiting for "listening" may start at once.
    info!(address = %tls_addr, "DIMSE-TLS listening on {tls_addr}");
    info!(address = %plain_addr, ae_title = %config.dicom.ae_title, "DIMSE listening on {plain_addr}");
    server.serve(Some(plain), Some(tls), stopped(), grace).await;
    for task in web_tasks {
        let _ = task.await;
    }
    let _ = audit
        .append(AuditEvent::new(Action::ApplicationStop, Actor::default()))
        .await;
    audit
        .close()
        .await
        .context("cannot close the audit trail")?;
    // The exporter delivers what the trail holds at close, for up to ten seconds.
    let _ = export_stop.send(());
    if let Some(exporter) = exporter {
        let _ = exporter.await;
    }
    index.close().await;
    running.clear()?;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The web application over the same ingest path, index and audit trail as DIMSE.
fn web_app(
    dir: &DataDir,
    config: &Config,
    ingest: &Arc<ward_ingest::Ingest>,
    jwt: Option<ward_web::Jwt>,
) -> Result<ward_web::Router> {
    let auth = ward_web::Auth::new(Arc::clone(ingest.index()), &config.web, jwt)
        .map_err(anyhow::Error::msg)?;
    let state = ward_web::WebState::new(
        Arc::clone(ingest),
        auth,
        ward_web::WebPolicy::from_config(config),
        config.query.max_matches_per_hour,
        dir.audit_dir(),
    );
    Ok(ward_web::router(Arc::new(state)))
}

/// The syslog collector of `[audit.syslog]`, with a TLS client configuration that trusts only
/// its CA file.
fn syslog_target(
    data: &std::path::Path,
    syslog: &ward_config::SyslogConfig,
    config: &Config,
) -> Result<ward_audit::SyslogTarget> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    let ca = data.join(&syslog.ca_file);
    for cert in CertificateDer::pem_file_iter(&ca)
        .with_context(|| format!("cannot read {}", ca.display()))?
    {
        roots
            .add(cert.with_context(|| format!("{} is not PEM", ca.display()))?)
            .with_context(|| format!("{} holds an unusable certificate", ca.display()))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
    .with_root_certificates(roots);
    let tls = match (&syslog.client_cert_file, &syslog.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(data.join(cert))
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("cannot read {}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(data.join(key))
                .with_context(|| format!("cannot read {}", key.display()))?;
            builder.with_client_auth_cert(chain, key)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => bail!("audit.syslog needs both client_cert_file and client_key_file, or neither"),
    };
    let host = syslog
        .server_name
        .clone()
        .or_else(|| {
            syslog
                .address
                .rsplit_once(':')
                .map(|(h, _)| h.trim_matches(['[', ']']).to_owned())
        })
        .unwrap_or_default();
    let server_name = ServerName::try_from(host.clone())
        .with_context(|| format!("audit.syslog: {host:?} is not a host name or address"))?;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    Ok(ward_audit::SyslogTarget {
        address: syslog.address.clone(),
        server_name,
        tls: Arc::new(tls),
        source_id: config.dicom.ae_title.as_str().to_owned(),
        hostname,
    })
}

/// The verifier of the configured OIDC issuer's tokens (web bearer tokens and DIMSE JWT user
/// identities), from its key set file.
fn load_jwt(data: &std::path::Path, config: &Config) -> Result<Option<ward_web::Jwt>> {
    let Some(oidc) = &config.web.oidc else {
        return Ok(None);
    };
    let path = data.join(&oidc.jwks_file);
    let jwks = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the key set {}", path.display()))?;
    let mut jwt_config = ward_auth::JwtConfig::new(&oidc.issuer, &oidc.audience);
    jwt_config.role_claim = oidc.role_claim.clone();
    let verifier = ward_auth::JwtVerifier::new(&jwks, jwt_config)
        .with_context(|| format!("the key set {} is not usable", path.display()))?;
    info!(
        keys = verifier.key_count(),
        "posture: bearer JWTs from issuer {} accepted", oidc.issuer
    );
    Ok(Some(Arc::new(verifier)))
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Refuses configurations that expose plain DIMSE beyond this machine without a declared
/// reason (DESIGN.md §1: exposing Ward unsafely is refused at startup, not warned about).
fn exposure_guard(config: &Config, peers: &[AePeer]) -> Result<()> {
    let plain = config.dicom.listen;
    if plain.ip().is_loopback() {
        return Ok(());
    }
    if config.dicom.dangerous_allow_plain_dimse_beyond_loopback {
        warn!(
            address = %plain,
            "dangerous_allow_plain_dimse_beyond_loopback is set: plain DIMSE is served beyond this machine"
        );
        return Ok(());
    }
    if peers.iter().any(|p| p.legacy_plain) {
        return Ok(());
    }
    bail!(
        "refusing to serve plain DIMSE on {plain}, which is reachable beyond this machine: \
         no registered peer is a declared legacy modality. Either keep dicom.listen on \
         127.0.0.1 and let modalities use DIMSE over TLS (dicom.tls_listen, `ward ae \
         issue-cert`), or declare each modality that cannot do TLS with `ward ae add AET \
         --host IP --legacy-plain --allow store`"
    )
}

/// The security posture at start, one line per fact, so that an administrator sees what is
/// exposed and to whom.
fn posture(config: &Config, peers: &[AePeer], plain: SocketAddr, tls: SocketAddr) {
    let reach = |addr: SocketAddr| {
        if addr.ip().is_loopback() {
            "loopback only"
        } else {
            "reachable from the network"
        }
    };
    info!(
        "posture: plain DIMSE on {plain} ({}); beyond loopback only declared legacy peers are served",
        reach(plain)
    );
    info!(
        "posture: DIMSE over TLS on {tls} ({}); TLS 1.3/1.2 with AEAD suites, client certificate required and bound to the calling AE title",
        reach(tls)
    );
    info!(
        "posture: {} registered peers; unknown AE titles, wrong addresses and wrong called titles get one identical rejection",
        peers.len()
    );
    for p in peers.iter().filter(|p| p.legacy_plain) {
        warn!(
            "posture: risk: {} may connect over plain TCP from {} and {}",
            p.aet, p.host, p.allow
        );
    }
    if config.dicom.dangerous_allow_plain_dimse_beyond_loopback {
        warn!("posture: risk: dangerous_allow_plain_dimse_beyond_loopback is set");
    }
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
