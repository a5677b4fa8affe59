//! The one way an object enters Ward: spool → pre-scan → header → validate → blob → index → ack.
//!
//! C-STORE (and later STOW-RS) hand their bytes to a [`SpoolWriter`] as they arrive and call
//! [`SpoolWriter::commit`]; a success returned from `commit` means the object is durable in the
//! blob store *and* its index row is committed, so the caller may acknowledge it. Nothing here
//! knows which protocol the bytes came by.

use std::io::{BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ward_dicom::PrescanLimits;
use ward_index::{Index, InsertOutcome, NewInstance};
use ward_store::{BlobKey, BlobStore, BlobWriter, Pieces, StoreError};
use ward_types::{InstanceAttributes, Uid};

/// DIMSE status codes of the storage service (PS3.4 B.2.3, PS3.7 C.4) that ingest failures map
/// to. STOW-RS reports the same codes in its Failure Reason attribute (PS3.18 §10.5.3).
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    /// The SOP Instance already exists with different content (PS3.7 C.4.10).
    pub const DUPLICATE_SOP_INSTANCE: u16 = 0x0111;
    /// Refused: out of resources.
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: data set does not match SOP class.
    pub const DATA_SET_MISMATCH: u16 = 0xA900;
    /// Error: cannot understand.
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
}

/// Why an object was not stored. Each maps to one storage status code; the message is safe to
/// send to the peer and to log (it never contains values from the data set).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("object exceeds the size limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("transfer syntax is not one Ward can read")]
    UnsupportedTransferSyntax,
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("{0}")]
    Mismatch(&'static str),
    #[error("the object belongs to another study than the request names")]
    OtherStudy,
    #[error("a different object with this SOP Instance UID is already stored")]
    Duplicate,
    #[error("storage failure: {0}")]
    Internal(String),
}

impl IngestError {
    pub fn status(&self) -> u16 {
        match self {
            IngestError::TooLarge { .. } | IngestError::Internal(_) => status::OUT_OF_RESOURCES,
            IngestError::UnsupportedTransferSyntax | IngestError::Malformed(_) => {
                status::CANNOT_UNDERSTAND
            }
            IngestError::Mismatch(_) | IngestError::OtherStudy => status::DATA_SET_MISMATCH,
            IngestError::Duplicate => status::DUPLICATE_SOP_INSTANCE,
        }
    }

    fn internal(e: impl std::fmt::Display) -> IngestError {
        IngestError::Internal(e.to_string())
    }
}

/// Limits applied to every incoming object.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// Largest data set accepted, in bytes.
    pub max_object_bytes: u64,
    pub prescan: PrescanLimits,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_object_bytes: 4 << 30,
            prescan: PrescanLimits::default(),
        }
    }
}

/// What the sender claims about an object before its bytes arrive (from the C-STORE command or
/// the STOW part's meta group) and who sent it.
#[derive(Debug, Clone)]
pub struct StoreRequest {
    pub sop_class: Uid,
    pub sop_instance: Uid,
    pub transfer_syntax: Uid,
    pub source_ae: Option<String>,
    /// Who sends it, for the audit trail.
    pub actor: ward_audit::Actor,
    /// The study the object must belong to (STOW-RS to `/studies/{study}`); an object of
    /// another study is refused before it is stored.
    pub expected_study: Option<Uid>,
}

/// The result of a successful ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// A new object, now durable and indexed.
    New { key: BlobKey, size: u64 },
    /// The very same object was already stored; nothing changed.
    AlreadyStored { key: BlobKey },
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Spool files of transfers that never completed, removed.
    pub spool_files_removed: u64,
    /// Blobs without an index row that passed their checks, indexed.
    pub orphan_blobs_indexed: u64,
    /// Blobs without an index row that failed their checks (never acknowledged), removed.
    pub orphan_blobs_removed: u64,
    /// Index rows whose blob is missing: acknowledged objects that are gone. Should be zero;
    /// anything else means the storage below Ward lost data.
    pub rows_missing_blob: u64,
}

/// The ingest path, shared by every association and request.
pub struct Ingest {
    store: Arc<dyn BlobStore>,
    index: Arc<dyn Index>,
    audit: Arc<ward_audit::AuditLog>,
    spool_dir: PathBuf,
    /// Objects being received in memory rather than in a spool file: see [`MEMORY_SPOOL`].
    memory_spool: Arc<tokio::sync::Semaphore>,
    limits: IngestLimits,
}

/// How many objects may be spooled in memory at once, each up to [`MEMORY_SPOOL_MAX`]: at
/// most 32 MiB in all. Most objects are small (a CT slice is half a megabyte); keeping them
/// out of the filesystem saves a file created, written, read back and removed for each, and
/// the inode allocator's search past recently removed inodes that came with it. Objects
/// beyond the slots or the size go to a spool file as before.
const MEMORY_SPOOL: usize = 16;
const MEMORY_SPOOL_MAX: usize = 2 * 1024 * 1024;
/// What a memory spool reserves at first, enough for most single images without regrowing.
const MEMORY_SPOOL_START: usize = 256 * 1024;

