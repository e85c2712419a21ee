//! How far a running attempt has got, read from its log while it is written.
//!
//! One watcher per attempt looks at the log every [`INTERVAL`], reads what was added (at
//! most [`READ_LIMIT`] per look), and reports the counts: time running, bytes and lines of
//! log, and for rsync the files transferred (its `-v` file lines; `xfr#` and the byte
//! count of `--info=progress2` when those lines appear; the exact figure of `--stats` at
//! the end). The outbox keeps only the newest report of a job, so a slow broker never
//! queues more than one per job.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::sync::CancellationToken;

/// How often a running attempt reports.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// The most read from a log per look; a job that writes faster is caught up at the next.
const READ_LIMIT: u64 = 4 << 20;
/// The longest unfinished line kept while waiting for its end.
const LINE_LIMIT: usize = 4096;

/// rsync's lines that are not a transferred file.
const RSYNC_NOT_FILES: [&str; 17] = [
    "receiving ",
    "sending ",
    "sent ",
    "total size ",
    "deleting ",
    "*deleting ",
    "created directory",
    "Number of ",
    "Total ",
    "Literal data",
    "Matched data",
    "File list ",
    "rsync",
    "skipping ",
    "building file list",
    "cannot delete",
    "done",
];

/// Counts so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub log_bytes: u64,
    pub log_lines: u64,
    pub files: Option<u64>,
    pub transferred_bytes: Option<u64>,
    pub percent: Option<u8>,
}

/// Counts a log fed in pieces as they are written.
#[derive(Debug, Default)]
pub struct LogScanner {
    rsync: bool,
    counts: Counts,
    /// rsync `-v` file lines seen.
    file_lines: u64,
    /// `--stats`' "Number of regular files transferred".
    stated_files: Option<u64>,
    /// The last `--info=progress2` line: bytes, percent, `xfr#`.
    progress2: Option<(u64, u8, Option<u64>)>,
    partial: Vec<u8>,
}

