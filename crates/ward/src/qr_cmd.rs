//! `ward find`, `ward get`, `ward move`: query/retrieve as a service class user.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::InMemDicomObject;
use indicatif::{ProgressBar, ProgressStyle};
use ward_dimse::client::RetrieveProgress;
use ward_dimse::command::status;
use ward_dimse::{ClientAssociation, ClientOptions, Proposal};

/// The options every query/retrieve command shares.
#[derive(Args)]
pub struct QueryArgs {
    /// The SCP, as HOST:PORT.
    address: String,
    /// A query key: KEYWORD=VALUE or GGGG,EEEE=VALUE; an empty value asks for the attribute
    /// back. Repeatable.
    #[arg(short = 'k', long = "key", value_name = "KEY=VALUE")]
    keys: Vec<String>,
    /// Query/retrieve level.
    #[arg(long, value_enum, default_value_t = Level::Study)]
    level: Level,
    /// Information model.
    #[arg(long, value_enum, default_value_t = Model::Study)]
    model: Model,
    /// Our (calling) AE title.
    #[arg(long, default_value = "WARDSCU")]
    aet: String,
    /// The SCP's (called) AE title.
    #[arg(long, default_value = "WARD")]
    aec: String,
    /// Seconds to wait for the network before giving up.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Level {
    Patient,
    Study,
    Series,
    Image,
}

#[derive(Clone, Copy, ValueEnum)]
enum Model {
    /// Study Root
    Study,
    /// Patient Root
    Patient,
}

#[derive(Clone, Copy)]
enum Service {
    Find,
    Move,
    Get,
}

impl Model {
    fn sop_class(self, service: Service) -> &'static str {
        match (self, service) {
            (Model::Patient, Service::Find) => "1.2.840.10008.5.1.4.1.2.1.1",
            (Model::Patient, Service::Move) => "1.2.840.10008.5.1.4.1.2.1.2",
            (Model::Patient, Service::Get) => "1.2.840.10008.5.1.4.1.2.1.3",
            (Model::Study, Service::Find) => "1.2.840.10008.5.1.4.1.2.2.1",
            (Model::Study, Service::Move) => "1.2.840.10008.5.1.4.1.2.2.2",
            (Model::Study, Service::Get) => "1.2.840.10008.5.1.4.1.2.2.3",
        }
    }
}

impl Level {
    fn code(self) -> &'static str {
        match self {
            Level::Patient => "PATIENT",
            Level::Study => "STUDY",
            Level::Series => "SERIES",
            Level::Image => "IMAGE",
        }
    }
}

#[derive(Args)]
pub struct FindArgs {
    #[command(flatten)]
    query: QueryArgs,
    /// Print matches as JSON (an array of objects keyword → value).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    query: QueryArgs,
    /// Folder to write the retrieved objects into (named by the SHA-256 of their content).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct MoveArgs {
    #[command(flatten)]
    query: QueryArgs,
    /// The AE title the SCP should send the objects to.
    #[arg(long)]
    dest: String,
}

/// Builds the identifier from `--level` and the `-k` keys.
fn identifier(args: &QueryArgs) -> Result<InMemDicomObject> {
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(
        tags::QUERY_RETRIEVE_LEVEL,
        VR::CS,
        PrimitiveValue::from(args.level.code()),
    ));
    obj.put(DataElement::new(
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        PrimitiveValue::from("ISO_IR 192"),
    ));
    for key in &args.keys {
        let (name, value) = key.split_once('=').unwrap_or((key.as_str(), ""));
        let (tag, vr) = resolve(name.trim())?;
        let value = if vr == VR::SQ {
            if !value.is_empty() {
                bail!("{name}: sequence keys take no value");
            }
            obj.put(DataElement::new(
                tag,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(vec![InMemDicomObject::new_empty()]),
            ));
            continue;
        } else if value.is_empty() {
            PrimitiveValue::Empty
        } else {
            PrimitiveValue::from(value)
        };
        obj.put(DataElement::new(tag, vr, value));
    }
    Ok(obj)
}

