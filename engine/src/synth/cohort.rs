//! The cohort plan (centres, raters, cases, splits), case rendering, and writing everything
//! to disk with a manifest and a summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::acquisition::{self, Acquisition, Orientation, Pose, Rendered, Sequence};
use super::anatomy::Anatomy;
use super::raters::{self, RaterHabit};
use super::rng::{stream, Rng};
use super::{Config, Error};
use crate::dataset::{CaseEntry, CentreEntry, ManifestFile, RaterEntry, Role, Split};
use crate::volume::{self, LabelMap, Volume};

/// Id of the dedicated multi-rater centre.
pub const MULTI_RATER_CENTRE: &str = "MR";

/// A centre of the plan.
#[derive(Debug, Clone)]
pub struct CentrePlan {
    /// `"C1"` … or [`MULTI_RATER_CENTRE`].
    pub id: String,
    /// `C1` is the source, every other centre a target.
    pub role: Role,
    /// The scanner protocol.
    pub acquisition: Acquisition,
    /// Index (in [`Cohort::raters`]) of the rater whose labels are the centre's ground truth.
    pub reference_rater: usize,
}

/// A case of the plan.
#[derive(Debug, Clone)]
pub struct CasePlan {
    /// `"C1-001"` …
    pub id: String,
    /// Index in [`Cohort::centres`].
    pub centre: usize,
    /// Index within its centre (0-based).
    pub index: usize,
    /// Its split.
    pub split: Split,
    /// Indices (in [`Cohort::raters`]) of the raters who delineated it.
    pub raters: Vec<usize>,
}

/// Everything decided before any voxel is drawn.
#[derive(Debug, Clone)]
pub struct Cohort {
    /// The configuration it was planned from.
    pub config: Config,
    /// Centres: `C1` (source), `C2` … (targets), then `MR` when there are multi-rater cases.
    pub centres: Vec<CentrePlan>,
    /// Raters: one oncologist per `C` centre (`C1-onc` …), then the experts `R1` … `Rn`.
    pub raters: Vec<RaterHabit>,
    /// Cases, centre by centre.
    pub cases: Vec<CasePlan>,
}

/// One generated case, in memory.
#[derive(Debug, Clone)]
pub struct SynthCase {
    /// Case id.
    pub id: String,
    /// The image.
    pub image: Volume,
    /// The true tumour on the image grid (never written: no rater sees it exactly).
    pub truth: LabelMap,
    /// Labels by rater id.
    pub labels: BTreeMap<String, LabelMap>,
    /// The patient.
    pub anatomy: Anatomy,
    /// The scan, with its voxel → patient mapping and masks.
    pub rendered: Rendered,
}

