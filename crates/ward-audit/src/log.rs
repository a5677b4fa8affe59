//! The live log: recovery on open, and the group-committing writer.
//!
//! One OS thread owns the files. Callers hand it serialised events over a channel, each with a
//! oneshot for the answer. The thread takes the first request and everything queued behind it,
//! writes the whole batch with one `write`, calls `fdatasync` once, and only then answers every
//! caller in the batch: an `Ok(seq)` is never sent before the record is on stable storage, and
//! while one batch syncs the next one gathers. The thread is not a tokio task because its work
//! is blocking I/O from start to end.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::Ed25519KeyPair;
use rustix::fs::{FlockOperation, flock};
use tokio::sync::oneshot;

use crate::event::{Action, Actor, AuditEvent, detail_keys};
use crate::files::{
    self, CHECKPOINT_FILE, FILE_MODE, Line, LineReader, Segment, io_err, list_segments,
    open_append, segment_name, sync_dir,
};
use crate::record::{self, GENESIS, MAX_EVENT_BYTES, MAX_LINE_BYTES, record_hash};
use crate::time::now_unix_ms;
use crate::{AuditError, checkpoint};

const LOCK_FILE: &str = "lock";

/// A batch stops growing at either limit, so one slow caller's huge event cannot make a sync
/// wait for an unbounded amount of writing.
const MAX_BATCH_RECORDS: usize = 4096;
const MAX_BATCH_BYTES: usize = 8 << 20;

/// Tuning of a log. The defaults suit a server; tests shrink them.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// A new segment file is started once the current one reaches this size.
    pub segment_max_bytes: u64,
    /// A checkpoint is signed after this many records...
    pub checkpoint_every_records: u64,
    /// ...or this long after the last one, if records arrived meanwhile.
    pub checkpoint_interval: Duration,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            segment_max_bytes: 64 << 20,
            checkpoint_every_records: 1000,
            checkpoint_interval: Duration::from_secs(60),
        }
    }
}

/// Something [`AuditLog::open`] found and repaired. Each is also appended to the log itself as
/// a [`Action::SecurityAlert`], so the repair is part of the tamper-evident record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenWarning {
    /// A crash left a partial write at the end of `file`. Those bytes were never acknowledged
    /// to anyone; they were copied to `saved_as` and cut off, and the chain resumed from the
    /// last complete record.
    TornTail {
        file: PathBuf,
        bytes: u64,
        saved_as: PathBuf,
    },
    /// The directory or a file was accessible to group or others; it was restricted to its
    /// owner.
    PermissionsTightened { path: PathBuf },
}

impl OpenWarning {
    fn to_event(&self) -> AuditEvent {
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let detail = match self {
            OpenWarning::TornTail {
                file,
                bytes,
                saved_as,
            } => serde_json::json!({
                // Recording was interrupted by a crash and starts again here.
                detail_keys::ALERT_TYPE: "audit_recording_started",
                "audit_log": "torn_tail_truncated",
                "file": name(file),
                "bytes": bytes,
                "saved_as": name(saved_as),
            }),
            OpenWarning::PermissionsTightened { path } => serde_json::json!({
                detail_keys::ALERT_TYPE: "security_configuration",
                "audit_log": "permissions_tightened",
                "path": path.to_string_lossy(),
            }),
        };
        AuditEvent::new(Action::SecurityAlert, Actor::default()).with_detail(detail)
    }
}

/// Counters of the running writer, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Records written since open.
    pub records: u64,
    /// `fdatasync` calls on segments since open: one per batch.
    pub syncs: u64,
    /// Highest sequence number known to be on stable storage.
    pub durable_seq: u64,
    /// Checkpoints signed since open.
    pub checkpoints: u64,
}

#[derive(Default)]
struct Counters {
    records: AtomicU64,
    syncs: AtomicU64,
    durable_seq: AtomicU64,
    checkpoints: AtomicU64,
}

type Reply<T> = oneshot::Sender<Result<T, AuditError>>;

