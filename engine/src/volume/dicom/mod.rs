//! DICOM series in (dicom-rs: `dicom-object`, `dicom-pixeldata`): a folder or file of MR images
//! becomes one [`Volume`] per series, with the geometry a radiotherapy physicist expects.
//!
//! - Slices are grouped by SeriesInstanceUID and sorted by their position along the slice
//!   normal (ImagePositionPatient · (row × column direction)), not by InstanceNumber.
//! - Voxel `(i, j, k)` is column `i`, row `j` of the `k`-th slice in that order (SimpleITK's
//!   order). In-plane spacing is PixelSpacing (`[row spacing, column spacing]` → `j`, `i`); the
//!   slice spacing is (last position − first) / (n − 1), not SliceThickness or
//!   SpacingBetweenSlices, and a gap that differs from it by more than 10 % is refused.
//! - DICOM's patient coordinates are LPS; the affine is NIfTI's RAS: rows x and y of the LPS
//!   affine negated (what SimpleITK's NIfTI writer and nibabel do).
//! - RescaleSlope / RescaleIntercept are applied (dicom-pixeldata's modality LUT).
//! - Enhanced (multi-frame) MR: positions per frame from the per-frame functional groups,
//!   orientation and spacing from the shared ones.
//!
//! Refused with the file and the reason: missing or inconsistent orientation, non-uniform
//! spacing (the gap and where), duplicate positions, mixed sizes, a non-image object, a file
//! that does not parse (truncated), a transfer syntax dicom-pixeldata cannot decode.

pub mod contour;
mod derived;
pub mod keyhole;
mod parse;
mod rtstruct;
mod rtstruct_read;
mod seg;

pub use derived::{new_uid, DerivedFormat, Options, Written, DEFAULT_UID_ROOT};
pub use keyhole::Holes;
pub use parse::{MAX_INFLATED_BYTES, MAX_SEQUENCE_DEPTH};
pub use rtstruct_read::read_rtstruct;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;

use super::{Error, Geometry, Image, Volume};

/// Relative deviation of one slice gap from the mean gap beyond which a series is refused.
pub const GAP_TOLERANCE: f64 = 0.10;

/// One series of a folder.
#[derive(Debug, Clone)]
pub struct Series {
    /// SeriesInstanceUID.
    pub uid: String,
    /// SeriesDescription (may be empty).
    pub description: String,
    /// The files, in slice order (a multi-frame file once).
    pub files: Vec<PathBuf>,
    /// The voxels and their grid.
    pub volume: Volume,
    /// What an object derived from this series (RTSTRUCT, SEG) copies and references.
    pub reference: Reference,
}

/// The patient, study and frame of reference of a series and its images in slice order: what
/// a derived object (RTSTRUCT, SEG) copies and points to.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The Patient, General Study and Frame of Reference elements of the first image, copied
    /// as they are (value, VR, character set).
    pub header: Vec<dicom_object::mem::InMemElement>,
    /// SeriesInstanceUID.
    pub series_uid: String,
    /// StudyInstanceUID, if the images have one.
    pub study_uid: Option<String>,
    /// FrameOfReferenceUID, if the images have one.
    pub frame_of_reference: Option<String>,
    /// Slice `k` of the volume.
    pub slices: Vec<SliceRef>,
}

/// The image a slice of the volume comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceRef {
    /// SOPClassUID of its file.
    pub sop_class: String,
    /// SOPInstanceUID of its file.
    pub sop_instance: String,
    /// Its frame number (from 1) in a multi-frame file; `None` for a single-frame image.
    pub frame: Option<u32>,
    /// ImagePositionPatient (LPS, mm).
    pub position: [f64; 3],
}

/// The elements a derived object copies from its source images.
const COPIED: [dicom_core::Tag; 13] = [
    tags::SPECIFIC_CHARACTER_SET,
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::STUDY_ID,
    tags::ACCESSION_NUMBER,
    tags::FRAME_OF_REFERENCE_UID,
    tags::POSITION_REFERENCE_INDICATOR,
];

