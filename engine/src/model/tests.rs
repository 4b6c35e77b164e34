//! Tests of the network and its training step on burn's CPU backend (release builds only are
//! fast enough: see ARCHITECTURE.md).

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::*;

type B = Flex;
type AB = Autodiff<Flex>;

/// A narrow five-level network, fast enough for unit tests.
fn small_config() -> UNet2dConfig {
    UNet2dConfig::new().with_features(vec![4, 8, 8, 16, 16])
}

/// `n` images `[n, 1, size, size]` of a bright disk (radius size/4, off-centre) on a dark
/// background, and its mask `[n, size, size]`.
fn disk_batch<Bk: Backend>(n: usize, size: usize, device: &Bk::Device) -> (Tensor<Bk, 4>, Tensor<Bk, 3, Int>) {
    let (mut image, mut mask) = (Vec::new(), Vec::new());
    for b in 0..n {
        let (cy, cx, r) = (
            size as f32 * (0.4 + 0.1 * b as f32),
            size as f32 * 0.55,
            size as f32 / 4.0,
        );
        for y in 0..size {
            for x in 0..size {
                let inside = (y as f32 - cy).hypot(x as f32 - cx) < r;
                image.push(if inside { 1.5 } else { -0.5 } + 0.1 * ((y * 7 + x * 3) as f32).sin());
                mask.push(i32::from(inside));
            }
        }
    }
    (
        Tensor::from_data(TensorData::new(image, [n, 1, size, size]), device),
        Tensor::from_data(TensorData::new(mask, [n, size, size]), device),
    )
}

#[test]
fn output_and_feature_shapes() {
    let _rng = rng_lock();
    let device = Default::default();
    let net = small_config().init::<B>(&device).unwrap();
    let x = Tensor::<B, 4>::ones([2, 1, 64, 64], &device);
    let (logits, features) = net.forward_with_features(x.clone());
    assert_eq!(logits.dims(), [2, 2, 64, 64]);
    assert_eq!(features.dims(), [2, 4, 64, 64]);
    assert_eq!(net.forward(x).dims(), [2, 2, 64, 64]);
    // Other depths, widths and class counts.
    let cfg = UNet2dConfig::new()
        .with_features(vec![3, 5, 7])
        .with_dropout(vec![0.0; 3])
        .with_classes(4);
    let (logits, features) = cfg
        .init::<B>(&device)
        .unwrap()
        .forward_with_features(Tensor::zeros([1, 1, 8, 12], &device));
    assert_eq!((logits.dims(), features.dims()), ([1, 4, 8, 12], [1, 3, 8, 12]));
}

#[test]
fn invalid_configs_and_sizes_are_typed_errors() {
    let _rng = rng_lock();
    let device = Default::default();
    let err = |c: UNet2dConfig| c.init::<B>(&device).unwrap_err();
    assert!(matches!(
        err(UNet2dConfig::new().with_dropout(vec![0.1])),
        Error::InvalidConfig { field: "dropout", .. }
    ));
    assert!(matches!(
        err(UNet2dConfig::new().with_features(vec![])),
        Error::InvalidConfig { field: "features", .. }
    ));
    assert!(matches!(
        err(UNet2dConfig::new().with_classes(1)),
        Error::InvalidConfig { field: "classes", .. }
    ));
    let mut bad_p = UNet2dConfig::new();
    bad_p.dropout[2] = 1.0;
    assert!(matches!(err(bad_p), Error::InvalidConfig { field: "dropout", .. }));
    let cfg = UNet2dConfig::new();
    assert!(cfg.check_input_size(256, 256).is_ok());
    assert!(matches!(
        cfg.check_input_size(256, 200),
        Err(Error::InputSize { multiple: 16, .. })
    ));
}

