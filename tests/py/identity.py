"""Associates over TLS with a user identity (pynetdicom) and runs an enumerating C-FIND.
Prints `REJECTED`/`ABORTED`, or `ACCEPTED positive=<True|False>` then `FIND <status> <matches>`.
Arguments: HOST PORT CALLING CALLED CA CERT KEY KIND USER PASSCODE
KIND: none | username | passcode | jwt (USER is then the token). CA may be `-` for plain TCP."""
import ssl
import sys

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.pdu_primitives import UserIdentityNegotiation
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

host, port, calling, called, ca, cert, key, kind, user, passcode = sys.argv[1:11]
ae = AE(ae_title=calling)
ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 15
ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
ext = []
if kind != "none":
    item = UserIdentityNegotiation()
    item.user_identity_type = {"username": 1, "passcode": 2, "jwt": 5}[kind]
    item.primary_field = user.encode()
    if kind == "passcode":
        item.secondary_field = passcode.encode()
    item.positive_response_requested = True
    ext.append(item)
tls = None
if ca != "-":
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.load_cert_chain(cert, key)
    tls = (ctx, host)
assoc = ae.associate(host, int(port), ae_title=called, ext_neg=ext, tls_args=tls)
if assoc.is_rejected:
    print("REJECTED", flush=True)
    sys.exit(0)
if not assoc.is_established:
    print("ABORTED", flush=True)
    sys.exit(0)
positive = any(type(i).__name__ == "UserIdentityNegotiation" for i in assoc.acceptor.user_information)
print("ACCEPTED", f"positive={positive}", flush=True)
ds = Dataset()
ds.QueryRetrieveLevel = "STUDY"
ds.PatientName = "*"
ds.StudyInstanceUID = ""
matches = 0
final = None
for status, identifier in assoc.send_c_find(ds, StudyRootQueryRetrieveInformationModelFind):
    if status and status.Status in (0xFF00, 0xFF01):
        matches += 1
    elif status:
        final = status.Status
print("FIND", hex(final) if final is not None else "none", matches, flush=True)
assoc.release()
