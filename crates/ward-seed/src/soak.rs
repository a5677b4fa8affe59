//! `soak`: a bounded load against a running Ward, to see that it neither fails nor grows.
//!
//! N DIMSE associations each loop a C-STORE of a fresh synthetic image followed by a
//! study-level C-FIND naming the patient just stored (Ward refuses queries that name no
//! patient, study, date or accession). Each association is released and a new one opened after
//! a number of operations, so that per-association resources are set up and torn down all
//! along the run, not once. M HTTP clients each loop STOW-RS of a fresh image, QIDO-RS for its
//! patient, and WADO-RS of the instance, on a keep-alive connection. Every answer is checked:
//! a success status, the one expected match with the stored study's UID, the retrieved
//! instance holding the bytes that were sent. Anything else is an error.
//!
//! Every interval the latencies and errors so far are summarised with the server's RSS and
//! open descriptors (read from /proc); at the end, totals and the verdict on growth after
//! warm-up. The table goes to stderr as the run goes, the whole report as JSON to stdout.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;
use hyper::{Method, StatusCode, header};
use serde_json::{Value, json};
use ward_dimse::{ClientAssociation, ClientOptions, Proposal};
use ward_types::Uid;

use crate::corpus::TRANSFER_SYNTAX;
use crate::stats::{self, Tally, Usage};
use crate::web;

const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
/// Study Root Query/Retrieve Information Model – FIND.
const STUDY_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";
const WADO_ACCEPT: &str = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";
/// Rows of every synthetic image; the columns vary to vary the size.
const ROWS: u16 = 256;
/// Error messages kept for the report; the count covers all of them.
const KEPT_ERRORS: usize = 50;

pub struct Options {
    /// Ward's plain DIMSE listener, HOST:PORT.
    pub dimse: String,
    pub called_ae: String,
    /// Calling AE titles, used in turn by the associations (each has its own match budget).
    pub calling_aes: Vec<String>,
    pub associations: usize,
    /// Store-and-find rounds per association before it is released and another opened
    /// (0: one association for the whole run).
    pub rounds_per_association: u64,
    /// The DICOMweb root, when HTTP clients run.
    pub web: Option<web::Client>,
    pub http_clients: usize,
    /// Ward's process id, whose usage is sampled.
    pub pid: u32,
    pub duration: Duration,
    pub warmup: Duration,
    pub interval: Duration,
    /// Size range of the images' pixel data, KiB.
    pub min_kib: u32,
    pub max_kib: u32,
    /// Longest any one operation may take before it counts as failed.
    pub timeout: Duration,
}

/// What the workers share: the current interval's tally and the first error messages.
struct Shared {
    deadline: Instant,
    start: Instant,
    tally: Mutex<Tally>,
    errors: Mutex<Vec<Value>>,
}

impl Shared {
    fn done(&self) -> bool {
        Instant::now() >= self.deadline
    }

    fn success(&self, op: &'static str, since: Instant) {
        let ms = since.elapsed().as_secs_f64() * 1000.0;
        if let Ok(mut t) = self.tally.lock() {
            t.success(op, ms);
        }
    }

    fn error(&self, op: &'static str, message: String) {
        if let Ok(mut t) = self.tally.lock() {
            t.error(op);
        }
        if let Ok(mut e) = self.errors.lock() {
            if e.len() < KEPT_ERRORS {
                let at = self.start.elapsed().as_secs_f64();
                eprintln!("ward-seed soak: {at:.1} s: {op}: {message}");
                e.push(json!({ "seconds": at, "operation": op, "message": message }));
            }
        }
    }
}

/// A fresh synthetic image: new patient, study, series and instance.
struct Synthetic {
    instance: Uid,
    study: String,
    series: String,
    patient_id: String,
    /// The data set in explicit VR little endian, as C-STORE sends it.
    dataset: Vec<u8>,
}

