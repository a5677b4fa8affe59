-- Ward index, second schema: what the query engine needs.
--
-- *_key columns hold the sortable form of a DA or TM column (ward_query::sortable): DA as
-- YYYYMMDD, TM as HHMMSS.FFFFFF with missing parts zero-filled, so that range matching is a
-- string comparison an index can serve. NULL when the value is absent or not a valid date or
-- time. Ward fills them in Rust on insert; the UPDATEs below compute the same forms for rows
-- indexed before this migration.

ALTER TABLE patient ADD COLUMN patient_birth_date_key TEXT;
ALTER TABLE study ADD COLUMN study_date_key TEXT;
ALTER TABLE study ADD COLUMN study_time_key TEXT;
-- ReferringPhysicianName upper-cased in Rust, like patient_name_upper, for case-insensitive PN
-- matching. Rows from before this migration get SQLite's upper(), which folds ASCII only.
ALTER TABLE study ADD COLUMN referring_physician_name_upper TEXT;
ALTER TABLE series ADD COLUMN series_date_key TEXT;
ALTER TABLE series ADD COLUMN series_time_key TEXT;
ALTER TABLE instance ADD COLUMN content_date_key TEXT;
ALTER TABLE instance ADD COLUMN content_time_key TEXT;
-- The instance's header copy (ward_dicom::read_header_with_copy): explicit VR little endian,
-- UTF-8, elements before Pixel Data, capped at 64 KiB. Queries on attributes without a column
-- match and answer from it. NULL for instances indexed before this migration.
ALTER TABLE instance ADD COLUMN header BLOB;

-- Study date ranges are the most common query; the raw column's index is no longer used.
DROP INDEX study_date_idx;
CREATE INDEX study_date_key_idx ON study (study_date_key);
CREATE INDEX patient_birth_date_key_idx ON patient (patient_birth_date_key);

-- Backfill. DA: eight digits, or the pre-1993 YYYY.MM.DD.
UPDATE patient SET patient_birth_date_key = (
    SELECT CASE WHEN length(d) = 8 AND d NOT GLOB '*[^0-9]*' THEN d END
    FROM (SELECT CASE WHEN length(patient_birth_date) = 10
                       AND substr(patient_birth_date, 5, 1) = '.'
                      THEN replace(patient_birth_date, '.', '')
                      ELSE patient_birth_date END AS d));
UPDATE study SET study_date_key = (
    SELECT CASE WHEN length(d) = 8 AND d NOT GLOB '*[^0-9]*' THEN d END
    FROM (SELECT CASE WHEN length(study_date) = 10 AND substr(study_date, 5, 1) = '.'
                      THEN replace(study_date, '.', '') ELSE study_date END AS d));
UPDATE series SET series_date_key = (
    SELECT CASE WHEN length(d) = 8 AND d NOT GLOB '*[^0-9]*' THEN d END
    FROM (SELECT CASE WHEN length(series_date) = 10 AND substr(series_date, 5, 1) = '.'
                      THEN replace(series_date, '.', '') ELSE series_date END AS d));
UPDATE instance SET content_date_key = (
    SELECT CASE WHEN length(d) = 8 AND d NOT GLOB '*[^0-9]*' THEN d END
    FROM (SELECT CASE WHEN length(content_date) = 10 AND substr(content_date, 5, 1) = '.'
                      THEN replace(content_date, '.', '') ELSE content_date END AS d));

-- TM: colons removed; HH, HHMM or HHMMSS digits; a fraction of 1 to 6 digits only after
-- HHMMSS. hms is the part before the first '.', frac the part after it (NULL without one).
UPDATE study SET study_time_key = (
    SELECT CASE WHEN hms NOT GLOB '*[^0-9]*' AND length(hms) IN (2, 4, 6)
                 AND (frac IS NULL OR (length(hms) = 6 AND length(frac) BETWEEN 1 AND 6
                                       AND frac NOT GLOB '*[^0-9]*'))
                THEN substr(hms || '0000', 1, 6) || '.' || substr(coalesce(frac, '') || '000000', 1, 6)
           END
    FROM (SELECT CASE WHEN instr(t, '.') > 0 THEN substr(t, 1, instr(t, '.') - 1) ELSE t END AS hms,
                 CASE WHEN instr(t, '.') > 0 THEN substr(t, instr(t, '.') + 1) END AS frac
          FROM (SELECT replace(study_time, ':', '') AS t)));
UPDATE series SET series_time_key = (
    SELECT CASE WHEN hms NOT GLOB '*[^0-9]*' AND length(hms) IN (2, 4, 6)
                 AND (frac IS NULL OR (length(hms) = 6 AND length(frac) BETWEEN 1 AND 6
                                       AND frac NOT GLOB '*[^0-9]*'))
                THEN substr(hms || '0000', 1, 6) || '.' || substr(coalesce(frac, '') || '000000', 1, 6)
           END
    FROM (SELECT CASE WHEN instr(t, '.') > 0 THEN substr(t, 1, instr(t, '.') - 1) ELSE t END AS hms,
                 CASE WHEN instr(t, '.') > 0 THEN substr(t, instr(t, '.') + 1) END AS frac
          FROM (SELECT replace(series_time, ':', '') AS t)));
UPDATE instance SET content_time_key = (
    SELECT CASE WHEN hms NOT GLOB '*[^0-9]*' AND length(hms) IN (2, 4, 6)
                 AND (frac IS NULL OR (length(hms) = 6 AND length(frac) BETWEEN 1 AND 6
                                       AND frac NOT GLOB '*[^0-9]*'))
                THEN substr(hms || '0000', 1, 6) || '.' || substr(coalesce(frac, '') || '000000', 1, 6)
           END
    FROM (SELECT CASE WHEN instr(t, '.') > 0 THEN substr(t, 1, instr(t, '.') - 1) ELSE t END AS hms,
                 CASE WHEN instr(t, '.') > 0 THEN substr(t, instr(t, '.') + 1) END AS frac
          FROM (SELECT replace(content_time, ':', '') AS t)));

UPDATE study SET referring_physician_name_upper = upper(referring_physician_name);
