//! The NRRD header: its lines split into fields and key/value pairs, then checked and turned
//! into what the data decoder and the geometry need. Nothing here reads voxel data.
//!
//! Format reference: <https://teem.sourceforge.net/nrrd/format.html> (NRRD0001 to NRRD0005).

use std::collections::BTreeMap;
use std::path::Path;

use crate::volume::Error;

/// A voxel type of the file (the spec's `type` field, with its alternative spellings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Type {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

impl Type {
    /// The type named by the `type` field, or `None` for one delinea does not read (`block`).
    fn parse(name: &str) -> Option<Type> {
        let t = match name {
            "signed char" | "int8" | "int8_t" => Type::I8,
            "uchar" | "unsigned char" | "uint8" | "uint8_t" => Type::U8,
            "short" | "short int" | "signed short" | "signed short int" | "int16" | "int16_t" => Type::I16,
            "ushort" | "unsigned short" | "unsigned short int" | "uint16" | "uint16_t" => Type::U16,
            "int" | "signed int" | "int32" | "int32_t" => Type::I32,
            "uint" | "unsigned int" | "uint32" | "uint32_t" => Type::U32,
            "longlong"
            | "long long"
            | "long long int"
            | "signed long long"
            | "signed long long int"
            | "int64"
            | "int64_t" => Type::I64,
            "ulonglong" | "unsigned long long" | "unsigned long long int" | "uint64" | "uint64_t" => Type::U64,
            "float" => Type::F32,
            "double" => Type::F64,
            _ => return None,
        };
        Some(t)
    }

    /// Bytes per value.
    pub(super) fn width(self) -> usize {
        match self {
            Type::I8 | Type::U8 => 1,
            Type::I16 | Type::U16 => 2,
            Type::I32 | Type::U32 | Type::F32 => 4,
            Type::I64 | Type::U64 | Type::F64 => 8,
        }
    }

    /// The value held by `bytes` (exactly [`Type::width`] of them), as f64.
    pub(super) fn value(self, bytes: &[u8], big_endian: bool) -> f64 {
        macro_rules! num {
            ($t:ty) => {{
                let a = array(bytes);
                (if big_endian {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }) as f64
            }};
        }
        match self {
            Type::I8 => num!(i8),
            Type::U8 => num!(u8),
            Type::I16 => num!(i16),
            Type::U16 => num!(u16),
            Type::I32 => num!(i32),
            Type::U32 => num!(u32),
            Type::I64 => num!(i64),
            Type::U64 => num!(u64),
            Type::F32 => num!(f32),
            Type::F64 => num!(f64),
        }
    }
}

/// The first `N` bytes of `bytes` (zeros where it is shorter: never a panic).
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    for (d, s) in a.iter_mut().zip(bytes) {
        *d = *s;
    }
    a
}

/// What a NRRD header says, checked: sizes within the voxel cap ([`crate::volume::limits`]), one direction per axis,
/// attached data only.
#[derive(Debug)]
pub(super) struct Header {
    /// `sizes`, fastest axis first (3 or 4 of them).
    pub sizes: Vec<usize>,
    /// The voxel type.
    pub ty: Type,
    /// `endian: big` (only meaningful when the type is wider than a byte).
    pub big_endian: bool,
    /// `encoding: gzip` (else `raw`).
    pub gzip: bool,
    /// `space directions`, one per axis: `None` for a non-spatial axis, else the axis step
    /// in the file's space (not yet RAS).
    pub directions: Vec<Option<[f64; 3]>>,
    /// `space origin` in the file's space (0 when absent).
    pub origin: [f64; 3],
    /// Signs turning the file's space into RAS+ (LPS: `[-1, -1, 1]`).
    pub to_ras: [f64; 3],
    /// `kinds`, when given.
    pub kinds: Option<Vec<String>>,
    /// The `key:=value` pairs, in file order, unescaped.
    pub key_values: Vec<(String, String)>,
    /// Where the attached data starts (just after the blank line ending the header).
    pub data_offset: usize,
}

/// The header's raw content: fields by (canonical) name and key/value pairs in order.
struct Lines {
    fields: BTreeMap<String, String>,
    key_values: Vec<(String, String)>,
    data_offset: usize,
}

