//! The record line: encoding, parsing and the hash chain.
//!
//! A record is one line of JSON:
//!
//! ```text
//! {"seq":7,"time":"2026-03-21T12:00:00.000Z","time_unix_ms":1774094400000,"event":{..},"prev":"<64 hex>","hash":"<64 hex>"}
//! ```
//!
//! `hash = SHA-256("ward-audit-record-v1\0" || prev (32 bytes) || seq (u64 BE) ||
//! time_unix_ms (i64 BE) || E)`, where `E` is the `event` member's bytes exactly as they
//! appear in the line (the writer produces them with `serde_json::to_string`, compact). Hashing
//! the stored bytes rather than a re-serialisation means verification never depends on how a
//! JSON library orders keys or prints floats. `time` is not hashed: it must equal the RFC 3339
//! form of `time_unix_ms`, which verification checks. Hex is lowercase, and only lowercase is
//! accepted, so that every byte of a line is pinned down.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::event::AuditEvent;
use crate::time::rfc3339_utc;

/// `prev` of the first record.
pub(crate) const GENESIS: [u8; 32] = [0; 32];

/// Bigger events are refused: a record is read as one line into memory, so lines have a cap,
/// and an event near it (tens of thousands of instance UIDs) should be split by the caller.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// Longest line a reader accepts: the event plus the fixed members.
pub(crate) const MAX_LINE_BYTES: usize = MAX_EVENT_BYTES + 512;

const RECORD_DOMAIN: &[u8] = b"ward-audit-record-v1\0";

/// A stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: u64,
    pub time_unix_ms: i64,
    pub event: AuditEvent,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl AuditRecord {
    /// The record's time as RFC 3339 UTC with milliseconds, as stored in the `time` member.
    pub fn time_rfc3339(&self) -> String {
        rfc3339_utc(self.time_unix_ms)
    }

    /// The record in the log's line format (without the newline), for `--json` output. For a
    /// record read from a log this is the stored line, unless the event holds floats that do
    /// not survive a parse and print unchanged.
    pub fn to_json_line(&self) -> Result<String, serde_json::Error> {
        let event = serde_json::to_string(&self.event)?;
        let line = encode(
            self.seq,
            self.time_unix_ms,
            &event,
            &self.prev_hash,
            &self.hash,
        )?;
        Ok(line)
    }
}

pub(crate) fn record_hash(prev: &[u8; 32], seq: u64, time_unix_ms: i64, event: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(RECORD_DOMAIN);
    ctx.update(prev);
    ctx.update(&seq.to_be_bytes());
    ctx.update(&time_unix_ms.to_be_bytes());
    ctx.update(event);
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[derive(Serialize)]
struct LineOut<'a> {
    seq: u64,
    time: &'a str,
    time_unix_ms: i64,
    event: &'a RawValue,
    prev: &'a str,
    hash: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn<'a> {
    seq: u64,
    time: String,
    time_unix_ms: i64,
    #[serde(borrow)]
    event: &'a RawValue,
    prev: String,
    hash: String,
}

/// The line for a record (no newline). `event` must be compact JSON of an [`AuditEvent`].
pub(crate) fn encode(
    seq: u64,
    time_unix_ms: i64,
    event: &str,
    prev: &[u8; 32],
    hash: &[u8; 32],
) -> Result<String, serde_json::Error> {
    let raw: &RawValue = serde_json::from_str(event)?;
    serde_json::to_string(&LineOut {
        seq,
        time: &rfc3339_utc(time_unix_ms),
        time_unix_ms,
        event: raw,
        prev: &hex::encode(prev),
        hash: &hex::encode(hash),
    })
}

/// A line that parsed. `intact` is false when the stored hash is not the hash of the stored
/// content (or `time` disagrees with `time_unix_ms`): the record was modified.
pub(crate) struct Parsed {
    pub record: AuditRecord,
    pub computed_hash: [u8; 32],
    pub intact: bool,
}

/// Parses one line (without its newline). The error is a human-readable reason; callers add
/// the file and line number.
pub(crate) fn parse(line: &[u8]) -> Result<Parsed, String> {
    let raw: LineIn<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let event: AuditEvent =
        serde_json::from_str(raw.event.get()).map_err(|e| format!("event: {e}"))?;
    let prev_hash = decode_hash(&raw.prev).ok_or("prev is not 64 lowercase hex digits")?;
    let hash = decode_hash(&raw.hash).ok_or("hash is not 64 lowercase hex digits")?;
    let computed_hash = record_hash(
        &prev_hash,
        raw.seq,
        raw.time_unix_ms,
        raw.event.get().as_bytes(),
    );
    let intact = computed_hash == hash && raw.time == rfc3339_utc(raw.time_unix_ms);
    Ok(Parsed {
        record: AuditRecord {
            seq: raw.seq,
            time_unix_ms: raw.time_unix_ms,
            event,
            prev_hash,
            hash,
        },
        computed_hash,
        intact,
    })
}

/// Strict lowercase hex of 32 bytes. `hex::decode` also takes uppercase, which would let a
/// stored hash change without the change being detectable.
pub(crate) fn decode_hash(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Actor};

    fn event_json() -> String {
        let event = AuditEvent::new(Action::Login, Actor::default())
            .with_detail(serde_json::json!({"b": 1.5, "a": "x"}));
        serde_json::to_string(&event).unwrap()
    }

    #[test]
    fn encode_then_parse_is_intact() {
        let event = event_json();
        let hash = record_hash(&GENESIS, 1, 1000, event.as_bytes());
        let line = encode(1, 1000, &event, &GENESIS, &hash).unwrap();
        let parsed = parse(line.as_bytes()).unwrap();
        assert!(parsed.intact);
        assert_eq!(parsed.record.seq, 1);
        assert_eq!(parsed.record.hash, hash);
        assert_eq!(parsed.record.to_json_line().unwrap(), line);
    }

    #[test]
    fn hash_covers_stored_event_bytes() {
        let event = event_json();
        let hash = record_hash(&GENESIS, 1, 1000, event.as_bytes());
        let line = encode(1, 1000, &event, &GENESIS, &hash).unwrap();
        // Same meaning, different bytes: still a modification.
        let respaced = line.replace(r#""a":"x""#, r#""a": "x""#);
        assert_ne!(respaced, line);
        assert!(!parse(respaced.as_bytes()).unwrap().intact);
    }

    #[test]
    fn uppercase_hex_and_unknown_members_are_rejected() {
        let event = event_json();
        let hash = record_hash(&GENESIS, 1, 1000, event.as_bytes());
        let line = encode(1, 1000, &event, &GENESIS, &hash).unwrap();
        let upper = line.replace(&hex::encode(hash), &hex::encode_upper(hash));
        assert!(parse(upper.as_bytes()).is_err());
        let extra = line.replacen('{', r#"{"x":1,"#, 1);
        assert!(parse(extra.as_bytes()).is_err());
    }

    #[test]
    fn time_string_must_match() {
        let event = event_json();
        let hash = record_hash(&GENESIS, 1, 1000, event.as_bytes());
        let line = encode(1, 1000, &event, &GENESIS, &hash).unwrap();
        let other = line.replace("00:00:01.000Z", "00:00:02.000Z");
        assert_ne!(other, line);
        assert!(!parse(other.as_bytes()).unwrap().intact);
    }
}