impl Ingest {
    /// `spool_dir` holds objects while they arrive and are checked, in plaintext: keep it
    /// owner-only, on a disk no less protected than the index's.
    pub fn new(
        store: Arc<dyn BlobStore>,
        index: Arc<dyn Index>,
        audit: Arc<ward_audit::AuditLog>,
        spool_dir: PathBuf,
        limits: IngestLimits,
    ) -> Ingest {
        Ingest {
            store,
            index,
            audit,
            spool_dir,
            memory_spool: Arc::new(tokio::sync::Semaphore::new(MEMORY_SPOOL)),
            limits,
        }
    }

    /// The audit trail every front door records into.
    pub fn audit(&self) -> &Arc<ward_audit::AuditLog> {
        &self.audit
    }

    /// Appends a record; if the trail cannot take it, the operation it records is refused.
    async fn audit_or_refuse(&self, event: ward_audit::AuditEvent) -> Result<(), IngestError> {
        self.audit.append(event).await.map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, "audit trail unavailable; refusing the store");
            IngestError::Internal("audit trail unavailable".into())
        })
    }

    pub fn index(&self) -> &Arc<dyn Index> {
        &self.index
    }

    /// Opens a spool for one object and writes its Part 10 header (zero preamble and a meta
    /// group of our own making: nothing of a sender's preamble is ever kept).
    pub async fn begin(
        self: &Arc<Self>,
        request: StoreRequest,
    ) -> Result<SpoolWriter, IngestError> {
        if !ward_dicom::is_readable_transfer_syntax(request.transfer_syntax.as_str()) {
            return Err(IngestError::UnsupportedTransferSyntax);
        }
        let mut header = Vec::with_capacity(512);
        let dataset_offset = ward_dicom::write_part10_header(
            &mut header,
            &request.sop_class,
            &request.sop_instance,
            &request.transfer_syntax,
        )
        .map_err(IngestError::internal)?;
        let spool = match Arc::clone(&self.memory_spool).try_acquire_owned() {
            Ok(slot) => {
                let mut bytes = Vec::with_capacity(MEMORY_SPOOL_START);
                bytes.extend_from_slice(&header);
                Spool::Memory { bytes, _slot: slot }
            }
            Err(_) => self.spool_file(&header).await?,
        };
        let mut blob = self.store.begin().await.map_err(IngestError::internal)?;
        blob.write(&header).await.map_err(IngestError::internal)?;
        Ok(SpoolWriter {
            ingest: Arc::clone(self),
            request,
            spool,
            blob,
            dataset_offset,
            dataset_len: 0,
        })
    }

    /// A new spool file holding `bytes` so far.
    async fn spool_file(&self, bytes: &[u8]) -> Result<Spool, IngestError> {
        // The spool name is random: no value from the peer ever reaches a path.
        let name = format!("{}.part", hex::encode(rand::random::<[u8; 16]>()));
        let path = self.spool_dir.join(name);
        let guard = SpoolGuard(Some(path.clone()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_owner_only()
            .open(&path)
            .await
            .map_err(IngestError::internal)?;
        // Peers send a data set in PDVs of 16 KiB (DCMTK's default) or HTTP chunks of a few
        // KiB; every write to a tokio file is a hand-over to the blocking pool, so they are
        // gathered first.
        let mut file = tokio::io::BufWriter::with_capacity(SPOOL_BUFFER, file);
        file.write_all(bytes).await.map_err(IngestError::internal)?;
        Ok(Spool::File { file, guard })
    }

    /// Brings the store back to a consistent state after a stop. The spool is always emptied
    /// (its files were never acknowledged). With `full_scan`, used after an unclean stop:
    ///
    /// - every blob without an index row is checked (its content must hash to its name and pass
    ///   the same checks as at ingest) and indexed. The blobs are the archive's truth: the index
    ///   commits without waiting for stable storage (see `ward_index::Durability`), so a power
    ///   cut can lose the rows of objects that were acknowledged — never their blobs, which are
    ///   fsynced first. A blob that fails the checks was never acknowledged and is removed;
    /// - every index row is checked for its blob.
    pub async fn recover(&self, full_scan: bool) -> Result<RecoveryReport, IngestError> {
        let mut report = RecoveryReport {
            spool_files_removed: self.empty_spool().await?,
            ..RecoveryReport::default()
        };
        if !full_scan {
            return Ok(report);
        }
        for shard in 0..=255u8 {
            let keys = self
                .store
                .list_shard(shard)
                .await
                .map_err(IngestError::internal)?;
            for key in keys {
                let indexed = self
                    .index
                    .has_blob(key.as_str())
                    .await
                    .map_err(IngestError::internal)?;
                if indexed {
                    continue;
                }
                match self.reindex(&key).await {
                    Ok(_) => report.orphan_blobs_indexed += 1,
                    // Nothing shows the blob is bad (the disk failed, or the keyring lacks its
                    // master key): removing it could destroy an acknowledged object.
                    Err(IngestError::Internal(reason)) => {
                        return Err(IngestError::Internal(format!(
                            "cannot check blob {key}, which has no index row: {reason}"
                        )));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "removing a blob that fails its checks");
                        self.store
                            .delete(&key)
                            .await
                            .map_err(IngestError::internal)?;
                        report.orphan_blobs_removed += 1;
                    }
                }
            }
        }
        let mut after: Option<Uid> = None;
        loop {
            let page = self
                .index
                .instances_page(after.as_ref(), 1000)
                .await
                .map_err(IngestError::internal)?;
            let Some(last) = page.last() else { break };
            after = Some(last.sop_instance_uid.clone());
            for row in &page {
                let present = match BlobKey::parse(&row.blob_key) {
                    Ok(key) => self
                        .store
                        .exists(&key)
                        .await
                        .map_err(IngestError::internal)?,
                    Err(_) => false,
                };
                if !present {
                    report.rows_missing_blob += 1;
                }
            }
        }
        Ok(report)
    }

    async fn empty_spool(&self) -> Result<u64, IngestError> {
        tokio::fs::create_dir_all(&self.spool_dir)
            .await
            .map_err(IngestError::internal)?;
        let mut entries = tokio::fs::read_dir(&self.spool_dir)
            .await
            .map_err(IngestError::internal)?;
        let mut removed = 0;
        while let Some(entry) = entries.next_entry().await.map_err(IngestError::internal)? {
            if entry.file_type().await.is_ok_and(|t| t.is_file()) {
                tokio::fs::remove_file(entry.path())
                    .await
                    .map_err(IngestError::internal)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Indexes a blob that has no row, after checking it as thoroughly as at ingest. The blob
    /// is copied to the spool for the checks, which need a file. Fails with
    /// [`IngestError::Internal`] only when the blob could not be checked, never because it is
    /// bad.
    async fn reindex(&self, key: &BlobKey) -> Result<Stored, IngestError> {
        let path = self
            .spool_dir
            .join(format!("{}.check", hex::encode(rand::random::<[u8; 16]>())));
        let guard = SpoolGuard(Some(path.clone()));
        let mut reader = self
            .store
            .open(key)
            .await
            .map_err(|e| stored_blob_error(&e))?;
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_owner_only()
            .open(&path)
            .await
            .map_err(IngestError::internal)?;
        let mut hashing = HashingWriter {
            inner: &mut file,
            hasher: Sha256::new(),
        };
        let size = tokio::io::copy(&mut reader, &mut hashing)
            .await
            .map_err(|e| match store_error_in(&e) {
                Some(stored) => stored_blob_error(stored),
                None => IngestError::internal(e),
            })?;
        let digest: [u8; 32] = hashing.hasher.finalize().into();
        if BlobKey::from_digest(&digest) != *key {
            return Err(IngestError::Malformed(
                "content does not match its name".into(),
            ));
        }
        file.flush().await.map_err(IngestError::internal)?;
        drop(file);
        let info = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || ward_dicom::read_part10_info(&path))
                .await
                .map_err(IngestError::internal)?
                .map_err(|e| IngestError::Malformed(e.to_string()))?
        };
        let request = StoreRequest {
            sop_class: info.sop_class_uid,
            sop_instance: info.sop_instance_uid,
            transfer_syntax: info.transfer_syntax,
            source_ae: None,
            actor: ward_audit::Actor::default(),
            expected_study: None,
        };
        let dataset_len = info.file_len.saturating_sub(info.dataset_offset);
        let (attrs, header) = check_object(
            Spooled::File(path),
            info.dataset_offset,
            dataset_len,
            &request,
            &self.limits.prescan,
        )
        .await?;
        drop(guard);
        let new = NewInstance {
            attrs,
            header,
            transfer_syntax: request.transfer_syntax,
            size,
            blob_key: key.as_str().to_owned(),
            source_ae: None,
            received_at_unix_ms: ward_audit::now_unix_ms(),
        };
        self.index_blob(&new, key.clone(), size).await
    }

    /// Commits the index row of a blob already durable in the store. On any outcome but a new
    /// or identical row, the blob is removed: no row will ever name it.
    async fn index_blob(
        &self,
        new: &NewInstance,
        key: BlobKey,
        size: u64,
    ) -> Result<Stored, IngestError> {
        match self.index.insert_instance(new).await {
            Ok(InsertOutcome::Inserted) => Ok(Stored::New { key, size }),
            Ok(InsertOutcome::AlreadyStored) => Ok(Stored::AlreadyStored { key }),
            Ok(InsertOutcome::Conflict { .. }) => {
                // Another association stored a different object under this UID between our
                // lookup and our insert. Our blob holds this UID's bytes and no row names it.
                let _ = self.store.delete(&key).await;
                Err(IngestError::Duplicate)
            }
            Err(ward_index::IndexError::SeriesInOtherStudy) => {
                let _ = self.store.delete(&key).await;
                Err(IngestError::Mismatch(
                    "Series Instance UID already belongs to another study",
                ))
            }
            Err(e) => {
                // Not acknowledged: the blob must not outlive the failed insert, or recovery
                // would index an object its sender was told had failed.
                let _ = self.store.delete(&key).await;
                Err(IngestError::internal(e))
            }
        }
    }
}

/// A blob that fails authentication is bad content, like one that fails the ingest checks;
/// any other store failure says nothing about the blob.
fn stored_blob_error(e: &StoreError) -> IngestError {
    match e {
        StoreError::Corrupt { .. } => IngestError::Malformed(e.to_string()),
        _ => IngestError::internal(e),
    }
}

/// The blob store's error inside an I/O error from one of its readers, if that is what it is.
fn store_error_in(e: &std::io::Error) -> Option<&StoreError> {
    e.get_ref()?.downcast_ref::<StoreError>()
}

/// Hashes what passes through on its way to a file.
struct HashingWriter<'a> {
    inner: &'a mut tokio::fs::File,
    hasher: Sha256,
}

