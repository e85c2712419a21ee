//! Answers to the manager's `log` command: a job's latest log (`<log_dir>/latest`), or its
//! last lines, sent back as `log-chunk` events through the outbox.
//!
//! Bounded: at most [`MAX_BYTES`] from the end of the log, in chunks of [`CHUNK_BYTES`]
//! (cut at character boundaries), at most [`MAX_TAIL`] lines.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use tunasync_shared::wire::command::LogRequest;
use tunasync_shared::wire::event::{LogChunk, LogError};
use uuid::Uuid;

/// The most of a log sent in one answer (its end).
pub const MAX_BYTES: u64 = 8 << 20;
/// The most text in one chunk.
pub const CHUNK_BYTES: usize = 64 << 10;
/// The most lines a tail asks for.
pub const MAX_TAIL: u32 = 100_000;

/// The chunks answering `request` (id `request_id`) from the job's `log_dir`; `None` for
/// `log_dir` when the worker has no such job.
pub fn answer(request_id: Uuid, request: &LogRequest, log_dir: Option<&Path>) -> Vec<LogChunk> {
    let failed = |error| {
        vec![LogChunk {
            request: request_id,
            index: 0,
            text: String::new(),
            last: true,
            error: Some(error),
        }]
    };
    let Some(log_dir) = log_dir else {
        return failed(LogError::NoSuchJob);
    };
    let Ok(text) = read_end(&log_dir.join("latest")) else {
        return failed(LogError::NoLog);
    };
    let text = match request.tail {
        Some(lines) => tail(&text, lines.min(MAX_TAIL)),
        None => &text,
    };
    let pieces = chunks(text);
    let n_pieces = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(index, piece)| LogChunk {
            request: request_id,
            index: u32::try_from(index).unwrap_or(u32::MAX),
            text: piece.to_owned(),
            last: index + 1 == n_pieces,
            error: None,
        })
        .collect()
}

/// The log's last [`MAX_BYTES`], as text (invalid UTF-8 replaced).
fn read_end(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)))?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
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
        }
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
}
