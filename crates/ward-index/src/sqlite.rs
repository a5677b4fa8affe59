//! The SQLite implementation of [`Index`].
//!
//! Concurrency: SQLite allows one writer at a time. A reader transaction that later tries to
//! write can fail with `SQLITE_BUSY` at once (no waiting helps: it would need the snapshot it
//! already holds to be current), so writes never run on reader connections. All writes go
//! through one dedicated connection and start with `BEGIN IMMEDIATE`, which takes the write lock
//! up front and waits for it under the busy timeout (this also serialises writers in other
//! processes, such as the CLI); reads use a separate pool of `query_only` connections that WAL
//! lets run alongside the writer.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use dicom_core::VR;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use ward_query::{MatchRow, Query, QueryOptions};
use ward_types::{AePeer, AeTitle, HostPattern, IdentityMode, OperationSet, Role, Uid, UserName};

use crate::{
    ApiTokenRecord, Counts, Index, IndexError, InsertOutcome, InstanceRow, NewInstance, UserRecord,
    plan,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for a lock held by another connection or process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Concurrent read connections. Reads are short indexed lookups; this bounds file handles and
/// page caches, not throughput.
const MAX_READERS: u32 = 8;

/// Page cache of each read connection, in KiB (SQLite's negative `cache_size`): 16 MiB
/// instead of SQLite's 2 MiB. An answer of hundreds of studies reads each one's study and
/// patient rows, scattered over the index file; with the default cache most of those pages
/// came back through a system call (`pread`) per page. Grows only as pages are read: at most
/// `MAX_READERS` × this.
const READER_CACHE: &str = "-16384";

const FILE_MODE: u32 = 0o600;

/// The columns of [`InstanceRow`], in the order [`instance_row`] reads them.
macro_rules! instance_columns {
    () => {
        "i.sop_instance_uid, i.sop_class_uid, st.study_instance_uid, \
         se.series_instance_uid, i.transfer_syntax_uid, i.size, i.blob_key"
    };
}

macro_rules! instance_select {
    () => {
        concat!(
            "SELECT ",
            instance_columns!(),
            " FROM instance i \
             JOIN series se ON se.id = i.series_fk \
             JOIN study st ON st.id = se.study_fk "
        )
    };
}

const INSTANCE_BY_UID: &str = concat!(instance_select!(), "WHERE i.sop_instance_uid = $1");
/// '' sorts before every UID, so the first page needs no separate statement.
const INSTANCES_PAGE: &str = concat!(
    instance_select!(),
    "WHERE i.sop_instance_uid > $1 ORDER BY i.sop_instance_uid LIMIT $2"
);
const HAS_BLOB: &str = "SELECT 1 FROM instance WHERE blob_key = $1 LIMIT 1";
const AE_GET: &str = "SELECT aet, host, port, allow, cert_sha256, legacy_plain, identity \
     FROM ae_peer WHERE aet = $1";
const AE_LIST: &str = "SELECT aet, host, port, allow, cert_sha256, legacy_plain, identity \
     FROM ae_peer ORDER BY aet";

/// How a committed transaction survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is on stable storage when it returns (`synchronous=FULL`): one more fsync
    /// per commit. For administrative changes, which nothing else could restore.
    Full,
    /// Commits survive a crash of the process (the WAL is in the kernel's cache) but the last
    /// ones may be lost to a power cut (`synchronous=NORMAL`: the WAL is synced at checkpoints).
    /// For the server's ingest path, whose rows recovery rebuilds from the fsynced blobs after
    /// an unclean stop (`ward_ingest::Ingest::recover`).
    RecoverableFromBlobs,
}

/// The index in one SQLite database file.
pub struct SqliteIndex {
    writer: SqlitePool,
    readers: SqlitePool,
}

impl SqliteIndex {
    /// Opens (creating it if `create`) the database file with mode `0600`, in WAL mode with
    /// `synchronous=FULL` (a commit is on stable storage when it returns), foreign keys on and a
    /// busy timeout, and brings its schema up to date.
    pub async fn open(path: &Path, create: bool) -> Result<Self, IndexError> {
        Self::open_with(path, create, Durability::Full).await
    }

    /// Same as [`open`](Self::open), with the commit durability chosen by the caller.
    pub async fn open_with(
        path: &Path,
        create: bool,
        durability: Durability,
    ) -> Result<Self, IndexError> {
        prepare_file(path, create).await?;
        let synchronous = match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::RecoverableFromBlobs => SqliteSynchronous::Normal,
        };