#[test]
fn config_round_trips_through_json() {
    let cfg = small_config().with_decoder_dropout(0.1);
    let json = serde_json::to_string(&cfg).unwrap();
    let back: UNet2dConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cfg);
    // burn 0.21's Config derive does not apply `#[config(default)]` when deserialising: every
    // field must be present (user-facing files need their own all-optional type).
    assert!(serde_json::from_str::<UNet2dConfig>("{}").is_err());
}

/// On an autodiff backend the network trains (dropout on: two passes differ); after `valid()`
/// it evaluates (dropout off, running statistics: two passes agree exactly).
#[test]
fn dropout_is_active_in_training_and_not_in_eval() {
    let _rng = rng_lock();
    let device = Default::default();
    AB::seed(&device, 7);
    let net = UNet2dConfig::new()
        .with_features(vec![4, 8, 8])
        .with_dropout(vec![0.5; 3])
        .init::<AB>(&device)
        .unwrap();
    let x = Tensor::<AB, 4>::random([2, 1, 16, 16], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let train: Vec<Vec<f32>> = (0..2)
        .map(|_| net.forward(x.clone()).into_data().to_vec::<f32>().unwrap())
        .collect();
    assert_ne!(train[0], train[1]);
    let eval = net.valid();
    let x = x.inner();
    let a = eval.forward(x.clone()).into_data().to_vec::<f32>().unwrap();
    let b = eval.forward(x).into_data().to_vec::<f32>().unwrap();
    assert_eq!(a, b);
}

/// The paper's network: 1 944 034 trainable parameters (checked against PyTorch's
/// `sum(p.numel() for p in m.parameters())` on the same architecture). Per block `in -> out`:
/// two 3x3 convs with bias (`9*in*out + out`, `9*out*out + out`) and two BNs (`2*out` each).
///   encoder: 1->16: 144+16+2304+16+64 = 2 544;   16->32: 14 016;   32->64: 55 680;
///            64->128: 221 952;   128->256: 886 272;   sum 1 180 464
///   decoder: up 256->128: 4*256*128+128 = 131 200 + block 256->128: 443 136;
///            up 128->64: 32 832 + block 128->64: 110 976;   up 64->32: 8 224 + block 64->32: 27 840;
///            up 32->16: 2 064 + block 32->16: 7 008;   sum 763 280
///   head 16->2: 9*16*2+2 = 290.   Total 1 180 464 + 763 280 + 290 = 1 944 034.
/// burn's `num_params` also counts BN running mean and variance: 4*out per block,
/// 4*(16+32+64+128+256 + 128+64+32+16) = 4*736 = 2 944 more.
#[test]
fn paper_parameter_count() {
    let _rng = rng_lock();
    let cfg = UNet2dConfig::new();
    assert_eq!(cfg.trainable_params(), 1_944_034);
    let net = cfg.init::<B>(&Default::default()).unwrap();
    assert_eq!(net.num_params(), 1_944_034 + 2_944);
}

/// `steps` SGD steps as METHOD.md step 3 (lr 0.03, momentum 0.9 without dampening as in
/// PyTorch, weight decay 1e-4) on one batch of two 32x32 disks, from `seed`: the loss of each
/// step and the trained network's evaluation logits on the batch.
fn train_disks(seed: u64, steps: usize) -> (Vec<f32>, Vec<f32>) {
    let device = Default::default();
    AB::seed(&device, seed);
    let config = UNet2dConfig::new()
        .with_features(vec![8, 16, 32])
        .with_dropout(vec![0.05, 0.1, 0.2]);
    let mut net = config.init::<AB>(&device).unwrap();
    let loss_fn = SegLossConfig::new().init(2).unwrap();
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_momentum(0.9).with_dampening(0.0)))
        .with_weight_decay(Some(WeightDecayConfig::new(1e-4)))
        .init::<AB, UNet2d<AB>>();
    let (x, y) = disk_batch::<AB>(2, 32, &device);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let loss = loss_fn.forward(net.forward(x.clone()), y.clone()).total;
        losses.push(loss.clone().into_scalar());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(0.03, net, grads);
    }
    let logits = net.valid().forward(x.inner()).into_data().to_vec::<f32>().unwrap();
    (losses, logits)
}

