-- The counts row and the study summary columns (0006) kept by triggers instead of by
-- statements the writer sends after each insert. The rules are the same; what changes is
-- where they run: inside SQLite, in the insert's own statement, instead of as separate
-- statements, each of which is a hand-over to the connection's thread and back. Ingest commits
-- every object on its own and the sender waits for that commit, so those round trips were
-- part of every C-STORE's answer time.

CREATE TRIGGER patient_counted AFTER INSERT ON patient
BEGIN
    UPDATE counts SET patients = patients + 1 WHERE id = 1;
END;

CREATE TRIGGER study_counted AFTER INSERT ON study
BEGIN
    UPDATE counts SET studies = studies + 1 WHERE id = 1;
END;

-- A new series may bring a modality: the list is recomputed from the study's series, as the
-- column was defined.
CREATE TRIGGER series_counted AFTER INSERT ON series
BEGIN
    UPDATE counts SET series = series + 1 WHERE id = 1;
    UPDATE study SET
        series_count = series_count + 1,
        modalities = (SELECT group_concat(DISTINCT s.modality) FROM series s
                      WHERE s.study_fk = NEW.study_fk)
    WHERE id = NEW.study_fk;
END;

CREATE TRIGGER instance_counted AFTER INSERT ON instance
BEGIN
    UPDATE counts SET instances = instances + 1 WHERE id = 1;
    UPDATE study SET instance_count = instance_count + 1
    WHERE id = (SELECT study_fk FROM series WHERE id = NEW.series_fk);
END;
