//! The web side of a scan (step 9): plain HTTP, unauthenticated QIDO-RS on the usual roots,
//! WADO-URI, Orthanc's REST API and its default account, CORS; with `--intrusive`, STOW-RS of a
//! synthetic object with an `MZ` preamble and what WADO gives of it back. Answers are counted,
//! never kept: a JSON array is read as a number of ignored elements, a DICOM object as its size
//! and the first bytes of its preamble.

use base64::Engine as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::classify::{
    Cors, Part10, WebAnswer, WebObservations, WebProbe, classify_tls, classify_web, is_success,
};
use crate::pace::Pacer;
use crate::report::Finding;
use crate::synthetic::ProbeObject;
use crate::tls::{Connector, TlsClient};
use crate::{ScanError, ScanOptions, Scheme, Target};

/// Roots under which PACS products serve DICOMweb.
const QIDO_ROOTS: &[&str] = &[
    "/dicom-web",
    "/dicomweb",
    "/wado",
    "/rs",
    "/dcm4chee-arc/aets/DCM4CHEE/rs",
];

/// Paths at which PACS products serve WADO-URI (Orthanc's DICOMweb plugin at `/wado`).
const WADO_URI_PATHS: &[&str] = &[
    "/wado",
    "/dicom-web/wado",
    "/orthanc/wado",
    "/dcm4chee-arc/aets/DCM4CHEE/wado",
];

const JSON: &str = "application/dicom+json, application/json";
const DICOM: &str = "application/dicom";
const MULTIPART_DICOM: &str = "multipart/related; type=\"application/dicom\"";

/// Largest body read; a bigger answer is counted as what fits.
const MAX_BODY: usize = 1 << 20;

/// Orthanc's shipped account, `orthanc:orthanc`.
const ORTHANC_DEFAULT: &str = "orthanc:orthanc";

struct Answer {
    status: u16,
    cors: Cors,
    server: Option<String>,
    body: Bytes,
}

struct Client<'a> {
    connector: Connector,
    pacer: &'a Pacer,
    host: String,
    origin: String,
    timeout: std::time::Duration,
}

impl Client<'_> {
    async fn get(&self, path: &str, basic: Option<&str>) -> Result<Answer, String> {
        self.request(Method::GET, path, JSON, basic, None).await
    }

    /// One request on its own connection; `body` is a content type and the bytes.
    async fn request(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        basic: Option<&str>,
        body: Option<(&str, Bytes)>,
    ) -> Result<Answer, String> {
        let io = self
            .connector
            .open(self.pacer)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::ACCEPT, accept)
            .header(header::ORIGIN, &self.origin)
            .header(header::USER_AGENT, "ward-audit");
        if let Some(credentials) = basic {
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            request = request.header(header::AUTHORIZATION, format!("Basic {encoded}"));
        }
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let result = async {
            let response: Response<_> =
                tokio::time::timeout(self.timeout, sender.send_request(request))
                    .await
                    .map_err(|_| String::from("timed out"))?
                    .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = tokio::time::timeout(
                self.timeout,
                Limited::new(response.into_body(), MAX_BODY).collect(),
            )
            .await
            .map_err(|_| String::from("timed out"))?
            .map(|b| b.to_bytes())
            .unwrap_or_default();
            let text = |v: &HeaderValue| v.to_str().ok().map(str::to_owned);
            let cors = match headers
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .and_then(text)
            {
                Some(v) if v == self.origin => Cors::Reflected,
                Some(v) if v.trim() == "*" => Cors::Wildcard,
                _ => Cors::None,
            };
            Ok(Answer {
                status,
                cors,
                server: headers.get(header::SERVER).and_then(text),
                body,
            })
        }
        .await;
        driver.abort();
        result
    }
}

/// The number of elements of a JSON array body, without keeping any of them.
fn array_len(body: &[u8]) -> Option<usize> {
    serde_json::from_slice::<Vec<IgnoredAny>>(body)
        .ok()
        .map(|v| v.len())
}

#[derive(Deserialize)]
struct OrthancSystem {
    #[serde(rename = "Version")]
    version: Option<String>,
}

/// The first Part 10 object in a body (a whole response or one part of a multipart one): "DICM"
/// with 128 bytes of preamble before it.
fn part10(body: &[u8]) -> Option<Part10> {
    let at = (128..body.len().saturating_sub(3)).find(|&i| &body[i..i + 4] == b"DICM")?;
    Some(Part10 {
        body_bytes: body.len(),
        mz_preamble: body[at - 128..].starts_with(b"MZ"),
    })
}

fn answer(probe: WebProbe, a: &Answer) -> WebAnswer {
    let version = match probe {
        WebProbe::OrthancSystem | WebProbe::DefaultCredentials if a.status == 200 => {
            serde_json::from_slice::<OrthancSystem>(&a.body)
                .ok()
                .and_then(|s| s.version)
        }
        _ => None,
    };
    let retrieves = matches!(
        probe,
        WebProbe::WadoUri(_) | WebProbe::WadoRsProbe(_) | WebProbe::WadoUriProbe(_)
    );
    WebAnswer {
        probe,
        status: a.status,
        results: array_len(&a.body),
        cors: a.cors,
        server: a.server.clone(),
        version,
        part10: part10(&a.body).filter(|_| retrieves),
    }
}

/// A WADO-URI request (PS3.18 9) for one object as Part 10.
fn wado_uri_request(path: &str, study: &str, series: &str, object: &str) -> String {
    format!(
        "{path}?requestType=WADO&studyUID={study}&seriesUID={series}&objectUID={object}\
         &contentType=application/dicom"
    )
}

