//! Durable, content-addressed blob storage: the only crate that writes DICOM objects to disk.
//!
//! A blob's name is the SHA-256 of its bytes ([`BlobKey`]), never anything a peer sent, so no
//! UID, AE title or file name from the network ever becomes part of a path.
//!
//! Layout under the store root (directories `0700`, files `0600`):
//!
//! ```text
//! blobs/ab/cd/abcd…(64 hex)   stored blobs, sharded by the first two bytes of the key
//! tmp/                        staging for the cross-filesystem copy fallback
//! ```

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Staging files older than this are leftovers of a crash during a cross-filesystem copy; no
/// copy in progress takes this long, so [`LocalBlobStore::open`] removes them.
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

/// Why a blob store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid blob key: expected 64 lowercase hexadecimal characters")]
    InvalidKey,
    #[error("blob {0} not found")]
    NotFound(BlobKey),
    /// Paths here are the store's own (root, hex keys) or the caller's spool file, never data
    /// from a peer, so they are safe to log.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob store worker task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Lowercase hex SHA-256 of a blob's bytes: the blob's only name. Validated (64 hex chars), so it
/// can never carry a path separator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey(String);

impl BlobKey {
    pub fn from_digest(d: &[u8; 32]) -> Self {
        BlobKey(hex::encode(d))
    }

    /// Accepts only the canonical lowercase form, so one blob can never have two names.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(BlobKey(s.to_owned()))
        } else {
            Err(StoreError::InvalidKey)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// First and second shard directory names (`ab`, `cd`). Slicing cannot fail: the key is
    /// 64 ASCII characters by construction.
    fn shard_dirs(&self) -> (&str, &str) {
        (&self.0[0..2], &self.0[2..4])
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Durable blob storage, shared as `Arc<dyn BlobStore>`.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Moves a complete file (written and fully closed by the caller, NOT yet fsynced) into the
    /// store under `key`, durably: fsync the file, rename into place (`blobs/ab/cd/<key>`), fsync
    /// the directory (and the shard dirs when newly created), so a success survives `kill -9` and
    /// power loss. If a blob with this key already exists, the source file is removed and `Ok`
    /// returned (content-addressed: same key = same bytes). Falls back to copy+fsync if rename
    /// fails across filesystems.
    async fn put_file(&self, src: &Path, key: &BlobKey) -> Result<(), StoreError>;
    /// Opens a blob for streaming reads.
    async fn open(
        &self,
        key: &BlobKey,
    ) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, StoreError>;
    async fn exists(&self, key: &BlobKey) -> Result<bool, StoreError>;
    async fn len(&self, key: &BlobKey) -> Result<u64, StoreError>;
    /// Removes a blob durably (the directory is fsynced); a missing blob is not an error.
    async fn delete(&self, key: &BlobKey) -> Result<(), StoreError>;
    /// Keys whose first byte (first two hex chars) is `shard`, for recovery and verification
    /// scans in bounded memory. Files in the tree that are not valid keys are ignored (and
    /// counted and logged at warn, without names).
    async fn list_shard(&self, shard: u8) -> Result<Vec<BlobKey>, StoreError>;
}

/// Blobs as files on a local (POSIX) filesystem.
///
/// Not `object_store`'s `LocalFileSystem`: its `put` writes a staging file `<path>#<n>`, closes
/// it and renames it over the destination without ever calling `fsync` on the file or on the
/// directory (multipart `complete` likewise), and creates files with the process umask. After a
/// success it returns, a power loss can leave the object missing or empty; Ward answers a
/// C-STORE only once the object is on stable storage, so it needs the file fsync, the rename and
/// the directory fsync done here, with owner-only permissions.
pub struct LocalBlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    blobs: PathBuf,
    tmp: PathBuf,
    /// Leaf shard directories (`ab/cd`, as a 16-bit number) that this process has created or
    /// fsynced the parents of. A directory created by another process (or by a concurrent put
    /// that has not reached its fsync yet) may exist without its entry being durable, so each is
    /// made durable once per process before the first blob lands in it. At most 65,536 entries.
    durable_dirs: Mutex<HashSet<u16>>,
    tmp_counter: AtomicU64,
}