impl Cohort {
    /// Plans a cohort (cheap: draws protocols, habits and splits only).
    pub fn plan(config: &Config) -> Result<Cohort, Error> {
        config.check()?;
        let seed = config.seed;
        let n_c = config.centres;
        let mut centres = Vec::new();
        let mut raters = Vec::new();
        for c in 0..n_c {
            let sequence = if c == 0 {
                Sequence::SpinEcho
            } else {
                Sequence::of_target(c)
            };
            let acq = Acquisition::sample(
                &mut Rng::derive(seed, &[stream::CENTRE, c as u64]),
                sequence,
                c == 0,
                config.fov_mm,
                config.size,
            );
            let id = format!("C{}", c + 1);
            raters.push(RaterHabit::oncologist(
                &mut Rng::derive(seed, &[stream::RATER, c as u64]),
                format!("{id}-onc"),
            ));
            centres.push(CentrePlan {
                id,
                role: if c == 0 { Role::Source } else { Role::Target },
                acquisition: acq,
                reference_rater: c,
            });
        }
        let multi = config.multi_rater_cases > 0;
        if multi {
            let n = config.raters;
            let mut margins: Vec<f64> = (0..n)
                .map(|r| {
                    if n == 1 {
                        0.0
                    } else {
                        -1.8 + 3.6 * r as f64 / (n - 1) as f64
                    }
                })
                .collect();
            Rng::derive(seed, &[stream::RATER, 1000]).shuffle(&mut margins);
            for (r, m) in margins.into_iter().enumerate() {
                let mut rng = Rng::derive(seed, &[stream::RATER, 1001 + r as u64]);
                raters.push(RaterHabit::expert(&mut rng, format!("R{}", r + 1), m));
            }
            // The multi-rater centre shares the source's sequence family: its domains differ
            // from the source by rater (and scanner details), not by contrast.
            let acq = Acquisition::sample(
                &mut Rng::derive(seed, &[stream::CENTRE, n_c as u64]),
                Sequence::SpinEcho,
                false,
                config.fov_mm,
                config.size,
            );
            centres.push(CentrePlan {
                id: MULTI_RATER_CENTRE.into(),
                role: Role::Target,
                acquisition: acq,
                reference_rater: n_c,
            });
        }
        let mut cases = Vec::new();
        for (c, centre) in centres.iter().enumerate() {
            let is_multi = c == n_c;
            let n = if is_multi {
                config.multi_rater_cases
            } else {
                config.cases_per_centre
            };
            let splits = assign_splits(n, config.split, &mut Rng::derive(seed, &[stream::SPLIT, c as u64]));
            let case_raters: Vec<usize> = if is_multi {
                (n_c..n_c + config.raters).collect()
            } else {
                vec![c]
            };
            for (index, split) in splits.into_iter().enumerate() {
                cases.push(CasePlan {
                    id: format!("{}-{:03}", centre.id, index + 1),
                    centre: c,
                    index,
                    split,
                    raters: case_raters.clone(),
                });
            }
        }
        Ok(Cohort {
            config: config.clone(),
            centres,
            raters,
            cases,
        })
    }

    /// Generates case `i` (of [`Cohort::cases`]) in memory. Depends only on the seed, the
    /// case's centre and its index within the centre.
    pub fn render(&self, i: usize) -> SynthCase {
        let plan = &self.cases[i];
        let centre = &self.centres[plan.centre];
        let seed = self.config.seed;
        let path = [stream::CASE, plan.centre as u64, plan.index as u64];
        let mut rng = Rng::derive(seed, &path);
        let anatomy = Anatomy::sample(&mut rng, centre.acquisition.tumour_scale);
        let pose = Pose::sample(&mut rng);
        let noise_seed = Rng::derive(seed, &[stream::NOISE, plan.centre as u64, plan.index as u64]).next_u64();
        let rendered = acquisition::render(&anatomy, &centre.acquisition, &pose, &mut rng, noise_seed);
        let mut labels = BTreeMap::new();
        for r in &plan.raters {
            let habit = &self.raters[*r];
            let mut rr = Rng::derive(
                seed,
                &[stream::DELINEATION, plan.centre as u64, plan.index as u64, *r as u64],
            );
            labels.insert(
                habit.id.clone(),
                raters::delineate(&rendered, habit, anatomy.tumour.has_extension, &mut rr),
            );
        }
        let truth = LabelMap {
            geometry: rendered.image.geometry.clone(),
            data: rendered.truth.iter().map(|v| *v as u8).collect(),
        };
        SynthCase {
            id: plan.id.clone(),
            image: rendered.image.clone(),
            truth,
            labels,
            anatomy,
            rendered,
        }
    }

    /// Relative path of a case's image.
    pub fn image_path(&self, case: &CasePlan) -> PathBuf {
        PathBuf::from(&self.centres[case.centre].id)
            .join("images")
            .join(format!("{}.nii.gz", case.id))
    }

    /// Relative path of a case's label by `rater`.
    pub fn label_path(&self, case: &CasePlan, rater: &str) -> PathBuf {
        PathBuf::from(&self.centres[case.centre].id)
            .join("labels")
            .join(rater)
            .join(format!("{}.nii.gz", case.id))
    }

