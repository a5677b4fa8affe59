//! Offline verification of a log directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;

use crate::AuditError;
use crate::checkpoint;
use crate::files::{CHECKPOINT_FILE, Line, LineReader, io_err, list_segments};
use crate::record::{self, GENESIS, MAX_LINE_BYTES, Parsed};

/// A damaged log can have a problem on every line; the report keeps the first ones.
const MAX_PROBLEMS: usize = 1000;

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Record lines read (parseable or not).
    pub records: u64,
    /// Checkpoint lines read.
    pub checkpoints: u64,
    /// Highest sequence number seen.
    pub last_seq: u64,
    /// Highest sequence number covered by an authentic checkpoint.
    pub last_checkpoint_seq: u64,
    /// In log order (segments, then checkpoints, then what only the end shows).
    pub problems: Vec<Problem>,
    /// Problems found beyond the first 1000, which are not listed.
    pub problems_omitted: u64,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn first_problem(&self) -> Option<&Problem> {
        self.problems.first()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The record concerned, when known (for a checkpoint problem, the seq it claims to cover).
    pub seq: Option<u64>,
    /// File name inside the log directory.
    pub file: String,
    /// 1-based line in `file`.
    pub line: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// Not a record (or not a checkpoint) at all.
    Unparseable { reason: String },
    /// The file ends in a partial line: a crash during a write, not yet repaired by an open.
    TornWrite,
    /// The record's content does not match its hash.
    ModifiedRecord,
    /// The record is intact and in sequence but does not link to the record before it.
    BrokenLink,
    /// `count` records from `seq` on are absent.
    MissingRecords { count: u64 },
    /// Records from `seq` on are present but out of order.
    Reordered,
    /// A sequence number appears twice.
    DuplicateSeq,
    /// An authentic checkpoint covers record `seq` but the log ends at `last_seq`.
    TruncatedTail { last_seq: u64 },
    /// The checkpoint's signature does not verify with the public key.
    BadCheckpointSignature,
    /// An authentic checkpoint disagrees with the hash of the record at its seq.
    CheckpointMismatch,
    /// There are records but no checkpoint file, so truncation could go unnoticed.
    NoCheckpoints,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.file, self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (record {seq})")?;
        }
        f.write_str(": ")?;
        match &self.kind {
            ProblemKind::Unparseable { reason } => write!(f, "unparseable: {reason}"),
            ProblemKind::TornWrite => f.write_str("partial line at the end of the file"),
            ProblemKind::ModifiedRecord => {
                f.write_str("record modified: it does not match its hash")
            }
            ProblemKind::BrokenLink => {
                f.write_str("chain broken: does not link to the previous record")
            }
            ProblemKind::MissingRecords { count } => write!(f, "{count} record(s) missing"),
            ProblemKind::Reordered => f.write_str("records out of order"),
            ProblemKind::DuplicateSeq => f.write_str("sequence number repeated"),
            ProblemKind::TruncatedTail { last_seq } => write!(
                f,
                "log truncated: a signed checkpoint covers this record but the log ends at record {last_seq}"
            ),
            ProblemKind::BadCheckpointSignature => f.write_str("checkpoint signature invalid"),
            ProblemKind::CheckpointMismatch => {
                f.write_str("record differs from the one its signed checkpoint covers")
            }
            ProblemKind::NoCheckpoints => f.write_str("no checkpoint file"),
        }
    }
}

