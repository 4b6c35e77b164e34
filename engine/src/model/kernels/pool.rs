//! Max pooling whose kernel equals its stride, without padding, over an input its kernel
//! divides (the U-Net's 2 × 2 downsampling), on dense NCHW `f32` slices: the forward pass keeps
//! which element of each window was the maximum (the first one on ties), the backward pass
//! sends each output gradient to it. Planes are split over threads; results do not depend on
//! their number.

use rayon::prelude::*;

/// Input `[batch, channels, h, w]`, kernel and stride `(kh, kw)`, output `[.., h / kh, w / kw]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub batch: usize,
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
}

impl Pool {
    /// The geometry, or `None` when the kernel does not divide the input (or a size is 0).
    pub fn new(x: [usize; 4], kernel: [usize; 2]) -> Option<Self> {
        let [batch, channels, h, w] = x;
        let [kh, kw] = kernel;
        let covered = [batch, channels, h, w, kh, kw].iter().all(|&d| d > 0)
            && h.is_multiple_of(kh)
            && w.is_multiple_of(kw)
            && kh * kw <= usize::from(u8::MAX) + 1;
        covered.then_some(Self {
            batch,
            channels,
            h,
            w,
            kh,
            kw,
        })
    }

    pub fn out_shape(&self) -> [usize; 4] {
        [self.batch, self.channels, self.h / self.kh, self.w / self.kw]
    }
}

/// The maxima (`[batch, channels, h / kh, w / kw]`) and, per output, the window element that
/// held it (`i · kw + j`).
pub fn forward(x: &[f32], g: &Pool) -> (Vec<f32>, Vec<u8>) {
    let (out_h, out_w) = (g.h / g.kh, g.w / g.kw);
    let mut out = vec![0.0; g.batch * g.channels * out_h * out_w];
    let mut which = vec![0u8; out.len()];
    out.par_chunks_mut(out_h * out_w)
        .zip(which.par_chunks_mut(out_h * out_w))
        .zip(x.par_chunks(g.h * g.w))
        .for_each(|((out, which), x)| {
            for (o, (best, at)) in out.iter_mut().zip(which.iter_mut()).enumerate() {
                let (r, c) = (o / out_w * g.kh, o % out_w * g.kw);
                let (mut value, mut index) = (x[r * g.w + c], 0);
                for k in 1..g.kh * g.kw {
                    let v = x[(r + k / g.kw) * g.w + c + k % g.kw];
                    if v > value {
                        (value, index) = (v, k);
                    }
                }
                (*best, *at) = (value, u8::try_from(index).expect("kh · kw ≤ 256, checked in Pool::new"));
            }
        });
    (out, which)
}

/// `dx` (`[batch, channels, h, w]`): each output gradient at its window's maximum, 0 elsewhere.
pub fn backward(dy: &[f32], which: &[u8], g: &Pool) -> Vec<f32> {
    let (out_h, out_w) = (g.h / g.kh, g.w / g.kw);
    let mut dx = vec![0.0; g.batch * g.channels * g.h * g.w];
    dx.par_chunks_mut(g.h * g.w)
        .zip(dy.par_chunks(out_h * out_w).zip(which.par_chunks(out_h * out_w)))
        .for_each(|(dx, (dy, which))| {
            for (o, (d, &k)) in dy.iter().zip(which).enumerate() {
                let (r, c, k) = (o / out_w * g.kh, o % out_w * g.kw, usize::from(k));
                dx[(r + k / g.kw) * g.w + c + k % g.kw] = *d;
            }
        });
    dx
}
