//! `disk_min_free`: a run is skipped, and reported failed with the reason, when the
//! filesystem of its `mirror_dir` has less free space than this (bytes, or a percentage of
//! the filesystem).

use std::path::Path;

use serde::Serialize;

use crate::config::units::memory_bytes;

/// The least free space a run needs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MinFree {
    Bytes(u64),
    /// Of the filesystem's size, 0..=100.
    Percent(f64),
}

impl Eq for MinFree {}

/// Space on a filesystem, as an unprivileged process may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace {
    pub available: u64,
    pub total: u64,
}

impl MinFree {
    /// `500G` (binary units, as `memory_limit`), or `10%`.
    pub fn parse(text: &str) -> Result<MinFree, String> {
        let text = text.trim();
        if let Some(percent) = text.strip_suffix('%') {
            return match percent.trim().parse::<f64>() {
                Ok(value) if (0.0..=100.0).contains(&value) => Ok(MinFree::Percent(value)),
                _ => Err(format!("{text:?} is not a percentage from 0% to 100%")),
            };
        }
        memory_bytes(text).map(MinFree::Bytes)
    }

    fn bytes(&self, total: u64) -> u64 {
        match *self {
            MinFree::Bytes(bytes) => bytes,
            MinFree::Percent(percent) => (total as f64 * percent / 100.0) as u64,
        }
    }

    /// Why a run must not start with `free` (none: it may).
    pub fn shortfall(&self, free: FreeSpace, dir: &Path) -> Option<String> {
        let needed = self.bytes(free.total);
        (free.available < needed).then(|| {
            format!(
                "not enough free disk space: {} free on the filesystem of {}, below disk_min_free {}; the run was skipped",
                human(free.available),
                dir.display(),
                self
            )
        })
    }
}

impl std::fmt::Display for MinFree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MinFree::Bytes(bytes) => f.write_str(&human(*bytes)),
            MinFree::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

/// Bytes as `12.3G` (binary units).
fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// The free space of the filesystem holding `dir` (or, while it does not exist yet, its
/// nearest existing parent).
pub fn free_space(dir: &Path) -> std::io::Result<FreeSpace> {
    use std::os::unix::ffi::OsStrExt;
    let existing = dir
        .ancestors()
        .find(|path| path.exists())
        .unwrap_or(Path::new("/"));
    let path = std::ffi::CString::new(existing.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: statvfs(3) fills the zeroed struct we own; the path is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let block = stat.f_frsize as u64;
    Ok(FreeSpace {
        available: (stat.f_bavail as u64).saturating_mul(block),
        total: (stat.f_blocks as u64).saturating_mul(block),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_or_a_percentage() {
        assert_eq!(MinFree::parse("500G"), Ok(MinFree::Bytes(500 << 30)));
        assert_eq!(MinFree::parse("10%"), Ok(MinFree::Percent(10.0)));
        assert!(MinFree::parse("110%").is_err());
        assert!(MinFree::parse("lots").is_err());
        let free = FreeSpace {
            available: 30 << 30,
            total: 1000 << 30,
        };
        let dir = Path::new("/data/debian");
        assert_eq!(MinFree::Bytes(20 << 30).shortfall(free, dir), None);
        assert_eq!(
            MinFree::Bytes(500 << 30).shortfall(free, dir).unwrap(),
            "not enough free disk space: 30.0G free on the filesystem of /data/debian, below disk_min_free 500.0G; the run was skipped"
        );
        assert_eq!(MinFree::Percent(2.0).shortfall(free, dir), None);
        assert!(MinFree::Percent(5.0).shortfall(free, dir).is_some());
    }

    #[test]
    fn the_free_space_of_a_real_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_space(&dir.path().join("not/yet/made")).unwrap();
        assert!(free.total > 0 && free.available <= free.total, "{free:?}");
    }
}
