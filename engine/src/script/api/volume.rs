//! `Volume` (an image, f32 voxels) and `Labels` (a label map, u8): read and written only
//! inside the allowed folders; geometry, statistics, axial slices, resampling, thresholds and
//! connected components computed natively.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, Map, NativeCallContext, FLOAT, INT};

use super::vector::{count, number, Vector};
use crate::preprocess::{resample, Interp};
use crate::volume::{self, Geometry, LabelMap};

/// An image.
#[derive(Debug, Clone)]
pub struct Volume(pub Arc<volume::Volume>);

/// A label map.
#[derive(Debug, Clone)]
pub struct Labels(pub Arc<LabelMap>);

fn geometry_map(g: &Geometry) -> Map {
    let ints =
        |v: &[usize]| -> Dynamic { Dynamic::from(v.iter().map(|x| Dynamic::from(*x as INT)).collect::<Array>()) };
    let floats = |v: &[f64]| -> Dynamic { Dynamic::from(v.iter().map(|x| Dynamic::from(*x)).collect::<Array>()) };
    let mut m = Map::new();
    m.insert("dims".into(), ints(&g.dims));
    m.insert("spacing".into(), floats(&g.spacing));
    m.insert(
        "affine".into(),
        Dynamic::from(g.affine.iter().map(|row| floats(row)).collect::<Array>()),
    );
    m.insert("orientation".into(), Dynamic::from(g.orientation()));
    m
}

fn spacing(target: &Array) -> Result<[f64; 3], Box<EvalAltResult>> {
    if target.len() != 3 {
        return Err(format!("resample: give three voxel sizes in mm, found {}", target.len()).into());
    }
    let mut out = [0.0; 3];
    for (o, t) in out.iter_mut().zip(target) {
        *o = number(t, "resample: voxel size")?;
        if !(*o > 0.0 && o.is_finite()) {
            return Err(format!("resample: voxel sizes must be > 0, found {o}").into());
        }
    }
    Ok(out)
}

fn slice_of<T: Copy + Default + Into<f64>>(image: &volume::Image<T>, k: INT) -> Result<Vector, Box<EvalAltResult>> {
    let n = image.geometry.dims[2];
    let k = usize::try_from(k)
        .ok()
        .filter(|k| *k < n)
        .ok_or_else(|| format!("axial slice {k} out of range 0..{n}"))?;
    Ok(Vector::new(image.axial(k).iter().map(|v| (*v).into()).collect()))
}

/// Face-connected components of the voxels > 0, numbered 1.. by size (largest first, ties by
/// first voxel); 0 stays background.
pub fn components(labels: &LabelMap) -> LabelMap {
    let [nx, ny, nz] = labels.geometry.dims;
    let mut id = vec![0u32; labels.data.len()];
    let mut sizes: Vec<(usize, usize)> = Vec::new(); // (size, first voxel)
    let mut queue = VecDeque::new();
    for start in 0..labels.data.len() {
        if labels.data[start] == 0 || id[start] != 0 {
            continue;
        }
        let c = sizes.len() as u32 + 1;
        id[start] = c;
        queue.push_back(start);
        let mut size = 0;
        while let Some(v) = queue.pop_front() {
            size += 1;
            let (i, j, k) = (v % nx, (v / nx) % ny, v / (nx * ny));
            let mut visit = |w: usize| {
                if labels.data[w] > 0 && id[w] == 0 {
                    id[w] = c;
                    queue.push_back(w);
                }
            };
            if i > 0 {
                visit(v - 1);
            }
            if i + 1 < nx {
                visit(v + 1);
            }
            if j > 0 {
                visit(v - nx);
            }
            if j + 1 < ny {
                visit(v + nx);
            }
            if k > 0 {
                visit(v - nx * ny);
            }
            if k + 1 < nz {
                visit(v + nx * ny);
            }
        }
        sizes.push((size, start));
    }
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|a, b| sizes[*b].0.cmp(&sizes[*a].0).then(sizes[*a].1.cmp(&sizes[*b].1)));
    let mut rank = vec![0u8; sizes.len() + 1];
    for (r, c) in order.iter().enumerate() {
        rank[c + 1] = (r + 1).min(255) as u8;
    }
    LabelMap {
        geometry: labels.geometry.clone(),
        data: id.iter().map(|c| rank[*c as usize]).collect(),
    }
}