/// Parses and checks the header at the start of `bytes` (the whole file).
pub(super) fn parse(path: &Path, bytes: &[u8]) -> Result<Header, Error> {
    check_magic(path, bytes)?;
    let lines = split_lines(path, bytes)?;
    let f = &lines.fields;
    refuse_detached(path, f)?;
    let dimension = required(path, f, "dimension")?;
    let dimension = match dimension.trim() {
        "3" => 3,
        "4" => 4,
        other => {
            return Err(unsupported(
                path,
                format!("dimension {other}: only 3D label maps (or Slicer's 4D segment layers) are read"),
            ))
        }
    };
    let sizes = sizes(path, required(path, f, "sizes")?, dimension)?;
    let ty_name = required(path, f, "type")?;
    let ty = Type::parse(ty_name.trim()).ok_or_else(|| {
        unsupported(
            path,
            format!(
                "type `{}`: label maps must be integers (or float with integer values)",
                ty_name.trim()
            ),
        )
    })?;
    let big_endian = endian(path, f, ty)?;
    let gzip = encoding(path, required(path, f, "encoding")?)?;
    let (to_ras, directions, origin) = space(path, f, dimension)?;
    let kinds = f
        .get("kinds")
        .map(|k| k.split_whitespace().map(str::to_string).collect());
    Ok(Header {
        sizes,
        ty,
        big_endian,
        gzip,
        directions,
        origin,
        to_ras,
        kinds,
        key_values: lines.key_values,
        data_offset: lines.data_offset,
    })
}

fn not_nrrd(path: &Path, reason: String) -> Error {
    Error::NotNrrd {
        path: path.to_path_buf(),
        reason,
    }
}

fn unsupported(path: &Path, what: String) -> Error {
    Error::Unsupported {
        path: path.to_path_buf(),
        what,
    }
}

fn bad(path: &Path, field: &'static str, found: &str, expected: &str) -> Error {
    Error::BadHeader {
        path: path.to_path_buf(),
        field,
        found: found.to_string(),
        expected: expected.to_string(),
    }
}

/// Splits the header into fields and key/value pairs, up to the blank line that ends it.
fn split_lines(path: &Path, bytes: &[u8]) -> Result<Lines, Error> {
    let mut lines = Lines {
        fields: BTreeMap::new(),
        key_values: Vec::new(),
        data_offset: 0,
    };
    let mut start = 0;
    let mut n = 0;
    loop {
        let Some(len) = bytes
            .get(start..)
            .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
        else {
            return Err(not_nrrd(
                path,
                "no blank line ends the header (attached data expected after one)".into(),
            ));
        };
        let raw = bytes.get(start..start + len).unwrap_or_default();
        let line = std::str::from_utf8(raw)
            .map_err(|_| not_nrrd(path, format!("header line {} is not text", n + 1)))?
            .trim_end_matches('\r');
        start += len + 1;
        n += 1;
        if n == 1 || line.starts_with('#') {
            continue; // the magic (checked before) or a comment
        }
        if line.is_empty() {
            lines.data_offset = start;
            return Ok(lines);
        }
        add_line(path, &mut lines, line, n)?;
    }
}

/// The file must open with a line `NRRD0001` to `NRRD0005` (checked on the first bytes, so a
/// large file of another kind is refused at once).
fn check_magic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let magic = bytes.get(..8).unwrap_or(bytes);
    let known = matches!(
        magic,
        b"NRRD0001" | b"NRRD0002" | b"NRRD0003" | b"NRRD0004" | b"NRRD0005"
    );
    if known && matches!(bytes.get(8), Some(b'\n' | b'\r')) {
        return Ok(());
    }
    let first = bytes
        .get(..16)
        .unwrap_or(bytes)
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default();
    let hint = if bytes.starts_with(&[0x1f, 0x8b]) {
        " (gzip data: a .nrrd is never gzipped as a whole)"
    } else {
        ""
    };
    Err(not_nrrd(
        path,
        format!(
            "starts with {:?}, not a magic NRRD0001 to NRRD0005{hint}",
            String::from_utf8_lossy(first)
        ),
    ))
}

/// Records one `field: value` or `key:=value` line (whichever separator comes first).
fn add_line(path: &Path, lines: &mut Lines, line: &str, n: usize) -> Result<(), Error> {
    let field = line.find(": ");
    let key_value = line.find(":=");
    match (field, key_value) {
        (_, Some(kv)) if field.is_none_or(|f| kv < f) => {
            let (key, value) = (
                line.get(..kv).unwrap_or_default(),
                line.get(kv + 2..).unwrap_or_default(),
            );
            lines.key_values.push((unescape(key), unescape(value)));
            Ok(())
        }
        (Some(f), _) => {
            let name = canonical(line.get(..f).unwrap_or_default());
            let value = line.get(f + 2..).unwrap_or_default().to_string();
            if lines.fields.insert(name.clone(), value).is_some() {
                return Err(not_nrrd(path, format!("field `{name}` given twice")));
            }
            Ok(())
        }
        _ => Err(not_nrrd(
            path,
            format!("header line {n} is neither `field: value` nor `key:=value`: {line:?}"),
        )),
    }
}

/// Field names the spec lets be spelt two ways, as one.
fn canonical(name: &str) -> String {
    match name {
        "datafile" => "data file",
        "byteskip" => "byte skip",
        "lineskip" => "line skip",
        other => other,
    }
    .to_string()
}

/// Key/value escapes of the spec: `\n` is a newline, `\\` a backslash.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