enum Request {
    Append { event: String, reply: Reply<u64> },
    Checkpoint { reply: Reply<()> },
    Close { reply: Reply<()> },
}

/// The append-only audit trail of one Ward instance.
pub struct AuditLog {
    requests: mpsc::Sender<Request>,
    counters: Arc<Counters>,
    warnings: Vec<OpenWarning>,
}

impl AuditLog {
    /// Opens (creating) the log in `dir` with the default [`AuditOptions`].
    pub async fn open(dir: &Path, signing_key_pkcs8: &[u8]) -> Result<Arc<AuditLog>, AuditError> {
        Self::open_with(dir, signing_key_pkcs8, AuditOptions::default()).await
    }

    /// Opens (creating) the log in `dir` (made 0700; files 0600), resuming the chain after its
    /// last record. `signing_key_pkcs8` is the Ed25519 key that signs checkpoints. Only one
    /// `AuditLog` can have a directory open at a time, across processes too.
    pub async fn open_with(
        dir: &Path,
        signing_key_pkcs8: &[u8],
        options: AuditOptions,
    ) -> Result<Arc<AuditLog>, AuditError> {
        let key = checkpoint::signing_key(signing_key_pkcs8)?;
        let owned = dir.to_owned();
        let (state, warnings) = tokio::task::spawn_blocking(move || recover(&owned))
            .await
            .map_err(|e| AuditError::TaskFailed(e.to_string()))??;
        for warning in &warnings {
            tracing::warn!(?warning, "audit log repaired on open");
        }
        let counters = Arc::new(Counters::default());
        counters
            .durable_seq
            .store(state.next_seq - 1, Ordering::Relaxed);
        let (requests, rx) = mpsc::channel();
        let writer = Writer {
            state,
            key,
            options,
            counters: Arc::clone(&counters),
            last_checkpoint_at: Instant::now(),
            poisoned: None,
        };
        std::thread::Builder::new()
            .name("ward-audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(io_err("start writer thread for", dir))?;
        let log = Arc::new(AuditLog {
            requests,
            counters,
            warnings,
        });
        for warning in &log.warnings {
            log.append(warning.to_event()).await?;
        }
        Ok(log)
    }

    /// What open found and repaired.
    pub fn warnings(&self) -> &[OpenWarning] {
        &self.warnings
    }

    pub fn stats(&self) -> AuditStats {
        AuditStats {
            records: self.counters.records.load(Ordering::Relaxed),
            syncs: self.counters.syncs.load(Ordering::Relaxed),
            durable_seq: self.counters.durable_seq.load(Ordering::Acquire),
            checkpoints: self.counters.checkpoints.load(Ordering::Relaxed),
        }
    }

    /// Appends an event and returns its sequence number once it is durable. Concurrent calls
    /// are group-committed: one write and one `fdatasync` per batch. The order of sequence
    /// numbers is the chain order. A call whose future is dropped after sending still gets its
    /// record written. After an I/O failure the log refuses every further record (fail closed:
    /// what reached the disk is then unknown), until it is reopened.
    pub async fn append(&self, event: AuditEvent) -> Result<u64, AuditError> {
        let event = serde_json::to_string(&event).map_err(AuditError::Serialize)?;
        if event.len() > MAX_EVENT_BYTES {
            return Err(AuditError::EventTooLarge {
                size: event.len(),
                max: MAX_EVENT_BYTES,
            });
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Append { event, reply })
            .map_err(|_| AuditError::Closed)?;
        answer.await.map_err(|_| AuditError::Closed)?
    }

    /// Signs a checkpoint of the last durable record now (a no-op if the last one is already
    /// checkpointed). Also done every [`AuditOptions::checkpoint_every_records`] records, every
    /// [`AuditOptions::checkpoint_interval`] when records arrived, and on close.
    pub async fn checkpoint(&self) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Checkpoint { reply })
            .map_err(|_| AuditError::Closed)?;
        answer.await.map_err(|_| AuditError::Closed)?
    }

    /// Writes what is queued, signs a final checkpoint and releases the directory. Later
    /// appends fail with [`AuditError::Closed`]; closing again does nothing. Dropping the last
    /// handle does the same, without a way to see an error.
    pub async fn close(&self) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        if self.requests.send(Request::Close { reply }).is_err() {
            return Ok(());
        }
        answer.await.unwrap_or(Ok(()))
    }
}

