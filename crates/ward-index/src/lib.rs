//! The index: what Ward knows about every stored instance, and the registry of known peers.
//!
//! This is the only crate that speaks SQL. Callers see the [`Index`] trait; [`SqliteIndex`] is
//! its SQLite implementation (a PostgreSQL one can implement the same trait). Values read back
//! from the database are validated again (UIDs, AE titles, sizes), so a damaged or hand-edited
//! database yields [`IndexError::Corrupt`], never a panic or an invalid value.
//!
//! It also executes queries parsed by `ward-query` ([`Index::find`],
//! [`Index::retrieve_instances`]): `plan` splits a query between conditions on columns and keys
//! left to Rust, the backend renders and runs the conditions.

use std::path::PathBuf;

use ward_query::{MatchRow, Query, QueryError, QueryOptions};
use ward_types::{AePeer, AeTitle, InstanceAttributes, Uid};

mod plan;
mod sqlite;

pub use sqlite::find::MAX_HEADER_CANDIDATES;
pub use sqlite::{Durability, SqliteIndex};

/// Why an index operation failed. Messages carry column and attribute names, never values, so
/// they can be logged without leaking PHI.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("instance lacks the required attribute {0}")]
    MissingAttribute(&'static str),
    #[error("AE title is already registered")]
    AlreadyExists,
    #[error("series is already indexed under a different study")]
    SeriesInOtherStudy,
    #[error("{0} is too large for the index")]
    OutOfRange(&'static str),
    #[error("index holds an invalid value in {0}")]
    Corrupt(&'static str),
    #[error("index database {} does not exist", .0.display())]
    NotFound(PathBuf),
    #[error("cannot prepare index file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("index database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("index schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("query refused: {0}")]
    Query(#[from] QueryError),
    #[error(
        "query too broad: its keys without an index column would be checked on more than \
         {max_candidates} candidates"
    )]
    TooBroad { max_candidates: u64 },
}

/// An instance to index, as ingest hands it over once the blob is stored.
#[derive(Debug, Clone)]
pub struct NewInstance {
    pub attrs: InstanceAttributes,
    /// The header copy `ward_dicom::read_header_with_copy` made, for matching and answering
    /// query keys that have no column. Empty when there is none.
    pub header: Vec<u8>,
    pub transfer_syntax: Uid,
    pub size: u64,
    /// Lowercase hex SHA-256 of the stored object.
    pub blob_key: String,
    pub source_ae: Option<String>,
    pub received_at_unix_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// Same SOP Instance UID and same blob key: the object was already stored.
    AlreadyStored,
    /// Same SOP Instance UID, different content: nothing was written.
    Conflict {
        existing_blob_key: String,
    },
}

/// One indexed instance, with the UIDs of its study and series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub sop_instance_uid: Uid,
    pub sop_class_uid: Uid,
    pub study_instance_uid: Uid,
    pub series_instance_uid: Uid,
    pub transfer_syntax: Uid,
    pub size: u64,
    pub blob_key: String,
}

/// A local user: name, role and the Argon2id hash of the password (PHC string format).
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: ward_types::UserName,
    pub role: ward_types::Role,
    pub password_hash: String,
    pub created_at_unix_ms: i64,
}

impl std::fmt::Debug for UserRecord {
    // The hash is a secret too: it never reaches a log through a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// An API token for a machine on the web front door. Only the SHA-256 of the token is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    pub name: ward_types::UserName,
    pub role: ward_types::Role,
    /// Lowercase hex SHA-256 of the token.
    pub token_hash: String,
    pub created_at_unix_ms: i64,
    pub expires_at_unix_ms: Option<i64>,
    pub revoked_at_unix_ms: Option<i64>,
}

impl std::fmt::Debug for ApiTokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTokenRecord")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("expires_at_unix_ms", &self.expires_at_unix_ms)
            .field("revoked_at_unix_ms", &self.revoked_at_unix_ms)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub patients: u64,
    pub studies: u64,
    pub series: u64,
    pub instances: u64,
}

