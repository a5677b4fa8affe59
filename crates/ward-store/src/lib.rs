//! Durable, content-addressed, encrypted blob storage: the only crate that writes DICOM
//! objects to disk.
//!
//! A blob's name is the SHA-256 of its plaintext ([`BlobKey`]), never anything a peer sent, so
//! no UID, AE title or file name from the network ever becomes part of a path. The index keeps
//! that name, so it is also the plaintext digest `ward verify` checks every blob against.
//!
//! On disk every blob is sealed (AES-256-GCM, in 64 KiB chunks, under a random data key that
//! a master key from the [`Keyring`] wraps; format in `sealed.rs`): a stolen disk or backup
//! gives away no patient data without the keyring, and a changed byte fails authentication
//! instead of being served.
//!
//! Layout under the store root (directories `0700`, files `0600`):
//!
//! ```text
//! blobs/ab/abcd…(64 hex)   stored blobs, sharded by the first byte of the key
//! tmp/                     blobs being sealed, renamed into blobs/ once checked
//! ```
//!
//! One level of 256 shard directories, all created (durably) when the store opens: storing a
//! blob never creates a directory, so it costs one file fsync and one directory fsync, which
//! run side by side (see [`BlobStore::commit`]). A
//! second level (`ab/cd/`, as earlier versions of Ward wrote) would cost a `mkdir` and a
//! parent fsync for most objects of a young archive; ext4's hashed directories keep lookups
//! fast with hundreds of thousands of entries per shard.

mod keyring;
mod sealed;

pub use keyring::{KeyId, Keyring};

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sealed::{BlobReader, HEADER_LEN, Header, StreamSealer};
use sha2::{Digest, Sha256};

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Staging files older than this are leftovers of a crash while a blob was being sealed; no
/// put in progress takes this long, so [`LocalBlobStore::open`] removes them.
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
    /// The stored bytes fail authentication or are not a blob: damaged or tampered with.
    #[error("blob {key} is damaged: {reason}")]
    Corrupt { key: BlobKey, reason: String },
    /// Distinct from damage: the blob may be intact and the keyring the wrong one.
    #[error(
        "blob {key} is sealed under master key {}, which is not in the keyring",
        join_ids(ids)
    )]
    UnknownMasterKey { key: BlobKey, ids: Vec<KeyId> },
    /// The reason never quotes the file: it holds keys.
    #[error("keyring {}: {reason}", path.display())]
    Keyring { path: PathBuf, reason: String },
    #[error("a cryptographic operation failed")]
    Crypto,
    #[error("blob store worker task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn join_ids(ids: &[KeyId]) -> String {
    let ids: Vec<String> = ids.iter().map(KeyId::to_string).collect();
    ids.join(" or ")
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

    /// Shard directory name (`ab`). Slicing cannot fail: the key is 64 ASCII characters by
    /// construction.
    fn shard_dir(&self) -> &str {
        &self.0[0..2]
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Durable blob storage, shared as `Arc<dyn BlobStore>`. Callers see plaintext only; how the
/// bytes are kept at rest is the implementation's business.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// First half of a put: a writer that takes the plaintext as it arrives and keeps it,
    /// sealed, out of sight until [`BlobWriter::finish`] stages it and
    /// [`commit`](Self::commit) makes it visible. Writing while the object is still being
    /// received, rather than after, takes the write out of the time the sender waits for its
    /// answer; staging lets the caller check the object before committing it. Dropping the
    /// writer or the [`StagedBlob`] discards the blob.
    async fn begin(&self) -> Result<Box<dyn BlobWriter>, StoreError>;
    /// Second half of a put: makes a staged blob visible under its key, durably. Once this
    /// returns `Ok` the blob survives `kill -9` and power loss. Until then a power cut may leave
    /// a torn blob under its key: it fails authentication, no index row names it (the index
    /// row is written only after this returns), and recovery removes it.
    async fn commit(&self, staged: StagedBlob) -> Result<(), StoreError>;
    /// Opens a blob for streaming reads of its plaintext. A read fails (`InvalidData`) as soon
    /// as the stored bytes fail authentication; nothing unauthenticated is ever returned.
    async fn open(
        &self,
        key: &BlobKey,
    ) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, StoreError> {
        let (pieces, _) = self.open_pieces(key).await?;
        Ok(Box::new(tokio_util::io::StreamReader::new(pieces)))
    }
    /// [`open`](Self::open) as a stream of pieces of the plaintext, each handed over without a
    /// copy, for a caller that passes the bytes on rather than parsing them; with the
    /// plaintext length.
    async fn open_pieces(&self, key: &BlobKey) -> Result<(Pieces, u64), StoreError>;
    async fn exists(&self, key: &BlobKey) -> Result<bool, StoreError>;
    /// The plaintext length.
    async fn len(&self, key: &BlobKey) -> Result<u64, StoreError>;
    /// Removes a blob durably (the directory is fsynced); a missing blob is not an error.
    async fn delete(&self, key: &BlobKey) -> Result<(), StoreError>;
    /// Keys whose first byte (first two hex chars) is `shard`, for recovery and verification
    /// scans in bounded memory. Files in the tree that are not valid keys are ignored (and
    /// counted and logged at warn, without names).
    async fn list_shard(&self, shard: u8) -> Result<Vec<BlobKey>, StoreError>;
}

/// A blob's plaintext in pieces: see [`BlobStore::open_pieces`]. A piece that fails
/// authentication is an error, never bytes.
pub type Pieces =
    std::pin::Pin<Box<dyn futures_core::Stream<Item = io::Result<bytes::Bytes>> + Send>>;

/// A blob being written: see [`BlobStore::begin`].
#[async_trait::async_trait]
pub trait BlobWriter: Send {
    /// Appends plaintext.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError>;
    /// Ends the blob and stages it: written, on its way to stable storage (the sync runs in
    /// the background while the caller checks the object; [`BlobStore::commit`] waits for it),
    /// not yet visible under its key, the SHA-256 of all the plaintext written
    /// ([`StagedBlob::key`]). If a blob with this key already exists, the new copy is dropped
    /// without being synced (content-addressed: same key = same bytes).
    async fn finish(self: Box<Self>) -> Result<StagedBlob, StoreError>;
}

