//! A mask → a DICOM Segmentation (SEG, BINARY) on the grid of the series it was predicted on.
//!
//! One segment (label from [`Options`], category "Morphologically Altered Structure", type
//! "Neoplasm", SNOMED CT; algorithm AUTOMATIC) and one frame per source slice, in the
//! volume's slice order, each frame referencing its source image (DerivationImageSequence)
//! and placed by that image's ImagePositionPatient. Pixels are 1 bit, packed least
//! significant bit first across frames (PS3.5 8.1.1), row by row like the source image.

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::derived::{self, code, ds, el, item, seq, Options};
use super::rtstruct::{image_ref, truncate};
use super::Series;

/// Segmentation Storage.
pub const SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.66.4";

/// The Segmentation `sop_instance` of the structure's `slices` (one per slice of `series`),
/// referencing `series`, and its number of frames.
pub(super) fn build(
    series: &Series,
    slices: &[Vec<bool>],
    sop_instance: &str,
    options: &Options,
) -> (InMemDicomObject, usize) {
    let r = &series.reference;
    let root = options.uid_root.as_deref();
    let g = &series.volume.geometry;
    let [w, h, _] = g.dims;
    let bits: Vec<bool> = slices.concat();
    let mut packed = vec![0u8; bits.len().div_ceil(8).next_multiple_of(2)];
    for (n, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
        packed[n / 8] |= 1 << (n % 8);
    }
    let dimension_uid = derived::new_uid(root);
    let frames: Vec<InMemDicomObject> = (0..slices.len()).map(|k| frame_item(series, k)).collect();
    let frame_count = frames.len();
    let (date, time) = derived::now();
    let mut obj = item(derived::common(r, SOP_CLASS, sop_instance));
    for e in [
        el(tags::MODALITY, VR::CS, "SEG"),
        el(tags::SERIES_INSTANCE_UID, VR::UI, derived::new_uid(root)),
        el(tags::SERIES_NUMBER, VR::IS, "902"),
        el(tags::SERIES_DESCRIPTION, VR::LO, truncate(&options.algorithm, 64)),
        derived::copied(r, tags::FRAME_OF_REFERENCE_UID, VR::UI),
        derived::copied(r, tags::POSITION_REFERENCE_INDICATOR, VR::LO),
        el(tags::MANUFACTURER_MODEL_NAME, VR::LO, "delinea"),
        el(tags::DEVICE_SERIAL_NUMBER, VR::LO, "0"),
        el(tags::INSTANCE_NUMBER, VR::IS, "1"),
        el(tags::CONTENT_DATE, VR::DA, date),
        el(tags::CONTENT_TIME, VR::TM, time),
        derived::strs(tags::IMAGE_TYPE, VR::CS, ["DERIVED", "PRIMARY"].map(String::from)),
        el(tags::CONTENT_LABEL, VR::CS, content_label(&options.roi_name)),
        el(tags::CONTENT_DESCRIPTION, VR::LO, truncate(&options.algorithm, 64)),
        el(tags::CONTENT_CREATOR_NAME, VR::PN, ""),
        el(tags::SAMPLES_PER_PIXEL, VR::US, 1u16),
        el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        el(tags::ROWS, VR::US, h as u16),
        el(tags::COLUMNS, VR::US, w as u16),
        el(tags::BITS_ALLOCATED, VR::US, 1u16),
        el(tags::BITS_STORED, VR::US, 1u16),
        el(tags::HIGH_BIT, VR::US, 0u16),
        el(tags::PIXEL_REPRESENTATION, VR::US, 0u16),
        el(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
        el(tags::SEGMENTATION_TYPE, VR::CS, "BINARY"),
        seq(tags::SEGMENT_SEQUENCE, vec![segment_item(options)]),
        el(tags::NUMBER_OF_FRAMES, VR::IS, frames.len().to_string()),
        seq(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared_item(series)]),
        seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, frames),
        seq(
            tags::DIMENSION_ORGANIZATION_SEQUENCE,
            vec![item([el(
                tags::DIMENSION_ORGANIZATION_UID,
                VR::UI,
                dimension_uid.as_str(),
            )])],
        ),
        seq(tags::DIMENSION_INDEX_SEQUENCE, dimension_items(&dimension_uid)),
        seq(tags::REFERENCED_SERIES_SEQUENCE, vec![referenced_series(series)]),
        el(tags::PIXEL_DATA, VR::OB, packed),
    ] {
        obj.put(e);
    }
    (obj, frame_count)
}

/// ContentLabel is a CS: upper case, digits, space and underscore, at most 16 characters.
fn content_label(name: &str) -> String {
    let label: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .take(16)
        .collect();
    label
}

