//! The one matrix product every kernel here is built on: `gemm` 0.19 (the crate burn-flex's own
//! convolution calls), behind bounds-checked strided views so the kernels stay safe code.
//!
//! `gemm::gemm` takes raw pointers and strides; the views below check, before the call, that
//! every element the product reads or writes lies inside its slice and that no two destination
//! elements share an address. Each product runs on the calling thread
//! (`Parallelism::None`): the kernels parallelise over samples themselves, so a result never
//! depends on the number of threads.

#![allow(unsafe_code)]

/// A read-only `rows × cols` matrix in `data`: element `(r, c)` at `r * row_stride + c * col_stride`.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Mat<'a> {
    /// Row-major and dense: `data[r * cols + c]`.
    pub fn dense(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, as a view (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    fn fits(&self) -> bool {
        fits(self.data.len(), self.rows, self.cols, self.row_stride, self.col_stride)
    }
}

/// A writable `rows × cols` matrix in `data`, laid out like [`Mat`].
#[derive(Debug)]
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatMut<'a> {
    /// Row-major and dense: `data[r * cols + c]`.
    pub fn dense(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    fn fits(&self) -> bool {
        fits(self.data.len(), self.rows, self.cols, self.row_stride, self.col_stride)
    }

    /// Distinct `(r, c)` never share an element: one stride is 1 and the other spans it.
    fn no_overlap(&self) -> bool {
        (self.col_stride == 1 && (self.rows <= 1 || self.row_stride >= self.cols))
            || (self.row_stride == 1 && (self.cols <= 1 || self.col_stride >= self.rows))
    }
}

/// Whether a `rows × cols` view with strides `(rs, cs)` lies inside `len` elements: its last
/// element, `(rows - 1) · rs + (cols - 1) · cs` (saturating: an overflow cannot fit), does.
fn fits(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    rows == 0
        || cols == 0
        || (rows - 1)
            .saturating_mul(rs)
            .saturating_add((cols - 1).saturating_mul(cs))
            < len
}

/// `dst = a · b`, or `dst += a · b` with `accumulate`.
///
/// # Panics
/// On mismatched shapes or a view outside its slice: both are bugs in the calling kernel
/// (every size here comes from tensor shapes checked before), never a property of the data.
pub fn gemm(dst: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    assert!(
        a.cols == b.rows && dst.rows == a.rows && dst.cols == b.cols,
        "gemm: shapes do not chain"
    );
    assert!(
        a.fits() && b.fits() && dst.fits(),
        "gemm: a view lies outside its slice"
    );
    assert!(dst.no_overlap(), "gemm: destination elements overlap");
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if !accumulate {
            for r in 0..dst.rows {
                for c in 0..dst.cols {
                    dst.data[r * dst.row_stride + c * dst.col_stride] = 0.0;
                }
            }
        }
        return;
    }
    let stride = |s: usize| isize::try_from(s).expect("gemm: stride beyond isize");
    // SAFETY: the asserts above establish that every element gemm reads — `a` at
    // r * rs + c * cs for r < a.rows, c < a.cols, likewise `b`, and `dst` when `accumulate` —
    // and every element it writes (`dst`, r < dst.rows, c < dst.cols) lies inside the
    // respective slice; `dst` is borrowed mutably, so it cannot alias `a` or `b`, and its
    // strides map distinct (r, c) to distinct elements, so no element is written twice at once.
    // `Parallelism::None`: gemm runs on this thread only.
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            a.cols,
            dst.data.as_mut_ptr(),
            stride(dst.col_stride),
            stride(dst.row_stride),
            accumulate,
            a.data.as_ptr(),
            stride(a.col_stride),
            stride(a.row_stride),
            b.data.as_ptr(),
            stride(b.col_stride),
            stride(b.row_stride),
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &Mat, b: &Mat) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for r in 0..a.rows {
            for c in 0..b.cols {
                out[r * b.cols + c] = (0..a.cols)
                    .map(|k| a.data[r * a.row_stride + k * a.col_stride] * b.data[k * b.row_stride + c * b.col_stride])
                    .sum();
            }
        }
        out
    }

    #[test]
    fn strided_views_and_accumulation_match_the_naive_product() {
        let a_data: Vec<f32> = (0..35).map(|i| (i as f32 * 0.37).sin()).collect();
        let b_data: Vec<f32> = (0..28).map(|i| (i as f32 * 0.11).cos()).collect();
        let a = Mat::dense(&a_data, 5, 7);
        let b = Mat::dense(&b_data, 4, 7).t(); // 7 × 4
        let want = naive(&a, &b);
        let mut got = vec![0.0; 20];
        gemm(MatMut::dense(&mut got, 5, 4), a, b, false);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        gemm(MatMut::dense(&mut got, 5, 4), a, b, true);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - 2.0 * w).abs() < 1e-5, "{g} vs {}", 2.0 * w);
        }
        // Column-major destination.
        let mut col_major = vec![0.0; 20];
        gemm(
            MatMut {
                data: &mut col_major,
                rows: 5,
                cols: 4,
                row_stride: 1,
                col_stride: 5,
            },
            a,
            b,
            false,
        );
        for r in 0..5 {
            for c in 0..4 {
                assert!((col_major[c * 5 + r] - want[r * 4 + c]).abs() < 1e-5);
            }
        }
    }

    #[test]
    #[should_panic(expected = "outside its slice")]
    fn a_view_past_its_slice_is_refused() {
        let a = [0.0; 5];
        let mut d = [0.0; 4];
        gemm(
            MatMut::dense(&mut d, 2, 2),
            Mat::dense(&a, 2, 3),
            Mat::dense(&a, 3, 2),
            false,
        );
    }
}
