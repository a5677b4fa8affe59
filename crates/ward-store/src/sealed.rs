//! The blob file format: the plaintext sealed with AES-256-GCM in fixed-size chunks under a
//! random per-blob data key, which is itself sealed under a master key in the header.
//!
//! ```text
//! offset size  field
//!      0    8  magic "WARDBLB1"
//!      8    2  format version (2; version 1 is still read)  ┐
//!     10    4  plaintext bytes per chunk (65,536)           │ the "fixed" header,
//!     14    8  plaintext length                             │ integers big-endian
//!     22    4  nonce prefix (random)                        ┘
//!     26   64  key slot 0: master key id (4, 0 = empty), nonce (12), sealed data key (32 + 16)
//!     90   64  key slot 1: the same
//!    154       chunk 0, chunk 1, …: each its ciphertext followed by its 16-byte tag
//! ```
//!
//! Why it is built this way:
//! - Chunk `i` is sealed with the nonce `prefix ‖ i` and authenticates the fixed header (in
//!   version 2 with the length field zeroed), `i`, and whether it is the last chunk. The key
//!   slots authenticate the whole fixed header, length included. Changing the length fails the
//!   slots; swapping or reordering chunks, dropping the tail or appending to it fail a chunk
//!   or the length check, and a reader decrypts one chunk at a time, so memory stays bounded
//!   whatever the blob's size.
//! - Version 2 leaves the length out of the chunks so that a blob can be sealed while its
//!   plaintext is still arriving: chunks are written as they fill, the header (length and key
//!   slot) last, at offset 0. Ingest then writes the object to disk during the transfer
//!   instead of after it. Version 1 (length in every chunk, so the length had to be known
//!   before the first chunk) is read as before.
//! - There are `max(1, ⌈length / chunk⌉)` chunks: an empty blob still has one (empty, tagged)
//!   chunk, so nothing is ever accepted without authentication.
//! - Each blob gets a fresh random data key that never seals anything else, so the chunk
//!   nonces only have to be distinct within one blob; the random prefix is extra margin.
//! - A key slot seals the data key under a master key with a random nonce and authenticates
//!   the fixed header, the master key id and the blob's name (the SHA-256 of its plaintext):
//!   a header edited, or a file moved to another name, does not open.
//! - Two slots make re-wrapping crash-safe in place: rotation writes the new wrap into the
//!   empty slot and fsyncs, then zeroes the old slot and fsyncs. At every moment one slot opens
//!   under a key of the keyring, provided a write to one slot never damages the other (the
//!   "powersafe overwrite" property SQLite also relies on by default).

use std::future::Future;
use std::io::{self, ErrorKind, Read};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::keyring::{KeyId, Keyring};
use crate::{BlobKey, StoreError};

const MAGIC: [u8; 8] = *b"WARDBLB1";
/// Chunks authenticate the plaintext length: written by earlier versions of Ward, still read.
const VERSION_LENGTH_IN_CHUNKS: u16 = 1;
/// Chunks do not authenticate the length (the key slots do): the version written now.
const VERSION: u16 = 2;
/// Plaintext bytes per chunk in the blobs written here.
const CHUNK_LEN: u32 = 64 * 1024;
/// Chunk sizes a reader accepts. The upper bound is what caps a reader's memory.
const CHUNK_LEN_RANGE: std::ops::RangeInclusive<u32> = 1024..=(1 << 20);
const TAG_LEN: usize = 16;
const DATA_KEY_LEN: usize = 32;
const FIXED_LEN: usize = 26;
const SLOT_LEN: usize = 4 + NONCE_LEN + DATA_KEY_LEN + TAG_LEN;
/// Length of the header in front of the first chunk.
pub(crate) const HEADER_LEN: usize = FIXED_LEN + 2 * SLOT_LEN;

fn slot_offset(slot: usize) -> usize {
    FIXED_LEN + slot * SLOT_LEN
}

fn corrupt(key: &BlobKey, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.clone(),
        reason: reason.into(),
    }
}

/// The header's fields before the key slots, which every chunk and every slot authenticates.
#[derive(Clone, Copy)]
struct Fixed {
    version: u16,
    chunk_len: u32,
    plaintext_len: u64,
    nonce_prefix: [u8; 4],
}

