"""Ingest: de-identification into the repository, QC, clinical data and annotations.

The privacy test reads every byte the repository stored (database file, content store,
quarantine) and searches it for each original identifier.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import SecondaryCaptureImageStorage
from sqlalchemy import func, select

from voxelwise.cli.main import main
from voxelwise.deid import pixel_data_sha256, verify_no_phi
from voxelwise.errors import InputError
from voxelwise.imaging import Volume, read_dicom_series, write_dicom_series, write_nifti
from voxelwise.ingest.annotations import import_fiducials, import_label_map
from voxelwise.ingest.clinical import import_clinical
from voxelwise.ingest.pipeline import ingest_folder
from voxelwise.ingest.review import decide, list_series
from voxelwise.store import (
    Annotation,
    Base,
    ClinicalRecord,
    Instance,
    Repository,
    Series,
    summary,
)

PATIENTS = {
    "MRN-0042": {"PatientName": "Kowalski^Anna", "PatientBirthDate": "19510312",
                 "AccessionNumber": "ACC77120", "ReferringPhysicianName": "Okafor^Chidi",
                 "InstitutionName": "Hospital Santa Lucia", "StudyDate": "20240105",
                 "PatientSex": "F", "PatientAge": "072Y"},
    "MRN-0043": {"PatientName": "Lindqvist^Erik", "PatientBirthDate": "19640921",
                 "AccessionNumber": "ACC77133", "ReferringPhysicianName": "Okafor^Chidi",
                 "InstitutionName": "Hospital Santa Lucia", "StudyDate": "20240107",
                 "PatientSex": "M", "PatientAge": "059Y"},
}


def _head(shape=(12, 40, 40), seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    array = np.full(shape, -1000, np.int16)
    array[:, 6:34, 6:34] = 1000
    array[:, 8:32, 8:32] = (35 + rng.normal(0, 3, (shape[0], 24, 24))).astype(np.int16)
    return Volume(array, (5.0, 0.5, 0.5), (-10.0, -10.0, -30.0))


def _write_site(root: Path) -> dict[str, list[str]]:
    """Two patients (one with a follow-up) and a junk file; returns identifiers and UIDs."""
    uids: dict[str, list[str]] = {"series": [], "study": []}
    for number, (patient_id, attributes) in enumerate(PATIENTS.items()):
        for followup in range(2 if number == 0 else 1):
            attrs = {**attributes, "PatientID": patient_id}
            if followup:
                attrs.update(StudyDate="20240109", AccessionNumber=attributes["AccessionNumber"]
                             + "F")
            folder = root / patient_id / f"study{followup}"
            files = write_dicom_series(_head(seed=number * 10 + followup), folder, attrs)
            dataset = pydicom.dcmread(files[0], stop_before_pixels=True)
            uids["series"].append(str(dataset.SeriesInstanceUID))
            uids["study"].append(str(dataset.StudyInstanceUID))
    (root / "notes.txt").write_text("not an image")
    return uids


def _identifiers(uids: dict[str, list[str]]) -> list[str]:
    values = [patient_id for patient_id in PATIENTS]
    for attributes in PATIENTS.values():
        values += [attributes[k] for k in ("PatientName", "PatientBirthDate", "AccessionNumber",
                                           "ReferringPhysicianName", "InstitutionName")]
    return values + uids["series"] + uids["study"]


def _every_stored_byte(root: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file())


def _database_dump(repository: Repository) -> bytes:
    """Every row of every table, as text (a PostgreSQL database lives outside the folder)."""
    rows = []
    with repository.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows += [list(map(str, row)) for row in connection.execute(table.select())]
    return json.dumps(rows).encode()


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    source = tmp_path / "site"
    return source, _write_site(source)


def test_ingest_stores_no_identifier_anywhere(repository: Repository, site) -> None:
    source, uids = site
    report = ingest_folder(source, repository, "C01", progress=False)
    counts = report.counts()
    assert counts["series_stored"] == 3 and counts["instances_stored"] == 36
    assert report.skipped_files[0]["kind"] == "not-dicom"
    assert "notes.txt" in report.skipped_files[0]["file"]
    with repository.session() as session:
        rows = {row["center"]: row for row in summary(session)}
        assert rows["C01"]["patients"] == 2 and rows["C01"]["series"] == 3
        assert rows["C01"]["series_qc_passed"] == 3
        pixel_hashes = set(session.scalars(select(Instance.pixel_sha256)))
    # pixel data unchanged: the stored hashes are those of the source files
    source_hashes = {pixel_data_sha256(pydicom.dcmread(p)) for p in source.rglob("IM*.dcm")}
    assert pixel_hashes == source_hashes
    stored = _every_stored_byte(repository.root) + _database_dump(repository)
    assert verify_no_phi(stored, _identifiers(uids)) == []


def test_reingest_stores_nothing_twice_and_keeps_intervals(repository: Repository, site) -> None:
    source, _ = site
    ingest_folder(source, repository, "C01", progress=False)
    again = ingest_folder(source, repository, "C01", progress=False)
    assert again.counts()["series_already_stored"] == 3
    assert again.counts()["series_stored"] == 0
    with repository.session() as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == 36
        days = sorted(s.days_since_first_study for series in session.scalars(select(Series))
                      for s in [series.study])
    assert days == [0, 0, 4]  # admission and a follow-up 4 days later; dates shifted, not lost


def test_same_key_same_pseudonym_across_centers(tmp_path: Path, site) -> None:
    source, _ = site
    key = tmp_path / "study.key"
    pseudonyms = []
    for center in ("C01", "C02"):
        repository = Repository.open(tmp_path / f"repo-{center}")
        ingest_folder(source, repository, center, key_path=key, progress=False)
        with repository.session() as session:
            pseudonyms.append(sorted(s.series_instance_uid for s in session.scalars(
                select(Series))))
        repository.close()
    assert pseudonyms[0] == pseudonyms[1]
    other = Repository.open(tmp_path / "repo-other-key")
    ingest_folder(source, other, "C01", progress=False)
    with other.session() as session:
        assert sorted(s.series_instance_uid for s in session.scalars(select(Series))) != \
            pseudonyms[0]


def test_secondary_capture_is_quarantined(tmp_path: Path) -> None:
    source = tmp_path / "site"
    files = write_dicom_series(_head((3, 40, 40)), source, {"PatientID": "MRN-9",
                                                             "PatientName": "Roe^Richard"})
    for path in files:
        dataset = pydicom.dcmread(path)
        dataset.SOPClassUID = SecondaryCaptureImageStorage
        dataset.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        dataset.save_as(path)
    repository = Repository.open(tmp_path / "repo")
    report = ingest_folder(source, repository, "C01", progress=False)
    assert report.series[0].status == "quarantined"
    assert len(list((repository.root / "quarantine").glob("*.dcm"))) == 3
    assert not (repository.root / "objects").exists() or not any(
        p.is_file() for p in (repository.root / "objects").rglob("*"))
    with repository.session() as session:
        series = session.scalars(select(Series)).one()
        assert series.quarantined and series.qc_status == "flagged"
    with pytest.raises(InputError, match="quarantined"):
        decide(repository, series.series_instance_uid, "accepted", "looks fine")


def test_qc_flags_and_decisions(tmp_path: Path) -> None:
    source = tmp_path / "site"
    head = _head((14, 40, 40))
    metal = head.array.copy()
    metal[6, 18:22, 18:22] = 3500
    files = write_dicom_series(head.with_array(metal), source / "metal",
                               {"PatientID": "MRN-1"})
    assert files
    gap = write_dicom_series(_head((14, 40, 40), seed=3), source / "gap", {"PatientID": "MRN-2"})
    gap[7].unlink()
    repository = Repository.open(tmp_path / "repo")
    report = ingest_folder(source, repository, "C01", progress=False)
    flags = {o.series_instance_uid: {f["flag"] for f in o.qc_flags} for o in report.series}
    assert sorted(map(sorted, flags.values())) == [["metal-artefact"], ["missing-slice"]]
    flagged = list_series(repository)
    assert len(flagged) == 2
    uid = next(u for u, f in flags.items() if "missing-slice" in f)
    with pytest.raises(InputError, match="reason"):
        decide(repository, uid, "excluded", "  ")
    assert main(["qc", "--repo", str(repository.root), "--exclude", uid,
                 "--reason", "gap at the vertex"]) == 0
    with repository.session() as session:
        series = session.scalar(select(Series).where(Series.series_instance_uid == uid))
        assert series.qc_status == "excluded" and series.qc_decision_reason == "gap at the vertex"
        assert series.qc_decided_at is not None


def test_clinical_import_links_by_pseudonym(repository: Repository, site, tmp_path) -> None:
    source, uids = site
    ingest_folder(source, repository, "C01", progress=False)
    csv_path = tmp_path / "clinical.csv"
    csv_path.write_text("patient_id,patient_name,age,gcs,outcome\n"
                        "MRN-0042,Kowalski^Anna,72,9,3\nMRN-0043,Lindqvist^Erik,59,14,\n"
                        "MRN-9999,Unknown^Person,40,15,8\nMRN-0043,Lindqvist^Erik,59,19,2\n")
    with pytest.raises(InputError, match=r"clinical.csv: 2 row\(s\) rejected, nothing imported"
                       r".*line 4: no such patient.*line 5: gcs=19"):
        import_clinical(csv_path, repository, "C01")
    with repository.session() as session:
        assert session.scalars(select(ClinicalRecord)).all() == []
    report = import_clinical(csv_path, repository, "C01", keep_valid=True)
    assert report.imported == 2 and report.dropped_columns == ["patient_name"]
    assert any("line 4" in problem for problem in report.problems)
    with repository.session() as session:
        records = sorted((r.variables["age"], r.variables["gcs"], r.variables["outcome"])
                         for r in session.scalars(select(ClinicalRecord)))
    assert records == [(59, 14, None), (72, 9, 3)]
    stored = _every_stored_byte(repository.root)
    assert verify_no_phi(stored, ["MRN-0042", "MRN-9999", "Kowalski^Anna"]) == []
    with pytest.raises(InputError, match="no column 'patient_id'"):
        bad = tmp_path / "bad.csv"
        bad.write_text("id,age\n1,2\n")
        import_clinical(bad, repository, "C01")


def test_label_maps_and_fiducials_are_checked(repository: Repository, site, tmp_path) -> None:
    source, uids = site
    ingest_folder(source, repository, "C01", progress=False)
    original_uid = uids["series"][0]
    image = read_dicom_series(source / "MRN-0042" / "study0")
    labels = np.zeros(image.shape, np.uint8)
    labels[5, 15:20, 15:20] = 1
    good = write_nifti(image.with_array(labels), tmp_path / "good.nii.gz")
    result = import_label_map(good, repository, original_uid, author="test")
    assert "haematoma: 25 voxels" in result.detail
    shifted = Volume(labels, image.spacing, tuple(np.add(image.origin, (0, 0, 5.0))),
                     image.direction)
    bad = write_nifti(shifted, tmp_path / "bad.nii.gz")
    with pytest.raises(InputError, match="bad.nii.gz.*does not lie on the grid"):
        import_label_map(bad, repository, original_uid)
    inside = image.index_to_lps([[5, 17, 17]])[0]
    points = tmp_path / "points.csv"
    points.write_text("series_instance_uid,x,y,z,label\n"
                      f"{original_uid},{inside[0]},{inside[1]},{inside[2]},haematoma\n")
    import_fiducials(points, repository)
    outside = tmp_path / "outside.csv"
    outside.write_text(points.read_text() + f"{original_uid},500,0,0,haematoma\n")
    with pytest.raises(InputError, match="line 3.*outside"):
        import_fiducials(outside, repository)
    with repository.session() as session:
        kinds = sorted(a.kind for a in session.scalars(select(Annotation)))
    assert kinds == ["fiducials", "label-map"]  # the refused files left nothing behind


def test_dicom_seg_is_placed_on_its_series(repository: Repository, site, tmp_path) -> None:
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    from voxelwise.data.repository import load_label_map
    from voxelwise.ingest.annotations import import_seg

    source, uids = site
    ingest_folder(source, repository, "C01", progress=False)
    files = sorted((source / "MRN-0042" / "study0").glob("IM*.dcm"))
    datasets = [pydicom.dcmread(f) for f in files]
    mask = np.zeros((len(datasets), 40, 40), np.uint8)
    mask[5, 12:18, 20:26] = 1
    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label="haematoma",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Hemorrhage,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description], series_instance_uid=generate_uid(), series_number=99,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="test",
        manufacturer_model_name="test", software_versions="0", device_serial_number="0")
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    result = import_seg(path, repository, author="reader 1")
    assert result.kind == "seg" and "haematoma: 36 voxels" in result.detail
    with repository.session() as session:
        annotation = session.scalars(select(Annotation)).one()
        stored = load_label_map(repository, annotation)
        assert annotation.label_names == {"1": "haematoma"}
    image = read_dicom_series(source / "MRN-0042" / "study0")
    assert stored.same_grid(image)
    assert np.array_equal(np.argwhere(stored.array), np.argwhere(mask))
    # the SEG's patient header did not reach the repository
    assert verify_no_phi(_every_stored_byte(repository.root), ["MRN-0042", "Kowalski^Anna"]) == []
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"DICM" * 10)
    with pytest.raises(InputError, match="broken.dcm"):
        import_seg(broken, repository)


def test_label_map_table_and_cli(tmp_path: Path, site) -> None:
    source, uids = site
    repo = tmp_path / "repo"
    assert main(["ingest", str(source), "--center", "C01", "--repo", str(repo),
                 "--report", str(tmp_path / "ingest.json")]) == 0
    assert json.loads((tmp_path / "ingest.json").read_text())["counts"]["series_stored"] == 3
    image = read_dicom_series(source / "MRN-0043" / "study0")
    labels = np.zeros(image.shape, np.uint8)
    labels[3:5, 10:14, 10:14] = 2
    write_nifti(image.with_array(labels), tmp_path / "maps" / "b.nii.gz")
    table = tmp_path / "maps" / "labels.csv"
    table.write_text(f"series_instance_uid,label_map\n{uids['series'][2]},b.nii.gz\n")
    for _ in range(2):  # importing twice attaches it once
        assert main(["annotations", "import", str(table), "--repo", str(repo)]) == 0
    summary_csv = tmp_path / "summary.csv"
    assert main(["repo", "summary", "--repo", str(repo), "--csv", str(summary_csv)]) == 0
    assert summary_csv.read_text().splitlines()[1].startswith("C01,")
    with Repository.open(repo) as repository, repository.session() as session:
        assert len(session.scalars(select(Annotation)).all()) == 1


def test_conflicting_instance_is_reported_not_overwritten(tmp_path: Path) -> None:
    source = tmp_path / "site"
    files = write_dicom_series(_head((12, 40, 40)), source / "a", {"PatientID": "MRN-5"})
    repository = Repository.open(tmp_path / "repo")
    first = ingest_folder(source / "a", repository, "C01", progress=False)
    assert first.counts()["instances_stored"] == 12
    with repository.session() as session:
        before = sorted(session.scalars(select(Instance.file_sha256)))
    # the same SOP Instance UID arrives again with other pixels, next to a new slice
    changed = pydicom.dcmread(files[3])
    pixels = changed.pixel_array.copy()
    pixels[0, 0] += 1
    changed.PixelData = pixels.tobytes()
    (source / "b").mkdir()
    changed.save_as(source / "b" / "changed.dcm")
    extra = pydicom.dcmread(files[0])
    extra.SOPInstanceUID = pydicom.uid.generate_uid()
    extra.save_as(source / "b" / "extra.dcm")
    second = ingest_folder(source / "b", repository, "C01", progress=False)
    assert second.counts()["instance_conflicts"] == 1
    conflict = next(f for f in second.skipped_files if f["kind"] == "conflict")
    assert conflict["file"].endswith("changed.dcm") and "nothing was overwritten" in \
        conflict["problem"]
    assert second.counts()["instances_stored"] == 1  # the new slice joins its series
    with repository.session() as session:
        after = sorted(session.scalars(select(Instance.file_sha256)))
        assert set(before) <= set(after) and len(after) == 13
        assert session.scalars(select(Series)).one().instance_count == 13