/// `write_rtstruct` / `write_seg`: the series and the output checked against the sandbox.
fn write_derived(
    ctx: &NativeCallContext,
    format: volume::dicom::DerivedFormat,
    l: &Labels,
    series: &str,
    path: &str,
    holes: volume::dicom::Holes,
) -> Result<Map, Box<EvalAltResult>> {
    let session = crate::script::host::session(ctx)?;
    let (folder, out) = (session.sandbox.read(series)?, session.sandbox.write(path)?);
    let s = volume::dicom::read_one_series(&folder).map_err(|e| e.to_string())?;
    let options = volume::dicom::Options {
        holes,
        ..volume::dicom::Options::default()
    };
    let written = format
        .write(&l.0, Path::new(series), &s, &out, &options)
        .map_err(|e| e.to_string())?;
    let value = rhai::serde::to_dynamic(&written).map_err(|e| e.to_string())?;
    value
        .try_cast::<Map>()
        .ok_or_else(|| "write_rtstruct / write_seg: no summary".into())
}

#[export_module]
pub mod volume_api {
    use super::*;

    /// An image (f32 voxels on a grid).
    pub type Volume = super::Volume;
    /// A label map (u8 voxels on a grid; > 0 is the structure).
    pub type Labels = super::Labels;

    /// Reads an image (NIfTI, or a DICOM series folder or file) inside the allowed folders:
    /// `load_volume("data/C2-001.nii.gz")`.
    #[rhai_fn(return_raw)]
    pub fn load_volume(ctx: NativeCallContext, path: &str) -> Result<Volume, Box<EvalAltResult>> {
        let file = crate::script::host::session(&ctx)?.sandbox.read(path)?;
        let v = volume::read_volume(&file).map_err(|e| e.to_string())?;
        Ok(Volume(Arc::new(v)))
    }

    /// Reads a label map inside the allowed folders: `load_labels("data/C2-001_gtv.nii.gz")`.
    #[rhai_fn(return_raw)]
    pub fn load_labels(ctx: NativeCallContext, path: &str) -> Result<Labels, Box<EvalAltResult>> {
        let file = crate::script::host::session(&ctx)?.sandbox.read(path)?;
        let l = volume::read_label_map(&file).map_err(|e| e.to_string())?;
        Ok(Labels(Arc::new(l)))
    }

    /// Writes an image (NIfTI, `.nii` or `.nii.gz`) inside the allowed folders:
    /// `write_volume(v, "out/v.nii.gz")`.
    #[rhai_fn(return_raw)]
    pub fn write_volume(ctx: NativeCallContext, v: Volume, path: &str) -> Result<(), Box<EvalAltResult>> {
        let file = crate::script::host::session(&ctx)?.sandbox.write(path)?;
        volume::write_volume(&file, &v.0).map_err(|e| e.to_string().into())
    }

    /// Writes a label map inside the allowed folders: `write_labels(mask, "out/mask.nii.gz")`.
    #[rhai_fn(return_raw)]
    pub fn write_labels(ctx: NativeCallContext, l: Labels, path: &str) -> Result<(), Box<EvalAltResult>> {
        let file = crate::script::host::session(&ctx)?.sandbox.write(path)?;
        volume::write_label_map(&file, &l.0).map_err(|e| e.to_string().into())
    }

