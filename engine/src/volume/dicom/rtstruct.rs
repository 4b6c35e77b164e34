//! A mask → a DICOM RT Structure Set (what treatment-planning systems import) referencing the
//! series the mask was predicted on.
//!
//! One ROI (name from [`Options`], "GTV" by default, interpreted type GTV, generated
//! AUTOMATIC) with one CLOSED_PLANAR contour per island on each slice
//! ([`contour`](super::contour): marching squares at the 0.5 iso-line, so every point is
//! within half a pixel of the mask's edge). Holes are joined to their island by keyholes
//! ([`keyhole`](super::keyhole)), so no nesting convention is needed to read them; with
//! [`Holes::Rings`](super::Holes) they are separate contours inside their island, read with
//! the even-odd rule. Points are in patient coordinates
//! (LPS, mm) on the plane of the referenced image: its ImagePositionPatient plus the in-plane
//! offset. Each contour references its image (ContourImageSequence, with the frame number for
//! a multi-frame image); the structure set references the Frame of Reference, study, series
//! and every image.

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::contour::polygons;
use super::derived::{self, ds, el, item, seq, strs, Options};
use super::{Series, SliceRef};

/// RT Structure Set Storage.
pub const SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.481.3";

/// The Referenced SOP Class of a study in RTReferencedStudySequence (what planning systems
/// and pydicom-based writers put there).
const STUDY_SOP_CLASS: &str = "1.2.840.10008.3.1.2.3.1";

/// The RT Structure Set `sop_instance` of the structure's `slices` (one per slice of
/// `series`), referencing `series`, and its number of contours.
pub(super) fn build(
    series: &Series,
    slices: &[Vec<bool>],
    sop_instance: &str,
    options: &Options,
) -> (InMemDicomObject, usize) {
    let r = &series.reference;
    let root = options.uid_root.as_deref();
    let frame_of_reference = r.frame_of_reference.clone().unwrap_or_default();
    let [w, h, _] = series.volume.geometry.dims;
    let mut contour_items = Vec::new();
    for (k, inside) in slices.iter().enumerate() {
        for ring in polygons(inside, w, h, options.holes) {
            let points: Vec<f64> = ring.iter().flat_map(|&[i, j]| patient_point(series, k, i, j)).collect();
            contour_items.push(item([
                seq(tags::CONTOUR_IMAGE_SEQUENCE, vec![image_ref(&r.slices[k])]),
                el(tags::CONTOUR_GEOMETRIC_TYPE, VR::CS, "CLOSED_PLANAR"),
                el(tags::NUMBER_OF_CONTOUR_POINTS, VR::IS, ring.len().to_string()),
                el(tags::CONTOUR_NUMBER, VR::IS, (contour_items.len() + 1).to_string()),
                ds(tags::CONTOUR_DATA, &points),
            ]));
        }
    }
    let contour_count = contour_items.len();
    let mut roi_contour = vec![
        strs(tags::ROI_DISPLAY_COLOR, VR::IS, ["255", "0", "0"].map(String::from)),
        el(tags::REFERENCED_ROI_NUMBER, VR::IS, "1"),
    ];
    if !contour_items.is_empty() {
        roi_contour.push(seq(tags::CONTOUR_SEQUENCE, contour_items));
    }
    let (date, time) = derived::now();
    let mut obj = item(derived::common(r, SOP_CLASS, sop_instance));
    for e in [
        el(tags::MODALITY, VR::CS, "RTSTRUCT"),
        el(tags::SERIES_INSTANCE_UID, VR::UI, derived::new_uid(root)),
        el(tags::SERIES_NUMBER, VR::IS, "901"),
        el(tags::SERIES_DESCRIPTION, VR::LO, truncate(&options.algorithm, 64)),
        el(tags::OPERATORS_NAME, VR::PN, ""),
        derived::copied(r, tags::FRAME_OF_REFERENCE_UID, VR::UI),
        derived::copied(r, tags::POSITION_REFERENCE_INDICATOR, VR::LO),
        el(tags::INSTANCE_NUMBER, VR::IS, "1"),
        el(tags::STRUCTURE_SET_LABEL, VR::SH, truncate(&options.roi_name, 16)),
        el(tags::STRUCTURE_SET_DATE, VR::DA, date),
        el(tags::STRUCTURE_SET_TIME, VR::TM, time),
        seq(
            tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
            vec![frame_of_reference_item(series, &frame_of_reference)],
        ),
        seq(
            tags::STRUCTURE_SET_ROI_SEQUENCE,
            vec![item([
                el(tags::ROI_NUMBER, VR::IS, "1"),
                el(
                    tags::REFERENCED_FRAME_OF_REFERENCE_UID,
                    VR::UI,
                    frame_of_reference.as_str(),
                ),
                el(tags::ROI_NAME, VR::LO, options.roi_name.as_str()),
                el(tags::ROI_GENERATION_ALGORITHM, VR::CS, "AUTOMATIC"),
                el(
                    tags::ROI_GENERATION_DESCRIPTION,
                    VR::LO,
                    truncate(&options.algorithm, 64),
                ),
            ])],
        ),
        seq(tags::ROI_CONTOUR_SEQUENCE, vec![item(roi_contour)]),
        seq(
            tags::RTROI_OBSERVATIONS_SEQUENCE,
            vec![item([
                el(tags::OBSERVATION_NUMBER, VR::IS, "1"),
                el(tags::REFERENCED_ROI_NUMBER, VR::IS, "1"),
                el(tags::RTROI_INTERPRETED_TYPE, VR::CS, "GTV"),
                el(tags::ROI_INTERPRETER, VR::PN, ""),
            ])],
        ),
    ] {
        obj.put(e);
    }
    (obj, contour_count)
}

