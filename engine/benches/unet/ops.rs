//! Where a training step of the paper's U-Net goes, op by op: every 3 × 3 convolution, 2 × 2
//! transposed convolution and batch norm of the network at `[batch, 1, size, size]`, timed
//! alone on `Autodiff<Flex>` (forward recording the graph, then backward), with delinea's
//! kernels or with burn's own ops (`kernels::with_burn_ops`). Each figure is the sum over the
//! network's layers of the per-layer median; "the rest" is the training step minus them all
//! (loss, activations, dropout, pooling, concatenation, the autodiff graph, the optimiser).

use std::time::Duration;

use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, PaddedConvOptions};
use burn::tensor::{Distribution, Tensor};
use delinea::model::kernels::{conv2d, conv_transpose2d, with_burn_ops};
use delinea::model::{BatchNorm2d, BatchNorm2dConfig};

use super::{time, AB};

/// Per-op time of one training step, summed over the network's layers.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpTimes {
    pub conv_forward: Duration,
    pub conv_input_grad: Duration,
    pub conv_weight_grad: Duration,
    pub conv_transpose: Duration,
    pub batch_norm: Duration,
}

impl OpTimes {
    pub fn total(&self) -> Duration {
        self.conv_forward + self.conv_input_grad + self.conv_weight_grad + self.conv_transpose + self.batch_norm
    }
}

/// A 3 × 3 convolution: input shape, output channels, whether its input needs a gradient.
type ConvLayer = ([usize; 4], usize, bool);
/// A 2 × 2 upsampling: input shape, output channels.
type UpLayer = ([usize; 4], usize);

/// The network's layers at `[batch, 1, size, size]` (features 16-32-64-128-256, 2 classes):
/// its 3 × 3 convolutions, 2 × 2 upsamplings and batch norms (as their input shapes).
fn layers(batch: usize, size: usize) -> (Vec<ConvLayer>, Vec<UpLayer>, Vec<[usize; 4]>) {
    let f = [16, 32, 64, 128, 256];
    let (mut convs, mut ups, mut norms) = (Vec::new(), Vec::new(), Vec::new());
    for (l, &c) in f.iter().enumerate() {
        let s = size >> l;
        let c_in = if l == 0 { 1 } else { f[l - 1] };
        convs.push(([batch, c_in, s, s], c, l > 0)); // the image needs no gradient
        convs.push(([batch, c, s, s], c, true));
        norms.extend([[batch, c, s, s]; 2]);
    }
    for l in (0..f.len() - 1).rev() {
        let s = size >> l;
        ups.push(([batch, f[l + 1], s / 2, s / 2], f[l]));
        convs.push(([batch, 2 * f[l], s, s], f[l], true));
        convs.push(([batch, f[l], s, s], f[l], true));
        norms.extend([[batch, f[l], s, s]; 2]);
    }
    convs.push(([batch, f[0], size, size], 2, true)); // the head
    (convs, ups, norms)
}

fn random<const D: usize>(shape: [usize; D]) -> Tensor<AB, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

/// Times every layer with delinea's kernels, or with burn's ops when `burn_ops`.
pub fn time_ops(reps: usize, batch: usize, size: usize, burn_ops: bool) -> OpTimes {
    let run = |f: &mut dyn FnMut()| {
        if burn_ops {
            with_burn_ops(|| time(reps, f).0)
        } else {
            time(reps, f).0
        }
    };
    let (convs, ups, norms) = layers(batch, size);
    let mut t = OpTimes::default();
    let options = PaddedConvOptions::from(ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
    for (shape, c_out, input_grad) in convs {
        let (x, w, b) = (random(shape), random([c_out, shape[1], 3, 3]), random([c_out]));
        let conv = |x: &Tensor<AB, 4>, w: &Tensor<AB, 4>, b: &Tensor<AB, 1>| {
            conv2d(x.clone(), w.clone(), Some(b.clone()), options.clone())
        };
        let (wg, bg) = (w.clone().require_grad(), b.clone().require_grad());
        let forward = run(&mut || drop(conv(&x, &wg, &bg)));
        t.conv_forward += forward;
        let weight = run(&mut || drop(conv(&x, &wg, &bg).backward()));
        t.conv_weight_grad += weight.saturating_sub(forward);
        if input_grad {
            let xg = x.clone().require_grad();
            let input = run(&mut || drop(conv(&xg, &w, &b).backward()));
            t.conv_input_grad += input.saturating_sub(forward);
        }
    }
    for (shape, c_out) in ups {
        let (x, w, b) = (
            random(shape).require_grad(),
            random([shape[1], c_out, 2, 2]).require_grad(),
            random([c_out]).require_grad(),
        );
        let options = ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1);
        t.conv_transpose +=
            run(&mut || drop(conv_transpose2d(x.clone(), w.clone(), Some(b.clone()), options.clone()).backward()));
    }
    for shape in norms {
        let x = random(shape).require_grad();
        let norm: BatchNorm2d<AB> = BatchNorm2dConfig::new(shape[1]).init(&Default::default());
        t.batch_norm += run(&mut || drop(norm.forward(x.clone()).backward()));
    }
    t
}
