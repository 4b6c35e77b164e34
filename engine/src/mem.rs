//! Large buffers for voxel data.
//!
//! A volume's voxels are written once, right after allocation, so most of the cost of a
//! fresh 40 MB buffer is the kernel's page faults (measured: over half of reading a
//! well-compressed mask). Like numpy for arrays of 4 MiB and more, delinea asks the kernel
//! for transparent huge pages on such buffers, which cuts the faults 512-fold where THP is
//! in `madvise` mode (the usual default). Elsewhere the advice is a no-op.

/// Bytes from which a buffer is worth huge pages (numpy uses 4 MiB).
const HUGE_FROM: usize = 4 << 20;

/// An empty `Vec` with room for `n` values, backed by huge pages where the OS allows.
pub fn vec_with_capacity<T>(n: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(n);
    let bytes = n * std::mem::size_of::<T>();
    if bytes >= HUGE_FROM {
        advise_huge(v.as_ptr() as usize, bytes);
    }
    v
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise_huge(addr: usize, len: usize) {
    const PAGE: usize = 4096;
    let start = addr.div_ceil(PAGE) * PAGE;
    let end = (addr + len) / PAGE * PAGE;
    if end > start {
        // SAFETY: madvise only advises the kernel about pages this Vec owns; MADV_HUGEPAGE
        // never changes their contents, and a failure (e.g. THP disabled) is harmless.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_addr: usize, _len: usize) {}