impl LocalBlobStore {
    /// Opens the store at `root`, creating it (mode `0700`) and its subdirectories if missing.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        // Directories this call creates, deepest first; each needs its parent fsynced so the
        // whole path survives a power loss.
        let created: Vec<&Path> = root
            .ancestors()
            .take_while(|dir| !dir.as_os_str().is_empty() && !dir.exists())
            .collect();
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(root)
            .map_err(io_err("create directory", root))?;
        if created.is_empty() {
            warn_if_shared(root);
        }
        for dir in created.iter().rev() {
            // A relative root's topmost new directory has the empty path as parent: the cwd.
            match dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent)?,
                _ => sync_dir(Path::new("."))?,
            }
        }
        let blobs = root.join("blobs");
        let tmp = root.join("tmp");
        create_dir_if_missing(&blobs)?;
        create_dir_if_missing(&tmp)?;
        sync_dir(root)?;
        remove_stale_tmp(&tmp);
        Ok(LocalBlobStore {
            inner: Arc::new(Inner {
                blobs,
                tmp,
                durable_dirs: Mutex::new(HashSet::new()),
                tmp_counter: AtomicU64::new(0),
            }),
        })
    }

    /// Runs blocking file work on tokio's blocking pool with a handle on the store.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner)).await?
    }
}

impl Inner {
    fn leaf_dir(&self, key: &BlobKey) -> PathBuf {
        let (a, b) = key.shard_dirs();
        self.blobs.join(a).join(b)
    }

    fn blob_path(&self, key: &BlobKey) -> PathBuf {
        self.leaf_dir(key).join(key.as_str())
    }

    /// Returns the leaf directory for `key`, creating the shard directories if needed and making
    /// sure their entries are on stable storage before any blob is renamed into them.
    fn durable_leaf_dir(&self, key: &BlobKey) -> Result<PathBuf, StoreError> {
        let (a, b) = key.shard_dirs();
        let top = self.blobs.join(a);
        let leaf = top.join(b);
        // Only a valid key gets here, so the prefix always parses; if it somehow did not, the
        // fsyncs below simply run every time.
        let id = u16::from_str_radix(&key.as_str()[0..4], 16).ok();
        if id.is_some_and(|id| self.durable_dirs().contains(&id)) {
            return Ok(leaf);
        }
        create_dir_if_missing(&top)?;
        sync_dir(&self.blobs)?;
        create_dir_if_missing(&leaf)?;
        sync_dir(&top)?;
        if let Some(id) = id {
            self.durable_dirs().insert(id);
        }
        Ok(leaf)
    }