impl tokio::io::AsyncWrite for HashingWriter<'_> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut *this.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &polled {
            this.hasher.update(&buf[..*n]);
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

impl Ingest {
    /// Opens a stored instance for sending: a reader positioned at the first byte of its data
    /// set, and the data set's length. The Part 10 header in front of it is the one Ward wrote
    /// at ingest, so its length is known without parsing it.
    pub async fn open_dataset(
        &self,
        row: &ward_index::InstanceRow,
    ) -> Result<(Box<dyn tokio::io::AsyncRead + Send + Unpin>, u64), IngestError> {
        let (pieces, len) = self.open_dataset_pieces(row).await?;
        Ok((Box::new(tokio_util::io::StreamReader::new(pieces)), len))
    }

    /// [`open_dataset`](Self::open_dataset) as pieces handed over without a copy, for a
    /// response that passes them on.
    pub async fn open_dataset_pieces(
        &self,
        row: &ward_index::InstanceRow,
    ) -> Result<(Pieces, u64), IngestError> {
        let (header, key) = part10_header_of(row)?;
        let (mut pieces, len) = self
            .store
            .open_pieces(&key)
            .await
            .map_err(IngestError::internal)?;
        let dataset_len = dataset_len(len, &header)?;
        let mut skipped = Vec::with_capacity(header.len());
        let mut rest = None;
        while skipped.len() < header.len() {
            let Some(piece) = pieces.next().await else {
                break;
            };
            let piece = piece.map_err(IngestError::internal)?;
            let wanted = header.len() - skipped.len();
            if piece.len() > wanted {
                skipped.extend_from_slice(&piece[..wanted]);
                rest = Some(piece.slice(wanted..));
            } else {
                skipped.extend_from_slice(&piece);
            }
        }
        check_stored_header(&skipped, &header)?;
        let pieces: Pieces = Box::pin(futures_util::stream::iter(rest.map(Ok)).chain(pieces));
        Ok((pieces, dataset_len))
    }
}

