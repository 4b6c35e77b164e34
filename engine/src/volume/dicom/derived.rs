//! What the RTSTRUCT and SEG writers share: new UIDs, the options of a derived object, the
//! source series' mask slices, element builders and the atomic file write.
//!
//! UIDs are generated under `2.25.` (a UUID-derived root, ISO/IEC 9834-8, that needs no
//! registration) from 128 random bits, or under the root the site gives (`--uid-root`, its
//! registered organisation root), filled up to DICOM's 64 characters. Nothing of the source
//! series is modified: a derived object only copies its Patient and Study elements and
//! references its images.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use dicom_core::header::Header;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::mem::InMemElement;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;

use super::{dicom_error, Reference, Series};
use crate::volume::{Error, LabelMap};

/// delinea's ImplementationClassUID (file meta group), a fixed UUID-derived UID.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.101700864820841452290348971963616081626";

/// The UID root used when the site gives none.
pub const DEFAULT_UID_ROOT: &str = "2.25";

/// How a derived object is labelled and identified.
#[derive(Debug, Clone)]
pub struct Options {
    /// The structure's name: ROIName of the RTSTRUCT, SegmentLabel of the SEG.
    pub roi_name: String,
    /// Which label of the mask is the structure; `None`: every non-zero voxel.
    pub label: Option<u8>,
    /// The UID root (`DEFAULT_UID_ROOT` when `None`).
    pub uid_root: Option<String>,
    /// What produced the mask (SeriesDescription, the algorithm's name).
    pub algorithm: String,
    /// RTSTRUCT: holes joined to their island as keyholes (the default) or separate rings.
    pub holes: super::Holes,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            roi_name: "GTV".into(),
            label: None,
            uid_root: None,
            algorithm: format!("delinea {}", crate::VERSION),
            holes: super::Holes::Keyhole,
        }
    }
}

impl Options {
    /// Refuses a name or root a DICOM reader would choke on.
    pub fn check(&self) -> Result<(), String> {
        let n = &self.roi_name;
        if n.is_empty() || n.len() > 64 || !n.chars().all(|c| c.is_ascii_graphic() || c == ' ') || n.contains('\\') {
            return Err(format!(
                "structure name {n:?} must be 1 to 64 printable ASCII characters without a backslash"
            ));
        }
        if let Some(root) = &self.uid_root {
            let parts_ok = root
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0')));
            if !parts_ok || root.len() > 40 {
                return Err(format!(
                    "UID root {root:?} must be dot-separated numbers without leading zeros, at most 40 characters"
                ));
            }
        }
        Ok(())
    }
}

/// The DICOM objects a mask can be written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DerivedFormat {
    /// RT Structure Set: closed planar contours (what planning systems import).
    Rtstruct,
    /// Segmentation (binary): the mask's voxels, one frame per slice.
    Seg,
}

impl DerivedFormat {
    /// The file name's ending: `<case>.rtstruct.dcm`, `<case>.seg.dcm`.
    pub fn extension(self) -> &'static str {
        match self {
            DerivedFormat::Rtstruct => "rtstruct.dcm",
            DerivedFormat::Seg => "seg.dcm",
        }
    }

    /// Writes the structure of `mask` (read from `mask_path`, named in errors) at `out` as this
    /// object, referencing `series`.
    pub fn write(
        self,
        mask: &LabelMap,
        mask_path: &Path,
        series: &Series,
        out: &Path,
        options: &Options,
    ) -> Result<Written, Error> {
        let slices = mask_slices(mask, mask_path, series, options)?;
        let sop_instance = new_uid(options.uid_root.as_deref());
        let (obj, items) = match self {
            DerivedFormat::Rtstruct => super::rtstruct::build(series, &slices, &sop_instance, options),
            DerivedFormat::Seg => super::seg::build(series, &slices, &sop_instance, options),
        };
        write(out, obj)?;
        Ok(Written {
            path: out.to_path_buf(),
            format: self,
            sop_instance,
            slices: slices.iter().filter(|s| s.iter().any(|v| *v)).count(),
            voxels: slices.iter().flatten().filter(|v| **v).count(),
            items,
        })
    }
}

/// What a derived object holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    /// The file.
    pub path: std::path::PathBuf,
    /// Which object.
    pub format: DerivedFormat,
    /// Its SOPInstanceUID.
    pub sop_instance: String,
    /// Slices of the series the structure is on.
    pub slices: usize,
    /// Voxels of the structure.
    pub voxels: usize,
    /// RTSTRUCT: its contours (islands and holes); SEG: its frames.
    pub items: usize,
}