    fn durable_dirs(&self) -> std::sync::MutexGuard<'_, HashSet<u16>> {
        // A panic while holding the lock cannot leave the set wrong in a harmful way: at worst
        // a directory is fsynced again.
        self.durable_dirs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn put_file(&self, src: &Path, key: &BlobKey) -> Result<(), StoreError> {
        let leaf = self.durable_leaf_dir(key)?;
        let dest = leaf.join(key.as_str());
        match fs::symlink_metadata(&dest) {
            Ok(meta) if meta.is_file() => {
                // Same key, same bytes. A concurrent put may have renamed it in without having
                // fsynced the directory yet, so do that before answering for it.
                sync_dir(&leaf)?;
                fs::remove_file(src).map_err(io_err("remove", src))?;
                return Ok(());
            }
            // Only tampering puts anything else there; never report it as the stored blob.
            Ok(_) => {
                let occupied = io::Error::other("occupied by something that is not a file");
                return Err(io_err("store blob at", &dest)(occupied));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspect", &dest)(e)),
        }

        let file = File::open(src).map_err(io_err("open", src))?;
        // rename keeps the source's mode, which the caller's umask chose.
        file.set_permissions(Permissions::from_mode(FILE_MODE))
            .map_err(io_err("set permissions of", src))?;
        file.sync_all().map_err(io_err("fsync", src))?;
        drop(file);

        match fs::rename(src, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::CrossesDevices => self.copy_into_place(src, &dest)?,
            Err(e) => return Err(io_err("rename into place", src)(e)),
        }
        sync_dir(&leaf)
    }

    /// The spool lives on another filesystem: copy into `tmp/` (same filesystem as `blobs/`),
    /// fsync, and rename from there so the blob still appears atomically and complete.
    fn copy_into_place(&self, src: &Path, dest: &Path) -> Result<(), StoreError> {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let staged = self.tmp.join(format!("{}.{}", std::process::id(), n));
        let copy = || -> Result<(), StoreError> {
            let mut input = File::open(src).map_err(io_err("open", src))?;
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&staged)
                .map_err(io_err("create", &staged))?;
            io::copy(&mut input, &mut out).map_err(io_err("copy into", &staged))?;
            out.sync_all().map_err(io_err("fsync", &staged))?;
            fs::rename(&staged, dest).map_err(io_err("rename into place", &staged))
        };
        if let Err(e) = copy() {
            // Best effort: a leftover is removed by the stale-file sweep at the next open.
            let _ = fs::remove_file(&staged);
            return Err(e);
        }
        // The blob is stored; a spool file we could not remove is the caller's to clean up and
        // must not turn a durable store into a reported failure.
        if let Err(e) = fs::remove_file(src) {
            tracing::warn!(error = %e, "blob stored, but removing the source file failed");
        }
        Ok(())
    }

    fn delete(&self, key: &BlobKey) -> Result<(), StoreError> {
        let path = self.blob_path(key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &path)(e)),
        }
        // Also after NotFound: a concurrent delete may not have fsynced its removal yet.
        match sync_dir(&self.leaf_dir(key)) {
            Err(StoreError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn list_shard(&self, shard: u8) -> Result<Vec<BlobKey>, StoreError> {
        let top_name = format!("{shard:02x}");
        let top = self.blobs.join(&top_name);
        let entries = match fs::read_dir(&top) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list", &top)(e)),
        };
        let mut keys = Vec::new();
        let mut ignored: u64 = 0;
        for entry in entries {
            let entry = entry.map_err(io_err("list", &top))?;
            let is_dir = entry
                .file_type()
                .map_err(io_err("inspect", &entry.path()))?
                .is_dir();
            let sub_name = entry.file_name();
            let sub_name = match sub_name.to_str() {
                Some(name) if is_dir && is_shard_name(name) => name.to_owned(),
                _ => {
                    ignored += 1;
                    continue;
                }
            };
            let sub = entry.path();
            for file in fs::read_dir(&sub).map_err(io_err("list", &sub))? {
                let file = file.map_err(io_err("list", &sub))?;
                let is_file = file
                    .file_type()
                    .map_err(io_err("inspect", &file.path()))?
                    .is_file();
                // A valid key in the wrong shard directory is unreachable through open(), so
                // it counts as junk like any other stray name.
                let key = file
                    .file_name()
                    .to_str()
                    .and_then(|name| BlobKey::parse(name).ok())
                    .filter(|key| is_file && key.shard_dirs() == (&top_name, &sub_name));
                match key {
                    Some(key) => keys.push(key),
                    None => ignored += 1,
                }
            }
        }
        if ignored > 0 {
            // Counts only: names in the tree are not ours to echo.
            tracing::warn!(
                shard,
                ignored,
                "ignored entries in the blob tree that are not blobs"
            );
        }
        keys.sort_unstable();
        Ok(keys)
    }
}

fn is_shard_name(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn create_dir_if_missing(dir: &Path) -> Result<(), StoreError> {
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err("create directory", dir)(e)),
    }
}

/// Makes the directory's entries (creations, renames, removals) durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