/// Same seed, same numbers (initial weights, dropout masks, every loss, the trained network);
/// another seed, other numbers.
#[test]
fn same_seed_same_training() {
    let _rng = rng_lock();
    let a = train_disks(5, 3);
    assert_eq!(a, train_disks(5, 3));
    assert_ne!(a.0, train_disks(6, 3).0);
}

/// delinea's CPU kernels (`model::kernels`) train as burn's own ops do: over 50 SGD steps from
/// the same seed (same initial weights, same dropout masks) every loss within 1e-3 relative.
#[test]
fn kernels_train_like_burns_own_ops() {
    let _rng = rng_lock();
    let (ours, _) = train_disks(11, 50);
    let (burns, _) = super::kernels::with_burn_ops(|| train_disks(11, 50));
    let worst = ours
        .iter()
        .zip(&burns)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1e-6))
        .fold(0f32, f32::max);
    assert!(
        worst <= 1e-3,
        "largest relative loss difference {worst:e}\nours  {ours:?}\nburn's {burns:?}"
    );
    assert!(ours[49] < 0.5 * ours[0], "the run trains: {ours:?}");
}

/// SGD as METHOD.md step 3 overfits one batch of disks: the loss falls below half its start
/// within 20 steps.
#[test]
fn sgd_steps_lower_the_loss() {
    let _rng = rng_lock();
    let (losses, _) = train_disks(42, 20);
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(last < 0.5 * first, "loss {first} -> {last}: {losses:?}");
}

/// Evaluation with batch norm folded into the convolutions (the default) gives the same
/// probabilities as batch norm applied after them, within 1e-4, for a trained network whose
/// running statistics and scales are far from their initial values.
#[test]
fn folded_batch_norm_gives_the_same_probabilities() {
    let _rng = rng_lock();
    let device = Default::default();
    AB::seed(&device, 9);
    let config = UNet2dConfig::new()
        .with_features(vec![8, 16, 32])
        .with_dropout(vec![0.05, 0.1, 0.2]);
    let mut net = config.init::<AB>(&device).unwrap();
    let loss_fn = SegLossConfig::new().init(2).unwrap();
    let mut optim = SgdConfig::new().init::<AB, UNet2d<AB>>();
    let (x, y) = disk_batch::<AB>(4, 32, &device);
    for _ in 0..10 {
        let loss = loss_fn.forward(net.forward(x.clone().mul_scalar(3.0).add_scalar(1.0)), y.clone());
        let grads = GradientsParams::from_grads(loss.total.backward(), &net);
        net = optim.step(0.1, net, grads);
    }
    let eval = net.valid();
    let x = x.inner();
    let probs = |logits: Tensor<B, 4>| burn::tensor::activation::softmax(logits, 1);
    let folded = probs(eval.forward(x.clone()));
    let unfolded = probs(eval.forward_unfolded(x));
    let diff: f32 = folded.sub(unfolded).abs().max().into_scalar();
    assert!(diff < 1e-4, "folded and unfolded probabilities differ by {diff}");
}

/// A batch cut into concurrent parts gives what the whole batch gives, in batch order.
#[test]
fn forward_in_parts_matches_the_whole_batch() {
    let _rng = rng_lock();
    let device = Default::default();
    let net = small_config().init::<B>(&device).unwrap();
    let (x, _) = disk_batch::<B>(5, 32, &device);
    let (logits, features) = net.forward_with_features(x.clone());
    for parts in [1, 2, 3, 8] {
        let (l, f) = net.forward_in_parts(x.clone(), parts);
        assert_eq!(l.dims(), logits.dims());
        let dl: f32 = l.sub(logits.clone()).abs().max().into_scalar();
        let df: f32 = f.sub(features.clone()).abs().max().into_scalar();
        assert!(
            dl < 1e-6 && df < 1e-6,
            "{parts} parts: logits differ by {dl}, features by {df}"
        );
    }
}
