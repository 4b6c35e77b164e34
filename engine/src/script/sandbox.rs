//! The folders a script may read and write: those the command or job names (`--allow DIR`),
//! nothing else. A script names files by paths relative to the working folder; a path with a
//! `..` component, an absolute path, or one whose real location (symlinks followed) lies
//! outside every allowed folder is refused, as is writing through a symlink.

use std::path::{Component, Path, PathBuf};

/// The allowed folders, as their real (canonical) paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    roots: Vec<PathBuf>,
    base: PathBuf,
}

impl Sandbox {
    /// Scripts may reach only `roots` (each must exist); relative paths are read from `base`
    /// (the working folder).
    pub fn new(roots: &[PathBuf], base: &Path) -> Result<Sandbox, String> {
        let base = base
            .canonicalize()
            .map_err(|e| format!("working folder {}: {e}", base.display()))?;
        let roots = roots
            .iter()
            .map(|r| {
                let real = base
                    .join(r)
                    .canonicalize()
                    .map_err(|e| format!("--allow {}: {e}", r.display()))?;
                if real.is_dir() {
                    Ok(real)
                } else {
                    Err(format!("--allow {}: not a folder", r.display()))
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Sandbox { roots, base })
    }

    /// No file access at all (a query policy needs none: the pool is handed to it).
    pub fn none() -> Sandbox {
        Sandbox::default()
    }

    /// The allowed folders.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The file a script names with `path`, to read: it must exist inside an allowed folder.
    pub fn read(&self, path: &str) -> Result<PathBuf, String> {
        let joined = self.lexical(path)?;
        let real = match joined.canonicalize() {
            Ok(real) => real,
            Err(e) => {
                // Outside the allowed folders, a missing file is "outside", not "missing".
                self.inside(path, &self.existing_ancestor(&joined)?)?;
                return Err(format!("{path}: {e}"));
            }
        };
        self.inside(path, &real)?;
        Ok(real)
    }

    /// The real path of the deepest ancestor of `path` that exists.
    fn existing_ancestor(&self, path: &Path) -> Result<PathBuf, String> {
        let mut existing = path;
        while !existing.exists() {
            existing = match existing.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => return Err(format!("{}: no part of it exists", path.display())),
            };
        }
        existing.canonicalize().map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The file a script names with `path`, to write: its folder must exist inside an allowed
    /// folder, and the file must not be a symlink.
    pub fn write(&self, path: &str) -> Result<PathBuf, String> {
        let joined = self.lexical(path)?;
        let name = joined.file_name().ok_or_else(|| format!("{path}: not a file name"))?;
        let parent = joined.parent().unwrap_or(&self.base);
        let real_parent = parent
            .canonicalize()
            .map_err(|e| format!("{path}: its folder {}: {e}", parent.display()))?;
        self.inside(path, &real_parent)?;
        let target = real_parent.join(name);
        if target.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("{path}: is a symlink; scripts do not write through symlinks"));
        }
        Ok(target)
    }

    /// A folder a script names, to write into (created inside an allowed folder when missing).
    pub fn folder(&self, path: &str) -> Result<PathBuf, String> {
        let joined = self.lexical(path)?;
        // The deepest existing ancestor must lie inside an allowed folder.
        self.inside(path, &self.existing_ancestor(&joined)?)?;
        std::fs::create_dir_all(&joined).map_err(|e| format!("{path}: {e}"))?;
        let real = joined.canonicalize().map_err(|e| format!("{path}: {e}"))?;
        self.inside(path, &real)?;
        Ok(real)
    }

    /// Checks a file the engine itself names (e.g. an image a manifest lists): its real
    /// location must lie inside an allowed folder.
    pub fn check(&self, path: &Path) -> Result<(), String> {
        let real = path.canonicalize().map_err(|e| format!("{}: {e}", path.display()))?;
        self.inside(&path.display().to_string(), &real)
    }

    /// `path` joined to the working folder, refused when absolute or with a `..` component.
    fn lexical(&self, path: &str) -> Result<PathBuf, String> {
        let p = Path::new(path);
        if path.is_empty() {
            return Err("an empty path".into());
        }
        if self.roots.is_empty() {
            return Err(format!(
                "{path}: this script may not touch files (no folder was allowed: --allow DIR)"
            ));
        }
        for c in p.components() {
            match c {
                Component::ParentDir => {
                    return Err(format!("{path}: `..` is not allowed in a script's paths"));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(format!(
                        "{path}: absolute paths are not allowed in scripts; give a path relative to the \
                         working folder, inside an allowed folder"
                    ));
                }
                _ => {}
            }
        }
        Ok(self.base.join(p))
    }

    fn inside(&self, path: &str, real: &Path) -> Result<(), String> {
        if self.roots.iter().any(|r| real.starts_with(r)) {
            return Ok(());
        }
        let allowed: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
        Err(match allowed.is_empty() {
            true => format!("{path}: this script may not touch files (no folder was allowed: --allow DIR)"),
            false => format!(
                "{path}: outside the allowed folders ({}); it resolves to {}",
                allowed.join(", "),
                real.display()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confines_reads_and_writes_to_the_allowed_folders() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir_all(base.join("data/sub")).unwrap();
        std::fs::create_dir_all(base.join("secret")).unwrap();
        std::fs::write(base.join("data/sub/a.txt"), "a").unwrap();
        std::fs::write(base.join("secret/key.txt"), "k").unwrap();
        let s = Sandbox::new(&[PathBuf::from("data")], base).unwrap();
        assert!(s.read("data/sub/a.txt").is_ok());
        assert!(s
            .read("secret/key.txt")
            .unwrap_err()
            .contains("outside the allowed folders"));
        assert!(s.read("data/../secret/key.txt").unwrap_err().contains("`..`"));
        let abs = base.join("data/sub/a.txt");
        assert!(s.read(abs.to_str().unwrap()).unwrap_err().contains("absolute paths"));
        // A symlink inside the allowed folder that leaves it.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(base.join("secret"), base.join("data/escape")).unwrap();
            assert!(s.read("data/escape/key.txt").unwrap_err().contains("outside"));
            assert!(s.write("data/escape/new.txt").unwrap_err().contains("outside"));
            std::os::unix::fs::symlink(base.join("secret/key.txt"), base.join("data/link.txt")).unwrap();
            assert!(s.write("data/link.txt").unwrap_err().contains("symlink"));
        }
        assert!(s.write("data/sub/out.txt").is_ok());
        assert!(s.write("out.txt").unwrap_err().contains("outside"));
        assert!(s.folder("data/new/deeper").unwrap().ends_with("data/new/deeper"));
        assert!(s.folder("elsewhere").is_err() && !base.join("elsewhere").exists());
        let none = Sandbox::none();
        assert!(none.read("data/sub/a.txt").is_err());
        assert!(Sandbox::new(&[PathBuf::from("missing")], base)
            .unwrap_err()
            .contains("missing"));
    }
}
