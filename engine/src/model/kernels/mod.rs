//! delinea's own convolution kernels for burn's CPU backend (flex), forward and backward.
//!
//! burn-flex 0.21 has no convolution backward of its own: burn's generic decomposition runs
//! (the input gradient as a transposed convolution with a serial col2im, the weight gradient as
//! a convolution of swapped, copied tensors), and its forward converts layouts serially before
//! each product. The kernels here are products on dense NCHW data ([`gemm`]), split over the
//! samples of a batch ([`conv`], [`conv_transpose`]); [`flex`] wraps them as burn ops.
//!
//! **Wiring.** The model stays generic over `B: Backend`. Its convolution call sites call
//! [`conv2d`] and [`conv_transpose2d`] here, which recognise the backend type at run time
//! (`TypeId`, safe code): `Autodiff<Flex>` records its own autodiff node whose backward step
//! calls these kernels, `Flex` (evaluation) calls the forward kernel, and any other backend
//! (CUDA) or geometry these kernels do not cover goes to burn's op unchanged. Why this rather
//! than a backend of our own: wrapping flex in a new backend type would have to forward every
//! one of burn's several hundred ops and change the type every caller names; an extension trait
//! would need an implementation per backend. The dispatch touches the U-Net's three call sites (convolution,
//! upsampling, pooling).
//!
//! Max pooling ([`pool`]) is here too: flex's pooling with indices and burn's backward of it
//! (a strided add) took about a tenth of a training step once the convolutions were fast.
//!
//! [`with_burn_ops`] runs code with burn's own ops instead (tests and the benchmark compare);
//! `DELINEA_BURN_OPS=1` does so for a whole process.

mod conv;
mod conv_transpose;
mod flex;
mod gemm;
mod pool;
#[cfg(test)]
mod tests;

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::sync::OnceLock;

use burn::backend::{Autodiff, Flex};
use burn::nn::pool::MaxPool2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvTransposeOptions, PaddedConvOptions};
use burn::tensor::{DType, Tensor, TensorPrimitive};

use conv::Conv;
use conv_transpose::Up;
use flex::Geometry;
use pool::Pool;

thread_local! {
    static BURN_OPS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with burn's own convolution and pooling ops on this thread (the path before these kernels):
/// what the tests and `cargo bench --bench unet` compare against.
pub fn with_burn_ops<R>(f: impl FnOnce() -> R) -> R {
    let before = BURN_OPS.with(|flag| flag.replace(true));
    let result = f();
    BURN_OPS.with(|flag| flag.set(before));
    result
}

/// Sets, for this thread only, whether convolutions use burn's own ops (`true`) or these
/// kernels (`false`, the default). The benchmark sets it on every thread of its pool.
pub fn use_burn_ops(on: bool) {
    BURN_OPS.with(|flag| flag.set(on));
}

/// Which implementation runs for backend `B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `Autodiff<Flex>`: this module's node and kernels.
    Train,
    /// `Flex`: this module's forward kernels.
    Eval,
    /// Anything else: burn's op.
    Burn,
}

/// `DELINEA_BURN_OPS=1` in the environment: burn's own ops for the whole process (to compare,
/// or to step around these kernels on a machine where they misbehave).
fn burn_ops_by_environment() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("DELINEA_BURN_OPS").is_some_and(|v| v == "1"))
}

fn route<B: Backend>(tensors_f32: bool) -> Route {
    if !tensors_f32 || BURN_OPS.with(Cell::get) || burn_ops_by_environment() {
        Route::Burn
    } else if TypeId::of::<B>() == TypeId::of::<Autodiff<Flex>>() {
        Route::Train
    } else if TypeId::of::<B>() == TypeId::of::<Flex>() {
        Route::Eval
    } else {
        Route::Burn
    }
}

/// `t` as type `U`, which [`route`] established is its own type.
fn same<T: 'static, U: 'static>(t: T) -> U {
    *(Box::new(t) as Box<dyn Any>)
        .downcast::<U>()
        .unwrap_or_else(|_| unreachable!("route() compared the TypeIds"))
}

fn float<B: Backend, const D: usize>(t: Tensor<B, D>) -> B::FloatTensorPrimitive {
    t.into_primitive().tensor()
}

/// `t` on `Autodiff<Flex>` (the caller's route is [`Route::Train`]).
fn ad<B: Backend, const D: usize>(t: Tensor<B, D>) -> flex::AdTensor {
    float::<Autodiff<Flex>, D>(same(t))
}