/// Whether `path` is a DICOM file (the `DICM` magic at byte 128) or a folder holding one.
pub fn is_dicom(path: &Path) -> bool {
    if path.is_dir() {
        return files_below(path).iter().any(|f| has_magic(f));
    }
    has_magic(path)
}

fn has_magic(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut magic = [0u8; 4];
    f.seek(SeekFrom::Start(128)).is_ok() && f.read_exact(&mut magic).is_ok() && &magic == b"DICM"
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            if p.is_dir() && !hidden {
                stack.push(p);
            } else if p.is_file() && !hidden {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Reads the one series at `path` (a folder, or one multi-frame file); more than one is an
/// error listing them.
pub fn read_dicom_volume(path: &Path) -> Result<Volume, Error> {
    Ok(read_one_series(path)?.volume)
}

/// The one series at `path`, with what a derived object references; more than one is an
/// error listing them.
pub fn read_one_series(path: &Path) -> Result<Series, Error> {
    let mut series = read_series(path)?;
    if series.len() > 1 {
        let list: Vec<String> = series
            .iter()
            .map(|s| format!("{} ({} files, {:?})", s.uid, s.files.len(), s.description))
            .collect();
        return Err(dicom_error(
            path,
            format!(
                "holds {} series; give one series folder: {}",
                series.len(),
                list.join("; ")
            ),
        ));
    }
    Ok(series.remove(0))
}

/// Every image series at `path`, in SeriesInstanceUID order. In a folder, files without the
/// DICOM magic and DICOM objects without pixel data (an RTSTRUCT beside the images) are
/// skipped; a single file must be an image.
pub fn read_series(path: &Path) -> Result<Vec<Series>, Error> {
    let files = if path.is_dir() {
        files_below(path).into_iter().filter(|f| has_magic(f)).collect()
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        return Err(Error::Io {
            path: path.to_path_buf(),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        });
    };
    let mut groups: BTreeMap<String, Vec<(PathBuf, DefaultDicomObject)>> = BTreeMap::new();
    let mut skipped = Vec::new();
    for f in files {
        let obj = open(&f)?;
        if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
            skipped.push(format!(
                "{} ({})",
                f.display(),
                text(&obj, tags::MODALITY).unwrap_or_default()
            ));
            continue;
        }
        let uid = text(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_default();
        groups.entry(uid).or_default().push((f, obj));
    }
    if groups.is_empty() {
        let what = match skipped.as_slice() {
            [] => "no DICOM file".to_string(),
            s => format!("no image object (pixel data), only: {}", s.join(", ")),
        };
        return Err(dicom_error(path, what));
    }
    groups.into_iter().map(|(uid, objs)| assemble(uid, objs)).collect()
}

/// A whole DICOM file as an object (an RTSTRUCT, a SEG), read by delinea's checked reader.
pub fn open_object(path: &Path) -> Result<DefaultDicomObject, Error> {
    parse::read(path, parse::Until::End)
}

/// Opens a file up to and including its pixel data: some scanners write padding after the
/// pixel data that does not parse as elements (pydicom and dcm2niix ignore it).
fn open(path: &Path) -> Result<DefaultDicomObject, Error> {
    parse::read(path, parse::Until::PixelData)
}

fn dicom_error(path: &Path, reason: String) -> Error {
    Error::Unsupported {
        path: path.to_path_buf(),
        what: reason,
    }
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok().flatten()?;
    Some(e.to_str().ok()?.trim().trim_end_matches('\0').to_string())
}

fn floats(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<Vec<f64>> {
    obj.element_opt(tag).ok().flatten()?.to_multi_float64().ok()
}

/// The first item of sequence `seq` in `obj`.
fn first_item(obj: &InMemDicomObject, seq: dicom_core::Tag) -> Option<&InMemDicomObject> {
    obj.element_opt(seq).ok().flatten()?.items()?.first()
}

/// One 2D frame to place: where it is and where its pixels come from.
struct Frame {
    file: PathBuf,
    index: u32,
    position: [f64; 3],
}

/// Orientation, spacing and size shared by a series' frames.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Plane {
    row: [f64; 3],
    col: [f64; 3],
    spacing: [f64; 2],
    size: [usize; 2],
}

fn assemble(uid: String, objs: Vec<(PathBuf, DefaultDicomObject)>) -> Result<Series, Error> {
    let description = text(&objs[0].1, tags::SERIES_DESCRIPTION).unwrap_or_default();
    let mut plane: Option<(Plane, PathBuf)> = None;
    let mut frames = Vec::new();
    for (file, obj) in &objs {
        let (p, positions) = frame_geometry(file, obj)?;
        match &plane {
            None => plane = Some((p, file.clone())),
            Some((first, from)) => check_same_plane(first, from, &p, file)?,
        }
        for (index, position) in positions.into_iter().enumerate() {
            frames.push(Frame {
                file: file.clone(),
                index: index as u32,
                position,
            });
        }
    }
    let Some((plane, _)) = plane else {
        return Err(dicom_error(Path::new(&uid), "a series without frames".into()));
    };
    let normal = cross(plane.row, plane.col);
    let along = |f: &Frame| dot(f.position, normal);
    frames.sort_by(|a, b| along(a).total_cmp(&along(b)));
    let spacing_k = slice_spacing(&frames, &along)?;
    let geometry = geometry(&plane, normal, spacing_k, frames[0].position, frames.len());
    let data = pixels(&objs, &frames, &plane)?;
    let reference = reference(&uid, &objs, &frames);
    let mut files: Vec<PathBuf> = Vec::new();
    for f in &frames {
        if files.last() != Some(&f.file) {
            files.push(f.file.clone());
        }
    }
    Ok(Series {
        uid,
        description,
        files,
        volume: Image { geometry, data },
        reference,
    })
}

fn reference(uid: &str, objs: &[(PathBuf, DefaultDicomObject)], frames: &[Frame]) -> Reference {
    let first = &objs[0].1;
    let header = COPIED
        .iter()
        .filter_map(|tag| first.element_opt(*tag).ok().flatten().cloned())
        .collect();
    let slices = frames
        .iter()
        .map(|f| {
            let obj = &objs.iter().find(|(file, _)| *file == f.file).expect("a frame's file").1;
            let multi = text(obj, tags::NUMBER_OF_FRAMES)
                .and_then(|t| t.parse::<u32>().ok())
                .unwrap_or(1)
                > 1;
            SliceRef {
                sop_class: text(obj, tags::SOP_CLASS_UID).unwrap_or_default(),
                sop_instance: text(obj, tags::SOP_INSTANCE_UID).unwrap_or_default(),
                frame: multi.then_some(f.index + 1),
                position: f.position,
            }
        })
        .collect();
    Reference {
        header,
        series_uid: uid.to_string(),
        study_uid: text(first, tags::STUDY_INSTANCE_UID).filter(|s| !s.is_empty()),
        frame_of_reference: text(first, tags::FRAME_OF_REFERENCE_UID).filter(|s| !s.is_empty()),
        slices,
    }
}

/// The plane and the frame positions of one file (one for a classic image, many for an
/// enhanced multi-frame one).
fn frame_geometry(file: &Path, obj: &InMemDicomObject) -> Result<(Plane, Vec<[f64; 3]>), Error> {
    let frames = text(obj, tags::NUMBER_OF_FRAMES)
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(1);
    let shared = first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let per_frame = obj
        .element_opt(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .ok()
        .flatten()
        .and_then(|e| e.items());
    // A value from the image itself, else the shared functional groups' `seq`, else frame 0's.
    let lookup = |seq: dicom_core::Tag, tag: dicom_core::Tag| -> Option<Vec<f64>> {
        floats(obj, tag)
            .or_else(|| shared.and_then(|s| first_item(s, seq)).and_then(|i| floats(i, tag)))
            .or_else(|| {
                per_frame
                    .and_then(|p| p.first())
                    .and_then(|f| first_item(f, seq))
                    .and_then(|i| floats(i, tag))
            })
    };
    let bad = |what: &str| dicom_error(file, what.to_string());
    let iop = lookup(tags::PLANE_ORIENTATION_SEQUENCE, tags::IMAGE_ORIENTATION_PATIENT)
        .filter(|v| v.len() == 6)
        .ok_or_else(|| bad("no ImageOrientationPatient (six direction cosines): the slice orientation is unknown"))?;
    let spacing = lookup(tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING)
        .filter(|v| v.len() == 2 && v.iter().all(|s| *s > 0.0 && s.is_finite()))
        .ok_or_else(|| bad("no valid PixelSpacing"))?;
    let (row, col) = ([iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]]);
    if (norm(row) - 1.0).abs() > 1e-3 || (norm(col) - 1.0).abs() > 1e-3 || dot(row, col).abs() > 1e-3 {
        return Err(bad(&format!(
            "ImageOrientationPatient {iop:?} is not two orthogonal unit vectors"
        )));
    }
    let size = |tag| text(obj, tag).and_then(|t| t.parse::<usize>().ok()).filter(|n| *n > 0);
    let (rows, cols) = match (size(tags::ROWS), size(tags::COLUMNS)) {
        (Some(r), Some(c)) => (r, c),
        _ => return Err(bad("no Rows / Columns")),
    };
    let positions: Vec<[f64; 3]> = if frames > 1 {
        let items = per_frame
            .filter(|p| p.len() == frames)
            .ok_or_else(|| bad("a multi-frame image without one PerFrameFunctionalGroupsSequence item per frame"))?;
        items
            .iter()
            .enumerate()
            .map(|(k, item)| {
                let p = first_item(item, tags::PLANE_POSITION_SEQUENCE)
                    .and_then(|i| floats(i, tags::IMAGE_POSITION_PATIENT));
                p.filter(|v| v.len() == 3)
                    .map(|v| [v[0], v[1], v[2]])
                    .ok_or_else(|| bad(&format!("frame {} has no ImagePositionPatient", k + 1)))
            })
            .collect::<Result<_, _>>()?
    } else {
        let p = lookup(tags::PLANE_POSITION_SEQUENCE, tags::IMAGE_POSITION_PATIENT)
            .filter(|v| v.len() == 3)
            .ok_or_else(|| bad("no ImagePositionPatient: the slice position is unknown"))?;
        vec![[p[0], p[1], p[2]]]
    };
    let plane = Plane {
        row,
        col,
        spacing: [spacing[0], spacing[1]],
        size: [rows, cols],
    };
    Ok((plane, positions))
}

fn check_same_plane(a: &Plane, a_file: &Path, b: &Plane, b_file: &Path) -> Result<(), Error> {
    let differ = |what: String| {
        dicom_error(
            b_file,
            format!("{what} differs from {} in the same series", a_file.display()),
        )
    };
    if a.size != b.size {
        return Err(differ(format!(
            "its size {} × {} (rows × columns)",
            b.size[0], b.size[1]
        )));
    }
    let close = |x: [f64; 3], y: [f64; 3]| (0..3).all(|i| (x[i] - y[i]).abs() < 1e-4);
    if !close(a.row, b.row) || !close(a.col, b.col) {
        return Err(differ(format!("its ImageOrientationPatient {:?} {:?}", b.row, b.col)));
    }
    if (a.spacing[0] - b.spacing[0]).abs() > 1e-4 || (a.spacing[1] - b.spacing[1]).abs() > 1e-4 {
        return Err(differ(format!("its PixelSpacing {:?}", b.spacing)));
    }
    Ok(())
}

/// The slice spacing (mean gap along the normal), refusing duplicates and uneven gaps.
fn slice_spacing(frames: &[Frame], along: &dyn Fn(&Frame) -> f64) -> Result<f64, Error> {
    let n = frames.len();
    if n == 1 {
        return Ok(1.0); // one slice: NIfTI needs a positive spacing; nothing depends on it
    }
    let mean = (along(&frames[n - 1]) - along(&frames[0])) / (n - 1) as f64;
    if let Some(w) = frames.windows(2).find(|w| (along(&w[1]) - along(&w[0])).abs() < 1e-3) {
        return Err(dicom_error(
            &w[1].file,
            format!(
                "has the same position along the slice normal as {} (frame {}): duplicate slices",
                w[0].file.display(),
                w[0].index + 1
            ),
        ));
    }
    for w in frames.windows(2) {
        let gap = along(&w[1]) - along(&w[0]);
        if (gap - mean).abs() > GAP_TOLERANCE * mean {
            return Err(dicom_error(
                &w[1].file,
                format!(
                    "is {gap:.3} mm from the previous slice ({}) where the series' mean spacing is {mean:.3} mm: \
                     non-uniform slice spacing (a missing slice?) beyond {:.0} %",
                    w[0].file.display(),
                    GAP_TOLERANCE * 100.0
                ),
            ));
        }
    }
    Ok(mean)
}

/// The RAS affine of the sorted frames (see the module docs).
fn geometry(p: &Plane, normal: [f64; 3], spacing_k: f64, origin: [f64; 3], slices: usize) -> Geometry {
    let spacing = [p.spacing[1], p.spacing[0], spacing_k];
    let axes = [p.row, p.col, normal];
    let mut affine = [[0.0; 4]; 4];
    for r in 0..3 {
        let flip = if r < 2 { -1.0 } else { 1.0 }; // LPS → RAS
        for (a, axis) in axes.iter().enumerate() {
            affine[r][a] = flip * axis[r] * spacing[a] + 0.0; // + 0.0: no -0 in the output
        }
        affine[r][3] = flip * origin[r] + 0.0;
    }
    affine[3][3] = 1.0;
    Geometry {
        dims: [p.size[1], p.size[0], slices],
        spacing,
        affine,
    }
}

/// The rescaled voxels of every frame in slice order.
fn pixels(objs: &[(PathBuf, DefaultDicomObject)], frames: &[Frame], p: &Plane) -> Result<Vec<f32>, Error> {
    let first = frames.first().map_or(Path::new(""), |f| f.file.as_path());
    let voxels =
        crate::volume::limits::check_voxels(first, "Rows × Columns × frames", &[p.size[0], p.size[1], frames.len()])?;
    let px = p.size[0] * p.size[1];
    let mut decoded: BTreeMap<&Path, dicom_pixeldata::DecodedPixelData<'_>> = BTreeMap::new();
    let mut data = Vec::with_capacity(voxels);
    for f in frames {
        if !decoded.contains_key(f.file.as_path()) {
            let obj = &objs.iter().find(|(file, _)| *file == f.file).map(|(_, o)| o);
            let Some(obj) = obj else { continue };
            let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
            let d = obj.decode_pixel_data().map_err(|e| {
                dicom_error(
                    &f.file,
                    format!("cannot decode its pixel data (transfer syntax {ts}): {e}"),
                )
            })?;
            check_samples(&d, &f.file)?;
            decoded.insert(f.file.as_path(), d);
        }
        let d = &decoded[f.file.as_path()];
        let frame: Vec<f32> = d
            .to_vec_frame(f.index)
            .map_err(|e| dicom_error(&f.file, format!("frame {}: {e}", f.index + 1)))?;
        if frame.len() != px {
            return Err(dicom_error(
                &f.file,
                format!("frame {} holds {} pixels, not {px}", f.index + 1, frame.len()),
            ));
        }
        data.extend(frame.into_iter().map(|v| if v.is_finite() { v } else { 0.0 }));
    }
    Ok(data)
}

/// One sample per pixel, and Bits Stored within 1 ..= Bits Allocated (PS3.5 8.1.1):
/// dicom-pixeldata's rescale table has 2^BitsStored entries and asserts BitsStored is 1 to 32
/// (found by fuzzing: a BitsStored of 40 in 16-bit pixels panicked; 32 would cost 16 GiB).
fn check_samples(d: &dicom_pixeldata::DecodedPixelData<'_>, file: &Path) -> Result<(), Error> {
    if d.samples_per_pixel() != 1 {
        return Err(dicom_error(
            file,
            format!("has {} samples per pixel; an MR image has 1", d.samples_per_pixel()),
        ));
    }
    let (stored, allocated) = (d.bits_stored(), d.bits_allocated());
    if stored == 0 || stored > allocated {
        return Err(dicom_error(
            file,
            format!("BitsStored {stored} is not within 1 to its BitsAllocated {allocated} (corrupt)"),
        ));
    }
    Ok(())
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

#[cfg(test)]
mod tests;