/// A keyword or tag and its VR from the standard dictionary.
fn resolve(name: &str) -> Result<(Tag, VR)> {
    let dict = StandardDataDictionary;
    let tag = dict
        .parse_tag(name)
        .ok_or_else(|| anyhow!("unknown attribute {name:?} (use a keyword or GGGG,EEEE)"))?;
    let vr = dict
        .by_tag(tag)
        .map(|entry| entry.vr().relaxed())
        .unwrap_or(VR::LO);
    Ok((tag, vr))
}

async fn connect(args: &QueryArgs, proposals: &[Proposal]) -> Result<ClientAssociation> {
    ClientAssociation::connect(&args.address, options(args), proposals)
        .await
        .with_context(|| args.address.clone())
}

fn options(args: &QueryArgs) -> ClientOptions {
    ClientOptions {
        calling_ae: args.aet.clone(),
        called_ae: args.aec.clone(),
        max_pdu: 256 * 1024,
        timeout: Duration::from_secs(args.timeout),
    }
}

fn query_proposal(args: &QueryArgs, service: Service) -> Proposal {
    Proposal {
        abstract_syntax: args.model.sop_class(service).to_owned(),
        transfer_syntaxes: vec![
            "1.2.840.10008.1.2.1".to_owned(),
            "1.2.840.10008.1.2".to_owned(),
        ],
        scp_role: false,
    }
}

pub async fn find(args: FindArgs) -> Result<ExitCode> {
    let identifier = identifier(&args.query)?;
    let sop_class = args.query.model.sop_class(Service::Find);
    let mut assoc = connect(&args.query, &[query_proposal(&args.query, Service::Find)]).await?;
    let mut matches = Vec::new();
    let (code, comment) = assoc
        .find(sop_class, &identifier, |m| matches.push(m))
        .await?;
    assoc.release().await?;
    if args.json {
        let json: Vec<serde_json::Value> = matches.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        for (i, m) in matches.iter().enumerate() {
            println!("# match {}", i + 1);
            for (keyword, value) in flatten(m) {
                println!("{keyword:<32} {value}");
            }
        }
    }
    // With --json, stdout is the JSON document alone.
    finish(
        code,
        comment,
        &format!("{} matches", matches.len()),
        args.json,
    )
}

pub async fn get(args: GetArgs) -> Result<ExitCode> {
    let identifier = identifier(&args.query)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    // Storage contexts for every storage SOP class the standard knows, in the uncompressed
    // syntaxes, with the SCP role so that the SCP may send them on this association. The
    // protocol allows 128 contexts: the query context and the 127 most common storage classes.
    let mut proposals = vec![query_proposal(&args.query, Service::Get)];
    proposals.extend(common_storage_classes().map(|class| Proposal {
        abstract_syntax: class.to_owned(),
        transfer_syntaxes: vec![
            "1.2.840.10008.1.2.1".to_owned(),
            "1.2.840.10008.1.2".to_owned(),
        ],
        scp_role: true,
    }));
    let mut assoc = connect(&args.query, &proposals).await?;
    let bar = retrieve_bar();
    let progress = assoc
        .get(
            args.query.model.sop_class(Service::Get),
            &identifier,
            &args.out,
            |p| show(&bar, p),
        )
        .await?;
    bar.finish_and_clear();
    assoc.release().await?;
    retrieve_summary(&progress, &format!("into {}", args.out.display()))
}

pub async fn move_(args: MoveArgs) -> Result<ExitCode> {
    let identifier = identifier(&args.query)?;
    let mut assoc = connect(&args.query, &[query_proposal(&args.query, Service::Move)]).await?;
    let bar = retrieve_bar();
    let progress = assoc
        .move_to(
            args.query.model.sop_class(Service::Move),
            &identifier,
            &args.dest,
            |p| show(&bar, p),
        )
        .await?;
    bar.finish_and_clear();
    assoc.release().await?;
    retrieve_summary(&progress, &format!("to {}", args.dest))
}

