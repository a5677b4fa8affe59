//! The web application as a value: requests go through `router()` without a socket, against
//! a real index, blob store and audit trail in a temporary directory.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use ward_index::{Index, SqliteIndex, UserRecord};
use ward_test_support::dicom::{EXPLICIT_VR_LE, Synthetic};
use ward_types::{Role, UserName};
use ward_web::{Auth, WebPolicy, WebState, router};

struct App {
    _dir: tempfile::TempDir,
    router: Router,
    index: Arc<SqliteIndex>,
}

async fn app(cors: &[&str]) -> App {
    let dir = tempfile::tempdir().unwrap();
    let keyring = ward_store::Keyring::generate().unwrap();
    let store = ward_store::LocalBlobStore::open(dir.path(), Arc::new(keyring)).unwrap();
    let index = Arc::new(
        SqliteIndex::open(&dir.path().join("index.sqlite"), true)
            .await
            .unwrap(),
    );
    let audit_dir = dir.path().join("audit");
    std::fs::create_dir(&audit_dir).unwrap();
    let key = ward_audit::generate_signing_key().unwrap();
    let audit = ward_audit::AuditLog::open(&audit_dir, &key).await.unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let ingest = Arc::new(ward_ingest::Ingest::new(
        Arc::new(store),
        index.clone(),
        audit,
        spool,
        Default::default(),
    ));
    let mut config = ward_config::Config::default();
    config.web.cors_allowed_origins = cors.iter().map(|s| (*s).to_owned()).collect();
    let auth = Auth::new(index.clone(), &config.web, None).unwrap();
    let state = WebState::new(
        ingest,
        auth,
        WebPolicy::from_config(&config),
        config.query.max_matches_per_hour,
        audit_dir,
    );
    App {
        _dir: dir,
        router: router(Arc::new(state)),
        index,
    }
}

impl App {
    async fn call(&self, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    async fn user(&self, name: &str, role: Role, password: &str) {
        self.index
            .user_add(&UserRecord {
                name: UserName::parse(name).unwrap(),
                role,
                password_hash: ward_auth::identity::hash_password(password).unwrap(),
                created_at_unix_ms: 0,
            })
            .await
            .unwrap();
    }

    async fn login(&self, name: &str, password: &str) -> String {
        let body = serde_json::json!({"username": name, "password": password}).to_string();
        let (status, _, body) = self
            .call(
                Request::post("/auth/token")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["token_type"], "Bearer");
        json["access_token"].as_str().unwrap().to_owned()
    }
}

fn get(path: &str, token: &str) -> Request<Body> {
    Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

/// Every route of the application; all but `/health` must want a token.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/dicom-web/studies"),
    ("POST", "/dicom-web/studies"),
    ("GET", "/dicom-web/studies/1.2.3"),
    ("POST", "/dicom-web/studies/1.2.3"),
    ("GET", "/dicom-web/studies/1.2.3/metadata"),
    ("GET", "/dicom-web/studies/1.2.3/series"),
    ("GET", "/dicom-web/studies/1.2.3/instances"),
    ("GET", "/dicom-web/studies/1.2.3/series/1.2.4"),
    ("GET", "/dicom-web/studies/1.2.3/series/1.2.4/metadata"),
    ("GET", "/dicom-web/studies/1.2.3/series/1.2.4/instances"),
    (
        "GET",
        "/dicom-web/studies/1.2.3/series/1.2.4/instances/1.2.5",
    ),
    (
        "GET",
        "/dicom-web/studies/1.2.3/series/1.2.4/instances/1.2.5/metadata",
    ),
    (
        "GET",
        "/dicom-web/studies/1.2.3/series/1.2.4/instances/1.2.5/frames/1",
    ),
    (
        "GET",
        "/dicom-web/studies/1.2.3/series/1.2.4/instances/1.2.5/rendered",
    ),
    (
        "GET",
        "/dicom-web/studies/1.2.3/series/1.2.4/instances/1.2.5/thumbnail",
    ),
    (
        "GET",
        "/dicom-web/studies/1.2.3/series/1.2.4/instances/1.2.5/bulkdata/7FE00010",
    ),
    ("GET", "/dicom-web/series"),
    ("GET", "/dicom-web/instances"),
    ("GET", "/api/stats"),
    ("GET", "/api/users"),
    ("POST", "/api/users"),
    ("DELETE", "/api/users/alice"),
    ("GET", "/api/tokens"),
    ("POST", "/api/tokens"),
    ("DELETE", "/api/tokens/robot"),
    ("GET", "/api/ae"),
    ("DELETE", "/api/ae/MODALITY"),
    ("GET", "/api/audit"),
];

#[tokio::test]
async fn nothing_but_health_answers_without_a_token() {
    let app = app(&[]).await;
    let (status, _, body) = app
        .call(Request::get("/health").body(Body::empty()).unwrap())
        .await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"ok".as_slice())
    );
    for (method, path) in ROUTES {
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(*path)
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = app.call(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"ward\"",
            "{method} {path}"
        );
        assert_eq!(
            body, br#"{"error":"authentication required"}"#,
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn cross_origin_requests_get_no_cors_grant_unless_configured() {
    let closed = app(&[]).await;
    let preflight = || {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/dicom-web/studies")
            .header(header::ORIGIN, "https://viewer.example")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .body(Body::empty())
            .unwrap()
    };
    let (_, headers, _) = closed.call(preflight()).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let open = app(&["https://viewer.example"]).await;
    let (_, headers, _) = open.call(preflight()).await;
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://viewer.example"
    );
    let other = Request::builder()
        .method(Method::OPTIONS)
        .uri("/dicom-web/studies")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = open.call(other).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

/// A STOW-RS body with one part per file.
fn multipart(files: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    for file in files {
        body.extend_from_slice(b"\r\n--XyZ\r\nContent-Type: application/dicom\r\n\r\n");
        body.extend_from_slice(file);
    }
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    body
}

fn part10(object: &Synthetic) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("object.dcm");
    object.write_part10(&path, None);
    std::fs::read(path).unwrap()
}

/// A body cut short between two parts: the part before the cut is stored and listed, and the
/// unread rest is listed as a failure, so the answer is 202, never 200 ("every instance
/// stored").
#[tokio::test]
async fn a_body_cut_between_parts_is_not_answered_as_wholly_stored() {
    let app = app(&[]).await;
    app.user("tech", Role::Modality, "a long modality password")
        .await;
    let tech = app.login("tech", "a long modality password").await;
    let object = Synthetic::ct();
    let mut body = multipart(&[part10(&object)]);
    body.truncate(body.len() - b"\r\n--XyZ--\r\n".len());
    body.extend_from_slice(b"\r\n--XyZ\r\nContent-Ty");
    let request = Request::post("/dicom-web/studies")
        .header(header::AUTHORIZATION, format!("Bearer {tech}"))
        .header(
            header::CONTENT_TYPE,
            "multipart/related; type=\"application/dicom\"; boundary=XyZ",
        )
        .body(Body::from(body))
        .unwrap();
    let (status, _, body) = app.call(request).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        answer["00081199"]["Value"][0]["00081155"]["Value"][0],
        object.sop_instance
    );
    let failed = answer["00081198"]["Value"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["00081197"]["Value"][0], 0xC000);
    assert!(failed[0].get("00081155").is_none());
}

