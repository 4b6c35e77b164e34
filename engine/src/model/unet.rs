//! The paper's 2D U-Net (METHOD.md step 2), as in the reference code (SSL4MIS `UNet`):
//! five levels of Conv3x3-BN-LeakyReLU-Dropout-Conv3x3-BN-LeakyReLU blocks, max-pool 2 down,
//! transposed-conv 2x2 up, skips concatenated as `[skip, upsampled]`, a Conv3x3 head.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, PaddingConfig2d};
use burn::tensor::activation::leaky_relu;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvTransposeOptions, PaddedConvOptions};
use burn::tensor::{Distribution, Tensor};
use rayon::prelude::*;

use super::kernels;
use super::norm::{BatchNorm2d, BatchNorm2dConfig};
use super::Error;

/// Architecture of a [`UNet2d`]. Defaults are the paper's (METHOD.md step 2); every field is
/// configurable and the whole config serialises to JSON (half of a checkpoint).
///
/// The depth is `features.len()`: the input's height and width must be divisible by
/// `2^(depth - 1)` ([`UNet2dConfig::check_input_size`]).
#[derive(Config, Debug, PartialEq)]
pub struct UNet2dConfig {
    /// Input channels (one MRI sequence: 1).
    #[config(default = 1)]
    pub in_channels: usize,
    /// Output classes (background, tumour: 2).
    #[config(default = 2)]
    pub classes: usize,
    /// Feature channels of each level, from the top (full resolution) down to the bottleneck.
    #[config(default = "vec![16, 32, 64, 128, 256]")]
    pub features: Vec<usize>,
    /// Dropout probability inside each encoder block, one per level (same length as `features`).
    #[config(default = "vec![0.05, 0.1, 0.2, 0.3, 0.5]")]
    pub dropout: Vec<f64>,
    /// Dropout probability inside every decoder block (0 in the reference code).
    #[config(default = 0.0)]
    pub decoder_dropout: f64,
    /// Slope of LeakyReLU for negative inputs (PyTorch's default, used by the reference: 0.01).
    #[config(default = 0.01)]
    pub negative_slope: f64,
    /// Batch-norm epsilon (PyTorch's default: 1e-5).
    #[config(default = 1e-5)]
    pub bn_epsilon: f64,
    /// Batch-norm running-statistics momentum (PyTorch's convention and default: 0.1).
    #[config(default = 0.1)]
    pub bn_momentum: f64,
}