impl LogScanner {
    pub fn new(rsync: bool) -> LogScanner {
        LogScanner {
            rsync,
            ..LogScanner::default()
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.counts.log_bytes += chunk.len() as u64;
        for &byte in chunk {
            match byte {
                b'\n' => {
                    self.counts.log_lines += 1;
                    self.end_segment();
                }
                // progress2 rewrites its line with carriage returns.
                b'\r' => self.end_segment(),
                _ if self.partial.len() < LINE_LIMIT => self.partial.push(byte),
                _ => {}
            }
        }
    }

    fn end_segment(&mut self) {
        if self.rsync {
            let text = String::from_utf8_lossy(&self.partial).into_owned();
            self.rsync_segment(&text);
        }
        self.partial.clear();
    }

    fn rsync_segment(&mut self, text: &str) {
        if let Some(progress) = progress2(text) {
            self.progress2 = Some(progress);
            return;
        }
        if let Some(rest) = text.strip_prefix("Number of regular files transferred:") {
            self.stated_files = number(rest.trim());
            return;
        }
        let is_file = !text.is_empty()
            && !text.starts_with(char::is_whitespace)
            && !text.ends_with('/')
            && !RSYNC_NOT_FILES
                .iter()
                .any(|prefix| text.starts_with(prefix));
        if is_file {
            self.file_lines += 1;
        }
    }

    pub fn counts(&self) -> Counts {
        let mut counts = self.counts;
        if self.rsync {
            let (bytes, percent, xfr) = match self.progress2 {
                Some((bytes, percent, xfr)) => (Some(bytes), Some(percent), xfr),
                None => (None, None, None),
            };
            counts.files = Some(self.stated_files.or(xfr).unwrap_or(self.file_lines));
            counts.transferred_bytes = bytes;
            counts.percent = percent;
        }
        counts
    }
}

/// `  1,238,099,968  45%  12.34MB/s  0:01:23 (xfr#123, ir-chk=1000/2000)`: bytes, percent,
/// `xfr#` (bytes may carry `-h`'s unit letter).
fn progress2(text: &str) -> Option<(u64, u8, Option<u64>)> {
    let mut tokens = text.split_whitespace();
    let bytes = size(tokens.next()?)?;
    let percent: u8 = tokens.next()?.strip_suffix('%')?.parse().ok()?;
    let xfr = text
        .split_once("xfr#")
        .and_then(|(_, rest)| number(rest.split([',', ')']).next().unwrap_or("")));
    Some((bytes, percent.min(100), xfr))
}

/// A count with thousands separators.
fn number(text: &str) -> Option<u64> {
    let digits: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A byte count, plain (`1,238,099,968`) or with `-h`'s units (`1.24G`, powers of 1000).
fn size(text: &str) -> Option<u64> {
    let plain: String = text.chars().filter(|c| *c != ',').collect();
    let (number, unit) = match plain.char_indices().last()? {
        (idx, letter) if letter.is_ascii_alphabetic() => (&plain[..idx], letter),
        _ => (plain.as_str(), ' '),
    };
    let multiplier = match unit.to_ascii_uppercase() {
        ' ' => 1.0,
        'K' => 1e3,
        'M' => 1e6,
        'G' => 1e9,
        'T' => 1e12,
        'P' => 1e15,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    (value >= 0.0).then_some((value * multiplier) as u64)
}

/// Reads `path` as it grows, until `stop`, handing the counts to `report` every
/// [`INTERVAL`]. A log that shrinks (truncated by the next stage's start) is counted again
/// from its start.
pub async fn watch(
    path: PathBuf,
    rsync: bool,
    stop: CancellationToken,
    mut report: impl FnMut(Counts),
) {
    let mut scanner = LogScanner::new(rsync);
    let mut offset = 0u64;
    let mut buffer = Vec::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {}
            () = stop.cancelled() => return,
        }
        if let Ok(mut file) = tokio::fs::File::open(&path).await {
            let len = file.metadata().await.map(|meta| meta.len()).unwrap_or(0);
            if len < offset {
                scanner = LogScanner::new(rsync);
                offset = 0;
            }
            buffer.clear();
            if file.seek(std::io::SeekFrom::Start(offset)).await.is_ok()
                && let Ok(read) = (&mut file).take(READ_LIMIT).read_to_end(&mut buffer).await
            {
                offset += read as u64;
                scanner.feed(&buffer);
            }
        }
        report(scanner.counts());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_log_counts_bytes_and_lines_across_pieces() {
        let mut scanner = LogScanner::new(false);
        scanner.feed(b"one\ntw");
        scanner.feed(b"o\nthree");
        let counts = scanner.counts();
        assert_eq!((counts.log_bytes, counts.log_lines), (13, 2));
        assert_eq!(counts.files, None);
    }

    #[test]
    fn rsync_verbose_lines_count_the_files_and_stats_give_the_exact_figure() {
        let mut scanner = LogScanner::new(true);
        scanner.feed(
            b"receiving incremental file list\n./\ndists/\ndists/stable/Release\npool/a.deb\n\
              deleting old.deb\nlink -> target\n",
        );
        assert_eq!(scanner.counts().files, Some(3));
        scanner.feed(
            b"\nNumber of files: 1,234 (reg: 1,000, dir: 234)\n\
              Number of regular files transferred: 2,345\nTotal file size: 1.23G bytes\n\
              sent 1.23K bytes  received 4.56M bytes  1.00M bytes/sec\n\
              total size is 1.23G  speedup is 270.00\n",
        );
        assert_eq!(scanner.counts().files, Some(2345));
    }

    #[test]
    fn progress2_lines_give_bytes_percent_and_transfers() {
        let mut scanner = LogScanner::new(true);
        scanner.feed(b"receiving incremental file list\n");
        scanner.feed(b"     32,768   0%    0.00kB/s    0:00:00\r");
        scanner.feed(b"  1,238,099,968  45%   12.34MB/s    0:01:23 (xfr#123, ir-chk=1000/2000)\r");
        let counts = scanner.counts();
        assert_eq!(counts.transferred_bytes, Some(1_238_099_968));
        assert_eq!(counts.percent, Some(45));
        assert_eq!(counts.files, Some(123));
        scanner.feed(b"          1.24G  46%   12.34MB/s    0:01:24 (xfr#124, to-chk=5/2000)\r");
        assert_eq!(scanner.counts().transferred_bytes, Some(1_240_000_000));
        assert_eq!(scanner.counts().files, Some(124));
    }

    #[test]
    fn a_line_longer_than_the_limit_is_counted_and_cut() {
        let mut scanner = LogScanner::new(true);
        let long = vec![b'x'; LINE_LIMIT * 3];
        scanner.feed(&long);
        scanner.feed(b"\n");
        assert_eq!(scanner.counts().log_lines, 1);
        assert_eq!(scanner.counts().files, Some(1));
        assert_eq!(scanner.counts().log_bytes, (LINE_LIMIT * 3 + 1) as u64);
    }
}
