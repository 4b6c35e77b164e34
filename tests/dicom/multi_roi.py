"""Turns a delinea RTSTRUCT (one ROI, "GTV") into a planning system's kind of export, for the
reader's tests: `python3 multi_roi.py IN.dcm OUT.dcm planning|two-gtvs` (pydicom).

planning: the GTV renamed "GTVnx" (still interpreted as GTV) and moved behind an EXTERNAL "BODY"
(each GTV contour scaled by 1.5 about its centre, so reading it gives a larger mask) and a PTV
without contours; contours written clockwise where delinea wrote them counter-clockwise (each
ring reversed), each ring closed by repeating its first point, and the GTV's contours listed in
reverse slice order. two-gtvs: the same plus a second ROI interpreted as GTV ("GTVnd"), so no
single GTV can be chosen without a name.
"""
import copy
import sys

import numpy as np
import pydicom
from pydicom.sequence import Sequence


def ring_variant(item, scale=1.0):
    points = np.array([float(v) for v in item.ContourData]).reshape(-1, 3)
    centre = points.mean(axis=0)
    points = centre + scale * (points - centre)
    points = np.vstack([points[::-1], points[-1:]])  # reversed, first point repeated at the end
    item.ContourData = [f"{v:.6f}" for v in points.ravel()]
    item.NumberOfContourPoints = len(points)
    return item


def roi(ds, number, name, kind, contours):
    ssroi = copy.deepcopy(ds.StructureSetROISequence[0])
    ssroi.ROINumber, ssroi.ROIName = number, name
    obs = copy.deepcopy(ds.RTROIObservationsSequence[0])
    obs.ObservationNumber, obs.ReferencedROINumber, obs.RTROIInterpretedType = number, number, kind
    obs.ROIObservationLabel = name
    rc = copy.deepcopy(ds.ROIContourSequence[0])
    rc.ReferencedROINumber = number
    rc.ContourSequence = Sequence(contours)
    return ssroi, obs, rc


def main(src, out, mode):
    ds = pydicom.dcmread(src)
    gtv = ds.ROIContourSequence[0].ContourSequence
    body = [ring_variant(copy.deepcopy(c), 1.5) for c in gtv]
    rois = [roi(ds, 1, "BODY", "EXTERNAL", body), roi(ds, 2, "PTV", "PTV", [])]
    rois.append(roi(ds, 3, "GTVnx", "GTV", [ring_variant(copy.deepcopy(c)) for c in reversed(gtv)]))
    if mode == "two-gtvs":
        rois.append(roi(ds, 4, "GTVnd", "GTV", [ring_variant(copy.deepcopy(c)) for c in gtv[:1]]))
    ds.StructureSetROISequence = Sequence([r[0] for r in rois])
    ds.RTROIObservationsSequence = Sequence([r[1] for r in rois])
    ds.ROIContourSequence = Sequence([r[2] for r in rois])
    ds.save_as(out, enforce_file_format=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
