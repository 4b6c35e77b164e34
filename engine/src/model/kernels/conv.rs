//! 2D convolution with stride 1, dilation 1 and one group (every 3 × 3 convolution of the
//! U-Net), forward and backward, on dense NCHW `f32` slices.
//!
//! - Forward: per sample, output rows in bands; each band's im2col is read straight from NCHW
//!   (a shifted copy of input rows, no layout conversion) and multiplied by the weight, which is
//!   already the `[c_out, c_in·kh·kw]` matrix the product needs; the product is written in place
//!   into the output, on top of the bias.
//! - Input gradient: the forward convolution of the output gradient with the channel-swapped,
//!   flipped kernel and padding `k - 1 - p`.
//! - Weight gradient: per sample, `Σ_bands dY[:, band] · im2col(band)ᵀ`, then the samples summed
//!   in order. Bias gradient: the sum of `dY` over samples and pixels.
//!
//! Work is split over samples only, in a fixed order, so results do not depend on the number
//! of threads.

use rayon::prelude::*;

use super::gemm::{gemm, Mat, MatMut};

/// The im2col band holds at most this many floats (1 MiB), so it stays in the L2 cache.
const BAND_FLOATS: usize = 1 << 18;

/// The shapes of one convolution: input `[batch, c_in, h, w]`, weight `[c_out, c_in, kh, kw]`,
/// symmetric padding `(ph, pw)`, output `[batch, c_out, out_h, out_w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub ph: usize,
    pub pw: usize,
}

impl Conv {
    /// The geometry, or `None` when these kernels do not cover it (padding as large as the
    /// kernel, a kernel larger than the padded input, an empty dimension).
    pub fn new(x: [usize; 4], weight: [usize; 4], padding: [usize; 2]) -> Option<Self> {
        let [batch, c_in, h, w] = x;
        let [c_out, c_in_w, kh, kw] = weight;
        let [ph, pw] = padding;
        let covered = c_in == c_in_w
            && [batch, c_in, h, w, c_out, kh, kw].iter().all(|&d| d > 0)
            && ph < kh
            && pw < kw
            && h + 2 * ph >= kh
            && w + 2 * pw >= kw;
        covered.then_some(Self {
            batch,
            c_in,
            h,
            w,
            c_out,
            kh,
            kw,
            ph,
            pw,
        })
    }

    pub fn out_h(&self) -> usize {
        self.h + 2 * self.ph + 1 - self.kh
    }

    pub fn out_w(&self) -> usize {
        self.w + 2 * self.pw + 1 - self.kw
    }

    /// Rows of the im2col matrix: `c_in · kh · kw`.
    fn taps(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Output rows per im2col band.
    fn band_rows(&self) -> usize {
        (BAND_FLOATS / (self.taps() * self.out_w())).clamp(1, self.out_h())
    }

    /// The convolution whose forward pass is this one's input gradient.
    fn transposed(&self) -> Self {
        Self {
            c_in: self.c_out,
            h: self.out_h(),
            w: self.out_w(),
            c_out: self.c_in,
            ph: self.kh - 1 - self.ph,
            pw: self.kw - 1 - self.pw,
            ..*self
        }
    }
}

/// `[batch, c_out, out_h, out_w]` = conv(x, weight) + bias.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &Conv) -> Vec<f32> {
    let plane = g.out_h() * g.out_w();
    let mut out = vec![0.0; g.batch * g.c_out * plane];
    out.par_chunks_mut(g.c_out * plane)
        .zip(x.par_chunks(g.c_in * g.h * g.w))
        .for_each(|(y, x)| forward_sample(x, weight, bias, g, y));
    out
}

fn forward_sample(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &Conv, y: &mut [f32]) {
    let (out_h, out_w, taps) = (g.out_h(), g.out_w(), g.taps());
    let plane = out_h * out_w;
    if let Some(bias) = bias {
        for (channel, b) in y.chunks_mut(plane).zip(bias) {
            channel.fill(*b);
        }
    }
    let weight = Mat::dense(weight, g.c_out, taps);
    for_each_band(x, g, |r0, n, col| {
        let dst = MatMut {
            data: &mut y[r0 * out_w..],
            rows: g.c_out,
            cols: n,
            row_stride: plane,
            col_stride: 1,
        };
        gemm(dst, weight, Mat::dense(col, taps, n), bias.is_some());
    });
}

/// Calls `f(first row, pixels, im2col)` for each band of output rows of one sample, in order,
/// with the band's im2col matrix (`c_in·kh·kw × pixels`).
fn for_each_band(x: &[f32], g: &Conv, mut f: impl FnMut(usize, usize, &[f32])) {
    let (out_h, out_w, taps) = (g.out_h(), g.out_w(), g.taps());
    let band = g.band_rows();
    let mut col = vec![0.0; taps * band * out_w];
    for r0 in (0..out_h).step_by(band) {
        let r1 = (r0 + band).min(out_h);
        let n = (r1 - r0) * out_w;
        im2col(x, g, r0, r1, &mut col[..taps * n]);
        f(r0, n, &col[..taps * n]);
    }
}