/// The Part 10 header Ward wrote in front of a stored instance's data set, and its blob's key.
fn part10_header_of(row: &ward_index::InstanceRow) -> Result<(Vec<u8>, BlobKey), IngestError> {
    let mut header = Vec::with_capacity(512);
    ward_dicom::write_part10_header(
        &mut header,
        &row.sop_class_uid,
        &row.sop_instance_uid,
        &row.transfer_syntax,
    )
    .map_err(IngestError::internal)?;
    let key = BlobKey::parse(&row.blob_key).map_err(IngestError::internal)?;
    Ok((header, key))
}

/// The data set's length in a stored object of `len` bytes that starts with `header`.
fn dataset_len(len: u64, header: &[u8]) -> Result<u64, IngestError> {
    len.checked_sub(header.len() as u64)
        .ok_or_else(|| IngestError::Internal("stored object shorter than its header".into()))
}

fn check_stored_header(stored: &[u8], expected: &[u8]) -> Result<(), IngestError> {
    if stored == expected {
        Ok(())
    } else {
        Err(IngestError::Internal(
            "stored object's header differs from its index row".into(),
        ))
    }
}

/// Bytes of an incoming object gathered before each write to its spool file.
const SPOOL_BUFFER: usize = 256 * 1024;

/// Objects up to this size are converted or decoded in memory when a peer did not accept the
/// transfer syntax they are stored in; larger ones are sent only as stored.
pub const CONVERT_LIMIT: u64 = ward_dicom::MAX_IN_MEMORY_LEN;

/// Whether a stored object can be sent in explicit or implicit VR little endian: native
/// syntaxes are re-encoded, RLE and JPEG pixel data decoded, within [`CONVERT_LIMIT`].
pub fn convertible(row: &ward_index::InstanceRow) -> bool {
    let ts = row.transfer_syntax.as_str();
    (ward_dicom::is_native_transfer_syntax(ts) || ward_dicom::is_decodable_transfer_syntax(ts))
        && row.size <= CONVERT_LIMIT
}