impl Fixed {
    fn encode(&self) -> [u8; FIXED_LEN] {
        let mut out = [0u8; FIXED_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&self.version.to_be_bytes());
        out[10..14].copy_from_slice(&self.chunk_len.to_be_bytes());
        out[14..22].copy_from_slice(&self.plaintext_len.to_be_bytes());
        out[22..26].copy_from_slice(&self.nonce_prefix);
        out
    }

    fn decode(bytes: &[u8; FIXED_LEN]) -> Result<Fixed, &'static str> {
        let (magic, rest) = bytes.split_at(8);
        if magic != MAGIC {
            return Err("not a Ward blob (bad magic)");
        }
        let (version, rest) = rest.split_at(2);
        let version = u16::from_be_bytes(version.try_into().map_err(|_| "bad header")?);
        if version != VERSION && version != VERSION_LENGTH_IN_CHUNKS {
            return Err("unsupported blob format version");
        }
        let (chunk_len, rest) = rest.split_at(4);
        let (plaintext_len, prefix) = rest.split_at(8);
        let fixed = Fixed {
            version,
            chunk_len: u32::from_be_bytes(chunk_len.try_into().map_err(|_| "bad header")?),
            plaintext_len: u64::from_be_bytes(plaintext_len.try_into().map_err(|_| "bad header")?),
            nonce_prefix: prefix.try_into().map_err(|_| "bad header")?,
        };
        if !CHUNK_LEN_RANGE.contains(&fixed.chunk_len) {
            return Err("invalid chunk size");
        }
        fixed.file_len().ok_or("invalid plaintext length")?;
        Ok(fixed)
    }

    fn chunk_count(&self) -> u64 {
        self.plaintext_len
            .div_ceil(u64::from(self.chunk_len))
            .max(1)
    }

    /// Plaintext bytes in chunk `index`, which must be below `chunk_count()`.
    fn chunk_plain_len(&self, index: u64) -> usize {
        let start = index.saturating_mul(u64::from(self.chunk_len));
        let len = self
            .plaintext_len
            .saturating_sub(start)
            .min(u64::from(self.chunk_len));
        // At most chunk_len, a u32.
        len as usize
    }

    /// The whole file's length; `None` if it does not fit a u64 (a forged header).
    fn file_len(&self) -> Option<u64> {
        self.chunk_count()
            .checked_mul(TAG_LEN as u64)?
            .checked_add(self.plaintext_len)?
            .checked_add(HEADER_LEN as u64)
    }

    fn chunk_nonce(&self, index: u64) -> Nonce {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..4].copy_from_slice(&self.nonce_prefix);
        nonce[4..].copy_from_slice(&index.to_be_bytes());
        Nonce::assume_unique_for_key(nonce)
    }

    /// What chunk `index` authenticates besides its bytes. `last` is whether it ends the
    /// blob: a reader takes that from the header's length, a writer knows it.
    fn chunk_aad(&self, index: u64, last: bool) -> [u8; FIXED_LEN + 9] {
        let mut aad = [0u8; FIXED_LEN + 9];
        aad[..FIXED_LEN].copy_from_slice(&self.encode());
        if self.version != VERSION_LENGTH_IN_CHUNKS {
            aad[14..22].fill(0);
        }
        aad[FIXED_LEN..FIXED_LEN + 8].copy_from_slice(&index.to_be_bytes());
        aad[FIXED_LEN + 8] = u8::from(last);
        aad
    }

    /// Seals the plaintext at `buf[start..]` in place as chunk `index` and appends its tag.
    fn seal_chunk(
        &self,
        key: &LessSafeKey,
        index: u64,
        last: bool,
        buf: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), StoreError> {
        let tag = key
            .seal_in_place_separate_tag(
                self.chunk_nonce(index),
                Aad::from(self.chunk_aad(index, last)),
                &mut buf[start..],
            )
            .map_err(|_| StoreError::Crypto)?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    fn slot_aad(&self, master: u32, blob: &BlobKey) -> Vec<u8> {
        let mut aad = Vec::with_capacity(FIXED_LEN + 4 + 64);
        aad.extend_from_slice(&self.encode());
        aad.extend_from_slice(&master.to_be_bytes());
        aad.extend_from_slice(blob.as_str().as_bytes());
        aad
    }

    /// Seals `data_key` under the keyring's active master key into a key slot.
    fn seal_slot(
        &self,
        keyring: &Keyring,
        blob: &BlobKey,
        data_key: &[u8; DATA_KEY_LEN],
    ) -> Result<[u8; SLOT_LEN], StoreError> {
        let (id, master) = keyring.active();
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| StoreError::Crypto)?;
        let mut sealed = Zeroizing::new(*data_key);
        let tag = master
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.slot_aad(id.to_u32(), blob)),
                &mut sealed[..],
            )
            .map_err(|_| StoreError::Crypto)?;
        let mut slot = [0u8; SLOT_LEN];
        slot[..4].copy_from_slice(&id.to_u32().to_be_bytes());
        slot[4..4 + NONCE_LEN].copy_from_slice(&nonce);
        slot[4 + NONCE_LEN..4 + NONCE_LEN + DATA_KEY_LEN].copy_from_slice(&sealed[..]);
        slot[4 + NONCE_LEN + DATA_KEY_LEN..].copy_from_slice(tag.as_ref());
        Ok(slot)
    }

    fn open_slot(&self, slot: &[u8], keyring: &Keyring, blob: &BlobKey) -> Slot {
        if slot.iter().all(|b| *b == 0) {
            return Slot::Empty;
        }
        let (id, rest) = slot.split_at(4);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let id_raw = id.try_into().map(u32::from_be_bytes).unwrap_or(0);
        let Some(id) = KeyId::from_u32(id_raw) else {
            return Slot::Invalid;
        };
        let Some(master) = keyring.get(id) else {
            return Slot::Unknown(id);
        };
        let Ok(nonce) = Nonce::try_assume_unique_for_key(nonce) else {
            return Slot::Invalid;
        };
        let mut buf = Zeroizing::new([0u8; DATA_KEY_LEN + TAG_LEN]);
        buf.copy_from_slice(sealed);
        let aad = Aad::from(self.slot_aad(id_raw, blob));
        match master.open_in_place(nonce, aad, &mut buf[..]) {
            Ok(plain) => {
                let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
                key.copy_from_slice(plain);
                Slot::Opened(id, key)
            }
            Err(_) => Slot::Invalid,
        }
    }
}

