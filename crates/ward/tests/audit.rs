//! The audit trail as an auditor meets it: every access recorded (with the PHI that belongs
//! there), read with `ward audit-log show`, and any tampering caught by `ward audit-log verify`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ward_test_support::dicom::Synthetic;
use ward_test_support::raw::{Answer, Raw};
use ward_test_support::{WardServer, data_dir_with_peers, dcmtk, ward, ward_ok};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn bin() -> &'static Path {
    Path::new(WARD)
}

/// Runs a little traffic, stops the server, and returns the data directory.
fn traffic() -> (tempfile::TempDir, PathBuf, Synthetic) {
    let dir = data_dir_with_peers(
        bin(),
        &[
            ("MODALITY", "127.0.0.1", "echo,store"),
            ("VIEWER", "127.0.0.1", "find"),
        ],
    );
    let data = dir.path().join("data");
    let server = WardServer::start(bin(), &data);
    let files = tempfile::tempdir().unwrap();
    let obj = Synthetic::ct();
    obj.write_part10(&files.path().join("ct.dcm"), None);
    let out = ward(
        bin(),
        &[
            "store",
            &server.addr(),
            files.path().to_str().unwrap(),
            "--aet",
            "MODALITY",
        ],
    );
    assert!(out.status.success());
    let out = dcmtk("findscu")
        .args(["-S", "-aet", "VIEWER", "-aec", "WARD"])
        .args([
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            "PatientID=TEST-0001",
            "-k",
            "StudyInstanceUID",
        ])
        .args(["127.0.0.1", &server.port.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut raw = Raw::connect(&server.addr());
    let answer = raw.associate(
        "INTRUDER",
        "WARD",
        &[(1, "1.2.840.10008.1.1", &["1.2.840.10008.1.2"])],
    );
    assert!(matches!(answer, Answer::Pdu(0x03, _)));
    assert!(server.stop().success());
    (dir, data, obj)
}

fn show(data: &Path) -> Vec<serde_json::Value> {
    ward_ok(
        bin(),
        &[
            "audit-log",
            "show",
            "--json",
            "--data",
            data.to_str().unwrap(),
        ],
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

fn verify(data: &Path) -> (bool, String) {
    let out = ward(
        bin(),
        &["audit-log", "verify", "--data", data.to_str().unwrap()],
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn every_access_is_recorded() {
    let (_dir, data, obj) = traffic();
    let records = show(&data);
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["event"]["action"].as_str().unwrap())
        .collect();
    for expected in [
        "application_start",
        "association_start",
        "store",
        "query",
        "association_end",
        "association_rejected",
        "application_stop",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let store = records
        .iter()
        .find(|r| r["event"]["action"] == "store")
        .unwrap();
    assert_eq!(store["event"]["actor"]["ae_title"], "MODALITY");
    assert_eq!(
        store["event"]["detail"]["sop_instance_uid"],
        obj.sop_instance.as_str()
    );
    assert_eq!(store["event"]["detail"]["patient_id"], "TEST-0001");
    let query = records
        .iter()
        .find(|r| r["event"]["action"] == "query")
        .unwrap();
    assert_eq!(query["event"]["actor"]["ae_title"], "VIEWER");
    assert_eq!(query["event"]["detail"]["keys"]["(0010,0020)"], "TEST-0001");
    assert_eq!(query["event"]["detail"]["matches"], 1);
    let rejected = records
        .iter()
        .find(|r| r["event"]["action"] == "association_rejected")
        .unwrap();
    assert_eq!(rejected["event"]["actor"]["ae_title"], "INTRUDER");
    assert!(
        rejected["event"]["outcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("not registered")
    );
    let (ok, report) = verify(&data);
    assert!(ok, "{report}");
}

/// The one segment file of the trail.
fn segment(data: &Path) -> PathBuf {
    std::fs::read_dir(data.join("audit"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("audit-")
        })
        .unwrap()
}

fn edit_lines(data: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let path = segment(data);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    edit(&mut lines);
    let mut out = lines.join("\n");
    out.push('\n');
    std::fs::write(&path, out).unwrap();
}

#[test]
fn tampering_is_detected() {
    type Tamper = fn(&mut Vec<String>);
    let cases: [(&str, Tamper); 4] = [
        ("flip one byte", |lines| {
            let l = &mut lines[2];
            let i = l.find("MODALITY").or_else(|| l.find("WARD")).unwrap_or(10);
            l.replace_range(i..i + 1, "X");
        }),
        ("delete one record", |lines| {
            lines.remove(3);
        }),
        ("swap two records", |lines| lines.swap(2, 3)),
        ("truncate the tail", |lines| {
            let keep = lines.len() - 2;
            lines.truncate(keep);
        }),
    ];
    for (name, tamper) in cases {
        let (_dir, data, _) = traffic();
        assert!(verify(&data).0);
        edit_lines(&data, tamper);
        let (ok, report) = verify(&data);
        assert!(!ok, "{name} went unnoticed:\n{report}");
        assert!(report.contains("problem"), "{name}: {report}");
    }
}

/// rsyslog (with its GnuTLS driver) as the collector of RFC 5425 syslog over TLS: every record
/// reaches it as a DICOM audit message, the store with its SOP Instance UID among them, and the
/// exporter resumes after a restart without resending what was delivered.
#[test]
fn audit_messages_reach_an_rsyslog_collector_over_tls() {
    let dir = data_dir_with_peers(bin(), &[("MODALITY", "127.0.0.1", "store")]);
    let data = dir.path().join("data");
    let collector = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let keys = data.join("keys");
    let received = collector.path().join("received.log");
    let conf = collector.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}"
       DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}"
       DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="{port}" address="127.0.0.1")
*.* action(type="omfile" file="{out}" template="RSYSLOG_SyslogProtocol23Format")
"#,
            work = collector.path().display(),
            ca = keys.join("ca.pem").display(),
            cert = keys.join("server.pem").display(),
            key = keys.join("server-key.pem").display(),
            out = received.display(),
        ),
    )
    .unwrap();
    let mut rsyslogd = std::process::Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(collector.path().join("rsyslogd.pid"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("rsyslogd runs (Debian packages rsyslog, rsyslog-gnutls)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "rsyslogd did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let config = std::fs::read_to_string(data.join("ward.toml")).unwrap();
    std::fs::write(
        data.join("ward.toml"),
        format!(
            "{config}\n[audit.syslog]\naddress = \"127.0.0.1:{port}\"\nca_file = \"keys/ca.pem\"\nserver_name = \"localhost\"\n"
        ),
    )
    .unwrap();

    let server = WardServer::start(bin(), &data);
    assert!(
        server.log().contains("exported to syslog over TLS"),
        "{}",
        server.log()
    );
    let files = tempfile::tempdir().unwrap();
    let obj = Synthetic::ct();
    obj.write_part10(&files.path().join("ct.dcm"), None);
    ward_ok(
        bin(),
        &[
            "store",
            &server.addr(),
            files.path().to_str().unwrap(),
            "--aet",
            "MODALITY",
        ],
    );
    let delivered = |what: &str| {
        std::fs::read_to_string(&received)
            .unwrap_or_default()
            .matches(what)
            .count()
    };
    while delivered(&obj.sop_instance) == 0 {
        assert!(
            std::time::Instant::now() < deadline + std::time::Duration::from_secs(20),
            "the store's audit message did not arrive:\n{}",
            std::fs::read_to_string(&received).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(server.stop().success());
    let text = std::fs::read_to_string(&received).unwrap();
    assert!(text.contains("DICOM+RFC3881"), "{text}");
    assert!(text.contains("<AuditMessage"), "{text}");
    assert!(text.contains("Application Start"), "{text}");

    // A restart resumes after what was delivered: the store is not sent twice.
    let server = WardServer::start(bin(), &data);
    assert!(server.stop().success());
    assert_eq!(delivered(&obj.sop_instance), 1, "sent once");
    let _ = rsyslogd.kill();
    let _ = rsyslogd.wait();
}
