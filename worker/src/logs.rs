//! Answers to the manager's `log` command: a job's latest log (`<log_dir>/latest`) or a
//! given run's (found in the log limiter's `.runs` index), or its last lines, sent back as
//! `log-chunk` events through the outbox.
//!
//! Bounded: at most [`MAX_BYTES`] from the end of the log, in chunks of [`CHUNK_BYTES`]
//! (cut at character boundaries), at most [`MAX_TAIL`] lines. A follow then sends what the
//! running job writes, looking every [`FOLLOW_POLL`], at most [`FOLLOW_BYTES_PER_SEC`],
//! until the run ends, a `log-stop` comes, or [`FOLLOW_LIMIT`] has passed.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use tunasync_shared::wire::command::LogRequest;
use tunasync_shared::wire::event::{LogChunk, LogError};
use uuid::Uuid;

/// The most of a log sent in one answer (its end).
pub const MAX_BYTES: u64 = 8 << 20;
/// The most text in one chunk.
pub const CHUNK_BYTES: usize = 64 << 10;
/// The most lines a tail asks for.
pub const MAX_TAIL: u32 = 100_000;
/// How often a follow looks for new lines.
pub const FOLLOW_POLL: Duration = Duration::from_millis(50);
/// The longest a follow lives.
pub const FOLLOW_LIMIT: Duration = Duration::from_secs(30 * 60);
/// The most a follow sends per second (what a job writes faster is sent later).
pub const FOLLOW_BYTES_PER_SEC: u64 = 256 << 10;

/// What a follow goes on from: the log file (`latest` resolved when the answer was read),
/// where the answer ended, and the next chunk's number.
#[derive(Debug, Clone)]
pub struct FollowFrom {
    pub file: PathBuf,
    pub offset: u64,
    pub index: u32,
}

/// The chunks answering `request` (id `request_id`) from the job's `log_dir`; `None` for
/// `log_dir` when the worker has no such job.
pub fn answer(request_id: Uuid, request: &LogRequest, log_dir: Option<&Path>) -> Vec<LogChunk> {
    answer_from(request_id, request, log_dir).0
}

/// [`answer`], and where a follow goes on from (`None` when there is nothing to follow:
/// then the last chunk says it is the last).
pub fn answer_from(
    request_id: Uuid,
    request: &LogRequest,
    log_dir: Option<&Path>,
) -> (Vec<LogChunk>, Option<FollowFrom>) {
    let failed = |error| {
        let chunk = LogChunk {
            request: request_id,
            index: 0,
            text: String::new(),
            last: true,
            error: Some(error),
        };
        (vec![chunk], None)
    };
    let Some(log_dir) = log_dir else {
        return failed(LogError::NoSuchJob);
    };
    let latest = std::fs::canonicalize(log_dir.join("latest")).ok();
    let file = match request.run {
        Some(run) => match crate::hooks::loglimit::run_log(log_dir, run)
            .and_then(|file| std::fs::canonicalize(file).ok())
        {
            Some(file) => file,
            None => return failed(LogError::NoSuchRun),
        },
        None => match &latest {
            Some(file) => file.clone(),
            None => return failed(LogError::NoLog),
        },
    };
    let Ok((text, offset)) = read_end(&file) else {
        return failed(LogError::NoLog);
    };
    let text = match request.tail {
        Some(lines) => tail(&text, lines.min(MAX_TAIL)),
        None => &text,
    };
    let pieces = chunks(text);
    let n_pieces = pieces.len();
    // Only the latest log is being written: a past run's has nothing more to follow.
    let following = request.follow && latest.as_ref() == Some(&file);
    let sent: Vec<LogChunk> = pieces
        .into_iter()
        .enumerate()
        .map(|(index, piece)| LogChunk {
            request: request_id,
            index: u32::try_from(index).unwrap_or(u32::MAX),
            text: piece.to_owned(),
            last: !following && index + 1 == n_pieces,
            error: None,
        })
        .collect();
    let from = following.then(|| FollowFrom {
        file,
        offset,
        index: u32::try_from(n_pieces).unwrap_or(u32::MAX),
    });
    (sent, from)
}

/// The log's last [`MAX_BYTES`], as text (invalid UTF-8 replaced), and where it ended. Cut
/// from a longer log, it starts at a line's start.
fn read_end(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(MAX_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES).read_to_end(&mut bytes)?;
    let end = start + bytes.len() as u64;
    let from = if start > 0 {
        bytes
            .iter()
            .position(|byte| *byte == b'\n')
            .map_or(0, |newline| newline + 1)
    } else {
        0
    };
    Ok((String::from_utf8_lossy(&bytes[from..]).into_owned(), end))
}

