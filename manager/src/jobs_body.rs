//! The `GET /jobs` body (tunasync.json), kept rendered in chunks so a change costs what it
//! touched, not what the body holds.
//!
//! Jobs are cut into chunks at *boundary keys*: a job whose key hashes to 0 modulo
//! [`CHUNK_JOBS`] starts a new chunk. The cut depends only on which jobs exist, so the same
//! state always gives the same chunks (and the same tag, across restarts too), and a new or
//! removed job moves at most one boundary. A chunk keeps its entries' JSON, each entry with
//! a comma before it, and where each entry starts: a changed job's entry is rendered alone
//! and spliced in; a job added or removed re-renders its chunk.
//!
//! The identity body is served as the list of chunks ([`Pieces`]), the first one sliced
//! past its comma. The gzip body is one buffer, joined once per change from pieces of one
//! deflate stream ([`crate::deflate_pieces`]): a header, `[`, each chunk, `]` and a trailer
//! whose CRC is combined from the chunks'. A chunk changed since it was last compressed
//! goes in as stored (uncompressed) blocks, a memory copy; [`JobsBody::compress`] (run off
//! the readers' path by the view) compresses those, and the next body is smaller. So a
//! reader after a change never waits for compression.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher as _;
use std::ops::Bound;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use axum::body::Bytes;
use tunasync_shared::compat::WebMirrorStatus;
use tunasync_shared::names::WorkerId;

use crate::deflate_pieces::{Checksum, GZIP_HEADER, Running, deflate, stored};
use crate::etag::ETag;
use crate::model::{JobKey, Model};
use crate::records::JobRecord;

/// How many jobs a chunk holds on average.
pub const CHUNK_JOBS: u64 = 128;

/// The chunks' compression level (zlib's default).
const LEVEL: u32 = 6;

/// What changed since the last render, as the view's editor records it.
#[derive(Debug, Default)]
pub struct Dirty {
    /// Everything (the first render, or a replaced model).
    pub all: bool,
    /// Jobs whose record changed.
    pub changed: BTreeSet<JobKey>,
    /// Jobs added or removed.
    pub added_or_removed: BTreeSet<JobKey>,
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

    /// How much is recorded. It only grows until a render takes it, and while it holds
    /// anything no body is served as current; so a change that leaves it the same size
    /// touched nothing `GET /jobs` shows that was not waiting to render already.
    pub fn size(&self) -> (bool, usize, usize, usize) {
        (
            self.all,
            self.changed.len(),
            self.added_or_removed.len(),
            self.workers.len(),
        )
    }
}

/// A chunk starts at its boundary key; the first chunk (`None`) holds what comes before
/// the first boundary.
type Start = Option<JobKey>;

#[derive(Default)]
struct Chunk {
    /// `None` until rendered, and after a job was added to it or removed from it.
    rendered: Option<Rendered>,
}

struct Rendered {
    /// Each entry with a comma before it (`,{…},{…}`); empty for no entries.
    json: Bytes,
    /// Where each entry (its comma) starts in `json`, in key order.
    starts: Vec<u32>,
    /// The JSON's CRC-32 and length: what the tag is made of, and the gzip body's piece.
    checksum: Checksum,
    /// `json` compressed, once [`JobsBody::compress`] got to it.
    deflated: Option<Bytes>,
    /// `json` without its first comma, for when the chunk comes first: its checksum, and
    /// the compressed bytes once compressed.
    bare: Option<(Checksum, Option<Bytes>)>,
}

impl Rendered {
    fn new(json: Vec<u8>, starts: Vec<u32>) -> Rendered {
        Rendered {
            checksum: Checksum::of(&json),
            json: Bytes::from(json),
            starts,
            deflated: None,
            bare: None,
        }
    }

    /// Where entry `idx` starts (the end for one past the last).
    fn start(&self, idx: usize) -> usize {
        self.starts
            .get(idx)
            .map_or(self.json.len(), |at| *at as usize)
    }

