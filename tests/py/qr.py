"""C-FIND, C-GET and C-MOVE of one study with pynetdicom. Prints `FIND <matches>`,
`GET <completed> <failed>` and `MOVE <completed> <failed>`.
Arguments: HOST PORT CALLING CALLED STUDY_UID MOVE_DESTINATION OUT_DIR"""
import os
import sys

from pydicom.dataset import Dataset
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

host, port, calling, called, study, dest, out_dir = sys.argv[1:8]
port = int(port)


def identifier():
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study
    return ds


def final_counts(responses):
    last = None
    for status, _ in responses:
        if status:
            last = status
    return last.get("NumberOfCompletedSuboperations", 0), last.get("NumberOfFailedSuboperations", 0)


ae = AE(ae_title=calling)
ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30

# C-FIND
ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
assoc = ae.associate(host, port, ae_title=called)
assert assoc.is_established, "find association"
matches = sum(1 for status, ds in assoc.send_c_find(identifier(), StudyRootQueryRetrieveInformationModelFind)
              if status and status.Status in (0xFF00, 0xFF01))
assoc.release()
print("FIND", matches, flush=True)

# C-GET: storage contexts with the SCP role
ae = AE(ae_title=calling)
ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
roles = []
for cx in StoragePresentationContexts[:100]:
    ae.add_requested_context(cx.abstract_syntax)
    roles.append(build_role(cx.abstract_syntax, scp_role=True))


def on_store(event):
    ds = event.dataset
    ds.file_meta = event.file_meta
    ds.save_as(os.path.join(out_dir, ds.SOPInstanceUID.replace(".", "_") + ".dcm"), enforce_file_format=True)
    return 0x0000


assoc = ae.associate(host, port, ae_title=called, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
assert assoc.is_established, "get association"
completed, failed = final_counts(assoc.send_c_get(identifier(), StudyRootQueryRetrieveInformationModelGet))
assoc.release()
print("GET", completed, failed, flush=True)

# C-MOVE
ae = AE(ae_title=calling)
ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
assoc = ae.associate(host, port, ae_title=called)
assert assoc.is_established, "move association"
completed, failed = final_counts(assoc.send_c_move(identifier(), dest, StudyRootQueryRetrieveInformationModelMove))
assoc.release()
print("MOVE", completed, failed, flush=True)
