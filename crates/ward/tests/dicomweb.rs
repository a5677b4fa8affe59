//! The DICOMweb front door against dicomweb-client (a client nobody here wrote) and against
//! hostile requests: QIDO-RS, WADO-RS and STOW-RS with tokens, refusals without them, objects
//! crossing between DIMSE and DICOMweb unchanged, OIDC bearer JWTs, and a server that keeps
//! serving after every kind of bad request.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use ward_test_support::{
    WardServer, data_dir_with_peers, jwt, pydicom_test_files, python_script, ward,
};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn bin() -> &'static Path {
    Path::new(WARD)
}

fn testfile(name: &str) -> PathBuf {
    pydicom_test_files().join(name)
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs tests/py/dicomweb.py against `server` and parses its JSON answer.
fn client(server: &WardServer, token: &str, args: &[&str]) -> serde_json::Value {
    let url = format!("https://127.0.0.1:{}/dicom-web", server.https_port);
    let ca = server.data.join("keys").join("ca.pem");
    let out = python_script("dicomweb.py")
        .arg(&url)
        .arg(&ca)
        .arg(if token.is_empty() { "-" } else { token })
        .args(args)
        .output()
        .unwrap();
    serde_json::from_str(stdout(&out).trim()).unwrap()
}

/// The data set of a Part 10 file: everything after its meta group.
fn dataset(path: &Path) -> Vec<u8> {
    let info = ward_dicom::read_part10_info(path).unwrap();
    std::fs::read(path).unwrap()[info.dataset_offset as usize..].to_vec()
}

fn uid_of(path: &Path) -> String {
    ward_dicom::read_part10_info(path)
        .unwrap()
        .sop_instance_uid
        .as_str()
        .to_owned()
}

const CT_STUDY: &str = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
const CT_SERIES: &str = "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322";

#[test]
fn dicomweb_client_searches_retrieves_and_stores() {
    let dir = data_dir_with_peers(
        bin(),
        &[
            ("LOADER", "127.0.0.1", "store"),
            ("GETTER", "127.0.0.1", "get"),
        ],
    );
    let server = WardServer::start(bin(), &dir.path().join("data"));
    let ct = testfile("CT_small.dcm");
    let mr = testfile("MR_small.dcm");
    for file in [&ct, &mr] {
        stdout(&ward(
            bin(),
            &[
                "store",
                &server.addr(),
                file.to_str().unwrap(),
                "--aet",
                "LOADER",
            ],
        ));
    }
    let clinician = server.token("viewer", "clinician");
    let modality = server.token("scanner", "modality");

    // QIDO-RS at each level, with filters.
    let studies = client(
        &server,
        &clinician,
        &["search", "studies", "PatientID=1CT1"],
    );
    let studies = studies["matches"].as_array().unwrap();
    assert_eq!(studies.len(), 1, "{studies:?}");
    assert_eq!(studies[0]["StudyInstanceUID"], CT_STUDY);
    assert_eq!(studies[0]["ModalitiesInStudy"], "CT");
    assert_eq!(studies[0]["NumberOfStudyRelatedInstances"], "1");
    let series = client(
        &server,
        &clinician,
        &[
            "search",
            "series",
            &format!("StudyInstanceUID={CT_STUDY}"),
            "Modality=CT",
        ],
    );
    assert_eq!(series["matches"][0]["SeriesInstanceUID"], CT_SERIES);
    let instances = client(
        &server,
        &clinician,
        &[
            "search",
            "instances",
            &format!("SeriesInstanceUID={CT_SERIES}"),
        ],
    );
    assert_eq!(instances["matches"].as_array().unwrap().len(), 1);
    assert_eq!(instances["matches"][0]["SOPInstanceUID"], uid_of(&ct));
    let none = client(
        &server,
        &clinician,
        &["search", "studies", "PatientID=NOBODY"],
    );
    assert_eq!(none["matches"], serde_json::json!([]));

    // WADO-RS: what C-STORE stored comes back the same; metadata refers to bulk data.
    let study = client(
        &server,
        &clinician,
        &["retrieve_study", CT_STUDY, ct.to_str().unwrap()],
    );
    assert_eq!(study["retrieved"], 1);
    assert_eq!(study["same"], serde_json::json!([uid_of(&ct)]));
    let metadata = client(
        &server,
        &clinician,
        &["series_metadata", CT_STUDY, CT_SERIES],
    );
    assert_eq!(metadata["instances"], 1);
    assert!(
        metadata["bulk"]
            .as_array()
            .unwrap()
            .contains(&"7FE00010".into()),
        "{metadata}"
    );
    assert!(metadata["attributes"].as_u64().unwrap() > 50, "{metadata}");

    // STOW-RS: what a modality stores comes back byte for byte through C-GET; an object the
    // ingest checks refuse (its meta and data set disagree on the SOP Instance UID) is listed
    // as failed.
    let stowed = [testfile("SC_rgb_rle.dcm"), testfile("liver_1frame.dcm")];
    let refused = testfile("rtdose.dcm");
    let mut args = vec!["store"];
    args.extend(stowed.iter().chain([&refused]).map(|p| p.to_str().unwrap()));
    let answer = client(&server, &modality, &args);
    let expected: Vec<String> = stowed.iter().map(|p| uid_of(p)).collect();
    assert_eq!(answer["stored"], serde_json::json!(expected), "{answer}");
    assert_eq!(
        answer["failed"],
        serde_json::json!([uid_of(&refused)]),
        "{answer}"
    );
    // The same through a plain multipart body with the file's exact bytes: dicomweb-client
    // re-encodes what it sends, so only this one can be compared byte for byte.
    let exact = testfile("JPGExtended.dcm");
    let mut body = b"--b0undary\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
    body.extend_from_slice(&std::fs::read(&exact).unwrap());
    body.extend_from_slice(b"\r\n--b0undary--\r\n");
    let response = server.web().send(
        "POST",
        "/dicom-web/studies",
        &[
            ("Authorization", &format!("Bearer {modality}")),
            (
                "Content-Type",
                "multipart/related; type=\"application/dicom\"; boundary=b0undary",
            ),
        ],
        &body,
    );
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(
        response.json()["00081199"]["Value"][0]["00081155"]["Value"][0],
        uid_of(&exact)
    );

    // C-GET in the stored transfer syntaxes, data sets written exactly as received.
    let out = tempfile::tempdir().unwrap();
    let port = server.port.to_string();
    let got = python_script("retrieve.py")
        .args(["get", "127.0.0.1", &port, "GETTER", "WARD"])
        .arg(out.path())
        .args(stowed.iter().chain([&exact]))
        .output()
        .unwrap();
    assert!(stdout(&got).contains("GET 3 0 0"), "{}", stdout(&got));
    let retrieved: std::collections::BTreeMap<String, PathBuf> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (uid_of(&path), path)
        })
        .collect();
    assert_eq!(dataset(&retrieved[&uid_of(&exact)]), dataset(&exact));
    for path in &stowed {
        let compared = python_script("compare.py")
            .arg(path)
            .arg(&retrieved[&uid_of(path)])
            .output()
            .unwrap();
        stdout(&compared);
    }

    // Nothing answers without a token; roles bound what a token may do.
    let refused = client(&server, "", &["refused", ct.to_str().unwrap()]);
    assert_eq!(
        refused,
        serde_json::json!({"search": 401, "retrieve": 401, "metadata": 401, "store": 401})
    );
    let web = server.web();
    let search = web.get(
        "/dicom-web/studies?PatientID=1CT1",
        &modality,
        "application/dicom+json",
    );
    assert_eq!(search.status, 403);
    let stow = client(&server, &clinician, &["store", ct.to_str().unwrap()]);
    assert_eq!(stow["status"], 403);
}

