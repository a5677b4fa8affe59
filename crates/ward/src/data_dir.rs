//! The data directory's layout: where the configuration, index, blobs and spool live.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ward_config::Config;
use ward_index::{Durability, Index, SqliteIndex};
use ward_ingest::{Ingest, IngestLimits};
use ward_store::LocalBlobStore;

const INDEX_FILE: &str = "index.sqlite";
const SPOOL_DIR: &str = "spool";
/// Present while a server runs; finding it at start means the last run did not stop cleanly.
const RUNNING_FILE: &str = "ward.pid";

pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Creates a new data directory. Refuses to touch one that already holds anything.
    pub async fn init(root: &Path) -> Result<DataDir> {
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
        write_private_file(
            &root.join(ward_config::CONFIG_FILE),
            Config::default().to_toml().as_bytes(),
        )?;
        LocalBlobStore::open(root).context("cannot create the blob store")?;
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

    pub fn ingest(&self, index: Arc<dyn Index>, config: &Config) -> Result<Ingest> {
        let store = LocalBlobStore::open(&self.root).context("cannot open the blob store")?;
        let limits = IngestLimits {
            max_object_bytes: config.storage.max_object_bytes,
            ..IngestLimits::default()
        };
        Ok(Ingest::new(
            Arc::new(store),
            index,
            self.root.join(SPOOL_DIR),
            limits,
        ))
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

fn create_private_dir(path: &Path) -> Result<()> {
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

fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
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
