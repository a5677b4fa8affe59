//! A minimal HTTP/1.1 client for the DICOMweb benchmark (`bench/dicomweb`): keep-alive
//! connections over plain TCP or TLS (rustls with aws-lc-rs), one request at a time per
//! connection, the same code for every server. It times STOW-RS (or Orthanc's REST
//! `POST /instances`) uploads and WADO-RS retrievals, and serves QIDO-RS queries to
//! `find-latency`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Where a server's HTTP API is: `http[s]://HOST:PORT[/PREFIX]`.
#[derive(Debug, Clone)]
pub struct BaseUrl {
    pub tls: bool,
    /// HOST:PORT, for connecting and for the `Host` header.
    pub authority: String,
    pub host: String,
    /// The path every request path is appended to, without a trailing slash ("" for none).
    pub prefix: String,
}

impl std::str::FromStr for BaseUrl {
    type Err = anyhow::Error;

    fn from_str(url: &str) -> Result<BaseUrl> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            bail!("{url:?}: expected http://HOST:PORT or https://HOST:PORT");
        };
        let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let Some((host, port)) = authority.rsplit_once(':') else {
            bail!("{url:?}: the port is missing");
        };
        port.parse::<u16>()
            .with_context(|| format!("{url:?}: port"))?;
        Ok(BaseUrl {
            tls,
            authority: authority.to_owned(),
            host: host.trim_matches(['[', ']']).to_owned(),
            prefix: prefix.trim_end_matches('/').to_owned(),
        })
    }
}

/// How every connection to one server is made and authenticated.
#[derive(Clone)]
pub struct Client {
    base: BaseUrl,
    tls: Option<tokio_rustls::TlsConnector>,
    authorization: Option<HeaderValue>,
}

impl Client {
    /// `ca`: the PEM certificates to trust for HTTPS. `token`: a bearer token for every request.
    pub fn new(base: BaseUrl, ca: Option<&Path>, token: Option<&str>) -> Result<Client> {
        let tls = if base.tls {
            let Some(ca) = ca else {
                bail!("https needs --ca");
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in
                CertificateDer::pem_file_iter(ca).with_context(|| ca.display().to_string())?
            {
                roots
                    .add(cert.with_context(|| ca.display().to_string())?)
                    .context("CA certificate")?;
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            // The first random bytes a process draws from aws-lc seed its generator, which
            // takes tens of milliseconds; drawn here, that start-up cost of the client stays
            // out of the timed connection set-up.
            provider
                .secure_random
                .fill(&mut [0u8; 32])
                .map_err(|e| anyhow::anyhow!("random generator: {e:?}"))?;
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        let authorization = token
            .map(|t| HeaderValue::from_str(&format!("Bearer {}", t.trim())))
            .transpose()
            .context("token")?;
        Ok(Client {
            base,
            tls,
            authorization,
        })
    }

    /// Opens one keep-alive connection (TCP_NODELAY, then the TLS handshake if any).
    pub async fn connect(&self) -> Result<Connection> {
        let tcp = TcpStream::connect(&self.base.authority)
            .await
            .with_context(|| format!("connecting to {}", self.base.authority))?;
        tcp.set_nodelay(true)?;
        let sender = match &self.tls {
            None => handshake(tcp).await?,
            Some(connector) => {
                let name = ServerName::try_from(self.base.host.clone()).context("server name")?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .context("TLS handshake")?;
                handshake(tls).await?
            }
        };
        Ok(Connection {
            sender,
            client: self.clone(),
        })
    }
}

async fn handshake<S>(io: S) -> Result<SendRequest<Full<Bytes>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .context("HTTP handshake")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One open connection; requests go one after the other.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    client: Client,
}

/// A response, its body read.
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Connection {
    fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, &str)],
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.client.base.prefix))
            .header(header::HOST, &self.client.base.authority);
        if let Some(auth) = &self.client.authorization {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        Ok(request.body(Full::new(body))?)
    }

    /// Sends one request and reads the whole answer.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, &str)],
        body: Bytes,
    ) -> Result<Answer> {
        let request = self.request(method, path, headers, body)?;
        self.sender.ready().await.context("connection closed")?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let content_type = content_type(response.headers());
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }

    /// Sends a GET; the caller reads the body frame by frame.
    pub async fn get(
        &mut self,
        path: &str,
        headers: &[(header::HeaderName, &str)],
    ) -> Result<(StatusCode, Option<String>, hyper::body::Incoming)> {
        let request = self.request(Method::GET, path, headers, Bytes::new())?;
        self.sender.ready().await.context("connection closed")?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let content_type = content_type(response.headers());
        Ok((status, content_type, response.into_body()))
    }
}