/// Sends what is added to the log from `from` while `running()` says the run goes on, then
/// what is left and a last (empty) chunk; stops early on `stop` or after [`FOLLOW_LIMIT`].
pub async fn follow(
    request_id: Uuid,
    from: FollowFrom,
    running: impl Fn() -> bool,
    stop: CancellationToken,
    mut send: impl FnMut(LogChunk),
) {
    let FollowFrom {
        file,
        mut offset,
        mut index,
    } = from;
    let per_look = FOLLOW_BYTES_PER_SEC * FOLLOW_POLL.as_millis() as u64 / 1000;
    let deadline = tokio::time::Instant::now() + FOLLOW_LIMIT;
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let ended = !running();
        let mut read_now = 0;
        if let Ok(bytes) = read_from(&file, offset, per_look).await {
            read_now = bytes.len();
            offset += bytes.len() as u64;
            pending.extend_from_slice(&bytes);
        }
        // Whole characters only; the rest waits for the next look.
        let complete = match std::str::from_utf8(&pending) {
            Ok(_) => pending.len(),
            Err(err) if err.error_len().is_none() => err.valid_up_to(),
            Err(_) => pending.len(),
        };
        let finished = (ended && read_now == 0) || tokio::time::Instant::now() >= deadline;
        if complete > 0 || finished {
            let text = String::from_utf8_lossy(&pending[..complete]).into_owned();
            pending.drain(..complete);
            for piece in chunks(&text) {
                if piece.is_empty() && !finished {
                    continue;
                }
                send(LogChunk {
                    request: request_id,
                    index,
                    text: piece.to_owned(),
                    last: false,
                    error: None,
                });
                index = index.saturating_add(1);
            }
        }
        if finished {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_POLL) => {}
            () = stop.cancelled() => break,
        }
    }
    send(LogChunk {
        request: request_id,
        index,
        text: String::new(),
        last: true,
        error: None,
    });
    stop.cancel();
}

async fn read_from(path: &Path, offset: u64, limit: u64) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(SeekFrom::Start(offset)).await?;
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes).await?;
    Ok(bytes)
}