    /// The manifest of the cohort.
    pub fn manifest(&self) -> ManifestFile {
        let centres = self
            .centres
            .iter()
            .map(|c| CentreEntry {
                id: c.id.clone(),
                role: c.role,
                reference_rater: Some(self.raters[c.reference_rater].id.clone()),
                description: format!(
                    "synthetic {}{}: {}",
                    if c.role == Role::Source { "source" } else { "target" },
                    if c.id == MULTI_RATER_CENTRE {
                        " (multi-rater subset)"
                    } else {
                        ""
                    },
                    c.acquisition.describe()
                ),
            })
            .collect();
        let raters = self
            .raters
            .iter()
            .map(|r| RaterEntry {
                id: r.id.clone(),
                description: r.describe(),
            })
            .collect();
        let cases = self
            .cases
            .iter()
            .map(|c| CaseEntry {
                id: c.id.clone(),
                centre: self.centres[c.centre].id.clone(),
                image: self.image_path(c),
                labels: c
                    .raters
                    .iter()
                    .map(|r| {
                        let id = &self.raters[*r].id;
                        (id.clone(), self.label_path(c, id))
                    })
                    .collect(),
                split: c.split,
            })
            .collect();
        ManifestFile {
            name: format!("delinea-synth-seed{}", self.config.seed),
            centres,
            raters,
            cases,
        }
    }
}

/// Deterministic split of `n` cases: `round(n × val)` validation, `round(n × test)` test, the
/// rest training, assigned in a shuffled order.
fn assign_splits(n: usize, fractions: [f64; 2], rng: &mut Rng) -> Vec<Split> {
    let n_val = (n as f64 * fractions[0]).round() as usize;
    let n_test = ((n as f64 * fractions[1]).round() as usize).min(n - n_val.min(n));
    let n_val = n_val.min(n);
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let mut out = vec![Split::Train; n];
    for (rank, idx) in order.into_iter().enumerate() {
        if rank < n_test {
            out[idx] = Split::Test;
        } else if rank < n_test + n_val {
            out[idx] = Split::Val;
        }
    }
    out
}

/// Intensity statistics inside the head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct IntensityStats {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
    /// 1st percentile.
    pub p1: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl IntensityStats {
    /// Statistics of `image` where `mask` is true (nearest-rank percentiles).
    pub fn of(image: &[f32], mask: &[bool]) -> IntensityStats {
        let mut v: Vec<f32> = image.iter().zip(mask).filter(|(_, m)| **m).map(|(x, _)| *x).collect();
        if v.is_empty() {
            return IntensityStats {
                mean: 0.0,
                std: 0.0,
                p1: 0.0,
                p99: 0.0,
            };
        }
        let n = v.len() as f64;
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
        let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n;
        v.sort_unstable_by(f32::total_cmp);
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize] as f64;
        IntensityStats {
            mean,
            std: var.sqrt(),
            p1: q(0.01),
            p99: q(0.99),
        }
    }

    fn mean_of(all: &[IntensityStats]) -> IntensityStats {
        let n = all.len().max(1) as f64;
        let m = |f: fn(&IntensityStats) -> f64| all.iter().map(f).sum::<f64>() / n;
        IntensityStats {
            mean: m(|s| s.mean),
            std: m(|s| s.std),
            p1: m(|s| s.p1),
            p99: m(|s| s.p99),
        }
    }
}

/// Median, minimum and maximum of a set of values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Spread {
        if values.is_empty() {
            return Spread {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        Spread {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// The acquisition parameters a centre was drawn with.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AcquisitionSummary {
    /// Sequence family.
    pub sequence: Sequence,
    /// Gadolinium dose × timing factor.
    pub dose: f64,
    /// Intensity scale (stored = scale × signal + offset).
    pub scale: f64,
    /// Intensity offset.
    pub offset: f64,
    /// Contrast-curve exponent.
    pub gamma: f64,
    /// Bias-field strength.
    pub bias: f64,
    /// Noise sigma relative to fat.
    pub noise: f64,
    /// In-plane blur sigma (voxels).
    pub psf_sigma_voxels: f64,
    /// Mean slice tilt (degrees).
    pub oblique_deg: f64,
    /// Tumour-volume multiplier (stage mix).
    pub tumour_scale: f64,
}

/// Per-centre summary.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CentreSummary {
    /// Centre id.
    pub id: String,
    /// Source or target.
    pub role: Role,
    /// Rater whose labels are the centre's ground truth.
    pub reference_rater: String,
    /// Number of cases.
    pub cases: usize,
    /// Cases per split: train, val, test.
    pub splits: [usize; 3],
    /// Grid size.
    pub dims: [usize; 3],
    /// Voxel size (mm).
    pub spacing: [f64; 3],
    /// Storage orientation.
    pub orientation: Orientation,
    /// Image intensity inside the head: the mean over the centre's cases of each case's
    /// statistic.
    pub intensity: IntensityStats,
    /// Tumour volume (ml) by the reference rater.
    pub tumour_ml: Spread,
    /// Acquisition parameters.
    pub acquisition: AcquisitionSummary,
}

/// Per-rater summary.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RaterSummary {
    /// The rater's habits.
    #[serde(flatten)]
    pub habit: RaterHabit,
    /// Cases delineated.
    pub cases: usize,
    /// Volume (ml) of the rater's delineations.
    pub tumour_ml: Spread,
    /// Median ratio of the rater's volume to the true tumour's.
    pub volume_ratio_to_truth: f64,
    /// Median Dice of the rater's delineations against the true tumour.
    pub dsc_to_truth: f64,
}