/// Where the chain stands, as found by [`recover`] and kept by the writer.
struct State {
    dir: PathBuf,
    /// Held for the writer's lifetime: the flock on it keeps other writers out.
    _lock: File,
    segment: File,
    segment_first_seq: u64,
    segment_len: u64,
    checkpoints: File,
    checkpoints_path: PathBuf,
    next_seq: u64,
    last_hash: [u8; 32],
    last_time_ms: i64,
    last_checkpoint_seq: u64,
}

struct Writer {
    state: State,
    key: Ed25519KeyPair,
    options: AuditOptions,
    counters: Arc<Counters>,
    last_checkpoint_at: Instant,
    /// Set by the first I/O failure; the reason every later request is refused with.
    poisoned: Option<String>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Request>) {
        let close = self.serve(&rx);
        // The reply to close goes out only after the files and the lock are released, so a
        // caller may reopen the directory as soon as close returns.
        drop(self);
        drop(rx);
        if let Some((reply, result)) = close {
            let _ = reply.send(result);
        }
    }

    /// Serves requests until close (returned with its result) or until every handle is gone.
    fn serve(&mut self, rx: &Receiver<Request>) -> Option<(Reply<()>, Result<(), AuditError>)> {
        loop {
            let Some(first) = self.wait(rx) else {
                self.background_checkpoint();
                return None;
            };
            let mut appends = Vec::new();
            let mut bytes = 0;
            let mut control = None;
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Append { event, reply } => {
                        bytes += event.len();
                        appends.push((event, reply));
                    }
                    // A checkpoint or close covers what was sent before it, so the batch ends
                    // there.
                    other => {
                        control = Some(other);
                        break;
                    }
                }
                if appends.len() < MAX_BATCH_RECORDS && bytes < MAX_BATCH_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            self.commit(appends);
            match control {
                Some(Request::Checkpoint { reply }) => {
                    let _ = reply.send(self.checkpoint());
                }
                Some(Request::Close { reply }) => return Some((reply, self.checkpoint())),
                Some(Request::Append { .. }) | None => {}
            }
            if self.checkpoint_due() {
                self.background_checkpoint();
            }
        }
    }

    /// The next request, signing the periodic checkpoint while none arrives. `None` once every
    /// sender is gone.
    fn wait(&mut self, rx: &Receiver<Request>) -> Option<Request> {
        loop {
            if self.unchecked() == 0 || self.poisoned.is_some() {
                return rx.recv().ok();
            }
            let deadline = self.last_checkpoint_at + self.options.checkpoint_interval;
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                self.background_checkpoint();
                continue;
            };
            match rx.recv_timeout(left) {
                Ok(request) => return Some(request),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn unchecked(&self) -> u64 {
        self.state.next_seq - 1 - self.state.last_checkpoint_seq
    }

    fn checkpoint_due(&self) -> bool {
        let unchecked = self.unchecked();
        unchecked >= self.options.checkpoint_every_records
            || (unchecked > 0
                && self.last_checkpoint_at.elapsed() >= self.options.checkpoint_interval)
    }

    /// A checkpoint nobody waits for: its failure can only be logged (it has poisoned the
    /// writer, so the next append reports it).
    fn background_checkpoint(&mut self) {
        if let Err(error) = self.checkpoint() {
            tracing::error!(%error, "audit log checkpoint failed");
        }
    }

    fn commit(&mut self, batch: Vec<(String, Reply<u64>)>) {
        if batch.is_empty() {
            return;
        }
        if let Some(reason) = &self.poisoned {
            for (_, reply) in batch {
                let _ = reply.send(Err(AuditError::Poisoned(reason.clone())));
            }
            return;
        }
        match self.write_batch(&batch) {
            Ok(first_seq) => {
                for (seq, (_, reply)) in (first_seq..).zip(batch) {
                    let _ = reply.send(Ok(seq));
                }
            }
            Err((op, path, source)) => {
                let source = Arc::new(source);
                tracing::error!(
                    %op, path = %path.display(), error = %source,
                    "audit log write failed; refusing further records"
                );
                self.poisoned = Some(format!("{op} {}: {source}", path.display()));
                for (_, reply) in batch {
                    let _ = reply.send(Err(AuditError::Io {
                        op,
                        path: path.clone(),
                        source: Arc::clone(&source),
                    }));
                }
            }
        }
    }

    /// Writes and syncs one batch; returns the first sequence number in it. State advances
    /// only after the sync.
    fn write_batch(
        &mut self,
        batch: &[(String, Reply<u64>)],
    ) -> Result<u64, (&'static str, PathBuf, io::Error)> {
        if self.state.segment_len >= self.options.segment_max_bytes {
            self.rotate()?;
        }
        let segment_path = self
            .state
            .dir
            .join(segment_name(self.state.segment_first_seq));
        // One clock reading per batch, never earlier than the last record's, so that times
        // in the chain never decrease and `read(since)` can skip whole segments.
        let time = now_unix_ms().max(self.state.last_time_ms);
        let mut seq = self.state.next_seq;
        let mut prev = self.state.last_hash;
        let mut buf = Vec::with_capacity(batch.iter().map(|(e, _)| e.len() + 256).sum());
        for (event, _) in batch {
            let hash = record_hash(&prev, seq, time, event.as_bytes());
            let line = record::encode(seq, time, event, &prev, &hash).map_err(|e| {
                (
                    "encode record for",
                    segment_path.clone(),
                    io::Error::other(e),
                )
            })?;
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            prev = hash;
            seq = seq.checked_add(1).ok_or_else(|| {
                let exhausted = io::Error::other("sequence numbers exhausted");
                ("append to", segment_path.clone(), exhausted)
            })?;
        }
        let segment = &mut self.state.segment;
        segment
            .write_all(&buf)
            .map_err(|e| ("write", segment_path.clone(), e))?;
        segment
            .sync_data()
            .map_err(|e| ("fdatasync", segment_path.clone(), e))?;

        let first = self.state.next_seq;
        self.state.next_seq = seq;
        self.state.last_hash = prev;
        self.state.last_time_ms = time;
        self.state.segment_len += buf.len() as u64;
        let n = batch.len() as u64;
        self.counters.records.fetch_add(n, Ordering::Relaxed);
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        self.counters.durable_seq.store(seq - 1, Ordering::Release);
        Ok(first)
    }

    fn rotate(&mut self) -> Result<(), (&'static str, PathBuf, io::Error)> {
        let first_seq = self.state.next_seq;
        let path = self.state.dir.join(segment_name(first_seq));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| ("create", path.clone(), e))?;
        File::open(&self.state.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| ("fsync directory", self.state.dir.clone(), e))?;
        self.state.segment = file;
        self.state.segment_len = 0;
        self.state.segment_first_seq = first_seq;
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), AuditError> {
        if let Some(reason) = &self.poisoned {
            return Err(AuditError::Poisoned(reason.clone()));
        }
        self.last_checkpoint_at = Instant::now();
        if self.unchecked() == 0 {
            return Ok(());
        }
        let seq = self.state.next_seq - 1;
        let time = now_unix_ms().max(self.state.last_time_ms);
        let path = &self.state.checkpoints_path;
        let written = checkpoint::encode(&self.key, seq, &self.state.last_hash, time)
            .map_err(io::Error::other)
            .and_then(|line| self.state.checkpoints.write_all(&line))
            .and_then(|()| self.state.checkpoints.sync_data());
        if let Err(source) = written {
            let error = AuditError::Io {
                op: "write checkpoint to",
                path: path.clone(),
                source: Arc::new(source),
            };
            self.poisoned = Some(error.to_string());
            return Err(error);
        }
        self.state.last_checkpoint_seq = seq;
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Finds where the chain ends, cuts off what a crash left half-written, and opens the files
/// for appending. Runs before the writer starts, under the directory lock.
fn recover(dir: &Path) -> Result<(State, Vec<OpenWarning>), AuditError> {
    let mut warnings = Vec::new();
    if files::ensure_private_dir(dir)? {
        warnings.push(OpenWarning::PermissionsTightened {
            path: dir.to_owned(),
        });
    }
    let lock = take_lock(dir)?;
    let mut segments = list_segments(dir)?;
    for segment in &segments {
        tighten(&segment.path, &mut warnings)?;
    }
    let last = segments.pop().unwrap_or_else(|| Segment {
        first_seq: 1,
        path: dir.join(segment_name(1)),
    });
    let (mut segment, created) = open_append(&last.path)?;
    if created {
        sync_dir(dir)?;
    }
    let tail = scan(&last.path)?;
    warnings.extend(cut_torn_tail(dir, &last.path, &mut segment, &tail)?);

    let last_record = match &tail.last_line {
        Some(line) => Some(resume_point(line, &last.path)?),
        // An empty last segment: rotation created it and nothing was written yet, so the
        // chain ends in the one before, which was complete before the rotation.
        None => match segments.last() {
            Some(prev) => {
                let prev_tail = scan(&prev.path)?;
                if prev_tail.good_end != prev_tail.len {
                    return Err(AuditError::Corrupt {
                        path: prev.path.clone(),
                        reason: "a segment before the last one ends in a partial record".into(),
                    });
                }
                match &prev_tail.last_line {
                    Some(line) => Some(resume_point(line, &prev.path)?),
                    None => None,
                }
            }
            None => None,
        },
    };
    let (next_seq, last_hash, last_time_ms) = match &last_record {
        Some(r) => {
            // Only a forged record can get here, but it must not make the writer overflow.
            let next = r.seq.checked_add(1).ok_or_else(|| AuditError::Corrupt {
                path: last.path.clone(),
                reason: "the last record has the largest possible sequence number".into(),
            })?;
            (next, r.hash, r.time_unix_ms)
        }
        None => (1, GENESIS, 0),
    };
    let continues = match (&tail.last_line, &last_record) {
        (Some(_), Some(r)) => r.seq >= last.first_seq,
        _ => last.first_seq == next_seq,
    };
    if !continues {
        return Err(AuditError::Corrupt {
            path: last.path,
            reason: format!(
                "the segment named for record {} does not continue the chain, which ends at record {}",
                last.first_seq,
                next_seq - 1
            ),
        });
    }

    let checkpoints_path = dir.join(CHECKPOINT_FILE);
    let (mut checkpoints, created) = open_append(&checkpoints_path)?;
    if created {
        sync_dir(dir)?;
    }
    tighten(&checkpoints_path, &mut warnings)?;
    let cp_tail = scan(&checkpoints_path)?;
    warnings.extend(cut_torn_tail(
        dir,
        &checkpoints_path,
        &mut checkpoints,
        &cp_tail,
    )?);
    let last_checkpoint_seq = match &cp_tail.last_line {
        Some(line) => {
            checkpoint::parse(line)
                .map_err(|reason| AuditError::Corrupt {
                    path: checkpoints_path.clone(),
                    reason: format!("the last checkpoint is unreadable: {reason}"),
                })?
                .seq
        }
        None => 0,
    };
    // Checkpoints are written only after the records they cover are durable, so a crash
    // cannot produce this: records were removed.
    if last_checkpoint_seq > next_seq - 1 {
        return Err(AuditError::Corrupt {
            path: dir.to_owned(),
            reason: format!(
                "a checkpoint covers record {last_checkpoint_seq} but the log ends at record {}: records were removed",
                next_seq - 1
            ),
        });
    }

    let state = State {
        dir: dir.to_owned(),
        _lock: lock,
        segment,
        segment_first_seq: last.first_seq,
        segment_len: tail.good_end,
        checkpoints,
        checkpoints_path,
        next_seq,
        last_hash,
        last_time_ms,
        last_checkpoint_seq,
    };
    Ok((state, warnings))
}

fn tighten(path: &Path, warnings: &mut Vec<OpenWarning>) -> Result<(), AuditError> {
    if files::restrict(path, FILE_MODE)? {
        warnings.push(OpenWarning::PermissionsTightened {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// Two writers would fork the chain; an flock on `dir/lock` keeps a second `AuditLog` (in this
/// process or another, e.g. a CLI next to a running server) out. The kernel drops it if the
/// process dies, so a crash never leaves the log locked.
fn take_lock(dir: &Path) -> Result<File, AuditError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(io_err("open", &path))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(AuditError::Locked {
            dir: dir.to_owned(),
        }),
        Err(e) => Err(io_err("lock", &path)(e.into())),
    }
}

struct TailScan {
    len: u64,
    /// End of the last complete line without NUL bytes. Beyond it lies what a crash can leave:
    /// a line without its newline, or blocks the filesystem extended but never filled (zeros).
    /// The writer never emits a raw NUL (JSON escapes it), so neither is an acknowledged record.
    good_end: u64,
    /// That line (empty if it was over the length cap, which then fails to parse).
    last_line: Option<Vec<u8>>,
}

fn scan(path: &Path) -> Result<TailScan, AuditError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let mut reader = LineReader::new(file, MAX_LINE_BYTES);
    let mut buf = Vec::new();
    let mut last = Vec::new();
    let mut has_last = false;
    let mut good_end = 0;
    while let Some(line) = reader.next_line(&mut buf).map_err(io_err("read", path))? {
        match line {
            Line::Complete if !buf.contains(&0) => {
                good_end = reader.offset;
                std::mem::swap(&mut buf, &mut last);
                has_last = true;
            }
            Line::TooLong => {
                good_end = reader.offset;
                last.clear();
                has_last = true;
            }
            Line::Complete | Line::Unterminated => {}
        }
    }
    Ok(TailScan {
        len: reader.offset,
        good_end,
        last_line: has_last.then_some(last),
    })
}

/// Copies the bytes past `tail.good_end` to a `torn-…` file next to the log (evidence is kept,
/// never silently dropped) and truncates `file` there.
fn cut_torn_tail(
    dir: &Path,
    path: &Path,
    file: &mut File,
    tail: &TailScan,
) -> Result<Option<OpenWarning>, AuditError> {
    if tail.good_end == tail.len {
        return Ok(None);
    }
    let bytes = tail.len - tail.good_end;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let saved_as = dir.join(format!("torn-{name}-{}.bin", now_unix_ms()));
    let mut source = File::open(path).map_err(io_err("open", path))?;
    source
        .seek(SeekFrom::Start(tail.good_end))
        .map_err(io_err("seek", path))?;
    let mut copy = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&saved_as)
        .map_err(io_err("create", &saved_as))?;
    io::copy(&mut io::Read::take(source, bytes), &mut copy)
        .map_err(io_err("copy to", &saved_as))?;
    copy.sync_all().map_err(io_err("fsync", &saved_as))?;
    file.set_len(tail.good_end)
        .map_err(io_err("truncate", path))?;
    file.sync_all().map_err(io_err("fsync", path))?;
    sync_dir(dir)?;
    Ok(Some(OpenWarning::TornTail {
        file: path.to_owned(),
        bytes,
        saved_as,
    }))
}

/// The record the chain continues from: it must be whole and match its own hash, or the log
/// was damaged by something other than a crash and needs a human (`verify`).
fn resume_point(line: &[u8], path: &Path) -> Result<record::AuditRecord, AuditError> {
    let parsed = record::parse(line).map_err(|reason| AuditError::Corrupt {
        path: path.to_owned(),
        reason: format!("the last record is unreadable: {reason}"),
    })?;
    if !parsed.intact {
        return Err(AuditError::Corrupt {
            path: path.to_owned(),
            reason: format!(
                "the last record ({}) does not match its hash",
                parsed.record.seq
            ),
        });
    }
    Ok(parsed.record)
}