/// WADO-URI at the usual paths for made-up UIDs, after a made-up path with the same query, so
/// that an answer can be told from the server's answer to anything unknown.
async fn wado_uri(client: &Client<'_>, obs: &mut WebObservations) {
    let unknown = format!("/ward-audit-{:016x}", rand::random::<u64>());
    for (probe, path) in std::iter::once((WebProbe::UnknownPath, unknown.as_str())).chain(
        WADO_URI_PATHS
            .iter()
            .map(|p| (WebProbe::WadoUri((*p).to_owned()), *p)),
    ) {
        let uri = wado_uri_request(path, "1.2.3", "1.2.3", "1.2.3");
        if let Ok(a) = client.request(Method::GET, &uri, DICOM, None, None).await {
            obs.answers.push(answer(probe, &a));
        }
    }
}

/// `--intrusive`: STOW-RS of the probe object, with an `MZ` preamble, to the first root that
/// takes it; then WADO-RS and WADO-URI of it, to see whether the preamble comes back and
/// whether objects come back without credentials. Roots whose QIDO answered 404 are skipped:
/// nothing DICOMweb lives there, and every accepted POST leaves one more object to delete.
async fn write_probe(client: &Client<'_>, obs: &mut WebObservations) -> Result<(), String> {
    let object = ProbeObject::new();
    let boundary = format!("ward-audit-{:016x}", rand::random::<u64>());
    let mut body = format!("--{boundary}\r\nContent-Type: {DICOM}\r\n\r\n").into_bytes();
    body.extend(object.part10_mz()?);
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let body = Bytes::from(body);
    let content_type = format!("{MULTIPART_DICOM}; boundary={boundary}");
    let roots: Vec<String> = obs
        .answers
        .iter()
        .filter_map(|a| match &a.probe {
            WebProbe::Qido(root) if a.status != 404 => Some(root.clone()),
            _ => None,
        })
        .collect();
    for root in roots {
        let stow = WebProbe::Stow {
            root: root.clone(),
            study: object.study.clone(),
        };
        let Ok(a) = client
            .request(
                Method::POST,
                &format!("{root}/studies"),
                JSON,
                None,
                Some((&content_type, body.clone())),
            )
            .await
        else {
            continue;
        };
        obs.answers.push(answer(stow, &a));
        if !is_success(a.status) {
            continue;
        }
        let instance = format!(
            "{root}/studies/{}/series/{}/instances/{}",
            object.study, object.series, object.sop_instance
        );
        if let Ok(a) = client
            .request(Method::GET, &instance, MULTIPART_DICOM, None, None)
            .await
        {
            obs.answers
                .push(answer(WebProbe::WadoRsProbe(root.clone()), &a));
        }
        for path in WADO_URI_PATHS {
            let uri = wado_uri_request(path, &object.study, &object.series, &object.sop_instance);
            if let Ok(a) = client.request(Method::GET, &uri, DICOM, None, None).await {
                let got = answer(WebProbe::WadoUriProbe((*path).to_owned()), &a);
                let found = got.part10.is_some();
                obs.answers.push(got);
                if found {
                    break;
                }
            }
        }
        break;
    }
    Ok(())
}

/// Scans an `http://` or `https://` target.
pub(crate) async fn scan(
    target: &Target,
    options: &ScanOptions,
    pacer: &Pacer,
) -> Result<Vec<Finding>, ScanError> {
    let mut findings = Vec::new();
    let connector = if target.scheme == Scheme::Https {
        let client = TlsClient::new(target, options)?;
        let inspection = client.inspect(pacer).await?;
        findings.extend(classify_tls(&inspection.observations));
        if inspection.observations.versions.is_empty() {
            // Only legacy TLS is spoken: nothing behind it is reachable with rustls.
            return Ok(findings);
        }
        client.connector(true)?
    } else {
        Connector::plain(target, options.timeout)
    };
    let client = Client {
        connector,
        pacer,
        host: target.socket_addr(),
        origin: format!("https://{:016x}.example.invalid", rand::random::<u64>()),
        timeout: options.timeout,
    };
    let mut obs = WebObservations {
        plain_http: target.scheme == Scheme::Http,
        answers: Vec::new(),
    };
    let root = client
        .get("/", None)
        .await
        .map_err(|e| ScanError::NotConfirmed(format!("no HTTP answer: {e}")))?;
    obs.answers.push(answer(WebProbe::Root, &root));
    for qido in QIDO_ROOTS {
        if let Ok(a) = client.get(&format!("{qido}/studies?limit=1"), None).await {
            obs.answers
                .push(answer(WebProbe::Qido((*qido).to_owned()), &a));
        }
    }
    if let Ok(a) = client.get("/system", None).await {
        let refused = matches!(a.status, 401 | 403);
        obs.answers.push(answer(WebProbe::OrthancSystem, &a));
        if refused {
            if let Ok(a) = client.get("/system", Some(ORTHANC_DEFAULT)).await {
                let accepted = a.status == 200;
                obs.answers.push(answer(WebProbe::DefaultCredentials, &a));
                if accepted {
                    if let Ok(a) = client.get("/patients", Some(ORTHANC_DEFAULT)).await {
                        obs.answers
                            .push(answer(WebProbe::DefaultCredentialsPatients, &a));
                    }
                }
            }
        }
    }
    if let Ok(a) = client.get("/patients", None).await {
        obs.answers.push(answer(WebProbe::OrthancPatients, &a));
    }
    wado_uri(&client, &mut obs).await;
    if options.intrusive {
        write_probe(&client, &mut obs)
            .await
            .map_err(ScanError::Setup)?;
    }
    findings.extend(classify_web(&obs));
    Ok(findings)
}