fn warn_if_shared(root: &Path) {
    // No let-chains: the workspace's minimum Rust is 1.85.
    let shared = fs::metadata(root).is_ok_and(|m| m.permissions().mode() & 0o077 != 0);
    if shared {
        tracing::warn!(
            root = %root.display(),
            "blob store directory is accessible to group or others; expected mode 0700"
        );
    }
}

/// Removes staging files left by a crash during a cross-filesystem copy. Best effort: a failure
/// only leaves garbage behind, never affects stored blobs.
fn remove_stale_tmp(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age > STALE_TMP_AGE);
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for LocalBlobStore {
    async fn put_file(&self, src: &Path, key: &BlobKey) -> Result<(), StoreError> {
        let (src, key) = (src.to_owned(), key.clone());
        self.blocking(move |inner| inner.put_file(&src, &key)).await
    }

    async fn open(
        &self,
        key: &BlobKey,
    ) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, StoreError> {
        let path = self.inner.blob_path(key);
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Box::new(file)),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::NotFound(key.clone())),
            Err(e) => Err(io_err("open", &path)(e)),
        }
    }

    async fn exists(&self, key: &BlobKey) -> Result<bool, StoreError> {
        let path = self.inner.blob_path(key);
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("inspect", &path)(e)),
        }
    }

    async fn len(&self, key: &BlobKey) -> Result<u64, StoreError> {
        let path = self.inner.blob_path(key);
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(meta.len()),
            Ok(_) => Err(StoreError::NotFound(key.clone())),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::NotFound(key.clone())),
            Err(e) => Err(io_err("inspect", &path)(e)),
        }
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.blocking(move |inner| inner.delete(&key)).await
    }

    async fn list_shard(&self, shard: u8) -> Result<Vec<BlobKey>, StoreError> {
        self.blocking(move |inner| inner.list_shard(shard)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use tokio::io::AsyncReadExt;

    fn key_of(bytes: &[u8]) -> BlobKey {
        BlobKey::from_digest(&Sha256::digest(bytes).into())
    }

    /// Writes `bytes` to a spool file next to (not inside) the store, as ingest would.
    fn spool(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    async fn read_all(store: &LocalBlobStore, key: &BlobKey) -> Vec<u8> {
        let mut out = Vec::new();
        store
            .open(key)
            .await
            .unwrap()
            .read_to_end(&mut out)
            .await
            .unwrap();
        out
    }

    fn setup() -> (tempfile::TempDir, LocalBlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(&dir.path().join("store")).unwrap();
        (dir, store)
    }

    #[test]
    fn keys_are_validated() {
        let key = key_of(b"x");
        assert_eq!(BlobKey::parse(key.as_str()).unwrap(), key);
        assert_eq!(key.as_str().len(), 64);
        for bad in [
            "",
            "abc",
            &key.as_str().to_uppercase(),
            &format!("{}0", key.as_str()),
            &format!("../{}", &key.as_str()[3..]),
            &format!("{}/", &key.as_str()[1..]),
        ] {
            assert!(matches!(BlobKey::parse(bad), Err(StoreError::InvalidKey)));
        }
    }

    #[tokio::test]
    async fn put_open_round_trip() {
        let (dir, store) = setup();
        let bytes = b"DICM and some pixels".repeat(1000);
        let key = key_of(&bytes);
        let src = spool(dir.path(), "spool1", &bytes);

        assert!(!store.exists(&key).await.unwrap());
        store.put_file(&src, &key).await.unwrap();
        assert!(!src.exists(), "source is moved, not copied");
        assert!(store.exists(&key).await.unwrap());
        assert_eq!(store.len(&key).await.unwrap(), bytes.len() as u64);
        assert_eq!(read_all(&store, &key).await, bytes);

        let path = store.inner.blob_path(&key);
        let (a, b) = key.shard_dirs();
        assert!(path.ends_with(format!("blobs/{a}/{b}/{key}")));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leaf = path.parent().unwrap();
        assert_eq!(
            fs::metadata(leaf).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let root = dir.path().join("store");
        assert_eq!(
            fs::metadata(root).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[tokio::test]
    async fn idempotent_put() {
        let (dir, store) = setup();
        let key = key_of(b"same");
        store
            .put_file(&spool(dir.path(), "a", b"same"), &key)
            .await
            .unwrap();
        let again = spool(dir.path(), "b", b"same");
        store.put_file(&again, &key).await.unwrap();
        assert!(!again.exists(), "the duplicate source is removed");
        assert_eq!(read_all(&store, &key).await, b"same");
    }

    #[tokio::test]
    async fn cross_filesystem_fallback_copies_durably() {
        let (dir, store) = setup();
        let key = key_of(b"far away");
        let src = spool(dir.path(), "far", b"far away");
        let dest = store
            .inner
            .durable_leaf_dir(&key)
            .unwrap()
            .join(key.as_str());
        store.inner.copy_into_place(&src, &dest).unwrap();
        assert!(!src.exists());
        assert_eq!(read_all(&store, &key).await, b"far away");
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(&store.inner.tmp).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn delete_is_idempotent() {
        let (dir, store) = setup();
        let key = key_of(b"gone");
        store
            .put_file(&spool(dir.path(), "g", b"gone"), &key)
            .await
            .unwrap();
        store.delete(&key).await.unwrap();
        assert!(!store.exists(&key).await.unwrap());
        assert!(matches!(
            store.open(&key).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.len(&key).await,
            Err(StoreError::NotFound(_))
        ));
        store.delete(&key).await.unwrap();
        // A key whose shard directories were never created.
        store.delete(&key_of(b"never stored")).await.unwrap();
    }

    #[tokio::test]
    async fn list_shard_returns_keys_and_ignores_junk() {
        let (dir, store) = setup();
        let mut keys = Vec::new();
        for i in 0..300u32 {
            let bytes = i.to_le_bytes();
            let key = key_of(&bytes);
            store
                .put_file(&spool(dir.path(), &format!("s{i}"), &bytes), &key)
                .await
                .unwrap();
            keys.push(key);
        }
        let shard = u8::from_str_radix(&keys[0].as_str()[0..2], 16).unwrap();
        let mut expected: Vec<BlobKey> = keys
            .iter()
            .filter(|k| k.as_str().starts_with(&format!("{shard:02x}")))
            .cloned()
            .collect();
        expected.sort();

        // Junk: a stray file in a leaf, a file named like a key but in the wrong shard, a
        // non-shard directory and a stray file in the shard's top directory.
        let leaf = store.inner.leaf_dir(&keys[0]);
        fs::write(leaf.join("notes.txt"), b"junk").unwrap();
        let misplaced = keys
            .iter()
            .find(|k| !k.as_str().starts_with(&format!("{shard:02x}")));
        fs::write(leaf.join(misplaced.unwrap().as_str()), b"junk").unwrap();
        let top = leaf.parent().unwrap();
        fs::create_dir(top.join("zz")).unwrap();
        fs::write(top.join("zz").join(keys[0].as_str()), b"junk").unwrap();
        fs::write(top.join("stray"), b"junk").unwrap();

        assert_eq!(store.list_shard(shard).await.unwrap(), expected);
        assert!(!expected.is_empty());

        let total: usize = {
            let mut n = 0;
            for s in 0..=255u8 {
                n += store.list_shard(s).await.unwrap().len();
            }
            n
        };
        assert_eq!(total, keys.len());
    }

    #[tokio::test]
    async fn reopen_keeps_blobs() {
        let (dir, store) = setup();
        let key = key_of(b"kept");
        store
            .put_file(&spool(dir.path(), "k", b"kept"), &key)
            .await
            .unwrap();
        drop(store);
        let store = LocalBlobStore::open(&dir.path().join("store")).unwrap();
        assert_eq!(read_all(&store, &key).await, b"kept");
    }

    #[test]
    fn trait_is_object_safe() {
        let (_dir, store) = setup();
        let _shared: Arc<dyn BlobStore> = Arc::new(store);
    }
}