impl Ingest {
    /// Reads a stored object's data set and converts it to the uncompressed `target`, decoding
    /// its pixel data if it is stored compressed. Check [`convertible`] first.
    pub async fn converted(
        &self,
        row: &ward_index::InstanceRow,
        target: &str,
    ) -> Result<Vec<u8>, String> {
        let target = target.to_owned();
        self.with_whole_dataset(row, move |bytes, from| {
            if ward_dicom::is_native_transfer_syntax(from) {
                ward_dicom::transcode_native(bytes, from, &target)
            } else {
                ward_dicom::decode_to_native(bytes, from, &target)
            }
            .map_err(|e| e.to_string())
        })
        .await
    }

    /// A stored object read whole and parsed, pixel data included, for the WADO-RS frame, bulk
    /// data and rendering routes; with `decode`, compressed pixel data is decoded to native
    /// first. Objects over [`CONVERT_LIMIT`] are not read: check `row.size` first.
    pub async fn image(
        &self,
        row: &ward_index::InstanceRow,
        decode: bool,
    ) -> Result<dicom_object::InMemDicomObject, ImageError> {
        self.with_whole_dataset(row, move |bytes, ts| {
            ward_dicom::read_image(bytes, ts, decode).map_err(ImageError::Decode)
        })
        .await
    }

