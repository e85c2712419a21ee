//! tunasync's log limiter: one log file per attempt, `<name>_YYYY-MM-DD_HH_MM.log`, a
//! relative `latest` symlink, `.fail` on failure, the 10 newest kept.
//!
//! Unlike tunasync, only this mirror's own files are counted and removed (an exact name
//! pattern, not a prefix), and a second attempt in the same minute writes
//! `<name>_YYYY-MM-DD_HH_MM.2.log` instead of overwriting the first one's.
//!
//! Ours also keeps `.runs` in the log directory: one line `<run id> <file name>` per
//! attempt (and again when the file becomes `.fail`), the last line of a run naming its
//! newest file, so a run's log can be found by its id (`GET …/log?run=ID`). Lines whose
//! file was pruned are dropped when the next attempt starts.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use uuid::Uuid;

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
    // A second attempt in the same minute: `<stamp>.N`.
    let stamp = match stamp.split_once('.') {
        Some((stamp, n)) if !n.is_empty() && n.bytes().all(|byte| byte.is_ascii_digit()) => stamp,
        Some(_) => return false,
        None => stamp,
    };
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
    run_id: Uuid,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(log_dir)?;
    let stamp = format!("{mirror}_{}", now.format("%Y-%m-%d_%H_%M"));
    // An earlier attempt in the same minute keeps its file: this one gets `.2`, `.3`, …
    let taken =
        |name: &str| log_dir.join(name).exists() || log_dir.join(format!("{name}.fail")).exists();
    let mut file_name = format!("{stamp}.log");
    let mut n = 2;
    while taken(&file_name) && n < 1000 {
        file_name = format!("{stamp}.{n}.log");
        n += 1;
    }
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
    record_run(log_dir, run_id, &file_name, true)?;
    Ok(path)
}

/// After a failed attempt of run `run_id`: `<file>.fail`, and `latest` follows it.
pub fn mark_failed(log_file: &Path, run_id: Uuid) -> std::io::Result<PathBuf> {
    let mut failed = log_file.as_os_str().to_owned();
    failed.push(".fail");
    let failed = PathBuf::from(failed);
    std::fs::rename(log_file, &failed)?;
    if let (Some(dir), Some(name)) = (
        failed.parent(),
        failed.file_name().and_then(|name| name.to_str()),
    ) {
        point_latest(dir, name)?;
        record_run(dir, run_id, name, false)?;
    }
    Ok(failed)
}

/// The index of runs' log files in a log directory.
const RUNS: &str = ".runs";

/// Adds `run_id file_name` to the index; `prune`: first drops the lines whose file is gone
/// (and older lines naming the same file: a reused name belongs to its newest run).
fn record_run(log_dir: &Path, run_id: Uuid, file_name: &str, prune: bool) -> std::io::Result<()> {
    use std::io::Write;
    let index = log_dir.join(RUNS);
    if prune {
        let kept: String = read_runs(log_dir)
            .into_iter()
            .filter(|(_, name)| name != file_name && log_dir.join(name).exists())
            .map(|(run, name)| format!("{run} {name}\n"))
            .collect();
        let temporary = log_dir.join(format!(".runs.{}", std::process::id()));
        std::fs::write(&temporary, kept)?;
        std::fs::rename(&temporary, &index)?;
    }
    let mut file = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&index)?;
    writeln!(file, "{run_id} {file_name}")
}

/// The index's lines, oldest first; lines that do not parse are skipped.
fn read_runs(log_dir: &Path) -> Vec<(Uuid, String)> {
    let Ok(text) = std::fs::read_to_string(log_dir.join(RUNS)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (run, name) = line.split_once(' ')?;
            let run = Uuid::parse_str(run).ok()?;
            // Only a plain file name in this directory.
            (!name.is_empty() && !name.contains('/') && !name.starts_with('.'))
                .then(|| (run, name.to_owned()))
        })
        .collect()
}

