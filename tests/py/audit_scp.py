"""A pynetdicom SCP in one of the configurations `ward audit` is validated against.

    audit_scp.py MODE PORT

MODE is one of:
  accept-any       any called and calling AE title; C-ECHO, C-STORE, and a C-FIND that answers
                   one match of a made-up patient
  calling-allowed  only the calling AE title STORESCU (a tool default) is admitted
  called-checked   only the called AE title PACS is accepted, any calling title
  identity         associations without user identity, or with a wrong passcode, are rejected
  no-service       associations are accepted, but no proposed service is supported

Prints LISTENING once the socket is bound, then serves until killed.
"""
import sys

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.acse import ACSE
from pynetdicom.sop_class import (
    CTImageStorage,
    ModalityWorklistInformationFind,
    StudyRootQueryRetrieveInformationModelFind,
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
    for context in (Verification, CTImageStorage, StudyRootQueryRetrieveInformationModelFind):
        ae.add_supported_context(context)

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


def on_find(event):
    match = Dataset()
    match.QueryRetrieveLevel = event.identifier.QueryRetrieveLevel
    match.PatientName = "Exposed^Patient"
    match.PatientID = "EXPOSED-1"
    match.StudyInstanceUID = "2.25.1234"
    match.NumberOfStudyRelatedInstances = "3"
    yield 0xFF00, match


def on_store(event):
    return 0x0000


handlers += [(evt.EVT_C_FIND, on_find), (evt.EVT_C_STORE, on_store)]
server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
print("LISTENING", flush=True)
try:
    sys.stdin.read()
finally:
    server.shutdown()
