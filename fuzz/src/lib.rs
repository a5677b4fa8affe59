//! Shared pieces of Ward's fuzz targets: driving Ward's async readers without a runtime, an
//! allocation budget per input, the transfer syntax tables inputs choose from, and the seeds
//! Ward's own encoders produce.
//!
//! Each target reads its configuration (transfer syntax, limits, chunking) from the first byte
//! of the input and treats the rest as what a peer or a disk would hand Ward, so that one corpus
//! entry fully determines one run.

// Only for a backtrace when an input overruns its allocation budget; cargo-fuzz builds with
// RUSTC_BOOTSTRAP=1 anyway (see scripts/fuzz).
#![feature(alloc_error_hook)]

use std::alloc::{Layout, System};
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use cap::Cap;

pub mod seeds;

/// Counts live heap bytes. Without a limit set it only counts; [`with_budget`] sets one.
#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// Runs `f` with at most `bytes` more heap live at any time than when it started. An allocation
/// past the budget fails: `try_reserve` callers see an error, everything else aborts with
/// "memory allocation of N bytes failed", which libFuzzer reports as a crash with the input.
///
/// This is the executable form of the architecture rule that peer bytes never size an
/// allocation before they were checked: a trusted 4 GB length blows any budget, while honest
/// parsing stays within a constant factor of the input.
pub fn with_budget<T>(bytes: usize, f: impl FnOnce() -> T) -> T {
    let base = ALLOC.allocated();
    ALLOC
        .set_limit(base.saturating_add(bytes))
        .expect("a limit above what is allocated is accepted");
    let out = f();
    ALLOC
        .set_limit(usize::MAX)
        .expect("lifting the limit always succeeds");
    out
}

/// Reports which allocation overran the budget, and from where, before the runtime aborts
/// (libFuzzer then saves the input as a crash).
fn budget_exceeded(layout: Layout) {
    let live = ALLOC.allocated();
    let _ = ALLOC.set_limit(usize::MAX);
    eprintln!(
        "allocation of {} bytes refused: {live} bytes live, past this input's budget\n{}",
        layout.size(),
        std::backtrace::Backtrace::force_capture()
    );
}

/// Heap allowed per byte of decoded input. dicom-object keeps each value in its own
/// `SmallVec`/`String`: a text value made only of backslashes becomes one empty `String`
/// (24 bytes) per byte, and growth by doubling can briefly hold three times that. 128 covers
/// this with room; a length trusted from the data exceeds it by orders of magnitude.
pub const BYTES_PER_INPUT_BYTE: usize = 128;
/// Fixed allowance per run: buffered readers (64 KiB each), dictionary look-ups, file handles.
pub const FIXED_BUDGET: usize = 4 << 20;

/// The budget for parsing `len` bytes of decoded data.
pub fn parse_budget(len: usize) -> usize {
    len.saturating_mul(BYTES_PER_INPUT_BYTE)
        .saturating_add(FIXED_BUDGET)
}

/// Polls `f` to completion with a waker that does nothing. Only for futures over in-memory
/// readers, which are always ready or (see [`Stutter`]) wake themselves at once.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Polls `f` once; `None` if it was pending, in which case the future is
/// dropped, as a timeout or a losing `select!` branch drops it in the association loop.
pub fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

/// An in-memory stream that hands out at most `chunk` bytes per read and is pending before
/// every other read: what a slow peer looks like to a reader, and the moments a cancel-safe
/// reader may be dropped at.
pub struct Stutter<'a> {
    rest: &'a [u8],
    chunk: usize,
    pend_next: bool,
}

impl<'a> Stutter<'a> {
    pub fn new(bytes: &'a [u8], chunk: usize) -> Self {
        Stutter {
            rest: bytes,
            chunk: chunk.max(1),
            pend_next: true,
        }
    }
}

impl tokio::io::AsyncRead for Stutter<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pend_next {
            self.pend_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.pend_next = true;
        let n = self.chunk.min(self.rest.len()).min(buf.remaining());
        let (now, later) = self.rest.split_at(n);
        buf.put_slice(now);
        self.rest = later;
        Poll::Ready(Ok(()))
    }
}