/// What `delinea synth` made (`synth-summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Summary {
    /// Cohort name (also the manifest's).
    pub name: String,
    /// The seed.
    pub seed: u64,
    /// Total number of cases.
    pub cases: usize,
    /// The manifest, relative to the output folder.
    pub manifest: PathBuf,
    /// Per centre.
    pub centres: Vec<CentreSummary>,
    /// Per rater.
    pub raters: Vec<RaterSummary>,
}

/// What one case contributes to the summary.
struct CaseStats {
    intensity: IntensityStats,
    /// (rater index, ml, ml of truth, dsc)
    raters: Vec<(usize, f64, f64, f64)>,
}

fn case_stats(cohort: &Cohort, i: usize, case: &SynthCase) -> CaseStats {
    let plan = &cohort.cases[i];
    let ml = case.image.geometry.voxel_ml();
    let truth_n = case.truth.count(None);
    let raters = plan
        .raters
        .iter()
        .filter_map(|r| {
            let label = case.labels.get(&cohort.raters[*r].id)?;
            let n = label.count(None);
            let inter = label
                .data
                .iter()
                .zip(&case.truth.data)
                .filter(|(a, b)| **a > 0 && **b > 0)
                .count();
            let dsc = if n + truth_n == 0 {
                1.0
            } else {
                2.0 * inter as f64 / (n + truth_n) as f64
            };
            Some((*r, n as f64 * ml, truth_n as f64 * ml, dsc))
        })
        .collect();
    CaseStats {
        intensity: IntensityStats::of(&case.image.data, &case.rendered.head),
        raters,
    }
}

impl Cohort {
    fn summarise(&self, stats: &[CaseStats]) -> Summary {
        let centres = self
            .centres
            .iter()
            .enumerate()
            .map(|(c, centre)| {
                let idx: Vec<usize> = (0..self.cases.len()).filter(|i| self.cases[*i].centre == c).collect();
                let intensity: Vec<IntensityStats> = idx.iter().map(|i| stats[*i].intensity).collect();
                let ml: Vec<f64> = idx
                    .iter()
                    .flat_map(|i| {
                        stats[*i]
                            .raters
                            .iter()
                            .filter(|r| r.0 == centre.reference_rater)
                            .map(|r| r.1)
                    })
                    .collect();
                let mut splits = [0usize; 3];
                for i in &idx {
                    splits[self.cases[*i].split as usize] += 1;
                }
                let a = &centre.acquisition;
                CentreSummary {
                    id: centre.id.clone(),
                    role: centre.role,
                    reference_rater: self.raters[centre.reference_rater].id.clone(),
                    cases: idx.len(),
                    splits,
                    dims: a.dims,
                    spacing: a.spacing,
                    orientation: a.orientation,
                    intensity: IntensityStats::mean_of(&intensity),
                    tumour_ml: Spread::of(&ml),
                    acquisition: AcquisitionSummary {
                        sequence: a.sequence,
                        dose: a.dose,
                        scale: a.scale,
                        offset: a.offset,
                        gamma: a.gamma,
                        bias: a.bias,
                        noise: a.noise,
                        psf_sigma_voxels: a.psf_sigma,
                        oblique_deg: a.oblique_deg,
                        tumour_scale: a.tumour_scale,
                    },
                }
            })
            .collect();
        let raters = self
            .raters
            .iter()
            .enumerate()
            .map(|(r, habit)| {
                let rows: Vec<&(usize, f64, f64, f64)> = stats
                    .iter()
                    .flat_map(|s| s.raters.iter())
                    .filter(|x| x.0 == r)
                    .collect();
                let ml: Vec<f64> = rows.iter().map(|x| x.1).collect();
                let ratio: Vec<f64> = rows.iter().filter(|x| x.2 > 0.0).map(|x| x.1 / x.2).collect();
                let dsc: Vec<f64> = rows.iter().map(|x| x.3).collect();
                RaterSummary {
                    habit: habit.clone(),
                    cases: rows.len(),
                    tumour_ml: Spread::of(&ml),
                    volume_ratio_to_truth: Spread::of(&ratio).median,
                    dsc_to_truth: Spread::of(&dsc).median,
                }
            })
            .collect();
        Summary {
            name: format!("delinea-synth-seed{}", self.config.seed),
            seed: self.config.seed,
            cases: self.cases.len(),
            manifest: PathBuf::from("manifest.json"),
            centres,
            raters,
        }
    }
}