impl Synthetic {
    /// `columns` × 256 pixels of 16 bits, filled from `seed`.
    fn new(patient_id: String, columns: u16, seed: u64) -> Result<Synthetic> {
        let instance = ward_dicom::generate_uid();
        let study = ward_dicom::generate_uid().to_string();
        let series = ward_dicom::generate_uid().to_string();
        let mut obj = InMemDicomObject::new_empty();
        let mut text =
            |tag, vr, v: &str| obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
        text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
        text(tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE);
        text(tags::SOP_INSTANCE_UID, VR::UI, instance.as_str());
        text(tags::STUDY_DATE, VR::DA, "20261129");
        text(tags::STUDY_TIME, VR::TM, "101500");
        text(tags::ACCESSION_NUMBER, VR::SH, &patient_id);
        text(tags::MODALITY, VR::CS, "CT");
        text(tags::PATIENT_NAME, VR::PN, "SOAK^TEST");
        text(tags::PATIENT_ID, VR::LO, &patient_id);
        text(tags::PATIENT_BIRTH_DATE, VR::DA, "19700101");
        text(tags::PATIENT_SEX, VR::CS, "O");
        text(tags::STUDY_INSTANCE_UID, VR::UI, &study);
        text(tags::SERIES_INSTANCE_UID, VR::UI, &series);
        text(tags::STUDY_ID, VR::SH, "1");
        text(tags::SERIES_NUMBER, VR::IS, "1");
        text(tags::INSTANCE_NUMBER, VR::IS, "1");
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
        for (tag, v) in [
            (tags::SAMPLES_PER_PIXEL, 1u16),
            (tags::ROWS, ROWS),
            (tags::COLUMNS, columns),
            (tags::BITS_ALLOCATED, 16),
            (tags::BITS_STORED, 12),
            (tags::HIGH_BIT, 11),
            (tags::PIXEL_REPRESENTATION, 0),
        ] {
            obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
        }
        // xorshift64: cheap, and different for every image, so no two blobs share content.
        let mut state = seed | 1;
        let pixels: Vec<u16> = (0..usize::from(ROWS) * usize::from(columns))
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state & 0x0FFF) as u16
            })
            .collect();
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(pixels.into()),
        ));
        let mut dataset = Vec::with_capacity(usize::from(ROWS) * usize::from(columns) * 2 + 1024);
        obj.write_dataset_with_ts(&mut dataset, &EXPLICIT_VR_LITTLE_ENDIAN.erased())?;
        Ok(Synthetic {
            instance,
            study,
            series,
            patient_id,
            dataset,
        })
    }

    /// The Part 10 file, as STOW-RS sends it.
    fn part10(&self) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(self.dataset.len() + 512);
        ward_dicom::write_part10_header(
            &mut bytes,
            &Uid::parse(CT_IMAGE_STORAGE)?,
            &self.instance,
            &Uid::parse(TRANSFER_SYNTAX)?,
        )?;
        bytes.extend_from_slice(&self.dataset);
        Ok(bytes)
    }
}

/// Columns giving pixel data between `min_kib` and `max_kib` (256 rows of 2 bytes: 2 columns
/// per KiB), drawn from `draw`.
fn columns_for(min_kib: u32, max_kib: u32, draw: u64) -> u16 {
    let span = u64::from(max_kib.saturating_sub(min_kib)) + 1;
    let kib = u64::from(min_kib) + draw % span;
    u16::try_from(kib * 2).unwrap_or(u16::MAX)
}

/// A deterministic stream of draws per worker (splitmix64), so the sizes vary without a
/// dependency on a random number crate.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

async fn timed<T, F>(timeout: Duration, f: F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {} s", timeout.as_secs()))?
}

fn find_identifier(patient_id: &str) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from("STUDY"),
    ));
    obj.put(DataElement::new(
        tags::PATIENT_ID,
        VR::LO,
        PrimitiveValue::from(patient_id),
    ));
    obj.put(DataElement::new(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::Empty,
    ));
    obj
}

