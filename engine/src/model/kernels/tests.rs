//! Every kernel against burn's own ops (flex forward, burn-backend's default backward): the
//! forward output and the input, weight and bias gradients, at the U-Net's shapes and at
//! awkward ones. Error: the largest absolute difference over the largest magnitude of burn's
//! result (a relative error of the whole tensor; element-wise ratios mean nothing near 0).

use burn::backend::{Autodiff, Flex};
use burn::tensor::ops::{ConvTransposeOptions, PaddedConvOptions};
use burn::tensor::{Tensor, TensorData};

use super::*;

type AB = Autodiff<Flex>;

/// Deterministic values in [-1, 1] (no RNG: flex's is process-wide).
fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 + seed) * 0.754_877_7).sin() * ((i as f32) * 0.131 + seed).cos())
        .collect()
}

fn tensor<Bk: Backend, const D: usize>(shape: [usize; D], seed: f32) -> Tensor<Bk, D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(values(n, seed), shape), &Default::default())
}

fn relative_error<const D: usize>(got: Tensor<Flex, D>, want: Tensor<Flex, D>) -> f32 {
    assert_eq!(got.dims(), want.dims());
    let (got, want) = (
        got.into_data().to_vec::<f32>().unwrap(),
        want.into_data().to_vec::<f32>().unwrap(),
    );
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max) / scale
}

/// Output and the gradients of x, weight and bias under the loss `sum(y · dy)`.
type Run = (Tensor<Flex, 4>, Tensor<Flex, 4>, Tensor<Flex, 4>, Tensor<Flex, 1>);

/// The bias gradient summed in f64 from `dy` (`[batch, channels, H, W]`): the reference for
/// both sides, since burn's f32 sum of 10⁵ terms that cancel is itself off by more than 1e-4.
fn exact_bias_grad(dy_shape: [usize; 4]) -> Tensor<Flex, 1> {
    let [batch, channels, h, w] = dy_shape;
    let dy = values(batch * channels * h * w, 4.0);
    let sums: Vec<f32> = (0..channels)
        .map(|c| {
            (0..batch)
                .flat_map(|b| &dy[(b * channels + c) * h * w..][..h * w])
                .map(|&v| f64::from(v))
                .sum::<f64>() as f32
        })
        .collect();
    Tensor::from_data(TensorData::new(sums, [channels]), &Default::default())
}

fn run(
    op: &dyn Fn(Tensor<AB, 4>, Tensor<AB, 4>, Tensor<AB, 1>) -> Tensor<AB, 4>,
    shapes: ([usize; 4], [usize; 4], usize),
) -> Run {
    let (xs, ws, c_out) = shapes;
    let x = tensor::<AB, 4>(xs, 1.0).require_grad();
    let w = (tensor::<AB, 4>(ws, 2.0) * 0.3).detach().require_grad();
    let b = tensor::<AB, 1>([c_out], 3.0).require_grad();
    let y = op(x.clone(), w.clone(), b.clone());
    let dy = tensor::<AB, 4>(y.dims(), 4.0);
    let grads = (y.clone() * dy).sum().backward();
    let grad = |t: &Tensor<AB, 4>| t.grad(&grads).expect("a gradient");
    (y.inner(), grad(&x), grad(&w), b.grad(&grads).expect("a bias gradient"))
}

fn compare(label: &str, ours: Run, burns: Run) {
    let exact = exact_bias_grad(ours.0.dims());
    let bias_scale = exact.clone().abs().max().into_scalar().max(1e-12);
    let burn_bias_error = (burns.3 - exact.clone()).abs().max().into_scalar() / bias_scale;
    let errors = [
        ("output", relative_error(ours.0, burns.0)),
        ("input gradient", relative_error(ours.1, burns.1)),
        ("weight gradient", relative_error(ours.2, burns.2)),
        ("bias gradient (against the f64 sum)", relative_error(ours.3, exact)),
    ];
    assert!(
        burn_bias_error <= 1e-3,
        "{label}: burn's bias gradient is off the f64 sum by {burn_bias_error:e}"
    );
    for (what, e) in errors {
        assert!(e <= 1e-4, "{label}: {what} differs from burn's by {e:e} (relative)");
    }
}

