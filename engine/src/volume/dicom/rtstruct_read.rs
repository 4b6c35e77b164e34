//! An RT Structure Set read back as a label map on its series' grid: the ROI's closed planar
//! contours, each placed on the slice whose plane holds it, filled with the even-odd rule at
//! pixel centres (so keyholes, holes written as rings inside their island, and islands inside
//! holes all read as drawn).

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::contour::{fill_even_odd, Contour};
use super::{cross, dot, norm, text, Series};
use crate::volume::{Error, Image, LabelMap};

/// The ROI `roi` (by name; the only ROI when `None`) of the RT Structure Set at `path` as a
/// label map (1 inside) on `series`' grid.
pub fn read_rtstruct(path: &Path, series: &Series, roi: Option<&str>) -> Result<LabelMap, Error> {
    let bad = |reason: String| Error::Unsupported {
        path: path.to_path_buf(),
        what: reason,
    };
    let obj = super::open_object(path)?;
    if text(&obj, tags::SOP_CLASS_UID).as_deref() != Some(super::rtstruct::SOP_CLASS) {
        return Err(bad("not an RT Structure Set (SOPClassUID)".into()));
    }
    check_frame(&obj, series).map_err(bad)?;
    let number = roi_number(&obj, roi).map_err(bad)?;
    let g = &series.volume.geometry;
    let [w, h, depth] = g.dims;
    let mut slices: Vec<Vec<Contour>> = vec![Vec::new(); depth];
    for (n, points) in closed_contours(&obj, &number).into_iter().enumerate() {
        let (k, ring) = place(series, &points).map_err(|e| bad(format!("contour {}: {e}", n + 1)))?;
        slices[k].push(ring);
    }
    let mut data = Vec::with_capacity(g.len());
    for contours in &slices {
        data.extend(fill_even_odd(contours, w, h).into_iter().map(u8::from));
    }
    Ok(Image {
        geometry: g.clone(),
        data,
    })
}

/// Refuses a structure set drawn on another frame of reference than the series'.
fn check_frame(obj: &InMemDicomObject, series: &Series) -> Result<(), String> {
    let theirs = items(obj, tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE)
        .first()
        .and_then(|i| text(i, tags::FRAME_OF_REFERENCE_UID));
    match (theirs, &series.reference.frame_of_reference) {
        (Some(t), Some(s)) if t != *s => Err(format!(
            "drawn on frame of reference {t}, but series {} is on {s}",
            series.uid
        )),
        _ => Ok(()),
    }
}

/// The ROINumber of the ROI named `roi`; without a name, of the only ROI, or among several (a
/// planning system's export holds the body, organs and target volumes) of the only one
/// interpreted as a GTV (RTROIInterpretedType), else the only one named "GTV" in any case.
fn roi_number(obj: &InMemDicomObject, roi: Option<&str>) -> Result<String, String> {
    let rois: Vec<(String, String)> = items(obj, tags::STRUCTURE_SET_ROI_SEQUENCE)
        .iter()
        .filter_map(|i| Some((text(i, tags::ROI_NUMBER)?, text(i, tags::ROI_NAME).unwrap_or_default())))
        .collect();
    let names: Vec<&str> = rois.iter().map(|(_, n)| n.as_str()).collect();
    match (roi, rois.as_slice()) {
        (_, []) => Err("no ROI in StructureSetROISequence".into()),
        (None, [(number, _)]) => Ok(number.clone()),
        (None, _) => the_gtv(obj, &rois).ok_or_else(|| {
            format!(
                "{} ROIs ({names:?}), none of them the only GTV: name the one to read",
                rois.len()
            )
        }),
        (Some(r), _) => rois
            .iter()
            .find(|(_, n)| n == r)
            .map(|(number, _)| number.clone())
            .ok_or_else(|| format!("no ROI named {r:?} (it has {names:?})")),
    }
}

/// The number of the only ROI interpreted as a GTV, else of the only one named "GTV".
fn the_gtv(obj: &InMemDicomObject, rois: &[(String, String)]) -> Option<String> {
    let only = |numbers: Vec<String>| <[String; 1]>::try_from(numbers).ok().map(|[n]| n);
    let interpreted: Vec<String> = items(obj, tags::RTROI_OBSERVATIONS_SEQUENCE)
        .iter()
        .filter(|o| text(o, tags::RTROI_INTERPRETED_TYPE).is_some_and(|t| t.trim() == "GTV"))
        .filter_map(|o| text(o, tags::REFERENCED_ROI_NUMBER))
        .filter(|n| rois.iter().any(|(number, _)| number == n))
        .collect();
    let named = rois.iter().filter(|(_, name)| name.trim().eq_ignore_ascii_case("GTV"));
    only(interpreted).or_else(|| only(named.map(|(n, _)| n.clone()).collect()))
}

/// The CLOSED_PLANAR contours of ROI `number`, each as patient points (LPS, mm).
fn closed_contours(obj: &InMemDicomObject, number: &str) -> Vec<Vec<[f64; 3]>> {
    let roi = items(obj, tags::ROI_CONTOUR_SEQUENCE)
        .iter()
        .find(|i| text(i, tags::REFERENCED_ROI_NUMBER).as_deref() == Some(number));
    let contours = roi.map_or(&[][..], |r| items(r, tags::CONTOUR_SEQUENCE));
    contours
        .iter()
        .filter(|c| text(c, tags::CONTOUR_GEOMETRIC_TYPE).as_deref() == Some("CLOSED_PLANAR"))
        .filter_map(|c| {
            c.element_opt(tags::CONTOUR_DATA)
                .ok()
                .flatten()?
                .to_multi_float64()
                .ok()
        })
        .map(|v| v.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect())
        .collect()
}

/// The slice whose plane holds `points` and the points in its pixel coordinates `(i, j)`.
fn place(series: &Series, points: &[[f64; 3]]) -> Result<(usize, Contour), String> {
    let g = &series.volume.geometry;
    let col = |c: usize| [-g.affine[0][c], -g.affine[1][c], g.affine[2][c]]; // RAS → LPS
    let (u, v) = (col(0), col(1));
    let normal = cross(u, v);
    let unit = norm(normal);
    let first = points.first().ok_or("no points")?;
    let height = |p: [f64; 3], o: [f64; 3]| dot(sub(p, o), normal) / unit;
    let positions: Vec<[f64; 3]> = series.reference.slices.iter().map(|s| s.position).collect();
    let (k, off) = (0..positions.len())
        .map(|k| (k, height(*first, positions[k]).abs()))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or("the series has no slices")?;
    let tolerance = 0.25 * g.spacing[2];
    if off > tolerance || points.iter().any(|p| height(*p, positions[k]).abs() > tolerance) {
        return Err(format!(
            "not on the plane of any slice (nearest: slice {k}, {off:.3} mm away)"
        ));
    }
    let o = positions[k];
    let ring = points
        .iter()
        .map(|p| [dot(sub(*p, o), u) / dot(u, u), dot(sub(*p, o), v) / dot(v, v)])
        .collect();
    Ok((k, ring))
}

/// The items of sequence `tag` (none when absent), borrowed.
fn items(obj: &InMemDicomObject, tag: dicom_core::Tag) -> &[InMemDicomObject] {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.items())
        .unwrap_or(&[])
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