/// `t` on `Flex` (the caller's route is [`Route::Eval`]).
fn fl<B: Backend, const D: usize>(t: Tensor<B, D>) -> burn_flex::FlexTensor {
    float::<Flex, D>(same(t))
}

fn from_float<B: Backend, const D: usize>(t: B::FloatTensorPrimitive) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// 2D convolution, as `burn::tensor::module::conv2d`; stride 1, dilation 1, one group and
/// symmetric padding smaller than the kernel run on this module's kernels on flex.
///
/// # Shapes
/// - `x`: `[batch, c_in, H, W]`, `weight`: `[c_out, c_in, kh, kw]`, `bias`: `[c_out]`
/// - output: `[batch, c_out, H + 2p - kh + 1, W + 2p - kw + 1]`
pub fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: PaddedConvOptions<2>,
) -> Tensor<B, 4> {
    let o = &options.options;
    let plain = options.padding_end.is_none() && o.stride == [1, 1] && o.dilation == [1, 1] && o.groups == 1;
    let geometry = plain.then(|| Conv::new(x.dims(), weight.dims(), o.padding)).flatten();
    weighted(x, weight, bias, geometry.map(Geometry::Conv), |x, w, b| {
        burn::tensor::module::conv2d(x, w, b, options)
    })
}

/// 2D transposed convolution, as `burn::tensor::module::conv_transpose2d`; a kernel equal to
/// its stride with no padding, dilation 1 and one group (the U-Net's 2 × 2 upsampling) runs on
/// this module's kernels on flex.
///
/// # Shapes
/// - `x`: `[batch, c_in, H, W]`, `weight`: `[c_in, c_out, kh, kw]`, `bias`: `[c_out]`
/// - output: `[batch, c_out, H', W']` (`H · kh`, `W · kw` on the covered path)
pub fn conv_transpose2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvTransposeOptions<2>,
) -> Tensor<B, 4> {
    let [_, _, kh, kw] = weight.dims();
    let o = &options;
    let plain =
        o.stride == [kh, kw] && o.padding == [0, 0] && o.padding_out == [0, 0] && o.dilation == [1, 1] && o.groups == 1;
    let geometry = plain.then(|| Up::new(x.dims(), weight.dims())).flatten();
    weighted(x, weight, bias, geometry.map(Geometry::Up), |x, w, b| {
        burn::tensor::module::conv_transpose2d(x, w, b, options)
    })
}

/// Either weighted op on the route of `B`: this module's node (training needs a bias: every
/// convolution of the U-Net has one), its forward kernel, or `burns`, burn's op.
fn weighted<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    geometry: Option<Geometry>,
    burns: impl FnOnce(Tensor<B, 4>, Tensor<B, 4>, Option<Tensor<B, 1>>) -> Tensor<B, 4>,
) -> Tensor<B, 4> {
    let dtypes = [Some(x.dtype()), Some(weight.dtype()), bias.as_ref().map(|b| b.dtype())];
    let f32s = dtypes.iter().flatten().all(|d| *d == DType::F32);
    match (route::<B>(f32s), geometry, bias) {
        (Route::Train, Some(g), Some(bias)) => same(from_float::<Autodiff<Flex>, 4>(flex::weighted_ad(
            ad(x),
            ad(weight),
            ad(bias),
            g,
        ))),
        (Route::Eval, Some(g), bias) => same(from_float::<Flex, 4>(g.forward(fl(x), fl(weight), bias.map(fl)))),
        (_, _, bias) => burns(x, weight, bias),
    }
}

/// `pool.forward(x)`; a kernel equal to its stride, without padding or dilation, over an input
/// it divides (the U-Net's 2 × 2 downsampling) runs on this module's kernel on flex.
///
/// # Shapes
/// - `x`: `[batch, channels, H, W]`
/// - output: `[batch, channels, H / kh, W / kw]` on the covered path
pub fn max_pool2d<B: Backend>(pool: &MaxPool2d, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let unpadded = matches!(
        pool.padding,
        PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
    );
    let plain = unpadded && pool.stride == pool.kernel_size && pool.dilation == [1, 1];
    let geometry = plain.then(|| Pool::new(x.dims(), pool.kernel_size)).flatten();
    match (route::<B>(x.dtype() == DType::F32), geometry) {
        (Route::Train, Some(g)) => same(from_float::<Autodiff<Flex>, 4>(flex::max_pool2d_ad(ad(x), g))),
        (Route::Eval, Some(g)) => same(from_float::<Flex, 4>(flex::max_pool2d(fl(x), &g))),
        _ => pool.forward(x),
    }
}
