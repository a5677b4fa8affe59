//! Master keys: the keys that wrap each blob's data key.
//!
//! A keyring is a small text file (owner-only) holding one or more AES-256 master keys, each
//! under a random 32-bit id, and naming the active one, which wraps the data keys of new blobs.
//! It holds more than one key only while a rotation is under way (see [`crate::rotate_master_key`]).
//!
//! ```text
//! # comment lines and blank lines are ignored
//! version 1
//! active 5e1f0a2b
//! key 5e1f0a2b <64 hexadecimal digits>
//! ```

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use zeroize::Zeroizing;

use crate::{StoreError, sync_dir};

const HEADER_COMMENT: &str = "\
# Ward master keys for encryption at rest. Without this file no stored object can be read:
# back it up, apart from the data. Rotate with `ward key rotate`.
";
const VERSION_LINE: &str = "version 1";

/// A master key's id: random, never zero (zero marks an empty key slot in a blob header), and not
/// secret, so it is printed freely.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(u32);

impl KeyId {
    pub(crate) fn from_u32(id: u32) -> Option<KeyId> {
        (id != 0).then_some(KeyId(id))
    }

    pub(crate) fn to_u32(self) -> u32 {
        self.0
    }

    fn parse(s: &str) -> Option<KeyId> {
        if s.len() != 8 {
            return None;
        }
        u32::from_str_radix(s, 16).ok().and_then(KeyId::from_u32)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// The same hexadecimal form as `Display`, so logs and messages agree.
impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

struct MasterKey {
    id: KeyId,
    /// Kept only to write the keyring back when it changes.
    secret: Zeroizing<[u8; 32]>,
    aead: LessSafeKey,
}

impl MasterKey {
    fn new(id: KeyId, secret: Zeroizing<[u8; 32]>) -> Result<MasterKey, StoreError> {
        let unbound = UnboundKey::new(&AES_256_GCM, &secret[..]).map_err(|_| StoreError::Crypto)?;
        Ok(MasterKey {
            id,
            secret,
            aead: LessSafeKey::new(unbound),
        })
    }
}

/// The master keys of one archive. Its `Debug` shows key ids only.
pub struct Keyring {
    keys: Vec<MasterKey>,
    /// Index into `keys` of the key that wraps new data keys.
    active: usize,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active_id())
            .field("ids", &self.ids())
            .finish()
    }
}

impl Keyring {
    /// A keyring with one fresh random key, for a new archive.
    pub fn generate() -> Result<Keyring, StoreError> {
        let mut keyring = Keyring {
            keys: Vec::new(),
            active: 0,
        };
        keyring.add_active()?;
        Ok(keyring)
    }