/// Verifies the log in `dir` against the checkpoint public key (32 bytes, from
/// [`crate::public_key_from_pkcs8`]): every record's hash, every link, sequence numbers
/// contiguous from 1, every checkpoint's signature and its agreement with the record it
/// covers, and that the log reaches its last checkpoint. `Err` only when the directory cannot
/// be read or the key is malformed; everything wrong with the log is in the report.
pub fn verify(dir: &Path, public_key: &[u8]) -> Result<VerifyReport, AuditError> {
    let key = checkpoint::public_key(public_key)?;
    let mut v = Verifier::default();
    let mut buf = Vec::new();

    // Checkpoints first: records are compared with them while streaming.
    let mut checkpoints: BTreeMap<u64, SignedPoint> = BTreeMap::new();
    let mut checkpoint_problems = Problems::default();
    let checkpoint_path = dir.join(CHECKPOINT_FILE);
    let checkpoint_file = match File::open(&checkpoint_path) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("open", &checkpoint_path)(e)),
    };
    let has_checkpoint_file = checkpoint_file.is_some();
    if let Some(file) = checkpoint_file {
        let mut reader = LineReader::new(file, MAX_LINE_BYTES);
        while let Some(line) = reader
            .next_line(&mut buf)
            .map_err(io_err("read", &checkpoint_path))?
        {
            v.report.checkpoints += 1;
            let mut problem = |kind, seq| {
                checkpoint_problems.push(Problem {
                    kind,
                    seq,
                    file: CHECKPOINT_FILE.into(),
                    line: reader.line_no,
                });
            };
            match line {
                Line::Unterminated => problem(ProblemKind::TornWrite, None),
                Line::TooLong => problem(too_long(), None),
                Line::Complete => match checkpoint::parse(&buf) {
                    Err(reason) => problem(ProblemKind::Unparseable { reason }, None),
                    Ok(cp) if !cp.is_authentic(&key) => {
                        problem(ProblemKind::BadCheckpointSignature, Some(cp.seq))
                    }
                    Ok(cp) => {
                        checkpoints.entry(cp.seq).or_insert(SignedPoint {
                            hash: cp.hash,
                            line: reader.line_no,
                        });
                    }
                },
            }
        }
    }

    for segment in list_segments(dir)? {
        let file = File::open(&segment.path).map_err(io_err("open", &segment.path))?;
        let name = segment.file_name();
        let mut reader = LineReader::new(file, MAX_LINE_BYTES);
        while let Some(line) = reader
            .next_line(&mut buf)
            .map_err(io_err("read", &segment.path))?
        {
            v.report.records += 1;
            let at = (name.as_str(), reader.line_no);
            match line {
                Line::Unterminated => v.unreadable(ProblemKind::TornWrite, at),
                Line::TooLong => v.unreadable(too_long(), at),
                Line::Complete => match record::parse(&buf) {
                    Err(reason) => v.unreadable(ProblemKind::Unparseable { reason }, at),
                    Ok(parsed) => v.record(&parsed, at, &checkpoints),
                },
            }
        }
    }

    let mut report = v.finish();
    report.problems_omitted += checkpoint_problems.omitted;
    report.problems.extend(checkpoint_problems.list);
    if let Some((&seq, point)) = checkpoints.last_key_value() {
        report.last_checkpoint_seq = seq;
        if seq > report.last_seq {
            report.problems.push(Problem {
                kind: ProblemKind::TruncatedTail {
                    last_seq: report.last_seq,
                },
                seq: Some(seq),
                file: CHECKPOINT_FILE.into(),
                line: point.line,
            });
        }
    }
    if !has_checkpoint_file && report.records > 0 {
        report.problems.push(Problem {
            kind: ProblemKind::NoCheckpoints,
            seq: None,
            file: CHECKPOINT_FILE.into(),
            line: 0,
        });
    }
    if report.problems.len() > MAX_PROBLEMS {
        report.problems_omitted += (report.problems.len() - MAX_PROBLEMS) as u64;
        report.problems.truncate(MAX_PROBLEMS);
    }
    Ok(report)
}

fn too_long() -> ProblemKind {
    ProblemKind::Unparseable {
        reason: format!("line longer than {MAX_LINE_BYTES} bytes"),
    }
}

struct SignedPoint {
    hash: [u8; 32],
    line: u64,
}

#[derive(Default)]
struct Problems {
    list: Vec<Problem>,
    omitted: u64,
}

impl Problems {
    /// Stores the problem and returns its index, or counts it as omitted.
    fn push(&mut self, problem: Problem) -> Option<usize> {
        if self.list.len() >= MAX_PROBLEMS {
            self.omitted += 1;
            return None;
        }
        self.list.push(problem);
        Some(self.list.len() - 1)
    }
}

/// Records absent where the sequence jumped. If they turn up later, the jump was a
/// reordering, not a deletion; the problem reported at the jump is rewritten accordingly.
struct Gap {
    problem: usize,
    from: u64,
    to: u64,
    remaining: u64,
}

