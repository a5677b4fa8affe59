//! The web side of a scan (step 9): plain HTTP, unauthenticated QIDO-RS on the usual roots,
//! Orthanc's REST API and its default account, CORS. Answers are counted, never kept: a JSON
//! array is read as a number of ignored elements.

use base64::Engine as _;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::classify::{Cors, WebAnswer, WebObservations, WebProbe, classify_tls, classify_web};
use crate::pace::Pacer;
use crate::report::Finding;
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
        let io = self
            .connector
            .open(self.pacer)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let mut request = Request::get(path)
            .header(header::HOST, &self.host)
            .header(header::ACCEPT, "application/dicom+json, application/json")
            .header(header::ORIGIN, &self.origin)
            .header(header::USER_AGENT, "ward-audit");
        if let Some(credentials) = basic {
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            request = request.header(header::AUTHORIZATION, format!("Basic {encoded}"));
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
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

fn answer(probe: WebProbe, a: &Answer) -> WebAnswer {
    let version = match probe {
        WebProbe::OrthancSystem | WebProbe::DefaultCredentials if a.status == 200 => {
            serde_json::from_slice::<OrthancSystem>(&a.body)
                .ok()
                .and_then(|s| s.version)
        }
        _ => None,
    };
    WebAnswer {
        probe,
        status: a.status,
        results: array_len(&a.body),
        cors: a.cors,
        server: a.server.clone(),
        version,
    }
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
        findings.extend(classify_tls(&client.inspect(pacer).await?.observations));
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
    findings.extend(classify_web(&obs));
    Ok(findings)
}