fn content_type(headers: &hyper::HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The `boundary` parameter of a multipart content type.
pub fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// Percent-encodes a query parameter value (everything but unreserved characters).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The number of elements of a JSON array, without building it.
pub fn json_array_len(body: &[u8]) -> Result<u64> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(0); // 204 No Content
    }
    let items: Vec<IgnoredAny> = serde_json::from_slice(body).context("not a JSON array")?;
    Ok(items.len() as u64)
}

// ------------------------------------------------------------------------------- uploads

/// Which upload API is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UploadApi {
    /// DICOMweb STOW-RS: `POST {base}/studies`, multipart/related of application/dicom parts.
    Stow,
    /// Orthanc's REST API: `POST {base}/instances`, one application/dicom body per request.
    OrthancRest,
}

pub struct UploadOptions {
    pub api: UploadApi,
    /// Instances per request (STOW-RS only; Orthanc's API takes one).
    pub batch: usize,
    /// Parallel connections; connection k sends files k, k+C, k+2C, ...
    pub connections: usize,
}

pub const STOW_BOUNDARY: &str = "ward-bench-8d3f0c1a7e5b4f29";

/// The Part 10 files under `dir` (recursively), sorted by path.
pub fn dicom_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "dcm") {
                out.push(path);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        bail!("no .dcm file under {}", dir.display());
    }
    Ok(out)
}

/// One request's body and the instances it carries.
struct Upload {
    body: Bytes,
    instances: usize,
}

