-- Study summaries kept in the insert transaction, like `counts`: NumberOfStudyRelatedSeries,
-- NumberOfStudyRelatedInstances and ModalitiesInStudy are asked by every study browser for
-- every match, and computing them per match read the study's series rows and its instances'
-- index entries, which made a study-level answer cost far more per match than its own row.
--
-- modalities holds group_concat(DISTINCT modality) over the study's series (comma-separated,
-- unordered, NULL when no series has one), exactly what the query used to compute; the query
-- engine sorts and re-joins it with backslashes as before.

ALTER TABLE study ADD COLUMN series_count INTEGER NOT NULL DEFAULT 0 CHECK (series_count >= 0);
ALTER TABLE study ADD COLUMN instance_count INTEGER NOT NULL DEFAULT 0 CHECK (instance_count >= 0);
ALTER TABLE study ADD COLUMN modalities TEXT;

-- Backfill for rows indexed before this migration.
UPDATE study SET
    series_count = (SELECT COUNT(*) FROM series s WHERE s.study_fk = study.id),
    instance_count = (SELECT COUNT(*) FROM series s JOIN instance i ON i.series_fk = s.id
                      WHERE s.study_fk = study.id),
    modalities = (SELECT group_concat(DISTINCT s.modality) FROM series s
                  WHERE s.study_fk = study.id);