    /// Reads a keyring file. Refuses one that group or others may read, as ssh refuses such a
    /// private key: a key that leaked there cannot be trusted to protect anything.
    pub fn load(path: &Path) -> Result<Keyring, StoreError> {
        let bad = |reason: String| StoreError::Keyring {
            path: path.to_owned(),
            reason,
        };
        let meta = fs::metadata(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "accessible to group or others (mode {:o}); it must be 0600",
                mode & 0o777
            )));
        }
        let text =
            Zeroizing::new(fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?);
        Keyring::parse(&text).map_err(|reason| bad(reason.to_owned()))
    }

    /// The parser's messages name the line, never echo it: a malformed line may hold a key.
    fn parse(text: &str) -> Result<Keyring, String> {
        let mut version_seen = false;
        let mut active = None;
        let mut keys: Vec<MasterKey> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let malformed = || format!("line {} is malformed", number + 1);
            match fields.as_slice() {
                ["version", "1"] if !version_seen => version_seen = true,
                ["version", _] => return Err(format!("line {}: unsupported version", number + 1)),
                ["active", id] if active.is_none() => {
                    active = Some(KeyId::parse(id).ok_or_else(malformed)?);
                }
                ["key", id, secret] => {
                    let id = KeyId::parse(id).ok_or_else(malformed)?;
                    let mut bytes = Zeroizing::new([0u8; 32]);
                    hex::decode_to_slice(secret, &mut bytes[..]).map_err(|_| malformed())?;
                    if keys.iter().any(|k| k.id == id) {
                        return Err(format!("line {}: key {id} appears twice", number + 1));
                    }
                    keys.push(MasterKey::new(id, bytes).map_err(|_| malformed())?);
                }
                _ => return Err(malformed()),
            }
        }
        if !version_seen {
            return Err("no version line".to_owned());
        }
        let active = active.ok_or("no active key named")?;
        let active = keys
            .iter()
            .position(|k| k.id == active)
            .ok_or_else(|| format!("the active key {active} is not in the file"))?;
        Ok(Keyring { keys, active })
    }

    /// Replaces the keyring file durably: a temporary file, fsynced, renamed over the old one,
    /// then the directory fsynced. A crash leaves either the old or the new keyring, never a
    /// mix, so no blob's data key ever loses the master key that wraps it.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let io = |op: &'static str, p: &Path| {
            let p = p.to_owned();
            move |source| StoreError::Io {
                op,
                path: p,
                source,
            }
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(".new");
        let tmp = dir.join(tmp_name);
        // Sized up front: a String that grows leaves copies of the keys behind in memory it
        // frees without zeroing.
        let line_len = "key 01234567 \n".len() + 64;
        let mut text = Zeroizing::new(String::with_capacity(
            HEADER_COMMENT.len() + 2 * line_len + self.keys.len() * line_len,
        ));
        text.push_str(HEADER_COMMENT);
        text.push_str(VERSION_LINE);
        text.push('\n');
        text.push_str(&format!("active {}\n", self.active_id()));
        for key in &self.keys {
            text.push_str(&format!("key {} ", key.id));
            text.push_str(&Zeroizing::new(hex::encode(&key.secret[..])));
            text.push('\n');
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        // A leftover from an earlier crash keeps its mode; make sure of owner-only.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io("set permissions of", &tmp))?;
        file.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("fsync", &tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(io("rename into place", &tmp))?;
        sync_dir(&dir)
    }

    /// The key that wraps new data keys.
    pub fn active_id(&self) -> KeyId {
        self.keys[self.active].id
    }

    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.id).collect()
    }

    pub(crate) fn active(&self) -> (KeyId, &LessSafeKey) {
        let key = &self.keys[self.active];
        (key.id, &key.aead)
    }

    pub(crate) fn get(&self, id: KeyId) -> Option<&LessSafeKey> {
        self.keys.iter().find(|k| k.id == id).map(|k| &k.aead)
    }

    /// Adds a fresh random key and makes it the active one.
    pub(crate) fn add_active(&mut self) -> Result<KeyId, StoreError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut secret[..]).map_err(|_| StoreError::Crypto)?;
        let id = loop {
            let mut raw = [0u8; 4];
            aws_lc_rs::rand::fill(&mut raw).map_err(|_| StoreError::Crypto)?;
            if let Some(id) = KeyId::from_u32(u32::from_be_bytes(raw)) {
                if self.get(id).is_none() {
                    break id;
                }
            }
        };
        self.keys.push(MasterKey::new(id, secret)?);
        self.active = self.keys.len() - 1;
        Ok(id)
    }

    /// Drops every key but the active one; returns the ids dropped.
    pub(crate) fn retire_inactive(&mut self) -> Vec<KeyId> {
        let active = self.keys.swap_remove(self.active);
        let retired = self.keys.drain(..).map(|k| k.id).collect();
        self.keys.push(active);
        self.active = 0;
        retired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master-keys");
        let mut keyring = Keyring::generate().unwrap();
        keyring.add_active().unwrap();
        keyring.save(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loaded = Keyring::load(&path).unwrap();
        assert_eq!(loaded.ids(), keyring.ids());
        assert_eq!(loaded.active_id(), keyring.active_id());
        for id in keyring.ids() {
            let secret = |k: &Keyring| {
                k.keys
                    .iter()
                    .find(|m| m.id == id)
                    .map(|m| *m.secret)
                    .unwrap()
            };
            assert_eq!(secret(&loaded), secret(&keyring));
        }
        assert!(!dir.path().join("master-keys.new").exists());
    }

    #[test]
    fn retiring_keeps_only_the_active_key() {
        let mut keyring = Keyring::generate().unwrap();
        let first = keyring.active_id();
        let second = keyring.add_active().unwrap();
        assert_ne!(first, second);
        assert_eq!(keyring.retire_inactive(), vec![first]);
        assert_eq!(keyring.ids(), vec![second]);
        assert_eq!(keyring.active_id(), second);
        assert!(keyring.get(first).is_none());
    }

    #[test]
    fn debug_shows_no_secret() {
        let keyring = Keyring::generate().unwrap();
        let shown = format!("{keyring:?}");
        let secret = hex::encode(&keyring.keys[0].secret[..]);
        assert!(!shown.contains(&secret), "{shown}");
        assert!(shown.contains(&keyring.active_id().to_string()), "{shown}");
    }

    #[test]
    fn loose_permissions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master-keys");
        Keyring::generate().unwrap().save(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = Keyring::load(&path).unwrap_err().to_string();
        assert!(err.contains("0600"), "{err}");
    }

    #[test]
    fn malformed_files_are_refused_without_echoing_them() {
        let secret = "ab".repeat(32);
        let cases = [
            String::new(),
            format!("active 0000000a\nkey 0000000a {secret}\n"),
            format!("version 2\nactive 0000000a\nkey 0000000a {secret}\n"),
            format!("version 1\nkey 0000000a {secret}\n"),
            format!("version 1\nactive 0000000b\nkey 0000000a {secret}\n"),
            format!("version 1\nactive 00000000\nkey 00000000 {secret}\n"),
            format!(
                "version 1\nactive 0000000a\nkey 0000000a {}\n",
                &secret[1..]
            ),
            format!("version 1\nactive 0000000a\nkey 0000000a {secret}zz\n"),
            format!("version 1\nactive 0000000a\nkey 0000000a {secret}\nkey 0000000a {secret}\n"),
            format!("version 1\nactive 0000000a\nkey 0000000a {secret} extra\n"),
        ];
        for text in cases {
            let err = Keyring::parse(&text).unwrap_err();
            assert!(!err.contains("abab"), "{err}");
        }
        let good = format!("# note\n\nversion 1\nactive 0000000a\nkey 0000000a {secret}\n");
        let keyring = Keyring::parse(&good).unwrap();
        assert_eq!(keyring.active_id().to_string(), "0000000a");
    }
}