pub fn stow_body(files: &[Bytes]) -> Bytes {
    let mut body = Vec::with_capacity(files.iter().map(|f| f.len() + 128).sum::<usize>() + 64);
    for file in files {
        body.extend_from_slice(
            format!("--{STOW_BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{STOW_BOUNDARY}--\r\n").as_bytes());
    Bytes::from(body)
}

/// Checks an upload's answer; the number of instances the server says it stored.
pub fn stored_by(api: UploadApi, answer: &Answer) -> Result<usize> {
    let text = || String::from_utf8_lossy(&answer.body[..answer.body.len().min(2000)]).into_owned();
    if answer.status != StatusCode::OK {
        bail!("HTTP {}: {}", answer.status, text());
    }
    let json: Value = serde_json::from_slice(&answer.body).with_context(text)?;
    match api {
        UploadApi::Stow => {
            if json.get("00081198").is_some() {
                bail!("failed instances: {}", text());
            }
            Ok(json
                .pointer("/00081199/Value")
                .and_then(Value::as_array)
                .map_or(0, Vec::len))
        }
        UploadApi::OrthancRest => match json.get("Status").and_then(Value::as_str) {
            Some("Success") => Ok(1),
            _ => bail!("not stored anew: {}", text()),
        },
    }
}

/// Reads every file into memory and builds every request body, then (timed) sends them over
/// `options.connections` connections, each request after the previous one's answer. Connection
/// set-up (TCP, TLS) is inside the timing, as association set-up is for storescu.
pub async fn upload(client: &Client, files: &[PathBuf], options: &UploadOptions) -> Result<Value> {
    if options.batch == 0 || options.connections == 0 {
        bail!("--batch and --connections must be at least 1");
    }
    let batch = match options.api {
        UploadApi::Stow => options.batch,
        UploadApi::OrthancRest => 1,
    };
    let mut contents = Vec::with_capacity(files.len());
    for path in files {
        let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
        contents.push(Bytes::from(bytes));
    }
    let payload: u64 = contents.iter().map(|c| c.len() as u64).sum();
    let connections = options.connections.min(files.len());
    let mut plans: Vec<Vec<Upload>> = Vec::new();
    for k in 0..connections {
        let mine: Vec<Bytes> = contents
            .iter()
            .skip(k)
            .step_by(connections)
            .cloned()
            .collect();
        let uploads = mine
            .chunks(batch)
            .map(|chunk| Upload {
                body: match options.api {
                    UploadApi::Stow => stow_body(chunk),
                    UploadApi::OrthancRest => chunk[0].clone(),
                },
                instances: chunk.len(),
            })
            .collect();
        plans.push(uploads);
    }
    drop(contents);
    let requests: usize = plans.iter().map(Vec::len).sum();
    let content_type = match options.api {
        UploadApi::Stow => {
            format!("multipart/related; type=\"application/dicom\"; boundary={STOW_BOUNDARY}")
        }
        UploadApi::OrthancRest => "application/dicom".to_owned(),
    };
    let path = match options.api {
        UploadApi::Stow => "/studies",
        UploadApi::OrthancRest => "/instances",
    };
    let api = options.api;

    let start = Instant::now();
    let mut tasks = Vec::new();
    for uploads in plans {
        let client = client.clone();
        let content_type = content_type.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = client.connect().await?;
            let mut stored = 0usize;
            let mut latencies = Vec::with_capacity(uploads.len());
            for upload in uploads {
                let t = Instant::now();
                let answer = conn
                    .call(
                        Method::POST,
                        path,
                        &[
                            (header::CONTENT_TYPE, content_type.as_str()),
                            (header::ACCEPT, "application/dicom+json, application/json"),
                        ],
                        upload.body,
                    )
                    .await?;
                latencies.push(t.elapsed());
                let n = stored_by(api, &answer)?;
                if n != upload.instances {
                    bail!("{n} of {} instances reported stored", upload.instances);
                }
                stored += n;
            }
            Ok::<_, anyhow::Error>((stored, latencies))
        }));
    }
    let mut stored = 0;
    let mut latencies: Vec<Duration> = Vec::new();
    for task in tasks {
        let (n, l) = task.await??;
        stored += n;
        latencies.extend(l);
    }
    let seconds = start.elapsed().as_secs_f64();
    if stored != files.len() {
        bail!("{stored} of {} instances stored", files.len());
    }
    latencies.sort();
    let median_ms = latencies
        .get(latencies.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    Ok(json!({
        "instances": files.len(),
        "bytes": payload,
        "requests": requests,
        "connections": connections,
        "batch": batch,
        "seconds": seconds,
        "images_per_second": files.len() as f64 / seconds,
        "mb_per_second": payload as f64 / 1e6 / seconds,
        "median_request_ms": median_ms,
    }))
}

// ------------------------------------------------------------------------------- retrieval

/// Counts the parts of a multipart body as it streams past: occurrences of `--boundary`
/// (the closing delimiter included) across chunk borders.
pub struct PartCounter {
    finder: memchr::memmem::Finder<'static>,
    carry: Vec<u8>,
    delimiters: u64,
}

