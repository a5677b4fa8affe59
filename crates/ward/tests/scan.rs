//! `ward audit` against real servers: the validation matrix of `docs/audit-findings.md`. Each
//! test starts one server configuration on loopback, runs the real binary against it and
//! asserts the exact set of finding ids; nmap's `dicom-ping` runs against the same server and
//! its verdict is asserted too, so the table of its errors in the documentation stays true.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ward_test_support::{WardServer, data_dir_with_peers, dcmtk, python_script, ward_ok};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn bin() -> &'static Path {
    Path::new(WARD)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process, killed when the test ends however it ends.
struct Running(Child);

impl Running {
    fn spawn(cmd: &mut Command, ports: &[u16]) -> Running {
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let running = Running(child);
        for port in ports {
            wait_listening(*port);
        }
        running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One run of `ward audit --json`.
struct Audit {
    code: i32,
    stdout: String,
    report: serde_json::Value,
}

impl Audit {
    fn run(args: &[&str]) -> Audit {
        let out = Command::new(bin())
            .args(["audit", "--json", "--rate", "50", "--timeout", "5"])
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        Audit {
            code: out.status.code().unwrap(),
            stdout,
            report,
        }
    }

    /// The finding ids of the `n`th target.
    fn ids(&self, n: usize) -> BTreeSet<String> {
        self.report["targets"][n]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn assert_ids(&self, n: usize, expected: &[&str]) {
        let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(self.ids(n), expected, "{}", self.stdout);
    }

    fn max_severity(&self) -> String {
        let order = ["info", "low", "medium", "high", "critical"];
        self.report["targets"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["findings"].as_array().unwrap())
            .map(|f| f["severity"].as_str().unwrap())
            .max_by_key(|s| order.iter().position(|o| o == s))
            .unwrap_or("info")
            .to_owned()
    }
}

/// What nmap's `dicom-ping` concluded.
#[derive(Debug, PartialEq, Eq)]
enum Ping {
    AnyAetAccepted,
    CalledAetCheck,
    NotDetected,
}

/// `dicom-ping` (forced with `+`, since it only runs by itself on nmap's DICOM ports).
fn dicom_ping(port: u16) -> Ping {
    let nmap = Path::new("/usr/bin/nmap");
    assert!(
        nmap.exists(),
        "nmap is missing: the test command installs it (Debian package nmap)"
    );
    let out = Command::new(nmap)
        .args(["-Pn", "-n", "-p", &port.to_string()])
        .args(["--script", "+dicom-ping", "127.0.0.1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Any AET is accepted") {
        Ping::AnyAetAccepted
    } else if text.contains("Called AET check enabled") {
        Ping::CalledAetCheck
    } else {
        Ping::NotDetected
    }
}

fn dicom(port: u16) -> String {
    format!("dicom://127.0.0.1:{port}")
}

fn http(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The common findings of a server that gives services to an unknown peer over plain TCP.
const OPEN_PLAIN: &[&str] = &["dimse-plaintext", "dicom-fingerprint"];

fn with(base: &[&'static str], more: &[&'static str]) -> Vec<&'static str> {
    base.iter().chain(more).copied().collect()
}

// ---- Orthanc -------------------------------------------------------------------------------

fn orthanc(dir: &Path, extra: serde_json::Value) -> (Running, u16, u16) {
    let orthanc = Path::new("/usr/sbin/Orthanc");
    assert!(
        orthanc.exists(),
        "Orthanc is missing: the test command installs it (Debian package orthanc)"
    );
    let (dicom_port, http_port) = (free_port(), free_port());
    let db = dir.join("db");
    let mut config = serde_json::json!({
        "Name": "ward-audit-test",
        "StorageDirectory": db,
        "IndexDirectory": db,
        "Plugins": [],
        "DicomPort": dicom_port,
        "HttpPort": http_port,
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let path = dir.join("orthanc.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let running = Running::spawn(Command::new(orthanc).arg(&path), &[dicom_port, http_port]);
    (running, dicom_port, http_port)
}

#[test]
fn orthanc_with_its_shipped_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (_orthanc, dicom_port, http_port) = orthanc(dir.path(), serde_json::json!({}));
    // One study of a made-up patient, so that an exposure has something to expose.
    let object = dir.path().join("ct.dcm");
    let synthetic = ward_test_support::dicom::Synthetic::ct();
    synthetic.write_part10(&object, None);
    let out = dcmtk("storescu")
        .args(["-aec", "ORTHANC", "127.0.0.1", &dicom_port.to_string()])
        .arg(&object)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    assert_eq!(dicom_ping(dicom_port), Ping::AnyAetAccepted);
    let audit = Audit::run(&[&dicom(dicom_port), &http(http_port)]);
    // C-ECHO and C-STORE for anyone; C-FIND/GET/MOVE are negotiated but refused for peers
    // that are not declared, so they are not reported.
    audit.assert_ids(
        0,
        &with(
            OPEN_PLAIN,
            &[
                "dicom-any-called-ae",
                "dicom-any-calling-ae",
                "dicom-echo-open",
                "dicom-store-open",
            ],
        ),
    );
    audit.assert_ids(
        1,
        &[
            "web-plain-http",
            "web-fingerprint",
            "web-orthanc-rest-open",
            "web-patient-data-exposed",
        ],
    );
    assert_eq!(audit.code, 1);
    assert_eq!(audit.max_severity(), "critical");
    // Counts only: nothing of the patient reaches the report.
    for phi in [
        &synthetic.patient_name,
        &synthetic.patient_id,
        &synthetic.study,
    ] {
        assert!(!audit.stdout.contains(phi.as_str()), "{}", audit.stdout);
    }
}

#[test]
fn orthanc_with_its_dicomweb_plugin_written_to() {
    let plugin = Path::new("/usr/share/orthanc/plugins/libOrthancDicomWeb.so");
    assert!(
        plugin.exists(),
        "Orthanc's DICOMweb plugin is missing: the test command installs it (Debian package \
         orthanc-dicomweb)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (_orthanc, _, http_port) = orthanc(dir.path(), serde_json::json!({ "Plugins": [plugin] }));
    let open = [
        "web-plain-http",
        "web-fingerprint",
        "web-qido-open",
        "web-orthanc-rest-open",
    ];
    // The plugin's WADO-URI answers 404 for an unknown object, as Orthanc does for any unknown
    // path: without an object to ask for, nothing tells it apart.
    let audit = Audit::run(&[&http(http_port)]);
    audit.assert_ids(0, &open);
    // With --intrusive: anyone may store, and the file comes back as sent, MZ preamble and all,
    // by WADO-RS and by WADO-URI.
    let audit = Audit::run(&["--intrusive", &http(http_port)]);
    audit.assert_ids(
        0,
        &with(
            &open,
            &[
                "web-stow-accepted",
                "web-stow-preamble-kept",
                "web-wado-uri-retrieves-data",
            ],
        ),
    );
    assert_eq!(audit.max_severity(), "critical");
    // One probe object was stored, and only one.
    let audit = Audit::run(&[&http(http_port)]);
    assert!(
        audit.stdout.contains("GET /patients: 1 patient(s)"),
        "{}",
        audit.stdout
    );
}

#[test]
fn orthanc_restricted_to_declared_modalities() {
    let dir = tempfile::tempdir().unwrap();
    let (_orthanc, dicom_port, http_port) = orthanc(
        dir.path(),
        serde_json::json!({
            "DicomCheckCalledAet": true,
            "DicomAlwaysAllowEcho": false,
            "DicomAlwaysAllowStore": false,
            "DicomCheckModalityHost": true,
            "DicomModalities": { "ct1": { "AET": "CT1", "Host": "127.0.0.1", "Port": 1 } },
            "AuthenticationEnabled": true,
            "RegisteredUsers": { "orthanc": "orthanc" },
        }),
    );
    assert_eq!(dicom_ping(dicom_port), Ping::CalledAetCheck);
    let audit = Audit::run(&[&dicom(dicom_port), &http(http_port)]);
    // Closed to unknown peers, but its rejections tell a wrong called title from a wrong
    // calling one.
    audit.assert_ids(
        0,
        &["dimse-plaintext", "dicom-closed", "dicom-reject-oracle"],
    );
    audit.assert_ids(
        1,
        &[
            "web-plain-http",
            "web-fingerprint",
            "web-default-credentials",
        ],
    );
    assert_eq!(audit.code, 1);
}

// ---- DCMTK ---------------------------------------------------------------------------------

fn dcmqrscp(dir: &Path, peers: &str) -> (Running, u16) {
    let port = free_port();
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    let config = dir.join("dcmqrscp.cfg");
    std::fs::write(
        &config,
        format!(
            "NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n\
             HostTable BEGIN\nct1 = (CT1, localhost, 1)\nHostTable END\n\
             VendorTable BEGIN\nVendorTable END\n\
             AETable BEGIN\nDCMQRSCP {} RW (200, 1024mb) {peers}\nAETable END\n",
            db.display()
        ),
    )
    .unwrap();
    let running = Running::spawn(
        dcmtk("dcmqrscp")
            .arg("-c")
            .arg(&config)
            .arg(port.to_string()),
        &[port],
    );
    (running, port)
}

#[test]
fn dcmqrscp_open_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (_qr, port) = dcmqrscp(dir.path(), "ANY");
    // nmap sees ANY-SCP refused and calls it a called-AE check; with its default title the
    // archive answers queries and retrievals from anyone.
    assert_eq!(dicom_ping(port), Ping::CalledAetCheck);
    let audit = Audit::run(&[&dicom(port)]);
    audit.assert_ids(
        0,
        &with(
            OPEN_PLAIN,
            &[
                "dicom-default-called-ae",
                "dicom-any-calling-ae",
                "dicom-echo-open",
                "dicom-find-open",
                "dicom-get-open",
                "dicom-move-open",
                "dicom-store-open",
            ],
        ),
    );
    assert_eq!(audit.code, 1);
}

#[test]
fn dcmqrscp_restricted_to_one_peer() {
    let dir = tempfile::tempdir().unwrap();
    let (_qr, port) = dcmqrscp(dir.path(), "ct1");
    assert_eq!(dicom_ping(port), Ping::CalledAetCheck);
    let audit = Audit::run(&[&dicom(port)]);
    // It blames the called title for every refusal, so the reasons give nothing away.
    audit.assert_ids(0, &["dimse-plaintext", "dicom-closed"]);
    assert_eq!(audit.code, 0);
}

#[test]
fn storescp_plain_and_written_to() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _scp = Running::spawn(
        dcmtk("storescp")
            .arg("-od")
            .arg(dir.path())
            .arg(port.to_string()),
        &[port],
    );
    assert_eq!(dicom_ping(port), Ping::AnyAetAccepted);
    let open = with(
        OPEN_PLAIN,
        &[
            "dicom-any-called-ae",
            "dicom-any-calling-ae",
            "dicom-echo-open",
        ],
    );
    let audit = Audit::run(&[&dicom(port)]);
    audit.assert_ids(0, &with(&open, &["dicom-store-open"]));
    assert_eq!(audit.code, 1);

    let audit = Audit::run(&["--intrusive", &dicom(port)]);
    audit.assert_ids(
        0,
        &with(&open, &["dicom-store-accepted", "dicom-store-overwrite"]),
    );
    // Exactly one object was written (then overwritten), and it is the labelled probe.
    let written: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let bytes = std::fs::read(&written[0]).unwrap();
    assert!(
        bytes
            .windows(b"WARD^AUDIT^PROBE".len())
            .any(|w| w == b"WARD^AUDIT^PROBE")
    );
}

#[test]
fn storescp_over_tls_requiring_client_certificates() {
    // Ward's own PKI makes the certificates: a server certificate for storescp, and a client
    // certificate from the same CA for the audit.
    let data = data_dir_with_peers(bin(), &[("CT1", "127.0.0.1", "echo")]);
    let data_dir = data.path().join("data");
    let keys = data_dir.join("keys");
    let client = data.path().join("client");
    ward_ok(
        bin(),
        &[
            "ae",
            "issue-cert",
            "CT1",
            "--out",
            client.to_str().unwrap(),
            "--data",
            data_dir.to_str().unwrap(),
        ],
    );
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let _scp = Running::spawn(
        dcmtk("storescp")
            .arg("+tls")
            .arg(keys.join("server-key.pem"))
            .arg(keys.join("server.pem"))
            .arg("+cf")
            .arg(keys.join("ca.pem"))
            .arg("-od")
            .arg(out.path())
            .arg(port.to_string()),
        &[port],
    );
    // A plain A-ASSOCIATE-RQ to a TLS port gets nothing nmap recognises.
    assert_eq!(dicom_ping(port), Ping::NotDetected);
    let target = format!("dicom+tls://127.0.0.1:{port}");
    let audit = Audit::run(&[&target]);
    // The default (non-downgrading BCP 195) profile refuses every legacy offer.
    audit.assert_ids(0, &["tls-info", "tls-client-cert-required"]);
    assert!(
        audit.stdout.contains(
            "TLS 1.0 refused (alert protocol_version), TLS 1.1 refused (alert protocol_version)"
        ),
        "{}",
        audit.stdout
    );
    assert_eq!(audit.code, 0);

    let cert = client.join("cert.pem");
    let key = client.join("key.pem");
    let ca = client.join("ca.pem");
    let audit = Audit::run(&[
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--ca",
        ca.to_str().unwrap(),
        &target,
    ]);
    // Any certificate holder may store under any AE title.
    audit.assert_ids(
        0,
        &[
            "tls-info",
            "tls-client-cert-required",
            "dicom-fingerprint",
            "dicom-any-called-ae",
            "dicom-any-calling-ae",
            "dicom-echo-open",
            "dicom-store-open",
        ],
    );
}

/// `storescp +tls` with a server key and certificate and the given TLS options, requiring
/// client certificates from Ward's CA (which the audit has none of).
fn storescp_tls(
    key: &Path,
    cert: &Path,
    ca: &Path,
    options: &[&str],
    out: &Path,
) -> (Running, String) {
    let port = free_port();
    let running = Running::spawn(
        dcmtk("storescp")
            .arg("+tls")
            .arg(key)
            .arg(cert)
            .arg("+cf")
            .arg(ca)
            .args(options)
            .arg("-od")
            .arg(out)
            .arg(port.to_string()),
        &[port],
    );
    (running, format!("dicom+tls://127.0.0.1:{port}"))
}

#[test]
fn storescp_over_tls_with_legacy_profiles() {
    let data = data_dir_with_peers(bin(), &[]);
    let keys = data.path().join("data").join("keys");
    let (ward_key, ward_cert, ca) = (
        keys.join("server-key.pem"),
        keys.join("server.pem"),
        keys.join("ca.pem"),
    );
    // DCMTK's profiles other than the extended one offer RSA suites only for TLS 1.2 and
    // below, and Ward's certificates have ECDSA keys: these rows need an RSA certificate.
    let openssl = Path::new("/usr/bin/openssl");
    assert!(
        openssl.exists(),
        "openssl is missing: the test command installs it (Debian package openssl)"
    );
    let (rsa_key, rsa_cert) = (data.path().join("rsa-key.pem"), data.path().join("rsa.pem"));
    let out = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&rsa_key)
        .arg("-out")
        .arg(&rsa_cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let locked = ["tls-info", "tls-client-cert-required"];

    // The BCP 195 profile (not the non-downgrading default) lets TLS 1.0 and 1.1 through, and
    // RSA key transport in CBC mode with every version; OpenSSL 3's default security level
    // does not stop them, since RSA key transport needs no SHA-1 signature.
    let (_scp, target) = storescp_tls(&rsa_key, &rsa_cert, &ca, &["--profile-bcp195"], data.path());
    let audit = Audit::run(&[&target]);
    audit.assert_ids(
        0,
        &with(
            &locked,
            &[
                "tls-cert-self-signed",
                "tls-legacy-version",
                "tls-no-forward-secrecy",
                "tls-non-aead-suite",
            ],
        ),
    );
    assert!(
        audit
            .stdout
            .contains("TLS 1.0 accepted, server chose TLS_RSA_WITH_AES_128_CBC_SHA"),
        "{}",
        audit.stdout
    );
    assert_eq!(audit.code, 1);

    // The default profile with one CBC suite added: TLS 1.2 only, forward secret, not AEAD.
    let (_scp, target) = storescp_tls(
        &ward_key,
        &ward_cert,
        &ca,
        &["+cs", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"],
        data.path(),
    );
    let audit = Audit::run(&[&target]);
    audit.assert_ids(0, &with(&locked, &["tls-non-aead-suite"]));
    assert!(
        audit
            .stdout
            .contains("TLS 1.0 refused (alert protocol_version)"),
        "{}",
        audit.stdout
    );
    assert_eq!(audit.max_severity(), "medium");

    // The retired profiles speak nothing BCP 195 allows: no handshake of a BCP 195 client
    // completes, so nothing behind TLS is reached; what they do accept is reported. The NULL
    // profile's ServerHello chooses TLS_RSA_WITH_NULL_SHA even under OpenSSL 3.
    let (_scp, target) = storescp_tls(&rsa_key, &rsa_cert, &ca, &["--profile-aes"], data.path());
    let audit = Audit::run(&[&target]);
    audit.assert_ids(
        0,
        &[
            "tls-info",
            "tls-no-tls13",
            "tls-legacy-version",
            "tls-no-forward-secrecy",
            "tls-non-aead-suite",
        ],
    );
    assert_eq!(audit.code, 1);
    let (_scp, target) = storescp_tls(&rsa_key, &rsa_cert, &ca, &["--profile-null"], data.path());
    let audit = Audit::run(&[&target]);
    audit.assert_ids(
        0,
        &[
            "tls-info",
            "tls-no-tls13",
            "tls-legacy-version",
            "tls-broken-suite",
        ],
    );
    assert!(
        audit
            .stdout
            .contains("TLS_RSA_WITH_NULL_SHA (NULL encryption)"),
        "{}",
        audit.stdout
    );
    assert_eq!(audit.max_severity(), "high");
}

// ---- pynetdicom ----------------------------------------------------------------------------

fn pynetdicom(mode: &str) -> (Running, u16) {
    let port = free_port();
    let running = Running::spawn(
        python_script("audit_scp.py").args([mode, &port.to_string()]),
        &[port],
    );
    (running, port)
}

/// The pynetdicom SCP's one match is a made-up patient; only its count may appear.
fn assert_no_phi(audit: &Audit) {
    for phi in ["Exposed^Patient", "EXPOSED-1", "2.25.1234"] {
        assert!(!audit.stdout.contains(phi), "{}", audit.stdout);
    }
}

#[test]
fn pynetdicom_accepting_any_title() {
    let (_scp, port) = pynetdicom("accept-any");
    assert_eq!(dicom_ping(port), Ping::AnyAetAccepted);
    let open = with(
        OPEN_PLAIN,
        &[
            "dicom-any-called-ae",
            "dicom-any-calling-ae",
            "dicom-echo-open",
            "dicom-find-exposes-data",
            "dicom-get-open",
            "dicom-store-open",
        ],
    );
    let audit = Audit::run(&[&dicom(port)]);
    audit.assert_ids(0, &open);
    assert_eq!(audit.max_severity(), "critical");
    assert_no_phi(&audit);

    // With --intrusive the one instance the C-FIND led to is fetched, counted and dropped.
    let audit = Audit::run(&["--intrusive", &dicom(port)]);
    audit.assert_ids(0, &with(&open, &["dicom-get-retrieves-data"]));
    assert!(
        audit.stdout.contains("brought 1 data set(s)"),
        "{}",
        audit.stdout
    );
    assert_no_phi(&audit);
}

#[test]
fn pynetdicom_with_a_calling_title_allowlist() {
    let (_scp, port) = pynetdicom("calling-allowed");
    // nmap blames the called title for a calling-title refusal and misses that STORESCU,
    // a tool's default, is let in.
    assert_eq!(dicom_ping(port), Ping::CalledAetCheck);
    let audit = Audit::run(&[&dicom(port)]);
    audit.assert_ids(
        0,
        &with(
            OPEN_PLAIN,
            &[
                "dicom-any-called-ae",
                "dicom-guessable-calling-ae",
                "dicom-reject-oracle",
                "dicom-echo-open",
                "dicom-find-exposes-data",
                "dicom-store-open",
            ],
        ),
    );
    assert_no_phi(&audit);
}

#[test]
fn pynetdicom_checking_the_called_title() {
    let (_scp, port) = pynetdicom("called-checked");
    // True as far as it goes: the called title is checked. But it is PACS, and then anyone
    // gets in.
    assert_eq!(dicom_ping(port), Ping::CalledAetCheck);
    let audit = Audit::run(&[&dicom(port)]);
    audit.assert_ids(
        0,
        &with(
            OPEN_PLAIN,
            &[
                "dicom-default-called-ae",
                "dicom-any-calling-ae",
                "dicom-echo-open",
                "dicom-find-exposes-data",
                "dicom-store-open",
            ],
        ),
    );
    assert_no_phi(&audit);
}

#[test]
fn pynetdicom_requiring_user_identity() {
    let (_scp, port) = pynetdicom("identity");
    assert_eq!(dicom_ping(port), Ping::CalledAetCheck);
    let audit = Audit::run(&[&dicom(port)]);
    // Without identity, with a username alone and with a wrong passcode: all refused.
    audit.assert_ids(0, &["dimse-plaintext", "dicom-closed"]);
    assert_eq!(audit.code, 0);
}

#[test]
fn pynetdicom_accepting_associations_but_no_service() {
    let (_scp, port) = pynetdicom("no-service");
    // nmap's false alarm: the association is accepted, every context rejected.
    assert_eq!(dicom_ping(port), Ping::AnyAetAccepted);
    let audit = Audit::run(&[&dicom(port)]);
    audit.assert_ids(0, &with(OPEN_PLAIN, &["dicom-no-service"]));
    assert_eq!(audit.code, 0);
}

// ---- Ward ----------------------------------------------------------------------------------

#[test]
fn ward_with_its_defaults() {
    let dir = data_dir_with_peers(bin(), &[("CT1", "127.0.0.1", "echo,store")]);
    let server = WardServer::start(bin(), &dir.path().join("data"));
    // nmap first: the audit's guessing trips the back-off, which then silences the address.
    assert_eq!(dicom_ping(server.port), Ping::CalledAetCheck);
    // TLS and HTTPS before plain DIMSE for the same reason.
    let audit = Audit::run(&[
        &format!("dicom+tls://127.0.0.1:{}", server.tls_port),
        &format!("https://127.0.0.1:{}", server.https_port),
        &dicom(server.port),
    ]);
    audit.assert_ids(0, &["tls-info", "tls-client-cert-required"]);
    audit.assert_ids(1, &["tls-info", "web-auth-required"]);
    // rustls on both ports: every legacy offer refused.
    for n in 0..2 {
        let info = audit.report["targets"][n]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == "tls-info")
            .unwrap()["evidence"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(info.matches(" refused (").count(), 5, "{info}");
    }
    audit.assert_ids(2, &["dimse-plaintext", "dicom-closed", "dicom-backoff"]);
    assert!(
        ["info", "low"].contains(&audit.max_severity().as_str()),
        "{}",
        audit.stdout
    );
    assert_eq!(audit.code, 0);

    // Without a token, STOW-RS is refused and WADO-URI is not there: no write exposure.
    let audit = Audit::run(&[
        "--intrusive",
        &format!("https://127.0.0.1:{}", server.https_port),
    ]);
    audit.assert_ids(0, &["tls-info", "web-auth-required"]);
    assert!(
        audit.stdout.contains("request(s) answered 401/403"),
        "{}",
        audit.stdout
    );
    assert_eq!(audit.code, 0);
}

#[test]
fn ward_with_a_declared_legacy_plain_modality() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    ward_ok(bin(), &["init", "--data", data_s]);
    ward_ok(
        bin(),
        &[
            "ae",
            "add",
            "CT1",
            "--host",
            "127.0.0.1",
            "--legacy-plain",
            "--allow",
            "store",
            "--data",
            data_s,
        ],
    );
    let server = WardServer::start(bin(), &data);
    assert_eq!(dicom_ping(server.port), Ping::CalledAetCheck);
    // The administrator's view: knowing the modality's title, the audit shows what it alone
    // gets over plain TCP (nmap never tries a calling title of its own).
    let list = dir.path().join("titles");
    std::fs::write(&list, "WARD\nCT1\n").unwrap();
    let audit = Audit::run(&["--ae-list", list.to_str().unwrap(), &dicom(server.port)]);
    audit.assert_ids(
        0,
        &with(
            OPEN_PLAIN,
            &["dicom-guessable-calling-ae", "dicom-store-open"],
        ),
    );
    assert_eq!(audit.code, 1);
}

#[test]
fn nothing_listening_is_a_failed_scan() {
    let port = free_port();
    let audit = Audit::run(&[&dicom(port)]);
    audit.assert_ids(0, &["scan-failed"]);
    assert_eq!(audit.code, 2);
}
