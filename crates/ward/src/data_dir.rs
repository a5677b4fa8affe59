//! The data directory's layout: where the configuration, index, blobs and spool live.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ward_auth::pki::{self, Credentials};
use ward_config::Config;
use ward_index::{Durability, Index, SqliteIndex};
use ward_ingest::{Ingest, IngestLimits};
use ward_store::{BlobKey, Keyring, LocalBlobStore, Rotation, StoreError};

const INDEX_FILE: &str = "index.sqlite";
/// Keys and certificates, owner-only.
const KEYS_DIR: &str = "keys";
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server-key.pem";
/// The master keys that wrap every blob's data key (see `ward_store::Keyring`).
const MASTER_KEYS: &str = "master-keys";
/// Ed25519 key (PKCS#8) that signs the audit trail's checkpoints.
const AUDIT_KEY: &str = "audit-signing.pk8";
/// The audit trail.
const AUDIT_DIR: &str = "audit";
const SPOOL_DIR: &str = "spool";
/// Present while a server runs; finding it at start means the last run did not stop cleanly.
const RUNNING_FILE: &str = "ward.pid";

pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Creates a new data directory: configuration, index, blob store, and a private CA with
    /// a server certificate for `host_names`. Refuses to touch one that already holds anything.
    pub async fn init(root: &Path, host_names: &[String]) -> Result<DataDir> {
        if root.exists() {
            let mut entries =
                fs::read_dir(root).with_context(|| format!("cannot read {}", root.display()))?;
            if entries.next().is_some() {
                bail!(
                    "{} already exists and is not empty; Ward will not overwrite it",
                    root.display()
                );
            }
        }
        create_private_dir(root)?;
        create_private_dir(&root.join(SPOOL_DIR))?;
        create_private_dir(&root.join(KEYS_DIR))?;
        let installation = host_names
            .first()
            .map(String::as_str)
            .unwrap_or("localhost");
        let ca = pki::generate_ca(installation).context("cannot create the CA")?;
        let server = pki::issue_server_cert(&ca, host_names)
            .context("cannot create the server certificate")?;
        let keys = root.join(KEYS_DIR);
        write_private_file(&keys.join(CA_CERT), ca.cert_pem.as_bytes())?;
        write_private_file(&keys.join(CA_KEY), ca.key_pem.as_bytes())?;
        write_private_file(&keys.join(SERVER_CERT), server.cert_pem.as_bytes())?;
        write_private_file(&keys.join(SERVER_KEY), server.key_pem.as_bytes())?;
        let audit_key =
            ward_audit::generate_signing_key().context("cannot create the audit signing key")?;
        write_private_file(&keys.join(AUDIT_KEY), &audit_key)?;
        let keyring = Keyring::generate().context("cannot create the master key")?;
        keyring
            .save(&keys.join(MASTER_KEYS))
            .context("cannot save the master key")?;
        write_private_file(
            &root.join(ward_config::CONFIG_FILE),
            Config::default().to_toml().as_bytes(),
        )?;
        LocalBlobStore::open(root, Arc::new(keyring)).context("cannot create the blob store")?;
        let dir = DataDir {
            root: root.to_owned(),
        };
        let index = SqliteIndex::open(&root.join(INDEX_FILE), true)
            .await
            .context("cannot create the index")?;
        index.close().await;
        Ok(dir)
    }

    /// Opens an existing data directory.
    pub fn open(root: &Path) -> Result<DataDir> {
        if !root.join(ward_config::CONFIG_FILE).is_file() {
            bail!(
                "{} is not a Ward data directory (no {}); run `ward init --data {}` first",
                root.display(),
                ward_config::CONFIG_FILE,
                root.display()
            );
        }
        Ok(DataDir {
            root: root.to_owned(),
        })
    }

    /// The index, for administrative commands: every commit durable when it returns.
    pub async fn index(&self) -> Result<Arc<SqliteIndex>> {
        self.open_index(Durability::Full).await
    }

    /// The index, for the server: ingest commits are recoverable from the blobs, which are
    /// fsynced before them, so they need not wait for their own fsync (see `Durability`).
    pub async fn server_index(&self) -> Result<Arc<SqliteIndex>> {
        self.open_index(Durability::RecoverableFromBlobs).await
    }

    async fn open_index(&self, durability: Durability) -> Result<Arc<SqliteIndex>> {
        let index = SqliteIndex::open_with(&self.root.join(INDEX_FILE), false, durability)
            .await
            .with_context(|| format!("cannot open the index in {}", self.root.display()))?;
        Ok(Arc::new(index))
    }

    /// Opens the audit trail for appending (one writer at a time: the server, or a command run
    /// while no server is).
    pub async fn audit_log(&self) -> Result<Arc<ward_audit::AuditLog>> {
        let key = self.audit_key()?;
        ward_audit::AuditLog::open(&self.root.join(AUDIT_DIR), &key)
            .await
            .with_context(|| format!("cannot open the audit trail in {}", self.root.display()))
    }

    /// The audit trail's directory, for reading and verification.
    pub fn audit_dir(&self) -> PathBuf {
        self.root.join(AUDIT_DIR)
    }

    /// The public half of the checkpoint signing key.
    pub fn audit_public_key(&self) -> Result<Vec<u8>> {
        ward_audit::public_key_from_pkcs8(&self.audit_key()?)
            .context("the audit signing key is unusable")
    }

    fn audit_key(&self) -> Result<Vec<u8>> {
        let path = self.root.join(KEYS_DIR).join(AUDIT_KEY);
        fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    }

    /// The blob store, sealing new blobs under the active master key.
    pub fn blob_store(&self) -> Result<LocalBlobStore> {
        let path = self.root.join(KEYS_DIR).join(MASTER_KEYS);
        if !path.exists() {
            bail!(
                "{} is missing: without it no stored object can be read (restore it from a \
                 backup; data directories made before encryption at rest need `ward init` anew)",
                path.display()
            );
        }
        let keyring = Keyring::load(&path)?;
        LocalBlobStore::open(&self.root, Arc::new(keyring)).context("cannot open the blob store")
    }

    /// Rotates the master key (see `ward_store::rotate_master_key`). No server may run on the
    /// data directory meanwhile.
    pub async fn rotate_master_key(
        &self,
        on_problem: impl FnMut(&BlobKey, &StoreError),
    ) -> Result<Rotation> {
        let path = self.root.join(KEYS_DIR).join(MASTER_KEYS);
        Ok(ward_store::rotate_master_key(&self.root, &path, on_problem).await?)
    }

    pub fn ingest(
        &self,
        index: Arc<dyn Index>,
        audit: Arc<ward_audit::AuditLog>,
        config: &Config,
    ) -> Result<Ingest> {
        let store = self.blob_store()?;
        let limits = IngestLimits {
            max_object_bytes: config.storage.max_object_bytes,
            ..IngestLimits::default()
        };
        Ok(Ingest::new(
            Arc::new(store),
            index,
            audit,
            self.root.join(SPOOL_DIR),
            limits,
        ))
    }

    /// Ward's CA (certificate and key).
    pub fn ca(&self) -> Result<Credentials> {
        self.credentials(CA_CERT, CA_KEY)
    }

    /// The server certificate and key of the TLS listeners.
    pub fn server_credentials(&self) -> Result<Credentials> {
        self.credentials(SERVER_CERT, SERVER_KEY)
    }

    fn credentials(&self, cert: &str, key: &str) -> Result<Credentials> {
        let keys = self.root.join(KEYS_DIR);
        let read = |name: &str| {
            fs::read_to_string(keys.join(name)).with_context(|| {
                format!(
                    "cannot read {} (data directories made before TLS support need `ward init` anew)",
                    keys.join(name).display()
                )
            })
        };
        Ok(Credentials {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }

    /// The process id of a server running on this data directory, if one is: its pid file is
    /// present and names a live process. (A pid file left by a crash names a dead one, or,
    /// rarely, a reused pid: then this errs on the side of "running".)
    pub fn running_server(&self) -> Option<u32> {
        let text = fs::read_to_string(self.root.join(RUNNING_FILE)).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        Path::new("/proc")
            .join(pid.to_string())
            .exists()
            .then_some(pid)
    }

    /// Records that a server is running, and reports whether the previous one stopped
    /// without clearing its record (killed, crashed, power lost).
    pub fn mark_running(&self) -> Result<Running> {
        let path = self.root.join(RUNNING_FILE);
        let was_unclean = path.exists();
        write_private_file(&path, format!("{}\n", std::process::id()).as_bytes())?;
        // The marker is what makes the next start run a full recovery after a power cut: its
        // directory entry must be on stable storage before any object is acknowledged.
        fs::File::open(&self.root)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot sync {}", self.root.display()))?;
        Ok(Running { path, was_unclean })
    }
}

pub struct Running {
    path: PathBuf,
    pub was_unclean: bool,
}

impl Running {
    /// Called after a graceful stop.
    pub fn clear(self) -> Result<()> {
        fs::remove_file(&self.path)
            .with_context(|| format!("cannot remove {}", self.path.display()))
    }
}

pub fn create_private_dir(path: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}