async fn dimse_worker(k: usize, shared: Arc<Shared>, options: Arc<Options>) {
    let aet = &options.calling_aes[k % options.calling_aes.len()];
    let client = ClientOptions {
        calling_ae: aet.clone(),
        called_ae: options.called_ae.clone(),
        max_pdu: 256 * 1024,
        timeout: options.timeout,
    };
    let proposals = [
        Proposal {
            abstract_syntax: CT_IMAGE_STORAGE.to_owned(),
            transfer_syntaxes: vec![TRANSFER_SYNTAX.to_owned()],
            scp_role: false,
        },
        Proposal {
            abstract_syntax: STUDY_ROOT_FIND.to_owned(),
            transfer_syntaxes: vec![TRANSFER_SYNTAX.to_owned()],
            scp_role: false,
        },
    ];
    let mut draws = Draws(k as u64);
    let mut n = 0u64;
    while !shared.done() {
        let t = Instant::now();
        let mut assoc =
            match ClientAssociation::connect(&options.dimse, client.clone(), &proposals).await {
                Ok(a) => {
                    shared.success("associate", t);
                    a
                }
                Err(e) => {
                    shared.error("associate", e.to_string());
                    // A refused or failed association is not retried at once, so that an
                    // outage shows as a few errors, not as a spin.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
        let mut rounds = 0;
        let mut broken = false;
        while !shared.done()
            && (options.rounds_per_association == 0 || rounds < options.rounds_per_association)
        {
            rounds += 1;
            n += 1;
            let columns = columns_for(options.min_kib, options.max_kib, draws.next());
            let object = match Synthetic::new(format!("SOAK-D{k}-{n}"), columns, draws.next()) {
                Ok(o) => o,
                Err(e) => {
                    shared.error("c-store", format!("cannot build the object: {e:#}"));
                    continue;
                }
            };
            let t = Instant::now();
            let stored = assoc
                .store_stream(
                    CT_IMAGE_STORAGE,
                    object.instance.as_str(),
                    TRANSFER_SYNTAX,
                    object.dataset.as_slice(),
                    object.dataset.len() as u64,
                    None,
                )
                .await;
            match stored {
                Ok((0, _)) => shared.success("c-store", t),
                Ok((status, comment)) => {
                    shared.error("c-store", format!("status {status:04X} {comment:?}"));
                    continue;
                }
                Err(e) => {
                    shared.error("c-store", e.to_string());
                    broken = true;
                    break;
                }
            }

            let t = Instant::now();
            let mut studies = Vec::new();
            let found = assoc
                .find(STUDY_ROOT_FIND, &find_identifier(&object.patient_id), |m| {
                    studies.push(
                        m.element(tags::STUDY_INSTANCE_UID)
                            .ok()
                            .and_then(|e| e.to_str().ok())
                            .map(|s| s.trim_end_matches('\0').to_owned()),
                    );
                })
                .await;
            match found {
                Ok((0, _)) if studies == [Some(object.study.clone())] => {
                    shared.success("c-find", t);
                }
                Ok((0, _)) => shared.error(
                    "c-find",
                    format!("expected study {}, got {studies:?}", object.study),
                ),
                Ok((status, comment)) => {
                    shared.error("c-find", format!("status {status:04X} {comment:?}"));
                }
                Err(e) => {
                    shared.error("c-find", e.to_string());
                    broken = true;
                    break;
                }
            }
        }
        if broken {
            assoc.abort().await;
            continue;
        }
        let t = Instant::now();
        match assoc.release().await {
            Ok(()) => shared.success("release", t),
            Err(e) => shared.error("release", e.to_string()),
        }
    }
}

/// A request that got no answer: the operation and why. The connection is then replaced.
struct Transport(&'static str, anyhow::Error);

/// One STOW-RS, QIDO-RS and WADO-RS round of `body` (the STOW-RS request body holding
/// `object`); every answer's failure is recorded here, `Err` only for a transport error.
async fn web_round(
    conn: &mut web::Connection,
    object: &Synthetic,
    body: Bytes,
    shared: &Shared,
    timeout: Duration,
) -> Result<(), Transport> {
    let content_type = format!(
        "multipart/related; type=\"application/dicom\"; boundary={}",
        web::STOW_BOUNDARY
    );
    let t = Instant::now();
    let answer = timed(
        timeout,
        conn.call(
            Method::POST,
            "/studies",
            &[
                (header::CONTENT_TYPE, content_type.as_str()),
                (header::ACCEPT, "application/dicom+json"),
            ],
            body,
        ),
    )
    .await
    .map_err(|e| Transport("stow", e))?;
    match web::stored_by(web::UploadApi::Stow, &answer) {
        Ok(1) => shared.success("stow", t),
        Ok(n) => {
            shared.error("stow", format!("{n} instances reported stored, 1 sent"));
            return Ok(());
        }
        Err(e) => {
            shared.error("stow", format!("{e:#}"));
            return Ok(());
        }
    }

    let t = Instant::now();
    let path = format!(
        "/studies?PatientID={}",
        web::encode_query_value(&object.patient_id)
    );
    let answer = timed(
        timeout,
        conn.call(
            Method::GET,
            &path,
            &[(header::ACCEPT, "application/dicom+json")],
            Bytes::new(),
        ),
    )
    .await
    .map_err(|e| Transport("qido", e))?;
    match qido_studies(&answer) {
        Ok(studies) if studies == [object.study.clone()] => shared.success("qido", t),
        Ok(studies) => shared.error(
            "qido",
            format!("expected study {}, got {studies:?}", object.study),
        ),
        Err(e) => shared.error("qido", format!("{e:#}")),
    }

    let t = Instant::now();
    let path = format!(
        "/studies/{}/series/{}/instances/{}",
        object.study, object.series, object.instance
    );
    let answer = timed(
        timeout,
        conn.call(
            Method::GET,
            &path,
            &[(header::ACCEPT, WADO_ACCEPT)],
            Bytes::new(),
        ),
    )
    .await
    .map_err(|e| Transport("wado", e))?;
    match wado_check(&answer, &object.dataset) {
        Ok(()) => shared.success("wado", t),
        Err(e) => shared.error("wado", format!("{e:#}")),
    }
    Ok(())
}

/// The Study Instance UIDs of a QIDO-RS answer.
fn qido_studies(answer: &web::Answer) -> Result<Vec<String>> {
    if answer.status != StatusCode::OK {
        bail!(
            "HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(500)])
        );
    }
    let studies: Vec<Value> = serde_json::from_slice(&answer.body).context("not a JSON array")?;
    Ok(studies
        .iter()
        .map(|s| {
            s.pointer("/0020000D/Value/0")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        })
        .collect())
}

/// A WADO-RS answer is one part holding the data set that was stored, byte for byte (Ward
/// writes its own meta group in front of it).
fn wado_check(answer: &web::Answer, dataset: &[u8]) -> Result<()> {
    if answer.status != StatusCode::OK {
        bail!("HTTP {}", answer.status);
    }
    let Some(boundary) = answer.content_type.as_deref().and_then(web::boundary_of) else {
        bail!("not multipart: {:?}", answer.content_type);
    };
    let mut counter = web::PartCounter::new(&boundary);
    counter.feed(&answer.body);
    if counter.parts() != 1 {
        bail!("{} parts, 1 expected", counter.parts());
    }
    if memchr::memmem::find(&answer.body, dataset).is_none() {
        bail!("the data set stored is not in the answer");
    }
    Ok(())
}

async fn web_worker(j: usize, shared: Arc<Shared>, options: Arc<Options>) {
    let Some(client) = options.web.clone() else {
        return;
    };
    let mut draws = Draws(0x5EED_0000 + j as u64);
    let mut n = 0u64;
    while !shared.done() {
        let t = Instant::now();
        let mut conn = match timed(options.timeout, client.connect()).await {
            Ok(c) => {
                shared.success("http-connect", t);
                c
            }
            Err(e) => {
                shared.error("http-connect", format!("{e:#}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while !shared.done() {
            n += 1;
            let columns = columns_for(options.min_kib, options.max_kib, draws.next());
            let built = Synthetic::new(format!("SOAK-H{j}-{n}"), columns, draws.next())
                .and_then(|o| Ok((web::stow_body(&[Bytes::from(o.part10()?)]), o)));
            let (body, object) = match built {
                Ok(b) => b,
                Err(e) => {
                    shared.error("stow", format!("cannot build the object: {e:#}"));
                    continue;
                }
            };
            let round = web_round(&mut conn, &object, body, &shared, options.timeout).await;
            if let Err(Transport(op, e)) = round {
                shared.error(op, format!("{e:#}"));
                break;
            }
        }
    }
}

/// One interval's figures.
struct Interval {
    end_seconds: f64,
    seconds: f64,
    warmup: bool,
    ops: BTreeMap<&'static str, stats::OpStats>,
    errors: u64,
    usage: Usage,
}

/// The operations shown in the table, in order.
const TABLE_OPS: &[&str] = &["c-store", "c-find", "stow", "qido", "wado"];

fn table_header() -> String {
    let mut line = format!("{:>6}", "t s");
    for op in TABLE_OPS {
        line.push_str(&format!(" | {op:>7} /s  p50  p99 ms"));
    }
    line.push_str(" | errors | RSS MiB | anon MiB | FDs");
    line
}

fn table_row(
    label: &str,
    ops: &BTreeMap<&'static str, stats::OpStats>,
    errors: u64,
    usage: Option<Usage>,
) -> String {
    let mut line = format!("{label:>6}");
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    for op in TABLE_OPS {
        match ops.get(op) {
            Some(s) => line.push_str(&format!(
                " | {:>10.1} {:>4} {:>7}",
                s.per_second,
                ms(s.p50_ms),
                ms(s.p99_ms)
            )),
            None => line.push_str(&format!(" | {:>10} {:>4} {:>7}", "-", "-", "-")),
        }
    }
    match usage {
        Some(u) => line.push_str(&format!(
            " | {errors:>6} | {:>7.1} | {:>8.1} | {:>3}",
            u.rss_kib as f64 / 1024.0,
            u.anon_kib as f64 / 1024.0,
            u.fds
        )),
        None => line.push_str(&format!(
            " | {errors:>6} | {:>7} | {:>8} | {:>3}",
            "", "", ""
        )),
    }
    line
}

/// Runs the soak; the JSON report, and whether it passed (no error, no growth).
pub async fn run(options: Options) -> Result<(Value, bool)> {
    if options.associations == 0 && options.http_clients == 0 {
        bail!("nothing to run: no association and no HTTP client");
    }
    if options.calling_aes.is_empty() {
        bail!("at least one calling AE title is needed");
    }
    if options.min_kib == 0 || options.min_kib > options.max_kib || options.max_kib > 32 * 1024 {
        bail!("image sizes: need 1 <= --min-kib <= --max-kib <= 32768");
    }
    if options.interval.is_zero() || options.warmup >= options.duration {
        bail!("the warm-up must be shorter than the run, and the interval more than zero");
    }
    let options = Arc::new(options);
    let idle_before = stats::usage(options.pid)?;
    let kinds_before = stats::descriptors(options.pid)?;
    let start = Instant::now();
    let shared = Arc::new(Shared {
        deadline: start + options.duration,
        start,
        tally: Mutex::new(Tally::default()),
        errors: Mutex::new(Vec::new()),
    });
    let mut workers = Vec::new();
    for k in 0..options.associations {
        workers.push(tokio::spawn(dimse_worker(
            k,
            Arc::clone(&shared),
            Arc::clone(&options),
        )));
    }
    if options.web.is_some() {
        for j in 0..options.http_clients {
            workers.push(tokio::spawn(web_worker(
                j,
                Arc::clone(&shared),
                Arc::clone(&options),
            )));
        }
    }

    eprintln!("{}", table_header());
    let take = |shared: &Shared| {
        shared
            .tally
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    };
    let mut total = Tally::default();
    let mut intervals: Vec<Interval> = Vec::new();
    let mut last = start;
    loop {
        let next = (last + options.interval).min(shared.deadline);
        tokio::time::sleep_until(next.into()).await;
        let tally = take(&shared);
        let now = Instant::now();
        let usage = stats::usage(options.pid)?;
        let end_seconds = (now - start).as_secs_f64();
        let seconds = (now - last).as_secs_f64();
        last = now;
        let interval = Interval {
            end_seconds,
            seconds,
            warmup: now - start < options.warmup,
            ops: tally.stats(seconds),
            errors: tally.errors(),
            usage,
        };
        eprintln!(
            "{}",
            table_row(
                &format!("{end_seconds:.0}"),
                &interval.ops,
                interval.errors,
                Some(usage)
            )
        );
        total.absorb(&tally);
        intervals.push(interval);
        if now >= shared.deadline {
            break;
        }
    }
    // Operations in flight at the deadline finish and count; no new one starts.
    for w in workers {
        w.await.context("a worker panicked")?;
    }
    let drained = take(&shared);
    total.absorb(&drained);
    let seconds = start.elapsed().as_secs_f64();

    // Ward closes its side of each connection shortly after the client; wait (a bounded time)
    // for its sockets to come back down before taking the idle sample.
    let settle = Instant::now();
    let sockets = |kinds: &BTreeMap<String, u64>| kinds.get("socket").copied().unwrap_or(0);
    let mut kinds_after = stats::descriptors(options.pid)?;
    while sockets(&kinds_after) > sockets(&kinds_before)
        && settle.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        kinds_after = stats::descriptors(options.pid)?;
    }
    let idle_after = stats::usage(options.pid)?;

    let Some(warm) = intervals.iter().find(|i| !i.warmup).map(|i| i.usage) else {
        bail!("no interval after the warm-up");
    };
    let end = intervals.last().map_or(warm, |i| i.usage);
    let after_warmup: Vec<(f64, u64)> = intervals
        .iter()
        .filter(|i| !i.warmup)
        .map(|i| (i.end_seconds, i.usage.anon_kib))
        .collect();
    let concurrency = options.associations
        + if options.web.is_some() {
            options.http_clients
        } else {
            0
        };
    let verdict = stats::verdict(
        warm,
        end,
        concurrency as u64,
        &kinds_before,
        &kinds_after,
        &after_warmup,
    );
    let ops = total.stats(seconds);
    let errors = total.errors();

    eprintln!("\n{}", table_header());
    eprintln!("{}", table_row("all", &ops, errors, None));
    eprintln!();
    for (op, s) in &ops {
        eprintln!(
            "{op:>12}: {:>8} ok, {:>3} errors, {:>7.1}/s, p50 {:>6.1} ms, p99 {:>7.1} ms, max {:>7.1} ms",
            s.count,
            s.errors,
            s.per_second,
            s.p50_ms.unwrap_or(0.0),
            s.p99_ms.unwrap_or(0.0),
            s.max_ms.unwrap_or(0.0),
        );
    }
    eprintln!("errors: {errors}");
    eprintln!("{}", verdict.line);

    let passed = errors == 0 && !verdict.rss_grew && !verdict.fds_grew;
    let report = json!({
        "config": {
            "associations": options.associations,
            "rounds_per_association": options.rounds_per_association,
            "calling_aes": options.calling_aes,
            "http_clients": if options.web.is_some() { options.http_clients } else { 0 },
            "duration_seconds": options.duration.as_secs_f64(),
            "warmup_seconds": options.warmup.as_secs_f64(),
            "interval_seconds": options.interval.as_secs_f64(),
            "image_kib": [options.min_kib, options.max_kib],
            "pid": options.pid,
        },
        "intervals": intervals.iter().map(|i| json!({
            "end_seconds": i.end_seconds,
            "seconds": i.seconds,
            "warmup": i.warmup,
            "ops": i.ops,
            "errors": i.errors,
            "rss_kib": i.usage.rss_kib,
            "anon_kib": i.usage.anon_kib,
            "file_kib": i.usage.file_kib,
            "fds": i.usage.fds,
        })).collect::<Vec<_>>(),
        "summary": {
            "seconds": seconds,
            "ops": ops,
            "errors": errors,
            "error_samples": shared.errors.lock().map(|e| e.clone()).unwrap_or_default(),
            "usage": {
                "idle_before": idle_before,
                "warmup_end": warm,
                "end": end,
                "idle_after": idle_after,
                "descriptors_idle_before": kinds_before,
                "descriptors_idle_after": kinds_after,
                "max_anon_kib_after_warmup": after_warmup.iter().map(|p| p.1).max(),
            },
            "verdict": verdict,
            "passed": passed,
        },
    });
    Ok((report, passed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_sizes_stay_in_range() {
        assert_eq!(columns_for(64, 64, 12345), 128);
        let mut draws = Draws(3);
        for _ in 0..1000 {
            let c = columns_for(64, 256, draws.next());
            assert!((128..=512).contains(&c), "{c}");
        }
        let object = Synthetic::new("P".into(), columns_for(64, 64, 0), 7).unwrap();
        let pixels = 64 * 1024;
        assert!(object.dataset.len() > pixels && object.dataset.len() < pixels + 2048);
        let other = Synthetic::new("P".into(), 128, 8).unwrap();
        assert_ne!(object.instance, other.instance);
        assert_ne!(object.study, other.study);
        let file = object.part10().unwrap();
        assert_eq!(&file[128..132], b"DICM");
        assert!(file.ends_with(&object.dataset));
    }

    #[test]
    fn wado_answers_are_checked() {
        let object = Synthetic::new("P".into(), 128, 1).unwrap();
        let multipart = Some(format!(
            "multipart/related; type=\"application/dicom\"; boundary={}",
            web::STOW_BOUNDARY
        ));
        let ok = web::Answer {
            status: StatusCode::OK,
            content_type: multipart.clone(),
            body: web::stow_body(&[Bytes::from(object.part10().unwrap())]),
        };
        wado_check(&ok, &object.dataset).unwrap();
        let other = Synthetic::new("P".into(), 128, 2).unwrap();
        assert!(wado_check(&ok, &other.dataset).is_err());
        let two = web::Answer {
            status: StatusCode::OK,
            content_type: multipart,
            body: web::stow_body(&[Bytes::from(object.part10().unwrap()), Bytes::new()]),
        };
        assert!(wado_check(&two, &object.dataset).is_err());
        let missing = web::Answer {
            content_type: None,
            status: StatusCode::NOT_FOUND,
            body: Bytes::new(),
        };
        assert!(wado_check(&missing, &object.dataset).is_err());
    }

    #[test]
    fn qido_answers_list_studies() {
        let answer = web::Answer {
            content_type: None,
            status: StatusCode::OK,
            body: Bytes::from_static(
                br#"[{"0020000D": {"vr": "UI", "Value": ["1.2.3"]}}, {"00100020": {}}]"#,
            ),
        };
        assert_eq!(qido_studies(&answer).unwrap(), ["1.2.3", ""]);
        let empty = web::Answer {
            content_type: None,
            status: StatusCode::OK,
            body: Bytes::from_static(b"[]"),
        };
        assert!(qido_studies(&empty).unwrap().is_empty());
        let refused = web::Answer {
            content_type: None,
            status: StatusCode::FORBIDDEN,
            body: Bytes::new(),
        };
        assert!(qido_studies(&refused).is_err());
    }

    #[test]
    fn table_rows_line_up_with_the_header() {
        let mut tally = Tally::default();
        tally.success("c-store", 12.5);
        tally.success("qido", 3.0);
        let row = table_row(
            "10",
            &tally.stats(10.0),
            0,
            Some(Usage {
                rss_kib: 2048,
                anon_kib: 1024,
                file_kib: 1024,
                fds: 40,
            }),
        );
        assert_eq!(row.len(), table_header().len(), "{row}\n{}", table_header());
        assert!(row.contains("2.0") && row.ends_with(" 40"), "{row}");
    }
}
