//! `ward-seed`: synthetic corpora for Ward's query/retrieve benchmark (`bench/query`).
//!
//! - `seed` writes a corpus straight into a Ward index, in batched transactions, without blobs:
//!   C-FIND never reads them, and a million C-STOREs would measure ingest instead.
//! - `files` writes the same corpus as Part 10 files (no pixel data), to load into another
//!   archive through its own front door.
//! - `find-latency` times study-level C-FIND queries on the corpus against any SCP, or the same
//!   queries as QIDO-RS against a DICOMweb server, and checks every answer's match count.
//! - `upload` times STOW-RS (or Orthanc's REST `POST /instances`) uploads of a folder of
//!   files, and `retrieve` times one WADO-RS retrieval (`bench/dicomweb`).
//! - `handshake` times associations over plain TCP against associations over TLS, and reports
//!   what TLS negotiated (`bench/ingest`).
//! - `soak` runs a bounded load against a running Ward (concurrent associations storing and
//!   querying, HTTP clients storing, querying and retrieving) and reports throughput,
//!   latencies, errors and Ward's memory and descriptors over time (`bench/soak`).
//!
//! Output is JSON on stdout; progress goes to stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::json;
use ward_index::{Index, InsertOutcome, NewInstance, SqliteIndex};

mod corpus;
mod handshake;
mod latency;
mod soak;
mod stats;
mod web;

use corpus::Corpus;

#[derive(Parser)]
#[command(
    version,
    about = "Synthetic corpora and C-FIND timing for Ward's query benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct CorpusArgs {
    /// Instances in the corpus: 100 per patient (5 studies of 4 series of 5 instances).
    #[arg(long)]
    instances: u64,
    /// Seed of the corpus; the same seed and size give the same corpus.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// How to reach and authenticate to an HTTP server.
