//! STOW-RS through the whole web application: `POST /dicom-web/studies` (or a study's URL) with
//! the input as a `multipart/related; type="application/dicom"` body, through `ward_web::router`
//! (body limit, bearer token, the multipart parser, the part head's meta group reading, the one
//! ingest path with its pre-scan, the index and the audit trail), without a socket.
//!
//! One application per process, in a data directory under `$TMPDIR` (scripts/fuzz points it at
//! a scratch directory it removes afterwards), with a modality's API token. Objects stored stay
//! stored, so the answer to an input may depend on the ones before it (an instance already
//! stored with other content is refused; the same content is accepted again); when the
//! directory grows past `MAX_DATA_DIR` the application is rebuilt in a fresh one.
//!
//! Input: one configuration byte, then the body.
//! - bit 0: post to the matching table's first study (`/dicom-web/studies/{study}`) rather than
//!   to `/dicom-web/studies`;
//! - bits 1–3: the body arrives whole (0) or as a stream of chunks of `CHUNKS[n]` bytes;
//! - bit 4: the Content-Type is the body's first line (when it is a valid header value)
//!   instead of `multipart/related; type="application/dicom"; boundary=<STOW_BOUNDARY>`.
//!
//! Properties:
//! - nothing panics;
//! - the status is 200, 202, 400, 409, 413 or 415: never a server error, and never an
//!   authentication failure (the token is valid);
//! - a body without its closing delimiter within the body limit (cut short, or too long) is
//!   never answered 200, "every instance stored": part of it was not read;
//! - the body is JSON (but for the plain-text 413 of the body limit layer, see
//!   docs/robustness.md); a 200, 202 or 409 answer lists stored instances (Referenced SOP
//!   Sequence) and refused ones (Failed SOP Sequence) as its status says: 200 only stored, 202
//!   both, 409 only refused; at most `MAX_PARTS` of them and one for an unread rest;
//! - every instance listed as stored has its index row, of that SOP class, in the URL's study
//!   when the URL names one, and its blob file;
//! - a request allocates at most a constant factor of the body's size, plus a fixed allowance
//!   for the index's and the audit trail's buffers.
#![no_main]

use std::convert::Infallible;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt as _;
use ward_fuzz::seeds::{STOW_BOUNDARY, stow_study};
use ward_index::{ApiTokenRecord, Index, SqliteIndex};
use ward_types::{Role, Uid, UserName};
use ward_web::{Auth, Router, WebPolicy, WebState, router};

/// Chunk sizes a body may be streamed in (0: one piece, with its length known up front).
const CHUNKS: [usize; 8] = [0, 1, 3, 16, 100, 1000, 4096, 16384];
/// The body limit of the application under test: below the fuzzer's longest input, so that
/// refusals of oversized bodies are reached.
const MAX_BODY: u64 = 48 << 10;
/// Parts one request may hold: below the number some seeds carry.
const MAX_PARTS: u32 = 5;
/// The data directory is checked every this many inputs, and rebuilt past `MAX_DATA_DIR`.
const CHECK_EVERY: u64 = 4096;
const MAX_DATA_DIR: u64 = 256 << 20;
/// Heap a request may use besides its body's share: SQLite's page caches and statements, the
/// audit writer's buffers, the runtime's blocking threads.
const FIXED_ALLOWANCE: usize = 32 << 20;

struct App {
    dir: PathBuf,
    router: Router,
    index: Arc<SqliteIndex>,
    store: Arc<dyn ward_store::BlobStore>,
    token: String,
    inputs: u64,
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    app: Mutex<Option<App>>,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

fn harness() -> &'static Harness {
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let app = runtime.block_on(App::create());
        Harness {
            runtime,
            app: Mutex::new(Some(app)),
        }
    })
}

