//! Reading a plugin's descriptor from the library file without loading it: the file must be a
//! shared library for this machine with a `.delinea_plugin` section holding a descriptor of
//! this ABI major, full size, built with `panic = "unwind"`. Anything else is refused here, so
//! that a file that is not such a plugin never runs a line of its code in delinea.

use std::path::{Path, PathBuf};

use delinea_plugin_api::abi::{self, Descriptor, ABI_MAJOR, KIND_ADAPT, KIND_QUERY, MAGIC};
use object::{Object, ObjectSection};
use serde::Serialize;

use super::PluginError;

/// A plugin's descriptor, as read from its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Info {
    /// The file (its real path).
    pub path: PathBuf,
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// `query` or `adapt`.
    pub kind: &'static str,
    /// ABI major.minor it was built against.
    pub abi: String,
    /// The SDK version it was built with.
    pub sdk: String,
    /// `arch-os` it was built for.
    pub target: String,
    /// Built with `panic = "unwind"`.
    pub unwind: bool,
    /// The scores a query plugin reads.
    pub needs: Vec<&'static str>,
    /// Its parameters' JSON Schema.
    pub params_schema: serde_json::Value,
}

impl Info {
    /// The kind code of the ABI.
    pub fn kind_code(&self) -> u32 {
        if self.kind == "query" {
            KIND_QUERY
        } else {
            KIND_ADAPT
        }
    }
}

/// Little-endian fields of the descriptor bytes at their `repr(C)` offsets.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn u32(&self, offset: usize) -> u32 {
        let b = &self.0[offset..offset + 4];
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }

    /// A `FixedStr<N>` at `offset`: its length, then `N` bytes.
    fn text(&self, offset: usize, n: usize) -> String {
        let len = (self.u32(offset) as usize).min(n);
        String::from_utf8_lossy(&self.0[offset + 4..offset + 4 + len]).into_owned()
    }
}

/// The descriptor of the library at `path`, checked; the file is only read, never loaded.
pub fn read(path: &Path) -> Result<Info, PluginError> {
    let bad = |reason: String| PluginError::Refused {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let file = object::File::parse(&*bytes).map_err(|e| bad(format!("not a shared library for this machine ({e})")))?;
    if file.kind() != object::ObjectKind::Dynamic {
        return Err(bad(format!("not a shared library (a {:?} object file)", file.kind())));
    }
    let arch = format!("{:?}", file.architecture()).to_lowercase();
    let here = std::env::consts::ARCH.replace('_', "").to_lowercase();
    if arch.replace('_', "") != here {
        return Err(bad(format!(
            "built for {arch}, this machine is {}",
            std::env::consts::ARCH
        )));
    }
    let section = file
        .sections()
        .find(|s| matches!(s.name(), Ok(abi::SECTION) | Ok("__delinea")))
        .ok_or_else(|| {
            bad(format!(
                "no delinea plugin descriptor (section {}): not a delinea plugin, or not built with \
                 delinea-plugin-api's export macro",
                abi::SECTION
            ))
        })?;
    let data = section
        .data()
        .map_err(|e| bad(format!("unreadable descriptor section: {e}")))?;
    parse(path, data)
}

/// Checks and reads descriptor bytes.
pub fn parse(path: &Path, data: &[u8]) -> Result<Info, PluginError> {
    let bad = |reason: String| PluginError::Refused {
        path: path.to_path_buf(),
        reason,
    };
    if data.len() < 32 || data[..8] != MAGIC {
        return Err(bad(
            "the descriptor section does not start with delinea's magic bytes".into()
        ));
    }
    let f = Fields(data);
    let (major, minor) = (
        f.u32(std::mem::offset_of!(Descriptor, abi_major)),
        f.u32(std::mem::offset_of!(Descriptor, abi_minor)),
    );
    if major != ABI_MAJOR {
        return Err(bad(format!(
            "built against plugin ABI {major}.{minor}; this delinea speaks ABI {ABI_MAJOR}: rebuild the plugin \
             against delinea-plugin-api {ABI_MAJOR}.x"
        )));
    }
    let size = f.u32(std::mem::offset_of!(Descriptor, size)) as usize;
    let full = std::mem::size_of::<Descriptor>();
    if size < full || data.len() < full {
        return Err(bad(format!(
            "its descriptor is {} bytes ({} in the file); this delinea reads {full}",
            size,
            data.len()
        )));
    }
    if f.u32(std::mem::offset_of!(Descriptor, panic_unwind)) != 1 {
        return Err(bad(
            "built with panic = \"abort\": a panic in it would abort delinea; build it with panic = \"unwind\" \
             (Cargo's default)"
                .into(),
        ));
    }
    let kind = match f.u32(std::mem::offset_of!(Descriptor, kind)) {
        KIND_QUERY => "query",
        KIND_ADAPT => "adapt",
        other => return Err(bad(format!("unknown plugin kind {other}"))),
    };
    let needs_bits = f.u32(std::mem::offset_of!(Descriptor, needs));
    let needs = ["entropy", "bald", "margin", "stdr", "features"]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| needs_bits & (1 << i) != 0)
        .map(|(_, n)| n)
        .collect();
    let schema_text = f.text(std::mem::offset_of!(Descriptor, params_schema), 4096);
    let params_schema =
        serde_json::from_str(&schema_text).map_err(|e| bad(format!("its parameters' schema is not JSON: {e}")))?;
    Ok(Info {
        path: path.to_path_buf(),
        name: f.text(std::mem::offset_of!(Descriptor, name), 64),
        version: f.text(std::mem::offset_of!(Descriptor, version), 32),
        kind,
        abi: format!("{major}.{minor}"),
        sdk: f.text(std::mem::offset_of!(Descriptor, sdk_version), 32),
        target: f.text(std::mem::offset_of!(Descriptor, target), 64),
        unwind: true,
        needs,
        params_schema,
    })
}
