//! The log directory: segment names, permissions, durable creation, and a line reader that
//! never holds more than one capped line.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, BufRead, BufReader, ErrorKind, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::AuditError;

pub(crate) const DIR_MODE: u32 = 0o700;
pub(crate) const FILE_MODE: u32 = 0o600;
pub(crate) const CHECKPOINT_FILE: &str = "checkpoints.jsonl";

const SEGMENT_PREFIX: &str = "audit-";
const SEGMENT_SUFFIX: &str = ".jsonl";

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> AuditError {
    let path = path.to_owned();
    move |source| AuditError::Io {
        op,
        path,
        source: Arc::new(source),
    }
}

/// `audit-<first seq, 20 digits>.jsonl`: fixed width so that names sort like numbers.
pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{first_seq:020}{SEGMENT_SUFFIX}")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) struct Segment {
    pub first_seq: u64,
    pub path: PathBuf,
}

impl Segment {
    pub fn file_name(&self) -> String {
        segment_name(self.first_seq)
    }
}

/// The segments of a log in chain order. Other files in the directory are not the log's and
/// are left alone.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<Segment>, AuditError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let entry = entry.map_err(io_err("read directory", dir))?;
        let Some(first_seq) = entry.file_name().to_str().and_then(parse_segment_name) else {
            continue;
        };
        segments.push(Segment {
            first_seq,
            path: entry.path(),
        });
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

/// Creates the directory 0700, or tightens an existing one. Returns whether it had to be
/// tightened, which the caller records: somebody loosened it.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<bool, AuditError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(io_err("create directory", dir))?;
    restrict(dir, DIR_MODE)
}

/// Sets `mode` on `path` if group or others have any access. Returns whether it did.
pub(crate) fn restrict(path: &Path, mode: u32) -> Result<bool, AuditError> {
    let meta = fs::metadata(path).map_err(io_err("stat", path))?;
    if meta.permissions().mode() & 0o077 == 0 {
        return Ok(false);
    }
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(io_err("chmod", path))?;
    Ok(true)
}

/// Opens `path` for appending, creating it 0600. Returns the file and whether it was created
/// (the directory entry then needs an fsync).
pub(crate) fn open_append(path: &Path) -> Result<(File, bool), AuditError> {
    match OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let file = OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(io_err("open", path))?;
            Ok((file, false))
        }
        Err(e) => Err(io_err("create", path)(e)),
    }
}

/// Makes creations and truncations of entries in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

pub(crate) enum Line {
    /// Ended by a newline; the buffer holds it without the newline.
    Complete,
    /// Ended by a newline but longer than the cap; the buffer is empty.
    TooLong,
    /// The file ended before a newline: a torn write, or a write still in progress. The buffer
    /// holds it (empty if it was over the cap).
    Unterminated,
}

pub(crate) struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
    /// Bytes consumed so far: the offset of the next line.
    pub offset: u64,
    /// 1-based number of the line last returned.
    pub line_no: u64,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner: BufReader::with_capacity(64 * 1024, inner),
            max,
            offset: 0,
            line_no: 0,
        }
    }

    /// Reads the next line into `buf`. A line over the cap is skipped to its end without being
    /// stored, so a damaged file without newlines costs no more memory than one line.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Line>> {
        buf.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if !any {
                    return Ok(None);
                }
                self.line_no += 1;
                return Ok(Some(Line::Unterminated));
            }
            any = true;
            let newline = available.iter().position(|&b| b == b'\n');
            let chunk = &available[..newline.unwrap_or(available.len())];
            if !too_long {
                if buf.len() + chunk.len() > self.max {
                    too_long = true;
                    buf.clear();
                } else {
                    buf.extend_from_slice(chunk);
                }
            }
            let used = chunk.len() + usize::from(newline.is_some());
            self.inner.consume(used);
            self.offset += used as u64;
            if newline.is_some() {
                self.line_no += 1;
                return Ok(Some(if too_long {
                    Line::TooLong
                } else {
                    Line::Complete
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_reject_lookalikes() {
        assert_eq!(
            segment_name(42),
            "audit-00000000000000000042.jsonl".to_string()
        );
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        for bad in [
            "audit-42.jsonl",
            "audit-0000000000000000004x.jsonl",
            "audit-99999999999999999999.jsonl",
            "audit-00000000000000000042.jsonl.bak",
            "checkpoints.jsonl",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_are_capped_and_torn_tails_reported() {
        let data = b"short\nthis line is too long\nok\ntorn";
        let mut reader = LineReader::new(&data[..], 8);
        let mut buf = Vec::new();
        assert!(matches!(
            reader.next_line(&mut buf),
            Ok(Some(Line::Complete))
        ));
        assert_eq!(buf, b"short");
        assert!(matches!(
            reader.next_line(&mut buf),
            Ok(Some(Line::TooLong))
        ));
        assert!(buf.is_empty());
        assert!(matches!(
            reader.next_line(&mut buf),
            Ok(Some(Line::Complete))
        ));
        assert_eq!(buf, b"ok");
        let before_torn = reader.offset;
        assert!(matches!(
            reader.next_line(&mut buf),
            Ok(Some(Line::Unterminated))
        ));
        assert_eq!(buf, b"torn");
        assert_eq!(reader.line_no, 4);
        assert_eq!(before_torn, data.len() as u64 - 4);
        assert!(matches!(reader.next_line(&mut buf), Ok(None)));
    }
}
