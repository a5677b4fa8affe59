//! Ward's configuration: `ward.toml` in the data directory, strict and versioned, plus the few
//! environment overrides Ward honours. This is the only crate that reads the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ward_types::AeTitle;

/// The configuration format this build reads and writes.
pub const CONFIG_VERSION: u32 = 1;
/// Name of the configuration file inside the data directory.
pub const CONFIG_FILE: &str = "ward.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid Ward configuration: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{path} has version {found}; this build of Ward reads version {CONFIG_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("invalid value in {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// The whole configuration. Unknown keys anywhere are an error: a misspelt security setting must
/// never be silently ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    #[serde(default)]
    pub dicom: DicomConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub query: QueryConfig,
    #[serde(default)]
    pub security: SecurityConfig,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub audit: AuditConfig,
}

/// What happens to the audit trail beyond the data directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Export every record as a DICOM audit message over syslog on TLS (RFC 5425).
    pub syslog: Option<SyslogConfig>,
}

/// A syslog collector reached over TLS. Paths are absolute or relative to the data directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` of the collector (6514 is the registered port).
    pub address: String,
    /// The CA certificates (PEM) the collector's certificate must chain to.
    pub ca_file: PathBuf,
    /// The name the collector's certificate must carry; the host of `address` by default.
    #[serde(default)]
    pub server_name: Option<String>,
    /// A client certificate and key (PEM), for collectors that authenticate their senders.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

/// The web front door: DICOMweb and the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// HTTPS listener, with the server certificate from `ward init`.
    pub listen: SocketAddr,
    /// A plain HTTP listener, off unless set, and only ever on a loopback address.
    pub plain_listen: Option<SocketAddr>,
    /// Lifetime of the bearer token `POST /auth/token` issues.
    pub session_ttl_secs: u64,
    /// Largest request body (a STOW-RS upload), in bytes.
    pub max_body_bytes: u64,
    /// Most parts one multipart request may hold.
    pub max_parts: u32,
    /// How long one request may take, body included.
    pub request_timeout_secs: u64,
    /// Origins allowed to call the API from a browser; none unless listed.
    pub cors_allowed_origins: Vec<String>,
    /// The URL clients reach Ward at (`https://pacs.example.org`), when a reverse proxy stands
    /// in front of it; absolute URIs in responses (bulk data) start with it.
    pub public_url: Option<String>,
    /// Failed logins from one address, or for one user name, within the window that block it.
    pub failed_logins_threshold: u32,
    pub failed_login_window_secs: u64,
    pub login_backoff_secs: u64,
    pub max_login_backoff_secs: u64,
    /// OAuth2/OIDC bearer tokens (IHE IUA), accepted when configured.
    pub oidc: Option<OidcConfig>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            plain_listen: None,
            session_ttl_secs: 900,
            max_body_bytes: 4 << 30,
            max_parts: 10_000,
            request_timeout_secs: 600,
            cors_allowed_origins: Vec::new(),
            public_url: None,
            failed_logins_threshold: 5,
            failed_login_window_secs: 300,
            login_backoff_secs: 60,
            max_login_backoff_secs: 3600,
            oidc: None,
        }
    }
}

/// A trusted OAuth2/OIDC issuer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The `iss` claim tokens must carry.
    pub issuer: String,
    /// The `aud` claim tokens must carry (Ward's identifier at the issuer).
    pub audience: String,
    /// The issuer's JSON Web Key Set, as a file (absolute, or relative to the data directory).
    pub jwks_file: PathBuf,
    /// The claim naming the Ward role (administrator, clinician, modality, auditor).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
}

fn default_role_claim() -> String {
    "ward_role".into()
}

