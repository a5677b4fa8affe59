-- Ward index, first schema.
--
-- One row per patient, study, series and instance; each level points to its parent. Text values
-- are as ward-dicom decoded them to UTF-8; an absent attribute is NULL, except the patient
-- identity columns. Tables are STRICT so a value of the wrong type is refused, not coerced.

CREATE TABLE patient (
    id                   INTEGER PRIMARY KEY,
    -- Identity is (patient_id, issuer_of_patient_id). Absent values are stored as '' because
    -- NULLs never compare equal, so UNIQUE would not hold for them.
    patient_id           TEXT NOT NULL,
    issuer_of_patient_id TEXT NOT NULL,
    patient_name         TEXT,
    -- patient_name upper-cased in Rust (full Unicode; SQLite's upper() only folds ASCII), for
    -- case-insensitive matching. Queries must upper-case their values the same way.
    patient_name_upper   TEXT,
    patient_birth_date   TEXT,
    patient_sex          TEXT,
    UNIQUE (patient_id, issuer_of_patient_id)
) STRICT;
-- Lookups by patient_id alone use the UNIQUE index above (patient_id is its leading column).
CREATE INDEX patient_name_upper_idx ON patient (patient_name_upper);

CREATE TABLE study (
    id                       INTEGER PRIMARY KEY,
    patient_fk               INTEGER NOT NULL REFERENCES patient (id),
    study_instance_uid       TEXT NOT NULL UNIQUE,
    study_date               TEXT,
    study_time               TEXT,
    accession_number         TEXT,
    study_id                 TEXT,
    study_description        TEXT,
    referring_physician_name TEXT
) STRICT;
CREATE INDEX study_patient_fk_idx ON study (patient_fk);
CREATE INDEX study_date_idx ON study (study_date);
CREATE INDEX study_accession_number_idx ON study (accession_number);

CREATE TABLE series (
    id                  INTEGER PRIMARY KEY,
    study_fk            INTEGER NOT NULL REFERENCES study (id),
    series_instance_uid TEXT NOT NULL UNIQUE,
    modality            TEXT,
    series_number       TEXT,
    series_description  TEXT,
    series_date         TEXT,
    series_time         TEXT,
    body_part_examined  TEXT
) STRICT;
CREATE INDEX series_study_fk_idx ON series (study_fk);
CREATE INDEX series_modality_idx ON series (modality);

CREATE TABLE instance (
    id                     INTEGER PRIMARY KEY,
    series_fk              INTEGER NOT NULL REFERENCES series (id),
    sop_instance_uid       TEXT NOT NULL UNIQUE,
    sop_class_uid          TEXT NOT NULL,
    instance_number        TEXT,
    content_date           TEXT,
    content_time           TEXT,
    -- Rows and Columns (0028,0010/0011); named so to stay clear of SQL keywords.
    pixel_rows             INTEGER CHECK (pixel_rows BETWEEN 0 AND 65535),
    pixel_columns          INTEGER CHECK (pixel_columns BETWEEN 0 AND 65535),
    number_of_frames       TEXT,
    specific_character_set TEXT,
    transfer_syntax_uid    TEXT NOT NULL,
    size                   INTEGER NOT NULL CHECK (size >= 0),
    -- Lowercase hex SHA-256 of the stored object: its name in the blob store.
    blob_key               TEXT NOT NULL,
    source_ae              TEXT,
    -- Milliseconds since the Unix epoch.
    received_at            INTEGER NOT NULL
) STRICT;
CREATE INDEX instance_series_fk_idx ON instance (series_fk);
CREATE INDEX instance_blob_key_idx ON instance (blob_key);

-- Row counts kept in the insert transaction, because COUNT(*) reads a whole index and would
-- make the cost of a status query grow with the archive.
CREATE TABLE counts (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    patients  INTEGER NOT NULL,
    studies   INTEGER NOT NULL,
    series    INTEGER NOT NULL,
    instances INTEGER NOT NULL
) STRICT;
INSERT INTO counts (id, patients, studies, series, instances) VALUES (1, 0, 0, 0, 0);

-- Known peers. host is an IP address or CIDR network; allow a comma-separated operation list.
CREATE TABLE ae_peer (
    aet   TEXT PRIMARY KEY,
    host  TEXT NOT NULL,
    port  INTEGER CHECK (port BETWEEN 0 AND 65535),
    allow TEXT NOT NULL
) STRICT;