    /// This chunk with the entries of `changed` rendered again from `jobs` (the chunk's
    /// jobs, the same keys as when it was rendered): the entries between them are copied
    /// in runs.
    fn splice<'a>(
        &self,
        jobs: impl Iterator<Item = (&'a JobKey, &'a JobRecord)>,
        changed: &BTreeSet<&JobKey>,
        offline: &BTreeSet<WorkerId>,
    ) -> Rendered {
        let mut json = Vec::with_capacity(self.json.len() + 256);
        let mut starts = Vec::with_capacity(self.starts.len());
        // The unchanged entries from `run` on are not copied yet.
        let mut run = 0;
        let copy_run = |json: &mut Vec<u8>, starts: &mut Vec<u32>, run: usize, end: usize| {
            let (from, to) = (self.start(run), self.start(end));
            // Entries move from `from` in the old buffer to the end of the new one.
            let (old_base, new_base) = (u32::try_from(from).unwrap_or(u32::MAX), offset(json));
            for at in self.starts.get(run..end).unwrap_or_default() {
                starts.push(new_base + (at - old_base));
            }
            json.extend_from_slice(self.json.get(from..to).unwrap_or_default());
        };
        let mut next = changed.iter().peekable();
        for (idx, (key, job)) in jobs.enumerate() {
            // Both are in key order: one comparison a job.
            while next.next_if(|wanted| **wanted < key).is_some() {}
            if next.next_if(|wanted| **wanted == key).is_some() {
                copy_run(&mut json, &mut starts, run, idx);
                starts.push(offset(&json));
                write_entry(&mut json, key, job, !offline.contains(&key.1));
                run = idx + 1;
            }
        }
        copy_run(&mut json, &mut starts, run, self.starts.len());
        Rendered::new(json, starts)
    }
}

/// The rendered chunks. Owned by the view (one renderer at a time).
#[derive(Default)]
pub struct JobsBody {
    chunks: BTreeMap<Start, Chunk>,
}

/// Whether `key` starts a chunk: FNV-1a of the key, mixed, fixed so the cut survives
/// restarts.
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
    // FNV's low bits mix poorly (keys that differ in a counter left runs of thousands of
    // jobs without a boundary): finish with a 64-bit mixer, as MurmurHash3 does.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    hash.is_multiple_of(CHUNK_JOBS)
}

/// One job's entry, with its comma.
fn write_entry(json: &mut Vec<u8>, key: &JobKey, job: &JobRecord, online: bool) {
    json.push(b',');
    let status = job.to_status(&key.0, &key.1, online);
    // Serialising plain strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *json, &WebMirrorStatus::from(&status));
}

fn offset(json: &[u8]) -> u32 {
    // A chunk's JSON is far below 4 GiB (about 400 bytes a job).
    u32::try_from(json.len()).unwrap_or(u32::MAX)
}

