//! Transposed 2D convolution whose kernel equals its stride (the U-Net's 2 × 2, stride 2
//! upsampling): no two output pixels share an input pixel, so forward and backward are plain
//! products plus one reshuffle, on dense NCHW `f32` slices.
//!
//! With the weight `w` (`[c_in, c_out, kh, kw]`) read as the matrix `W` (`c_in × c_out·kh·kw`)
//! and `Z` (`c_out·kh·kw × h·w`) the output with each pixel's `kh × kw` block as a column:
//! `Z = Wᵀ · X`, `dX = W · dZ`, `dW = Σ_samples X · dZᵀ`. Work is split over samples only,
//! in a fixed order, so results do not depend on the number of threads.

use rayon::prelude::*;

use super::conv::{bias_grad, sum_in_order, Grads, Needs};
use super::gemm::{gemm, Mat, MatMut};

/// Input `[batch, c_in, h, w]`, weight `[c_in, c_out, kh, kw]`, stride `(kh, kw)`, no padding,
/// output `[batch, c_out, h·kh, w·kw]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Up {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
}

impl Up {
    /// The geometry, or `None` for an empty dimension or mismatched channels.
    pub fn new(x: [usize; 4], weight: [usize; 4]) -> Option<Self> {
        let [batch, c_in, h, w] = x;
        let [c_in_w, c_out, kh, kw] = weight;
        let covered = c_in == c_in_w && [batch, c_in, h, w, c_out, kh, kw].iter().all(|&d| d > 0);
        covered.then_some(Self {
            batch,
            c_in,
            h,
            w,
            c_out,
            kh,
            kw,
        })
    }

    /// Rows of `Z`: `c_out · kh · kw`.
    fn blocks(&self) -> usize {
        self.c_out * self.kh * self.kw
    }
}

/// `[batch, c_out, h·kh, w·kw]`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, g: &Up) -> Vec<f32> {
    let (hw, out_plane) = (g.h * g.w, g.h * g.kh * g.w * g.kw);
    let w_t = Mat::dense(weight, g.c_in, g.blocks()).t();
    let mut out = vec![0.0; g.batch * g.c_out * out_plane];
    out.par_chunks_mut(g.c_out * out_plane)
        .zip(x.par_chunks(g.c_in * hw))
        .for_each(|(y, x)| {
            let mut z = vec![0.0; g.blocks() * hw];
            gemm(
                MatMut::dense(&mut z, g.blocks(), hw),
                w_t,
                Mat::dense(x, g.c_in, hw),
                false,
            );
            scatter(&z, g, bias, y);
        });
    out
}

/// `y[co, i·kh + a, j·kw + c] = z[(co, a, c), i·w + j] + bias[co]` for one sample.
fn scatter(z: &[f32], g: &Up, bias: Option<&[f32]>, y: &mut [f32]) {
    let (hw, out_w) = (g.h * g.w, g.w * g.kw);
    for (block, z_row) in z.chunks(hw).enumerate() {
        let (co, a, c) = (block / (g.kh * g.kw), block / g.kw % g.kh, block % g.kw);
        let b = bias.map_or(0.0, |bias| bias[co]);
        for i in 0..g.h {
            let y_row = &mut y[(co * g.h * g.kh + i * g.kh + a) * out_w..][..out_w];
            for (j, v) in z_row[i * g.w..][..g.w].iter().enumerate() {
                y_row[j * g.kw + c] = v + b;
            }
        }
    }
}

/// The inverse reshuffle: `dz[(co, a, c), i·w + j] = dy[co, i·kh + a, j·kw + c]`.
fn gather(dy: &[f32], g: &Up) -> Vec<f32> {
    let (hw, out_w) = (g.h * g.w, g.w * g.kw);
    let mut dz = vec![0.0; g.blocks() * hw];
    for (block, dz_row) in dz.chunks_mut(hw).enumerate() {
        let (co, a, c) = (block / (g.kh * g.kw), block / g.kw % g.kh, block % g.kw);
        for i in 0..g.h {
            let dy_row = &dy[(co * g.h * g.kh + i * g.kh + a) * out_w..][..out_w];
            for (j, v) in dz_row[i * g.w..][..g.w].iter_mut().enumerate() {
                *v = dy_row[j * g.kw + c];
            }
        }
    }
    dz
}

/// Gradients of `forward` given `dy` (`[batch, c_out, h·kh, w·kw]`).
pub fn backward(x: &[f32], weight: &[f32], dy: &[f32], g: &Up, needs: Needs) -> Grads {
    let (hw, out_plane) = (g.h * g.w, g.h * g.kh * g.w * g.kw);
    let dz: Vec<Vec<f32>> = dy.par_chunks(g.c_out * out_plane).map(|dy| gather(dy, g)).collect();
    let input = needs.input.then(|| {
        let w = Mat::dense(weight, g.c_in, g.blocks());
        let mut dx = vec![0.0; x.len()];
        dx.par_chunks_mut(g.c_in * hw).zip(&dz).for_each(|(dx, dz)| {
            gemm(MatMut::dense(dx, g.c_in, hw), w, Mat::dense(dz, g.blocks(), hw), false);
        });
        dx
    });
    let weight = needs.weight.then(|| {
        let per_sample = x.par_chunks(g.c_in * hw).zip(&dz).map(|(x, dz)| {
            let mut dw = vec![0.0; weight.len()];
            let dz_t = Mat::dense(dz, g.blocks(), hw).t();
            gemm(
                MatMut::dense(&mut dw, g.c_in, g.blocks()),
                Mat::dense(x, g.c_in, hw),
                dz_t,
                false,
            );
            dw
        });
        sum_in_order(per_sample.collect())
    });
    Grads {
        input,
        weight,
        bias: needs.bias.then(|| bias_grad(dy, g.batch, g.c_out)),
    }
}
