//! Export of the trail as DICOM audit messages (PS3.15 A.5) over syslog on TLS (RFC 5425), to
//! a collector on another machine: what the trail holds there cannot be rewritten by whoever
//! owns this one.
//!
//! The exporter reads the trail from disk rather than from the writer, so it sends exactly what
//! was committed, survives restarts (the last record sent is kept in `audit/syslog-exported`),
//! and a collector that is down only delays delivery: records are sent at least once, in order.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tracing::{debug, warn};

use crate::{AuditRecord, to_dicom_audit_xml};

/// Where the exporter keeps the last record it delivered: `SEQ TIME_UNIX_MS`.
const POSITION_FILE: &str = "syslog-exported";
/// Records sent per pass, so that a long backlog is delivered in bounded memory.
const BATCH: usize = 500;
const POLL: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// RFC 5424 PRI: facility 10 (security/authorization), severity 5 (notice).
const PRI: u8 = 10 * 8 + 5;

/// A syslog collector reached over TLS.
pub struct SyslogTarget {
    /// `host:port` of the collector.
    pub address: String,
    /// The name its certificate must carry.
    pub server_name: ServerName<'static>,
    /// Trust anchors (and a client certificate, when the collector asks for one).
    pub tls: Arc<rustls::ClientConfig>,
    /// AuditSourceID of the messages: Ward's AE title or host name.
    pub source_id: String,
    /// HOSTNAME of the syslog header.
    pub hostname: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Position {
    seq: u64,
    time_unix_ms: i64,
}

/// Sends every record of the trail in `dir` not yet delivered, then every new one as it is
/// committed, until `stop` completes; then delivers what remains (for up to ten seconds).
pub async fn export(dir: PathBuf, target: SyslogTarget, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut exporter = Exporter {
        position: load_position(&dir),
        dir,
        target,
        conn: None,
    };
    let mut retry = POLL;
    loop {
        let delay = match exporter.pass().await {
            Ok(sent) if sent == BATCH => Duration::ZERO,
            Ok(_) => {
                retry = POLL;
                POLL
            }
            Err(e) => {
                warn!(error = %e, retry_in_secs = retry.as_secs(), "audit export to syslog failed");
                exporter.conn = None;
                let wait = retry;
                retry = (retry * 2).min(MAX_RETRY);
                wait
            }
        };
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(BATCH) = exporter.pass().await {}
    })
    .await;
}

struct Exporter {
    dir: PathBuf,
    target: SyslogTarget,
    position: Position,
    conn: Option<TlsStream<TcpStream>>,
}

impl Exporter {
    /// Sends the next batch of committed records; returns how many.
    async fn pass(&mut self) -> Result<usize, String> {
        let dir = self.dir.clone();
        let after = self.position;
        let records = tokio::task::spawn_blocking(move || pending(&dir, after))
            .await
            .map_err(|e| e.to_string())??;
        let Some(last) = records.last() else {
            return Ok(0);
        };
        let last = Position {
            seq: last.seq,
            time_unix_ms: last.time_unix_ms,
        };
        let mut out = Vec::new();
        for record in &records {
            out.extend_from_slice(&frame(record, &self.target));
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.connect().await?),
        };
        conn.write_all(&out).await.map_err(|e| e.to_string())?;
        conn.flush().await.map_err(|e| e.to_string())?;
        self.position = last;
        save_position(&self.dir, last).map_err(|e| e.to_string())?;
        debug!(
            records = records.len(),
            seq = last.seq,
            "audit records exported"
        );
        Ok(records.len())
    }

    async fn connect(&self) -> Result<TlsStream<TcpStream>, String> {
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.target.tls));
        let name = self.target.server_name.clone();
        tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tcp = TcpStream::connect(&self.target.address)
                .await
                .map_err(|e| format!("cannot reach {}: {e}", self.target.address))?;
            let _ = tcp.set_nodelay(true);
            connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {}: {e}", self.target.address))
        })
        .await
        .map_err(|_| format!("{} did not answer in time", self.target.address))?
    }
}

/// The committed records after `after`, at most [`BATCH`].
fn pending(dir: &Path, after: Position) -> Result<Vec<AuditRecord>, String> {
    let since = (after.seq > 0).then_some(after.time_unix_ms);
    let mut out = Vec::new();
    for record in crate::read(dir, since).map_err(|e| e.to_string())? {
        let record = record.map_err(|e| e.to_string())?;
        if record.seq <= after.seq {
            continue;
        }
        out.push(record);
        if out.len() == BATCH {
            break;
        }
    }
    Ok(out)
}

/// One record as an RFC 5425 frame: the length, a space, and an RFC 5424 message whose body is
/// the DICOM audit message (MSGID `DICOM+RFC3881`, PS3.15 A.5.2), UTF-8 with a BOM.
fn frame(record: &AuditRecord, target: &SyslogTarget) -> Vec<u8> {
    let message = format!(
        "<{PRI}>1 {} {} ward - DICOM+RFC3881 - \u{FEFF}{}",
        record.time_rfc3339(),
        header_field(&target.hostname),
        to_dicom_audit_xml(record, &target.source_id)
    );
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

/// A syslog header field: printable ASCII without spaces (RFC 5424 6.2), `-` when empty.
fn header_field(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if cleaned.is_empty() {
        "-".into()
    } else {
        cleaned
    }
}

fn load_position(dir: &Path) -> Position {
    std::fs::read_to_string(dir.join(POSITION_FILE))
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace();
            Some(Position {
                seq: parts.next()?.parse().ok()?,
                time_unix_ms: parts.next()?.parse().ok()?,
            })
        })
        .unwrap_or_default()
}

/// Replaces the position file atomically; losing the last update only means sending again.
fn save_position(dir: &Path, position: Position) -> std::io::Result<()> {
    let tmp = dir.join(format!("{POSITION_FILE}.tmp"));
    std::fs::write(
        &tmp,
        format!("{} {}\n", position.seq, position.time_unix_ms),
    )?;
    std::fs::rename(tmp, dir.join(POSITION_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Actor, AuditEvent};

    fn target() -> SyslogTarget {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        SyslogTarget {
            address: "127.0.0.1:6514".into(),
            server_name: ServerName::try_from("localhost").unwrap(),
            tls: Arc::new(config),
            source_id: "WARD".into(),
            hostname: "pacs 1".into(),
        }
    }

    #[test]
    fn frames_are_octet_counted_rfc5424_messages() {
        let record = AuditRecord {
            seq: 7,
            time_unix_ms: 1_795_000_000_123,
            event: AuditEvent::new(Action::Login, Actor::default()),
            prev_hash: [0; 32],
            hash: [0; 32],
        };
        let frame = frame(&record, &target());
        let text = String::from_utf8(frame).unwrap();
        let (len, message) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), message.len());
        assert!(
            message.starts_with("<85>1 2026-"),
            "PRI, version, timestamp: {message}"
        );
        assert!(message.contains(" pacs1 ward - DICOM+RFC3881 - \u{FEFF}<?xml"));
        assert!(message.contains("<AuditMessage"));
    }

    #[test]
    fn the_position_survives_and_a_missing_one_starts_from_the_beginning() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_position(dir.path()), Position::default());
        let position = Position {
            seq: 42,
            time_unix_ms: 1234,
        };
        save_position(dir.path(), position).unwrap();
        assert_eq!(load_position(dir.path()), position);
        std::fs::write(dir.path().join(POSITION_FILE), "garbage").unwrap();
        assert_eq!(load_position(dir.path()), Position::default());
    }
}