impl PartCounter {
    pub fn new(boundary: &str) -> PartCounter {
        let needle = format!("--{boundary}").into_bytes();
        PartCounter {
            finder: memchr::memmem::Finder::new(&needle).into_owned(),
            carry: Vec::new(),
            delimiters: 0,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        let n = self.finder.needle().len();
        // The carried tail and the chunk's head are each shorter than the needle, so a match
        // in `border` straddles the two: it is counted here once, never in the chunk alone.
        if !self.carry.is_empty() {
            let take = chunk.len().min(n - 1);
            let mut border = Vec::with_capacity(self.carry.len() + take);
            border.extend_from_slice(&self.carry);
            border.extend_from_slice(&chunk[..take]);
            self.delimiters += self.finder.find_iter(&border).count() as u64;
        }
        self.delimiters += self.finder.find_iter(chunk).count() as u64;
        // The next border needs the last n - 1 bytes seen, which may span several small chunks.
        self.carry.extend_from_slice(chunk);
        let excess = self.carry.len().saturating_sub(n - 1);
        self.carry.drain(..excess);
    }

    /// Parts seen: every delimiter but the closing one.
    pub fn parts(&self) -> u64 {
        self.delimiters.saturating_sub(1)
    }
}

/// One timed GET of a multipart/related retrieval on a fresh connection (set-up included),
/// the body read to its end and its parts counted on the way; checks the status and the number
/// of parts.
pub async fn retrieve(
    client: &Client,
    path: &str,
    accept: &str,
    expect_parts: Option<u64>,
) -> Result<Value> {
    let start = Instant::now();
    let mut conn = client.connect().await?;
    let (status, content_type, mut body) = conn.get(path, &[(header::ACCEPT, accept)]).await?;
    let headers_at = start.elapsed();
    if status != StatusCode::OK {
        bail!("HTTP {status}");
    }
    let boundary = content_type
        .as_deref()
        .and_then(boundary_of)
        .context("no multipart boundary in the answer")?;
    let mut counter = PartCounter::new(&boundary);
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            bytes += data.len() as u64;
            counter.feed(data);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let parts = counter.parts();
    if let Some(expected) = expect_parts {
        if parts != expected {
            bail!("{parts} parts, {expected} expected");
        }
    }
    Ok(json!({
        "bytes": bytes,
        "parts": parts,
        "seconds": seconds,
        "headers_ms": headers_at.as_secs_f64() * 1000.0,
        "mb_per_second": bytes as f64 / 1e6 / seconds,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let b: BaseUrl = "https://127.0.0.1:8443/dicom-web/".parse().unwrap();
        assert!(b.tls);
        assert_eq!(b.authority, "127.0.0.1:8443");
        assert_eq!(b.host, "127.0.0.1");
        assert_eq!(b.prefix, "/dicom-web");
        let b: BaseUrl = "http://[::1]:80".parse().unwrap();
        assert!(!b.tls);
        assert_eq!(b.host, "::1");
        assert_eq!(b.prefix, "");
        for bad in ["ftp://x:1", "http://host", "https://h:port/x"] {
            assert!(bad.parse::<BaseUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parts_are_counted_across_chunk_borders() {
        let body = stow_body(&[Bytes::from_static(b"abc"), Bytes::from_static(b"--ward")]);
        for size in [1, 2, 3, 7, 64, body.len()] {
            let mut counter = PartCounter::new(STOW_BOUNDARY);
            for chunk in body.chunks(size) {
                counter.feed(chunk);
            }
            assert_eq!(counter.parts(), 2, "chunks of {size}");
        }
    }

    #[test]
    fn boundaries_and_encoding() {
        assert_eq!(
            boundary_of("multipart/related; type=\"application/dicom\"; boundary=\"a:b\"")
                .as_deref(),
            Some("a:b")
        );
        assert_eq!(boundary_of("application/json"), None);
        assert_eq!(encode_query_value("SMITH^J*"), "SMITH%5EJ%2A");
        assert_eq!(encode_query_value("20150101-20150131"), "20150101-20150131");
        assert_eq!(json_array_len(b"[{}, {\"a\": [1]}]").unwrap(), 2);
        assert_eq!(json_array_len(b"").unwrap(), 0);
    }
}