fn check_conv(x: [usize; 4], c_out: usize, kernel: [usize; 2], padding: [usize; 2]) {
    let w = [c_out, x[1], kernel[0], kernel[1]];
    let options = PaddedConvOptions::from(burn::tensor::ops::ConvOptions::new([1, 1], padding, [1, 1], 1));
    assert!(
        Conv::new(x, w, padding).is_some(),
        "{x:?} * {w:?} is covered by the kernels"
    );
    let op = |x, w, b| conv2d(x, w, Some(b), options.clone());
    let ours = run(&op, (x, w, c_out));
    let burns = with_burn_ops(|| run(&op, (x, w, c_out)));
    compare(&format!("conv {x:?} * {w:?} pad {padding:?}"), ours, burns);
    // Evaluation (no autodiff): the forward kernel against flex's forward.
    let (xe, we, be) = (
        tensor::<Flex, 4>(x, 1.0),
        tensor::<Flex, 4>(w, 2.0) * 0.3,
        tensor::<Flex, 1>([c_out], 3.0),
    );
    let eval = |xe, we, be| conv2d(xe, we, Some(be), options.clone());
    let e = relative_error(
        eval(xe.clone(), we.clone(), be.clone()),
        with_burn_ops(|| eval(xe, we, be)),
    );
    assert!(e <= 1e-4, "conv {x:?} * {w:?}: evaluation forward differs by {e:e}");
}

fn check_up(x: [usize; 4], c_out: usize, kernel: [usize; 2]) {
    let w = [x[1], c_out, kernel[0], kernel[1]];
    let options = ConvTransposeOptions::new(kernel, [0, 0], [0, 0], [1, 1], 1);
    assert!(Up::new(x, w).is_some());
    let op = |x, w, b| conv_transpose2d(x, w, Some(b), options.clone());
    let ours = run(&op, (x, w, c_out));
    let burns = with_burn_ops(|| run(&op, (x, w, c_out)));
    compare(&format!("transposed conv {x:?} * {w:?}"), ours, burns);
    let (xe, we, be) = (
        tensor::<Flex, 4>(x, 1.0),
        tensor::<Flex, 4>(w, 2.0),
        tensor::<Flex, 1>([c_out], 3.0),
    );
    let eval = |xe, we, be| conv_transpose2d(xe, we, Some(be), options.clone());
    let e = relative_error(
        eval(xe.clone(), we.clone(), be.clone()),
        with_burn_ops(|| eval(xe, we, be)),
    );
    assert!(
        e <= 1e-4,
        "transposed conv {x:?} * {w:?}: evaluation forward differs by {e:e}"
    );
}

/// The paper's U-Net at [8, 1, 128, 128]: each distinct 3 × 3 convolution (first, encoder,
/// bottleneck, decoder after the concatenation, head) and two of the upsamplings.
#[test]
fn network_shapes_match_burn() {
    check_conv([8, 1, 128, 128], 16, [3, 3], [1, 1]);
    check_conv([8, 16, 128, 128], 16, [3, 3], [1, 1]);
    check_conv([8, 64, 32, 32], 128, [3, 3], [1, 1]);
    check_conv([8, 256, 8, 8], 256, [3, 3], [1, 1]);
    check_conv([8, 32, 128, 128], 16, [3, 3], [1, 1]);
    check_conv([8, 16, 128, 128], 2, [3, 3], [1, 1]);
    check_up([8, 256, 8, 8], 128, [2, 2]);
    check_up([8, 32, 64, 64], 16, [2, 2]);
}