fn required<'a>(path: &Path, f: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, Error> {
    f.get(name)
        .map(String::as_str)
        .ok_or_else(|| not_nrrd(path, format!("no `{name}` field")))
}

/// Detached data (`.nhdr` + `.raw`) and skips are refused: only a single attached-data file.
fn refuse_detached(path: &Path, f: &BTreeMap<String, String>) -> Result<(), Error> {
    if let Some(file) = f.get("data file") {
        return Err(unsupported(
            path,
            format!("detached data (`data file: {file}`): only a single .nrrd with attached data is read; resave it as .nrrd"),
        ));
    }
    for skip in ["byte skip", "line skip"] {
        if let Some(v) = f.get(skip).filter(|v| v.trim() != "0") {
            return Err(unsupported(
                path,
                format!("`{skip}: {v}`: only data right after the header is read"),
            ));
        }
    }
    Ok(())
}

/// `sizes`: `dimension` positive integers whose product is within the voxel cap
/// ([`crate::volume::limits`]).
fn sizes(path: &Path, text: &str, dimension: usize) -> Result<Vec<usize>, Error> {
    let expected = format!("{dimension} positive integers");
    let sizes: Vec<usize> = text
        .split_whitespace()
        .map(|s| s.parse::<usize>().ok().filter(|n| *n > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| bad(path, "sizes", text, &expected))?;
    if sizes.len() != dimension {
        return Err(bad(path, "sizes", text, &expected));
    }
    crate::volume::limits::check_voxels(path, "sizes", &sizes)?;
    Ok(sizes)
}

/// Whether the data is big-endian; `endian` is required for types wider than a byte.
fn endian(path: &Path, f: &BTreeMap<String, String>, ty: Type) -> Result<bool, Error> {
    match f.get("endian").map(|e| e.trim()) {
        Some("big") => Ok(true),
        Some("little") => Ok(false),
        None if ty.width() == 1 => Ok(false),
        None => Err(bad(
            path,
            "endian",
            "missing",
            "little or big (the type is wider than a byte)",
        )),
        Some(other) => Err(bad(path, "endian", other, "little or big")),
    }
}

/// Whether the data is gzip-compressed (`gzip`/`gz`) rather than `raw`.
fn encoding(path: &Path, text: &str) -> Result<bool, Error> {
    match text.trim() {
        "raw" => Ok(false),
        "gzip" | "gz" => Ok(true),
        other => Err(unsupported(
            path,
            format!("encoding `{other}`: only raw and gzip are read; resave with one of them"),
        )),
    }
}

/// The space's signs to RAS+, the per-axis directions and the origin.
type Space = ([f64; 3], Vec<Option<[f64; 3]>>, [f64; 3]);

/// `space`, `space directions` and `space origin`. Without `space` the grid has no place in
/// the world, so it is refused rather than guessed.
fn space(path: &Path, f: &BTreeMap<String, String>, dimension: usize) -> Result<Space, Error> {
    let Some(name) = f.get("space").map(|s| s.trim()) else {
        return Err(unsupported(
            path,
            "no `space` field (left-posterior-superior, right-anterior-superior …): where the voxels lie in the patient is unknown".into(),
        ));
    };
    let to_ras = match name {
        "left-posterior-superior" | "LPS" => [-1.0, -1.0, 1.0],
        "right-anterior-superior" | "RAS" => [1.0, 1.0, 1.0],
        "left-anterior-superior" | "LAS" => [-1.0, 1.0, 1.0],
        other => {
            return Err(unsupported(
                path,
                format!("space `{other}`: only LPS, RAS and LAS are read"),
            ))
        }
    };
    let expected = format!("{dimension} entries, each (x,y,z) or none");
    let text = required(path, f, "space directions")?;
    let directions = vectors(text)
        .filter(|d| d.len() == dimension)
        .ok_or_else(|| bad(path, "space directions", text, &expected))?;
    let origin = match f.get("space origin") {
        None => [0.0; 3],
        Some(o) => match vectors(o).as_deref() {
            Some([Some(v)]) => *v,
            _ => return Err(bad(path, "space origin", o, "one (x,y,z) vector")),
        },
    };
    Ok((to_ras, directions, origin))
}

/// Parses `(a,b,c) none (d,e,f)` (spaces allowed inside the brackets); `None` when malformed
/// or a number is not finite.
fn vectors(text: &str) -> Option<Vec<Option<[f64; 3]>>> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("none") {
            out.push(None);
            rest = after.trim_start();
            continue;
        }
        let inner = rest.strip_prefix('(')?;
        let close = inner.find(')')?;
        let nums: Vec<f64> = inner
            .get(..close)?
            .split(',')
            .map(|n| n.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
            .collect::<Option<_>>()?;
        let [x, y, z] = nums.as_slice() else {
            return None;
        };
        out.push(Some([*x, *y, *z]));
        rest = inner.get(close + 1..)?.trim_start();
    }
    Some(out)
}
