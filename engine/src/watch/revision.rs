//! How much of the model's delineation the oncologist changed: the revision ratio (README
//! "Drop folder"), with DSC and HD95 of the prediction against the final label, one row of
//! `OUTBOX/revisions.csv` per registered label.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::metrics::{self, fmt_value};
use crate::volume::LabelMap;

/// One registered label measured against the prediction the department saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    /// The case.
    pub case: String,
    /// Whose label (`-` when the file name named none).
    pub rater: String,
    /// The model generation that predicted the mask (0: the job's model).
    pub model: u32,
    /// Voxels the model marked.
    pub predicted_voxels: usize,
    /// Voxels of the final label.
    pub final_voxels: usize,
    /// Voxels the oncologist added (in the label, not in the prediction).
    pub added_voxels: usize,
    /// Voxels the oncologist removed (in the prediction, not in the label).
    pub removed_voxels: usize,
    /// `(added + removed) / final`: |P Δ F| / |F|. 0 when both are empty; `None` (undefined)
    /// when the label is empty and the prediction is not.
    #[serde(serialize_with = "metrics::ser_value", deserialize_with = "metrics::de_value")]
    pub revision_ratio: Option<f64>,
    /// Dice of the prediction against the label.
    #[serde(serialize_with = "metrics::ser_value", deserialize_with = "metrics::de_value")]
    pub dsc: Option<f64>,
    /// HD95 (mm) of the prediction against the label.
    #[serde(serialize_with = "metrics::ser_value", deserialize_with = "metrics::de_value")]
    pub hd95: Option<f64>,
}

impl Revision {
    /// Compares the predicted mask with the final label (same grid, checked by the caller).
    pub fn measure(case: &str, rater: &str, model: u32, predicted: &LabelMap, label: &LabelMap) -> Revision {
        let (mut p, mut f, mut added, mut removed) = (0, 0, 0, 0);
        for (a, b) in predicted.data.iter().zip(&label.data) {
            let (a, b) = (*a > 0, *b > 0);
            p += usize::from(a);
            f += usize::from(b);
            added += usize::from(b && !a);
            removed += usize::from(a && !b);
        }
        let revision_ratio = match (f, added + removed) {
            (0, 0) => Some(0.0),
            (0, _) => None,
            (f, d) => Some(d as f64 / f as f64),
        };
        let m = metrics::compute(predicted, label, &metrics::Options::default()).ok();
        Revision {
            case: case.into(),
            rater: rater.into(),
            model,
            predicted_voxels: p,
            final_voxels: f,
            added_voxels: added,
            removed_voxels: removed,
            revision_ratio,
            dsc: m.as_ref().and_then(|m| m.dsc),
            hd95: m.as_ref().and_then(|m| m.hd95),
        }
    }
}

/// The header of `revisions.csv`.
pub const HEADER: &str =
    "time,case,rater,model,predicted_voxels,final_voxels,added_voxels,removed_voxels,revision_ratio,dsc,hd95";

/// Writes `revisions.csv` from `(time, revision)` rows, atomically (it is derived from the
/// journal, so a redo never duplicates a row).
pub fn write_csv(path: &Path, rows: &[(&str, &Revision)]) -> std::io::Result<()> {
    let mut text = format!("{HEADER}\n");
    for (time, r) in rows {
        let fields = [
            time.to_string(),
            r.case.clone(),
            r.rater.clone(),
            r.model.to_string(),
            r.predicted_voxels.to_string(),
            r.final_voxels.to_string(),
            r.added_voxels.to_string(),
            r.removed_voxels.to_string(),
            fmt_value(r.revision_ratio),
            fmt_value(r.dsc),
            fmt_value(r.hd95),
        ];
        text.push_str(&metrics::csv_line(&fields));
    }
    crate::fsutil::write_bytes_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Geometry, Image};

    fn map(bits: &[u8]) -> LabelMap {
        Image {
            geometry: Geometry::axis_aligned([bits.len(), 1, 1], [1.0; 3]),
            data: bits.to_vec(),
        }
    }

    #[test]
    fn the_ratio_counts_added_and_removed_voxels_over_the_final_label() {
        // P = {0,1,2,3}, F = {2,3,4,5,6}: added 3, removed 2, |F| 5.
        let r = Revision::measure(
            "c",
            "-",
            0,
            &map(&[1, 1, 1, 1, 0, 0, 0, 0]),
            &map(&[0, 0, 1, 1, 1, 1, 1, 0]),
        );
        assert_eq!(
            (r.predicted_voxels, r.final_voxels, r.added_voxels, r.removed_voxels),
            (4, 5, 3, 2)
        );
        assert_eq!(r.revision_ratio, Some(1.0));
        assert!((r.dsc.unwrap() - 2.0 * 2.0 / 9.0).abs() < 1e-12);
        let same = Revision::measure("c", "-", 0, &map(&[0, 1, 1, 0]), &map(&[0, 1, 1, 0]));
        assert_eq!((same.revision_ratio, same.dsc), (Some(0.0), Some(1.0)));
        let both_empty = Revision::measure("c", "-", 0, &map(&[0, 0]), &map(&[0, 0]));
        assert_eq!(both_empty.revision_ratio, Some(0.0));
        let label_empty = Revision::measure("c", "-", 0, &map(&[1, 0]), &map(&[0, 0]));
        assert_eq!(label_empty.revision_ratio, None);
        // An empty prediction against a label: HD95 is infinite, and stays so through the journal.
        let missed = Revision::measure("c", "-", 0, &map(&[0, 0]), &map(&[0, 1]));
        assert_eq!(missed.hd95, Some(f64::INFINITY));
        let back: Revision = serde_json::from_str(&serde_json::to_string(&missed).unwrap()).unwrap();
        assert_eq!(back, missed);
    }
}