/// Back-off after failed associations (unknown titles, wrong certificates, wrong addresses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Failures from one source address, or for one AE title, within the window that block it.
    pub failed_associations_threshold: u32,
    pub failure_window_secs: u64,
    /// The first block; each further one doubles, up to the maximum.
    pub backoff_secs: u64,
    pub max_backoff_secs: u64,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            failed_associations_threshold: 10,
            failure_window_secs: 60,
            backoff_secs: 30,
            max_backoff_secs: 900,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DicomConfig {
    /// Ward's own AE title; associations calling any other title are rejected.
    pub ae_title: AeTitle,
    /// Plain DIMSE listener. Loopback until an administrator decides otherwise.
    pub listen: SocketAddr,
    /// DIMSE over TLS (client certificates required; PS3.15 BCP 195 profile).
    pub tls_listen: SocketAddr,
    /// Serve plain DIMSE beyond loopback to peers other than declared legacy modalities'
    /// addresses. Off: a non-loopback plain listener needs at least one `--legacy-plain` peer.
    /// Every start with this on is warned about and recorded in the audit trail.
    pub dangerous_allow_plain_dimse_beyond_loopback: bool,
    /// Associations served at once; the next one is rejected as transient (local limit).
    pub max_associations: usize,
    /// Largest P-DATA-TF PDU Ward accepts and advertises (bytes, at least 65536).
    pub max_pdu_length: u32,
    /// How long a connection may take to send its A-ASSOCIATE-RQ (ARTIM timer, PS3.8 §9.1.5).
    pub artim_timeout_secs: u64,
    /// How long an established association may stay silent before it is aborted.
    pub idle_timeout_secs: u64,
    /// How long Ward waits to connect to a C-MOVE destination.
    pub connect_timeout_secs: u64,
}

impl Default for DicomConfig {
    fn default() -> Self {
        DicomConfig {
            ae_title: AeTitle::parse("WARD").unwrap_or_else(|_| unreachable!("constant is valid")),
            listen: SocketAddr::from(([127, 0, 0, 1], 11112)),
            tls_listen: SocketAddr::from(([127, 0, 0, 1], 2762)),
            dangerous_allow_plain_dimse_beyond_loopback: false,
            max_associations: 64,
            max_pdu_length: 256 * 1024,
            artim_timeout_secs: 10,
            idle_timeout_secs: 120,
            connect_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Largest object accepted, in bytes (the spool refuses more with "out of resources").
    pub max_object_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            max_object_bytes: 4 << 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Matches one query returns at most; the final status says when there were more.
    pub max_matches: u32,
    /// Instances one C-GET or C-MOVE retrieves at most.
    pub max_retrieve_instances: u32,
    /// Whether person names match case-insensitively (PS3.4 C.2.2.2.1 leaves it to the SCP).
    pub pn_case_insensitive: bool,
    /// Matches one identity (calling AE title) may receive per hour, all queries together.
    pub max_matches_per_hour: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            max_matches: 1000,
            max_retrieve_instances: 100_000,
            pn_case_insensitive: true,
            max_matches_per_hour: 20_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: CONFIG_VERSION,
            dicom: DicomConfig::default(),
            storage: StorageConfig::default(),
            query: QueryConfig::default(),
            security: SecurityConfig::default(),
            web: WebConfig::default(),
            audit: AuditConfig::default(),
        }
    }
}

