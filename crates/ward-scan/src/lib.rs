//! `ward audit`: an exposure auditor for one's own DICOM and DICOMweb endpoints.
//!
//! It runs the checks an attacker runs (see `docs/audit-findings.md`), in the same order, against
//! the targets it is given and nothing else, at a bounded rate and with a timeout on every step.
//! Probing (`dimse`, `tls`, `web`) only gathers observations; `classify` turns observations
//! into findings with pure functions, so that the verdicts are unit-tested apart from the
//! network. Nothing a peer returns is kept beyond counts: matches are counted and dropped, so no
//! patient data reaches the report or the logs.

pub mod classify;
mod dimse;
mod pace;
pub mod report;
mod synthetic;
mod tls;
mod tls_legacy;
mod web;

use std::path::PathBuf;
use std::time::Duration;

pub use report::{Check, Finding, Report, Severity, TargetReport};

/// What to scan, parsed from `dicom://`, `dicom+tls://`, `http://` or `https://` URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Dicom,
    DicomTls,
    Http,
    Https,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Dicom => "dicom",
            Scheme::DicomTls => "dicom+tls",
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme.name(), self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme.name(), self.host, self.port)
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    /// `SCHEME://HOST:PORT`, the host a name, an IPv4 address or a bracketed IPv6 address. The
    /// port is required: the auditor scans what it is told, never a guessed port.
    fn from_str(s: &str) -> Result<Target, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s}: expected SCHEME://HOST:PORT"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "dicom" => Scheme::Dicom,
            "dicom+tls" => Scheme::DicomTls,
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => {
                return Err(format!(
                    "{s}: unknown scheme {other} (dicom, dicom+tls, http, https)"
                ));
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let bracketed = rest.starts_with('[');
        let (host, port) = if bracketed {
            rest[1..]
                .split_once("]:")
                .ok_or_else(|| format!("{s}: expected [IPV6]:PORT"))?
        } else {
            rest.rsplit_once(':')
                .ok_or_else(|| format!("{s}: a port is required"))?
        };
        // No user info, paths or unbracketed IPv6: the target is a host and a port, nothing more.
        if host.is_empty() || host.contains(['/', '@']) || (!bracketed && host.contains(':')) {
            return Err(format!("{s}: bad host"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{s}: bad port {port}"))?;
        Ok(Target {
            scheme,
            host: host.to_owned(),
            port,
        })
    }
}

impl Target {
    /// `host:port` for connecting.
    fn socket_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Also retrieve one instance a C-FIND listed, and try writing (C-STORE of a synthetic
    /// object and an overwrite of it; STOW-RS of one with an `MZ` preamble).
    pub intrusive: bool,
    /// AE titles to try besides the built-in list of well-known defaults.
    pub extra_titles: Vec<String>,
    /// At most this many associations or HTTP requests per second.
    pub rate: u32,
    /// Limit for each step: connecting, a handshake, each response.
    pub timeout: Duration,
    /// A client certificate chain and key (PEM) for `dicom+tls` and `https`.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// A CA certificate (PEM) to verify the server's certificate against.
    pub ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("{0}")]
    NotConfirmed(String),
    #[error("{0}")]
    Setup(String),
}

/// Scans one target. A failure of the scan itself (nothing listening, not the protocol
/// expected, unreadable certificate files) becomes a `scan-failed` finding.
pub async fn scan(target: &Target, options: &ScanOptions) -> TargetReport {
    let pacer = pace::Pacer::new(options.rate);
    let result = match target.scheme {
        Scheme::Dicom | Scheme::DicomTls => dimse::scan(target, options, &pacer).await,
        Scheme::Http | Scheme::Https => web::scan(target, options, &pacer).await,
    };
    match result {
        Ok(findings) => TargetReport::new(target.to_string(), findings),
        Err(e) => TargetReport::failed(target.to_string(), &e.to_string()),
    }
}

/// Scans every target in turn.
pub async fn scan_all(targets: &[Target], options: &ScanOptions) -> Report {
    let mut reports = Vec::with_capacity(targets.len());
    for target in targets {
        reports.push(scan(target, options).await);
    }
    Report { targets: reports }
}

/// Reads an AE title list: one title a line, `#` comments and blank lines ignored, titles
/// longer than 16 characters or with a backslash or control character refused.
pub fn parse_title_list(text: &str) -> Result<Vec<String>, String> {
    let mut titles = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let title = line.split('#').next().unwrap_or_default().trim();
        if title.is_empty() {
            continue;
        }
        if title.len() > 16
            || title
                .chars()
                .any(|c| c == '\\' || c.is_control() || !c.is_ascii())
        {
            return Err(format!("line {}: not an AE title: {title:?}", n + 1));
        }
        titles.push(title.to_owned());
    }
    Ok(titles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t: Target = "dicom://127.0.0.1:11112".parse().unwrap();
        assert_eq!(t.scheme, Scheme::Dicom);
        assert_eq!(t.socket_addr(), "127.0.0.1:11112");
        let t: Target = "dicom+tls://[::1]:2762".parse().unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.socket_addr(), "[::1]:2762");
        assert_eq!(t.to_string(), "dicom+tls://[::1]:2762");
        let t: Target = "HTTPS://pacs.example:443/".parse().unwrap();
        assert_eq!(t.scheme, Scheme::Https);
        for bad in [
            "127.0.0.1:104",
            "ftp://h:1",
            "dicom://h",
            "dicom://h:0",
            "dicom://h:99999",
            "dicom://:104",
            "http://u@h:80",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }

    #[test]
    fn title_lists_parse() {
        let list = parse_title_list("# site titles\nCT1\n  MR_2  # the MR\n\n").unwrap();
        assert_eq!(list, ["CT1", "MR_2"]);
        assert!(parse_title_list("A_TITLE_THAT_IS_TOO_LONG").is_err());
        assert!(parse_title_list("A\\B").is_err());
    }
}
