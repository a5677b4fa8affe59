//! DIMSE over TLS with certificate-bound AE titles, tried with DCMTK and pynetdicom; and the
//! exposure guard that refuses to serve plain DIMSE beyond loopback without a declared reason.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use ward_test_support::dicom::Synthetic;
use ward_test_support::{WardServer, data_dir_with_peers, dcmtk, python_script, ward, ward_ok};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn bin() -> &'static Path {
    Path::new(WARD)
}

struct Setup {
    _dir: tempfile::TempDir,
    server: WardServer,
    certs: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = data_dir_with_peers(
            bin(),
            &[
                ("MODALITY", "127.0.0.1", "echo,store"),
                ("VIEWER", "127.0.0.1", "echo,find"),
            ],
        );
        let server = WardServer::start(bin(), &dir.path().join("data"));
        let certs = tempfile::tempdir().unwrap();
        for aet in ["MODALITY", "VIEWER"] {
            server.cli(&[
                "ae",
                "issue-cert",
                aet,
                "--out",
                certs.path().join(aet).to_str().unwrap(),
            ]);
        }
        Setup {
            _dir: dir,
            server,
            certs,
        }
    }

    fn cert_dir(&self, aet: &str) -> PathBuf {
        self.certs.path().join(aet)
    }

    /// DCMTK `echoscu` over TLS as `aet`, with the key and certificate in `creds`.
    fn echo(&self, aet: &str, creds: &Path) -> Output {
        dcmtk("echoscu")
            .arg("+tls")
            .arg(creds.join("key.pem"))
            .arg(creds.join("cert.pem"))
            .arg("+cf")
            .arg(self.cert_dir("MODALITY").join("ca.pem"))
            .args(["-aet", aet, "-aec", "WARD", "127.0.0.1"])
            .arg(self.server.tls_port.to_string())
            .output()
            .unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn dcmtk_over_tls_with_ward_issued_certificates() {
    let s = Setup::new();
    let out = s.echo("MODALITY", &s.cert_dir("MODALITY"));
    assert!(out.status.success(), "{}", text(&out));

    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("ct.dcm");
    Synthetic::ct().write_part10(&path, None);
    let creds = s.cert_dir("MODALITY");
    let out = dcmtk("storescu")
        .arg("+tls")
        .arg(creds.join("key.pem"))
        .arg(creds.join("cert.pem"))
        .arg("+cf")
        .arg(creds.join("ca.pem"))
        .args(["-aet", "MODALITY", "-aec", "WARD", "127.0.0.1"])
        .arg(s.server.tls_port.to_string())
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let viewer = s.cert_dir("VIEWER");
    let out = dcmtk("findscu")
        .arg("+tls")
        .arg(viewer.join("key.pem"))
        .arg(viewer.join("cert.pem"))
        .arg("+cf")
        .arg(viewer.join("ca.pem"))
        .args(["-S", "-aet", "VIEWER", "-aec", "WARD"])
        .args([
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            "PatientID=TEST-0001",
        ])
        .args(["127.0.0.1", &s.server.tls_port.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn wrong_certificates_and_plain_tcp_to_the_tls_port_fail() {
    let s = Setup::new();
    // Another AE's certificate, valid and issued by Ward: refused for this AE title.
    let out = s.echo("MODALITY", &s.cert_dir("VIEWER"));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Rejected"), "{}", text(&out));

    // A certificate from another CA, with the right AE title as its name: refused by TLS.
    let stranger = tempfile::tempdir().unwrap();
    let other_ca = ward_auth::pki::generate_ca("elsewhere").unwrap();
    let forged =
        ward_auth::pki::issue_client_cert(&other_ca, &"MODALITY".parse().unwrap()).unwrap();
    std::fs::write(stranger.path().join("key.pem"), &forged.key_pem).unwrap();
    std::fs::write(stranger.path().join("cert.pem"), &forged.cert_pem).unwrap();
    let out = s.echo("MODALITY", stranger.path());
    assert!(!out.status.success(), "{}", text(&out));

    // No certificate at all.
    let out = dcmtk("echoscu")
        .args(["+tla", "+cf"])
        .arg(s.cert_dir("MODALITY").join("ca.pem"))
        .args(["-aet", "MODALITY", "-aec", "WARD", "127.0.0.1"])
        .arg(s.server.tls_port.to_string())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));

    // Plain DIMSE to the TLS port.
    let out = dcmtk("echoscu")
        .args(["-to", "5", "-aet", "MODALITY", "-aec", "WARD", "127.0.0.1"])
        .arg(s.server.tls_port.to_string())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));

    // The foreign certificate works once an administrator pins it for that AE.
    let cert_path = stranger.path().join("cert.pem");
    s.server.cli(&["ae", "remove", "MODALITY"]);
    s.server.cli(&[
        "ae",
        "add",
        "MODALITY",
        "--host",
        "127.0.0.1",
        "--allow",
        "echo",
        "--cert",
        cert_path.to_str().unwrap(),
    ]);
    let out = s.echo("MODALITY", stranger.path());
    assert!(out.status.success(), "{}", text(&out));
    // …and only for that AE.
    let out = s.echo("VIEWER", stranger.path());
    assert!(!out.status.success(), "{}", text(&out));
}