#[tokio::test]
async fn login_store_search_and_retrieve_through_the_router() {
    let app = app(&[]).await;
    app.user("tech", Role::Modality, "a long modality password")
        .await;
    app.user("doc", Role::Clinician, "a long clinician password")
        .await;
    let tech = app.login("tech", "a long modality password").await;
    let doc = app.login("doc", "a long clinician password").await;

    let first = Synthetic::ct();
    let second = first.next_in_series();
    let files = [part10(&first), part10(&second)];
    let stow = |token: &str| {
        Request::post(format!("/dicom-web/studies/{}", first.study))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(
                header::CONTENT_TYPE,
                "multipart/related; type=\"application/dicom\"; boundary=XyZ",
            )
            .body(Body::from(multipart(&files)))
            .unwrap()
    };
    assert_eq!(app.call(stow(&doc)).await.0, StatusCode::FORBIDDEN);
    let (status, headers, body) = app.call(stow(&tech)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers[header::CONTENT_TYPE], "application/dicom+json");
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let referenced = answer["00081199"]["Value"].as_array().unwrap();
    assert_eq!(referenced.len(), 2);
    assert_eq!(referenced[0]["00081155"]["Value"][0], first.sop_instance);

    // Another study's object sent to this study's URL is refused, and not stored.
    let stranger = Synthetic::ct();
    let wrong = Request::post(format!("/dicom-web/studies/{}", first.study))
        .header(header::AUTHORIZATION, format!("Bearer {tech}"))
        .header(
            header::CONTENT_TYPE,
            "multipart/related; type=\"application/dicom\"; boundary=XyZ",
        )
        .body(Body::from(multipart(&[part10(&stranger)])))
        .unwrap();
    let (status, _, body) = app.call(wrong).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        answer["00081198"]["Value"][0]["00081197"]["Value"][0],
        0xA900
    );

    let (status, _, body) = app
        .call(get(
            &format!(
                "/dicom-web/studies/{}/series/{}/instances",
                first.study, first.series
            ),
            &doc,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let matches: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(matches.as_array().unwrap().len(), 2);
    let (status, _, body) = app
        .call(get(
            &format!("/dicom-web/studies?StudyInstanceUID={}", stranger.study),
            &doc,
        ))
        .await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"[]".as_slice())
    );

    // WADO-RS as stored: the data set that was sent, behind Ward's own meta group.
    let mut request = get(
        &format!(
            "/dicom-web/studies/{}/series/{}/instances/{}",
            first.study, first.series, first.sop_instance
        ),
        &doc,
    );
    request.headers_mut().insert(
        header::ACCEPT,
        "multipart/related; type=\"application/dicom\"; transfer-syntax=*"
            .parse()
            .unwrap(),
    );
    let (status, headers, body) = app.call(request).await;
    assert_eq!(status, StatusCode::OK);
    let content_type = headers[header::CONTENT_TYPE].to_str().unwrap();
    let parts = ward_test_support::http::multipart_parts(content_type, &body);
    assert_eq!(parts.len(), 1);
    let info = ward_dicom::read_part10_info_from(&parts[0][..], parts[0].len() as u64).unwrap();
    assert_eq!(info.sop_instance_uid.as_str(), first.sop_instance);
    assert_eq!(
        &parts[0][info.dataset_offset as usize..],
        first.dataset_bytes(EXPLICIT_VR_LE).as_slice()
    );

    // A wrong password, an unknown user: the same refusal.
    for (name, password) in [("doc", "not the password"), ("nobody", "whatever it is")] {
        let body = serde_json::json!({"username": name, "password": password}).to_string();
        let (status, headers, _) = app
            .call(
                Request::post("/auth/token")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    }
}