        let base = SqliteConnectOptions::new()
            .filename(path)
            // prepare_file made the file; if it vanished since, failing beats creating it with
            // the process umask.
            .create_if_missing(false)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(synchronous);

        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone().journal_mode(SqliteJournalMode::Wal))
            .await?;
        MIGRATOR.run(&writer).await?;

        let readers = SqlitePoolOptions::new()
            .max_connections(MAX_READERS)
            .connect_with(
                base.pragma("query_only", "ON")
                    .pragma("cache_size", READER_CACHE),
            )
            .await?;

        Ok(SqliteIndex { writer, readers })
    }

    /// Closes all connections, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.readers.close().await;
        // Last, so the final connection to close can checkpoint the WAL into the main file.
        self.writer.close().await;
    }

    /// Indexes a batch of instances in one write transaction, each exactly as
    /// [`Index::insert_instance`] would, with one commit for the batch instead of one per
    /// instance: for loading many rows at once, such as benchmark corpora. (Ingest commits each
    /// object on its own, because each is acknowledged on its own.) The outcomes are in batch
    /// order; any error rolls the whole batch back.
    pub async fn bulk_insert(
        &self,
        batch: &[NewInstance],
    ) -> Result<Vec<InsertOutcome>, IndexError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for new in batch {
            outcomes.push(insert_one(&mut tx, new).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

/// Creates the database file owner-only, or narrows an existing one (and its WAL and
/// shared-memory files, which SQLite creates with the main file's mode) to owner-only.
async fn prepare_file(path: &Path, create: bool) -> Result<(), IndexError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| IndexError::Io { path, source }
    };
    match tokio::fs::metadata(path).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !create {
                return Err(IndexError::NotFound(path.to_owned()));
            }
            // An empty file is a valid, empty SQLite database; creating it here is what lets
            // us choose its mode.
            match tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(path)
                .await
            {
                Ok(file) => file.sync_all().await.map_err(io_err(path))?,
                // Created by someone else in between: treat it like any existing file.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(path)(e)),
            }
        }
        Err(e) => return Err(io_err(path)(e)),
    }

    for file in [
        path.to_owned(),
        sibling(path, "-wal"),
        sibling(path, "-shm"),
    ] {
        let mode = match tokio::fs::metadata(&file).await {
            Ok(meta) => meta.permissions().mode() & 0o777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&file)(e)),
        };
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %file.display(),
                mode = format_args!("{mode:o}"),
                "index file was accessible to group or others; restricting it to its owner"
            );
            tokio::fs::set_permissions(&file, std::fs::Permissions::from_mode(FILE_MODE))
                .await
                .map_err(io_err(&file))?;
        }
    }
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn uid_column(row: &SqliteRow, index: usize, what: &'static str) -> Result<Uid, IndexError> {
    let raw: String = row.try_get(index)?;
    Uid::parse(&raw).map_err(|_| IndexError::Corrupt(what))
}

fn instance_row(row: &SqliteRow) -> Result<InstanceRow, IndexError> {
    let size: i64 = row.try_get(5)?;
    Ok(InstanceRow {
        sop_instance_uid: uid_column(row, 0, "instance.sop_instance_uid")?,
        sop_class_uid: uid_column(row, 1, "instance.sop_class_uid")?,
        study_instance_uid: uid_column(row, 2, "study.study_instance_uid")?,
        series_instance_uid: uid_column(row, 3, "series.series_instance_uid")?,
        transfer_syntax: uid_column(row, 4, "instance.transfer_syntax_uid")?,
        size: u64::try_from(size).map_err(|_| IndexError::Corrupt("instance.size"))?,
        blob_key: row.try_get(6)?,
    })
}

/// Runs an `INSERT … ON CONFLICT DO NOTHING`: one autocommit statement, which takes the write
/// lock directly; nothing inserted means the key was taken.
async fn insert_new<'q>(
    insert: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    writer: &SqlitePool,
) -> Result<(), IndexError> {
    if insert.execute(writer).await?.rows_affected() == 0 {
        return Err(IndexError::AlreadyExists);
    }
    Ok(())
}

const USER_GET: &str = "SELECT name, role, password_hash, created_at FROM app_user WHERE name = $1";
const USER_LIST: &str = "SELECT name, role, password_hash, created_at FROM app_user ORDER BY name";

