"""DICOM de-identification: PS3.15 Annex E Basic Application Level Confidentiality Profile with
the Retain Longitudinal Temporal Information with Modified Dates and the Retain Patient
Characteristics options; keyed pseudonyms, UID remapping and date shifts (HMAC-SHA256).

    from voxelwise.deid import Pseudonymizer, deidentify_file, load_or_create_key
    pseudonymizer = Pseudonymizer(load_or_create_key("secrets/deid.key"))
    result = deidentify_file("in/IM0001.dcm", "out/IM0001.dcm", pseudonymizer)
    result.patient_pseudonym, result.quarantined, result.actions
"""

from voxelwise.deid.deidentify import (
    DeidentificationError,
    DeidOptions,
    DeidResult,
    deidentify_bytes,
    deidentify_dataset,
    deidentify_file,
    pixel_data_sha256,
    quarantine_reasons,
)
from voxelwise.deid.profile import ActionRecord, resolve_action
from voxelwise.deid.profile_table import SAFE_PRIVATE_CT
from voxelwise.deid.pseudonym import Pseudonymizer, load_or_create_key
from voxelwise.deid.verify import identifier_spellings, verify_no_phi, worth_searching

__all__ = [
    "SAFE_PRIVATE_CT", "ActionRecord", "DeidOptions", "DeidResult", "DeidentificationError",
    "Pseudonymizer", "deidentify_bytes", "deidentify_dataset", "deidentify_file",
    "identifier_spellings", "load_or_create_key", "pixel_data_sha256", "quarantine_reasons",
    "resolve_action", "verify_no_phi", "worth_searching",
]