fn segment_item(options: &Options) -> InMemDicomObject {
    item([
        el(tags::SEGMENT_NUMBER, VR::US, 1u16),
        el(tags::SEGMENT_LABEL, VR::LO, options.roi_name.as_str()),
        seq(
            tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
            vec![code("49755003", "SCT", "Morphologically Altered Structure")],
        ),
        seq(
            tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
            vec![code("108369006", "SCT", "Neoplasm")],
        ),
        el(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC"),
        el(tags::SEGMENT_ALGORITHM_NAME, VR::LO, truncate(&options.algorithm, 64)),
    ])
}

/// Pixel measures and orientation, shared by every frame (those of the source series).
fn shared_item(series: &Series) -> InMemDicomObject {
    let g = &series.volume.geometry;
    let [si, sj, sk] = g.spacing;
    let axis = |c: usize, s: f64| {
        let lps = [-1.0, -1.0, 1.0];
        [0, 1, 2].map(|r| lps[r] * g.affine[r][c] / s)
    };
    let (row, col) = (axis(0, si), axis(1, sj));
    item([
        seq(
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![item([
                ds(tags::PIXEL_SPACING, &[sj, si]),
                ds(tags::SLICE_THICKNESS, &[sk]),
                ds(tags::SPACING_BETWEEN_SLICES, &[sk]),
            ])],
        ),
        seq(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![item([ds(tags::IMAGE_ORIENTATION_PATIENT, &[row, col].concat())])],
        ),
    ])
}

/// Frame `k`: its place in the dimensions, its position, its segment and its source image.
fn frame_item(series: &Series, k: usize) -> InMemDicomObject {
    let s = &series.reference.slices[k];
    let index = [1u32, k as u32 + 1];
    let source = {
        let mut i = image_ref(s);
        i.put(seq(
            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
            vec![code("121322", "DCM", "Source image for image processing operation")],
        ));
        i
    };
    item([
        seq(
            tags::FRAME_CONTENT_SEQUENCE,
            vec![item([el(
                tags::DIMENSION_INDEX_VALUES,
                VR::UL,
                dicom_core::value::PrimitiveValue::U32(index.into_iter().collect()),
            )])],
        ),
        seq(
            tags::PLANE_POSITION_SEQUENCE,
            vec![item([ds(tags::IMAGE_POSITION_PATIENT, &s.position)])],
        ),
        seq(
            tags::SEGMENT_IDENTIFICATION_SEQUENCE,
            vec![item([el(tags::REFERENCED_SEGMENT_NUMBER, VR::US, 1u16)])],
        ),
        seq(
            tags::DERIVATION_IMAGE_SEQUENCE,
            vec![item([
                seq(tags::SOURCE_IMAGE_SEQUENCE, vec![source]),
                seq(
                    tags::DERIVATION_CODE_SEQUENCE,
                    vec![code("113076", "DCM", "Segmentation")],
                ),
            ])],
        ),
    ])
}

/// Frames are indexed by segment, then by position along the slice normal.
fn dimension_items(uid: &str) -> Vec<InMemDicomObject> {
    [
        (
            tags::REFERENCED_SEGMENT_NUMBER,
            tags::SEGMENT_IDENTIFICATION_SEQUENCE,
            "Segment",
        ),
        (
            tags::IMAGE_POSITION_PATIENT,
            tags::PLANE_POSITION_SEQUENCE,
            "Image Position",
        ),
    ]
    .into_iter()
    .map(|(pointer, group, what)| {
        item([
            el(tags::DIMENSION_ORGANIZATION_UID, VR::UI, uid),
            el(tags::DIMENSION_INDEX_POINTER, VR::AT, pointer),
            el(tags::FUNCTIONAL_GROUP_POINTER, VR::AT, group),
            el(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, what),
        ])
    })
    .collect()
}

/// The Common Instance Reference module's item: the source series and its instances.
fn referenced_series(series: &Series) -> InMemDicomObject {
    let r = &series.reference;
    let mut instances: Vec<InMemDicomObject> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in &r.slices {
        if seen.insert(s.sop_instance.as_str()) {
            instances.push(item([
                el(tags::REFERENCED_SOP_CLASS_UID, VR::UI, s.sop_class.as_str()),
                el(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, s.sop_instance.as_str()),
            ]));
        }
    }
    item([
        el(tags::SERIES_INSTANCE_UID, VR::UI, r.series_uid.as_str()),
        seq(tags::REFERENCED_INSTANCE_SEQUENCE, instances),
    ])
}
