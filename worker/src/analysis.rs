//! Reading a finished run's log: sizes, `fail_on_match`, rsync's exit codes explained.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use regex_lite::Regex;

/// How much of the end of an rsync log is searched for its `--stats` block.
const RSYNC_TAIL: u64 = 256 * 1024;

/// rsync's `Total file size: 1.33T bytes` (the last one): the size of the mirror.
pub fn rsync_size(log: &Path) -> Option<String> {
    let tail = read_tail(log, RSYNC_TAIL).ok()?;
    let pattern = Regex::new(r"(?m)^Total file size: ([0-9\.]+[KMGTP]?) bytes").ok()?;
    pattern
        .captures_iter(&tail)
        .last()
        .and_then(|captures| captures.get(1))
        .map(|size| size.as_str().to_owned())
}

/// rsync's `Total transferred file size: 1.23G bytes` (the last one; `1,234` without
/// `-h`): what the run transferred, in bytes.
pub fn rsync_transferred(log: &Path) -> Option<u64> {
    let tail = read_tail(log, RSYNC_TAIL).ok()?;
    transferred_in(&tail)
}

fn transferred_in(text: &str) -> Option<u64> {
    let pattern =
        Regex::new(r"(?m)^Total transferred file size: ([0-9\.,]+[KMGTP]?) bytes").ok()?;
    let figure = pattern
        .captures_iter(text)
        .last()
        .and_then(|captures| captures.get(1))?
        .as_str()
        .replace(',', "");
    tunasync_shared::size::size_bytes(&figure).map(|bytes| bytes as u64)
}

/// The first capture group of the last match of `size_pattern` in the log.
pub fn pattern_size(text: &str, pattern: &Regex) -> Option<String> {
    pattern
        .captures_iter(text)
        .last()
        .and_then(|captures| captures.get(1))
        .map(|size| size.as_str().to_owned())
}

/// How many times `pattern` matches in the log.
pub fn count_matches(text: &str, pattern: &Regex) -> usize {
    pattern.find_iter(text).count()
}

fn read_tail(path: &Path, limit: u64) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    if length > limit {
        file.seek(SeekFrom::Start(length - limit))?;
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// What rsync's exit code means (from rsync's man page), appended to a failed run's log.
pub fn rsync_exit_meaning(code: i32) -> Option<&'static str> {
    Some(match code {
        0 => "Success",
        1 => "Syntax or usage error",
        2 => "Protocol incompatibility",
        3 => "Errors selecting input/output files, dirs",
        4 => "Requested action not supported",
        5 => "Error starting client-server protocol",
        6 => "Daemon unable to append to log-file",
        10 => "Error in socket I/O",
        11 => "Error in file I/O",
        12 => "Error in rsync protocol data stream",
        13 => "Errors with program diagnostics",
        14 => "Error in IPC code",
        20 => "Received SIGUSR1 or SIGINT",
        21 => "Some error returned by waitpid()",
        22 => "Error allocating core memory buffers",
        23 => "Partial transfer due to error",
        24 => "Partial transfer due to vanished source files",
        25 => "The --max-delete limit stopped deletions",
        30 => "Timeout in data send/receive",
        35 => "Timeout waiting for daemon connection",
        _ => return None,
    })
}

/// Go's `time.Duration` text for whole seconds (`2s`, `10m0s`, `1h0m0s`), as tunasync's
/// timeout error shows it.
pub fn go_duration(duration: std::time::Duration) -> String {
    let total = duration.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m{seconds}s"),
        _ => format!("{hours}h{minutes}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_come_from_the_last_match() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("r.log");
        std::fs::write(&log, "Total file size: 1.00K bytes\nfoo\nTotal file size: 20.07K bytes\nTotal transferred file size: 5 bytes\n").unwrap();
        assert_eq!(rsync_size(&log).as_deref(), Some("20.07K"));
        std::fs::write(&log, "Total file size: 1,234 bytes\n").unwrap();
        assert_eq!(rsync_size(&log), None);
        let pattern = Regex::new(r"Total size is ([0-9\.]+[KMGTP]?)").unwrap();
        assert_eq!(
            pattern_size("Total size is 1.5G\nTotal size is 2.5G\n", &pattern).as_deref(),
            Some("2.5G")
        );
        assert_eq!(pattern_size("nothing", &pattern), None);
        assert_eq!(
            count_matches("ERROR a\nok\nERROR b\n", &Regex::new("ERROR").unwrap()),
            2
        );
    }

    #[test]
    fn explanations_and_durations() {
        assert_eq!(
            rsync_exit_meaning(5),
            Some("Error starting client-server protocol")
        );
        assert_eq!(rsync_exit_meaning(10), Some("Error in socket I/O"));
        assert_eq!(rsync_exit_meaning(99), None);
        assert_eq!(go_duration(std::time::Duration::from_secs(2)), "2s");
        assert_eq!(go_duration(std::time::Duration::from_secs(600)), "10m0s");
        assert_eq!(go_duration(std::time::Duration::from_secs(3725)), "1h2m5s");
    }

    #[test]
    fn transferred_bytes_from_rsync_stats() {
        assert_eq!(
            transferred_in(
                "Total file size: 2.00G bytes\nTotal transferred file size: 1,234 bytes\n"
            ),
            Some(1234)
        );
        assert_eq!(
            transferred_in("Total transferred file size: 1.50K bytes\n"),
            Some(1536)
        );
        assert_eq!(transferred_in("no stats here\n"), None);
    }
}
