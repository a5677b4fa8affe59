//! Ward's audit trail: an append-only, hash-chained, signed record of every access.
//!
//! The trail is separate from operational logs (`tracing`): it holds PHI (query keys, patient
//! IDs) and must be tamper-evident. Nothing here writes PHI to `tracing`.
//!
//! # Files
//!
//! A log is a directory (0700; files 0600) holding:
//!
//! - `audit-<first seq, 20 digits>.jsonl`: segments of records, one JSON object per line (see
//!   [`AuditRecord`] and the `record` module source for the exact line and hash). A new
//!   segment starts once the current one reaches [`AuditOptions::segment_max_bytes`].
//!   Sequence numbers start at 1 and have no gaps; each record's `prev` is the previous
//!   record's `hash` (zeros for the first), and
//!   `hash = SHA-256("ward-audit-record-v1\0" || prev || seq u64 BE || time_unix_ms i64 BE ||
//!   event bytes as stored)`. Times never decrease along the chain.
//! - `checkpoints.jsonl`: signed checkpoints, one per line:
//!   `Ed25519("ward-audit-checkpoint-v1\0" || seq u64 BE || hash || time_unix_ms i64 BE)` over
//!   the last durable record, every N records, every M seconds when records arrived, and on
//!   close. The chain shows a changed, removed or reordered record; a checkpoint shows a chain
//!   rewritten from some record on, and a log shorter than its last checkpoint.
//! - `lock`: flocked while an [`AuditLog`] has the directory open.
//! - `torn-<file>-<unix ms>.bin`: bytes a crash left half-written at the end of a file, cut off
//!   on open and kept as evidence.
//!
//! # Limits of tamper evidence
//!
//! Whoever holds the signing key (root on the server) can rewrite everything consistently,
//! and records after the last checkpoint can be removed along with nothing else to show it.
//! Copies of `checkpoints.jsonl` (or exported DICOM audit messages) kept elsewhere close both.

mod checkpoint;
mod dicom;
mod event;
mod files;
mod log;
mod read;
mod record;
mod syslog;
mod time;
mod verify;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub use checkpoint::{generate_signing_key, public_key_from_pkcs8};
pub use dicom::to_dicom_audit_xml;
pub use event::{Action, Actor, AuditEvent, Outcome, detail_keys};
pub use log::{AuditLog, AuditOptions, AuditStats, OpenWarning};
pub use read::{Records, read};
pub use record::{AuditRecord, MAX_EVENT_BYTES};
pub use syslog::{SyslogTarget, export as export_to_syslog};
pub use time::{now_unix_ms, rfc3339_utc};
pub use verify::{Problem, ProblemKind, VerifyReport, verify};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The source is shared so that one failed batch can report it to every caller in it.
    #[error("audit log: {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// Open found damage a crash cannot cause; `verify` tells what it is.
    #[error("audit log {} cannot be continued: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("audit log {} is already open in another writer", dir.display())]
    Locked { dir: PathBuf },
    #[error("audit log {} line {line}: {reason}", path.display())]
    Unparseable {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("audit log {} line {line}: record {seq} does not match its hash", path.display())]
    ModifiedRecord { path: PathBuf, line: u64, seq: u64 },
    #[error("audit event of {size} bytes exceeds the limit of {max}")]
    EventTooLarge { size: usize, max: usize },
    #[error("audit event cannot be serialised")]
    Serialize(#[source] serde_json::Error),
    #[error("not an Ed25519 private key in PKCS#8 form")]
    InvalidSigningKey,
    #[error("not an Ed25519 public key (32 bytes)")]
    InvalidPublicKey,
    #[error("could not generate an Ed25519 key")]
    KeyGeneration,
    #[error("the audit log is closed")]
    Closed,
    /// An earlier write or sync failed: what reached the disk is unknown, so the log takes no
    /// more records until it is reopened (which finds the chain's real end).
    #[error("the audit log refuses records after an earlier failure ({0})")]
    Poisoned(String),
    #[error("audit log background task failed: {0}")]
    TaskFailed(String),
}