#[test]
fn pynetdicom_over_tls() {
    let s = Setup::new();
    let creds = s.cert_dir("MODALITY");
    let out = python_script("tls_echo.py")
        .args([
            "127.0.0.1",
            &s.server.tls_port.to_string(),
            "MODALITY",
            "WARD",
        ])
        .arg(creds.join("ca.pem"))
        .arg(creds.join("cert.pem"))
        .arg(creds.join("key.pem"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ACCEPTED 0x0",
        "{}",
        text(&out)
    );
    let viewer = s.cert_dir("VIEWER");
    let out = python_script("tls_echo.py")
        .args([
            "127.0.0.1",
            &s.server.tls_port.to_string(),
            "MODALITY",
            "WARD",
        ])
        .arg(viewer.join("ca.pem"))
        .arg(viewer.join("cert.pem"))
        .arg(viewer.join("key.pem"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "REJECTED",
        "{}",
        text(&out)
    );
}

#[test]
fn plain_dimse_beyond_loopback_needs_a_declared_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    ward_ok(bin(), &["init", "--data", d]);
    ward_ok(
        bin(),
        &[
            "ae",
            "add",
            "CT",
            "--host",
            "127.0.0.1",
            "--allow",
            "store",
            "--data",
            d,
        ],
    );
    let out = ward(
        bin(),
        &[
            "serve",
            "--data",
            d,
            "--dicom-listen",
            "0.0.0.0:0",
            "--dicom-tls-listen",
            "127.0.0.1:0",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to serve plain DIMSE"), "{stderr}");
    assert!(stderr.contains("--legacy-plain"), "{stderr}");

    // A declared legacy modality is the reason; it is listed as a risk.
    ward_ok(
        bin(),
        &[
            "ae",
            "add",
            "OLDCT",
            "--host",
            "10.9.8.7",
            "--allow",
            "store",
            "--legacy-plain",
            "--data",
            d,
        ],
    );
    let list = ward_ok(bin(), &["ae", "list", "--data", d]);
    assert!(
        list.contains("plain (legacy)") && list.contains("unencrypted"),
        "{list}"
    );
    let server = WardServer::start_with(bin(), &data, &["--dicom-listen", "0.0.0.0:0"]);
    assert!(server.log().contains("risk: OLDCT"), "{}", server.log());
}

/// User identity negotiation (PS3.7 D.3.3.7) with pynetdicom: passcodes only over TLS, wrong
/// ones refused, `required` enforced, a positive response when asked, and roles applied — an
/// administrator may enumerate, a clinician may not.
#[test]
fn user_identity_negotiation() {
    let s = Setup::new();
    s.server.cli(&[
        "ae",
        "add",
        "WORKSTATION",
        "--host",
        "127.0.0.1",
        "--allow",
        "echo,find",
        "--identity",
        "required",
    ]);
    s.server.cli(&[
        "ae",
        "add",
        "CASUAL",
        "--host",
        "127.0.0.1",
        "--allow",
        "echo,find",
    ]);
    s.server.cli(&[
        "ae",
        "issue-cert",
        "WORKSTATION",
        "--out",
        s.cert_dir("WORKSTATION").to_str().unwrap(),
    ]);
    let add_user = |name: &str, role: &str| {
        let mut child = std::process::Command::new(WARD)
            .args([
                "user",
                "add",
                name,
                "--role",
                role,
                "--password-stdin",
                "--data",
            ])
            .arg(&s.server.data)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"a long passphrase 1\n")
            .unwrap();
        assert!(child.wait().unwrap().success());
    };
    add_user("alice", "administrator");
    add_user("carol", "clinician");
    let creds = s.cert_dir("WORKSTATION");
    let run = |calling: &str, tls: bool, kind: &str, user: &str, pass: &str| {
        let port = if tls {
            s.server.tls_port
        } else {
            s.server.port
        };
        let mut cmd = python_script("identity.py");
        cmd.args(["127.0.0.1", &port.to_string(), calling, "WARD"]);
        if tls {
            cmd.arg(creds.join("ca.pem"))
                .arg(creds.join("cert.pem"))
                .arg(creds.join("key.pem"));
        } else {
            cmd.args(["-", "-", "-"]);
        }
        let out = cmd.args([kind, user, pass]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let admin = run(
        "WORKSTATION",
        true,
        "passcode",
        "alice",
        "a long passphrase 1",
    );
    assert!(admin.starts_with("ACCEPTED positive=True"), "{admin}");
    assert!(
        admin.contains("FIND 0x0 "),
        "an administrator may enumerate: {admin}"
    );
    let clinician = run(
        "WORKSTATION",
        true,
        "passcode",
        "carol",
        "a long passphrase 1",
    );
    assert!(
        clinician.contains("FIND 0x124 0"),
        "a clinician may not: {clinician}"
    );
    assert_eq!(
        run("WORKSTATION", true, "passcode", "alice", "wrong"),
        "REJECTED"
    );
    assert_eq!(
        run(
            "WORKSTATION",
            true,
            "passcode",
            "mallory",
            "a long passphrase 1"
        ),
        "REJECTED"
    );
    assert_eq!(
        run("WORKSTATION", true, "none", "", ""),
        "REJECTED",
        "identity required"
    );
    assert_eq!(
        run("WORKSTATION", true, "username", "alice", ""),
        "REJECTED",
        "a bare name proves nothing"
    );
    // A passcode over plain TCP is refused even where identity is optional.
    assert_eq!(
        run("CASUAL", false, "passcode", "alice", "a long passphrase 1"),
        "REJECTED"
    );
    let casual = run("CASUAL", false, "username", "alice", "");
    assert!(
        casual.contains("FIND 0x124 0"),
        "an asserted name grants no role: {casual}"
    );
}

/// JWT user identity (PS3.7 D.3.3.7 type 5) from a configured OIDC issuer: over TLS a valid
/// token makes its subject the user with its role; an expired or forged token, or any token
/// over plain TCP, is refused; the token never reaches the audit trail.
#[test]
fn jwt_user_identity() {
    let dir = data_dir_with_peers(bin(), &[("CASUAL", "127.0.0.1", "echo,find")]);
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    ward_ok(
        bin(),
        &[
            "ae",
            "add",
            "READER",
            "--host",
            "127.0.0.1",
            "--allow",
            "echo,find",
            "--identity",
            "required",
            "--data",
            d,
        ],
    );
    let issuer = ward_test_support::jwt::Issuer::new();
    issuer.configure(&data);
    let server = WardServer::start(bin(), &data);
    let certs = tempfile::tempdir().unwrap();
    let creds = certs.path().join("READER");
    server.cli(&[
        "ae",
        "issue-cert",
        "READER",
        "--out",
        creds.to_str().unwrap(),
    ]);
    let run = |calling: &str, tls: bool, token: &str| {
        let port = if tls { server.tls_port } else { server.port };
        let mut cmd = python_script("identity.py");
        cmd.args(["127.0.0.1", &port.to_string(), calling, "WARD"]);
        if tls {
            cmd.arg(creds.join("ca.pem"))
                .arg(creds.join("cert.pem"))
                .arg(creds.join("key.pem"));
        } else {
            cmd.args(["-", "-", "-"]);
        }
        let out = cmd.args(["jwt", token, ""]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let admin = run(
        "READER",
        true,
        &issuer.token("ops.lead", "administrator", 300),
    );
    assert!(admin.starts_with("ACCEPTED positive=True"), "{admin}");
    assert!(
        admin.contains("FIND 0x0 "),
        "an administrator may enumerate: {admin}"
    );
    let clinician = run("READER", true, &issuer.token("dr.grey", "clinician", 300));
    assert!(
        clinician.contains("FIND 0x124 0"),
        "a clinician may not: {clinician}"
    );
    let expired = issuer.token("dr.grey", "clinician", -300);
    assert_eq!(run("READER", true, &expired), "REJECTED");
    let forged = ward_test_support::jwt::Issuer::new().token("dr.grey", "administrator", 300);
    assert_eq!(run("READER", true, &forged), "REJECTED");
    let valid = issuer.token("dr.grey", "clinician", 300);
    assert_eq!(
        run("CASUAL", false, &valid),
        "REJECTED",
        "a token over plain TCP"
    );
    let trail = server.cli(&["audit-log", "show"]);
    assert!(trail.contains("dr.grey"), "the subject is recorded");
    assert!(
        !trail.contains(&valid[valid.len() - 40..]),
        "the token is not"
    );
    assert!(
        !trail.contains(&forged[forged.len() - 40..]),
        "nor a forged one"
    );
}