/// Pixel `(i, j)` of slice `k` in patient coordinates (LPS): the slice's own
/// ImagePositionPatient plus the in-plane offset along the image's row and column directions.
pub(super) fn patient_point(series: &Series, k: usize, i: f64, j: f64) -> [f64; 3] {
    let g = &series.volume.geometry;
    let origin = series.reference.slices[k].position;
    let (at, corner) = (g.to_world([i, j, k as f64]), g.to_world([0.0, 0.0, k as f64]));
    let lps = [-1.0, -1.0, 1.0]; // the affine is RAS
    [0, 1, 2].map(|r| origin[r] + lps[r] * (at[r] - corner[r]))
}

/// A ContourImageSequence / ReferencedImage item for one slice.
pub(super) fn image_ref(s: &SliceRef) -> InMemDicomObject {
    let mut e = vec![
        el(tags::REFERENCED_SOP_CLASS_UID, VR::UI, s.sop_class.as_str()),
        el(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, s.sop_instance.as_str()),
    ];
    if let Some(f) = s.frame {
        e.push(el(tags::REFERENCED_FRAME_NUMBER, VR::IS, f.to_string()));
    }
    item(e)
}

/// ReferencedFrameOfReferenceSequence's item: the frame of reference, study, series and every
/// image of the series.
fn frame_of_reference_item(series: &Series, frame_of_reference: &str) -> InMemDicomObject {
    let r = &series.reference;
    let images = r.slices.iter().map(image_ref).collect();
    let series_item = item([
        el(tags::SERIES_INSTANCE_UID, VR::UI, r.series_uid.as_str()),
        seq(tags::CONTOUR_IMAGE_SEQUENCE, images),
    ]);
    let study = item([
        el(tags::REFERENCED_SOP_CLASS_UID, VR::UI, STUDY_SOP_CLASS),
        el(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            r.study_uid.as_deref().unwrap_or_default(),
        ),
        seq(tags::RT_REFERENCED_SERIES_SEQUENCE, vec![series_item]),
    ]);
    item([
        el(tags::FRAME_OF_REFERENCE_UID, VR::UI, frame_of_reference),
        seq(tags::RT_REFERENCED_STUDY_SEQUENCE, vec![study]),
    ])
}

/// `s` cut to `n` characters (SH and LO limits).
pub(super) fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
