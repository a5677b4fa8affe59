//! Reading records back, for `ward audit-log show`.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::AuditError;
use crate::files::{Line, LineReader, Segment, io_err, list_segments};
use crate::record::{self, AuditRecord, MAX_LINE_BYTES};

/// Reads the records of the log in `dir` in chain order, those at or after `since_unix_ms` if
/// given. Each record is checked against its own hash (a modified one is an error item); the
/// links between records and the checkpoints are [`crate::verify`]'s job. A partial line at the
/// very end is skipped, not reported: it is a write in progress (or a crash's leftover, which
/// `verify` reports and the next open cuts off). Safe to run next to a live writer.
pub fn read(dir: &Path, since_unix_ms: Option<i64>) -> Result<Records, AuditError> {
    let segments = list_segments(dir)?;
    let mut start = 0;
    if let Some(since) = since_unix_ms {
        // The writer never lets time go backwards along the chain, so a segment is all older
        // than `since` when the next one starts before it.
        for (i, segment) in segments.iter().enumerate().skip(1) {
            match first_time(&segment.path)? {
                Some(t) if t < since => start = i,
                _ => break,
            }
        }
    }
    Ok(Records {
        segments: segments.into_iter().skip(start).collect(),
        current: None,
        since: since_unix_ms,
        buf: Vec::new(),
    })
}

/// The time of a segment's first record, if it has a readable one.
fn first_time(path: &Path) -> Result<Option<i64>, AuditError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let mut reader = LineReader::new(file, MAX_LINE_BYTES);
    let mut buf = Vec::new();
    match reader.next_line(&mut buf).map_err(io_err("read", path))? {
        Some(Line::Complete) => Ok(record::parse(&buf)
            .ok()
            .filter(|p| p.intact)
            .map(|p| p.record.time_unix_ms)),
        _ => Ok(None),
    }
}

/// Iterator returned by [`read`].
pub struct Records {
    segments: VecDeque<Segment>,
    current: Option<(PathBuf, LineReader<File>)>,
    since: Option<i64>,
    buf: Vec<u8>,
}

impl Iterator for Records {
    type Item = Result<AuditRecord, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (path, reader) = match &mut self.current {
                Some(current) => current,
                None => {
                    let segment = self.segments.pop_front()?;
                    match File::open(&segment.path) {
                        Ok(file) => self
                            .current
                            .insert((segment.path, LineReader::new(file, MAX_LINE_BYTES))),
                        Err(e) => return Some(Err(io_err("open", &segment.path)(e))),
                    }
                }
            };
            let line = match reader.next_line(&mut self.buf) {
                Ok(line) => line,
                Err(e) => {
                    let error = io_err("read", path)(e);
                    self.current = None;
                    return Some(Err(error));
                }
            };
            let unparseable = |reason: String| AuditError::Unparseable {
                path: path.clone(),
                line: reader.line_no,
                reason,
            };
            match line {
                None => self.current = None,
                Some(Line::Unterminated) if self.segments.is_empty() => self.current = None,
                Some(Line::Unterminated) => {
                    let error = unparseable("partial record at the end of a segment".into());
                    self.current = None;
                    return Some(Err(error));
                }
                Some(Line::TooLong) => {
                    return Some(Err(unparseable(format!(
                        "line longer than {MAX_LINE_BYTES} bytes"
                    ))));
                }
                Some(Line::Complete) => match record::parse(&self.buf) {
                    Err(reason) => return Some(Err(unparseable(reason))),
                    Ok(parsed) if !parsed.intact => {
                        return Some(Err(AuditError::ModifiedRecord {
                            path: path.clone(),
                            line: reader.line_no,
                            seq: parsed.record.seq,
                        }));
                    }
                    Ok(parsed) => {
                        if self.since.is_some_and(|s| parsed.record.time_unix_ms < s) {
                            continue;
                        }
                        return Some(Ok(parsed.record));
                    }
                },
            }
        }
    }
}