#[test]
fn every_admin_route_is_in_the_openapi_file() {
    let spec = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.yaml"),
    )
    .unwrap();
    for (method, path) in ROUTES.iter().filter(|(_, p)| p.starts_with("/api")) {
        let template = match path.rsplit_once('/') {
            Some((base, _)) if base.matches('/').count() == 2 => match base {
                "/api/users" => "/api/users/{name}".to_owned(),
                "/api/tokens" => "/api/tokens/{name}".to_owned(),
                "/api/ae" => "/api/ae/{aet}".to_owned(),
                _ => (*path).to_owned(),
            },
            _ => (*path).to_owned(),
        };
        let block = spec
            .split(&format!("\n  {template}:\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("{template} is not documented"));
        let block = format!("\n{}", block.split("\n  /").next().unwrap());
        assert!(
            block.contains(&format!("\n    {}:", method.to_lowercase())),
            "{method} {template} is not documented"
        );
    }
}

#[tokio::test]
async fn administrators_manage_tokens_and_auditors_read_the_trail() {
    let app = app(&[]).await;
    app.user("root", Role::Administrator, "a long administrator password")
        .await;
    app.user("eve", Role::Auditor, "a long auditor password")
        .await;
    let root = app.login("root", "a long administrator password").await;
    let eve = app.login("eve", "a long auditor password").await;
    let create = |token: &str| {
        Request::post("/api/tokens")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"name":"pipeline","role":"clinician"}"#))
            .unwrap()
    };
    assert_eq!(app.call(create(&eve)).await.0, StatusCode::FORBIDDEN);
    let (status, _, body) = app.call(create(&root)).await;
    assert_eq!(status, StatusCode::CREATED);
    let machine = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let search = "/dicom-web/studies?PatientID=NOBODY";
    assert_eq!(app.call(get(search, &machine)).await.0, StatusCode::OK);
    assert_eq!(
        app.call(get(search, &eve)).await.0,
        StatusCode::FORBIDDEN,
        "no images"
    );
    let revoke = Request::delete("/api/tokens/pipeline")
        .header(header::AUTHORIZATION, format!("Bearer {root}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.call(revoke).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        app.call(get(search, &machine)).await.0,
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(app.call(get("/api/ae", &root)).await.0, StatusCode::OK);
    assert_eq!(
        app.call(get("/no/such/route", &root)).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _, body) = app.call(get("/api/audit?limit=1000", &eve)).await;
    assert_eq!(status, StatusCode::OK);
    let records: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let text = records.to_string();
    // Refusals are recorded with who was refused, and where; so are reads of the registry.
    let refusal = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r.to_string().contains("refusal") && r.to_string().contains("/api/tokens"))
        .unwrap_or_else(|| panic!("no refusal recorded: {text}"));
    assert!(refusal.to_string().contains("eve (auditor)"), "{refusal}");
    assert!(text.contains("/no/such/route"), "unmatched routes too");
    assert!(text.contains("admin_read"), "{text}");
    for expected in [
        "login",
        "registry_change",
        "token_created",
        "token_revoked",
        "query",
    ] {
        assert!(text.contains(expected), "{expected} missing from the trail");
    }
    assert!(
        !text.contains(&machine),
        "the token itself is never recorded"
    );
    assert_eq!(
        app.call(get("/api/users", &eve)).await.0,
        StatusCode::FORBIDDEN
    );
}
