//! tunasync's log limiter: one log file per attempt, `<name>_YYYY-MM-DD_HH_MM.log`, a
//! relative `latest` symlink, `.fail` on failure, the 10 newest kept.
//!
//! Unlike tunasync, only this mirror's own files are counted and removed (an exact name
//! pattern, not a prefix), and a reused file name is truncated, not overwritten in place.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Files kept per mirror, the new one included.
pub const KEEP: usize = 10;

/// Whether `file_name` is one of `mirror`'s run logs.
fn is_run_log(mirror: &str, file_name: &str) -> bool {
    let Some(rest) = file_name
        .strip_prefix(mirror)
        .and_then(|rest| rest.strip_prefix('_'))
    else {
        return false;
    };
    let stamp = rest
        .strip_suffix(".log.fail")
        .or_else(|| rest.strip_suffix(".log"))
        .unwrap_or_default();
    // YYYY-MM-DD_HH_MM
    let bytes = stamp.as_bytes();
    bytes.len() == 16
        && bytes.iter().enumerate().all(|(idx, byte)| match idx {
            4 | 7 => *byte == b'-',
            10 | 13 => *byte == b'_',
            _ => byte.is_ascii_digit(),
        })
}

/// Before an attempt: prunes old logs to make room for one more, and creates the new log
/// file (empty) with `latest` pointing at it. Returns its path.
pub fn start_attempt(
    log_dir: &Path,
    mirror: &str,
    now: chrono::DateTime<chrono::Local>,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(log_dir)?;
    let file_name = format!("{mirror}_{}.log", now.format("%Y-%m-%d_%H_%M"));
    let mut logs: Vec<(SystemTime, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(log_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_run_log(mirror, name) || name == file_name {
            continue;
        }
        let modified = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        logs.push((modified, entry.path()));
    }
    logs.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, old) in logs.into_iter().skip(KEEP - 1) {
        std::fs::remove_file(old)?;
    }
    let path = log_dir.join(&file_name);
    std::fs::File::create(&path)?;
    point_latest(log_dir, &file_name)?;
    Ok(path)
}

/// After a failed attempt: `<file>.fail`, and `latest` follows it.
pub fn mark_failed(log_file: &Path) -> std::io::Result<PathBuf> {
    let mut failed = log_file.as_os_str().to_owned();
    failed.push(".fail");
    let failed = PathBuf::from(failed);
    std::fs::rename(log_file, &failed)?;
    if let (Some(dir), Some(name)) = (
        failed.parent(),
        failed.file_name().and_then(|name| name.to_str()),
    ) {
        point_latest(dir, name)?;
    }
    Ok(failed)
}

fn point_latest(log_dir: &Path, target: &str) -> std::io::Result<()> {
    let temporary = log_dir.join(format!(".latest.{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary)?;
    std::fs::rename(&temporary, log_dir.join("latest"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32) -> chrono::DateTime<chrono::Local> {
        chrono::Local
            .with_ymd_and_hms(2026, 11, 26, 11, minute, 0)
            .unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn recognises_only_this_mirrors_logs() {
        assert!(is_run_log("pfx", "pfx_2026-11-26_11_50.log"));
        assert!(is_run_log("pfx", "pfx_2026-11-26_11_50.log.fail"));
        assert!(
            !is_run_log("pfx", "pfx-b_2026-11-26_11_50.log"),
            "another mirror sharing the prefix"
        );
        assert!(!is_run_log("pfx", "pfx_b_2026-11-26_11_50.log"));
        assert!(!is_run_log("pfx", "pfx_2026-11-26_11_50.txt"));
        assert!(!is_run_log("pfx", "latest"));
        assert!(!is_run_log("pfx", "unrelated.txt"));
    }

    /// tunasync's loglimit test: 15 old logs → 10 remain, `latest` is right, failures get
    /// `.fail` and `latest` follows; other mirrors' files in a shared dir are untouched.
    #[test]
    fn keeps_ten_and_never_touches_other_mirrors() {
        let dir = tempfile::tempdir().unwrap();
        for minute in 0..15 {
            let old = dir
                .path()
                .join(format!("seeded_2020-01-01_00_{minute:02}.log"));
            std::fs::write(&old, "old").unwrap();
            let time = SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(1_600_000_000 + minute * 60);
            std::fs::File::options()
                .write(true)
                .open(&old)
                .unwrap()
                .set_modified(time)
                .unwrap();
        }
        std::fs::write(
            dir.path().join("seeded-b_2020-01-01_00_00.log"),
            "other mirror",
        )
        .unwrap();
        std::fs::write(dir.path().join("unrelated.txt"), "x").unwrap();

        let log = start_attempt(dir.path(), "seeded", at(41)).unwrap();
        assert_eq!(log, dir.path().join("seeded_2026-11-26_11_41.log"));
        let all = names(dir.path());
        let ours: Vec<&String> = all
            .iter()
            .filter(|name| is_run_log("seeded", name))
            .collect();
        assert_eq!(ours.len(), KEEP);
        assert!(
            !all.contains(&"seeded_2020-01-01_00_05.log".to_owned()),
            "the oldest went"
        );
        assert!(all.contains(&"seeded_2020-01-01_00_06.log".to_owned()));
        assert!(all.contains(&"seeded-b_2020-01-01_00_00.log".to_owned()));
        assert!(all.contains(&"unrelated.txt".to_owned()));
        assert_eq!(
            std::fs::read_link(dir.path().join("latest")).unwrap(),
            Path::new("seeded_2026-11-26_11_41.log")
        );

        std::fs::write(&log, "a long first run\nwith lines\n").unwrap();
        let failed = mark_failed(&log).unwrap();
        assert_eq!(failed, dir.path().join("seeded_2026-11-26_11_41.log.fail"));
        assert_eq!(
            std::fs::read_link(dir.path().join("latest")).unwrap(),
            Path::new("seeded_2026-11-26_11_41.log.fail")
        );

        // A second run in the same minute gets a fresh, empty file.
        let again = start_attempt(dir.path(), "seeded", at(41)).unwrap();
        assert_eq!(std::fs::read_to_string(&again).unwrap(), "");
        let ours = names(dir.path())
            .into_iter()
            .filter(|name| is_run_log("seeded", name))
            .count();
        assert_eq!(ours, KEEP);
    }
}
