//! The pool a query plugin ranks, as safe columns over the host's buffers.

use crate::abi::{ColumnView, PoolView, StrRef};

/// The candidates (one row per slice or volume) with their score columns. Borrowed from the
/// host for the length of one call.
#[derive(Debug, Clone, Copy)]
pub struct Pool<'a> {
    view: &'a PoolView,
}

impl<'a> Pool<'a> {
    /// The safe view of a host's pool.
    ///
    /// # Safety
    /// Every pointer of `view` must be valid for its stated length while `'a` lasts (the
    /// ABI's contract for the host).
    #[doc(hidden)]
    pub unsafe fn from_view(view: &'a PoolView) -> Pool<'a> {
        Pool { view }
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.view.rows
    }

    /// Whether the pool has no row.
    pub fn is_empty(&self) -> bool {
        self.view.rows == 0
    }

    /// Whether a row is a volume (else a slice).
    pub fn volumes(&self) -> bool {
        self.view.unit == 1
    }

    fn columns(&self) -> &'a [ColumnView] {
        if self.view.columns.is_null() {
            return &[];
        }
        // SAFETY: `from_view`'s contract: `n_columns` columns at `columns`.
        unsafe { std::slice::from_raw_parts(self.view.columns, self.view.n_columns) }
    }

    /// The names of the score columns the pool holds.
    pub fn column_names(&self) -> Vec<String> {
        // SAFETY: column names are host strings valid for the call.
        self.columns()
            .iter()
            .map(|c| unsafe { c.name.to_str_lossy() }.into_owned())
            .collect()
    }

    /// The score column `name` (entropy, bald, margin, tumour_area, stdr_distance), one value
    /// per row (NaN where a row has none), or `None` when the pool does not hold it.
    pub fn column(&self, name: &str) -> Option<&'a [f64]> {
        let rows = self.view.rows;
        self.columns().iter().find_map(|c| {
            // SAFETY: as above; `values` holds `rows` values.
            let matches = unsafe { c.name.to_str_lossy() } == name;
            (matches && !c.values.is_null()).then(|| unsafe { std::slice::from_raw_parts(c.values, rows) })
        })
    }

    /// The case number of `row` (0.., into [`Pool::case_id`]).
    pub fn case_index(&self, row: usize) -> usize {
        assert!(row < self.len(), "row {row} of a pool of {}", self.len());
        // SAFETY: `rows` case numbers at `case`.
        unsafe { *self.view.case.add(row) as usize }
    }

    /// Cases in the pool.
    pub fn cases(&self) -> usize {
        self.view.n_cases
    }

    /// The id of case number `case`.
    pub fn case_id(&self, case: usize) -> String {
        assert!(case < self.view.n_cases, "case {case} of {}", self.view.n_cases);
        // SAFETY: `n_cases` ids at `case_ids`, each a host string.
        unsafe { (*self.view.case_ids.add(case)).to_str_lossy().into_owned() }
    }

    /// The case id of `row`.
    pub fn case(&self, row: usize) -> String {
        self.case_id(self.case_index(row))
    }

    /// The axial slice of `row` (`None` for a volume row).
    pub fn slice(&self, row: usize) -> Option<usize> {
        assert!(row < self.len(), "row {row} of a pool of {}", self.len());
        // SAFETY: `rows` slice indices at `slice`.
        let k = unsafe { *self.view.slice.add(row) };
        usize::try_from(k).ok()
    }

    /// The STDR descriptor of `row` (empty when not computed).
    pub fn descriptor(&self, row: usize) -> &'a [f32] {
        let n = self.view.descriptor_len;
        if n == 0 || self.view.descriptors.is_null() {
            return &[];
        }
        assert!(row < self.len(), "row {row} of a pool of {}", self.len());
        // SAFETY: `rows × descriptor_len` floats at `descriptors`.
        unsafe { std::slice::from_raw_parts(self.view.descriptors.add(row * n), n) }
    }

    /// The pool's metadata (JSON).
    pub fn metadata(&self) -> String {
        // SAFETY: a host string valid for the call.
        unsafe { self.view.metadata.to_str_lossy() }.into_owned()
    }
}

/// Owned buffers a [`PoolView`] can point into: what the host and [`crate::testing`] build.
#[derive(Debug, Clone, Default)]
pub struct PoolBuffers {
    /// Rows.
    pub rows: usize,
    /// 0 slice, 1 volume.
    pub unit: u32,
    /// `(name, values)` per column.
    pub columns: Vec<(String, Vec<f64>)>,
    /// Each row's case number.
    pub case: Vec<u32>,
    /// Each row's slice (-1 for volumes).
    pub slice: Vec<i64>,
    /// Case ids.
    pub case_ids: Vec<String>,
    /// Row-major descriptors.
    pub descriptors: Vec<f32>,
    /// Values per descriptor.
    pub descriptor_len: usize,
    /// JSON metadata.
    pub metadata: String,
}

impl PoolBuffers {
    /// Views of the buffers, valid while `self` and the returned column and id views live.
    pub fn view(&self) -> (PoolView, Vec<ColumnView>, Vec<StrRef>) {
        let columns: Vec<ColumnView> = (self.columns.iter())
            .map(|(n, v)| ColumnView {
                name: StrRef::new(n),
                values: v.as_ptr(),
            })
            .collect();
        let ids: Vec<StrRef> = self.case_ids.iter().map(|c| StrRef::new(c)).collect();
        let view = PoolView {
            rows: self.rows,
            unit: self.unit,
            columns: columns.as_ptr(),
            n_columns: columns.len(),
            case: self.case.as_ptr(),
            slice: self.slice.as_ptr(),
            case_ids: ids.as_ptr(),
            n_cases: ids.len(),
            descriptors: if self.descriptors.is_empty() {
                std::ptr::null()
            } else {
                self.descriptors.as_ptr()
            },
            descriptor_len: self.descriptor_len,
            metadata: StrRef::new(&self.metadata),
        };
        (view, columns, ids)
    }
}