/// What one key slot holds, as far as a keyring can tell.
enum Slot {
    Empty,
    Opened(KeyId, Zeroizing<[u8; DATA_KEY_LEN]>),
    /// Sealed under a master key this keyring does not have.
    Unknown(KeyId),
    /// Fails authentication: damaged, forged, or moved from another blob.
    Invalid,
}

/// A parsed, authenticated header.
pub(crate) struct Header {
    fixed: Fixed,
    slots: [Slot; 2],
}

impl Header {
    /// Parses a header and opens its key slots with `keyring`. Fails unless at least one slot
    /// yields the data key.
    pub(crate) fn open(
        bytes: &[u8; HEADER_LEN],
        keyring: &Keyring,
        blob: &BlobKey,
    ) -> Result<Header, StoreError> {
        let (fixed_bytes, slots) = bytes.split_at(FIXED_LEN);
        let fixed_bytes: &[u8; FIXED_LEN] = fixed_bytes
            .try_into()
            .map_err(|_| corrupt(blob, "bad header"))?;
        let fixed = Fixed::decode(fixed_bytes).map_err(|reason| corrupt(blob, reason))?;
        let (first, second) = slots.split_at(SLOT_LEN);
        let header = Header {
            fixed,
            slots: [
                fixed.open_slot(first, keyring, blob),
                fixed.open_slot(second, keyring, blob),
            ],
        };
        header.data_key(blob)?;
        Ok(header)
    }

    pub(crate) fn plaintext_len(&self) -> u64 {
        self.fixed.plaintext_len
    }

    /// The length the whole file must have.
    pub(crate) fn file_len(&self) -> u64 {
        // `Fixed::decode` checked that it fits.
        self.fixed.file_len().unwrap_or(u64::MAX)
    }