/// The im2col matrix of output rows `r0..r1` of one sample `x` (`[c_in, h, w]`):
/// `col[(ci, i, j), (r - r0) · out_w + c] = x[ci, r + i - ph, c + j - pw]`, 0 in the padding.
fn im2col(x: &[f32], g: &Conv, r0: usize, r1: usize, col: &mut [f32]) {
    let out_w = g.out_w();
    let n = (r1 - r0) * out_w;
    for (tap, row) in col.chunks_mut(n).enumerate() {
        let (ci, i, j) = (tap / (g.kh * g.kw), tap / g.kw % g.kh, tap % g.kw);
        // Output column c reads input column c + j - pw: valid for c in c0..c1.
        let c0 = g.pw.saturating_sub(j).min(out_w);
        let c1 = (g.w + g.pw).saturating_sub(j).clamp(c0, out_w);
        for (r, dst) in (r0..r1).zip(row.chunks_mut(out_w)) {
            let y = r + i; // the input row, in padded coordinates
            if y < g.ph || y - g.ph >= g.h {
                dst.fill(0.0);
                continue;
            }
            let src = &x[(ci * g.h + y - g.ph) * g.w..][..g.w];
            dst[..c0].fill(0.0);
            dst[c1..].fill(0.0);
            dst[c0..c1].copy_from_slice(&src[c0 + j - g.pw..c1 + j - g.pw]);
        }
    }
}

/// Which gradients to compute (a parent that needs none is skipped).
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    pub input: bool,
    pub weight: bool,
    pub bias: bool,
}

/// The gradients asked for in `needs`, each `None` when not asked.
#[derive(Debug, Default)]
pub struct Grads {
    pub input: Option<Vec<f32>>,
    pub weight: Option<Vec<f32>>,
    pub bias: Option<Vec<f32>>,
}

/// Gradients of `forward` given `dy` (`[batch, c_out, out_h, out_w]`).
pub fn backward(x: &[f32], weight: &[f32], dy: &[f32], g: &Conv, needs: Needs) -> Grads {
    Grads {
        input: needs.input.then(|| input_grad(dy, weight, g)),
        weight: needs.weight.then(|| weight_grad(x, dy, g)),
        bias: needs.bias.then(|| bias_grad(dy, g.batch, g.c_out)),
    }
}

/// `dx` (`[batch, c_in, h, w]`): the output gradient convolved with the flipped kernel.
fn input_grad(dy: &[f32], weight: &[f32], g: &Conv) -> Vec<f32> {
    let (kh, kw) = (g.kh, g.kw);
    let mut flipped = vec![0.0; weight.len()]; // [c_in, c_out, kh, kw]
    for co in 0..g.c_out {
        for ci in 0..g.c_in {
            for i in 0..kh {
                for j in 0..kw {
                    flipped[((ci * g.c_out + co) * kh + kh - 1 - i) * kw + kw - 1 - j] =
                        weight[((co * g.c_in + ci) * kh + i) * kw + j];
                }
            }
        }
    }
    forward(dy, &flipped, None, &g.transposed())
}

/// `dw` (`[c_out, c_in, kh, kw]`): per sample one product per band, samples summed in order.
fn weight_grad(x: &[f32], dy: &[f32], g: &Conv) -> Vec<f32> {
    let plane = g.out_h() * g.out_w();
    let per_sample: Vec<Vec<f32>> = x
        .par_chunks(g.c_in * g.h * g.w)
        .zip(dy.par_chunks(g.c_out * plane))
        .map(|(x, dy)| weight_grad_sample(x, dy, g))
        .collect();
    sum_in_order(per_sample)
}

fn weight_grad_sample(x: &[f32], dy: &[f32], g: &Conv) -> Vec<f32> {
    let (out_h, out_w, taps) = (g.out_h(), g.out_w(), g.taps());
    let plane = out_h * out_w;
    let mut dw = vec![0.0; g.c_out * taps];
    for_each_band(x, g, |r0, n, col| {
        let dy_band = Mat {
            data: &dy[r0 * out_w..],
            rows: g.c_out,
            cols: n,
            row_stride: plane,
            col_stride: 1,
        };
        let col_t = Mat::dense(col, taps, n).t();
        gemm(MatMut::dense(&mut dw, g.c_out, taps), dy_band, col_t, r0 > 0);
    });
    dw
}

/// Element-wise sum of equally long vectors, in their order (deterministic).
pub(super) fn sum_in_order(parts: Vec<Vec<f32>>) -> Vec<f32> {
    let mut parts = parts.into_iter();
    let mut total = parts.next().unwrap_or_default();
    for part in parts {
        total.iter_mut().zip(&part).for_each(|(t, p)| *t += p);
    }
    total
}

/// `db` (`[channels]`): `dy` (`[batch, channels, ...]`) summed over samples and pixels, in
/// f64 (a sum of 10⁵-10⁶ terms).
pub(super) fn bias_grad(dy: &[f32], batch: usize, channels: usize) -> Vec<f32> {
    let plane = dy.len() / (batch * channels).max(1);
    let channel_sum = |c: usize| -> f64 {
        (0..batch)
            .flat_map(|b| &dy[(b * channels + c) * plane..][..plane])
            .map(|&v| f64::from(v))
            .sum()
    };
    (0..channels).into_par_iter().map(|c| channel_sum(c) as f32).collect()
}