impl App {
    async fn create() -> App {
        let name = format!(
            "ward-fuzz-stow-{}-{:016x}",
            std::process::id(),
            RandomState::new().hash_one(std::time::SystemTime::now())
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("create the data directory");
        let keyring = ward_store::Keyring::generate().expect("a keyring");
        let store: Arc<dyn ward_store::BlobStore> = Arc::new(
            ward_store::LocalBlobStore::open(&dir, Arc::new(keyring)).expect("blob store"),
        );
        let index = Arc::new(
            SqliteIndex::open(&dir.join("index.sqlite"), true)
                .await
                .expect("open the index"),
        );
        let audit_dir = dir.join("audit");
        std::fs::create_dir(&audit_dir).expect("create the audit directory");
        let key = ward_audit::generate_signing_key().expect("an audit signing key");
        let audit = ward_audit::AuditLog::open(&audit_dir, &key)
            .await
            .expect("open the audit trail");
        let spool = dir.join("spool");
        std::fs::create_dir(&spool).expect("create the spool");
        let ingest = Arc::new(ward_ingest::Ingest::new(
            Arc::clone(&store),
            index.clone(),
            audit,
            spool,
            Default::default(),
        ));
        let config = ward_config::Config::default();
        let auth = Auth::new(index.clone(), &config.web, None).expect("the verifier");
        let mut policy = WebPolicy::from_config(&config);
        policy.max_body_bytes = MAX_BODY;
        policy.max_parts = MAX_PARTS;
        let state = WebState::new(
            ingest,
            auth,
            policy,
            config.query.max_matches_per_hour,
            audit_dir,
        );
        let (token, token_hash) = ward_web::new_api_token();
        index
            .token_add(&ApiTokenRecord {
                name: UserName::parse("fuzz-modality").expect("a valid name"),
                role: Role::Modality,
                token_hash,
                created_at_unix_ms: 0,
                expires_at_unix_ms: None,
                revoked_at_unix_ms: None,
            })
            .await
            .expect("add the API token");
        App {
            dir,
            router: router(Arc::new(state)),
            index,
            store,
            token,
            inputs: 0,
        }
    }
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// What the input asks for.
struct Sent {
    request: Request<Body>,
    /// The body's length.
    len: usize,
    /// The body has a Content-Length header.
    whole: bool,
    /// With the fixed Content-Type: whether the body's closing delimiter is within the body
    /// limit, so that the body can be read to its end (always true with another Content-Type).
    closes_in_limit: bool,
}

/// The request the input describes.
fn request(config: u8, body: &[u8], token: &str) -> Sent {
    let fixed = format!("multipart/related; type=\"application/dicom\"; boundary={STOW_BOUNDARY}");
    let (content_type, body) = match body.iter().position(|&b| b == b'\n') {
        Some(i) if config & 0x10 != 0 => {
            let line = body[..i].strip_suffix(b"\r").unwrap_or(&body[..i]);
            match HeaderValue::from_bytes(line) {
                Ok(value) => (value, &body[i + 1..]),
                Err(_) => (HeaderValue::from_str(&fixed).expect("valid"), body),
            }
        }
        _ => (HeaderValue::from_str(&fixed).expect("valid"), body),
    };
    let closing = format!("--{STOW_BOUNDARY}--");
    let within = &body[..body.len().min(MAX_BODY as usize)];
    let closes_in_limit = content_type.as_bytes() != fixed.as_bytes()
        || within
            .windows(closing.len())
            .any(|w| w == closing.as_bytes());
    let len = body.len();
    let uri = if config & 0x01 != 0 {
        format!("/dicom-web/studies/{}", stow_study())
    } else {
        "/dicom-web/studies".to_owned()
    };
    let chunk = CHUNKS[usize::from((config >> 1) & 0x07)];
    let mut request = Request::post(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, content_type);
    let body = if chunk == 0 {
        // As a client sends a body it has whole: with its length.
        request = request.header(header::CONTENT_LENGTH, body.len());
        Body::from(body.to_vec())
    } else {
        let chunks: Vec<Result<Bytes, Infallible>> = body
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Body::from_stream(futures_util::stream::iter(chunks))
    };
    Sent {
        request: request.body(body).expect("a valid request"),
        len,
        whole: chunk == 0,
        closes_in_limit,
    }
}

/// The `(class, instance)` pairs of a Referenced or Failed SOP Sequence.
fn listed(answer: &Value, sequence: &str) -> Option<Vec<(Option<String>, Option<String>)>> {
    let items = answer.get(sequence)?.get("Value")?.as_array()?;
    let uid = |item: &Value, tag: &str| {
        item.get(tag)
            .and_then(|e| e.get("Value"))
            .and_then(|v| v.get(0))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Some(
        items
            .iter()
            .map(|item| (uid(item, "00081150"), uid(item, "00081155")))
            .collect(),
    )
}

/// What came back, with what the checks need to know of the request.
struct Answer {
    status: StatusCode,
    bytes: Bytes,
    len: usize,
    whole: bool,
    closes_in_limit: bool,
}

/// Sends one input (under the allocation budget).
async fn send(app: &App, config: u8, body: &[u8]) -> Answer {
    let sent = request(config, body, &app.token);
    let response = app
        .router
        .clone()
        .oneshot(sent.request)
        .await
        .expect("the router's error type is Infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a response body is in memory")
        .to_bytes();
    Answer {
        status,
        bytes,
        len: sent.len,
        whole: sent.whole,
        closes_in_limit: sent.closes_in_limit,
    }
}

/// Checks an answer (outside the budget: a failed check's backtrace needs memory).
async fn check(app: &App, config: u8, answer: Answer) {
    let Answer {
        status,
        bytes,
        len,
        whole,
        closes_in_limit,
    } = answer;
    let text = String::from_utf8_lossy(&bytes);
    if verbose() {
        eprintln!("{status} {text}");
    }
    assert!(
        [
            StatusCode::OK,
            StatusCode::ACCEPTED,
            StatusCode::BAD_REQUEST,
            StatusCode::CONFLICT,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ]
        .contains(&status),
        "status {status}: {text}"
    );
    if !closes_in_limit {
        assert_ne!(
            status,
            StatusCode::OK,
            "a body that does not end within the limit answered as wholly stored: {text}"
        );
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE && whole && len as u64 > MAX_BODY {
        // Refused on its Content-Length by tower-http's body limit, before any handler, with
        // that layer's plain-text body (see docs/robustness.md, observations).
        return;
    }
    let answer: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("status {status} with a body that is not JSON ({e}): {text}"));
    if ![StatusCode::OK, StatusCode::ACCEPTED, StatusCode::CONFLICT].contains(&status) {
        assert!(answer.get("error").is_some(), "status {status}: {text}");
        return;
    }
    let stored = listed(&answer, "00081199");
    let failed = listed(&answer, "00081198");
    let expected = match status {
        StatusCode::OK => (true, false),
        StatusCode::ACCEPTED => (true, true),
        _ => (false, true),
    };
    assert_eq!(
        (stored.is_some(), failed.is_some()),
        expected,
        "status {status}: {text}"
    );
    let parts = stored.iter().chain(&failed).map(Vec::len).sum::<usize>();
    // At most `MAX_PARTS` parts, and one entry for an unread rest of the body.
    assert!(
        parts <= MAX_PARTS as usize + 1,
        "{parts} parts answered: {text}"
    );
    for (class, instance) in stored.unwrap_or_default() {
        let (Some(class), Some(instance)) = (class, instance) else {
            panic!("a stored instance without its UIDs: {text}");
        };
        let uid = Uid::parse(&instance).expect("a stored instance's UID is valid");
        let row = app
            .index
            .instance(&uid)
            .await
            .expect("the index answers")
            .unwrap_or_else(|| panic!("{instance} answered as stored but not indexed"));
        assert_eq!(row.sop_class_uid.as_str(), class);
        if config & 0x01 != 0 {
            assert_eq!(row.study_instance_uid.as_str(), stow_study());
        }
        let key = ward_store::BlobKey::parse(&row.blob_key).expect("a valid blob key");
        assert!(
            app.store.exists(&key).await.expect("the store answers"),
            "{instance} has no blob {key}"
        );
    }
}

/// With WARD_FUZZ_LOG set, every answer and Ward's error logs go to stderr.
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("WARD_FUZZ_LOG").is_some())
}

fn warm_up() {
    if verbose() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing_subscriber::filter::LevelFilter::ERROR)
            .init();
    }
    let harness = harness();
    let guard = harness.app.lock().expect("not poisoned");
    let app = guard.as_ref().expect("an application");
    // The first request builds the dictionary, the index's statements and the audit segment.
    for seed in ward_fuzz::seeds::stow().into_iter().take(2) {
        let answer = harness.runtime.block_on(send(app, seed[0], &seed[1..]));
        harness.runtime.block_on(check(app, seed[0], answer));
    }
}

fuzz_target!(
    init: ward_fuzz::init("stow", ward_fuzz::seeds::stow, warm_up),
    |data: &[u8]| {
        let Some((&config, body)) = data.split_first() else {
            return;
        };
        let harness = harness();
        let mut guard = harness.app.lock().expect("not poisoned");
        let app = guard.as_mut().expect("an application");
        app.inputs += 1;
        if app.inputs % CHECK_EVERY == 0 && dir_size(&app.dir) > MAX_DATA_DIR {
            let old = guard.take().expect("an application");
            let _enter = harness.runtime.enter();
            let dir = old.dir.clone();
            drop(old);
            let _ = std::fs::remove_dir_all(dir);
            *guard = Some(harness.runtime.block_on(App::create()));
        }
        let app = guard.as_ref().expect("an application");
        let budget = ward_fuzz::parse_budget(body.len()).saturating_add(FIXED_ALLOWANCE);
        let answer = ward_fuzz::with_budget(budget, || {
            harness.runtime.block_on(send(app, config, body))
        });
        harness.runtime.block_on(check(app, config, answer));
    }
);
