//! `atomic_publish`: a run syncs into its `staging_dir`; on success the staging copy and
//! the served `mirror_dir` trade places in one `renameat2(RENAME_EXCHANGE)`, so readers of
//! the served path see the old tree or the new one, never a half-synced one. The old tree
//! is then the staging copy the next run brings up to date; a failed run leaves its
//! staging copy, and the next resumes from it.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Where a job with `atomic_publish` serves its tree (its runs write to `mirror_dir`, the
/// staging copy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Publish {
    pub served: PathBuf,
}

fn c_path(path: &Path) -> std::io::Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Makes `staging` the served tree at `served` in one step; the tree served before is left
/// at `staging`. The first time (nothing served yet) it is a plain rename.
pub fn swap(staging: &Path, served: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(served).is_err() {
        if let Some(parent) = served.parent() {
            std::fs::create_dir_all(parent)?;
        }
        return std::fs::rename(staging, served);
    }
    let (from, to) = (c_path(staging)?, c_path(served)?);
    // SAFETY: renameat2(2) with two NUL-terminated paths relative to the working directory.
    let done = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if done != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The device of the filesystem holding `path` (or its nearest existing parent).
pub fn device_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    path.ancestors()
        .find_map(|path| std::fs::metadata(path).ok())
        .map(|metadata| metadata.dev())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trees_trade_places() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, served) = (dir.path().join("staging"), dir.path().join("pub/served"));
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("v"), "1").unwrap();
        swap(&staging, &served).unwrap();
        assert_eq!(std::fs::read_to_string(served.join("v")).unwrap(), "1");
        assert!(!staging.exists(), "the first publish moves it");
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("v"), "2").unwrap();
        swap(&staging, &served).unwrap();
        assert_eq!(std::fs::read_to_string(served.join("v")).unwrap(), "2");
        assert_eq!(
            std::fs::read_to_string(staging.join("v")).unwrap(),
            "1",
            "the old tree"
        );
        assert_eq!(device_of(&staging), device_of(&dir.path().join("not/yet")));
    }
}
