"""A pynetdicom SCP in one of the configurations `ward audit` is validated against.

    audit_scp.py MODE PORT

MODE is one of:
  accept-any       any called and calling AE title; C-ECHO, C-STORE, a C-FIND that answers
                   one match of a made-up patient at every level, and a C-GET that sends that
                   patient's one instance
  calling-allowed  only the calling AE title STORESCU (a tool default) is admitted
  called-checked   only the called AE title PACS is accepted, any calling title
  identity         associations without user identity, or with a wrong passcode, are rejected
  no-service       associations are accepted, but no proposed service is supported

Prints LISTENING once the socket is bound, then serves until killed.
"""
import sys

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.acse import ACSE
from pynetdicom.sop_class import (
    CTImageStorage,
    ModalityWorklistInformationFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)

mode, port = sys.argv[1], int(sys.argv[2])
ae = AE(ae_title="PACS")
ae.acse_timeout = 10
ae.network_timeout = 10
handlers = []

if mode == "no-service":
    # A service nobody proposes: the association is accepted with every context rejected.
    ae.add_supported_context(ModalityWorklistInformationFind)
else:
    for context in (Verification, StudyRootQueryRetrieveInformationModelFind):
        ae.add_supported_context(context)
    # Both roles: a peer stores CT images here, and takes them back by C-GET.
    ae.add_supported_context(CTImageStorage, scu_role=True, scp_role=True)
if mode == "accept-any":
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)

if mode == "calling-allowed":
    ae.require_calling_aet = ["STORESCU"]
elif mode == "called-checked":
    ae.require_called_aet = True
elif mode == "identity":
    def check_identity(event):
        ok = event.primary_field == b"modality" and event.secondary_field == b"s3cret-passcode"
        return ok, None

    handlers.append((evt.EVT_USER_ID, check_identity))
    negotiate = ACSE._negotiate_as_acceptor

    def require_identity(self):
        # pynetdicom only checks an identity that was sent; this SCP requires one.
        if self.requestor.user_identity is None:
            self.send_reject(0x01, 0x01, 0x01)
            self.assoc.kill()
            return
        negotiate(self)

    ACSE._negotiate_as_acceptor = require_identity
elif mode != "accept-any" and mode != "no-service":
    sys.exit(f"unknown mode {mode}")


STUDY, SERIES, INSTANCE = "2.25.1234", "2.25.1234.1", "2.25.1234.1.1"


def on_find(event):
    level = event.identifier.QueryRetrieveLevel
    match = Dataset()
    match.QueryRetrieveLevel = level
    match.PatientName = "Exposed^Patient"
    match.PatientID = "EXPOSED-1"
    match.StudyInstanceUID = STUDY
    match.NumberOfStudyRelatedInstances = "3"
    if level in ("SERIES", "IMAGE"):
        match.SeriesInstanceUID = SERIES
    if level == "IMAGE":
        match.SOPInstanceUID = INSTANCE
        match.SOPClassUID = CTImageStorage
    yield 0xFF00, match


def on_get(event):
    # A made-up study matches nothing; the exposed one is the single instance above.
    wanted = event.identifier.get("StudyInstanceUID") == STUDY
    yield 1 if wanted else 0
    if wanted:
        image = Dataset()
        image.file_meta = FileMetaDataset()
        image.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        image.SOPClassUID = CTImageStorage
        image.SOPInstanceUID = INSTANCE
        image.StudyInstanceUID = STUDY
        image.SeriesInstanceUID = SERIES
        image.PatientName = "Exposed^Patient"
        image.PatientID = "EXPOSED-1"
        image.Modality = "CT"
        yield 0xFF00, image


def on_store(event):
    return 0x0000


handlers += [(evt.EVT_C_FIND, on_find), (evt.EVT_C_GET, on_get), (evt.EVT_C_STORE, on_store)]
server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
print("LISTENING", flush=True)
try:
    sys.stdin.read()
finally:
    server.shutdown()