impl UNet2dConfig {
    /// Checks the config without building anything: non-empty, non-zero widths, one dropout
    /// per level, probabilities in `[0, 1)`.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field: &'static str, reason: String| Err(Error::InvalidConfig { field, reason });
        if self.in_channels == 0 {
            return invalid("in_channels", "must be at least 1".into());
        }
        if self.classes < 2 {
            return invalid("classes", format!("must be at least 2, found {}", self.classes));
        }
        if self.features.is_empty() || self.features.contains(&0) {
            return invalid(
                "features",
                format!("must be non-empty and non-zero, found {:?}", self.features),
            );
        }
        if self.dropout.len() != self.features.len() {
            return invalid(
                "dropout",
                format!(
                    "needs one value per level ({}), found {}",
                    self.features.len(),
                    self.dropout.len()
                ),
            );
        }
        let bad_p = |p: f64| !(0.0..1.0).contains(&p);
        if let Some(p) = self.dropout.iter().copied().find(|&p| bad_p(p)) {
            return invalid("dropout", format!("probabilities must be in [0, 1), found {p}"));
        }
        if bad_p(self.decoder_dropout) {
            return invalid(
                "decoder_dropout",
                format!("must be in [0, 1), found {}", self.decoder_dropout),
            );
        }
        if !(self.negative_slope.is_finite() && self.bn_epsilon > 0.0 && (0.0..=1.0).contains(&self.bn_momentum)) {
            return invalid(
                "negative_slope/bn_epsilon/bn_momentum",
                format!(
                    "need a finite slope, epsilon > 0 and momentum in [0, 1], found {}, {}, {}",
                    self.negative_slope, self.bn_epsilon, self.bn_momentum
                ),
            );
        }
        Ok(())
    }

    /// Number of levels (`features.len()`).
    pub fn depth(&self) -> usize {
        self.features.len()
    }

    /// Checks that a `height x width` slice passes through the network: both divisible by
    /// `2^(depth - 1)` (16 for the paper's five levels) and non-zero.
    pub fn check_input_size(&self, height: usize, width: usize) -> Result<(), Error> {
        let multiple = 1usize << self.depth().saturating_sub(1);
        if height == 0 || width == 0 || !height.is_multiple_of(multiple) || !width.is_multiple_of(multiple) {
            return Err(Error::InputSize {
                height,
                width,
                multiple,
            });
        }
        Ok(())
    }

    /// The number of trainable parameters of this architecture, by formula (no tensors built).
    ///
    /// A block `in -> out` has two 3x3 convolutions with biases and two batch norms (gamma,
    /// beta): `9*in*out + out + 2*out + 9*out*out + out + 2*out = 9*in*out + 9*out^2 + 6*out`.
    /// An up step `f_{l+1} -> f_l` has a 2x2 transposed convolution with bias
    /// (`4*f_{l+1}*f_l + f_l`) and a block `2*f_l -> f_l`. The head is a 3x3 convolution
    /// `f_0 -> classes` with bias. Batch-norm running statistics are not parameters
    /// (`Module::num_params` counts them too: `4*out` per block more).
    pub fn trainable_params(&self) -> usize {
        let block = |i: usize, o: usize| 9 * i * o + 9 * o * o + 6 * o;
        let f = &self.features;
        let mut total = 0;
        let mut prev = self.in_channels;
        for &c in f {
            total += block(prev, c);
            prev = c;
        }
        for l in (0..f.len().saturating_sub(1)).rev() {
            total += 4 * f[l + 1] * f[l] + f[l] + block(2 * f[l], f[l]);
        }
        total + 9 * f[0] * self.classes + self.classes
    }

    /// Builds the network with freshly initialised weights (PyTorch's default initialisation:
    /// uniform in `±1/sqrt(fan_in)` for convolution weights and biases; BN gamma 1, beta 0).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<UNet2d<B>, Error> {
        self.validate()?;
        let f = &self.features;
        let block = |i: usize, o: usize, p: f64| ConvBlock::new(i, o, p, self, device);

        let mut encoder = Vec::with_capacity(f.len());
        let mut prev = self.in_channels;
        for (&c, &p) in f.iter().zip(&self.dropout) {
            encoder.push(block(prev, c, p));
            prev = c;
        }
        // Decoder from the bottleneck up: up[0] goes f[depth-1] -> f[depth-2].
        let decoder = (0..f.len() - 1)
            .rev()
            .map(|l| UpBlock {
                up: ConvTranspose2dConfig::new([f[l + 1], f[l]], [2, 2])
                    .with_stride([2, 2])
                    .init(device),
                block: block(2 * f[l], f[l], self.decoder_dropout),
            })
            .collect();
        Ok(UNet2d {
            encoder,
            decoder,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            head: conv3x3(f[0], self.classes, device),
        })
    }
}