/// Batch 1, odd and non-square sizes, 1 and 3 input channels, one output channel, other
/// kernels and paddings (5 × 5, 1 × 1, 3 × 3 without padding, 3 × 5, 3 × 3 over a 2 × 1 input).
#[test]
fn awkward_shapes_match_burn() {
    check_conv([1, 1, 7, 5], 3, [3, 3], [1, 1]);
    check_conv([1, 3, 9, 13], 1, [3, 3], [1, 1]);
    check_conv([3, 3, 11, 6], 4, [5, 5], [2, 2]);
    check_conv([2, 5, 6, 7], 3, [1, 1], [0, 0]);
    check_conv([2, 2, 8, 5], 3, [3, 3], [0, 0]);
    check_conv([2, 3, 9, 10], 2, [3, 5], [1, 2]);
    check_conv([1, 2, 2, 1], 2, [3, 3], [1, 1]);
    check_up([1, 3, 5, 3], 2, [2, 2]);
    check_up([3, 1, 4, 7], 5, [2, 2]);
    check_up([2, 4, 3, 2], 3, [3, 2]);
}

/// Geometries the kernels do not cover (stride 2, dilation, groups, padding as large as the
/// kernel) go to burn's op: same numbers as burn by construction, and no panic.
#[test]
fn uncovered_geometries_fall_back_to_burn() {
    assert!(Conv::new([1, 1, 4, 4], [1, 1, 3, 3], [3, 3]).is_none());
    assert!(Conv::new([1, 2, 4, 4], [1, 1, 3, 3], [1, 1]).is_none()); // grouped weight
    let x = tensor::<Flex, 4>([2, 4, 9, 8], 1.0);
    let w = tensor::<Flex, 4>([2, 4, 3, 3], 2.0);
    for options in [
        burn::tensor::ops::ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
        burn::tensor::ops::ConvOptions::new([1, 1], [2, 2], [2, 2], 1),
    ] {
        let options = PaddedConvOptions::from(options);
        let ours = conv2d(x.clone(), w.clone(), None, options.clone());
        let burns = with_burn_ops(|| conv2d(x.clone(), w.clone(), None, options));
        assert_eq!(relative_error(ours, burns), 0.0);
    }
}

fn check_pool(x: [usize; 4], kernel: [usize; 2]) {
    let pool = burn::nn::pool::MaxPool2dConfig::new(kernel).with_strides(kernel).init();
    let run = || {
        let xs = tensor::<AB, 4>(x, 5.0).require_grad();
        let y = max_pool2d(&pool, xs.clone());
        let dy = tensor::<AB, 4>(y.dims(), 6.0);
        let grads = (y.clone() * dy).sum().backward();
        (y.inner(), xs.grad(&grads).expect("a gradient"))
    };
    let (ours, burns) = (run(), with_burn_ops(run));
    for (what, e) in [
        ("output", relative_error(ours.0, burns.0)),
        ("input gradient", relative_error(ours.1, burns.1)),
    ] {
        assert!(
            e == 0.0,
            "max pool {x:?} / {kernel:?}: {what} differs from burn's by {e:e}"
        );
    }
    let xe = tensor::<Flex, 4>(x, 5.0);
    let e = relative_error(max_pool2d(&pool, xe.clone()), with_burn_ops(|| max_pool2d(&pool, xe)));
    assert!(e == 0.0, "max pool {x:?}: evaluation differs by {e:e}");
}

/// Max pooling: the same maxima and the same gradient routing as burn, exactly.
#[test]
fn max_pool_matches_burn() {
    check_pool([8, 16, 128, 128], [2, 2]);
    check_pool([1, 1, 2, 2], [2, 2]);
    check_pool([3, 5, 6, 10], [2, 2]);
    check_pool([2, 3, 9, 4], [3, 2]);
    assert!(Pool::new([1, 1, 5, 4], [2, 2]).is_none()); // odd height: burn's op
    let pool = burn::nn::pool::MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    let odd = tensor::<Flex, 4>([1, 2, 5, 4], 7.0);
    assert_eq!(
        max_pool2d(&pool, odd.clone()).dims(),
        with_burn_ops(|| max_pool2d(&pool, odd)).dims()
    );
}