    /// Reads a stored object's data set into memory (at most [`CONVERT_LIMIT`] bytes),
    /// pre-scans it and hands it, with its transfer syntax, to `work` on a blocking thread.
    async fn with_whole_dataset<T: Send + 'static, E: From<String> + Send + 'static>(
        &self,
        row: &ward_index::InstanceRow,
        work: impl FnOnce(&[u8], &str) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let (mut reader, len) = self.open_dataset(row).await.map_err(|e| e.to_string())?;
        let mut bytes = Vec::with_capacity(usize::try_from(len.min(CONVERT_LIMIT)).unwrap_or(0));
        tokio::io::AsyncReadExt::read_to_end(&mut (&mut reader).take(CONVERT_LIMIT), &mut bytes)
            .await
            .map_err(|e| e.to_string())?;
        let from = row.transfer_syntax.as_str().to_owned();
        tokio::task::spawn_blocking(move || {
            // The blob passed the pre-scan at ingest; a disk that changed it since must not make
            // dicom-object allocate from a corrupted length.
            ward_dicom::prescan_dataset(&bytes[..], bytes.len() as u64, &from, &Default::default())
                .map_err(|e| e.to_string())?;
            work(&bytes, &from)
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// Why [`Ingest::image`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The stored object could not be read or did not pass the pre-scan.
    #[error("{0}")]
    Read(String),
    /// The object was read but could not be parsed or its pixel data decoded.
    #[error(transparent)]
    Decode(ward_dicom::TranscodeError),
}

impl From<String> for ImageError {
    fn from(e: String) -> ImageError {
        ImageError::Read(e)
    }
}

impl Ingest {
    /// A stored object's attributes up to Pixel Data, for WADO-RS metadata. The object is read
    /// twice as a stream, never whole: once through the pre-scan (the disk may have changed
    /// since ingest, and dicom-object allocates from declared lengths), once to parse.
    pub async fn metadata(
        &self,
        row: &ward_index::InstanceRow,
    ) -> Result<dicom_object::InMemDicomObject, IngestError> {
        let (reader, len) = self.open_dataset(row).await?;
        let ts = row.transfer_syntax.as_str().to_owned();
        let handle = tokio::runtime::Handle::current();
        let scan_handle = handle.clone();
        tokio::task::spawn_blocking(move || {
            let bridge = tokio_util::io::SyncIoBridge::new_with_handle(reader, scan_handle);
            ward_dicom::prescan_dataset(
                std::io::BufReader::new(bridge),
                len,
                &ts,
                &Default::default(),
            )
        })
        .await
        .map_err(IngestError::internal)?
        .map_err(IngestError::internal)?;
        let key = BlobKey::parse(&row.blob_key).map_err(IngestError::internal)?;
        let reader = self.store.open(&key).await.map_err(IngestError::internal)?;
        tokio::task::spawn_blocking(move || {
            let bridge = tokio_util::io::SyncIoBridge::new_with_handle(reader, handle);
            ward_dicom::read_metadata(std::io::BufReader::new(bridge))
        })
        .await
        .map_err(IngestError::internal)?
        .map_err(IngestError::internal)
    }
}

/// Removes a spool file when a transfer is abandoned (association aborted, error, panic
/// elsewhere) unless the file has been handed over to the blob store.
struct SpoolGuard(Option<PathBuf>);

impl Drop for SpoolGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

trait OwnerOnly {
    fn mode_owner_only(&mut self) -> &mut Self;
}

impl OwnerOnly for tokio::fs::OpenOptions {
    #[cfg(unix)]
    fn mode_owner_only(&mut self) -> &mut Self {
        self.mode(0o600)
    }
    #[cfg(not(unix))]
    fn mode_owner_only(&mut self) -> &mut Self {
        self
    }
}

/// One object being received. Dropping it without [`commit`](SpoolWriter::commit) discards it.
pub struct SpoolWriter {
    ingest: Arc<Ingest>,
    request: StoreRequest,
    /// The plaintext, kept for the checks at the end.
    spool: Spool,
    /// The same bytes, hashed and sealed into the blob store as they arrive: by the end of
    /// the transfer most of the object is written, and the kernel has started writing it to
    /// the device.
    blob: Box<dyn BlobWriter>,
    dataset_offset: u64,
    dataset_len: u64,
}

/// Where an object's plaintext waits for its checks.
enum Spool {
    Memory {
        bytes: Vec<u8>,
        _slot: tokio::sync::OwnedSemaphorePermit,
    },
    File {
        file: tokio::io::BufWriter<tokio::fs::File>,
        guard: SpoolGuard,
    },
}

/// A complete spool, as the checks read it.
enum Spooled {
    Memory(Vec<u8>),
    File(PathBuf),
}

impl SpoolWriter {
    /// Appends data set bytes as they arrive.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), IngestError> {
        let limit = self.ingest.limits.max_object_bytes;
        let new_len = self.dataset_len.saturating_add(chunk.len() as u64);
        if new_len > limit {
            return Err(IngestError::TooLarge { limit });
        }
        match &mut self.spool {
            Spool::Memory { bytes, .. } if bytes.len() + chunk.len() <= MEMORY_SPOOL_MAX => {
                bytes.extend_from_slice(chunk);
            }
            Spool::Memory { bytes, .. } => {
                // Too big for memory: on to a file, and the slot goes back.
                let mut file = self.ingest.spool_file(bytes).await?;
                if let Spool::File { file, .. } = &mut file {
                    file.write_all(chunk).await.map_err(IngestError::internal)?;
                }
                self.spool = file;
            }
            Spool::File { file, .. } => {
                file.write_all(chunk).await.map_err(IngestError::internal)?;
            }
        }
        self.blob
            .write(chunk)
            .await
            .map_err(IngestError::internal)?;
        self.dataset_len = new_len;
        Ok(())
    }

    /// Checks the complete object and makes it durable. Only an `Ok` may be acknowledged.
    pub async fn commit(self) -> Result<Stored, IngestError> {
        let ingest = Arc::clone(&self.ingest);
        let request = self.request.clone();
        let mut patient = None;
        let step = self.commit_inner(&mut patient).await;
        let record =
            |result: &Result<Stored, IngestError>| store_event(&request, patient.as_ref(), result);
        match step {
            Step::Done(result) => {
                // The acknowledgement waits for the record: a store the trail does not show
                // must not be reported as done.
                ingest.audit_or_refuse(record(&result)).await?;
                result
            }
            Step::Index { new, key, size } => {
                // The index commit and the audit record are both needed before the answer and
                // independent of each other: they run together, and a rare failed insert is
                // followed by a second record that says so.
                let assumed = Ok(Stored::New {
                    key: key.clone(),
                    size,
                });
                let (indexed, audited) = tokio::join!(
                    ingest.index_blob(&new, key, size),
                    ingest.audit_or_refuse(record(&assumed))
                );
                if !matches!(indexed, Ok(Stored::New { .. })) {
                    ingest.audit_or_refuse(record(&indexed)).await?;
                }
                audited?;
                indexed
            }
        }
    }

    async fn commit_inner(self, patient: &mut Option<(String, String)>) -> Step {
        match self.prepare(patient).await {
            Ok(step) => step,
            Err(e) => Step::Done(Err(e)),
        }
    }

    /// Checks the object and makes its blob durable; what is left is the index row.
    async fn prepare(self, patient: &mut Option<(String, String)>) -> Result<Step, IngestError> {
        // Held until this returns: the memory slot, or the spool file (removed on drop).
        let (spooled, _slot, _file) = match self.spool {
            Spool::Memory { bytes, _slot } => (Spooled::Memory(bytes), Some(_slot), None),
            Spool::File { mut file, guard } => {
                // No fsync of the spool: the blob store has the object sealed in a file of
                // its own and makes that durable, so the plaintext never needs the disk.
                file.flush().await.map_err(IngestError::internal)?;
                let Some(path) = guard.0.clone() else {
                    return Err(IngestError::Internal("spool file already released".into()));
                };
                (Spooled::File(path), None, Some(guard))
            }
        };
        let ingest = Arc::clone(&self.ingest);
        let check = check_object(
            spooled,
            self.dataset_offset,
            self.dataset_len,
            &self.request,
            &ingest.limits.prescan,
        );

        // Syncing the blob to disk is the slowest step of all: it runs while the object is
        // checked and the index is asked whether it has the instance already. The blob becomes
        // visible only once the object passed. A duplicate costs no sync (same content, same
        // blob: the store has it), and its staged copy, if any, is dropped with its file.
        let (existing, checked, staged) = tokio::join!(
            ingest.index.instance(&self.request.sop_instance),
            check,
            self.blob.finish()
        );
        let (attrs, header) = checked?;
        *patient = Some(patient_of(&attrs));
        let staged = staged.map_err(IngestError::internal)?;
        let key = staged.key().clone();
        if let Some(existing) = existing.map_err(IngestError::internal)? {
            return Ok(Step::Done(if existing.blob_key == key.as_str() {
                Ok(Stored::AlreadyStored { key })
            } else {
                Err(IngestError::Duplicate)
            }));
        }
        ingest
            .store
            .commit(staged)
            .await
            .map_err(IngestError::internal)?;

        let size = self.dataset_offset + self.dataset_len;
        let new = NewInstance {
            attrs,
            header,
            transfer_syntax: self.request.transfer_syntax.clone(),
            size,
            blob_key: key.as_str().to_owned(),
            source_ae: self.request.source_ae.clone(),
            received_at_unix_ms: ward_audit::now_unix_ms(),
        };
        Ok(Step::Index {
            new: Box::new(new),
            key,
            size,
        })
    }
}

/// Pre-scans the data set at `offset` of a spooled Part 10 object, then reads its header:
/// blocking.
fn check_part10<R: std::io::Read + Seek>(
    mut spool: R,
    offset: u64,
    len: u64,
    ts: &Uid,
    limits: &PrescanLimits,
) -> Result<(InstanceAttributes, Vec<u8>), IngestError> {
    spool
        .seek(SeekFrom::Start(offset))
        .map_err(IngestError::internal)?;
    ward_dicom::prescan_dataset(&mut spool, len, ts.as_str(), limits)
        .map_err(|e| IngestError::Malformed(e.to_string()))?;
    spool.rewind().map_err(IngestError::internal)?;
    ward_dicom::read_header_with_copy_from(spool).map_err(|e| IngestError::Malformed(e.to_string()))
}

/// The Patient ID and Study Instance UID of a checked object, for its audit record.
fn patient_of(attrs: &InstanceAttributes) -> (String, String) {
    (
        attrs.patient_id.clone().unwrap_or_default(),
        attrs
            .study_instance_uid
            .as_ref()
            .map(|u| u.as_str().to_owned())
            .unwrap_or_default(),
    )
}

/// Where a commit stands once the blob question is settled.
enum Step {
    /// Answered without (or before) an index row: a duplicate, or a refusal.
    Done(Result<Stored, IngestError>),
    /// The blob is durable; its index row remains to be committed.
    Index {
        // Boxed: the row carries every indexed attribute and the header copy.
        new: Box<NewInstance>,
        key: BlobKey,
        size: u64,
    },
}

/// The audit record of a store and its outcome.
fn store_event(
    request: &StoreRequest,
    patient: Option<&(String, String)>,
    result: &Result<Stored, IngestError>,
) -> ward_audit::AuditEvent {
    let mut detail = serde_json::json!({
        "sop_class_uid": request.sop_class.as_str(),
        "sop_instance_uid": request.sop_instance.as_str(),
        "transfer_syntax_uid": request.transfer_syntax.as_str(),
    });
    if let Some((patient_id, study)) = patient {
        detail["patient_id"] = serde_json::Value::from(patient_id.as_str());
        detail["study_instance_uid"] = serde_json::Value::from(study.as_str());
    }
    let outcome = match result {
        Ok(Stored::New { size, .. }) => {
            detail["size"] = serde_json::Value::from(*size);
            ward_audit::Outcome::Success
        }
        Ok(Stored::AlreadyStored { .. }) => {
            detail["already_stored"] = serde_json::Value::Bool(true);
            ward_audit::Outcome::Success
        }
        Err(e) => ward_audit::Outcome::Failure {
            status: Some(e.status()),
            reason: e.to_string(),
        },
    };
    ward_audit::AuditEvent::new(ward_audit::Action::Store, request.actor.clone())
        .with_detail(detail)
        .with_outcome(outcome)
}

/// Pre-scans a Part 10 file's data set (at `offset`, `len` bytes), reads its header and checks
/// it against what was announced. Returns the index attributes and the header copy that
/// answers queries on the others.
async fn check_object(
    spooled: Spooled,
    offset: u64,
    len: u64,
    request: &StoreRequest,
    limits: &PrescanLimits,
) -> Result<(InstanceAttributes, Vec<u8>), IngestError> {
    let ts = request.transfer_syntax.clone();
    let limits = limits.clone();
    let (attrs, header) = tokio::task::spawn_blocking(
        move || -> Result<(InstanceAttributes, Vec<u8>), IngestError> {
            match spooled {
                Spooled::Memory(bytes) => {
                    check_part10(std::io::Cursor::new(bytes), offset, len, &ts, &limits)
                }
                Spooled::File(path) => {
                    let file = std::fs::File::open(&path).map_err(IngestError::internal)?;
                    let reader = BufReader::with_capacity(64 * 1024, file);
                    check_part10(reader, offset, len, &ts, &limits)
                }
            }
        },
    )
    .await
    .map_err(IngestError::internal)??;

    if attrs.sop_instance_uid.as_ref() != Some(&request.sop_instance) {
        return Err(IngestError::Mismatch(
            "SOP Instance UID differs from the request",
        ));
    }
    if attrs.sop_class_uid.as_ref() != Some(&request.sop_class) {
        return Err(IngestError::Mismatch(
            "SOP Class UID differs from the request",
        ));
    }
    if attrs.study_instance_uid.is_none() {
        return Err(IngestError::Mismatch("Study Instance UID is missing"));
    }
    if request
        .expected_study
        .as_ref()
        .is_some_and(|study| attrs.study_instance_uid.as_ref() != Some(study))
    {
        return Err(IngestError::OtherStudy);
    }
    if attrs.series_instance_uid.is_none() {
        return Err(IngestError::Mismatch("Series Instance UID is missing"));
    }
    Ok((attrs, header))
}

/// What [`verify`] found wrong with one blob or index row. Nothing in it is patient data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub blob_key: String,
    /// The instance whose index row names the blob, when one does.
    pub sop_instance_uid: Option<Uid>,
    pub kind: ProblemKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// An index row names a blob the store does not have.
    Missing,
    /// The blob cannot be read through: damaged, tampered with, or sealed under a master key the
    /// keyring lacks (the reason says which).
    Unreadable(String),
    /// The plaintext does not hash to the blob's name.
    WrongContent,
    /// The blob is sound but no index row names it: an object whose row a crash lost (the next
    /// start after an unclean stop indexes it), or one being stored right now.
    Unindexed,
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProblemKind::Missing => f.write_str("blob missing"),
            ProblemKind::Unreadable(reason) => write!(f, "unreadable: {reason}"),
            ProblemKind::WrongContent => f.write_str("content does not match its SHA-256 name"),
            ProblemKind::Unindexed => f.write_str("no index row names this blob"),
        }
    }
}