/// A 3x3 convolution with bias and padding 1 (`[B, i, H, W] -> [B, o, H, W]`).
fn conv3x3<B: Backend>(i: usize, o: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([i, o], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// Conv3x3-BN-LeakyReLU-Dropout-Conv3x3-BN-LeakyReLU (the reference's `ConvBlock`).
#[derive(Module, Debug)]
pub struct ConvBlock<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm2d<B>,
    dropout: Dropout,
    conv2: Conv2d<B>,
    bn2: BatchNorm2d<B>,
    negative_slope: f64,
}

impl<B: Backend> ConvBlock<B> {
    fn new(i: usize, o: usize, p: f64, cfg: &UNet2dConfig, device: &B::Device) -> Self {
        let bn = BatchNorm2dConfig::new(o)
            .with_epsilon(cfg.bn_epsilon)
            .with_momentum(cfg.bn_momentum);
        Self {
            conv1: conv3x3(i, o, device),
            bn1: bn.init(device),
            dropout: DropoutConfig::new(p).init(),
            conv2: conv3x3(o, o, device),
            bn2: bn.init(device),
            negative_slope: cfg.negative_slope,
        }
    }

    /// # Shapes
    /// - `x`: `[batch, in, H, W]`
    /// - output: `[batch, out, H, W]`
    fn forward(&self, x: Tensor<B, 4>, pass: Pass) -> Tensor<B, 4> {
        let x = conv_bn(&self.conv1, &self.bn1, x, pass.fold_batch_norm); // [B, out, H, W]
        let x = leaky_relu(x, self.negative_slope); // [B, out, H, W]
        let x = if pass.mc_dropout {
            always_dropout(x, self.dropout.prob) // [B, out, H, W], active on any backend
        } else {
            self.dropout.forward(x) // [B, out, H, W] (identity without autodiff)
        };
        let x = conv_bn(&self.conv2, &self.bn2, x, pass.fold_batch_norm); // [B, out, H, W]
        leaky_relu(x, self.negative_slope) // [B, out, H, W]
    }
}

/// How a forward pass runs besides the backend's training/evaluation mode.
#[derive(Debug, Clone, Copy)]
struct Pass {
    /// Dropout active on any backend (MC dropout).
    mc_dropout: bool,
    /// In evaluation, fold each batch norm into the convolution before it.
    fold_batch_norm: bool,
}

/// `bn(conv(x))`. In evaluation (a backend without autodiff) and with `fold`, one convolution
/// with the batch norm folded into its weight and bias ([`BatchNorm2d::fold_into`]): the same
/// numbers up to rounding, without the batch norm's two passes over the activation.
///
/// # Shapes
/// - `x`: `[batch, in, H, W]`
/// - output: `[batch, out, H', W']`
fn conv_bn<B: Backend>(conv: &Conv2d<B>, bn: &BatchNorm2d<B>, x: Tensor<B, 4>, fold: bool) -> Tensor<B, 4> {
    let Some(options) = explicit_options(conv) else {
        return bn.forward(conv.forward(x)); // only explicit padding is built here
    };
    let bias = conv.bias.as_ref().map(|b| b.val());
    if !fold || B::ad_enabled(&x.device()) {
        return bn.forward(kernels::conv2d(x, conv.weight.val(), bias, options));
    }
    let (weight, bias) = bn.fold_into(conv.weight.val(), bias);
    kernels::conv2d(x, weight, Some(bias), options) // [B, out, H', W']
}

/// `conv(x)` through [`kernels::conv2d`] (delinea's CPU kernels where they apply).
fn conv_forward<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    match explicit_options(conv) {
        Some(options) => kernels::conv2d(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), options),
        None => conv.forward(x),
    }
}

/// The convolution options of a convolution with explicit padding (every one built here).
fn explicit_options<B: Backend>(conv: &Conv2d<B>) -> Option<PaddedConvOptions<2>> {
    let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else {
        return None;
    };
    Some(PaddedConvOptions::asymmetric(
        conv.stride,
        [top, left],
        [bottom, right],
        conv.dilation,
        conv.groups,
    ))
}

/// `up(x)` through [`kernels::conv_transpose2d`] (delinea's CPU kernels where they apply).
fn up_forward<B: Backend>(up: &ConvTranspose2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let options = ConvTransposeOptions::new(up.stride, up.padding, up.padding_out, up.dilation, up.groups);
    kernels::conv_transpose2d(x, up.weight.val(), up.bias.as_ref().map(|b| b.val()), options)
}

/// Inverted dropout with probability `p` regardless of the backend (burn's `Dropout` is the
/// identity without autodiff). Shape preserved.
fn always_dropout<B: Backend>(x: Tensor<B, 4>, p: f64) -> Tensor<B, 4> {
    if p <= 0.0 {
        return x;
    }
    let keep = 1.0 - p;
    let mask = x.random_like(Distribution::Bernoulli(keep));
    x.mul(mask).mul_scalar(1.0 / keep)
}

/// One decoder step: transposed-conv 2x2 upsampling, concatenation with the skip, a block.
#[derive(Module, Debug)]
pub struct UpBlock<B: Backend> {
    up: ConvTranspose2d<B>,
    block: ConvBlock<B>,
}