    fn opened(&self) -> impl Iterator<Item = (usize, KeyId, &[u8; DATA_KEY_LEN])> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| match slot {
                Slot::Opened(id, key) => Some((i, *id, &**key)),
                _ => None,
            })
    }

    fn data_key(&self, blob: &BlobKey) -> Result<&[u8; DATA_KEY_LEN], StoreError> {
        match self.opened().next() {
            Some((_, _, key)) => Ok(key),
            None => Err(self.no_key(blob)),
        }
    }

    /// Why no slot yields the data key: a master key missing from the keyring if a slot names
    /// one, otherwise damage.
    fn no_key(&self, blob: &BlobKey) -> StoreError {
        let unknown: Vec<KeyId> = self
            .slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Unknown(id) => Some(*id),
                _ => None,
            })
            .collect();
        if unknown.is_empty() {
            corrupt(blob, "no key slot authenticates")
        } else {
            StoreError::UnknownMasterKey {
                key: blob.clone(),
                ids: unknown,
            }
        }
    }

    /// The slot writes that leave this header with exactly one slot, sealed under the
    /// keyring's active key, and the other empty, in the order they must reach the disk (each
    /// followed by an fsync): `(offset, bytes)`. Empty when the header is already so.
    pub(crate) fn rewrap_writes(
        &self,
        keyring: &Keyring,
        blob: &BlobKey,
    ) -> Result<Vec<(u64, [u8; SLOT_LEN])>, StoreError> {
        let active = keyring.active_id();
        let offset = |slot: usize| slot_offset(slot) as u64;
        if let Some((slot, _, _)) = self.opened().find(|(_, id, _)| *id == active) {
            let other = 1 - slot;
            return Ok(match self.slots[other] {
                Slot::Empty => Vec::new(),
                _ => vec![(offset(other), [0u8; SLOT_LEN])],
            });
        }
        let Some((slot, _, data_key)) = self.opened().next() else {
            return Err(self.no_key(blob));
        };
        let other = 1 - slot;
        Ok(vec![
            (
                offset(other),
                self.fixed.seal_slot(keyring, blob, data_key)?,
            ),
            (offset(slot), [0u8; SLOT_LEN]),
        ])
    }
}

/// Seals a plaintext as it arrives, whatever its length: chunks are sealed as they fill, and
/// the header, which records the length, is produced last.
pub(crate) struct StreamSealer {
    fixed: Fixed,
    data_key: Zeroizing<[u8; DATA_KEY_LEN]>,
    key: LessSafeKey,
    /// Index of the next chunk to seal.
    next: u64,
    /// Plaintext of the chunk being filled. A full chunk stays here until more bytes arrive:
    /// only then is it known not to be the last.
    pending: Vec<u8>,
    plaintext_len: u64,
}

impl StreamSealer {
    /// A fresh data key and nonce prefix for one blob.
    pub(crate) fn new() -> Result<StreamSealer, StoreError> {
        let mut data_key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        aws_lc_rs::rand::fill(&mut data_key[..]).map_err(|_| StoreError::Crypto)?;
        let mut nonce_prefix = [0u8; 4];
        aws_lc_rs::rand::fill(&mut nonce_prefix).map_err(|_| StoreError::Crypto)?;
        let key = data_key_aead(&data_key)?;
        Ok(StreamSealer {
            fixed: Fixed {
                version: VERSION,
                chunk_len: CHUNK_LEN,
                plaintext_len: 0,
                nonce_prefix,
            },
            data_key,
            key,
            next: 0,
            pending: Vec::with_capacity(CHUNK_LEN as usize),
            plaintext_len: 0,
        })
    }