/// What [`verify`] looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub rows: u64,
    /// Blobs read through to the end, and their plaintext bytes.
    pub blobs: u64,
    pub bytes: u64,
    pub problems: u64,
}

/// Reads every blob through the store (decrypting and authenticating it), checks that its
/// plaintext hashes to its name and that an index row names it, and that every index row's
/// blob exists. Each problem goes to `on_problem` as it is found. Memory stays bounded: rows
/// are read a page at a time and blobs a chunk at a time.
///
/// Only reads, so it may run beside a server; a blob stored meanwhile may then briefly lack its
/// row, which is why blobs without one are looked up again at the end before being reported.
pub async fn verify(
    store: &dyn BlobStore,
    index: &dyn Index,
    mut on_problem: impl FnMut(&Problem),
) -> Result<VerifyReport, IngestError> {
    let mut report = VerifyReport::default();
    let mut report_problem = |report: &mut VerifyReport, problem: Problem| {
        report.problems += 1;
        on_problem(&problem);
    };
    let mut after: Option<Uid> = None;
    loop {
        let page = index
            .instances_page(after.as_ref(), 1000)
            .await
            .map_err(IngestError::internal)?;
        let Some(last) = page.last() else { break };
        after = Some(last.sop_instance_uid.clone());
        for row in page {
            report.rows += 1;
            let checked = match BlobKey::parse(&row.blob_key) {
                Ok(key) => check_blob(store, &key, &mut report).await,
                Err(_) => Err(ProblemKind::Missing),
            };
            if let Err(kind) = checked {
                let problem = Problem {
                    blob_key: row.blob_key,
                    sop_instance_uid: Some(row.sop_instance_uid),
                    kind,
                };
                report_problem(&mut report, problem);
            }
        }
    }
    let mut unindexed = Vec::new();
    for shard in 0..=255u8 {
        let keys = store
            .list_shard(shard)
            .await
            .map_err(IngestError::internal)?;
        for key in keys {
            let indexed = index
                .has_blob(key.as_str())
                .await
                .map_err(IngestError::internal)?;
            if !indexed {
                unindexed.push(key);
            }
        }
    }
    for key in unindexed {
        let indexed = index
            .has_blob(key.as_str())
            .await
            .map_err(IngestError::internal)?;
        if indexed {
            continue;
        }
        let kind = match check_blob(store, &key, &mut report).await {
            Ok(()) => ProblemKind::Unindexed,
            Err(kind) => kind,
        };
        let problem = Problem {
            blob_key: key.as_str().to_owned(),
            sop_instance_uid: None,
            kind,
        };
        report_problem(&mut report, problem);
    }
    Ok(report)
}

/// Reads one blob to the end and checks its plaintext against its name.
async fn check_blob(
    store: &dyn BlobStore,
    key: &BlobKey,
    report: &mut VerifyReport,
) -> Result<(), ProblemKind> {
    let mut reader = match store.open(key).await {
        Ok(reader) => reader,
        Err(StoreError::NotFound(_)) => return Err(ProblemKind::Missing),
        Err(e) => return Err(ProblemKind::Unreadable(e.to_string())),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                report.bytes += n as u64;
            }
            Err(e) => return Err(ProblemKind::Unreadable(e.to_string())),
        }
    }
    report.blobs += 1;
    let digest: [u8; 32] = hasher.finalize().into();
    if BlobKey::from_digest(&digest) == *key {
        Ok(())
    } else {
        Err(ProblemKind::WrongContent)
    }
}