/// The storage SOP classes proposed by `ward get`: image and document classes in common use
/// first, then the rest of the standard's, up to the protocol's limit.
fn common_storage_classes() -> impl Iterator<Item = &'static str> {
    const FIRST: &[&str] = &[
        "1.2.840.10008.5.1.4.1.1.2",     // CT
        "1.2.840.10008.5.1.4.1.1.2.1",   // Enhanced CT
        "1.2.840.10008.5.1.4.1.1.4",     // MR
        "1.2.840.10008.5.1.4.1.1.4.1",   // Enhanced MR
        "1.2.840.10008.5.1.4.1.1.1",     // CR
        "1.2.840.10008.5.1.4.1.1.1.1",   // DX for presentation
        "1.2.840.10008.5.1.4.1.1.1.1.1", // DX for processing
        "1.2.840.10008.5.1.4.1.1.1.2",   // Mammography for presentation
        "1.2.840.10008.5.1.4.1.1.6.1",   // US
        "1.2.840.10008.5.1.4.1.1.3.1",   // US multi-frame
        "1.2.840.10008.5.1.4.1.1.7",     // Secondary capture
        "1.2.840.10008.5.1.4.1.1.20",    // NM
        "1.2.840.10008.5.1.4.1.1.128",   // PET
        "1.2.840.10008.5.1.4.1.1.481.1", // RT image
        "1.2.840.10008.5.1.4.1.1.481.2", // RT dose
        "1.2.840.10008.5.1.4.1.1.481.3", // RT structure set
        "1.2.840.10008.5.1.4.1.1.481.5", // RT plan
        "1.2.840.10008.5.1.4.1.1.12.1",  // XA
        "1.2.840.10008.5.1.4.1.1.88.11", // Basic text SR
        "1.2.840.10008.5.1.4.1.1.88.22", // Enhanced SR
        "1.2.840.10008.5.1.4.1.1.104.1", // Encapsulated PDF
        "1.2.840.10008.5.1.4.1.1.11.1",  // Grayscale softcopy presentation state
    ];
    FIRST
        .iter()
        .copied()
        .chain(ward_dicom::storage_sop_classes().filter(|c| !FIRST.contains(c)))
        .take(ward_dimse::negotiation::MAX_CONTEXTS - 1)
}

fn retrieve_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn show(bar: &ProgressBar, p: &RetrieveProgress) {
    let done = u64::from(p.completed) + u64::from(p.failed) + u64::from(p.warning);
    bar.set_length(done + u64::from(p.remaining.unwrap_or(0)));
    bar.set_position(done);
    bar.set_message(format!("{} failed", p.failed));
}

fn retrieve_summary(p: &RetrieveProgress, where_to: &str) -> Result<ExitCode> {
    let summary = format!(
        "{} completed, {} failed, {} warnings {where_to}",
        p.completed, p.failed, p.warning
    );
    finish(p.status, p.comment.clone(), &summary, false)
}

/// Prints the summary (to stderr when stdout carries data) and the final status; success
/// and warnings exit 0.
fn finish(
    code: u16,
    comment: Option<String>,
    summary: &str,
    summary_to_stderr: bool,
) -> Result<ExitCode> {
    if summary_to_stderr {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    let comment = comment.map(|c| format!(" ({c})")).unwrap_or_default();
    if status::is_success_or_warning(code) {
        if code != status::SUCCESS {
            eprintln!("warning: status {code:#06x}{comment}");
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("failed: status {code:#06x}{comment}");
        Ok(ExitCode::from(1))
    }
}

/// Keyword and printable value of each top-level attribute.
fn flatten(obj: &InMemDicomObject) -> Vec<(String, String)> {
    let dict = StandardDataDictionary;
    obj.iter()
        .map(|el| {
            let tag = el.header().tag;
            let keyword = dict
                .by_tag(tag)
                .map(|e| e.alias().to_owned())
                .unwrap_or_else(|| format!("({:04X},{:04X})", tag.group(), tag.element()));
            let value = if el.vr() == VR::SQ {
                "<sequence>".to_owned()
            } else {
                el.to_str().map(|s| s.trim().to_owned()).unwrap_or_default()
            };
            (keyword, value)
        })
        .collect()
}

fn to_json(obj: &InMemDicomObject) -> serde_json::Value {
    serde_json::Value::Object(
        flatten(obj)
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect(),
    )
}