    /// Writes the label map (voxels > 0, on the series' grid: predict on the series) as an RT
    /// Structure Set (ROI "GTV") referencing the DICOM series folder `series`, both inside the
    /// allowed folders; a map of `path`, `sop_instance`, `slices`, `voxels` and `items` (the
    /// contours): `write_rtstruct(model.predict(load_volume("in/MR1")).mask, "in/MR1", "out/MR1-rs.dcm")`.
    #[rhai_fn(return_raw)]
    pub fn write_rtstruct(
        ctx: NativeCallContext,
        l: Labels,
        series: &str,
        path: &str,
    ) -> Result<Map, Box<EvalAltResult>> {
        let holes = volume::dicom::Holes::Keyhole;
        super::write_derived(&ctx, volume::dicom::DerivedFormat::Rtstruct, &l, series, path, holes)
    }

    /// `write_rtstruct` with holes written as `"keyhole"` (joined to their island, the default)
    /// or `"rings"` (separate contours, the even-odd convention):
    /// `write_rtstruct(mask, "in/MR1", "out/MR1-rs.dcm", "rings")`.
    #[rhai_fn(return_raw, name = "write_rtstruct")]
    pub fn write_rtstruct_holes(
        ctx: NativeCallContext,
        l: Labels,
        series: &str,
        path: &str,
        holes: &str,
    ) -> Result<Map, Box<EvalAltResult>> {
        let holes: volume::dicom::Holes = holes.parse()?;
        super::write_derived(&ctx, volume::dicom::DerivedFormat::Rtstruct, &l, series, path, holes)
    }

    /// Writes the label map as a DICOM Segmentation (binary, one frame per slice) referencing
    /// the DICOM series folder `series`; the same map as `write_rtstruct` (`items`: the frames):
    /// `write_seg(mask, "in/MR1", "out/MR1-seg.dcm")`.
    #[rhai_fn(return_raw)]
    pub fn write_seg(ctx: NativeCallContext, l: Labels, series: &str, path: &str) -> Result<Map, Box<EvalAltResult>> {
        super::write_derived(
            &ctx,
            volume::dicom::DerivedFormat::Seg,
            &l,
            series,
            path,
            Default::default(),
        )
    }

    /// The grid: a map of `dims`, `spacing` (mm), `affine` (4 × 4, RAS+) and `orientation`:
    /// `v.geometry().spacing`.
    #[rhai_fn(pure, name = "geometry")]
    pub fn volume_geometry(v: &mut Volume) -> Map {
        geometry_map(&v.0.geometry)
    }

    /// The grid of a label map (as for a volume): `mask.geometry().dims`.
    #[rhai_fn(pure, name = "geometry")]
    pub fn labels_geometry(l: &mut Labels) -> Map {
        geometry_map(&l.0.geometry)
    }

