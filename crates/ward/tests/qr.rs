//! Query/retrieve against the real `ward` binary: DCMTK's findscu, getscu and movescu, DCMTK's
//! storescp as a C-MOVE destination, and Ward's own `ward find|get|move`.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use ward_test_support::dicom::Synthetic;
use ward_test_support::{WardServer, data_dir_with_peers, dcmtk, python_script, ward};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn bin() -> &'static Path {
    Path::new(WARD)
}

/// A free loopback port (the kernel's pick, released for the peer to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// DCMTK's storescp as a C-MOVE destination, killed on drop.
struct StoreScp {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl StoreScp {
    fn start(aet: &str) -> StoreScp {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = dcmtk("storescp")
            .args(["-aet", aet, "+xa", "-od"])
            .arg(dir.path())
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "storescp did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        StoreScp { child, port, dir }
    }

    fn files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect()
    }
}

impl Drop for StoreScp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An archive holding two patients: three studies of two images each.
struct Archive {
    _dir: tempfile::TempDir,
    server: WardServer,
    studies: Vec<Vec<Synthetic>>,
    files: tempfile::TempDir,
}

fn archive(extra_peers: &[(&str, &str, &str)]) -> Archive {
    let mut peers = vec![
        ("STORESCU", "127.0.0.1", "store"),
        ("QR", "127.0.0.1", "echo,find,get,move"),
        ("NOQR", "127.0.0.1", "echo"),
    ];
    peers.extend_from_slice(extra_peers);
    let dir = data_dir_with_peers(bin(), &peers);
    let server = WardServer::start(bin(), &dir.path().join("data"));
    let files = tempfile::tempdir().unwrap();
    let mut studies = Vec::new();
    for (i, (name, id)) in [
        ("Doe^Jane", "P1"),
        ("Doe^Jane", "P1"),
        ("Roe^Richard", "P2"),
    ]
    .iter()
    .enumerate()
    {
        let mut first = Synthetic::ct();
        first.patient_name = (*name).to_owned();
        first.patient_id = (*id).to_owned();
        let second = first.next_in_series();
        for (j, obj) in [&first, &second].iter().enumerate() {
            obj.write_part10(&files.path().join(format!("s{i}i{j}.dcm")), None);
        }
        studies.push(vec![first, second]);
    }
    let out = ward(
        bin(),
        &[
            "store",
            &server.addr(),
            files.path().to_str().unwrap(),
            "--aet",
            "STORESCU",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Archive {
        _dir: dir,
        server,
        studies,
        files,
    }
}

/// `ward move` of patient P1's studies from `aet` to `dest`.
fn ward_move(server: &WardServer, aet: &str, dest: &str) -> Output {
    ward(
        bin(),
        &[
            "move",
            &server.addr(),
            "--aet",
            aet,
            "-k",
            "PatientID=P1",
            "--dest",
            dest,
        ],
    )
}

fn run(cmd: &mut std::process::Command) -> Output {
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// DCMTK findscu at STUDY level, each response extracted to a file; returns the responses'
/// Study Instance UIDs.
fn findscu(server: &WardServer, aet: &str, keys: &[&str], extra: &[&str]) -> (Output, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = dcmtk("findscu");
    cmd.args(["-S", "-X", "-aet", aet, "-aec", "WARD", "-od"])
        .arg(dir.path())
        .args(extra)
        .args(["-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID"]);
    for k in keys {
        cmd.args(["-k", k]);
    }
    cmd.args(["127.0.0.1", &server.port.to_string()]);
    let out = run(&mut cmd);
    let mut uids = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let obj = dicom_object::OpenFileOptions::new()
            .read_preamble(dicom_object::file::ReadPreamble::Auto)
            .open_file(entry.path());
        if let Ok(obj) = obj {
            if let Ok(el) = obj.element(dicom_dictionary_std::tags::STUDY_INSTANCE_UID) {
                uids.push(el.to_str().unwrap().trim_end_matches('\0').to_owned());
            }
        }
    }
    uids.sort();
    (out, uids)
}

fn study_uids(archive: &Archive, which: &[usize]) -> Vec<String> {
    let mut uids: Vec<String> = which
        .iter()
        .map(|i| archive.studies[*i][0].study.clone())
        .collect();
    uids.sort();
    uids
}

#[test]
fn dcmtk_findscu_matches() {
    let a = archive(&[]);
    let (out, uids) = findscu(&a.server, "QR", &["PatientID=P1"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(uids, study_uids(&a, &[0, 1]));

    let (_, uids) = findscu(&a.server, "QR", &["PatientName=doe*"], &[]);
    assert_eq!(
        uids,
        study_uids(&a, &[0, 1]),
        "PN wildcard, case-insensitive"
    );

    let (_, uids) = findscu(&a.server, "QR", &["PatientName=R?E^RICHARD"], &[]);
    assert_eq!(uids, study_uids(&a, &[2]));

    let (_, uids) = findscu(&a.server, "QR", &["StudyDate=20261101-20261130"], &[]);
    assert_eq!(uids.len(), 3, "date range");

    let (_, uids) = findscu(&a.server, "QR", &["StudyDate=-20001231"], &[]);
    assert!(uids.is_empty(), "open date range before the studies");

    let list = format!(
        "StudyInstanceUID={}\\{}",
        a.studies[0][0].study, a.studies[2][0].study
    );
    let (_, uids) = findscu(&a.server, "QR", &[&list], &[]);
    assert_eq!(uids, study_uids(&a, &[0, 2]), "UID list");
}

#[test]
fn find_returns_computed_and_header_attributes() {
    let a = archive(&[]);
    let out = ward(
        bin(),
        &[
            "find",
            &a.server.addr(),
            "--aet",
            "QR",
            "--json",
            "-k",
            "PatientID=P2",
            "-k",
            "NumberOfStudyRelatedInstances",
            "-k",
            "ModalitiesInStudy",
            "-k",
            "PatientBirthDate",
            "-k",
            "PhotometricInterpretation",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &json[0];
    assert_eq!(m["NumberOfStudyRelatedInstances"], "2");
    assert_eq!(m["ModalitiesInStudy"], "CT");
    assert_eq!(m["PatientBirthDate"], "19700101");
    assert_eq!(json.as_array().unwrap().len(), 1);
}

#[test]
fn dcmtk_getscu_retrieves_identical_objects() {
    let a = archive(&[]);
    let out_dir = tempfile::tempdir().unwrap();
    let out = run(dcmtk("getscu")
        .args(["-S", "-aet", "QR", "-aec", "WARD", "-od"])
        .arg(out_dir.path())
        .args(["-k", "QueryRetrieveLevel=STUDY"])
        .args(["-k", &format!("StudyInstanceUID={}", a.studies[1][0].study)])
        .args(["127.0.0.1", &a.server.port.to_string()]));
    assert!(out.status.success(), "{}", text(&out));
    let got: Vec<PathBuf> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(got.len(), 2, "{}", text(&out));
    compare_with_sent(&a, &got);
}

#[test]
fn ward_get_retrieves_identical_objects() {
    let a = archive(&[]);
    let out_dir = tempfile::tempdir().unwrap();
    let out = ward(
        bin(),
        &[
            "get",
            &a.server.addr(),
            "--aet",
            "QR",
            "-k",
            "PatientID=P1",
            "--out",
            out_dir.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 completed, 0 failed"));
    let got: Vec<PathBuf> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(got.len(), 4);
    compare_with_sent(&a, &got);
}

#[test]
fn dcmtk_movescu_to_storescp() {
    let dest = StoreScp::start("DEST");
    let port = dest.port.to_string();
    let a = archive(&[]);
    a.server.cli(&[
        "ae",
        "add",
        "DEST",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--allow",
        "store",
    ]);
    let out = run(dcmtk("movescu")
        .args(["-S", "-aet", "QR", "-aec", "WARD", "-aem", "DEST"])
        .args(["-k", "QueryRetrieveLevel=STUDY"])
        .args(["-k", &format!("StudyInstanceUID={}", a.studies[2][0].study)])
        .args(["127.0.0.1", &a.server.port.to_string()]));
    assert!(out.status.success(), "{}", text(&out));
    let got = dest.files();
    assert_eq!(got.len(), 2, "{}", text(&out));
    compare_with_sent(&a, &got);

    // And Ward's own client.
    let out = ward_move(&a.server, "QR", "DEST");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("4 completed, 0 failed"),
        "{}",
        text(&out)
    );
}

#[test]
fn refusals_are_clear_and_nothing_hangs() {
    let dead_port = free_port().to_string();
    let a = archive(&[]);
    a.server.cli(&[
        "ae",
        "add",
        "DEAD",
        "--host",
        "127.0.0.1",
        "--port",
        &dead_port,
        "--allow",
        "store",
    ]);
    // A peer without find: its query context is refused.
    let (out, _) = findscu(&a.server, "NOQR", &["PatientID=P1"], &[]);
    assert!(!out.status.success());
    // C-MOVE to an AE Ward does not know: 0xA801.
    let out = ward_move(&a.server, "QR", "STRANGER");
    assert!(!out.status.success());
    assert!(text(&out).contains("0xa801"), "{}", text(&out));
    // C-MOVE to a registered AE that does not answer: a failure, quickly.
    let started = Instant::now();
    let out = ward_move(&a.server, "QR", "DEAD");
    assert!(!out.status.success());
    assert!(text(&out).contains("0xa702"), "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(15));
    // A peer allowed find but not move or get cannot retrieve.
    a.server.cli(&[
        "ae",
        "add",
        "FINDONLY",
        "--host",
        "127.0.0.1",
        "--allow",
        "find",
    ]);
    let out = ward_move(&a.server, "FINDONLY", "QR");
    assert!(!out.status.success());
}

/// A C-CANCEL sent right behind the C-FIND is honoured before any match goes out; DCMTK's
/// findscu cancelling after its first response ends cleanly whatever the race.
#[test]
fn cancel_is_honoured() {
    use ward_test_support::raw::{ASSOCIATE_AC, Answer, Raw};
    let a = archive(&[]);
    let find = "1.2.840.10008.5.1.4.1.2.2.1";
    let mut raw = Raw::connect(&a.server.addr());
    let answer = raw.associate("QR", "WARD", &[(1, find, &["1.2.840.10008.1.2.1"])]);
    assert!(matches!(answer, Answer::Pdu(ASSOCIATE_AC, _)), "{answer:?}");
    let mut cmd =
        ward_dimse::command::Command::new(ward_dimse::command::CommandField::CFindRq, find);
    cmd.set_u16(ward_dimse::command::tag::MESSAGE_ID, 7)
        .set_u16(ward_dimse::command::tag::PRIORITY, 0)
        .set_u16(ward_dimse::command::tag::COMMAND_DATA_SET_TYPE, 1);
    let mut identifier = dicom_object::InMemDicomObject::new_empty();
    identifier.put_str(
        dicom_dictionary_std::tags::QUERY_RETRIEVE_LEVEL,
        dicom_core::VR::CS,
        "STUDY",
    );
    // An open date range: broad, but not the universal query the anti-enumeration policy
    // refuses.
    identifier.put_str(
        dicom_dictionary_std::tags::STUDY_DATE,
        dicom_core::VR::DA,
        "19000101-",
    );
    let mut bytes = Vec::new();
    identifier
        .write_dataset_with_ts(
            &mut bytes,
            dicom_encoding::TransferSyntaxIndex::get(
                &dicom_transfer_syntax_registry::TransferSyntaxRegistry,
                "1.2.840.10008.1.2.1",
            )
            .unwrap(),
        )
        .unwrap();
    let mut cancel =
        ward_dimse::command::Command::new(ward_dimse::command::CommandField::CCancelRq, find);
    cancel.set_u16(ward_dimse::command::tag::MESSAGE_ID_BEING_RESPONDED_TO, 7);
    raw.pdv(1, true, true, &cmd.encode()).unwrap();
    raw.pdv(1, false, true, &bytes).unwrap();
    raw.pdv(1, true, true, &cancel.encode()).unwrap();
    assert_eq!(
        raw.read_status(),
        Some(0xFE00),
        "the first response is the cancel's"
    );
    assert!(raw.release());

    let (out, uids) = findscu(
        &a.server,
        "QR",
        &["StudyDate=19000101-"],
        &["--cancel", "1", "-v"],
    );
    assert!(!uids.is_empty() && uids.len() <= 3, "{}", text(&out));
    assert!(
        text(&out).contains("Releasing Association"),
        "{}",
        text(&out)
    );
}

#[test]
fn cap_on_matches_is_reported() {
    let bin = bin();
    let dir = data_dir_with_peers(
        bin,
        &[
            ("STORESCU", "127.0.0.1", "store"),
            ("QR", "127.0.0.1", "find"),
        ],
    );
    let data = dir.path().join("data");
    let config = data.join("ward.toml");
    let text_cfg = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text_cfg.replace("max_matches = 1000", "max_matches = 2"),
    )
    .unwrap();
    let server = WardServer::start(bin, &data);
    let files = tempfile::tempdir().unwrap();
    for i in 0..3 {
        Synthetic::ct().write_part10(&files.path().join(format!("{i}.dcm")), None);
    }
    let out = ward(
        bin,
        &[
            "store",
            &server.addr(),
            files.path().to_str().unwrap(),
            "--aet",
            "STORESCU",
        ],
    );
    assert!(out.status.success());
    let (out, uids) = findscu(&server, "QR", &["StudyDate=19000101-"], &["-d"]);
    assert_eq!(uids.len(), 2, "{}", text(&out));
    assert!(text(&out).contains("more than 2 matches"), "{}", text(&out));
}

/// "Give me every patient": refused to a DIMSE peer, recorded as a security alert.
#[test]
fn enumeration_is_refused() {
    let a = archive(&[]);
    for keys in [
        &["PatientName=*"][..],
        &["PatientName"],
        &["PatientID=*", "PatientName=*"],
    ] {
        let (out, uids) = findscu(&a.server, "QR", keys, &["-d"]);
        assert!(uids.is_empty(), "{keys:?}: {}", text(&out));
        assert!(
            text(&out).contains("enumeration refused"),
            "{keys:?}: {}",
            text(&out)
        );
    }
    let mut patient_level = dcmtk("findscu");
    patient_level
        .args(["-P", "-aet", "QR", "-aec", "WARD"])
        .args([
            "-k",
            "QueryRetrieveLevel=PATIENT",
            "-k",
            "PatientID",
            "-k",
            "PatientName=*",
        ])
        .args(["127.0.0.1", &a.server.port.to_string()]);
    let out = run(&mut patient_level);
    assert!(!text(&out).contains("Pending"), "{}", text(&out));
    // A query that names something is answered.
    let (_, uids) = findscu(&a.server, "QR", &["PatientName=DOE*"], &[]);
    assert_eq!(uids, study_uids(&a, &[0, 1]));
}

#[test]
fn hostile_queries_get_failure_statuses() {
    let a = archive(&[]);
    let long = format!("PatientName={}*", "A".repeat(10_000));
    let (out, uids) = findscu(&a.server, "QR", &[&long], &[]);
    assert!(uids.is_empty());
    assert!(!text(&out).contains("Success"), "{}", text(&out));
    for bad in [
        "StudyDate=2026-11-01",
        "StudyDate=20261301-20261401",
        "StudyDate=abc",
        "StudyTime=25-",
    ] {
        let (out, uids) = findscu(&a.server, "QR", &[bad], &[]);
        assert!(uids.is_empty(), "{bad}: {}", text(&out));
    }
    // The server still answers a normal query.
    let (_, uids) = findscu(&a.server, "QR", &["PatientID=P2"], &[]);
    assert_eq!(uids, study_uids(&a, &[2]));
    assert!(a.server.peak_rss_kib() < 200 * 1024);
}

#[test]
fn pynetdicom_find_get_move() {
    let dest = StoreScp::start("PYDEST");
    let a = archive(&[]);
    a.server.cli(&[
        "ae",
        "add",
        "PYDEST",
        "--host",
        "127.0.0.1",
        "--port",
        &dest.port.to_string(),
        "--allow",
        "store",
    ]);
    let out_dir = tempfile::tempdir().unwrap();
    let out = run(python_script("qr.py")
        .args([
            "127.0.0.1",
            &a.server.port.to_string(),
            "QR",
            "WARD",
            &a.studies[0][0].study,
            "PYDEST",
        ])
        .arg(out_dir.path()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.contains("FIND 1"), "{stdout}");
    assert!(stdout.contains("GET 2 0"), "{stdout}");
    assert!(stdout.contains("MOVE 2 0"), "{stdout}");
    assert_eq!(dest.files().len(), 2);
}

/// Each retrieved file parses (with pydicom) to the data set of the file that was sent.
fn compare_with_sent(a: &Archive, got: &[PathBuf]) {
    let mut pairs = Vec::new();
    for file in got {
        let info = ward_dicom::read_part10_info(file).unwrap();
        let sent = std::fs::read_dir(a.files.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                ward_dicom::read_part10_info(p).unwrap().sop_instance_uid == info.sop_instance_uid
            })
            .unwrap_or_else(|| panic!("{} was never sent", file.display()));
        pairs.push(sent);
        pairs.push(file.clone());
    }
    let out = run(python_script("compare.py").args(&pairs));
    assert!(out.status.success(), "{}", text(&out));
}