/// A blob sealed and written, not yet under its name: see [`BlobWriter::finish`].
#[must_use = "a staged blob is discarded unless committed"]
pub struct StagedBlob {
    key: BlobKey,
    /// The staged file; `None` when the store already had the blob, so nothing was written.
    file: Option<PathBuf>,
    /// The staged file's fdatasync, started when it was staged.
    synced: Option<tokio::task::JoinHandle<Result<(), StoreError>>>,
}

impl StagedBlob {
    /// The blob's name: the SHA-256 of its plaintext.
    pub fn key(&self) -> &BlobKey {
        &self.key
    }
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            // Best effort: a leftover is removed by the stale-file sweep at the next open.
            let _ = fs::remove_file(file);
        }
    }
}

/// Sealed blobs as files on a local (POSIX) filesystem.
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
    keyring: Arc<Keyring>,
    tmp_counter: AtomicU64,
}

impl LocalBlobStore {
    /// Opens the store at `root`, creating it (mode `0700`) and its subdirectories if missing.
    /// New blobs are sealed under the keyring's active key; any key of it opens old ones.
    pub fn open(root: &Path, keyring: Arc<Keyring>) -> Result<Self, StoreError> {
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
        // The 256 shard directories exist, durably, before any blob is stored, so that
        // storing a blob never has to create one.
        for shard in 0..=u8::MAX {
            let dir = blobs.join(format!("{shard:02x}"));
            create_dir_if_missing(&dir)?;
            flatten_legacy_shard(&dir)?;
        }
        sync_dir(&blobs)?;
        remove_stale_tmp(&tmp);
        Ok(LocalBlobStore {
            inner: Arc::new(Inner {
                blobs,
                tmp,
                keyring,
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

    /// Opens a blob file and authenticates its header, in one hand-over to the blocking pool.
    /// The file is left positioned at the first chunk, and its length is checked against the
    /// header's, so a truncated or extended blob fails here, before anything is read from it.
    async fn open_sealed(&self, key: &BlobKey) -> Result<(File, Header, PathBuf), StoreError> {
        let key = key.clone();
        self.blocking(move |inner| inner.open_sealed(&key)).await
    }
}

impl Inner {
    fn open_sealed(&self, key: &BlobKey) -> Result<(File, Header, PathBuf), StoreError> {
        let path = self.blob_path(key);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StoreError::NotFound(key.clone()));
            }
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let meta = file.metadata().map_err(io_err("inspect", &path))?;
        if !meta.is_file() {
            return Err(StoreError::NotFound(key.clone()));
        }
        if meta.len() < HEADER_LEN as u64 {
            return Err(StoreError::Corrupt {
                key: key.clone(),
                reason: "shorter than its header".into(),
            });
        }
        let mut bytes = [0u8; HEADER_LEN];
        io::Read::read_exact(&mut file, &mut bytes).map_err(io_err("read", &path))?;
        let header = Header::open(&bytes, &self.keyring, key)?;
        if meta.len() != header.file_len() {
            return Err(StoreError::Corrupt {
                key: key.clone(),
                reason: "its length differs from what its header records (truncated or extended)"
                    .into(),
            });
        }
        Ok((file, header, path))
    }

    fn shard_dir(&self, key: &BlobKey) -> PathBuf {
        self.blobs.join(key.shard_dir())
    }

    fn blob_path(&self, key: &BlobKey) -> PathBuf {
        self.shard_dir(key).join(key.as_str())
    }

    /// Creates a new, empty file under `tmp/` (the same filesystem as `blobs/`, so that it
    /// can be renamed into place atomically) for a blob to be written into.
    fn create_staging(&self) -> Result<(File, PathBuf), StoreError> {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp.join(format!("{}.{}", std::process::id(), n));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(io_err("create", &path))?;
        Ok((file, path))
    }

    /// The end of [`BlobWriter::finish`]: the last sealed bytes and the header written, unless
    /// the store has the blob already (then `staged.file` is `None`).
    fn stage(
        &self,
        staged: StagedBlob,
        file: &File,
        tail: (&[u8], u64),
        header: &[u8; HEADER_LEN],
    ) -> Result<StagedBlob, StoreError> {
        let Some(path) = &staged.file else {
            return Ok(staged);
        };
        let dest = self.blob_path(&staged.key);
        match fs::symlink_metadata(&dest) {
            // Same key, same bytes: nothing to keep (dropping `staged` removes the file).
            Ok(meta) if meta.is_file() => {
                return Ok(StagedBlob {
                    key: staged.key.clone(),
                    file: None,
                    synced: None,
                });
            }
            // Only tampering puts anything else there; never report it as the stored blob.
            Ok(_) => {
                let occupied = io::Error::other("occupied by something that is not a file");
                return Err(io_err("store blob at", &dest)(occupied));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspect", &dest)(e)),
        }
        let (bytes, offset) = tail;
        file.write_all_at(bytes, offset)
            .map_err(io_err("write", path))?;
        file.write_all_at(header, 0)
            .map_err(io_err("write", path))?;
        Ok(staged)
    }

    /// Puts a staged file under its name and makes the name durable; the caller syncs the
    /// file's data meanwhile.
    fn place(&self, key: &BlobKey, file: &Path) -> Result<(), StoreError> {
        // The shard directory was made durable when the store opened.
        let shard = self.shard_dir(key);
        if let Err(e) = fs::rename(file, shard.join(key.as_str())) {
            let _ = fs::remove_file(file);
            return Err(io_err("rename into place", file)(e));
        }
        sync_dir(&shard)
    }

    /// Makes a blob the store already had durable before answering for it: a concurrent put
    /// may have renamed it in without its data or its name having been synced yet.
    fn sync_existing(&self, key: &BlobKey) -> Result<(), StoreError> {
        let path = self.blob_path(key);
        File::open(&path)
            .and_then(|f| f.sync_data())
            .map_err(io_err("fsync", &path))?;
        sync_dir(&self.shard_dir(key))
    }

    /// Re-seals a blob's data key under the keyring's active master key, rewriting only its
    /// header's key slots, in place (see `sealed.rs` for why that is crash-safe). Returns
    /// whether anything was written.
    fn rewrap(&self, key: &BlobKey) -> Result<bool, StoreError> {
        let path = self.blob_path(key);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StoreError::NotFound(key.clone()));
            }
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let mut bytes = [0u8; HEADER_LEN];
        match file.read_exact_at(&mut bytes, 0) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                return Err(StoreError::Corrupt {
                    key: key.clone(),
                    reason: "shorter than its header".into(),
                });
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        }
        let writes = Header::open(&bytes, &self.keyring, key)?.rewrap_writes(&self.keyring, key)?;
        for (offset, slot) in &writes {
            file.write_all_at(slot, *offset)
                .map_err(io_err("write", &path))?;
            file.sync_data().map_err(io_err("fsync", &path))?;
        }
        Ok(!writes.is_empty())
    }

    fn delete(&self, key: &BlobKey) -> Result<(), StoreError> {
        let path = self.blob_path(key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &path)(e)),
        }
        // Also after NotFound: a concurrent delete may not have fsynced its removal yet.
        match sync_dir(&self.shard_dir(key)) {
            Err(StoreError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn list_shard(&self, shard: u8) -> Result<Vec<BlobKey>, StoreError> {
        let name = format!("{shard:02x}");
        let dir = self.blobs.join(&name);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list", &dir)(e)),
        };
        let mut keys = Vec::new();
        let mut ignored: u64 = 0;
        for entry in entries {
            let entry = entry.map_err(io_err("list", &dir))?;
            let is_file = entry
                .file_type()
                .map_err(io_err("inspect", &entry.path()))?
                .is_file();
            // A valid key in the wrong shard directory is unreachable through open(), so it
            // counts as junk like any other stray name.
            let key = entry
                .file_name()
                .to_str()
                .and_then(|name| BlobKey::parse(name).ok())
                .filter(|key| is_file && key.shard_dir() == name);
            match key {
                Some(key) => keys.push(key),
                None => ignored += 1,
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

/// Moves blobs that an earlier version of Ward kept one level deeper (`ab/cd/<key>`) into
/// their shard directory `ab/`, durably, and removes the emptied `cd/` directories. Only
/// valid keys that belong to the shard move; anything else stays where it is, untouched.
/// Interrupted at any point, it is simply resumed at the next open: a blob is in exactly one
/// of the two places at every moment.
fn flatten_legacy_shard(shard: &Path) -> Result<(), StoreError> {
    let Some(shard_name) = shard.file_name().and_then(|n| n.to_str()) else {
        return Ok(());
    };
    // Listing every shard at every start would cost seconds in a large archive. A directory's
    // link count is two plus its subdirectories on the filesystems that count them (ext4, XFS);
    // where it is anything else (btrfs says 1), look.
    let links = fs::metadata(shard)
        .map_err(io_err("inspect", shard))?
        .nlink();
    if links == 2 {
        return Ok(());
    }
    let mut moved = false;
    for entry in fs::read_dir(shard).map_err(io_err("list", shard))? {
        let entry = entry.map_err(io_err("list", shard))?;
        let is_dir = entry
            .file_type()
            .map_err(io_err("inspect", &entry.path()))?
            .is_dir();
        if !is_dir || !entry.file_name().to_str().is_some_and(is_shard_name) {
            continue;
        }
        let legacy = entry.path();
        for file in fs::read_dir(&legacy).map_err(io_err("list", &legacy))? {
            let file = file.map_err(io_err("list", &legacy))?;
            let key = file
                .file_name()
                .to_str()
                .and_then(|name| BlobKey::parse(name).ok())
                .filter(|key| key.shard_dir() == shard_name);
            if let Some(key) = key {
                let dest = shard.join(key.as_str());
                fs::rename(file.path(), &dest).map_err(io_err("move", &file.path()))?;
                moved = true;
            }
        }
        if moved {
            // The new names must be durable before the old directory can go.
            sync_dir(shard)?;
            sync_dir(&legacy)?;
            moved = false;
        }
        // Left in place if it still holds anything that is not a blob of this shard.
        if fs::remove_dir(&legacy).is_ok() {
            sync_dir(shard)?;
        }
    }
    Ok(())
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

/// Plaintext gathered before it is handed to the blocking pool to be hashed, sealed and
/// written: every hand-over costs thread switches.
const WRITE_BATCH: usize = 128 * 1024;

/// Hashes and seals plaintext as it arrives into a file under `tmp/`, leaving room for the
/// header, which is written last. The work runs on the blocking pool one batch at a time,
/// while the caller goes on receiving the next batch: on another core, beside the network,
/// TLS and parsing that feed it.
struct LocalBlobWriter {
    inner: Arc<Inner>,
    /// The staging file, removed on drop until handed over to a [`StagedBlob`].
    path: Option<PathBuf>,
    /// Plaintext of the next batch.
    plain: Vec<u8>,
    sealing: Sealing,
}

/// Where the hashing and sealing state is.
enum Sealing {
    Idle(Box<Sealer>),
    /// A batch is on the blocking pool; the state comes back with its result.
    Busy(tokio::task::JoinHandle<Result<Box<Sealer>, StoreError>>),
    /// An earlier batch failed: the writer is unusable.
    Failed,
}

/// The state that follows a blob's plaintext through the blocking pool.
struct Sealer {
    file: File,
    hasher: Sha256,
    stream: StreamSealer,
    /// Sealed bytes of the batch being written; reused.
    sealed: Vec<u8>,
    /// Where the next sealed bytes go in the file.
    offset: u64,
    /// A spent plaintext buffer, handed back for the next batch.
    spare: Vec<u8>,
    /// For I/O error messages: the staging file.
    path: PathBuf,
}

impl Sealer {
    /// Hashes, seals and writes one batch, and asks the kernel to start writing it to the
    /// device now, so that the fsync at the end waits for little more than the tail. Blocking.
    fn absorb(&mut self, plain: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(plain);
        self.stream.push(plain, &mut self.sealed)?;
        self.file
            .write_all_at(&self.sealed, self.offset)
            .map_err(io_err("write", &self.path))?;
        // Advice only: writeback starts early where the kernel takes the hint (Linux starts
        // it for DONTNEED), and nothing is lost where it does not.
        let len = std::num::NonZeroU64::new(self.sealed.len() as u64);
        let _ = rustix::fs::fadvise(&self.file, self.offset, len, rustix::fs::Advice::DontNeed);
        self.offset += self.sealed.len() as u64;
        self.sealed.clear();
        Ok(())
    }
}

impl LocalBlobWriter {
    /// The sealing state, once the batch in flight (if any) is done.
    async fn settle(&mut self) -> Result<Box<Sealer>, StoreError> {
        match std::mem::replace(&mut self.sealing, Sealing::Failed) {
            Sealing::Idle(sealer) => Ok(sealer),
            Sealing::Busy(job) => job.await?,
            Sealing::Failed => Err(StoreError::Io {
                op: "write",
                path: self.path.clone().unwrap_or_default(),
                source: io::Error::other("an earlier write to this blob failed"),
            }),
        }
    }
}

#[async_trait::async_trait]
impl BlobWriter for LocalBlobWriter {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.plain.extend_from_slice(bytes);
        if self.plain.len() >= WRITE_BATCH {
            let mut sealer = self.settle().await?;
            let plain = std::mem::replace(&mut self.plain, std::mem::take(&mut sealer.spare));
            self.sealing = Sealing::Busy(tokio::task::spawn_blocking(move || {
                sealer.absorb(&plain)?;
                sealer.spare = plain;
                sealer.spare.clear();
                Ok(sealer)
            }));
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<StagedBlob, StoreError> {
        let mut sealer = self.settle().await?;
        let plain = std::mem::take(&mut self.plain);
        let file = self.path.take();
        let inner = Arc::clone(&self.inner);
        let (mut staged, sealer) = tokio::task::spawn_blocking(move || {
            sealer.hasher.update(&plain);
            let key = BlobKey::from_digest(&sealer.hasher.clone().finalize().into());
            // From here on the staged blob owns the file and removes it if anything fails.
            let staged = StagedBlob {
                key,
                file,
                synced: None,
            };
            sealer.stream.push(&plain, &mut sealer.sealed)?;
            let header = sealer
                .stream
                .finish(&inner.keyring, &staged.key, &mut sealer.sealed)?;
            let tail = (sealer.sealed.as_slice(), sealer.offset);
            let staged = inner.stage(staged, &sealer.file, tail, &header)?;
            Ok::<_, StoreError>((staged, sealer))
        })
        .await??;
        if staged.file.is_some() {
            let Sealer { file, path, .. } = *sealer;
            staged.synced = Some(tokio::task::spawn_blocking(move || {
                file.sync_data().map_err(io_err("fsync", &path))
            }));
        }
        Ok(staged)
    }
}

impl Drop for LocalBlobWriter {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Best effort: a leftover is removed by the stale-file sweep at the next open. A
            // batch still in flight writes into the removed file and is dropped with it.
            let _ = fs::remove_file(path);
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for LocalBlobStore {
    async fn begin(&self) -> Result<Box<dyn BlobWriter>, StoreError> {
        let (file, path) = self.blocking(Inner::create_staging).await?;
        let sealer = Sealer {
            file,
            hasher: Sha256::new(),
            stream: StreamSealer::new()?,
            sealed: Vec::new(),
            offset: HEADER_LEN as u64,
            spare: Vec::new(),
            path: path.clone(),
        };
        Ok(Box::new(LocalBlobWriter {
            inner: Arc::clone(&self.inner),
            path: Some(path),
            plain: Vec::new(),
            sealing: Sealing::Idle(Box::new(sealer)),
        }))
    }

    async fn commit(&self, mut staged: StagedBlob) -> Result<(), StoreError> {
        let (Some(file), Some(synced)) = (staged.file.take(), staged.synced.take()) else {
            let key = staged.key.clone();
            return self.blocking(move |inner| inner.sync_existing(&key)).await;
        };
        // The name and the data are synced side by side: one flush's wait instead of two in a
        // row. A power cut before both are done can leave a torn blob under its name, which
        // no index row names and recovery removes (see the trait).
        let key = staged.key.clone();
        let (placed, synced) = tokio::join!(
            self.blocking(move |inner| inner.place(&key, &file)),
            async { synced.await? }
        );
        if let Err(e) = synced {
            if placed.is_ok() {
                // Never leave unsynced data under a name a later put would trust as stored.
                let _ = self.delete(&staged.key).await;
            }
            return Err(e);
        }
        placed
    }

    async fn open_pieces(&self, key: &BlobKey) -> Result<(Pieces, u64), StoreError> {
        let (file, header, path) = self.open_sealed(key).await?;
        let reader = BlobReader::new(file, &header, key.clone(), path)?;
        Ok((Box::pin(reader), header.plaintext_len()))
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
        let (_, header, _) = self.open_sealed(key).await?;
        Ok(header.plaintext_len())
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.blocking(move |inner| inner.delete(&key)).await
    }

    async fn list_shard(&self, shard: u8) -> Result<Vec<BlobKey>, StoreError> {
        self.blocking(move |inner| inner.list_shard(shard)).await
    }
}

/// What a master key rotation did.
#[derive(Debug)]
pub struct Rotation {
    /// The master key that now wraps every readable blob's data key.
    pub active: KeyId,
    /// Whether this run finished a rotation an earlier one had started (the keyring still held
    /// more than one key) rather than starting one.
    pub resumed: bool,
    /// Blobs whose data key was re-wrapped.
    pub rewrapped: u64,
    /// Blobs already wrapped under the active key alone.
    pub already_current: u64,
    /// Blobs whose header no key of the keyring opens (damaged, or sealed under a key the
    /// keyring never had). Retiring keys changes nothing for them, so they do not hold it up.
    pub unreadable: u64,
    /// Blobs that could not be re-wrapped for another reason (I/O). While there are any, the
    /// old keys stay in the keyring, and a later run resumes the rotation.
    pub failed: u64,
    /// Keys removed from the keyring.
    pub retired: Vec<KeyId>,
}

/// Rotates the master key of the store at `root`: adds a fresh key to the keyring at
/// `keyring_path` and makes it the active one (saved before any blob changes, so every blob
/// stays readable at every step), re-wraps every blob's data key under it, and then removes the
/// old keys from the keyring. Only the small header of each blob is rewritten; the sealed
/// chunks stay as they are. A run interrupted by a crash is resumed by running again.
///
/// No server may use the store meanwhile: it would go on sealing under the key it loaded.
/// Every blob that is not re-wrapped is passed to `on_problem`.
pub async fn rotate_master_key(
    root: &Path,
    keyring_path: &Path,
    mut on_problem: impl FnMut(&BlobKey, &StoreError),
) -> Result<Rotation, StoreError> {
    let mut keyring = Keyring::load(keyring_path)?;
    let resumed = keyring.ids().len() > 1;
    if !resumed {
        keyring.add_active()?;
        keyring.save(keyring_path)?;
    }
    let mut report = Rotation {
        active: keyring.active_id(),
        resumed,
        rewrapped: 0,
        already_current: 0,
        unreadable: 0,
        failed: 0,
        retired: Vec::new(),
    };
    let store = LocalBlobStore::open(root, Arc::new(keyring))?;
    for shard in 0..=255u8 {
        for key in store.list_shard(shard).await? {
            let owned = key.clone();
            match store.blocking(move |inner| inner.rewrap(&owned)).await {
                Ok(true) => report.rewrapped += 1,
                Ok(false) => report.already_current += 1,
                Err(e) => {
                    match e {
                        StoreError::Corrupt { .. } | StoreError::UnknownMasterKey { .. } => {
                            report.unreadable += 1;
                        }
                        _ => report.failed += 1,
                    }
                    on_problem(&key, &e);
                }
            }
        }
    }
    if report.failed == 0 {
        let mut keyring = Keyring::load(keyring_path)?;
        report.retired = keyring.retire_inactive();
        if !report.retired.is_empty() {
            keyring.save(keyring_path)?;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use sha2::{Digest, Sha256};
    use tokio::io::{AsyncRead, AsyncReadExt};

    const CHUNK: usize = 64 * 1024;
    const TAG: usize = 16;

    fn key_of(bytes: &[u8]) -> BlobKey {
        BlobKey::from_digest(&Sha256::digest(bytes).into())
    }

    /// Bytes that repeat only every 251, so a chunk moved elsewhere never reads the same.
    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Writes `bytes` through a blob writer in pieces that fall across chunk boundaries, as
    /// data arrives from a peer, and stages the blob.
    async fn stage(store: &LocalBlobStore, bytes: &[u8], key: &BlobKey) -> StagedBlob {
        let mut writer = store.begin().await.unwrap();
        for piece in bytes.chunks(10_007) {
            writer.write(piece).await.unwrap();
        }
        let staged = writer.finish().await.unwrap();
        assert_eq!(staged.key(), key, "named by the SHA-256 of its plaintext");
        staged
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

    /// Reads until the end or the first error: what came out, and the error if there was one.
    async fn read_until_error(
        mut reader: impl AsyncRead + Unpin,
    ) -> (Vec<u8>, Option<std::io::Error>) {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    fn keyring() -> Arc<Keyring> {
        Arc::new(Keyring::generate().unwrap())
    }

    fn setup() -> (tempfile::TempDir, LocalBlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(&dir.path().join("store"), keyring()).unwrap();
        (dir, store)
    }

    /// Stages and commits, as ingest does.
    async fn put_bytes(store: &LocalBlobStore, bytes: &[u8], key: &BlobKey) {
        let staged = stage(store, bytes, key).await;
        store.commit(staged).await.unwrap();
    }

    async fn put(store: &LocalBlobStore, bytes: &[u8]) -> BlobKey {
        let key = key_of(bytes);
        put_bytes(store, bytes, &key).await;
        key
    }

    fn sealed_len(plain: usize) -> usize {
        sealed::HEADER_LEN + plain + plain.div_ceil(CHUNK).max(1) * TAG
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

        assert!(!store.exists(&key).await.unwrap());
        let staged = stage(&store, &bytes, &key).await;
        assert!(
            !store.exists(&key).await.unwrap(),
            "not visible before commit"
        );
        assert_eq!(fs::read_dir(&store.inner.tmp).unwrap().count(), 1);
        store.commit(staged).await.unwrap();
        assert!(store.exists(&key).await.unwrap());
        assert_eq!(store.len(&key).await.unwrap(), bytes.len() as u64);
        assert_eq!(read_all(&store, &key).await, bytes);

        let path = store.inner.blob_path(&key);
        assert!(path.ends_with(format!("blobs/{}/{key}", key.shard_dir())));
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
        assert_eq!(fs::read_dir(&store.inner.tmp).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn no_plaintext_reaches_the_blob_file() {
        let (_dir, store) = setup();
        let bytes = b"DOE^JANE 1970-01-01 ".repeat(10_000);
        let key = put(&store, &bytes).await;
        let raw = fs::read(store.inner.blob_path(&key)).unwrap();
        assert!(!raw.windows(8).any(|w| w == b"DOE^JANE"));
        assert_eq!(raw.len(), sealed_len(bytes.len()));
        assert_eq!(read_all(&store, &key).await, bytes);
    }

    #[tokio::test]
    async fn round_trip_across_chunk_boundaries() {
        let (_dir, store) = setup();
        for len in [
            0,
            1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK,
            3 * CHUNK + 17,
            9 * CHUNK + 5,
        ] {
            let bytes = content(len);
            let key = put(&store, &bytes).await;
            assert_eq!(store.len(&key).await.unwrap(), len as u64, "{len}");
            let on_disk = fs::metadata(store.inner.blob_path(&key)).unwrap().len();
            assert_eq!(on_disk, sealed_len(len) as u64, "{len}");
            assert_eq!(read_all(&store, &key).await, bytes, "{len}");
            // Small reads split chunks across calls.
            let mut reader = store.open(&key).await.unwrap();
            let mut out = Vec::new();
            let mut small = [0u8; 7];
            loop {
                let n = reader.read(&mut small).await.unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&small[..n]);
            }
            assert_eq!(out, bytes, "{len} in small reads");
            // As pieces: whole authenticated batches of at most 256 KiB, nothing lost.
            let (pieces, plain_len) = store.open_pieces(&key).await.unwrap();
            assert_eq!(plain_len, len as u64);
            let pieces: Vec<bytes::Bytes> = pieces.map(Result::unwrap).collect().await;
            assert!(
                pieces
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 256 * 1024)
            );
            assert_eq!(pieces.concat(), bytes, "{len} in pieces");
        }
    }

    /// Hands out at most 5 bytes per poll and is pending every other time, as a slow disk or
    /// socket might.
    /// A source that gives at most 5 bytes per read.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
    }

    impl std::io::Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = (self.bytes.len() - self.at).min(5).min(out.len());
            out[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// A reader over the chunks of `raw` (a whole blob file) that skips the file-length check
    /// `open` makes, to exercise the stream's own checks.
    fn stream_over(
        store: &LocalBlobStore,
        key: &BlobKey,
        raw: &[u8],
    ) -> impl AsyncRead + Unpin + use<> {
        let header: [u8; sealed::HEADER_LEN] = raw[..sealed::HEADER_LEN].try_into().unwrap();
        let header = Header::open(&header, &store.inner.keyring, key).unwrap();
        let chunks = Trickle {
            bytes: raw[sealed::HEADER_LEN..].to_vec(),
            at: 0,
        };
        let pieces = BlobReader::new(chunks, &header, key.clone(), PathBuf::from("test")).unwrap();
        tokio_util::io::StreamReader::new(pieces)
    }

    #[tokio::test]
    async fn a_trickling_source_reads_whole() {
        let (_dir, store) = setup();
        let bytes = content(2 * CHUNK + 3);
        let key = put(&store, &bytes).await;
        let raw = fs::read(store.inner.blob_path(&key)).unwrap();
        let (out, err) = read_until_error(stream_over(&store, &key, &raw)).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(out, bytes);
    }

    #[tokio::test]
    async fn damaged_chunks_fail_without_yielding_their_bytes() {
        let (_dir, store) = setup();
        let bytes = content(2 * CHUNK + 100);
        let key = put(&store, &bytes).await;
        let path = store.inner.blob_path(&key);
        let good = fs::read(&path).unwrap();
        let chunk_at = |i: usize| sealed::HEADER_LEN + i * (CHUNK + TAG);

        let flip = |at: usize| {
            let mut raw = good.clone();
            raw[at] ^= 0x01;
            raw
        };
        let swap = {
            let mut raw = good.clone();
            let (first, second) = (chunk_at(0), chunk_at(1));
            let chunk0 = good[first..second].to_vec();
            raw.copy_within(second..chunk_at(2), first);
            raw[second..chunk_at(2)].copy_from_slice(&chunk0);
            raw
        };
        // (what was done, the file, how many plaintext bytes may come out before the error)
        let cases = [
            ("ciphertext byte in chunk 1", flip(chunk_at(1) + 10), CHUNK),
            ("tag of chunk 0", flip(chunk_at(1) - 1), 0),
            ("last chunk's last byte", flip(good.len() - 1), 2 * CHUNK),
            ("chunks 0 and 1 swapped", swap, 0),
        ];
        for (what, raw, allowed) in cases {
            fs::write(&path, &raw).unwrap();
            let (out, err) = read_until_error(store.open(&key).await.unwrap()).await;
            let err = err.unwrap_or_else(|| panic!("{what}: read succeeded"));
            assert_eq!(err.kind(), ErrorKind::InvalidData, "{what}");
            assert!(
                err.to_string().contains("fails authentication"),
                "{what}: {err}"
            );
            assert_eq!(out.len(), allowed, "{what}");
            assert_eq!(out, bytes[..out.len()], "{what}");
            // The same through pieces: what authenticated, then the error.
            let (mut pieces, _) = store.open_pieces(&key).await.unwrap();
            let mut out = Vec::new();
            let err = loop {
                match pieces.next().await {
                    Some(Ok(piece)) => out.extend_from_slice(&piece),
                    Some(Err(e)) => break e,
                    None => panic!("{what}: pieces ended without an error"),
                }
            };
            assert_eq!(err.kind(), ErrorKind::InvalidData, "{what}");
            assert_eq!(out, bytes[..allowed], "{what}");
        }

        // Length changes are caught when the blob is opened, before any byte is read...
        let cases = [
            ("last chunk cut short", good[..good.len() - 1].to_vec()),
            ("last chunk dropped", good[..chunk_at(2)].to_vec()),
            ("a byte appended", [good.as_slice(), &[0]].concat()),
        ];
        for (what, raw) in &cases {
            fs::write(&path, raw).unwrap();
            let err = store.open(&key).await.err();
            assert!(
                matches!(err, Some(StoreError::Corrupt { .. })),
                "{what}: {err:?}"
            );
            assert!(store.len(&key).await.is_err(), "{what}");
        }
        // ...and by the stream itself should the file change under an open reader.
        // Each chunk that authenticates comes out; the stream fails where the damage is.
        for ((what, raw), allowed) in cases.iter().zip([2 * CHUNK, 2 * CHUNK, bytes.len()]) {
            let (out, err) = read_until_error(stream_over(&store, &key, raw)).await;
            assert!(err.is_some(), "{what}: read succeeded");
            assert_eq!(out, bytes[..allowed], "{what}");
        }
    }

    #[tokio::test]
    async fn blobs_of_the_first_format_still_open() {
        let (_dir, store) = setup();
        for len in [0, 1, CHUNK, 2 * CHUNK + 100] {
            let bytes = content(len);
            let key = key_of(&bytes);
            let raw = sealed::seal_length_in_chunks(&store.inner.keyring, &key, &bytes).unwrap();
            assert_eq!(raw.len(), sealed_len(len), "{len}");
            let path = store.inner.blob_path(&key);
            fs::write(&path, &raw).unwrap();
            assert_eq!(store.len(&key).await.unwrap(), len as u64, "{len}");
            assert_eq!(read_all(&store, &key).await, bytes, "{len}");

            // The version is authenticated like the rest of the header: relabelled, the blob
            // does not open.
            let mut relabelled = raw.clone();
            relabelled[8..10].copy_from_slice(&2u16.to_be_bytes());
            fs::write(&path, &relabelled).unwrap();
            assert!(store.open(&key).await.is_err(), "{len}");
            fs::remove_file(&path).unwrap();
        }
    }

    #[tokio::test]
    async fn any_header_change_is_refused() {
        let (_dir, store) = setup();
        let bytes = content(CHUNK + 5);
        let key = put(&store, &bytes).await;
        let path = store.inner.blob_path(&key);
        let good = fs::read(&path).unwrap();
        // Every byte of the fixed header and of the used key slot.
        for at in 0..26 + 64 {
            let mut raw = good.clone();
            raw[at] ^= 0x80;
            fs::write(&path, &raw).unwrap();
            let err = store.open(&key).await.err();
            assert!(
                matches!(
                    err,
                    Some(StoreError::Corrupt { .. } | StoreError::UnknownMasterKey { .. })
                ),
                "byte {at}: {err:?}"
            );
        }
        fs::write(&path, &good).unwrap();
        assert_eq!(read_all(&store, &key).await, bytes);

        // Not a blob at all, and too short to be one.
        for junk in [b"junk".repeat(100), b"junk".to_vec()] {
            fs::write(&path, &junk).unwrap();
            let err = store.open(&key).await.err();
            assert!(matches!(err, Some(StoreError::Corrupt { .. })), "{err:?}");
        }
    }

    #[tokio::test]
    async fn a_blob_moved_to_another_name_does_not_open() {
        let (_dir, store) = setup();
        let key = put(&store, b"the real content").await;
        let other = key_of(b"another object");
        fs::copy(store.inner.blob_path(&key), store.inner.blob_path(&other)).unwrap();
        let err = store.open(&other).await.err();
        assert!(matches!(err, Some(StoreError::Corrupt { .. })), "{err:?}");
    }

    #[tokio::test]
    async fn the_wrong_master_key_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let right = keyring();
        let store = LocalBlobStore::open(&root, Arc::clone(&right)).unwrap();
        let key = put(&store, b"sealed under the right key").await;

        // Another archive's keyring: the blob names a key it does not have.
        let other = LocalBlobStore::open(&root, keyring()).unwrap();
        let err = other.open(&key).await.err();
        assert!(
            matches!(&err, Some(StoreError::UnknownMasterKey { ids, .. }) if ids == &[right.active_id()]),
            "{err:?}"
        );
        assert!(other.len(&key).await.is_err());

        // The same key id with other key bytes.
        let forged = dir.path().join("forged");
        let id = right.active_id();
        let text = format!("version 1\nactive {id}\nkey {id} {}\n", "11".repeat(32));
        fs::write(&forged, text).unwrap();
        fs::set_permissions(&forged, fs::Permissions::from_mode(0o600)).unwrap();
        let forged =
            LocalBlobStore::open(&root, Arc::new(Keyring::load(&forged).unwrap())).unwrap();
        let err = forged.open(&key).await.err();
        assert!(matches!(err, Some(StoreError::Corrupt { .. })), "{err:?}");
    }

    /// The bytes of a blob file after its header: rotation must never touch them.
    fn chunks_of(store: &LocalBlobStore, key: &BlobKey) -> Vec<u8> {
        fs::read(store.inner.blob_path(key)).unwrap()[sealed::HEADER_LEN..].to_vec()
    }

    /// Which of a blob's two key slots hold anything.
    fn used_slots(store: &LocalBlobStore, key: &BlobKey) -> [bool; 2] {
        let raw = fs::read(store.inner.blob_path(key)).unwrap();
        [26..90, 90..154].map(|range| raw[range].iter().any(|b| *b != 0))
    }

    #[tokio::test]
    async fn rotation_rewraps_every_blob_and_retires_the_old_key() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let keys = dir.path().join("master-keys");
        let first = Keyring::generate().unwrap();
        first.save(&keys).unwrap();
        let old_id = first.active_id();
        let old = Arc::new(first);
        let store = LocalBlobStore::open(&root, Arc::clone(&old)).unwrap();
        let mut stored = Vec::new();
        for bytes in [Vec::new(), content(10), content(3 * CHUNK + 1)] {
            let key = put(&store, &bytes).await;
            stored.push((key.clone(), bytes, chunks_of(&store, &key)));
        }

        let mut problems = 0;
        let report = rotate_master_key(&root, &keys, |_, _| problems += 1)
            .await
            .unwrap();
        assert_eq!(problems, 0);
        assert!(!report.resumed);
        assert_ne!(report.active, old_id);
        assert_eq!(
            (report.rewrapped, report.already_current, report.failed),
            (3, 0, 0)
        );
        assert_eq!(report.retired, vec![old_id]);
        let now = Arc::new(Keyring::load(&keys).unwrap());
        assert_eq!(now.ids(), vec![report.active]);

        let rotated = LocalBlobStore::open(&root, Arc::clone(&now)).unwrap();
        let stale = LocalBlobStore::open(&root, old).unwrap();
        for (key, bytes, chunks) in &stored {
            assert_eq!(&read_all(&rotated, key).await, bytes);
            assert_eq!(&chunks_of(&rotated, key), chunks, "only the header changes");
            assert_eq!(used_slots(&rotated, key), [false, true]);
            assert!(matches!(
                stale.open(key).await,
                Err(StoreError::UnknownMasterKey { .. })
            ));
        }

        // Again: the slots swap back, and new blobs are sealed under the active key.
        let report = rotate_master_key(&root, &keys, |_, _| problems += 1)
            .await
            .unwrap();
        assert_eq!(report.rewrapped, 3);
        let now = Arc::new(Keyring::load(&keys).unwrap());
        let rotated = LocalBlobStore::open(&root, now).unwrap();
        for (key, bytes, _) in &stored {
            assert_eq!(&read_all(&rotated, key).await, bytes);
            assert_eq!(used_slots(&rotated, key), [true, false]);
        }
        let fresh = put(&rotated, b"after rotation").await;
        assert_eq!(read_all(&rotated, &fresh).await, b"after rotation");
    }

    #[tokio::test]
    async fn an_interrupted_rotation_loses_nothing_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let keys = dir.path().join("master-keys");
        let mut keyring = Keyring::generate().unwrap();
        keyring.save(&keys).unwrap();
        let only_old = Arc::new(Keyring::load(&keys).unwrap());
        let store = LocalBlobStore::open(&root, Arc::clone(&only_old)).unwrap();
        let bytes = content(CHUNK + 1);
        let key = put(&store, &bytes).await;
        let damaged = put(&store, b"its header will be damaged").await;

        // The crash: the new key is saved, and one blob got its new slot but still has its old.
        let new_id = keyring.add_active().unwrap();
        keyring.save(&keys).unwrap();
        let path = store.inner.blob_path(&key);
        let raw = fs::read(&path).unwrap();
        let header = Header::open(raw[..154].try_into().unwrap(), &keyring, &key).unwrap();
        let writes = header.rewrap_writes(&keyring, &key).unwrap();
        assert_eq!(writes.len(), 2);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&writes[0].1, writes[0].0).unwrap();
        assert_eq!(used_slots(&store, &key), [true, true]);
        assert_eq!(
            read_all(&store, &key).await,
            bytes,
            "the old key still opens it"
        );

        // A torn write of the new slot leaves the old one.
        let mut torn = writes[0].1;
        torn[40..].fill(0xEE);
        file.write_all_at(&torn, writes[0].0).unwrap();
        assert_eq!(read_all(&store, &key).await, bytes);
        // A blob no key opens is reported, and does not hold up retirement.
        let damaged_path = store.inner.blob_path(&damaged);
        let mut raw = fs::read(&damaged_path).unwrap();
        raw[40] ^= 1;
        fs::write(&damaged_path, raw).unwrap();

        let mut reported = Vec::new();
        let report = rotate_master_key(&root, &keys, |key, e| {
            reported.push((key.clone(), e.to_string()));
        })
        .await
        .unwrap();
        assert!(report.resumed);
        assert_eq!(report.active, new_id);
        assert_eq!((report.rewrapped, report.unreadable), (1, 1));
        assert_eq!(reported.len(), 1);
        assert_eq!(reported[0].0, damaged);
        assert_eq!(report.retired, vec![only_old.active_id()]);
        let now = Arc::new(Keyring::load(&keys).unwrap());
        let store = LocalBlobStore::open(&root, now).unwrap();
        assert_eq!(read_all(&store, &key).await, bytes);
        assert_eq!(used_slots(&store, &key).iter().filter(|u| **u).count(), 1);
    }

    #[tokio::test]
    async fn a_dropped_stage_leaves_nothing() {
        let (_dir, store) = setup();
        let key = key_of(b"refused");
        let staged = stage(&store, b"refused", &key).await;
        drop(staged);
        assert!(!store.exists(&key).await.unwrap());
        assert_eq!(fs::read_dir(&store.inner.tmp).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn idempotent_put() {
        let (_dir, store) = setup();
        let key = key_of(b"same");
        put_bytes(&store, b"same", &key).await;
        let before = fs::read(store.inner.blob_path(&key)).unwrap();
        let staged = stage(&store, b"same", &key).await;
        assert_eq!(
            fs::read_dir(&store.inner.tmp).unwrap().count(),
            0,
            "nothing kept for a blob already stored"
        );
        store.commit(staged).await.unwrap();
        assert_eq!(fs::read(store.inner.blob_path(&key)).unwrap(), before);
        assert_eq!(read_all(&store, &key).await, b"same");
    }

    #[tokio::test]
    async fn delete_is_idempotent() {
        let (_dir, store) = setup();
        let key = key_of(b"gone");
        put_bytes(&store, b"gone", &key).await;
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
        let (_dir, store) = setup();
        let mut keys = Vec::new();
        for i in 0..300u32 {
            let bytes = i.to_le_bytes();
            let key = key_of(&bytes);
            put_bytes(&store, &bytes, &key).await;
            keys.push(key);
        }
        let shard = u8::from_str_radix(&keys[0].as_str()[0..2], 16).unwrap();
        let mut expected: Vec<BlobKey> = keys
            .iter()
            .filter(|k| k.as_str().starts_with(&format!("{shard:02x}")))
            .cloned()
            .collect();
        expected.sort();

        // Junk: a stray file, a file named like a key but in the wrong shard, and a
        // directory that is not a legacy shard holding a file named like a key.
        let dir_of_shard = store.inner.shard_dir(&keys[0]);
        fs::write(dir_of_shard.join("notes.txt"), b"junk").unwrap();
        let misplaced = keys
            .iter()
            .find(|k| !k.as_str().starts_with(&format!("{shard:02x}")));
        fs::write(dir_of_shard.join(misplaced.unwrap().as_str()), b"junk").unwrap();
        fs::create_dir(dir_of_shard.join("zz")).unwrap();
        fs::write(dir_of_shard.join("zz").join(keys[0].as_str()), b"junk").unwrap();

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
    async fn blobs_of_the_two_level_layout_move_up_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let keyring = keyring();
        let store = LocalBlobStore::open(&root, Arc::clone(&keyring)).unwrap();
        let keys: Vec<BlobKey> = (0..40u32)
            .map(|i| i.to_be_bytes())
            .map(|bytes| key_of(&bytes))
            .collect();
        for (i, key) in keys.iter().enumerate() {
            let bytes = (i as u32).to_be_bytes();
            put_bytes(&store, &bytes, key).await;
        }
        drop(store);
        // Rearrange them as earlier versions kept them: blobs/ab/cd/<key>.
        for key in &keys {
            let flat = root.join("blobs").join(key.shard_dir()).join(key.as_str());
            let legacy = flat.with_file_name(&key.as_str()[2..4]);
            fs::create_dir_all(&legacy).unwrap();
            fs::rename(&flat, legacy.join(key.as_str())).unwrap();
        }
        // A legacy directory that also holds something that is not a blob stays, with it.
        let kept = root
            .join("blobs")
            .join(keys[0].shard_dir())
            .join(&keys[0].as_str()[2..4]);
        fs::write(kept.join("notes.txt"), b"not a blob").unwrap();

        let store = LocalBlobStore::open(&root, keyring).unwrap();
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(read_all(&store, key).await, (i as u32).to_be_bytes());
        }
        let mut listed = Vec::new();
        for shard in 0..=255u8 {
            listed.extend(store.list_shard(shard).await.unwrap());
        }
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(listed, expected);
        assert!(kept.join("notes.txt").exists());
        let legacy_dirs = fs::read_dir(root.join("blobs"))
            .unwrap()
            .flat_map(|shard| fs::read_dir(shard.unwrap().path()).unwrap())
            .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_dir())
            .count();
        assert_eq!(
            legacy_dirs, 1,
            "only the directory holding a stray file is left"
        );
    }

    #[tokio::test]
    async fn reopen_keeps_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = keyring();
        let store = LocalBlobStore::open(&dir.path().join("store"), Arc::clone(&keyring)).unwrap();
        let key = key_of(b"kept");
        put_bytes(&store, b"kept", &key).await;
        drop(store);
        let store = LocalBlobStore::open(&dir.path().join("store"), keyring).unwrap();
        assert_eq!(read_all(&store, &key).await, b"kept");
    }

    #[test]
    fn trait_is_object_safe() {
        let (_dir, store) = setup();
        let _shared: Arc<dyn BlobStore> = Arc::new(store);
    }
}
