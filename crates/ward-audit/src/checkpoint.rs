//! Signed checkpoints and the keys that sign them.
//!
//! A checkpoint is one line of `checkpoints.jsonl`:
//!
//! ```text
//! {"seq":1000,"hash":"<64 hex>","time":"..","time_unix_ms":..,"signature":"<128 hex>"}
//! ```
//!
//! `signature = Ed25519("ward-audit-checkpoint-v1\0" || seq (u64 BE) || hash (32 bytes) ||
//! time_unix_ms (i64 BE))`. The hash chain alone proves nothing against someone who can rewrite
//! the whole file and recompute every hash; a signature over (seq, hash) pins everything up to
//! `seq` to whoever holds the key, and a log shorter than its last checkpoint shows truncation.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::AuditError;
use crate::record::decode_hash;
use crate::time::rfc3339_utc;

const CHECKPOINT_DOMAIN: &[u8] = b"ward-audit-checkpoint-v1\0";
const PUBLIC_KEY_LEN: usize = 32;

/// A new Ed25519 signing key as PKCS#8 (v2, with the public key), for `ward init` to keep in
/// a 0600 file.
pub fn generate_signing_key() -> Result<Vec<u8>, AuditError> {
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| AuditError::KeyGeneration)?;
    Ok(doc.as_ref().to_vec())
}

/// The 32-byte Ed25519 public key that [`crate::verify`] needs, from the PKCS#8 signing key.
pub fn public_key_from_pkcs8(pkcs8: &[u8]) -> Result<Vec<u8>, AuditError> {
    Ok(signing_key(pkcs8)?.public_key().as_ref().to_vec())
}

pub(crate) fn signing_key(pkcs8: &[u8]) -> Result<Ed25519KeyPair, AuditError> {
    Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| AuditError::InvalidSigningKey)
}

pub(crate) fn public_key(bytes: &[u8]) -> Result<UnparsedPublicKey<&[u8]>, AuditError> {
    // aws-lc-rs only checks the key when verifying; a wrong length would then make every
    // checkpoint look forged instead of pointing at the key.
    if bytes.len() != PUBLIC_KEY_LEN {
        return Err(AuditError::InvalidPublicKey);
    }
    Ok(UnparsedPublicKey::new(&ED25519, bytes))
}

fn message(seq: u64, hash: &[u8; 32], time_unix_ms: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHECKPOINT_DOMAIN.len() + 8 + 32 + 8);
    m.extend_from_slice(CHECKPOINT_DOMAIN);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&time_unix_ms.to_be_bytes());
    m
}

#[derive(Serialize)]
struct LineOut<'a> {
    seq: u64,
    hash: &'a str,
    time: &'a str,
    time_unix_ms: i64,
    signature: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn {
    seq: u64,
    hash: String,
    time: String,
    time_unix_ms: i64,
    signature: String,
}

/// The signed line (with its newline) for the record `seq` whose hash is `hash`.
pub(crate) fn encode(
    key: &Ed25519KeyPair,
    seq: u64,
    hash: &[u8; 32],
    time_unix_ms: i64,
) -> Result<Vec<u8>, serde_json::Error> {
    let signature = key.sign(&message(seq, hash, time_unix_ms));
    let mut line = serde_json::to_vec(&LineOut {
        seq,
        hash: &hex::encode(hash),
        time: &rfc3339_utc(time_unix_ms),
        time_unix_ms,
        signature: &hex::encode(signature.as_ref()),
    })?;
    line.push(b'\n');
    Ok(line)
}

pub(crate) struct Checkpoint {
    pub seq: u64,
    pub hash: [u8; 32],
    time_unix_ms: i64,
    time: String,
    signature: Vec<u8>,
}

impl Checkpoint {
    /// Whether the key signed exactly this checkpoint. The unsigned `time` string must agree
    /// with the signed `time_unix_ms`, or it could be changed freely.
    pub fn is_authentic(&self, key: &UnparsedPublicKey<&[u8]>) -> bool {
        self.time == rfc3339_utc(self.time_unix_ms)
            && key
                .verify(
                    &message(self.seq, &self.hash, self.time_unix_ms),
                    &self.signature,
                )
                .is_ok()
    }
}

/// Parses a line (without its newline); the error is a reason for a report.
pub(crate) fn parse(line: &[u8]) -> Result<Checkpoint, String> {
    let raw: LineIn = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let hash = decode_hash(&raw.hash).ok_or("hash is not 64 lowercase hex digits")?;
    // Lowercase only, as for record hashes: no byte of a line may change unnoticed.
    let lower = raw
        .signature
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let signature = hex::decode(&raw.signature)
        .ok()
        .filter(|_| lower)
        .ok_or("signature is not lowercase hex")?;
    Ok(Checkpoint {
        seq: raw.seq,
        hash,
        time_unix_ms: raw.time_unix_ms,
        time: raw.time,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_parse_verify() {
        let pkcs8 = generate_signing_key().unwrap();
        let key = signing_key(&pkcs8).unwrap();
        let public = public_key_from_pkcs8(&pkcs8).unwrap();
        let line = encode(&key, 7, &[9; 32], 1234).unwrap();
        let cp = parse(&line[..line.len() - 1]).unwrap();
        assert_eq!((cp.seq, cp.hash), (7, [9; 32]));
        assert!(cp.is_authentic(&public_key(&public).unwrap()));

        let other = public_key_from_pkcs8(&generate_signing_key().unwrap()).unwrap();
        assert!(!cp.is_authentic(&public_key(&other).unwrap()));

        let text = String::from_utf8(line).unwrap();
        let moved = text.replace(r#""seq":7"#, r#""seq":8"#);
        let cp = parse(moved.trim_end().as_bytes()).unwrap();
        assert!(!cp.is_authentic(&public_key(&public).unwrap()));
    }

    #[test]
    fn bad_keys_are_typed_errors() {
        assert!(matches!(
            public_key_from_pkcs8(b"not a key"),
            Err(AuditError::InvalidSigningKey)
        ));
        assert!(matches!(
            public_key(&[0; 31]),
            Err(AuditError::InvalidPublicKey)
        ));
    }
}
