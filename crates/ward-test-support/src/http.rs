//! A deliberately small HTTP/1.1 client over TLS for the web front door's tests: it writes
//! exactly the bytes a test asks for (hostile requests included) and reads the whole answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A response as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            )
        })
    }
}

/// A TLS connection to Ward's HTTPS port, trusting only the CA in `ca_pem`.
pub struct Client {
    port: u16,
    config: Arc<rustls::ClientConfig>,
}

impl Client {
    pub fn new(port: u16, ca_pem: &Path) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_pem).expect("CA file readable") {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Client {
            port,
            config: Arc::new(config),
        }
    }

    /// Sends `method path` with `headers` and `body` (a Content-Length is added unless one is
    /// among the headers), and reads the response until the server closes.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n",
            self.port
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut wire = head.into_bytes();
        wire.extend_from_slice(body);
        self.raw(&wire)
    }

    /// GET with a bearer token (none when `token` is empty).
    pub fn get(&self, path: &str, token: &str, accept: &str) -> Response {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Accept", accept)];
        if !token.is_empty() {
            headers.push(("Authorization", auth.as_str()));
        }
        self.send("GET", path, &headers, b"")
    }

    /// Writes `wire` as is and reads the response.
    pub fn raw(&self, wire: &[u8]) -> Response {
        let name = ServerName::try_from("localhost").expect("valid name");
        let conn = rustls::ClientConnection::new(Arc::clone(&self.config), name).expect("TLS");
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(60))).ok();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        // A server may answer (and close) before reading a whole oversized body, as browsers
        // and curl notice: write in chunks and stop as soon as an answer has arrived, before
        // the connection's reset can discard it.
        for chunk in wire.chunks(16 * 1024) {
            if tls.write_all(chunk).and_then(|()| tls.flush()).is_err() || answered(&mut tls) {
                break;
            }
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            match tls.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        parse(&out)
    }
}

/// Whether the server has sent anything yet, without waiting for it.
fn answered(tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> bool {
    if tls.sock.set_nonblocking(true).is_err() {
        return false;
    }
    let got = match tls.conn.read_tls(&mut tls.sock) {
        Ok(0) => true,
        Ok(_) => tls
            .conn
            .process_new_packets()
            .is_ok_and(|s| s.plaintext_bytes_to_read() > 0),
        Err(_) => false,
    };
    let _ = tls.sock.set_nonblocking(false);
    got
}

/// Status 0 stands for "the server closed the connection without answering".
fn parse(bytes: &[u8]) -> Response {
    let Some(split) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Response {
            status: 0,
            headers: Vec::new(),
            body: bytes.to_vec(),
        };
    };
    let head = String::from_utf8_lossy(&bytes[..split]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let raw_body = &bytes[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(raw_body)
    } else {
        raw_body.to_vec()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = bytes.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&bytes[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        bytes = &bytes[eol + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&bytes[..size.min(bytes.len())]);
        bytes = &bytes[(size + 2).min(bytes.len())..];
    }
    out
}

/// Splits a `multipart/related` body into its parts' bodies, given the response's Content-Type.
pub fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<Vec<u8>> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .expect("boundary")
        .trim_matches('"');
    let delimiter = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut positions = Vec::new();
    let mut i = 0;
    while let Some(p) = body[i..]
        .windows(delimiter.len())
        .position(|w| w == delimiter.as_slice())
    {
        positions.push(i + p);
        i += p + delimiter.len();
    }
    for pair in positions.windows(2) {
        let part = &body[pair[0] + delimiter.len()..pair[1]];
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let start = part
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(0, |p| p + 4);
        parts.push(part[start..].to_vec());
    }
    parts
}
