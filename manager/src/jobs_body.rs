//! The `GET /jobs` body (tunasync.json), kept rendered in chunks so a change re-renders only
//! the chunks it touched.
//!
//! Jobs are cut into chunks at *boundary keys*: a job whose key hashes to 0 modulo
//! [`CHUNK_JOBS`] starts a new chunk. The cut depends only on which jobs exist, so the same
//! state always gives the same chunks (and the same tag, across restarts too), and a new or
//! removed job moves at most one boundary. Each chunk keeps its entries' JSON, each entry
//! with a comma before it, and, once a gzip reader asked, that JSON compressed as raw
//! deflate ending on a byte boundary (a sync flush, not final): deflate pieces from fresh
//! compressors can be concatenated, so the gzip body is a header, `[`, the chunks (the
//! first one compressed again without its comma), a final `]`, and a trailer whose CRC is
//! combined from the pieces' CRCs. The identity body is served as the list of chunks
//! ([`Pieces`]), the first one sliced past its comma; the gzip one is joined into one
//! buffer once per change (it is a tenth of the size), so each answer is one write.
//!
//! Costs: a change to one job re-renders and recompresses one chunk (about
//! [`CHUNK_JOBS`] entries); an offline flip re-renders the chunks holding that worker's
//! jobs; the first render does every chunk.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher as _;
use std::ops::Bound;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use axum::body::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use tunasync_shared::compat::WebMirrorStatus;
use tunasync_shared::names::WorkerId;

use crate::etag::ETag;
use crate::model::{JobKey, Model};

/// How many jobs a chunk holds on average.
pub const CHUNK_JOBS: u64 = 128;

/// What changed since the last render, as the view's editor records it.
#[derive(Debug, Default)]
pub struct Dirty {
    /// Everything (the first render, or a replaced model).
    pub all: bool,
    pub jobs: BTreeSet<JobKey>,
    /// Workers that went offline or came back: each of their jobs is shown differently.
    pub workers: BTreeSet<WorkerId>,
}

