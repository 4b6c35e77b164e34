//! Whole-volume inference: volume → preprocessing (the model card's) → batched axial slices →
//! softmax → probabilities restored to the original grid (linear) → argmax mask in the input's
//! exact geometry; optionally Monte-Carlo dropout maps (entropy, BALD) and the STDR slice
//! descriptors, from the same deterministic pass that gives the mask.
//!
//! Volumes are processed one at a time, slices in batches of [`PredictOptions::batch`].

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::{descriptor, from_samples, DescriptorConfig, Reduction};
use crate::model::UNet2d;
use crate::preprocess::{prepare, Interp, Prepared, Preprocessing};
use crate::volume::{LabelMap, Volume};

/// What to compute besides the mask.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictOptions {
    /// Slices per forward pass. 16.
    pub batch: usize,
    /// Monte-Carlo dropout samples `T` (0: none).
    pub mc_samples: usize,
    /// Reduction of pixel uncertainty to one score per slice and per volume. Mean.
    pub reduction: Reduction,
    /// Compute STDR slice descriptors with this config (`None`: skip).
    pub descriptor: Option<DescriptorConfig>,
    /// Seed of the MC-dropout masks.
    pub seed: u64,
    /// Concurrent parts each batch is cut into outside MC dropout
    /// ([`UNet2d::forward_in_parts`]): the CPU threads on the CPU, 1 on a GPU. 1.
    pub parts: usize,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            batch: 16,
            mc_samples: 0,
            reduction: Reduction::Mean,
            descriptor: None,
            seed: 0,
            parts: 1,
        }
    }
}

/// MC-dropout uncertainty of one volume.
#[derive(Debug, Clone)]
pub struct McUncertainty {
    /// Samples drawn `T`.
    pub samples: usize,
    /// Voxel predictive entropy (nats) on the input's grid.
    pub entropy: Volume,
    /// Voxel BALD (nats) on the input's grid.
    pub bald: Volume,
    /// Entropy reduced per axial slice (on the network's `N x N` slice grid), `[n_slices]`.
    pub slice_entropy: Vec<f32>,
    /// BALD reduced per axial slice, `[n_slices]`.
    pub slice_bald: Vec<f32>,
    /// Per-slice reduced margin between the two most probable classes (small = uncertain).
    pub slice_margin: Vec<f32>,
    /// Entropy reduced over the whole volume (all slice pixels).
    pub volume_entropy: f32,
    /// BALD reduced over the whole volume.
    pub volume_bald: f32,
}

/// Everything inference computed for one volume.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Argmax of the restored class probabilities, in the input's geometry.
    pub mask: LabelMap,
    /// Probability of class 1 (tumour) on the input's grid.
    pub tumour_probability: Volume,
    /// STDR descriptor of each axial slice (`[n_slices][grid²]`), when asked for.
    pub descriptors: Option<Vec<Vec<f32>>>,
    /// MC-dropout maps and scores, when `mc_samples > 0`.
    pub uncertainty: Option<McUncertainty>,
}

/// Softmax probabilities of every slice, `[n, classes, N, N]` flattened, and (when
/// `features` is true) the last decoder feature map of each batch, `[n, f0, N, N]`.
///
/// `slices` is `[n, N, N]`, run `batch` slices at a time, each batch in `parts` concurrent
/// parts ([`UNet2d::forward_in_parts`]). With `mc` the network runs with dropout active
/// ([`UNet2d::forward_mc_with_features`]) and whole batches. The model must be on a backend
/// without autodiff (or be the `valid()` copy) for batch norm to use its running statistics.
pub fn slice_probabilities<B: Backend>(
    model: &UNet2d<B>,
    slices: &[f32],
    size: usize,
    (batch, parts): (usize, usize),
    mc: bool,
    features: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let device = model.devices().into_iter().next().unwrap_or_default();
    let px = size * size;
    let n = slices.len() / px.max(1);
    let mut probs = Vec::new();
    let mut feats = features.then(Vec::new);
    for start in (0..n).step_by(batch.max(1)) {
        let b = batch.max(1).min(n - start);
        let data = TensorData::new(slices[start * px..(start + b) * px].to_vec(), [b, 1, size, size]);
        let x = Tensor::<B, 4>::from_data(data, &device); // [b, 1, N, N]
        let (logits, f) = if mc {
            model.forward_mc_with_features(x)
        } else {
            model.forward_in_parts(x, parts)
        }; // [b, C, N, N], [b, f0, N, N]
        let p = softmax(logits, 1); // [b, C, N, N]
        probs.extend(p.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default());
        if let Some(all) = feats.as_mut() {
            all.extend(f.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default());
        }
    }
    (probs, feats)
}