impl Series {
    /// Whether an RTSTRUCT or SEG can reference this series: it needs the study, the Frame of
    /// Reference and every image's SOPInstanceUID.
    pub fn referenceable(&self) -> Result<(), Error> {
        let r = &self.reference;
        let missing: Vec<&str> = [
            ("StudyInstanceUID", r.study_uid.is_none()),
            ("FrameOfReferenceUID", r.frame_of_reference.is_none()),
            ("SOPInstanceUID", r.slices.iter().any(|s| s.sop_instance.is_empty())),
        ]
        .into_iter()
        .filter_map(|(what, absent)| absent.then_some(what))
        .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let first = self
            .files
            .first()
            .map(PathBuf::as_path)
            .unwrap_or(Path::new(&r.series_uid));
        Err(dicom_error(
            first,
            format!(
                "series {} lacks {}: an RTSTRUCT or SEG cannot reference it",
                r.series_uid,
                missing.join(", ")
            ),
        ))
    }
}

static UID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new UID under `root` (see the module docs).
pub fn new_uid(root: Option<&str>) -> String {
    let root = root.unwrap_or(DEFAULT_UID_ROOT);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let count = UID_COUNTER.fetch_add(1, Ordering::Relaxed);
    // Two randomly keyed SipHashes of (time, pid, counter): 128 bits no other call repeats.
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_u64(count);
        h.write_u8(salt);
        h.finish()
    };
    let value = (u128::from(half(0)) << 64 | u128::from(half(1))).max(1);
    let digits = value.to_string();
    let room = 64 - root.len() - 1;
    format!("{root}.{}", &digits[..digits.len().min(room)])
}

/// The date and time now (UTC) as DICOM DA and TM.
pub fn now() -> (String, String) {
    let t = crate::fsutil::utc_now(); // 2026-12-02T19:40:00.123Z
    (t[..10].replace('-', ""), t[11..19].replace(':', ""))
}

/// The mask's structure as one `bool` slice per slice of the series, after checking the mask
/// lies on the series' grid and the series can be referenced.
fn mask_slices(mask: &LabelMap, mask_path: &Path, series: &Series, options: &Options) -> Result<Vec<Vec<bool>>, Error> {
    options.check().map_err(|e| dicom_error(mask_path, e))?;
    if let Some(detail) = series.volume.geometry.mismatch(&mask.geometry) {
        return Err(dicom_error(
            mask_path,
            format!(
                "is not on the grid of series {} ({detail}); predict on that series to get a mask for it",
                series.reference.series_uid
            ),
        ));
    }
    series.referenceable()?;
    let [w, h, d] = mask.geometry.dims;
    let selected = |v: u8| options.label.map_or(v != 0, |l| v == l);
    Ok((0..d)
        .map(|k| {
            mask.data[k * w * h..(k + 1) * w * h]
                .iter()
                .map(|&v| selected(v))
                .collect()
        })
        .collect())
}

/// An element with a primitive value.
pub fn el(tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) -> InMemElement {
    DataElement::new(tag, vr, value.into())
}

/// A sequence element.
pub fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, dicom_core::value::DataSetSequence::from(items))
}

/// An item (or data set) of `elements`.
pub fn item(elements: impl IntoIterator<Item = InMemElement>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

/// A multi-valued element of strings (`DS`, `IS`, `CS`).
pub fn strs(tag: Tag, vr: VR, values: impl IntoIterator<Item = String>) -> InMemElement {
    el(tag, vr, PrimitiveValue::Strs(values.into_iter().collect()))
}

/// A decimal string of `values`, each within DS's 16 characters.
pub fn ds(tag: Tag, values: &[f64]) -> InMemElement {
    strs(tag, VR::DS, values.iter().map(|v| decimal(*v)))
}

/// `v` in at most 16 characters, as precise as they allow.
fn decimal(v: f64) -> String {
    for places in (0..=10).rev() {
        let s = format!("{:.*}", places, v + 0.0);
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            &s
        };
        let s = if s == "-0" { "0" } else { s };
        if s.len() <= 16 {
            return s.to_string();
        }
    }
    format!("{v:.6e}")
}