impl Dirty {
    pub fn everything() -> Dirty {
        Dirty {
            all: true,
            ..Dirty::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.jobs.is_empty() && self.workers.is_empty()
    }
}

/// A chunk starts at its boundary key; the first chunk (`None`) holds what comes before
/// the first boundary.
type Start = Option<JobKey>;

#[derive(Default)]
struct Chunk {
    /// Its entries (empty for no entries); `None` until rendered.
    json: Option<Rendered>,
}

struct Rendered {
    /// Each entry with a comma before it (`,{…},{…}`), so the identity body slices the
    /// first chunk's comma off instead of adding pieces between chunks.
    json: Bytes,
    digest: u64,
    /// `json` compressed, on the first gzip read after rendering.
    deflate: Option<(Bytes, Crc)>,
    /// `json` without its first comma, compressed, while the chunk is the first one.
    bare: Option<(Bytes, Crc)>,
}

/// The rendered chunks. Owned by the view (one renderer at a time).
#[derive(Default)]
pub struct JobsBody {
    chunks: BTreeMap<Start, Chunk>,
}

/// Whether `key` starts a chunk: FNV-1a of the key, fixed so the cut survives restarts.
fn is_boundary(key: &JobKey) -> bool {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = key
        .0
        .as_str()
        .bytes()
        .chain(std::iter::once(0))
        .chain(key.1.as_str().bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash.is_multiple_of(CHUNK_JOBS)
}

impl JobsBody {
    /// Re-renders the JSON of every chunk `dirty` touches (call it with the model and the
    /// offline workers of one generation, under the view's lock; it compresses nothing).
    pub fn refresh(&mut self, model: &Model, offline: &BTreeSet<WorkerId>, dirty: Dirty) {
        if dirty.all || self.chunks.is_empty() {
            self.rebuild(model);
        } else {
            for key in &dirty.jobs {
                self.touch(model, key);
            }
            if !dirty.workers.is_empty() {
                for key in model.jobs.keys() {
                    if dirty.workers.contains(&key.1) {
                        self.touch(model, key);
                    }
                }
            }
        }
        let starts: Vec<Start> = self
            .chunks
            .iter()
            .filter(|(_, chunk)| chunk.json.is_none())
            .map(|(start, _)| start.clone())
            .collect();
        for start in starts {
            let end = self
                .chunks
                .range((Bound::Excluded(start.clone()), Bound::Unbounded))
                .next()
                .map(|(next, _)| next.clone());
            let rendered = render(model, offline, start.as_ref(), end.flatten().as_ref());
            if let Some(chunk) = self.chunks.get_mut(&start) {
                chunk.json = Some(rendered);
            }
        }
    }

    /// Cuts every job anew; every chunk is left to render.
    fn rebuild(&mut self, model: &Model) {
        self.chunks.clear();
        self.chunks.insert(None, Chunk::default());
        for key in model.jobs.keys().filter(|key| is_boundary(key)) {
            self.chunks.insert(Some(key.clone()), Chunk::default());
        }
    }

    /// Marks the chunk holding `key` to render; a boundary key added or removed also
    /// changes where its chunk and the one before it end.
    fn touch(&mut self, model: &Model, key: &JobKey) {
        if is_boundary(key) {
            let start = Some(key.clone());
            if model.jobs.contains_key(key) {
                self.chunks.entry(start.clone()).or_default().json = None;
            } else {
                self.chunks.remove(&start);
            }
            if let Some((_, before)) = self.chunks.range_mut(..start).next_back() {
                before.json = None;
            }
        }
        if let Some((_, holder)) = self.chunks.range_mut(..=Some(key.clone())).next_back() {
            holder.json = None;
        }
    }

    /// Compresses every rendered chunk not compressed yet (off the view's lock).
    pub fn compress(&mut self) {
        for rendered in self
            .chunks
            .values_mut()
            .filter_map(|chunk| chunk.json.as_mut())
        {
            if rendered.deflate.is_none() && !rendered.json.is_empty() {
                let mut crc = Crc::new();
                crc.update(&rendered.json);
                rendered.deflate = Some((deflate(&rendered.json, false), crc));
            }
        }
    }

    fn rendered(&self) -> impl Iterator<Item = &Rendered> {
        self.chunks
            .values()
            .filter_map(|chunk| chunk.json.as_ref())
            .filter(|rendered| !rendered.json.is_empty())
    }

    /// The tag: a digest of the chunks' digests (a function of what is shown, as the cut
    /// is).
    pub fn tag(&self) -> ETag {
        let mut hasher = std::hash::DefaultHasher::new();
        for rendered in self.rendered() {
            hasher.write_u64(rendered.digest);
        }
        ETag::from_digest(hasher.finish())
    }

    /// The identity-encoded body: shared pieces, one per chunk.
    pub fn json(&self) -> Pieces {
        let mut pieces = vec![Bytes::from_static(b"[")];
        for (idx, rendered) in self.rendered().enumerate() {
            if idx == 0 {
                pieces.push(rendered.json.slice(1..));
            } else {
                pieces.push(rendered.json.clone());
            }
        }
        pieces.push(Bytes::from_static(b"]"));
        Pieces::new(pieces)
    }

    /// The gzip-encoded body, in one buffer (a few MB at 100,000 jobs: joined once per
    /// change, so each answer is one write). Compresses what is not compressed yet.
    pub fn gzip(&mut self) -> Pieces {
        self.compress();
        let mut parts: Vec<(Bytes, &Crc)> = vec![(OPEN.0.clone(), &OPEN.1)];
        let mut first = true;
        for chunk in self.chunks.values_mut() {
            let Some(rendered) = chunk
                .json
                .as_mut()
                .filter(|rendered| !rendered.json.is_empty())
            else {
                continue;
            };
            if first {
                first = false;
                let json = &rendered.json;
                let (deflate, crc) = &*rendered
                    .bare
                    .get_or_insert_with(|| piece(&json[1..], false));
                parts.push((deflate.clone(), crc));
            } else if let Some((deflate, crc)) = &rendered.deflate {
                parts.push((deflate.clone(), crc));
            }
        }
        parts.push((CLOSE.0.clone(), &CLOSE.1));
        let mut crc = Crc::new();
        let size: usize = parts.iter().map(|(bytes, _)| bytes.len()).sum();
        let mut joined = Vec::with_capacity(GZIP_HEADER.len() + size + 8);
        joined.extend_from_slice(&GZIP_HEADER);
        for (bytes, part_crc) in &parts {
            joined.extend_from_slice(bytes);
            crc.combine(part_crc);
        }
        joined.extend_from_slice(&crc.sum().to_le_bytes());
        joined.extend_from_slice(&crc.amount().to_le_bytes());
        Pieces::new(vec![Bytes::from(joined)])
    }
}

fn render(
    model: &Model,
    offline: &BTreeSet<WorkerId>,
    start: Option<&JobKey>,
    end: Option<&JobKey>,
) -> Rendered {
    let from = start.map_or(Bound::Unbounded, Bound::Included);
    let to = end.map_or(Bound::Unbounded, Bound::Excluded);
    let mut json = Vec::new();
    for ((mirror, worker), job) in model.jobs.range::<JobKey, _>((from, to)) {
        json.push(b',');
        let status = job.to_status(mirror, worker, !offline.contains(worker));
        // Serialising plain strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut json, &WebMirrorStatus::from(&status));
    }
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(&json);
    Rendered {
        digest: hasher.finish(),
        json: Bytes::from(json),
        deflate: None,
        bare: None,
    }
}

/// gzip's member header: deflate, no name, no time, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

static OPEN: LazyLock<(Bytes, Crc)> = LazyLock::new(|| piece(b"[", false));
static CLOSE: LazyLock<(Bytes, Crc)> = LazyLock::new(|| piece(b"]", true));

fn piece(data: &[u8], last: bool) -> (Bytes, Crc) {
    let mut crc = Crc::new();
    crc.update(data);
    (deflate(data, last), crc)
}

/// The chunks' compression level: the fastest. A change recompresses the chunks it touched
/// on the first read after it, so this is on a reader's path; at 100,000 jobs level 6 made
/// that read wait about 8 ms under 100 status events a second (measured in the `scale`
/// bench row), for a body about 30% smaller.
const LEVEL: u32 = 6;

/// `data` as raw deflate from a fresh compressor, ending on a byte boundary (sync flush),
/// or with the final block when `last`.
fn deflate(data: &[u8], last: bool) -> Bytes {
    let mut compressor = Compress::new(Compression::new(LEVEL), false);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 6 + 64);
    loop {
        let consumed = usize::try_from(compressor.total_in()).unwrap_or(data.len());
        let input = data.get(consumed..).unwrap_or_default();
        // Compressing into a Vec with room cannot fail; on the impossible error, stop with
        // what is there rather than loop.
        let Ok(status) = compressor.compress_vec(input, &mut out, flush) else {
            break;
        };
        let all_in = usize::try_from(compressor.total_in()).unwrap_or(0) >= data.len();
        let done = match status {
            Status::StreamEnd => true,
            Status::Ok | Status::BufError => !last && all_in && out.len() < out.capacity(),
        };
        if done {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    Bytes::from(out)
}

/// A body served as the list of pieces it was kept in, with its exact length.
#[derive(Clone)]
pub struct Pieces {
    pieces: Arc<[Bytes]>,
    len: u64,
}

impl Pieces {
    fn new(pieces: Vec<Bytes>) -> Pieces {
        let len = pieces.iter().map(|piece| piece.len() as u64).sum();
        Pieces {
            pieces: pieces.into(),
            len,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether both are the same pieces (not a copy).
    pub fn is_same(&self, other: &Pieces) -> bool {
        Arc::ptr_eq(&self.pieces, &other.pieces)
    }

    /// The body in one buffer (for tests and small readers; the API serves the pieces).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut joined = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        for piece in self.pieces.iter() {
            joined.extend_from_slice(piece);
        }
        joined
    }

    /// The pieces as an HTTP body.
    pub fn into_body(self) -> axum::body::Body {
        axum::body::Body::new(PiecesBody {
            left: self.len,
            pieces: self,
            next: 0,
        })
    }
}

struct PiecesBody {
    pieces: Pieces,
    next: usize,
    left: u64,
}

impl http_body::Body for PiecesBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        while let Some(piece) = this.pieces.pieces.get(this.next) {
            this.next += 1;
            if !piece.is_empty() {
                this.left -= piece.len() as u64;
                return Poll::Ready(Some(Ok(http_body::Frame::data(piece.clone()))));
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::JobRecord;
    use std::io::Read as _;
    use tunasync_shared::names::MirrorName;
    use tunasync_shared::status::SyncStatus;

    fn key(idx: usize) -> JobKey {
        (
            MirrorName::new(format!("mirror-{idx:05}")).unwrap(),
            WorkerId::new(format!("w{}", idx % 7)).unwrap(),
        )
    }

    fn model(n_jobs: usize) -> Model {
        let mut model = Model::default();
        for idx in 0..n_jobs {
            model.jobs.insert(key(idx), JobRecord::default());
        }
        model
    }

    /// What tunasync.json is, rendered in one go.
    fn whole(model: &Model, offline: &BTreeSet<WorkerId>) -> Vec<u8> {
        let entries: Vec<WebMirrorStatus> = model
            .jobs
            .iter()
            .map(|((mirror, worker), job)| {
                WebMirrorStatus::from(&job.to_status(mirror, worker, !offline.contains(worker)))
            })
            .collect();
        serde_json::to_vec(&entries).unwrap()
    }

    fn gunzip(body: &[u8]) -> Vec<u8> {
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut decoded)
            .unwrap();
        decoded
    }

    fn check(body: &mut JobsBody, model: &Model, offline: &BTreeSet<WorkerId>) {
        let expected = whole(model, offline);
        assert_eq!(
            String::from_utf8(body.json().to_vec()).unwrap(),
            String::from_utf8(expected.clone()).unwrap()
        );
        assert_eq!(body.json().len(), expected.len() as u64);
        assert_eq!(gunzip(&body.gzip().to_vec()), expected);
    }

    #[test]
    fn chunks_changed_one_by_one_give_the_body_rendered_whole() {
        let offline = BTreeSet::new();
        for n_jobs in [0, 1, 3, 600, 2000] {
            let mut model = model(n_jobs);
            let mut body = JobsBody::default();
            body.refresh(&model, &offline, Dirty::everything());
            check(&mut body, &model, &offline);
            if n_jobs > 100 {
                assert!(
                    body.chunks.len() > 1,
                    "{n_jobs} jobs in more than one chunk"
                );
            }
            let fresh_tag = body.tag();

            // Change, add and remove jobs (boundary keys among them), re-rendering only
            // what each touched.
            let mut dirty = Dirty::default();
            for idx in (0..n_jobs).step_by(37) {
                model.jobs.get_mut(&key(idx)).unwrap().status = SyncStatus::Syncing;
                dirty.jobs.insert(key(idx));
            }
            for idx in (0..n_jobs).step_by(11) {
                model.jobs.remove(&key(idx));
                dirty.jobs.insert(key(idx));
            }
            for idx in n_jobs..n_jobs + 300 {
                model.jobs.insert(key(idx), JobRecord::default());
                dirty.jobs.insert(key(idx));
            }
            body.refresh(&model, &offline, dirty);
            check(&mut body, &model, &offline);

            // The same state rendered from scratch has the same chunks and tag.
            let mut again = JobsBody::default();
            again.refresh(&model, &offline, Dirty::everything());
            assert_eq!(again.tag(), body.tag());
            assert_eq!(again.chunks.len(), body.chunks.len());
            if n_jobs > 0 {
                assert_ne!(body.tag(), fresh_tag);
            }
        }
    }

    #[test]
    fn an_offline_worker_shows_its_running_jobs_failed() {
        let mut model = model(1500);
        for job in model.jobs.values_mut() {
            job.status = SyncStatus::Syncing;
        }
        let mut offline = BTreeSet::new();
        let mut body = JobsBody::default();
        body.refresh(&model, &offline, Dirty::everything());
        body.compress();
        let w3 = WorkerId::new("w3").unwrap();
        offline.insert(w3.clone());
        let mut dirty = Dirty::default();
        dirty.workers.insert(w3);
        body.refresh(&model, &offline, dirty);
        check(&mut body, &model, &offline);
        let entries: Vec<serde_json::Value> =
            serde_json::from_slice(&body.json().to_vec()).unwrap();
        let failed = entries
            .iter()
            .filter(|entry| entry["status"] == "failed")
            .count();
        let of_w3 = (0..1500).filter(|idx| idx % 7 == 3).count();
        assert_eq!(failed, of_w3, "w3's jobs, and only those");
    }

    #[test]
    fn an_unchanged_chunk_keeps_its_compressed_bytes() {
        let mut model = model(3000);
        let offline = BTreeSet::new();
        let mut body = JobsBody::default();
        body.refresh(&model, &offline, Dirty::everything());
        body.compress();
        let before: Vec<*const u8> = body
            .rendered()
            .filter_map(|rendered| rendered.deflate.as_ref().map(|(bytes, _)| bytes.as_ptr()))
            .collect();
        model.jobs.get_mut(&key(1234)).unwrap().status = SyncStatus::Failed;
        let mut dirty = Dirty::default();
        dirty.jobs.insert(key(1234));
        body.refresh(&model, &offline, dirty);
        body.compress();
        let after: Vec<*const u8> = body
            .rendered()
            .filter_map(|rendered| rendered.deflate.as_ref().map(|(bytes, _)| bytes.as_ptr()))
            .collect();
        assert_eq!(before.len(), after.len());
        let recompressed = before
            .iter()
            .zip(&after)
            .filter(|(old, new)| old != new)
            .count();
        assert_eq!(recompressed, 1, "one chunk compressed again");
        check(&mut body, &model, &offline);
    }
}