/// Channel `c` of `[n, classes, N*N]` probabilities, as `[n, N*N]`.
fn channel(probs: &[f32], classes: usize, px: usize, c: usize) -> Vec<f32> {
    probs
        .chunks_exact(classes * px)
        .flat_map(|s| s[c * px..(c + 1) * px].iter().copied())
        .collect()
}

/// The argmax mask on the original grid from `[n, classes, N, N]` slice probabilities (each
/// class probability restored linearly, then argmax; ties go to the lower class), and the
/// restored class-1 probability.
pub fn restore_mask(prepared: &Prepared, probs: &[f32], classes: usize) -> (LabelMap, Volume) {
    let px = prepared.size * prepared.size;
    let restored: Vec<Volume> = (0..classes)
        .map(|c| prepared.restore(&channel(probs, classes, px, c), Interp::Linear))
        .collect();
    let geometry = prepared.original.clone();
    let data = (0..geometry.len())
        .map(|i| {
            let mut best = 0usize;
            for c in 1..classes {
                if restored[c].data[i] > restored[best].data[i] {
                    best = c;
                }
            }
            best as u8
        })
        .collect();
    let mask = LabelMap { geometry, data };
    let tumour = restored
        .into_iter()
        .nth(1.min(classes - 1))
        .unwrap_or_else(|| mask_like(&mask));
    (mask, tumour)
}

fn mask_like(mask: &LabelMap) -> Volume {
    Volume {
        geometry: mask.geometry.clone(),
        data: vec![0.0; mask.data.len()],
    }
}

/// The STDR descriptor ([`descriptor`]) of every slice from `[n, classes, N, N]` softmax
/// probabilities and the `[n, f0, N, N]` last decoder feature maps of the same pass.
pub fn slice_descriptors(
    probs: &[f32],
    features: &[f32],
    size: usize,
    classes: usize,
    cfg: &DescriptorConfig,
) -> Vec<Vec<f32>> {
    let px = size * size;
    let n = probs.len() / (classes * px).max(1);
    let channels = features.len() / (n * px).max(1);
    let p = channel(probs, classes, px, cfg.channel.min(classes - 1));
    (0..n)
        .map(|s| {
            descriptor(
                &features[s * channels * px..(s + 1) * channels * px],
                &p[s * px..(s + 1) * px],
                size,
                size,
                cfg,
            )
        })
        .collect()
}

/// Predicts one already prepared volume (see [`predict_volume`]).
pub fn predict_prepared<B: Backend>(
    model: &UNet2d<B>,
    prepared: &Prepared,
    classes: usize,
    options: &PredictOptions,
) -> Prediction {
    let size = prepared.size;
    let px = size * size;
    let want_desc = options.descriptor.is_some();
    let (probs, feats) = slice_probabilities(
        model,
        &prepared.slices,
        size,
        (options.batch, options.parts),
        false,
        want_desc,
    );
    let (mask, tumour_probability) = restore_mask(prepared, &probs, classes);
    let descriptors = match (options.descriptor, feats) {
        (Some(cfg), Some(f)) => Some(slice_descriptors(&probs, &f, size, classes, &cfg)),
        _ => None,
    };
    let uncertainty = (options.mc_samples > 0).then(|| {
        let device = model.devices().into_iter().next().unwrap_or_default();
        B::seed(&device, options.seed);
        // Each sample is [n, classes, px]; `from_samples` wants class-major [classes, n*px].
        let samples: Vec<Vec<f32>> = (0..options.mc_samples)
            .map(|_| {
                let (p, _) = slice_probabilities(model, &prepared.slices, size, (options.batch, 1), true, false);
                (0..classes).flat_map(|c| channel(&p, classes, px, c)).collect()
            })
            .collect();
        let u = from_samples(&samples, classes);
        let reduce_slices =
            |map: &[f32]| -> Vec<f32> { map.chunks_exact(px).map(|s| options.reduction.apply(s)).collect() };
        McUncertainty {
            samples: options.mc_samples,
            slice_entropy: reduce_slices(&u.entropy),
            slice_bald: reduce_slices(&u.bald),
            slice_margin: reduce_slices(&u.margin),
            volume_entropy: options.reduction.apply(&u.entropy),
            volume_bald: options.reduction.apply(&u.bald),
            entropy: prepared.restore(&u.entropy, Interp::Linear),
            bald: prepared.restore(&u.bald, Interp::Linear),
        }
    });
    Prediction {
        mask,
        tumour_probability,
        descriptors,
        uncertainty,
    }
}

/// Predicts `volume` with `model`, preprocessing it with `preprocessing` (take it from the
/// model card). `model` should be on a backend without autodiff (batch norm in evaluation).
pub fn predict_volume<B: Backend>(
    model: &UNet2d<B>,
    volume: &Volume,
    preprocessing: &Preprocessing,
    classes: usize,
    options: &PredictOptions,
) -> Prediction {
    let prepared = prepare(volume, preprocessing);
    predict_prepared(model, &prepared, classes, options)
}