/// Plans, renders and writes the cohort of `config` into `out` (created if needed; files of
/// the same names are replaced): images and labels as `.nii.gz`, `manifest.json` and
/// `synth-summary.json`. `progress` is called once per case written, from any thread.
pub fn generate(out: &Path, config: &Config, progress: &(dyn Fn() + Sync)) -> Result<Summary, Error> {
    let cohort = Cohort::plan(config)?;
    let mkdir = |p: PathBuf| std::fs::create_dir_all(&p).map_err(|source| Error::Io { path: p, source });
    mkdir(out.to_path_buf())?;
    for case in &cohort.cases {
        if case.index == 0 {
            let c = &cohort.centres[case.centre].id;
            mkdir(out.join(c).join("images"))?;
            for r in &case.raters {
                mkdir(out.join(c).join("labels").join(&cohort.raters[*r].id))?;
            }
        }
    }
    let stats = (0..cohort.cases.len())
        .into_par_iter()
        .map(|i| {
            let case = cohort.render(i);
            let plan = &cohort.cases[i];
            volume::write_volume(&out.join(cohort.image_path(plan)), &case.image)?;
            for (rater, label) in &case.labels {
                volume::write_label_map(&out.join(cohort.label_path(plan, rater)), label)?;
            }
            let s = case_stats(&cohort, i, &case);
            progress();
            Ok(s)
        })
        .collect::<Result<Vec<CaseStats>, Error>>()?;
    cohort.manifest().write(&out.join("manifest.json"))?;
    let summary = cohort.summarise(&stats);
    let path = out.join("synth-summary.json");
    let json = serde_json::to_string_pretty(&summary).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    crate::fsutil::write_bytes_atomic(&path, json.as_bytes()).map_err(|source| Error::Io { path, source })?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_deterministic_and_proportional() {
        let a = assign_splits(20, [0.2, 0.2], &mut Rng::new(1));
        let b = assign_splits(20, [0.2, 0.2], &mut Rng::new(1));
        assert_eq!(a, b);
        let count = |s| a.iter().filter(|x| **x == s).count();
        assert_eq!((count(Split::Train), count(Split::Val), count(Split::Test)), (12, 4, 4));
        assert_eq!(assign_splits(1, [0.2, 0.2], &mut Rng::new(1)), vec![Split::Train]);
        assert_eq!(assign_splits(0, [0.2, 0.2], &mut Rng::new(1)), Vec::<Split>::new());
    }

    #[test]
    fn stats_of_a_known_sample() {
        let v: Vec<f32> = (0..101).map(|x| x as f32).collect();
        let s = IntensityStats::of(&v, &[true; 101]);
        assert_eq!((s.mean, s.p1, s.p99), (50.0, 1.0, 99.0));
        assert_eq!(Spread::of(&[3.0, 1.0, 2.0, 10.0]).median, 2.5);
    }
}