const TOKEN_COLUMNS: &str =
    "SELECT name, role, token_hash, created_at, expires_at, revoked_at FROM api_token";

fn token_row(row: &SqliteRow) -> Result<ApiTokenRecord, IndexError> {
    let name: String = row.try_get(0)?;
    let role: String = row.try_get(1)?;
    Ok(ApiTokenRecord {
        name: UserName::parse(&name).map_err(|_| IndexError::Corrupt("api_token.name"))?,
        role: Role::from_str(&role).map_err(|_| IndexError::Corrupt("api_token.role"))?,
        token_hash: row.try_get(2)?,
        created_at_unix_ms: row.try_get(3)?,
        expires_at_unix_ms: row.try_get(4)?,
        revoked_at_unix_ms: row.try_get(5)?,
    })
}

fn user_row(row: &SqliteRow) -> Result<UserRecord, IndexError> {
    let name: String = row.try_get(0)?;
    let role: String = row.try_get(1)?;
    Ok(UserRecord {
        name: UserName::parse(&name).map_err(|_| IndexError::Corrupt("app_user.name"))?,
        role: Role::from_str(&role).map_err(|_| IndexError::Corrupt("app_user.role"))?,
        password_hash: row.try_get(2)?,
        created_at_unix_ms: row.try_get(3)?,
    })
}

fn ae_peer_row(row: &SqliteRow) -> Result<AePeer, IndexError> {
    let aet: String = row.try_get(0)?;
    let host: String = row.try_get(1)?;
    let port: Option<i64> = row.try_get(2)?;
    let allow: String = row.try_get(3)?;
    let cert: Option<String> = row.try_get(4)?;
    let legacy_plain: i64 = row.try_get(5)?;
    let identity: String = row.try_get(6)?;
    let cert_sha256 = cert
        .map(|hex_digest| {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hex_digest, &mut digest)
                .map(|()| digest)
                .map_err(|_| IndexError::Corrupt("ae_peer.cert_sha256"))
        })
        .transpose()?;
    Ok(AePeer {
        aet: AeTitle::parse(&aet).map_err(|_| IndexError::Corrupt("ae_peer.aet"))?,
        host: HostPattern::from_str(&host).map_err(|_| IndexError::Corrupt("ae_peer.host"))?,
        port: port
            .map(u16::try_from)
            .transpose()
            .map_err(|_| IndexError::Corrupt("ae_peer.port"))?,
        allow: OperationSet::from_str(&allow).map_err(|_| IndexError::Corrupt("ae_peer.allow"))?,
        cert_sha256,
        legacy_plain: legacy_plain != 0,
        identity: IdentityMode::from_str(&identity)
            .map_err(|_| IndexError::Corrupt("ae_peer.identity"))?,
    })
}

/// The sortable form of a DA or TM value for its `*_key` column.
fn sortable(vr: VR, value: Option<&str>) -> Option<String> {
    value.and_then(|v| ward_query::sortable(vr, v))
}

fn required<'a>(value: Option<&'a Uid>, name: &'static str) -> Result<&'a Uid, IndexError> {
    value.ok_or(IndexError::MissingAttribute(name))
}