impl<B: Backend> UpBlock<B> {
    /// # Shapes
    /// - `x`: `[batch, c_low, H/2, W/2]` (the level below)
    /// - `skip`: `[batch, c, H, W]` (the encoder at this level)
    /// - output: `[batch, c, H, W]`
    fn forward(&self, x: Tensor<B, 4>, skip: Tensor<B, 4>, pass: Pass) -> Tensor<B, 4> {
        let x = up_forward(&self.up, x); // [B, c, H, W]
        let x = Tensor::cat(vec![skip, x], 1); // [B, 2c, H, W], skip first as in the reference
        self.block.forward(x, pass) // [B, c, H, W]
    }
}

/// The 2D U-Net of METHOD.md step 2, built by [`UNet2dConfig::init`].
///
/// Training or evaluation follows burn's convention: on an autodiff backend the network trains
/// (dropout active, batch statistics, running statistics updated); after
/// [`AutodiffModule::valid`](burn::module::AutodiffModule::valid), or on a plain backend, it
/// evaluates (no dropout, running statistics).
#[derive(Module, Debug)]
pub struct UNet2d<B: Backend> {
    encoder: Vec<ConvBlock<B>>,
    decoder: Vec<UpBlock<B>>,
    pool: MaxPool2d,
    head: Conv2d<B>,
}