#[derive(clap::Args)]
struct HttpArgs {
    /// PEM certificates to trust for https:// URLs (Ward's DATA/keys/ca.pem).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// A file holding a bearer token to send with every request.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

impl HttpArgs {
    fn token(&self) -> Result<Option<String>> {
        self.token_file
            .as_ref()
            .map(|f| {
                std::fs::read_to_string(f)
                    .map(|t| t.trim().to_owned())
                    .with_context(|| f.display().to_string())
            })
            .transpose()
    }
}

#[derive(Subcommand)]
enum Command {
    /// Index the corpus into an existing Ward index (`ward init` makes one), without blobs.
    Seed {
        /// The index database, DATA/index.sqlite.
        #[arg(long)]
        index: PathBuf,
        #[command(flatten)]
        corpus: CorpusArgs,
        /// Instances per transaction.
        #[arg(long, default_value_t = 5000)]
        batch: u64,
    },
    /// Write the corpus as Part 10 files (explicit VR little endian, no pixel data) into
    /// OUT/NNNN/, a thousand per folder.
    Files {
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        corpus: CorpusArgs,
    },
    /// Time study-level C-FIND queries against SCPs that hold the corpus (each at its own
    /// size), taking turns, one query each.
    FindLatency {
        /// An SCP to time, as NAME=HOST:PORT/AE_TITLE/INSTANCES (INSTANCES: the size of the
        /// corpus it holds). Repeatable.
        #[arg(long = "target", required = true)]
        targets: Vec<latency::Target>,
        /// Seed of the corpus the targets hold.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The kinds of query to time, one after the other.
        #[arg(long, value_enum, required = true, value_delimiter = ',')]
        kind: Vec<latency::Kind>,
        /// Timed queries per kind and target.
        #[arg(long, default_value_t = 200)]
        requests: u64,
        /// Untimed queries per kind and target before the timed ones (other values than the
        /// timed ones).
        #[arg(long, default_value_t = 0)]
        warmup: u64,
        #[arg(long, default_value = "WARDSEED")]
        aet: String,
        /// Seconds to wait for any one network step.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Upload every .dcm file under a folder, timed: STOW-RS in batches, or Orthanc's REST API
    /// one instance per request; each connection sends its requests one after the other.
    Upload {
        /// The API root: https://HOST:PORT/dicom-web for STOW-RS, http://HOST:PORT for Orthanc.
        #[arg(long)]
        url: web::BaseUrl,
        #[arg(long, value_enum, default_value = "stow")]
        api: web::UploadApi,
        /// Instances per STOW-RS request.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Parallel keep-alive connections, each sending its share of the files.
        #[arg(long, default_value_t = 1)]
        connections: usize,
        #[command(flatten)]
        http: HttpArgs,
        /// The folder of Part 10 files.
        dir: PathBuf,
    },
    /// One timed GET of a multipart retrieval (WADO-RS), read to its end on a new connection.
    Retrieve {
        /// The server: https://HOST:PORT or http://HOST:PORT.
        #[arg(long)]
        url: web::BaseUrl,
        /// The path, e.g. /dicom-web/studies/S/series/SE.
        #[arg(long)]
        path: String,
        #[arg(
            long,
            default_value = "multipart/related; type=\"application/dicom\"; transfer-syntax=*"
        )]
        accept: String,
        /// Fail unless the answer holds this many parts.
        #[arg(long)]
        expect_parts: Option<u64>,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Time associations (connect, A-ASSOCIATE, C-ECHO, release) over plain TCP and over TLS
    /// with a client certificate, taking turns; report the difference and what TLS negotiated.
    Handshake {
        /// The plain DIMSE listener, HOST:PORT.
        #[arg(long)]
        plain: String,
        /// The DIMSE-TLS listener, HOST:PORT.
        #[arg(long)]
        tls: String,
        /// The name the server certificate must carry.
        #[arg(long, default_value = "localhost")]
        server_name: String,
        #[arg(long, default_value = "WARD")]
        called_ae: String,
        #[arg(long, default_value = "WARDSEED")]
        aet: String,
        /// Client certificate, key and CA certificate (PEM), as `ward ae issue-cert` writes them.
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        ca: PathBuf,
        /// Timed associations of each kind.
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Untimed associations of each kind first.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Seconds to wait for any one network step.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Load a running Ward for a set time: associations looping C-STORE and C-FIND, HTTP
    /// clients looping STOW-RS, QIDO-RS and WADO-RS; every answer checked. Prints a table per
    /// interval to stderr and the report as JSON to stdout; fails on any error or on growth of
    /// Ward's RSS or open descriptors after warm-up.
    Soak {
        /// Ward's process id: its RSS and open descriptors are sampled from /proc.
        #[arg(long)]
        pid: u32,
        /// Ward's plain DIMSE listener, HOST:PORT.
        #[arg(long)]
        dimse: String,
        #[arg(long, default_value = "WARD")]
        called_ae: String,
        /// Calling AE title, repeatable; the associations use them in turn. Each must be
        /// registered with Ward, allowed store and find.
        #[arg(long = "aet", default_value = "SOAK")]
        aets: Vec<String>,
        /// Concurrent DIMSE associations.
        #[arg(long, default_value_t = 64)]
        associations: usize,
        /// Store-and-find rounds before an association is released and another opened (0: keep
        /// each association for the whole run).
        #[arg(long, default_value_t = 50)]
        rounds_per_association: u64,
        /// The DICOMweb root, e.g. https://127.0.0.1:8443/dicom-web; no HTTP clients without it.
        #[arg(long)]
        url: Option<web::BaseUrl>,
        /// Concurrent HTTP clients, each on its own keep-alive connection.
        #[arg(long, default_value_t = 4)]
        http_clients: usize,
        #[command(flatten)]
        http: HttpArgs,
        /// Length of the run, seconds.
        #[arg(long, default_value_t = 300)]
        seconds: u64,
        /// Seconds at the start whose RSS and descriptors are not judged (caches fill).
        #[arg(long, default_value_t = 60)]
        warmup: u64,
        /// Seconds between two rows of figures.
        #[arg(long, default_value_t = 10)]
        interval: u64,
        /// Smallest image, KiB of pixel data.
        #[arg(long, default_value_t = 64)]
        min_kib: u32,
        /// Largest image, KiB of pixel data.
        #[arg(long, default_value_t = 256)]
        max_kib: u32,
        /// Seconds any one operation may take before it counts as failed.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ward-seed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Seed {
            index,
            corpus,
            batch,
        } => seed(&index, Corpus::new(corpus.instances, corpus.seed)?, batch).await,
        Command::Files { out, corpus } => files(&out, Corpus::new(corpus.instances, corpus.seed)?),
        Command::FindLatency {
            targets,
            seed,
            kind,
            requests,
            warmup,
            aet,
            timeout,
            http,
        } => {
            let options = latency::Options {
                calling_ae: aet,
                timeout: Duration::from_secs(timeout),
                seed,
                requests,
                warmup,
                token: http.token()?,
                ca: http.ca,
            };
            let mut reports = Vec::new();
            for kind in kind {
                reports.extend(latency::run(&targets, kind, &options).await?);
            }
            println!("{}", serde_json::to_string(&reports)?);
            Ok(())
        }
        Command::Upload {
            url,
            api,
            batch,
            connections,
            http,
            dir,
        } => {
            let client = web::Client::new(url, http.ca.as_deref(), http.token()?.as_deref())?;
            let files = web::dicom_files(&dir)?;
            let options = web::UploadOptions {
                api,
                batch,
                connections,
            };
            println!("{}", web::upload(&client, &files, &options).await?);
            Ok(())
        }
        Command::Retrieve {
            url,
            path,
            accept,
            expect_parts,
            http,
        } => {
            let client = web::Client::new(url, http.ca.as_deref(), http.token()?.as_deref())?;
            println!(
                "{}",
                web::retrieve(&client, &path, &accept, expect_parts).await?
            );
            Ok(())
        }
        Command::Handshake {
            plain,
            tls,
            server_name,
            called_ae,
            aet,
            cert,
            key,
            ca,
            count,
            warmup,
            timeout,
        } => {
            let options = handshake::Options {
                plain,
                tls,
                server_name,
                called_ae,
                calling_ae: aet,
                cert,
                key,
                ca,
                count,
                warmup,
                timeout: Duration::from_secs(timeout),
            };
            println!("{}", handshake::run(&options).await?);
            Ok(())
        }
        Command::Soak {
            pid,
            dimse,
            called_ae,
            aets,
            associations,
            rounds_per_association,
            url,
            http_clients,
            http,
            seconds,
            warmup,
            interval,
            min_kib,
            max_kib,
            timeout,
        } => {
            let web = url
                .map(|u| web::Client::new(u, http.ca.as_deref(), http.token()?.as_deref()))
                .transpose()?;
            let options = soak::Options {
                dimse,
                called_ae,
                calling_aes: aets,
                associations,
                rounds_per_association,
                web,
                http_clients,
                pid,
                duration: Duration::from_secs(seconds),
                warmup: Duration::from_secs(warmup),
                interval: Duration::from_secs(interval),
                min_kib,
                max_kib,
                timeout: Duration::from_secs(timeout),
            };
            let (report, passed) = soak::run(options).await?;
            println!("{report}");
            if !passed {
                bail!("the soak failed: errors, or growth after warm-up (see the summary)");
            }
            Ok(())
        }
    }
}

fn generate(corpus: Corpus, range: std::ops::Range<u64>) -> Result<Vec<NewInstance>> {
    range.map(|i| corpus.new_instance(i)).collect()
}

async fn seed(path: &Path, corpus: Corpus, batch: u64) -> Result<()> {
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    let index = SqliteIndex::open(path, false)
        .await
        .with_context(|| path.display().to_string())?;
    let before = index.counts().await?;
    let total = corpus.instances();
    let start = Instant::now();
    let mut insert_time = Duration::ZERO;
    let mut done = 0u64;
    let mut reported = 0u64;
    // The next batch is generated on another thread while this one is inserted.
    let mut next = Some(tokio::task::spawn_blocking(move || {
        generate(corpus, 0..batch.min(total))
    }));
    while let Some(pending) = next.take() {
        let rows = pending.await??;
        let end = done + rows.len() as u64;
        if end < total {
            let following = end..(end + batch).min(total);
            next = Some(tokio::task::spawn_blocking(move || {
                generate(corpus, following)
            }));
        }
        let t = Instant::now();
        let outcomes = index.bulk_insert(&rows).await?;
        insert_time += t.elapsed();
        if let Some(bad) = outcomes.iter().find(|o| **o != InsertOutcome::Inserted) {
            bail!("the index already holds part of this corpus ({bad:?}); seed an empty index");
        }
        done = end;
        if done - reported >= total / 10 || done == total {
            reported = done;
            eprintln!(
                "ward-seed: {done}/{total} instances, {:.0} s",
                start.elapsed().as_secs_f64()
            );
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = index.counts().await?;
    index.close().await;
    let added = after.instances - before.instances;
    if added != total || after.studies - before.studies != corpus.studies() {
        bail!("the index gained {added} instances, {total} were seeded");
    }
    println!(
        "{}",
        json!({
            "instances": total,
            "patients": corpus.patients(),
            "studies": corpus.studies(),
            "series": after.series - before.series,
            "seconds": seconds,
            "insert_seconds": insert_time.as_secs_f64(),
            "instances_per_second": total as f64 / seconds,
        })
    );
    Ok(())
}

fn files(out: &Path, corpus: Corpus) -> Result<()> {
    const PER_FOLDER: u64 = 1000;
    let start = Instant::now();
    let mut bytes = 0u64;
    for i in 0..corpus.instances() {
        let folder = out.join(format!("{:04}", i / PER_FOLDER));
        if i % PER_FOLDER == 0 {
            std::fs::create_dir_all(&folder).with_context(|| folder.display().to_string())?;
        }
        let file = corpus.part10(i)?;
        let path = folder.join(format!("{i:08}.dcm"));
        std::fs::write(&path, &file).with_context(|| path.display().to_string())?;
        bytes += file.len() as u64;
    }
    println!(
        "{}",
        json!({
            "instances": corpus.instances(),
            "bytes": bytes,
            "seconds": start.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}