/// Indexes one instance, creating its patient, study and series rows as needed, inside the
/// caller's write transaction (which must hold the write lock: `BEGIN IMMEDIATE`). Writes
/// nothing unless the outcome is [`InsertOutcome::Inserted`]. The counts row and the study's
/// summary columns follow by trigger (migration 0007).
async fn insert_one(
    conn: &mut SqliteConnection,
    new: &NewInstance,
) -> Result<InsertOutcome, IndexError> {
    let a = &new.attrs;
    let sop_uid = required(a.sop_instance_uid.as_ref(), "SOPInstanceUID")?;
    let class_uid = required(a.sop_class_uid.as_ref(), "SOPClassUID")?;
    let study_uid = required(a.study_instance_uid.as_ref(), "StudyInstanceUID")?;
    let series_uid = required(a.series_instance_uid.as_ref(), "SeriesInstanceUID")?;
    let size = i64::try_from(new.size).map_err(|_| IndexError::OutOfRange("size"))?;

    let found = probe(&mut *conn, sop_uid, study_uid, series_uid).await?;
    if let Some(existing) = found.blob_key {
        let outcome = if existing == new.blob_key {
            InsertOutcome::AlreadyStored
        } else {
            InsertOutcome::Conflict {
                existing_blob_key: existing,
            }
        };
        return Ok(outcome);
    }

    let study_fk = match found.study {
        Some(id) => id,
        None => create_study(&mut *conn, new, study_uid).await?,
    };
    let series_fk = match found.series {
        Some((id, owner)) if owner == study_fk => id,
        // Filing the instance under the other study would make its own StudyInstanceUID lie.
        Some(_) => return Err(IndexError::SeriesInOtherStudy),
        None => create_series(&mut *conn, new, study_fk, series_uid).await?,
    };

    sqlx::query(
        "INSERT INTO instance (series_fk, sop_instance_uid, sop_class_uid, instance_number, \
         content_date, content_date_key, content_time, content_time_key, pixel_rows, \
         pixel_columns, number_of_frames, specific_character_set, transfer_syntax_uid, \
         size, blob_key, source_ae, received_at, header) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
         $17, $18)",
    )
    .bind(series_fk)
    .bind(sop_uid.as_str())
    .bind(class_uid.as_str())
    .bind(a.instance_number.as_deref())
    .bind(a.content_date.as_deref())
    .bind(sortable(VR::DA, a.content_date.as_deref()))
    .bind(a.content_time.as_deref())
    .bind(sortable(VR::TM, a.content_time.as_deref()))
    .bind(a.rows.map(i64::from))
    .bind(a.columns.map(i64::from))
    .bind(a.number_of_frames.as_deref())
    .bind(a.specific_character_set.as_deref())
    .bind(new.transfer_syntax.as_str())
    .bind(size)
    .bind(new.blob_key.as_str())
    .bind(new.source_ae.as_deref())
    .bind(new.received_at_unix_ms)
    .bind((!new.header.is_empty()).then_some(new.header.as_slice()))
    .execute(&mut *conn)
    .await?;
    Ok(InsertOutcome::Inserted)
}

/// What the index has already of a new instance's hierarchy.
struct Found {
    /// The instance's blob key, if it is indexed.
    blob_key: Option<String>,
    study: Option<i64>,
    /// The series id and the study it belongs to.
    series: Option<(i64, i64)>,
}

/// Looks up the instance, its study and its series in one statement: each statement is a
/// hand-over to the connection's thread and back, and the sender of the object waits for them.
async fn probe(
    conn: &mut SqliteConnection,
    sop_uid: &Uid,
    study_uid: &Uid,
    series_uid: &Uid,
) -> Result<Found, IndexError> {
    let (blob_key, study, series, series_study): (
        Option<String>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    ) = sqlx::query_as(
        "SELECT (SELECT blob_key FROM instance WHERE sop_instance_uid = $1), \
                (SELECT id FROM study WHERE study_instance_uid = $2), \
                (SELECT id FROM series WHERE series_instance_uid = $3), \
                (SELECT study_fk FROM series WHERE series_instance_uid = $3)",
    )
    .bind(sop_uid.as_str())
    .bind(study_uid.as_str())
    .bind(series_uid.as_str())
    .fetch_one(conn)
    .await?;
    Ok(Found {
        blob_key,
        study,
        series: series.zip(series_study),
    })
}