    /// Takes more plaintext; every chunk it completes (and that more bytes follow) is sealed
    /// and appended to `out`, ready to be written after the header and the chunks before it.
    pub(crate) fn push(&mut self, mut bytes: &[u8], out: &mut Vec<u8>) -> Result<(), StoreError> {
        let chunk_len = self.fixed.chunk_len as usize;
        self.plaintext_len = self.plaintext_len.saturating_add(bytes.len() as u64);
        while !bytes.is_empty() {
            if self.pending.len() == chunk_len {
                self.seal_pending(false, out)?;
            }
            let take = (chunk_len - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        Ok(())
    }

    /// Seals the last chunk into `out` and returns the header, to be written at offset 0, for
    /// the blob named `blob` (the SHA-256 of all the plaintext pushed).
    pub(crate) fn finish(
        &mut self,
        keyring: &Keyring,
        blob: &BlobKey,
        out: &mut Vec<u8>,
    ) -> Result<[u8; HEADER_LEN], StoreError> {
        self.seal_pending(true, out)?;
        self.fixed.plaintext_len = self.plaintext_len;
        let mut header = [0u8; HEADER_LEN];
        header[..FIXED_LEN].copy_from_slice(&self.fixed.encode());
        header[slot_offset(0)..slot_offset(1)].copy_from_slice(&self.fixed.seal_slot(
            keyring,
            blob,
            &self.data_key,
        )?);
        Ok(header)
    }

    fn seal_pending(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let start = out.len();
        out.extend_from_slice(&self.pending);
        self.pending.clear();
        self.fixed
            .seal_chunk(&self.key, self.next, last, out, start)?;
        self.next += 1;
        Ok(())
    }
}

/// Blobs in the format of earlier versions, for the tests that they still open.
#[cfg(test)]
pub(crate) fn seal_length_in_chunks(
    keyring: &Keyring,
    blob: &BlobKey,
    plaintext: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let mut sealer = StreamSealer::new()?;
    sealer.fixed.version = VERSION_LENGTH_IN_CHUNKS;
    sealer.fixed.plaintext_len = plaintext.len() as u64;
    let mut out = vec![0u8; HEADER_LEN];
    let chunks = sealer.fixed.chunk_count();
    let chunk_len = sealer.fixed.chunk_len as usize;
    for index in 0..chunks {
        let from = (index as usize) * chunk_len;
        let to = (from + chunk_len).min(plaintext.len());
        let start = out.len();
        out.extend_from_slice(&plaintext[from..to]);
        sealer
            .fixed
            .seal_chunk(&sealer.key, index, index + 1 == chunks, &mut out, start)?;
    }
    out[..FIXED_LEN].copy_from_slice(&sealer.fixed.encode());
    out[slot_offset(0)..slot_offset(1)].copy_from_slice(&sealer.fixed.seal_slot(
        keyring,
        blob,
        &sealer.data_key,
    )?);
    Ok(out)
}

fn data_key_aead(key: &[u8; DATA_KEY_LEN]) -> Result<LessSafeKey, StoreError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| StoreError::Crypto)
}

/// Opens chunks in order.
struct Opener {
    fixed: Fixed,
    key: LessSafeKey,
    next: u64,
}

impl Opener {
    /// Bytes the next sealed chunk takes on disk, or `None` after the last.
    fn next_sealed_len(&self) -> Option<usize> {
        (self.next < self.fixed.chunk_count())
            .then(|| self.fixed.chunk_plain_len(self.next) + TAG_LEN)
    }

    /// Opens the next chunk in place; returns its plaintext length.
    fn open_next(&mut self, sealed: &mut [u8], blob: &BlobKey) -> Result<usize, StoreError> {
        let index = self.next;
        let plain = self
            .key
            .open_in_place(
                self.fixed.chunk_nonce(index),
                Aad::from(
                    self.fixed
                        .chunk_aad(index, index + 1 == self.fixed.chunk_count()),
                ),
                sealed,
            )
            .map_err(|_| corrupt(blob, format!("chunk {index} fails authentication")))?;
        self.next += 1;
        Ok(plain.len())
    }
}

/// Plaintext bytes one hand-over to the blocking pool reads and opens (whole chunks; at least
/// one).
const READ_BATCH: usize = 256 * 1024;

/// Streams a blob's plaintext from its chunks (read after the header). Chunks are read and
/// authenticated in batches on tokio's blocking pool, one batch ahead of what is handed out,
/// so that the file reads and the decryption run beside whatever consumes the stream (TLS,
/// the network), on another core; a chunk is handed out only once it authenticated. Any
/// failure is an error, never unauthenticated bytes; after one, every further read fails too.
pub(crate) struct BlobReader<R> {
    /// Authenticated plaintext waiting to be handed out.
    ready: Vec<u8>,
    /// The next batch, being read.
    pending: Option<tokio::task::JoinHandle<Batch<R>>>,
    /// Why the stream stops after `ready`.
    error: Option<StoreError>,
    failed: bool,
}

/// Where the chunks come from: the file (positioned at the next chunk) and how to open them.
struct Source<R> {
    file: R,
    opener: Opener,
    blob: BlobKey,
    /// For I/O error messages: the blob file's path.
    path: PathBuf,
}

/// What one hand-over produced.
struct Batch<R> {
    /// The plaintext of the chunks that authenticated, in order.
    plain: Vec<u8>,
    /// Handed back for the next batch; `None` once the blob is read or reading failed.
    next: Option<Source<R>>,
    error: Option<StoreError>,
}