struct Verifier {
    report: VerifyReport,
    problems: Problems,
    expected_seq: u64,
    /// Hashes the next record may link to: the previous record's stored hash and, when that
    /// record was modified, also the hash of its current content (one of them is the
    /// original, depending on which part was changed). `None` after an unreadable line.
    expected_prev: Option<[[u8; 32]; 2]>,
    gaps: Vec<Gap>,
    /// Sequence numbers that arrived late into a gap, to tell a repeat from a reordering.
    late: BTreeSet<u64>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            report: VerifyReport {
                records: 0,
                checkpoints: 0,
                last_seq: 0,
                last_checkpoint_seq: 0,
                problems: Vec::new(),
                problems_omitted: 0,
            },
            problems: Problems::default(),
            expected_seq: 1,
            expected_prev: Some([GENESIS; 2]),
            gaps: Vec::new(),
            late: BTreeSet::new(),
        }
    }
}

impl Verifier {
    fn problem(
        &mut self,
        kind: ProblemKind,
        seq: Option<u64>,
        (file, line): (&str, u64),
    ) -> Option<usize> {
        self.problems.push(Problem {
            kind,
            seq,
            file: file.into(),
            line,
        })
    }

    /// A line that is not a record. It is counted as one record position, and the next
    /// readable record is taken as it comes: without its content nothing can be said about
    /// the seq or link across it, and guessing would bury the real problem under false ones.
    fn unreadable(&mut self, kind: ProblemKind, at: (&str, u64)) {
        self.problem(kind, None, at);
        self.expected_seq = self.expected_seq.saturating_add(1);
        self.expected_prev = None;
    }

    fn record(
        &mut self,
        parsed: &Parsed,
        at: (&str, u64),
        checkpoints: &BTreeMap<u64, SignedPoint>,
    ) {
        let r = &parsed.record;
        let resync = self.expected_prev.is_none();

        if !parsed.intact {
            // Counted at the position it holds, so that a changed digit in its seq is not
            // also reported as a gap. Its checkpoint would only repeat this problem.
            let position = if resync { r.seq } else { self.expected_seq };
            self.problem(ProblemKind::ModifiedRecord, Some(r.seq), at);
            self.advance(position, [r.hash, parsed.computed_hash]);
            return;
        }

        if resync || r.seq == self.expected_seq {
            let linked = self
                .expected_prev
                .is_none_or(|prev| prev.contains(&r.prev_hash));
            if !linked {
                self.problem(ProblemKind::BrokenLink, Some(r.seq), at);
            }
            self.check_point(r.seq, &r.hash, at, checkpoints);
            self.advance(r.seq, [r.hash; 2]);
        } else if r.seq > self.expected_seq {
            let (from, to) = (self.expected_seq, r.seq - 1);
            let count = to - from + 1;
            if let Some(problem) =
                self.problem(ProblemKind::MissingRecords { count }, Some(from), at)
            {
                self.gaps.push(Gap {
                    problem,
                    from,
                    to,
                    remaining: count,
                });
            }
            self.check_point(r.seq, &r.hash, at, checkpoints);
            self.advance(r.seq, [r.hash; 2]);
        } else {
            let seq = r.seq;
            let gap = self
                .gaps
                .iter_mut()
                .find(|g| g.from <= seq && seq <= g.to && !self.late.contains(&seq));
            match gap {
                Some(gap) => {
                    self.late.insert(seq);
                    gap.remaining -= 1;
                    self.problems.list[gap.problem].kind = if gap.remaining == 0 {
                        ProblemKind::Reordered
                    } else {
                        ProblemKind::MissingRecords {
                            count: gap.remaining,
                        }
                    };
                    self.check_point(seq, &r.hash, at, checkpoints);
                }
                None => {
                    self.problem(ProblemKind::DuplicateSeq, Some(seq), at);
                }
            }
        }
    }

    fn advance(&mut self, seq: u64, prev: [[u8; 32]; 2]) {
        self.expected_seq = seq.saturating_add(1);
        self.expected_prev = Some(prev);
        self.report.last_seq = self.report.last_seq.max(seq);
    }

    fn check_point(
        &mut self,
        seq: u64,
        hash: &[u8; 32],
        at: (&str, u64),
        checkpoints: &BTreeMap<u64, SignedPoint>,
    ) {
        if checkpoints
            .get(&seq)
            .is_some_and(|point| point.hash != *hash)
        {
            self.problem(ProblemKind::CheckpointMismatch, Some(seq), at);
        }
    }

    fn finish(mut self) -> VerifyReport {
        self.report.problems = self.problems.list;
        self.report.problems_omitted = self.problems.omitted;
        self.report
    }
}