#[test]
fn hostile_requests_get_clean_refusals_and_the_server_keeps_serving() {
    let dir = data_dir_with_peers(bin(), &[("LOADER", "127.0.0.1", "store")]);
    let data = dir.path().join("data");
    let issuer = jwt::Issuer::new();
    issuer.configure(&data);
    let server = WardServer::start(bin(), &data);
    stdout(&ward(
        bin(),
        &[
            "store",
            &server.addr(),
            testfile("CT_small.dcm").to_str().unwrap(),
            "--aet",
            "LOADER",
        ],
    ));
    let web = server.web();
    let query = "/dicom-web/studies?PatientID=1CT1";
    let json = "application/dicom+json";
    let ok = |token: &str| web.get(query, token, json).status;

    // Tokens: missing, forged, revoked, expired.
    let missing = web.get(query, "", json);
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"ward\"")
    );
    assert_eq!(
        missing.json(),
        serde_json::json!({"error": "authentication required"})
    );
    for forged in [
        "ward-s.eyJzdWIiOiJhZG1pbiIsImV4cCI6OTk5OTk5OTk5OX0.AAAA",
        "ward-t.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "garbage",
    ] {
        let r = web.get(query, forged, json);
        assert_eq!(r.status, 401, "{forged}");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("invalid_token")
        );
    }
    let revoked = server.token("revoked", "clinician");
    assert_eq!(ok(&revoked), 200);
    server.cli(&["token", "revoke", "revoked"]);
    assert_eq!(ok(&revoked), 401);
    let short = server
        .cli(&[
            "token",
            "create",
            "short",
            "--role",
            "clinician",
            "--expires",
            "1s",
        ])
        .trim()
        .to_owned();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(ok(&short), 401);

    // OIDC bearer JWTs: signature, issuer, audience, expiry; `alg: none` never.
    let good = issuer.token("dr.house", "clinician", 300);
    assert_eq!(ok(&good), 200);
    assert_eq!(ok(&issuer.token("dr.house", "clinician", -300)), 401);
    let other_audience = jwt::claims("dr.house", "clinician", "another-service", 300);
    assert_eq!(ok(&issuer.sign(&jwt::header(), &other_audience)), 401);
    let claims = jwt::claims("dr.house", "clinician", jwt::AUDIENCE, 300);
    let unsigned = format!(
        "{}.{}.",
        jwt::b64(br#"{"alg":"none","typ":"JWT"}"#),
        jwt::b64(claims.to_string().as_bytes())
    );
    assert_eq!(ok(&unsigned), 401);
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut escalated = claims.clone();
        escalated["ward_role"] = "administrator".into();
        parts[1] = jwt::b64(escalated.to_string().as_bytes());
        parts.join(".")
    };
    assert_eq!(ok(&tampered), 401);

    // A role cannot raise itself: a clinician cannot mint an administrator token.
    let clinician = server.token("clin", "clinician");
    let escalate = web.send(
        "POST",
        "/api/tokens",
        &[
            ("Authorization", &format!("Bearer {clinician}")),
            ("Content-Type", "application/json"),
        ],
        br#"{"name":"mine","role":"administrator"}"#,
    );
    assert_eq!(escalate.status, 403);

    // Login: wrong passwords back off, then lock out.
    for _ in 0..5 {
        let r = web.send(
            "POST",
            "/auth/token",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"username=admin&password=wrong-password-here",
        );
        assert_eq!(r.status, 401);
    }
    let locked = web.send(
        "POST",
        "/auth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"username=admin&password=wrong-password-here",
    );
    assert_eq!(locked.status, 429);
    assert!(locked.header("retry-after").is_some());

    // Bodies and multipart bombs.
    let admin = server.token("root", "administrator");
    let bearer = format!("Bearer {admin}");
    let stow = |body: &[u8], extra: &[(&str, &str)]| {
        let mut headers = vec![
            ("Authorization", bearer.as_str()),
            (
                "Content-Type",
                "multipart/related; type=\"application/dicom\"; boundary=b0undary",
            ),
        ];
        headers.extend_from_slice(extra);
        web.send("POST", "/dicom-web/studies", &headers, body)
    };
    // A declared length beyond the body limit (4 GiB by default) is refused before any of it
    // is read.
    assert_eq!(stow(b"", &[("Content-Length", "5000000000")]).status, 413);
    let mut bomb = Vec::new();
    for _ in 0..100_000 {
        bomb.extend_from_slice(b"--b0undary\r\n\r\nx\r\n");
    }
    bomb.extend_from_slice(b"--b0undary--\r\n");
    assert_eq!(stow(&bomb, &[]).status, 413);
    let unclosed = b"--b0undary\r\nContent-Type: application/dicom\r\n\r\nDICM never ends";
    let r = stow(unclosed, &[]);
    assert!(
        (400..500).contains(&r.status),
        "unclosed boundary: {}",
        r.status
    );
    let wrong_type = web.send(
        "POST",
        "/dicom-web/studies",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        b"{}",
    );
    assert_eq!(wrong_type.status, 415);

    // Path traversal in URL UIDs, and huge query strings.
    for path in [
        "/dicom-web/studies/..%2F..%2F..%2Fetc%2Fpasswd",
        "/dicom-web/studies/1.2.3%00/series",
        "/dicom-web/studies/1.2.3/series/..%2F..%2Fkeys/metadata",
    ] {
        let r = web.get(path, &admin, "*/*");
        assert!((400..500).contains(&r.status), "{path}: {}", r.status);
        assert!(!String::from_utf8_lossy(&r.body).contains("root:"));
    }
    let long = format!("/dicom-web/studies?PatientName={}", "A".repeat(9000));
    assert_eq!(web.get(&long, &admin, json).status, 400);
    let huge = format!("/dicom-web/studies?PatientName={}", "A".repeat(200_000));
    let r = web.get(&huge, &admin, json);
    assert!(
        r.status == 431 || r.status == 414 || r.status == 400 || r.status == 0,
        "{}",
        r.status
    );

    // Still serving, in bounded memory.
    assert_eq!(web.get("/health", "", "*/*").status, 200);
    assert_eq!(ok(&admin), 200);
    assert!(
        server.peak_rss_kib() < 200 * 1024,
        "peak RSS {} KiB",
        server.peak_rss_kib()
    );
}