impl<B: Backend> UNet2d<B> {
    /// Class logits (softmax over dim 1 gives probabilities).
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, H, W]`, `H` and `W` multiples of `2^(depth-1)`
    /// - output: `[batch, classes, H, W]`
    ///
    /// # Panics
    /// When `H` or `W` is not a multiple of `2^(depth-1)` (check with
    /// [`UNet2dConfig::check_input_size`] first).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_with_features(x).0
    }

    /// Class logits and the last decoder feature map (the STDR descriptor's `F`, METHOD.md
    /// step 4).
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, H, W]`
    /// - output: (`[batch, classes, H, W]`, `[batch, features[0], H, W]`)
    pub fn forward_with_features(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        self.run(
            x,
            Pass {
                mc_dropout: false,
                fold_batch_norm: true,
            },
        )
    }

    /// As [`UNet2d::forward_with_features`], with the batch cut into `parts` consecutive
    /// chunks that run concurrently on the rayon thread pool, outputs concatenated in batch
    /// order (the same numbers: no layer mixes the samples of a batch in evaluation).
    ///
    /// Why: on the CPU backend each convolution has serial stretches (layout conversions,
    /// buffer set-up) during which the other threads idle; two half batches at once keep them
    /// busy. Use the number of CPU threads on the CPU and 1 on a GPU (one part is a plain
    /// forward). For evaluation only: on an autodiff backend the batch statistics would be
    /// each part's, and MC dropout would draw its masks in a thread-dependent order.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, H, W]`
    /// - output: (`[batch, classes, H, W]`, `[batch, features[0], H, W]`)
    pub fn forward_in_parts(&self, x: Tensor<B, 4>, parts: usize) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let parts = parts.min(x.dims()[0]);
        if parts <= 1 || B::ad_enabled(&x.device()) {
            return self.forward_with_features(x);
        }
        let outputs: Vec<(Tensor<B, 4>, Tensor<B, 4>)> = x
            .chunk(parts, 0) // `parts` chunks of [b / parts, in, H, W] (the last may be smaller)
            .into_par_iter()
            .map(|part| self.forward_with_features(part))
            .collect();
        let (logits, features): (Vec<_>, Vec<_>) = outputs.into_iter().unzip();
        (Tensor::cat(logits, 0), Tensor::cat(features, 0)) // [B, classes, H, W], [B, f0, H, W]
    }

    /// Class logits without folding batch norm into the convolutions in evaluation (every
    /// other forward folds it, [`BatchNorm2d::fold_into`]): the reference the folding is
    /// checked and timed against. The same on an autodiff backend.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, H, W]`
    /// - output: `[batch, classes, H, W]`
    pub fn forward_unfolded(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let pass = Pass {
            mc_dropout: false,
            fold_batch_norm: false,
        };
        self.run(x, pass).0
    }

    /// Monte-Carlo dropout pass: like [`UNet2d::forward_with_features`], but every dropout
    /// layer draws a fresh mask (from the backend's seeded generator) even on a backend
    /// without autodiff, where batch norm uses its running statistics: "dropout on, BN in
    /// evaluation mode" (METHOD.md, MC-dropout baselines). On an autodiff backend batch norm
    /// still trains; call it on [`AutodiffModule::valid`](burn::module::AutodiffModule::valid).
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, H, W]`
    /// - output: (`[batch, classes, H, W]`, `[batch, features[0], H, W]`)
    pub fn forward_mc_with_features(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        self.run(
            x,
            Pass {
                mc_dropout: true,
                fold_batch_norm: true,
            },
        )
    }

    /// The running-statistics momentum of the batch norms (the top block's first; all are the
    /// same unless set otherwise).
    pub fn batch_norm_momentum(&self) -> f64 {
        self.encoder.first().map_or(0.1, |b| b.bn1.momentum())
    }

    /// The same network with every batch norm's running-statistics momentum set to `momentum`
    /// (see [`BatchNorm2d::with_momentum`]); e.g. `b / seen` for a cumulative average.
    pub fn with_batch_norm_momentum(self, momentum: f64) -> Self {
        self.map_batch_norms(|bn| bn.with_momentum(momentum))
    }

    /// The same network with every batch norm passed through `f`, encoder first, in order.
    pub fn map_batch_norms(self, mut f: impl FnMut(BatchNorm2d<B>) -> BatchNorm2d<B>) -> Self {
        let mut set = |block: ConvBlock<B>| ConvBlock {
            bn1: f(block.bn1),
            bn2: f(block.bn2),
            ..block
        };
        let encoder = self.encoder.into_iter().map(&mut set).collect();
        let decoder = (self.decoder.into_iter())
            .map(|u| UpBlock {
                block: set(u.block),
                ..u
            })
            .collect();
        UNet2d {
            encoder,
            decoder,
            ..self
        }
    }

    fn run(&self, x: Tensor<B, 4>, pass: Pass) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let mut skips = Vec::with_capacity(self.encoder.len());
        let mut x = x; // [B, in, H, W]
        for (level, block) in self.encoder.iter().enumerate() {
            if level > 0 {
                x = kernels::max_pool2d(&self.pool, x); // [B, f[l-1], H/2^l, W/2^l]
            }
            x = block.forward(x, pass); // [B, f[l], H/2^l, W/2^l]
            skips.push(x.clone());
        }
        skips.pop(); // the bottleneck is `x` itself
        for up in &self.decoder {
            // Skips are consumed bottom-up, as the decoder runs.
            let skip = skips.pop().expect("one skip per decoder level by construction"); // [B, f[l], ..]
            x = up.forward(x, skip, pass); // [B, f[l], H/2^l, W/2^l]
        }
        let logits = conv_forward(&self.head, x.clone()); // [B, classes, H, W]
        (logits, x) // x: [B, f[0], H, W]
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use burn::module::{AutodiffModule, Param};
    use burn::tensor::TensorData;

    use super::*;

    type AB = Autodiff<Flex>;

    /// An ordinary pass: no MC dropout, batch norm folded in evaluation.
    const PLAIN: Pass = Pass {
        mc_dropout: false,
        fold_batch_norm: true,
    };

    /// `n` values `sin(0.37 i + k) * scale` shaped `shape` (the same formula as the PyTorch
    /// script that produced the expected numbers).
    fn vals<const D: usize>(n: usize, k: f64, scale: f64, shape: [usize; D]) -> Tensor<AB, D> {
        let v: Vec<f32> = (0..n).map(|i| ((0.37 * i as f64 + k).sin() * scale) as f32).collect();
        Tensor::from_data(TensorData::new(v, shape), &Default::default())
    }

    fn assert_close(got: Tensor<Flex, 4>, want: &[f32], tol: f32) {
        let got = got.into_data().to_vec::<f32>().unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "element {i}: got {g}, PyTorch {w}"
            );
        }
    }

    /// The conv block and transposed convolution of bench/model/torch_reference.py, with its
    /// fixed weights.
    fn reference_block() -> (ConvBlock<AB>, ConvTranspose2d<AB>) {
        let device = Default::default();
        let cfg = UNet2dConfig::new();
        let mut block = ConvBlock::<AB>::new(1, 2, 0.0, &cfg, &device);
        block.conv1.weight = Param::from_tensor(vals(18, 1.0, 0.3, [2, 1, 3, 3]));
        block.conv1.bias = Some(Param::from_tensor(vals(2, 2.0, 0.1, [2])));
        block.conv2.weight = Param::from_tensor(vals(36, 3.0, 0.3, [2, 2, 3, 3]));
        block.conv2.bias = Some(Param::from_tensor(vals(2, 4.0, 0.1, [2])));
        block.bn1.gamma = Param::from_tensor(vals(2, 5.0, 0.5, [2]).add_scalar(1.0));
        block.bn1.beta = Param::from_tensor(vals(2, 6.0, 0.2, [2]));
        block.bn2.gamma = Param::from_tensor(vals(2, 7.0, 0.5, [2]).add_scalar(1.0));
        block.bn2.beta = Param::from_tensor(vals(2, 8.0, 0.2, [2]));
        let mut up = ConvTranspose2dConfig::new([2, 1], [2, 2])
            .with_stride([2, 2])
            .init::<AB>(&device);
        up.weight = Param::from_tensor(vals(8, 9.0, 0.4, [2, 1, 2, 2]));
        up.bias = Some(Param::from_tensor(vals(1, 10.0, 0.1, [1])));
        (block, up)
    }

    /// One block Conv3x3-BN-LeakyReLU-Dropout(0)-Conv3x3-BN-LeakyReLU (training mode: batch
    /// statistics) and a 2x2 stride-2 transposed convolution, with fixed weights, against
    /// PyTorch 2.15 (`nn.Conv2d`, `nn.BatchNorm2d`, `nn.LeakyReLU()`, `nn.ConvTranspose2d`,
    /// float32), numbers from bench/model/torch_reference.py.
    #[test]
    fn matches_pytorch_conv_block() {
        let _rng = crate::model::rng_lock();
        let (block, up) = reference_block();
        let x = vals(32, 0.0, 1.0, [2, 1, 4, 4]);
        let y = block.forward(x, PLAIN); // [2, 2, 4, 4]
        #[rustfmt::skip]
        let want_y = [1.15018, 1.03057, 0.0677543, -0.00368149, -0.00344388, -0.0173236, -0.0210506, -0.0120479,
            -0.010775, -0.010664, 0.0791727, 1.09687, 0.772389, 1.96597, 2.73184, 2.04089, 1.41894, 1.68814, 0.78277,
            0.0808492, 0.588783, -0.00661426, -0.0156424, -0.0109899, -0.0167467, -0.0245017, -0.0162215, 0.0302402,
            0.333423, 1.41691, 2.46421, 2.18569, 1.68414, 2.08205, 1.08557, 0.254397, 0.465444, -0.00808817,
            -0.0170705, -0.0122558, -0.0111022, -0.0173966, -0.0087731, 0.418962, 0.131545, 0.988836, 1.947, 1.70561,
            1.66382, 2.43077, 1.64725, 0.67553, 1.55603, 0.698177, -0.00674815, -0.0080295, -0.0122873, -0.0248912,
            -0.0217364, -0.00506976, -0.00359349, 0.220106, 1.37488, 1.61736];
        assert_close(y.clone().inner(), &want_y, 1e-4);
        let z = up.forward(y); // [2, 1, 8, 8]
        let z_sum: f32 = z.clone().sum().into_scalar();
        assert!((z_sum - -44.325_42).abs() < 1e-3, "sum {z_sum}");
        let want_z_row = [
            -0.358596, -0.590787, -0.471994, -0.699945, -0.31564, -0.362714, -0.0831448, -0.0864804,
        ];
        assert_close(z.inner().narrow(0, 0, 1).narrow(2, 0, 1), &want_z_row, 1e-4);
        // Evaluation after that one training pass: running statistics with PyTorch's momentum
        // (0.1) and unbiased running variance.
        let block = block.valid();
        let mean = block.bn1.running_mean.value().into_data().to_vec::<f32>().unwrap();
        let var = block.bn1.running_var.value().into_data().to_vec::<f32>().unwrap();
        assert!(
            (mean[0] - 0.031_202_74).abs() < 1e-5 && (mean[1] - -0.015_723_21).abs() < 1e-5,
            "{mean:?}"
        );
        assert!(
            (var[0] - 0.943_917_5).abs() < 1e-5 && (var[1] - 0.946_866_7).abs() < 1e-5,
            "{var:?}"
        );
        #[rustfmt::skip]
        let want_eval = [0.24699, 0.135943, -0.00166093, -0.00233805, -0.00230331, -0.00693772, -0.00810796,
            -0.00454425, -0.00400721, -0.00458519, -0.0012917, 0.229564, 0.155629, 0.453593, 0.673119, 0.541319,
            0.282218, 0.278942, -5.60651e-05, -0.00175007, -0.000450843, -0.00487346, -0.00769352, -0.00543495,
            -0.0065296, -0.00946255, -0.00703221, -0.00169726, -0.000728945, 0.168005, 0.470017, 0.464047, 0.408946,
            0.441798, 0.141759, -0.000323665, 0.00573267, -0.00431414, -0.00692724, -0.00467893, -0.00410916,
            -0.00647867, -0.00408706, 0.0249068, -0.00017381, 0.19008, 0.447138, 0.44459, 0.362174, 0.500517,
            0.260227, 0.0230562, 0.237097, -0.0010163, -0.00499294, -0.00450987, -0.00525988, -0.00957446,
            -0.00872916, -0.00338688, -0.00258918, -0.00152799, 0.155776, 0.296202];
        // Batch norm folded into the convolutions (the evaluation default) and not folded.
        let x = vals(32, 0.0, 1.0, [2, 1, 4, 4]).inner();
        assert_close(block.forward(x.clone(), PLAIN), &want_eval, 1e-4);
        let unfolded = Pass {
            fold_batch_norm: false,
            ..PLAIN
        };
        assert_close(block.forward(x, unfolded), &want_eval, 1e-4);
    }

    /// Two SGD steps (lr 0.03, momentum 0.9 with burn's dampening set to PyTorch's 0, weight
    /// decay 1e-4) through the block (training mode) and the transposed convolution, on
    /// `loss = sum(up(block(x)) * wt)`: the weights match `torch.optim.SGD`'s.
    #[test]
    fn sgd_matches_pytorch() {
        use burn::optim::decay::WeightDecayConfig;
        use burn::optim::momentum::MomentumConfig;
        use burn::optim::{GradientsParams, Optimizer, SgdConfig};

        #[derive(Module, Debug)]
        struct Net<B: Backend> {
            block: ConvBlock<B>,
            up: ConvTranspose2d<B>,
        }
        let _rng = crate::model::rng_lock();
        let (block, up) = reference_block();
        let mut net = Net { block, up };
        let mut optim = SgdConfig::new()
            .with_momentum(Some(MomentumConfig::new().with_momentum(0.9).with_dampening(0.0)))
            .with_weight_decay(Some(WeightDecayConfig::new(1e-4)))
            .init::<AB, Net<AB>>();
        let x = vals(32, 0.0, 1.0, [2, 1, 4, 4]);
        let wt = vals(128, 11.0, 1.0, [2, 1, 8, 8]);
        for _ in 0..2 {
            let loss = net
                .up
                .forward(net.block.forward(x.clone(), PLAIN))
                .mul(wt.clone())
                .sum();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(0.03, net, grads);
        }
        let conv1 = net.block.conv1.weight.val().inner().reshape([1, 2, 3, 3]);
        #[rustfmt::skip]
        let want_conv1 = [0.11957, 0.25772, 0.323203, 0.353388, 0.304115, 0.182816, 0.161103, -0.034445, -0.207804,
            -0.256682, -0.320253, -0.361576, -0.473249, -0.423052, -0.210136, -0.0178932, 0.0442327, 0.152288];
        assert_close(conv1, &want_conv1, 1e-4);
        assert_close(
            net.block.bn2.gamma.val().inner().reshape([1, 1, 1, 2]),
            &[2.17494, 1.83529],
            1e-4,
        );
        let want_up = [
            1.41505, 1.26143, -1.31673, -1.51951, 0.861729, 0.799597, -1.5461, -1.55467,
        ];
        assert_close(net.up.weight.val().inner(), &want_up, 1e-4);
    }
}