impl JobsBody {
    /// Brings every chunk `dirty` touches up to date (call it with the model and the
    /// offline workers of one generation, under the view's lock; it compresses nothing).
    pub fn refresh(&mut self, model: &Model, offline: &BTreeSet<WorkerId>, dirty: Dirty) {
        if dirty.all || self.chunks.is_empty() {
            self.rebuild(model);
        }
        for key in &dirty.added_or_removed {
            self.restructure(model, key);
        }
        // Changed jobs, by the chunk that holds them.
        let mut splices: BTreeMap<Start, BTreeSet<&JobKey>> = BTreeMap::new();
        let mut changed: Vec<&JobKey> = dirty.changed.iter().collect();
        if !dirty.workers.is_empty() {
            changed.extend(
                model
                    .jobs
                    .keys()
                    .filter(|key| dirty.workers.contains(&key.1)),
            );
        }
        for key in changed {
            if dirty.added_or_removed.contains(key) {
                continue;
            }
            if let Some((start, chunk)) = self.chunks.range(..=Some(key.clone())).next_back()
                && chunk.rendered.is_some()
            {
                splices.entry(start.clone()).or_default().insert(key);
            }
        }
        // Only the chunks with work: a change costs what it touched.
        let mut work: BTreeSet<Start> = self
            .chunks
            .iter()
            .filter(|(_, chunk)| chunk.rendered.is_none())
            .map(|(start, _)| start.clone())
            .collect();
        work.extend(splices.keys().cloned());
        for start in work {
            let end = self
                .chunks
                .range((Bound::Excluded(start.clone()), Bound::Unbounded))
                .next()
                .and_then(|(next, _)| next.clone());
            let Some(chunk) = self.chunks.get_mut(&start) else {
                continue;
            };
            let jobs = model.jobs.range::<JobKey, _>((
                start.as_ref().map_or(Bound::Unbounded, Bound::Included),
                end.as_ref().map_or(Bound::Unbounded, Bound::Excluded),
            ));
            match (&chunk.rendered, splices.get(&start)) {
                (None, _) => {
                    let mut json = Vec::new();
                    let mut starts = Vec::new();
                    for (key, job) in jobs {
                        starts.push(offset(&json));
                        write_entry(&mut json, key, job, !offline.contains(&key.1));
                    }
                    chunk.rendered = Some(Rendered::new(json, starts));
                }
                (Some(old), Some(keys)) => {
                    chunk.rendered = Some(old.splice(jobs, keys, offline));
                }
                (Some(_), None) => {}
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

    /// A job added or removed: the chunk holding it renders again; a boundary key also
    /// changes where its chunk and the one before it end.
    fn restructure(&mut self, model: &Model, key: &JobKey) {
        if is_boundary(key) {
            let start = Some(key.clone());
            if model.jobs.contains_key(key) {
                self.chunks.entry(start.clone()).or_default().rendered = None;
            } else {
                self.chunks.remove(&start);
            }
            if let Some((_, before)) = self.chunks.range_mut(..start).next_back() {
                before.rendered = None;
            }
        }
        if let Some((_, holder)) = self.chunks.range_mut(..=Some(key.clone())).next_back() {
            holder.rendered = None;
        }
    }

    /// The rendered chunks that hold entries, in order.
    fn rendered(&self) -> impl Iterator<Item = &Rendered> {
        self.chunks
            .values()
            .filter_map(|chunk| chunk.rendered.as_ref())
            .filter(|rendered| !rendered.json.is_empty())
    }

    /// The chunks that go out uncompressed, with whether each is the first one (which
    /// goes out bare, without its comma).
    fn not_compressed(&self) -> impl Iterator<Item = (&Rendered, bool)> {
        self.rendered().enumerate().filter_map(|(idx, rendered)| {
            let first = idx == 0;
            let compressed = if first {
                matches!(rendered.bare, Some((_, Some(_))))
            } else {
                rendered.deflated.is_some()
            };
            (!compressed).then_some((rendered, first))
        })
    }

    /// How much JSON goes out uncompressed.
    pub fn uncompressed_bytes(&self) -> usize {
        self.not_compressed()
            .map(|(rendered, _)| rendered.json.len())
            .sum()
    }

    /// Whether some chunk goes out uncompressed.
    pub fn needs_compression(&self) -> bool {
        self.uncompressed_bytes() > 0
    }

    /// What goes out uncompressed, to compress off the lock: each chunk (and the first one bare)
    /// not compressed yet.
    pub fn uncompressed(&self) -> Vec<Uncompressed> {
        self.not_compressed()
            .map(|(rendered, bare)| Uncompressed {
                source: rendered.json.clone(),
                bare,
            })
            .collect()
    }

    /// Takes compressed chunks back, where the chunk is still what was compressed: the
    /// same buffer, which the work item kept alive, so no other chunk can have its address.
    pub fn install(&mut self, compressed: Vec<(Uncompressed, Bytes)>) {
        let by_source: BTreeMap<(usize, usize, bool), Bytes> = compressed
            .into_iter()
            .map(|(work, bytes)| (work.identity(), bytes))
            .collect();
        for rendered in self
            .chunks
            .values_mut()
            .filter_map(|chunk| chunk.rendered.as_mut())
        {
            if let Some(bytes) = by_source.get(&identity(&rendered.json, false)) {
                rendered.deflated = Some(bytes.clone());
            }
            if let Some(bytes) = by_source.get(&identity(&rendered.json, true)) {
                let checksum = Checksum::of(rendered.json.get(1..).unwrap_or_default());
                rendered.bare = Some((checksum, Some(bytes.clone())));
            }
        }
    }

    /// Compresses what goes out uncompressed, here and now (the view does it off the
    /// readers' path with [`JobsBody::uncompressed`] and [`JobsBody::install`]).
    pub fn compress(&mut self) {
        let done = self
            .uncompressed()
            .into_iter()
            .map(|work| {
                let bytes = work.compress();
                (work, bytes)
            })
            .collect();
        self.install(done);
    }

    /// The tag: a digest of the chunks' CRCs and lengths (a function of what is shown, as
    /// the cut is; a change keeps it only if it keeps a chunk's length and CRC-32, about
    /// one change in four billion).
    pub fn tag(&self) -> ETag {
        let mut hasher = std::hash::DefaultHasher::new();
        for rendered in self.rendered() {
            hasher.write_u64(rendered.checksum.fingerprint());
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

    /// The gzip-encoded body as shared pieces, with what is compressed so far (the rest as
    /// stored blocks that slice the chunks' JSON): nothing is copied, so a render after a
    /// change costs the chunks it touched plus one checksum combination per chunk.
    pub fn gzip(&self) -> Pieces {
        let mut checksum = Running::default();
        checksum.push(&Checksum::of(b"["));
        let mut pieces = Vec::with_capacity(self.chunks.len() + 4);
        pieces.push(Bytes::from_static(&GZIP_HEADER));
        pieces.push(OPEN.clone());
        for (idx, rendered) in self.rendered().enumerate() {
            if idx == 0 {
                match &rendered.bare {
                    Some((bare, Some(bytes))) => {
                        pieces.push(bytes.clone());
                        checksum.push(bare);
                    }
                    _ => {
                        let json = rendered.json.slice(1..);
                        checksum.push(&Checksum::of(&json));
                        stored(&json, &mut pieces);
                    }
                }
            } else {
                match &rendered.deflated {
                    Some(bytes) => pieces.push(bytes.clone()),
                    None => stored(&rendered.json, &mut pieces),
                }
                checksum.push(&rendered.checksum);
            }
        }
        pieces.push(CLOSE.clone());
        checksum.push(&Checksum::of(b"]"));
        pieces.push(Bytes::copy_from_slice(&checksum.trailer()));
        Pieces::new(pieces)
    }
}

/// A chunk's JSON to compress, and which chunk it is.
pub struct Uncompressed {
    /// The chunk's JSON as rendered.
    source: Bytes,
    /// The first chunk: compressed without its comma.
    bare: bool,
}

impl Uncompressed {
    pub fn compress(&self) -> Bytes {
        let json = if self.bare {
            self.source.get(1..).unwrap_or_default()
        } else {
            &self.source
        };
        deflate(json, LEVEL, false)
    }

    fn identity(&self) -> (usize, usize, bool) {
        identity(&self.source, self.bare)
    }
}

/// A rendered chunk's buffer (its address and length) and which form of it: what a
/// compressed piece is matched back to.
fn identity(json: &Bytes, bare: bool) -> (usize, usize, bool) {
    (json.as_ptr() as usize, json.len(), bare)
}

static OPEN: LazyLock<Bytes> = LazyLock::new(|| deflate(b"[", LEVEL, false));
static CLOSE: LazyLock<Bytes> = LazyLock::new(|| deflate(b"]", LEVEL, true));

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

    /// The same body as one piece.
    pub fn joined(&self) -> Pieces {
        Pieces::new(vec![Bytes::from(self.to_vec())])
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

/// The size of frame small pieces are joined into.
const FRAME: usize = 32 * 1024;

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
        let pieces = &this.pieces.pieces;
        while pieces.get(this.next).is_some_and(Bytes::is_empty) {
            this.next += 1;
        }
        // A large piece goes out as it is; a run of small ones (the gzip body's compressed
        // chunks, a few hundred bytes each) is joined into one frame, so the connection
        // does not write (and encrypt) each one separately.
        let Some(first) = pieces.get(this.next) else {
            return Poll::Ready(None);
        };
        let frame = if first.len() >= FRAME {
            this.next += 1;
            first.clone()
        } else {
            let mut joined = Vec::with_capacity(FRAME);
            while let Some(piece) = pieces.get(this.next)
                && (joined.is_empty() || joined.len() + piece.len() <= FRAME)
                && piece.len() < FRAME
            {
                joined.extend_from_slice(piece);
                this.next += 1;
            }
            Bytes::from(joined)
        };
        this.left -= frame.len() as u64;
        Poll::Ready(Some(Ok(http_body::Frame::data(frame))))
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

    /// Both bodies say what the model says, before and after compression.
    fn check(body: &mut JobsBody, model: &Model, offline: &BTreeSet<WorkerId>) {
        let expected = whole(model, offline);
        assert_eq!(
            String::from_utf8(body.json().to_vec()).unwrap(),
            String::from_utf8(expected.clone()).unwrap()
        );
        assert_eq!(body.json().len(), expected.len() as u64);
        let uncompressed = body.gzip().to_vec();
        assert_eq!(gunzip(&uncompressed), expected, "stored blocks");
        body.compress();
        assert!(!body.needs_compression());
        let compressed = body.gzip().to_vec();
        assert_eq!(gunzip(&compressed), expected, "compressed");
        if expected.len() > 10_000 {
            assert!(compressed.len() * 4 < expected.len(), "it compresses");
        }
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

            // Change jobs (spliced), then add and remove some (boundary keys among them).
            let mut dirty = Dirty::default();
            for idx in (0..n_jobs).step_by(37) {
                model.jobs.get_mut(&key(idx)).unwrap().status = SyncStatus::Syncing;
                dirty.changed.insert(key(idx));
            }
            body.refresh(&model, &offline, dirty);
            check(&mut body, &model, &offline);
            let mut dirty = Dirty::default();
            for idx in (0..n_jobs).step_by(11) {
                model.jobs.remove(&key(idx));
                dirty.added_or_removed.insert(key(idx));
            }
            for idx in n_jobs..n_jobs + 300 {
                model.jobs.insert(key(idx), JobRecord::default());
                dirty.added_or_removed.insert(key(idx));
            }
            // A change and a structural change in one refresh.
            if let Some(job) = model.jobs.get_mut(&key(1)) {
                job.status = SyncStatus::Failed;
                dirty.changed.insert(key(1));
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
    fn small_pieces_go_out_joined_and_large_ones_as_they_are() {
        use http_body::Body as _;
        let sizes = [0, 300, 500, 0, 40_000, 200, 20_000, 20_000, 0, 10];
        let pieces: Vec<Bytes> = sizes
            .iter()
            .enumerate()
            .map(|(idx, size)| Bytes::from(vec![b'a' + idx as u8; *size]))
            .collect();
        let whole: Vec<u8> = pieces.iter().flat_map(|piece| piece.to_vec()).collect();
        let mut body = PiecesBody {
            left: whole.len() as u64,
            pieces: Pieces::new(pieces),
            next: 0,
        };
        let mut context = Context::from_waker(std::task::Waker::noop());
        let mut frames = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut context) {
            frames.push(frame.into_data().unwrap());
        }
        assert!(body.is_end_stream());
        let lengths: Vec<usize> = frames.iter().map(Bytes::len).collect();
        assert_eq!(lengths, [800, 40_000, 20_200, 20_010]);
        assert_eq!(frames.concat(), whole);
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
    fn a_change_leaves_the_other_chunks_compressed() {
        let mut model = model(3000);
        let offline = BTreeSet::new();
        let mut body = JobsBody::default();
        body.refresh(&model, &offline, Dirty::everything());
        body.compress();
        let compressed = |body: &JobsBody| -> Vec<*const u8> {
            body.rendered()
                .filter_map(|rendered| rendered.deflated.as_ref().map(|bytes| bytes.as_ptr()))
                .collect()
        };
        let before = compressed(&body);
        model.jobs.get_mut(&key(1234)).unwrap().status = SyncStatus::Failed;
        let mut dirty = Dirty::default();
        dirty.changed.insert(key(1234));
        body.refresh(&model, &offline, dirty);
        assert!(
            body.needs_compression(),
            "the changed chunk goes out stored"
        );
        assert_eq!(body.uncompressed().len(), 1);
        let after = compressed(&body);
        assert_eq!(after.len() + 1, before.len(), "one chunk to compress again");
        assert!(after.iter().all(|ptr| before.contains(ptr)));
        check(&mut body, &model, &offline);
    }
}