/// The last `lines` lines of `text` (a last line without its newline counts).
fn tail(text: &str, lines: u32) -> &str {
    if lines == 0 {
        return "";
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut seen = 0;
    for (idx, byte) in body.bytes().enumerate().rev() {
        if byte == b'\n' {
            seen += 1;
            if seen == lines {
                return &text[idx + 1..];
            }
        }
    }
    text
}

/// `text` in pieces of at most [`CHUNK_BYTES`], cut at character boundaries; one empty
/// piece for an empty text.
fn chunks(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > CHUNK_BYTES {
        let mut cut = CHUNK_BYTES;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, after) = rest.split_at(cut);
        pieces.push(piece);
        rest = after;
    }
    pieces.push(rest);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use tunasync_shared::names::MirrorName;

    fn request(tail: Option<u32>) -> LogRequest {
        LogRequest {
            mirror: MirrorName::new("debian").unwrap(),
            tail,
            follow: false,
            run: None,
        }
    }

    #[tokio::test]
    async fn a_follow_sends_what_is_written_until_the_run_ends() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("run.log"), "before\n").unwrap();
        std::os::unix::fs::symlink("run.log", dir.path().join("latest")).unwrap();
        let id = Uuid::new_v4();
        let following = LogRequest {
            follow: true,
            ..request(None)
        };
        let (first, from) = answer_from(id, &following, Some(dir.path()));
        assert_eq!(first.len(), 1);
        assert!(!first[0].last, "more follows");
        let from = from.unwrap();
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (sender, mut chunks) = tokio::sync::mpsc::unbounded_channel();
        let flag = running.clone();
        let task = tokio::spawn(follow(
            id,
            from,
            move || flag.load(std::sync::atomic::Ordering::SeqCst),
            CancellationToken::new(),
            move |chunk| {
                let _ = sender.send(chunk);
            },
        ));
        use std::io::Write as _;
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("run.log"))
            .unwrap();
        log.write_all("after 日本\n".as_bytes()).unwrap();
        let chunk = chunks.recv().await.unwrap();
        assert_eq!((chunk.index, chunk.text.as_str()), (1, "after 日本\n"));
        log.write_all(b"the end\n").unwrap();
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        task.await.unwrap();
        let mut rest = Vec::new();
        while let Ok(chunk) = chunks.try_recv() {
            rest.push(chunk);
        }
        let text: String = rest.iter().map(|chunk| chunk.text.as_str()).collect();
        assert_eq!(text, "the end\n", "what was written before the end is sent");
        assert!(rest.last().unwrap().last);
        assert!(
            rest.windows(2)
                .all(|pair| pair[1].index == pair[0].index + 1)
        );
    }

    #[test]
    fn the_tail_counts_lines_from_the_end() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a\nb\n", 5), "a\nb\n");
        assert_eq!(tail("a\nb\n", 0), "");
    }

    #[test]
    fn a_big_log_goes_in_numbered_chunks_cut_at_characters() {
        let dir = tempfile::tempdir().unwrap();
        let line = "日本語 mirror line\n";
        let text = line.repeat(20_000);
        std::fs::write(dir.path().join("run.log"), &text).unwrap();
        std::os::unix::fs::symlink("run.log", dir.path().join("latest")).unwrap();
        let id = Uuid::new_v4();
        let chunks = answer(id, &request(None), Some(dir.path()));
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|chunk| chunk.text.len() <= CHUNK_BYTES));
        assert!(
            chunks
                .iter()
                .enumerate()
                .all(|(idx, chunk)| chunk.index as usize == idx
                    && chunk.last == (idx + 1 == chunks.len())
                    && chunk.request == id)
        );
        let joined: String = chunks.iter().map(|chunk| chunk.text.as_str()).collect();
        assert_eq!(joined, text);
        let last = answer(id, &request(Some(2)), Some(dir.path()));
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].text, line.repeat(2));
    }

    #[test]
    fn a_50_mb_log_sends_its_last_8_mib_from_a_line_start() {
        let dir = tempfile::tempdir().unwrap();
        let line = "a line of a very long log, numbered 0000000\n";
        let n_lines = 50_000_000 / line.len();
        let mut text = String::with_capacity(n_lines * line.len());
        for idx in 0..n_lines {
            text.push_str(&format!("a line of a very long log, numbered {idx:07}\n"));
        }
        std::fs::write(dir.path().join("run.log"), &text).unwrap();
        std::os::unix::fs::symlink("run.log", dir.path().join("latest")).unwrap();
        let chunks = answer(Uuid::new_v4(), &request(None), Some(dir.path()));
        let sent: String = chunks.iter().map(|chunk| chunk.text.as_str()).collect();
        assert!(sent.len() as u64 <= MAX_BYTES);
        assert!(sent.len() as u64 > MAX_BYTES - line.len() as u64);
        assert!(
            sent.starts_with("a line of a very long log, numbered "),
            "{}",
            &sent[..60]
        );
        assert!(text.ends_with(&sent));
        assert_eq!(chunks.len(), (sent.len()).div_ceil(CHUNK_BYTES));
    }

    #[test]
    fn no_job_and_no_log_are_said() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        assert_eq!(
            answer(id, &request(None), None)[0].error,
            Some(LogError::NoSuchJob)
        );
        let none = answer(id, &request(None), Some(dir.path()));
        assert_eq!((none.len(), none[0].error), (1, Some(LogError::NoLog)));
    }

    /// `run`: that run's log, found through the log limiter's index; following a past run
    /// ends with its answer; an unknown run is said.
    #[test]
    fn a_past_runs_log_is_answered_by_its_id() {
        use crate::hooks::loglimit;
        use chrono::TimeZone;
        let dir = tempfile::tempdir().unwrap();
        let at = |minute| {
            chrono::Local
                .with_ymd_and_hms(2026, 12, 2, 8, minute, 0)
                .unwrap()
        };
        let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
        let old_log = loglimit::start_attempt(dir.path(), "debian", at(0), old).unwrap();
        std::fs::write(&old_log, "the old run failed\n").unwrap();
        loglimit::mark_failed(&old_log, old).unwrap();
        let new_log = loglimit::start_attempt(dir.path(), "debian", at(5), new).unwrap();
        std::fs::write(&new_log, "the new run\n").unwrap();

        let id = Uuid::new_v4();
        let past = LogRequest {
            run: Some(old),
            follow: true,
            ..request(None)
        };
        let (chunks, from) = answer_from(id, &past, Some(dir.path()));
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "the old run failed\n");
        assert!(
            chunks[0].last && from.is_none(),
            "a past run has nothing to follow"
        );

        let current = LogRequest {
            run: Some(new),
            follow: true,
            ..request(None)
        };
        let (chunks, from) = answer_from(id, &current, Some(dir.path()));
        assert_eq!(chunks[0].text, "the new run\n");
        assert!(
            !chunks[0].last && from.is_some(),
            "the latest run is followed"
        );

        let unknown = LogRequest {
            run: Some(Uuid::new_v4()),
            ..request(None)
        };
        assert_eq!(
            answer(id, &unknown, Some(dir.path()))[0].error,
            Some(LogError::NoSuchRun)
        );
    }
}