impl Config {
    /// Reads and checks `DATA/ward.toml`.
    pub fn load(data_dir: &Path) -> Result<Config, ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Config::parse(&text, &path)
    }

    /// Parses configuration text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        // Read the version on its own first, so an old or future file gets a version error
        // rather than a confusing complaint about some key.
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let parse_err = |source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        };
        let v: VersionOnly = toml::from_str(text).map_err(parse_err)?;
        if v.version != CONFIG_VERSION {
            return Err(ConfigError::Version {
                path: path.to_owned(),
                found: v.version,
            });
        }
        let config: Config = toml::from_str(text).map_err(parse_err)?;
        config.validate()?;
        Ok(config)
    }

    /// The file written by `ward init`: every setting spelled out with its default.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|_| unreachable!("plain data serialises"))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dicom.max_pdu_length < 65536 {
            return Err(ConfigError::Invalid {
                key: "dicom.max_pdu_length",
                reason: "must be at least 65536".into(),
            });
        }
        if self.dicom.max_associations == 0 {
            return Err(ConfigError::Invalid {
                key: "dicom.max_associations",
                reason: "must be at least 1".into(),
            });
        }
        if self.query.max_matches == 0 || self.query.max_retrieve_instances == 0 {
            return Err(ConfigError::Invalid {
                key: "query limits",
                reason: "must be at least 1".into(),
            });
        }
        if self.dicom.artim_timeout_secs == 0
            || self.dicom.idle_timeout_secs == 0
            || self.dicom.connect_timeout_secs == 0
        {
            return Err(ConfigError::Invalid {
                key: "dicom timeouts",
                reason: "must be at least one second".into(),
            });
        }
        if self.web.plain_listen.is_some_and(|a| !a.ip().is_loopback()) {
            return Err(ConfigError::Invalid {
                key: "web.plain_listen",
                reason: "plain HTTP is only served on a loopback address".into(),
            });
        }
        if self.web.session_ttl_secs == 0 || self.web.request_timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "web timeouts",
                reason: "must be at least one second".into(),
            });
        }
        Ok(())
    }

    /// Applies the environment overrides Ward honours (`WARD_DICOM_LISTEN`,
    /// `WARD_DICOM_TLS_LISTEN`, `WARD_AE_TITLE`).
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        if let Ok(listen) = std::env::var("WARD_DICOM_LISTEN") {
            self.dicom.listen = listen.parse().map_err(|e| ConfigError::Invalid {
                key: "WARD_DICOM_LISTEN",
                reason: format!("{e}"),
            })?;
        }
        if let Ok(listen) = std::env::var("WARD_DICOM_TLS_LISTEN") {
            self.dicom.tls_listen = listen.parse().map_err(|e| ConfigError::Invalid {
                key: "WARD_DICOM_TLS_LISTEN",
                reason: format!("{e}"),
            })?;
        }
        if let Ok(aet) = std::env::var("WARD_AE_TITLE") {
            self.dicom.ae_title = AeTitle::parse(&aet).map_err(|e| ConfigError::Invalid {
                key: "WARD_AE_TITLE",
                reason: e.to_string(),
            })?;
        }
        self.validate()
    }
}

/// The login name of whoever runs an administrative command (`USER`), for the audit trail.
pub fn invoking_user() -> Option<String> {
    std::env::var("USER").ok().filter(|u| !u.is_empty())
}

/// The log filter requested through `WARD_LOG` (tracing-subscriber `EnvFilter` syntax).
pub fn log_filter_from_env() -> Option<String> {
    std::env::var("WARD_LOG").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips() {
        let c = Config::default();
        let text = c.to_toml();
        assert_eq!(Config::parse(&text, Path::new("x")).unwrap(), c);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = Config::parse("version = 1\n[dicom]\nae_tilte = \"X\"\n", Path::new("x"));
        assert!(matches!(err, Err(ConfigError::Parse { .. })), "{err:?}");
        let err = Config::parse("version = 1\nfoo = 2\n", Path::new("x"));
        assert!(matches!(err, Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn version_is_checked() {
        let err = Config::parse("version = 2\n", Path::new("x"));
        assert!(matches!(err, Err(ConfigError::Version { found: 2, .. })));
        assert!(Config::parse("[dicom]\n", Path::new("x")).is_err());
    }

    #[test]
    fn invalid_values_are_errors() {
        let err = Config::parse(
            "version = 1\n[dicom]\nmax_pdu_length = 100\n",
            Path::new("x"),
        );
        assert!(matches!(err, Err(ConfigError::Invalid { .. })));
        let err = Config::parse(
            "version = 1\n[dicom]\nae_title = \"A\\\\B\"\n",
            Path::new("x"),
        );
        assert!(err.is_err());
    }

    #[test]
    fn partial_file_takes_defaults() {
        let c = Config::parse(
            "version = 1\n[dicom]\nae_title = \"PACS1\"\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(c.dicom.ae_title.as_str(), "PACS1");
        assert_eq!(c.dicom.listen, DicomConfig::default().listen);
        assert_eq!(c.storage, StorageConfig::default());
    }
}
