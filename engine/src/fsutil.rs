//! File-system helpers shared by every stage: atomic writes (ARCHITECTURE.md "Outputs are
//! written atomically").

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `path` through a temporary file in the same folder, renamed over `path` only once
/// `fill` succeeded and the data reached the disk: readers never see a half-written file,
/// and a failed write leaves any previous `path` untouched.
pub fn write_atomic<F>(path: &Path, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> io::Result<()>,
{
    let tmp = temp_path(path);
    let result = (|| {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// Writes `value` to `path` as pretty JSON with a trailing newline, atomically.
pub fn write_json_atomic<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    write_bytes_atomic(path, text.as_bytes())
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Makes the entries of `dir` durable (a rename is atomic at once but durable only then).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Moves `from` to `to` byte for byte: a rename, or across file systems a synced copy renamed
/// into place, and only then the original removed. The folder of `to` is synced.
pub fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            if from.is_dir() {
                return Err(io::Error::other(format!(
                    "{} is a folder on another file system than {}",
                    from.display(),
                    to.display()
                )));
            }
            write_atomic(to, |w| io::copy(&mut File::open(from)?, w).map(|_| ()))?;
            std::fs::remove_file(from)?;
        }
        other => other?,
    }
    match to.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => Ok(()),
    }
}

/// The time now, UTC, as RFC 3339 with milliseconds (`2026-12-02T19:40:00.123Z`).
pub fn utc_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    utc_string(d.as_secs() as i64, d.subsec_millis())
}

/// `secs` since the Unix epoch as RFC 3339 UTC (days to a civil date: Hinnant's algorithm).
pub fn utc_string(secs: i64, millis: u32) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_keeps_the_old_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        write_bytes_atomic(&p, b"old").unwrap();
        let r = write_atomic(&p, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("boom"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn utc_strings_match_known_dates() {
        assert_eq!(utc_string(0, 0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1796240000 +%FT%T` → 2026-12-02T19:33:20
        assert_eq!(utc_string(1_796_240_000, 7), "2026-12-02T19:33:20.007Z");
        // A leap day: `date -u -d @951782400` → 2000-02-29T00:00:00
        assert_eq!(utc_string(951_782_400, 0), "2000-02-29T00:00:00.000Z");
    }
}
