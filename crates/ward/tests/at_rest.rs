//! Encryption at rest, as an administrator meets it: blob files give away no patient data,
//! `ward verify` finds a changed byte, and `ward key rotate` leaves everything retrievable.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use ward_test_support::dicom::Synthetic;
use ward_test_support::{
    WardServer, data_dir_with_peers, master_keys, python_script, stored_plaintext, ward,
};

const WARD: &str = env!("CARGO_BIN_EXE_ward");
const PATIENT_NAME: &str = "Confidential^Patricia^Q";

fn bin() -> &'static Path {
    Path::new(WARD)
}

/// An archive holding three objects of one patient with a recognisable name.
struct Archive {
    dir: tempfile::TempDir,
    files: tempfile::TempDir,
    sent: Vec<Synthetic>,
}

impl Archive {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn data_arg(&self) -> String {
        self.data().to_str().unwrap().to_owned()
    }
}

fn archive() -> (Archive, WardServer) {
    let dir = data_dir_with_peers(
        bin(),
        &[("SENDER", "127.0.0.1", "store"), ("QR", "127.0.0.1", "get")],
    );
    let server = WardServer::start(bin(), &dir.path().join("data"));
    let files = tempfile::tempdir().unwrap();
    let mut first = Synthetic::ct();
    first.patient_name = PATIENT_NAME.to_owned();
    first.patient_id = "AT-REST-1".to_owned();
    let sent = vec![
        first.clone(),
        first.next_in_series(),
        first.next_in_series(),
    ];
    for (i, obj) in sent.iter().enumerate() {
        obj.write_part10(&files.path().join(format!("{i}.dcm")), None);
    }
    let out = ward(
        bin(),
        &[
            "store",
            &server.addr(),
            files.path().to_str().unwrap(),
            "--aet",
            "SENDER",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    (Archive { dir, files, sent }, server)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn blobs(a: &Archive) -> Vec<PathBuf> {
    let mut blobs = files_under(&a.data().join("blobs"));
    blobs.sort();
    blobs
}

fn key_of(blob: &Path) -> String {
    blob.file_name().unwrap().to_str().unwrap().to_owned()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn blob_files_hold_no_patient_data() {
    let (a, server) = archive();
    assert!(server.stop().success());
    let blobs = blobs(&a);
    assert_eq!(blobs.len(), a.sent.len());
    for blob in &blobs {
        let raw = std::fs::read(blob).unwrap();
        assert!(
            !contains(&raw, PATIENT_NAME.as_bytes()),
            "{} holds the patient's name in clear",
            blob.display()
        );
        assert!(!contains(&raw, b"AT-REST-1"), "{}", blob.display());
        // What Ward reads back does hold it: the name was there to be found.
        let plain = stored_plaintext(&a.data(), &key_of(blob));
        assert!(contains(&plain, PATIENT_NAME.as_bytes()));
    }
    // Nothing in clear left behind by the stores either.
    for dir in ["spool", "tmp"] {
        assert!(files_under(&a.data().join(dir)).is_empty(), "{dir}");
    }
}

#[test]
fn verify_reports_a_changed_byte_and_a_missing_blob() {
    let (a, server) = archive();
    // It only reads, so it runs beside the server.
    let out = ward(bin(), &["verify", "--data", &a.data_arg()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 index rows, 3 blobs read"), "{stdout}");
    assert!(stdout.contains("archive intact"), "{stdout}");
    assert!(server.stop().success());

    let blobs = blobs(&a);
    let damaged = &blobs[0];
    let mut raw = std::fs::read(damaged).unwrap();
    let middle = raw.len() / 2;
    raw[middle] ^= 0x01;
    std::fs::write(damaged, raw).unwrap();
    let removed = &blobs[1];
    std::fs::remove_file(removed).unwrap();

    let out = ward(bin(), &["verify", "--data", &a.data_arg()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line_about = |blob: &Path| {
        stdout
            .lines()
            .find(|l| l.contains(&key_of(blob)))
            .unwrap_or_else(|| panic!("{} not reported:\n{stdout}", key_of(blob)))
            .to_owned()
    };
    let line = line_about(damaged);
    assert!(line.contains("fails authentication"), "{line}");
    let uid = a
        .sent
        .iter()
        .find(|s| line.contains(&s.sop_instance))
        .map(|s| s.sop_instance.clone());
    assert!(uid.is_some(), "the instance is named: {line}");
    assert!(line_about(removed).contains("blob missing"));
    assert!(stdout.contains("2 problems"), "{stdout}");
    assert!(!stdout.contains(PATIENT_NAME), "{stdout}");
    assert!(!stdout.contains(&key_of(&blobs[2])), "{stdout}");
}

#[test]
fn key_rotation_keeps_everything_retrievable() {
    let (a, server) = archive();
    // Not while a server runs: it would go on sealing under the old key.
    let out = ward(bin(), &["key", "rotate", "--data", &a.data_arg()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("is running"), "{}", text(&out));
    assert!(server.stop().success());

    let keyring_before = std::fs::read_to_string(master_keys(&a.data())).unwrap();
    let headers_before: Vec<Vec<u8>> = blobs(&a)
        .iter()
        .map(|b| std::fs::read(b).unwrap())
        .collect();
    let out = ward(bin(), &["key", "rotate", "--data", &a.data_arg()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 blobs re-wrapped"), "{stdout}");
    assert!(stdout.contains("retired master key"), "{stdout}");
    let keyring_after = std::fs::read_to_string(master_keys(&a.data())).unwrap();
    let active = |keyring: &str| {
        keyring
            .lines()
            .find_map(|l| l.strip_prefix("active "))
            .unwrap()
            .to_owned()
    };
    assert_ne!(active(&keyring_before), active(&keyring_after));
    assert!(!keyring_after.contains(&active(&keyring_before)));
    // Only the headers changed; the sealed chunks stayed.
    for (blob, before) in blobs(&a).iter().zip(&headers_before) {
        let after = std::fs::read(blob).unwrap();
        assert_eq!(after.len(), before.len());
        assert_ne!(after[..154], before[..154]);
        assert_eq!(after[154..], before[154..]);
    }

    let out = ward(bin(), &["verify", "--data", &a.data_arg()]);
    assert!(out.status.success(), "{}", text(&out));

    let server = WardServer::start(bin(), &a.data());
    let got_dir = tempfile::tempdir().unwrap();
    let out = ward(
        bin(),
        &[
            "get",
            &server.addr(),
            "--aet",
            "QR",
            "-k",
            "PatientID=AT-REST-1",
            "--out",
            got_dir.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 completed, 0 failed"),
        "{}",
        text(&out)
    );
    let mut pairs = Vec::new();
    for got in files_under(got_dir.path()) {
        let uid = ward_dicom::read_part10_info(&got).unwrap().sop_instance_uid;
        let i = a
            .sent
            .iter()
            .position(|s| s.sop_instance == uid.as_str())
            .unwrap();
        pairs.push(a.files.path().join(format!("{i}.dcm")));
        pairs.push(got);
    }
    assert_eq!(pairs.len(), 6);
    let cmp = python_script("compare.py").args(&pairs).output().unwrap();
    assert!(cmp.status.success(), "{}", text(&cmp));
    assert!(server.stop().success());

    // The rotation is in the audit trail.
    let out = ward(bin(), &["audit-log", "show", "--data", &a.data_arg()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("master key rotation"),
        "{}",
        text(&out)
    );
}

/// After an unclean stop, recovery removes blobs without a row that fail their checks. A blob
/// sealed under a master key the keyring lacks has not failed anything — the keyring may be
/// the wrong one — so recovery stops and says so rather than delete what may be an
/// acknowledged object.
#[test]
fn recovery_never_removes_a_blob_it_has_no_key_for() {
    let (donor, server) = archive();
    assert!(server.stop().success());
    let foreign = blobs(&donor).pop().unwrap();
    let relative = foreign.strip_prefix(donor.data()).unwrap().to_owned();

    let victim = data_dir_with_peers(bin(), &[]);
    let data = victim.path().join("data");
    let target = data.join(&relative);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(&foreign, &target).unwrap();
    std::fs::write(data.join("ward.pid"), "999999999\n").unwrap();

    let mut serve = std::process::Command::new(bin())
        .args(["serve", "--data", data.to_str().unwrap()])
        .args([
            "--dicom-listen",
            "127.0.0.1:0",
            "--dicom-tls-listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = serve.kill();
            panic!("ward serve started despite a blob it cannot check");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("not in the keyring"), "{stderr}");
    assert!(target.exists(), "the blob is kept");

    let out = ward(bin(), &["verify", "--data", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not in the keyring"), "{}", text(&out));
}