    /// Intensity statistics: a map of `min`, `max`, `mean`, `std`, `voxels`: `v.stats().mean`.
    #[rhai_fn(pure)]
    pub fn stats(v: &mut Volume) -> Map {
        let d = &v.0.data;
        let n = d.len().max(1) as f64;
        let mean = d.iter().map(|x| f64::from(*x)).sum::<f64>() / n;
        let var = d.iter().map(|x| (f64::from(*x) - mean).powi(2)).sum::<f64>() / n;
        let (lo, hi) = (d.iter()).fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), x| (l.min(*x), h.max(*x)));
        let mut m = Map::new();
        m.insert("min".into(), Dynamic::from(f64::from(lo)));
        m.insert("max".into(), Dynamic::from(f64::from(hi)));
        m.insert("mean".into(), Dynamic::from(mean));
        m.insert("std".into(), Dynamic::from(var.sqrt()));
        m.insert("voxels".into(), Dynamic::from(d.len() as INT));
        m
    }

    /// Axial slice `k` as a vector (row-major, i fastest): `v.slice(12)`.
    #[rhai_fn(pure, name = "slice", return_raw)]
    pub fn volume_slice(v: &mut Volume, k: INT) -> Result<Vector, Box<EvalAltResult>> {
        slice_of(&v.0, k)
    }

    /// Axial slice `k` of a label map as a vector: `mask.slice(12)`.
    #[rhai_fn(pure, name = "slice", return_raw)]
    pub fn labels_slice(l: &mut Labels, k: INT) -> Result<Vector, Box<EvalAltResult>> {
        slice_of(&l.0, k)
    }

    /// Resampled to voxel sizes `[x, y, z]` mm (linear), same field of view:
    /// `v.resample([1.0, 1.0, 3.0])`.
    #[rhai_fn(pure, name = "resample", return_raw)]
    pub fn volume_resample(v: &mut Volume, target: Array) -> Result<Volume, Box<EvalAltResult>> {
        Ok(Volume(Arc::new(resample(&v.0, spacing(&target)?, Interp::Linear))))
    }

    /// A label map resampled to `[x, y, z]` mm (nearest neighbour): `mask.resample([1, 1, 3])`.
    #[rhai_fn(pure, name = "resample", return_raw)]
    pub fn labels_resample(l: &mut Labels, target: Array) -> Result<Labels, Box<EvalAltResult>> {
        Ok(Labels(Arc::new(resample(&l.0, spacing(&target)?, Interp::Nearest))))
    }

    /// The voxels at or above `value` as a label map (1) on the same grid: `v.threshold(0.5)`.
    #[rhai_fn(pure)]
    pub fn threshold(v: &mut Volume, value: FLOAT) -> Labels {
        let data = v.0.data.iter().map(|x| u8::from(f64::from(*x) >= value)).collect();
        Labels(Arc::new(LabelMap {
            geometry: v.0.geometry.clone(),
            data,
        }))
    }

    /// Face-connected components of the voxels > 0, numbered 1, 2, … from the largest (255
    /// and beyond share 255): `mask.components()`.
    #[rhai_fn(pure)]
    pub fn components(l: &mut Labels) -> Labels {
        Labels(Arc::new(super::components(&l.0)))
    }

    /// The largest label value (after `components()`: how many components, up to 255):
    /// `mask.components().max_label()`.
    #[rhai_fn(pure)]
    pub fn max_label(l: &mut Labels) -> INT {
        INT::from(l.0.data.iter().copied().max().unwrap_or(0))
    }

    /// Voxels > 0 (or equal to `label` with `mask.voxels(2)`): `mask.voxels()`.
    #[rhai_fn(pure, name = "voxels")]
    pub fn voxels(l: &mut Labels) -> INT {
        l.0.count(None) as INT
    }

    /// Voxels equal to `label`: `mask.voxels(2)`.
    #[rhai_fn(pure, name = "voxels", return_raw)]
    pub fn voxels_of(l: &mut Labels, label: INT) -> Result<INT, Box<EvalAltResult>> {
        let label = u8::try_from(count(label, "voxels: label")?).map_err(|_| format!("label {label} is not 0..255"))?;
        Ok(l.0.count(Some(label)) as INT)
    }

    /// The structure's volume (voxels > 0) in millilitres: `mask.volume_ml()`.
    #[rhai_fn(pure)]
    pub fn volume_ml(l: &mut Labels) -> FLOAT {
        l.0.count(None) as f64 * l.0.geometry.voxel_ml()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_face_connected_and_numbered_by_size() {
        // 4 x 3 x 1: a 3-voxel bar, a lone voxel, a diagonal neighbour that is not connected.
        let g = Geometry::axis_aligned([4, 3, 1], [1.0; 3]);
        #[rustfmt::skip]
        let data = vec![
            1, 1, 1, 0,
            0, 0, 0, 1,
            1, 0, 0, 0,
        ];
        let c = components(&LabelMap { geometry: g, data });
        assert_eq!(c.data, vec![1, 1, 1, 0, 0, 0, 0, 2, 3, 0, 0, 0]);
    }
}