impl<R: Read + Send + 'static> Source<R> {
    /// Reads and opens whole chunks until about [`READ_BATCH`] plaintext bytes or the end,
    /// where the file must end too. Blocking.
    fn read_batch(mut self) -> Batch<R> {
        let mut plain = Vec::with_capacity(READ_BATCH + TAG_LEN);
        loop {
            let Some(want) = self.opener.next_sealed_len() else {
                let error = match self.file.read(&mut [0u8; 1]) {
                    Ok(0) => None,
                    Ok(_) => Some(corrupt(&self.blob, "bytes after the last chunk")),
                    Err(e) => Some(self.read_failed(e)),
                };
                return Batch {
                    plain,
                    next: None,
                    error,
                };
            };
            if !plain.is_empty() && plain.len() + want > READ_BATCH + TAG_LEN {
                return Batch {
                    plain,
                    next: Some(self),
                    error: None,
                };
            }
            // Each chunk is read straight after the plaintext before it and opened in place;
            // dropping its tag leaves the plaintext contiguous.
            let start = plain.len();
            plain.resize(start + want, 0);
            let opened = match self.file.read_exact(&mut plain[start..]) {
                Ok(()) => self.opener.open_next(&mut plain[start..], &self.blob),
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    let index = self.opener.next;
                    Err(corrupt(&self.blob, format!("ends inside chunk {index}")))
                }
                Err(e) => Err(self.read_failed(e)),
            };
            match opened {
                Ok(len) => plain.truncate(start + len),
                Err(error) => {
                    plain.truncate(start);
                    return Batch {
                        plain,
                        next: None,
                        error: Some(error),
                    };
                }
            }
        }
    }

    fn read_failed(&self, source: io::Error) -> StoreError {
        StoreError::Io {
            op: "read",
            path: self.path.clone(),
            source,
        }
    }
}

impl<R: Read + Send + 'static> BlobReader<R> {
    /// `file` must be positioned right after the header. Reading starts at once.
    pub(crate) fn new(
        file: R,
        header: &Header,
        blob: BlobKey,
        path: PathBuf,
    ) -> Result<Self, StoreError> {
        let key = data_key_aead(header.data_key(&blob)?)?;
        let source = Source {
            file,
            opener: Opener {
                fixed: header.fixed,
                key,
                next: 0,
            },
            blob,
            path,
        };
        Ok(BlobReader {
            ready: Vec::new(),
            pending: Some(tokio::task::spawn_blocking(move || source.read_batch())),
            error: None,
            failed: false,
        })
    }

    /// Marks the stream failed; the error to report.
    fn fail(&mut self, error: StoreError) -> io::Error {
        self.failed = true;
        let kind = match &error {
            StoreError::Io { source, .. } => source.kind(),
            _ => ErrorKind::InvalidData,
        };
        io::Error::new(kind, error)
    }
}

impl<R: Read + Send + 'static> BlobReader<R> {
    /// Makes sure authenticated plaintext is waiting in `ready`: `true` once it is,
    /// `false` at the end of the blob.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        loop {
            if !self.ready.is_empty() {
                return Poll::Ready(Ok(true));
            }
            if let Some(error) = self.error.take() {
                return Poll::Ready(Err(self.fail(error)));
            }
            if self.failed {
                return Poll::Ready(Err(io::Error::new(
                    ErrorKind::InvalidData,
                    "reading this blob already failed",
                )));
            }
            let Some(pending) = self.pending.as_mut() else {
                return Poll::Ready(Ok(false));
            };
            let batch = match ready!(Pin::new(pending).poll(cx)) {
                Ok(batch) => batch,
                Err(e) => {
                    self.pending = None;
                    return Poll::Ready(Err(self.fail(StoreError::from(e))));
                }
            };
            // The next batch is read while this one is handed out.
            self.pending = batch
                .next
                .map(|source| tokio::task::spawn_blocking(move || source.read_batch()));
            self.ready = batch.plain;
            self.error = batch.error;
        }
    }
}

/// The plaintext as the batches it was authenticated in, each handed over without a copy.
impl<R: Read + Send + 'static> futures_core::Stream for BlobReader<R> {
    type Item = io::Result<bytes::Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match ready!(this.poll_fill(cx)) {
            Ok(true) => {
                let batch = std::mem::take(&mut this.ready);
                Poll::Ready(Some(Ok(bytes::Bytes::from(batch))))
            }
            Ok(false) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}
