//! `handshake`: the cost of DIMSE over TLS per association (`bench/ingest`). Opens
//! associations one after the other, alternately over plain TCP and over TLS with a client
//! certificate (rustls with aws-lc-rs, session resumption off, so every handshake is a full
//! one), each carrying one C-ECHO and a release; times the connection (TCP connect plus TLS
//! handshake) and the whole association, and reports what the TLS connections negotiated.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use ward_dimse::client::{ClientAssociation, ClientOptions, Proposal};

use crate::stats;

pub struct Options {
    pub plain: String,
    pub tls: String,
    pub server_name: String,
    pub called_ae: String,
    pub calling_ae: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub count: usize,
    pub warmup: usize,
    pub timeout: Duration,
}

fn connector(options: &Options) -> Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&options.ca)
        .with_context(|| options.ca.display().to_string())?
    {
        roots.add(cert?).context("CA certificate")?;
    }
    let chain = CertificateDer::pem_file_iter(&options.cert)
        .with_context(|| options.cert.display().to_string())?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| options.cert.display().to_string())?;
    let key = PrivateKeyDer::from_pem_file(&options.key)
        .with_context(|| options.key.display().to_string())?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .context("client certificate")?;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// What one association took, in seconds.
struct Timing {
    connect: f64,
    total: f64,
}

async fn associate<S: AsyncRead + AsyncWrite + Unpin>(stream: S, options: &Options) -> Result<()> {
    let client_options = ClientOptions {
        calling_ae: options.calling_ae.clone(),
        called_ae: options.called_ae.clone(),
        max_pdu: 16_384,
        timeout: options.timeout,
    };
    let mut assoc =
        ClientAssociation::negotiate(stream, client_options, &[Proposal::verification()], None)
            .await
            .context("association")?;
    let status = assoc.echo().await.context("C-ECHO")?;
    if status != 0 {
        bail!("C-ECHO answered status {status:#06x}");
    }
    assoc.release().await.context("release")?;
    Ok(())
}

async fn tcp(addr: &str) -> Result<TcpStream> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn plain_once(options: &Options) -> Result<Timing> {
    let t0 = Instant::now();
    let stream = tcp(&options.plain).await?;
    let connect = t0.elapsed().as_secs_f64();
    associate(stream, options).await?;
    Ok(Timing {
        connect,
        total: t0.elapsed().as_secs_f64(),
    })
}

async fn tls_once(
    options: &Options,
    connector: &tokio_rustls::TlsConnector,
    negotiated: &mut Option<Value>,
) -> Result<Timing> {
    let name = ServerName::try_from(options.server_name.clone()).context("server name")?;
    let t0 = Instant::now();
    let stream = tcp(&options.tls).await?;
    let stream = tokio::time::timeout(options.timeout, connector.connect(name, stream))
        .await
        .context("TLS handshake timed out")?
        .context("TLS handshake")?;
    let connect = t0.elapsed().as_secs_f64();
    if negotiated.is_none() {
        let conn = stream.get_ref().1;
        *negotiated = Some(json!({
            "protocol": conn.protocol_version().map(|v| format!("{v:?}")),
            "cipher_suite": conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())),
            "key_exchange_group": conn.negotiated_key_exchange_group().map(|g| format!("{:?}", g.name())),
        }));
    }
    associate(stream, options).await?;
    Ok(Timing {
        connect,
        total: t0.elapsed().as_secs_f64(),
    })
}

fn summary(timings: &[Timing]) -> Value {
    let ms = |f: fn(&Timing) -> f64| {
        let mut v: Vec<f64> = timings.iter().map(|t| f(t) * 1000.0).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let connect = ms(|t| t.connect);
    let total = ms(|t| t.total);
    json!({
        "count": timings.len(),
        "connect_ms_p50": stats::percentile(&connect, 50.0),
        "connect_ms_p90": stats::percentile(&connect, 90.0),
        "association_ms_p50": stats::percentile(&total, 50.0),
        "association_ms_p90": stats::percentile(&total, 90.0),
    })
}

pub async fn run(options: &Options) -> Result<Value> {
    let connector = connector(options)?;
    let mut negotiated = None;
    for _ in 0..options.warmup {
        plain_once(options).await?;
        tls_once(options, &connector, &mut negotiated).await?;
    }
    let (mut plain, mut tls) = (Vec::new(), Vec::new());
    for _ in 0..options.count {
        plain.push(plain_once(options).await?);
        tls.push(tls_once(options, &connector, &mut negotiated).await?);
    }
    let (p, t) = (summary(&plain), summary(&tls));
    let diff = |key: &str| match (p[key].as_f64(), t[key].as_f64()) {
        (Some(a), Some(b)) => json!(b - a),
        _ => Value::Null,
    };
    Ok(json!({
        "plain": p,
        "tls": t,
        "tls_minus_plain_association_ms_p50": diff("association_ms_p50"),
        "tls_minus_plain_connect_ms_p50": diff("connect_ms_p50"),
        "negotiated": negotiated,
        "client": "rustls (aws-lc-rs), session resumption off",
    }))
}