/// The newest log file of run `run_id` in `log_dir`, if it is still kept.
pub fn run_log(log_dir: &Path, run_id: Uuid) -> Option<PathBuf> {
    let (_, name) = read_runs(log_dir)
        .into_iter()
        .rev()
        .find(|(run, _)| *run == run_id)?;
    let path = log_dir.join(name);
    path.is_file().then_some(path)
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
        assert!(is_run_log("pfx", "pfx_2026-11-26_11_50.2.log"));
        assert!(is_run_log("pfx", "pfx_2026-11-26_11_50.12.log.fail"));
        assert!(!is_run_log("pfx", "pfx_2026-11-26_11_50.x.log"));
        assert!(!is_run_log("pfx", "pfx_2026-11-26_11_50..log"));
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

        let first_run = Uuid::new_v4();
        let log = start_attempt(dir.path(), "seeded", at(41), first_run).unwrap();
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
        let failed = mark_failed(&log, first_run).unwrap();
        assert_eq!(failed, dir.path().join("seeded_2026-11-26_11_41.log.fail"));
        assert_eq!(
            std::fs::read_link(dir.path().join("latest")).unwrap(),
            Path::new("seeded_2026-11-26_11_41.log.fail")
        );

        // A second run in the same minute gets a fresh, empty file of its own.
        let again = start_attempt(dir.path(), "seeded", at(41), Uuid::new_v4()).unwrap();
        assert_eq!(again, dir.path().join("seeded_2026-11-26_11_41.2.log"));
        assert_eq!(std::fs::read_to_string(&again).unwrap(), "");
        assert!(failed.exists(), "the first one's is kept");
        let ours = names(dir.path())
            .into_iter()
            .filter(|name| is_run_log("seeded", name))
            .count();
        assert_eq!(ours, KEEP);
    }

    /// Each run's newest file is found by its id; a pruned file, a reused name and an
    /// unknown id find nothing.
    #[test]
    fn a_runs_log_is_found_by_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let runs: Vec<Uuid> = (0..12).map(|_| Uuid::new_v4()).collect();
        for (minute, run) in runs.iter().enumerate() {
            let log = start_attempt(dir.path(), "m", at(minute as u32), *run).unwrap();
            std::fs::write(&log, format!("run {minute}\n")).unwrap();
            let time = SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(1_600_000_000 + minute as u64 * 60);
            std::fs::File::options()
                .write(true)
                .open(&log)
                .unwrap()
                .set_modified(time)
                .unwrap();
        }
        // Two were pruned (ten kept).
        assert_eq!(run_log(dir.path(), runs[0]), None);
        assert_eq!(run_log(dir.path(), runs[1]), None);
        let found = run_log(dir.path(), runs[5]).unwrap();
        assert_eq!(std::fs::read_to_string(found).unwrap(), "run 5\n");
        assert_eq!(run_log(dir.path(), Uuid::new_v4()), None);

        // A failed attempt's file is found under its new name; a later attempt of the same
        // run is the one found.
        let last = runs[11];
        let failed = mark_failed(&dir.path().join("m_2026-11-26_11_11.log"), last).unwrap();
        assert_eq!(run_log(dir.path(), last), Some(failed));
        let retry = start_attempt(dir.path(), "m", at(30), last).unwrap();
        assert_eq!(run_log(dir.path(), last), Some(retry));

        // Another run in the same minute: both are found.
        let same_minute = Uuid::new_v4();
        let second = start_attempt(dir.path(), "m", at(30), same_minute).unwrap();
        assert_eq!(run_log(dir.path(), same_minute), Some(second));
        assert!(run_log(dir.path(), last).is_some());

        // The index stays small: only kept files are named.
        let lines = std::fs::read_to_string(dir.path().join(RUNS)).unwrap();
        assert!(lines.lines().count() <= KEEP + 1, "{lines}");
    }
}