/// Creates the new instance's study row (and its patient's, if new).
async fn create_study(
    conn: &mut SqliteConnection,
    new: &NewInstance,
    study_uid: &Uid,
) -> Result<i64, IndexError> {
    let a = &new.attrs;
    let patient_id = a.patient_id.as_deref().unwrap_or("");
    let issuer = a.issuer_of_patient_id.as_deref().unwrap_or("");
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM patient WHERE patient_id = $1 AND issuer_of_patient_id = $2",
    )
    .bind(patient_id)
    .bind(issuer)
    .fetch_optional(&mut *conn)
    .await?;
    let patient_fk = match found {
        Some(id) => id,
        None => {
            sqlx::query_scalar(
                "INSERT INTO patient (patient_id, issuer_of_patient_id, patient_name, \
                 patient_name_upper, patient_birth_date, patient_birth_date_key, patient_sex) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(patient_id)
            .bind(issuer)
            .bind(a.patient_name.as_deref())
            .bind(a.patient_name.as_deref().map(str::to_uppercase))
            .bind(a.patient_birth_date.as_deref())
            .bind(sortable(VR::DA, a.patient_birth_date.as_deref()))
            .bind(a.patient_sex.as_deref())
            .fetch_one(&mut *conn)
            .await?
        }
    };

    let study_fk = sqlx::query_scalar(
        "INSERT INTO study (patient_fk, study_instance_uid, study_date, study_date_key, \
         study_time, study_time_key, accession_number, study_id, study_description, \
         referring_physician_name, referring_physician_name_upper) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(patient_fk)
    .bind(study_uid.as_str())
    .bind(a.study_date.as_deref())
    .bind(sortable(VR::DA, a.study_date.as_deref()))
    .bind(a.study_time.as_deref())
    .bind(sortable(VR::TM, a.study_time.as_deref()))
    .bind(a.accession_number.as_deref())
    .bind(a.study_id.as_deref())
    .bind(a.study_description.as_deref())
    .bind(a.referring_physician_name.as_deref())
    .bind(a.referring_physician_name.as_deref().map(str::to_uppercase))
    .fetch_one(&mut *conn)
    .await?;
    Ok(study_fk)
}

/// Creates the new instance's series row.
async fn create_series(
    conn: &mut SqliteConnection,
    new: &NewInstance,
    study_fk: i64,
    series_uid: &Uid,
) -> Result<i64, IndexError> {
    let a = &new.attrs;
    Ok(sqlx::query_scalar(
        "INSERT INTO series (study_fk, series_instance_uid, modality, series_number, \
         series_description, series_date, series_date_key, series_time, \
         series_time_key, body_part_examined) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(study_fk)
    .bind(series_uid.as_str())
    .bind(a.modality.as_deref())
    .bind(a.series_number.as_deref())
    .bind(a.series_description.as_deref())
    .bind(a.series_date.as_deref())
    .bind(sortable(VR::DA, a.series_date.as_deref()))
    .bind(a.series_time.as_deref())
    .bind(sortable(VR::TM, a.series_time.as_deref()))
    .bind(a.body_part_examined.as_deref())
    .fetch_one(conn)
    .await?)
}

fn count_column(row: &SqliteRow, index: usize, what: &'static str) -> Result<u64, IndexError> {
    let n: i64 = row.try_get(index)?;
    u64::try_from(n).map_err(|_| IndexError::Corrupt(what))
}

#[async_trait::async_trait]
impl Index for SqliteIndex {
    async fn insert_instance(&self, new: &NewInstance) -> Result<InsertOutcome, IndexError> {
        // Holding the write lock from here to commit makes the existence check and the inserts
        // one atomic step: no other writer, in this process or another, can slip in between.
        // The UNIQUE constraint on sop_instance_uid stays as the backstop. On any early return
        // the dropped transaction rolls back, so nothing is written.
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let outcome = insert_one(&mut tx, new).await?;
        if outcome != InsertOutcome::Inserted {
            tx.rollback().await?;
            return Ok(outcome);
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn instance(&self, sop_instance_uid: &Uid) -> Result<Option<InstanceRow>, IndexError> {
        sqlx::query(INSTANCE_BY_UID)
            .bind(sop_instance_uid.as_str())
            .fetch_optional(&self.readers)
            .await?
            .as_ref()
            .map(instance_row)
            .transpose()
    }

    async fn has_blob(&self, blob_key: &str) -> Result<bool, IndexError> {
        Ok(sqlx::query(HAS_BLOB)
            .bind(blob_key)
            .fetch_optional(&self.readers)
            .await?
            .is_some())
    }

    async fn instances_page(
        &self,
        after: Option<&Uid>,
        limit: u32,
    ) -> Result<Vec<InstanceRow>, IndexError> {
        sqlx::query(INSTANCES_PAGE)
            .bind(after.map_or("", Uid::as_str))
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await?
            .iter()
            .map(instance_row)
            .collect()
    }

    async fn find(
        &self,
        query: &Query,
        options: &QueryOptions,
        limit: u32,
    ) -> Result<Vec<MatchRow>, IndexError> {
        find::find(&self.readers, &plan::plan(query, options), options, limit).await
    }

    async fn retrieve_instances(
        &self,
        query: &Query,
        limit: u32,
    ) -> Result<Vec<InstanceRow>, IndexError> {
        ward_query::check_retrieve(query)?;
        let plan = plan::plan(query, &QueryOptions::default());
        find::retrieve(&self.readers, &plan, limit).await
    }

    async fn counts(&self) -> Result<Counts, IndexError> {
        let row = sqlx::query("SELECT patients, studies, series, instances FROM counts")
            .fetch_optional(&self.readers)
            .await?
            .ok_or(IndexError::Corrupt("counts"))?;
        Ok(Counts {
            patients: count_column(&row, 0, "counts.patients")?,
            studies: count_column(&row, 1, "counts.studies")?,
            series: count_column(&row, 2, "counts.series")?,
            instances: count_column(&row, 3, "counts.instances")?,
        })
    }

    async fn ae_get(&self, aet: &AeTitle) -> Result<Option<AePeer>, IndexError> {
        sqlx::query(AE_GET)
            .bind(aet.as_str())
            .fetch_optional(&self.readers)
            .await?
            .as_ref()
            .map(ae_peer_row)
            .transpose()
    }

    async fn ae_add(&self, peer: &AePeer) -> Result<(), IndexError> {
        let insert = sqlx::query(
            "INSERT INTO ae_peer (aet, host, port, allow, cert_sha256, legacy_plain, identity) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (aet) DO NOTHING",
        )
        .bind(peer.aet.as_str())
        .bind(peer.host.to_string())
        .bind(peer.port.map(i64::from))
        .bind(peer.allow.to_string())
        .bind(peer.cert_sha256.map(hex::encode))
        .bind(i64::from(peer.legacy_plain))
        .bind(peer.identity.name());
        insert_new(insert, &self.writer).await
    }

    async fn ae_list(&self) -> Result<Vec<AePeer>, IndexError> {
        sqlx::query(AE_LIST)
            .fetch_all(&self.readers)
            .await?
            .iter()
            .map(ae_peer_row)
            .collect()
    }

    async fn user_add(&self, user: &UserRecord) -> Result<(), IndexError> {
        let insert = sqlx::query(
            "INSERT INTO app_user (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(user.name.as_str())
        .bind(user.role.name())
        .bind(&user.password_hash)
        .bind(user.created_at_unix_ms);
        insert_new(insert, &self.writer).await
    }

    async fn user_get(&self, name: &UserName) -> Result<Option<UserRecord>, IndexError> {
        sqlx::query(USER_GET)
            .bind(name.as_str())
            .fetch_optional(&self.readers)
            .await?
            .as_ref()
            .map(user_row)
            .transpose()
    }

    async fn user_list(&self) -> Result<Vec<UserRecord>, IndexError> {
        sqlx::query(USER_LIST)
            .fetch_all(&self.readers)
            .await?
            .iter()
            .map(user_row)
            .collect()
    }

    async fn user_remove(&self, name: &UserName) -> Result<bool, IndexError> {
        let removed = sqlx::query("DELETE FROM app_user WHERE name = $1")
            .bind(name.as_str())
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(removed > 0)
    }

    async fn token_add(&self, token: &ApiTokenRecord) -> Result<(), IndexError> {
        let insert = sqlx::query(
            "INSERT INTO api_token (name, role, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(token.name.as_str())
        .bind(token.role.name())
        .bind(&token.token_hash)
        .bind(token.created_at_unix_ms)
        .bind(token.expires_at_unix_ms);
        insert_new(insert, &self.writer).await
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiTokenRecord>, IndexError> {
        sqlx::query(&format!("{TOKEN_COLUMNS} WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(&self.readers)
            .await?
            .as_ref()
            .map(token_row)
            .transpose()
    }

    async fn token_list(&self) -> Result<Vec<ApiTokenRecord>, IndexError> {
        sqlx::query(&format!("{TOKEN_COLUMNS} ORDER BY name"))
            .fetch_all(&self.readers)
            .await?
            .iter()
            .map(token_row)
            .collect()
    }

    async fn token_revoke(&self, name: &UserName, at_unix_ms: i64) -> Result<bool, IndexError> {
        let revoked = sqlx::query(
            "UPDATE api_token SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
        )
        .bind(name.as_str())
        .bind(at_unix_ms)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(revoked > 0)
    }

    async fn ae_remove(&self, aet: &AeTitle) -> Result<bool, IndexError> {
        let removed = sqlx::query("DELETE FROM ae_peer WHERE aet = $1")
            .bind(aet.as_str())
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(removed > 0)
    }
}

pub(crate) mod find;
#[cfg(test)]
mod query_tests;
#[cfg(test)]
mod tests;