/// Transfer syntax UIDs the targets choose from.
pub mod ts {
    pub const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
    pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
    pub const DEFLATED_LE: &str = "1.2.840.10008.1.2.1.99";
    pub const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
    pub const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
    pub const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
    pub const JPEG_LOSSLESS: &str = "1.2.840.10008.1.2.4.57";
    pub const JPEG_LOSSLESS_SV1: &str = "1.2.840.10008.1.2.4.70";
    pub const RLE: &str = "1.2.840.10008.1.2.5";

    /// The `dataset` target's syntaxes: every header layout (implicit, explicit little and big
    /// endian, deflated) and two encapsulated ones, whose Pixel Data is a fragment sequence.
    pub const DATASET: &[&str] = &[
        IMPLICIT_LE,
        EXPLICIT_LE,
        EXPLICIT_BE,
        DEFLATED_LE,
        JPEG_BASELINE,
        RLE,
    ];
    /// The `identifier` target's syntaxes: the ones a C-FIND peer may negotiate.
    pub const IDENTIFIER: &[&str] = &[IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED_LE];
    /// The `pixels` target's syntaxes: every one `decode_to_native` decodes.
    pub const PIXELS: &[&str] = &[
        RLE,
        JPEG_BASELINE,
        JPEG_EXTENDED,
        JPEG_LOSSLESS,
        JPEG_LOSSLESS_SV1,
    ];
    /// What `decode_to_native` writes.
    pub const NATIVE_TARGETS: &[&str] = &[IMPLICIT_LE, EXPLICIT_LE];

    /// The entry of `table` chosen by a selector byte.
    pub fn pick(table: &'static [&'static str], selector: u8) -> &'static str {
        table[usize::from(selector) % table.len()]
    }

    /// The selector byte that picks `uid` from `table`.
    pub fn selector(table: &[&str], uid: &str) -> Option<u8> {
        table
            .iter()
            .position(|t| *t == uid)
            .and_then(|i| u8::try_from(i).ok())
    }
}

/// Bytes of the data set once inflated, for a deflated transfer syntax (raw deflate, as the
/// pre-scan reads it), counting at most `cap` bytes; the length itself otherwise. The budget of
/// a deflated data set follows what it inflates to: the pre-scan bounds that separately.
pub fn decoded_len(body: &[u8], uid: &str, cap: u64) -> usize {
    if uid != ts::DEFLATED_LE {
        return body.len();
    }
    let inflated = flate2::read::DeflateDecoder::new(body).take(cap);
    let n = std::io::copy(&mut { inflated }, &mut std::io::sink()).unwrap_or(0);
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A file path private to this process for the Part 10 file a target writes (dicom-object's
/// header reading, like Ward's ingest, works on files). Under `$TMPDIR`, which scripts/fuzz
/// points at a directory it removes afterwards.
pub fn scratch_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ward-fuzz-{name}-{}.dcm", std::process::id()))
}

/// Called from each target's `init`: with `WARD_FUZZ_SEEDS_OUT` set, writes the seeds Ward's
/// own encoders produce for this target into that directory and exits, so that scripts/fuzz
/// gets them from the binaries it already built. Otherwise warms up lazily built tables (the
/// data dictionary) so their one-time allocation does not count against the first input.
pub fn init(target: &str, seeds: fn() -> Vec<Vec<u8>>, warm_up: fn()) {
    std::alloc::set_alloc_error_hook(budget_exceeded);
    if let Some(dir) = std::env::var_os("WARD_FUZZ_SEEDS_OUT") {
        let dir = Path::new(&dir);
        std::fs::create_dir_all(dir).expect("create the seed directory");
        for (i, seed) in seeds().into_iter().enumerate() {
            std::fs::write(dir.join(format!("ward-{target}-{i:03}")), seed).expect("write a seed");
        }
        std::process::exit(0);
    }
    warm_up();
}