/// The index, shared as `Arc<dyn Index>`.
#[async_trait::async_trait]
pub trait Index: Send + Sync + 'static {
    /// Inserts patient, study and series rows as needed and the instance row, in one
    /// transaction, durable on return.
    ///
    /// Requires `attrs.sop_instance_uid`, `sop_class_uid`, `study_instance_uid` and
    /// `series_instance_uid` ([`IndexError::MissingAttribute`] otherwise). Patient identity is
    /// (patient_id, issuer_of_patient_id), an absent value counting as the empty string. Study,
    /// series and patient attributes come from the first instance that created the row. A series
    /// already indexed under another study is refused ([`IndexError::SeriesInOtherStudy`]).
    /// The study's summary (its series and instance counts and modalities, which answer the
    /// study-level computed attributes of [`find`](Index::find)) is updated in the same
    /// transaction.
    ///
    /// Race-safe: of concurrent inserts of one SOP Instance UID exactly one is `Inserted`; the
    /// others are `AlreadyStored` or `Conflict`.
    async fn insert_instance(&self, new: &NewInstance) -> Result<InsertOutcome, IndexError>;
    async fn instance(&self, sop_instance_uid: &Uid) -> Result<Option<InstanceRow>, IndexError>;
    /// Whether any instance refers to this blob.
    async fn has_blob(&self, blob_key: &str) -> Result<bool, IndexError>;
    /// Instances in SOP Instance UID order after `after` (from the start when `None`), at most
    /// `limit` of them, for recovery and verification scans in bounded memory.
    async fn instances_page(
        &self,
        after: Option<&Uid>,
        limit: u32,
    ) -> Result<Vec<InstanceRow>, IndexError>;
    async fn counts(&self) -> Result<Counts, IndexError>;

    /// Matches at `query.level`, at most `limit` rows (ask for limit + 1 to learn whether the
    /// answer was cut), in no particular order. Rows carry the values of the requested keys
    /// the index has columns for (attributes of the query level and above), the requested
    /// computed attributes (NumberOfPatientRelatedStudies/Series/Instances,
    /// NumberOfStudyRelatedSeries/Instances, NumberOfSeriesRelatedInstances,
    /// ModalitiesInStudy, SOPClassesInStudy) and, only when some requested key has no column,
    /// the header copy of one representative instance of the entity (pre-scanned).
    ///
    /// Keys with a column are conditions the database answers through its indexes. Keys
    /// without one are matched in Rust against the representative instance's header copy of
    /// each candidate the other keys let through, so their cost is the size of that narrowed
    /// candidate set: past [`MAX_HEADER_CANDIDATES`] candidates the query fails with
    /// [`IndexError::TooBroad`].
    async fn find(
        &self,
        query: &Query,
        options: &QueryOptions,
        limit: u32,
    ) -> Result<Vec<MatchRow>, IndexError>;

    /// The instances a C-GET or C-MOVE identifier designates (every instance under the matched
    /// entities), at most `limit`. The identifier must designate them by a unique key
    /// ([`ward_query::check_retrieve`], else [`IndexError::Query`]). Keys without a column are
    /// checked on each instance's own header copy, PN values case-insensitively.
    async fn retrieve_instances(
        &self,
        query: &Query,
        limit: u32,
    ) -> Result<Vec<InstanceRow>, IndexError>;

    // AE registry: the table of known peers, read fresh on every association so changes need no
    // restart.
    async fn ae_get(&self, aet: &AeTitle) -> Result<Option<AePeer>, IndexError>;
    /// Adds a peer; [`IndexError::AlreadyExists`] if the title is registered.
    async fn ae_add(&self, peer: &AePeer) -> Result<(), IndexError>;
    /// All peers, ordered by AE title.
    async fn ae_list(&self) -> Result<Vec<AePeer>, IndexError>;
    /// Removes a peer; whether it was registered.
    async fn ae_remove(&self, aet: &AeTitle) -> Result<bool, IndexError>;
    /// Adds a local user; [`IndexError::AlreadyExists`] if the name is taken.
    async fn user_add(&self, user: &UserRecord) -> Result<(), IndexError>;
    async fn user_get(&self, name: &ward_types::UserName)
    -> Result<Option<UserRecord>, IndexError>;
    async fn user_list(&self) -> Result<Vec<UserRecord>, IndexError>;
    /// Removes a user; whether it existed.
    async fn user_remove(&self, name: &ward_types::UserName) -> Result<bool, IndexError>;
    /// Adds an API token; [`IndexError::AlreadyExists`] if the name is taken.
    async fn token_add(&self, token: &ApiTokenRecord) -> Result<(), IndexError>;
    /// The token with this hash, revoked or expired ones included (the caller decides).
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiTokenRecord>, IndexError>;
    /// All tokens, ordered by name.
    async fn token_list(&self) -> Result<Vec<ApiTokenRecord>, IndexError>;
    /// Marks a token revoked at `at_unix_ms`; whether an unrevoked token of that name existed.
    async fn token_revoke(
        &self,
        name: &ward_types::UserName,
        at_unix_ms: i64,
    ) -> Result<bool, IndexError>;
}
