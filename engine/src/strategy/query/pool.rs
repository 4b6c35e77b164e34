//! The candidate pool: one row per target slice (or per volume), with the scores and vectors
//! a query strategy may rank by.

use serde::{Deserialize, Serialize};

/// What a row stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// One axial slice (the reference budget unit).
    Slice,
    /// One whole volume (a hospital labels whole patients).
    Volume,
}

/// One candidate for labelling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Candidate {
    /// Case id.
    pub case: String,
    /// Centre id.
    pub centre: String,
    /// Axial slice index (`None` for a volume row).
    pub slice: Option<usize>,
    /// The scores computed for this row.
    pub scores: Scores,
    /// STDR descriptor (METHOD.md step 4); empty when not computed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub descriptor: Vec<f32>,
    /// Feature vector for clustering strategies (UGTST, coreset); empty when not computed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<f32>,
}

/// Scores of a row; `None` where the engine did not compute it (strategies declare what
/// they need, see [`super::Needs`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Scores {
    /// MC-dropout predictive entropy, reduced over the row's pixels.
    pub entropy: Option<f32>,
    /// BALD (mutual information), reduced.
    pub bald: Option<f32>,
    /// Margin between the two most probable classes, reduced (small = uncertain).
    pub margin: Option<f32>,
    /// Predicted tumour area (pixels) or volume (voxels).
    pub tumour_area: Option<f32>,
    /// STDR distance to the nearest source reference point.
    pub stdr_distance: Option<f32>,
}

/// The rows a query strategy chooses from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CandidatePool {
    /// Slice or volume rows.
    pub unit: Unit,
    /// The rows, in a fixed order (ties are broken by this index).
    pub rows: Vec<Candidate>,
}

/// How slice scores become a volume's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// Mean of the volume's slices.
    Mean,
    /// Largest of the volume's slices.
    Max,
}

/// The STDR distance of METHOD.md step 6: `min_k mean_j (v[j] - r_k[j])^2`, or `None` when
/// there is no reference point or a length differs.
pub fn stdr_distance(v: &[f32], references: &[Vec<f32>]) -> Option<f32> {
    references
        .iter()
        .filter(|r| r.len() == v.len() && !v.is_empty())
        .map(|r| v.iter().zip(r).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>() / v.len() as f64)
        .min_by(|a, b| a.total_cmp(b))
        .map(|d| d as f32)
}

impl CandidatePool {
    /// Fills every row's `stdr_distance` from its descriptor and the source `references`;
    /// refused when the references' points and the pool's descriptors differ in length (another
    /// descriptor grid).
    pub fn with_reference(mut self, references: &[Vec<f32>]) -> Result<CandidatePool, super::Error> {
        let points = references.first().map_or(0, Vec::len);
        if let Some(row) = self
            .rows
            .iter()
            .find(|r| !r.descriptor.is_empty() && r.descriptor.len() != points)
        {
            return Err(super::Error::GridMismatch {
                references: points,
                descriptors: row.descriptor.len(),
            });
        }
        for row in &mut self.rows {
            row.scores.stdr_distance = stdr_distance(&row.descriptor, references);
        }
        Ok(self)
    }

    /// One row per volume (in order of first appearance), each score aggregated over the
    /// volume's slices; descriptors and features are averaged.
    pub fn volumes(&self, how: Aggregate) -> CandidatePool {
        let mut order: Vec<(&str, Vec<&Candidate>)> = Vec::new();
        for row in &self.rows {
            match order.iter_mut().find(|(case, _)| *case == row.case) {
                Some((_, rows)) => rows.push(row),
                None => order.push((&row.case, vec![row])),
            }
        }
        let rows = order.into_iter().map(|(_, rows)| aggregate_rows(&rows, how)).collect();
        CandidatePool {
            unit: Unit::Volume,
            rows,
        }
    }
}

fn aggregate_rows(rows: &[&Candidate], how: Aggregate) -> Candidate {
    let agg = |get: fn(&Scores) -> Option<f32>| -> Option<f32> {
        let v: Vec<f32> = rows.iter().filter_map(|r| get(&r.scores)).collect();
        if v.is_empty() {
            return None;
        }
        Some(match how {
            Aggregate::Mean => v.iter().sum::<f32>() / v.len() as f32,
            Aggregate::Max => v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        })
    };
    let scores = Scores {
        entropy: agg(|s| s.entropy),
        bald: agg(|s| s.bald),
        margin: agg(|s| s.margin),
        tumour_area: rows.iter().map(|r| r.scores.tumour_area).sum(),
        stdr_distance: agg(|s| s.stdr_distance),
    };
    Candidate {
        case: rows[0].case.clone(),
        centre: rows[0].centre.clone(),
        slice: None,
        scores,
        descriptor: mean_vector(rows.iter().map(|r| r.descriptor.as_slice())),
        features: mean_vector(rows.iter().map(|r| r.features.as_slice())),
    }
}

fn mean_vector<'a>(vs: impl Iterator<Item = &'a [f32]>) -> Vec<f32> {
    let vs: Vec<&[f32]> = vs.filter(|v| !v.is_empty()).collect();
    let Some(first) = vs.first() else { return Vec::new() };
    let len = first.len();
    let same: Vec<&[f32]> = vs.iter().copied().filter(|v| v.len() == len).collect();
    let mut out = vec![0f32; len];
    for v in &same {
        out.iter_mut().zip(*v).for_each(|(o, x)| *o += x / same.len() as f32);
    }
    out
}
