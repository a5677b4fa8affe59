"""Retrieves the given files' instances from an archive with pynetdicom, by C-GET or C-MOVE, and
writes each data set exactly as received to OUT_DIR/<SOP Instance UID>.dcm.

  retrieve.py get  HOST PORT CALLING CALLED OUT_DIR [--as TS] FILE...
  retrieve.py move HOST PORT CALLING CALLED OUT_DIR --dest TS=AET:PORT... [--as TS] FILE...

Each instance is asked for in the transfer syntax of its file, or in --as TS for all. C-GET
offers a storage context (SCP role) for each (SOP class, transfer syntax) pair needed. C-MOVE
runs one storage SCP per --dest, accepting only that transfer syntax, and moves each instance
to the destination for its syntax. Prints `<GET|MOVE> <completed> <failed> <warning>` over all
requests, and exits 1 if a request did not end in a final status."""
import argparse
import os
import sys
from collections import defaultdict

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

# Ward's limit on one matching value (ward_query::MAX_VALUE_CHARS), with room to spare.
MAX_LIST_CHARS = 1000

parser = argparse.ArgumentParser()
parser.add_argument("mode", choices=["get", "move"])
parser.add_argument("host")
parser.add_argument("port", type=int)
parser.add_argument("calling")
parser.add_argument("called")
parser.add_argument("out_dir")
parser.add_argument("--as", dest="as_ts")
parser.add_argument("--dest", action="append", default=[])
parser.add_argument("files", nargs="+")
args = parser.parse_args()


class Instance:
    def __init__(self, path):
        ds = dcmread(path, stop_before_pixels=True)
        self.sop_class = ds.file_meta.MediaStorageSOPClassUID
        self.uid = ds.SOPInstanceUID
        self.study = ds.StudyInstanceUID
        self.series = ds.SeriesInstanceUID
        self.ts = args.as_ts or ds.file_meta.TransferSyntaxUID


instances = [Instance(p) for p in args.files]


def on_store(event):
    uid = event.request.AffectedSOPInstanceUID
    with open(os.path.join(args.out_dir, f"{uid}.dcm"), "wb") as f:
        f.write(event.encoded_dataset())
    return 0x0000


def chunks(uids):
    """UID lists (backslash-separated) short enough for one matching value."""
    chunk = []
    for uid in uids:
        if chunk and len("\\".join(chunk + [uid])) > MAX_LIST_CHARS:
            yield chunk
            chunk = []
        chunk.append(uid)
    if chunk:
        yield chunk


totals = [0, 0, 0]
complete = True


def run(responses):
    """Adds a request's final counts to the totals."""
    global complete
    final = None
    for status, _ in responses:
        if status and status.Status not in (0xFF00, 0xFF01):
            final = status
    if final is None:
        complete = False
        return
    for i, key in enumerate(["NumberOfCompletedSuboperations", "NumberOfFailedSuboperations",
                             "NumberOfWarningSuboperations"]):
        totals[i] += final.get(key, 0)


def new_ae(title):
    ae = AE(ae_title=title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    return ae


if args.mode == "get":
    ae = new_ae(args.calling)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    pairs = sorted({(i.sop_class, i.ts) for i in instances})
    assert len(pairs) < 128, "too many presentation contexts for one association"
    for sop_class, ts in pairs:
        ae.add_requested_context(sop_class, ts)
    roles = [build_role(c, scp_role=True) for c in sorted({c for c, _ in pairs})]
    assoc = ae.associate(args.host, args.port, ae_title=args.called, ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established, "get association"
    studies = sorted({i.study for i in instances})
    for study in studies:
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = study
        run(assoc.send_c_get(ds, StudyRootQueryRetrieveInformationModelGet))
    assoc.release()
else:
    destinations = {}
    for spec in args.dest:
        ts, rest = spec.split("=", 1)
        aet, port = rest.split(":")
        destinations[ts] = (aet, int(port))
    servers = []
    for ts, (aet, port) in destinations.items():
        scp = new_ae(aet)
        for sop_class in sorted({i.sop_class for i in instances if i.ts == ts}):
            scp.add_supported_context(sop_class, ts)
        servers.append(scp.start_server(("127.0.0.1", port), block=False,
                                        evt_handlers=[(evt.EVT_C_STORE, on_store)]))
    ae = new_ae(args.calling)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate(args.host, args.port, ae_title=args.called)
    assert assoc.is_established, "move association"
    groups = defaultdict(list)
    for i in instances:
        groups[(i.study, i.series, i.ts)].append(i.uid)
    for (study, series, ts), uids in sorted(groups.items()):
        for chunk in chunks(uids):
            ds = Dataset()
            ds.QueryRetrieveLevel = "IMAGE"
            ds.StudyInstanceUID = study
            ds.SeriesInstanceUID = series
            ds.SOPInstanceUID = chunk
            run(assoc.send_c_move(ds, destinations[ts][0],
                                  StudyRootQueryRetrieveInformationModelMove))
    assoc.release()
    for server in servers:
        server.shutdown()

print(args.mode.upper(), *totals, flush=True)
sys.exit(0 if complete else 1)