/// A code sequence item (CodeValue, CodingSchemeDesignator, CodeMeaning).
pub fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    item([
        el(tags::CODE_VALUE, VR::SH, value),
        el(tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme),
        el(tags::CODE_MEANING, VR::LO, meaning),
    ])
}

/// The source's copy of `tag`, or the element empty (a type 2 element the source lacks).
pub fn copied(reference: &Reference, tag: Tag, vr: VR) -> InMemElement {
    reference
        .header
        .iter()
        .find(|e| e.tag() == tag)
        .cloned()
        .unwrap_or_else(|| el(tag, vr, PrimitiveValue::Empty))
}

/// The Patient and General Study elements (copied) and the SOP Common ones of a new object.
pub fn common(reference: &Reference, sop_class: &str, sop_instance: &str) -> Vec<InMemElement> {
    let (date, time) = now();
    let mut out: Vec<InMemElement> = reference
        .header
        .iter()
        .filter(|e| e.tag() == tags::SPECIFIC_CHARACTER_SET)
        .cloned()
        .collect();
    out.extend([
        el(tags::SOP_CLASS_UID, VR::UI, sop_class),
        el(tags::SOP_INSTANCE_UID, VR::UI, sop_instance),
        el(tags::INSTANCE_CREATION_DATE, VR::DA, date),
        el(tags::INSTANCE_CREATION_TIME, VR::TM, time),
        el(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000"),
    ]);
    for (tag, vr) in [
        (tags::PATIENT_NAME, VR::PN),
        (tags::PATIENT_ID, VR::LO),
        (tags::PATIENT_BIRTH_DATE, VR::DA),
        (tags::PATIENT_SEX, VR::CS),
        (tags::STUDY_INSTANCE_UID, VR::UI),
        (tags::STUDY_DATE, VR::DA),
        (tags::STUDY_TIME, VR::TM),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
        (tags::STUDY_ID, VR::SH),
        (tags::ACCESSION_NUMBER, VR::SH),
    ] {
        out.push(copied(reference, tag, vr));
    }
    out.extend([
        el(tags::MANUFACTURER, VR::LO, "delinea"),
        el(tags::SOFTWARE_VERSIONS, VR::LO, crate::VERSION),
    ]);
    out
}

/// Writes `obj` to `path` (Explicit VR Little Endian) atomically.
pub fn write(path: &Path, obj: InMemDicomObject) -> Result<(), Error> {
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(format!("DELINEA_{}", crate::VERSION));
    let file = obj
        .with_meta(meta)
        .map_err(|e| dicom_error(path, format!("cannot build the file meta group: {e}")))?;
    crate::fsutil::write_atomic(path, |w| file.write_all(w).map_err(std::io::Error::other)).map_err(|cause| Error::Io {
        path: path.to_path_buf(),
        cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_unique_valid_and_under_the_root() {
        let a = new_uid(None);
        let b = new_uid(None);
        assert_ne!(a, b);
        assert!(a.starts_with("2.25.") && a.len() <= 64, "{a}");
        let c = new_uid(Some("1.2.826.0.1.3680043.10.999"));
        assert!(c.starts_with("1.2.826.0.1.3680043.10.999.") && c.len() <= 64, "{c}");
        for u in [a, b, c] {
            assert!(
                u.split('.').all(|p| !p.is_empty() && (p == "0" || !p.starts_with('0'))),
                "{u}"
            );
        }
    }

    #[test]
    fn decimals_fit_sixteen_characters() {
        assert_eq!(decimal(-0.0), "0");
        assert_eq!(decimal(1.5), "1.5");
        assert_eq!(decimal(-123.456789012345), "-123.4567890123");
        assert_eq!(decimal(-12345.678901234567), "-12345.678901235");
        assert!(decimal(1e300).len() <= 16);
    }

    #[test]
    fn bad_names_and_roots_are_refused() {
        let bad = |o: Options| o.check().unwrap_err();
        assert!(bad(Options {
            roi_name: "".into(),
            ..Options::default()
        })
        .contains("structure name"));
        assert!(bad(Options {
            roi_name: "a\\b".into(),
            ..Options::default()
        })
        .contains("backslash"));
        assert!(bad(Options {
            uid_root: Some("1.02.3".into()),
            ..Options::default()
        })
        .contains("UID root"));
        assert!(Options {
            uid_root: Some("1.2.3".into()),
            ..Options::default()
        }
        .check()
        .is_ok());
    }
}
