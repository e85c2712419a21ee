//! `GET /jobs` as the view serves it: rendered ahead of its readers.
//!
//! After a change that touches `GET /jobs`, a renderer thread brings the chunks
//! ([`crate::jobs_body`]) up to date, at most once per [`RENDER_EVERY`], and installs the
//! new body; a reader takes the installed body and does not wait for a render. So under a
//! steady stream of events a reader can get a body one render behind the store (tens of
//! milliseconds), but never
//! - behind a change made through the API (the state actor shows it with
//!   [`Freshness::Immediate`]),
//! - behind what a reader saw through another route (the view's other reads note it, see
//!   [`View::note_seen`]),
//! - more than [`STALE_LIMIT`] behind.
//!
//! In those cases, and before anyone read `GET /jobs` for [`WATCHED_FOR`] (nothing renders
//! ahead then), the reader renders what changed itself. A body only ever gives way to a
//! newer one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::etag::ETag;
use crate::jobs_body::{JobsBody, Pieces};

use super::{View, ViewState, lock};

/// The renderer renders at most this often.
pub const RENDER_EVERY: Duration = Duration::from_millis(20);
/// A body behind the store for longer than this is not served: the reader renders.
pub const STALE_LIMIT: Duration = Duration::from_millis(250);
/// The renderer renders ahead while someone read `GET /jobs` this recently.
pub const WATCHED_FOR: Duration = Duration::from_secs(120);
/// Above this much JSON in chunks not compressed yet, a gzip read compresses them before it
/// answers; below, they go out as stored blocks and are compressed on another thread.
const COMPRESS_NOW: usize = 1 << 20;

/// How soon readers must see a change to the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The next `GET /jobs` shows it (a change made through the API: read your writes).
    Immediate,
    /// `GET /jobs` shows it once the renderer got to it (events from workers).
    Eventual,
}

/// The `GET /jobs` chunks and the jobs generation they show.
#[derive(Default)]
pub(super) struct Rendering {
    body: JobsBody,
    generation: u64,
}

/// A `GET /jobs` body as served: the identity encoding, the gzip one once asked for, the
/// tag both share, and the jobs generation it shows.
#[derive(Clone)]
pub(super) struct ServedJobs {
    json: Pieces,
    gzip: Option<Pieces>,
    tag: ETag,
    generation: u64,
}

/// What rendering ahead needs besides the chunks: whether the renderer runs, who reads,
/// and whether a reader must get the current body.
pub(super) struct Ahead {
    wake: Arc<Wake>,
    started: AtomicBool,
    epoch: Instant,
    /// When `GET /jobs` was last read, in milliseconds since `epoch` (0: never).
    last_read: AtomicU64,
    /// A change a reader must see (made through the API, or seen through another route)
    /// is not in the installed body yet.
    strict: AtomicBool,
    /// Someone asked for gzip: the renderer renders it too.
    gzip_wanted: AtomicBool,
    /// Whether the compressing thread runs (at most one does).
    compressing: AtomicBool,
}

impl Default for Ahead {
    fn default() -> Ahead {
        Ahead {
            wake: Arc::new(Wake::default()),
            started: AtomicBool::new(false),
            epoch: Instant::now(),
            last_read: AtomicU64::new(0),
            strict: AtomicBool::new(false),
            gzip_wanted: AtomicBool::new(false),
            compressing: AtomicBool::new(false),
        }
    }
}

impl Ahead {
    fn note_read(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_read.store(now.max(1), Ordering::Relaxed);
    }

    fn watched(&self) -> bool {
        let last = self.last_read.load(Ordering::Relaxed);
        last != 0
            && self.started.load(Ordering::Acquire)
            && Duration::from_millis(last) + WATCHED_FOR >= self.epoch.elapsed()
    }

    /// The next reader gets the current body (rendering it if need be).
    pub(super) fn require_current(&self) {
        self.strict.store(true, Ordering::Release);
    }

    /// Wakes the renderer, if it runs and someone reads.
    pub(super) fn changed(&self) {
        if self.watched() {
            self.wake.raise();
        }
    }

    /// The view is gone: the renderer stops.
    pub(super) fn close(&self) {
        self.wake.close();
    }
}

/// The renderer's doorbell.
#[derive(Default)]
struct Wake {
    state: Mutex<WakeState>,
    bell: Condvar,
}

#[derive(Default)]
struct WakeState {
    pending: bool,
    closed: bool,
}

impl Wake {
    fn raise(&self) {
        lock(&self.state).pending = true;
        self.bell.notify_one();
    }

    fn close(&self) {
        lock(&self.state).closed = true;
        self.bell.notify_one();
    }

    /// Waits for a ring; false once closed.
    fn wait(&self) -> bool {
        let mut state = lock(&self.state);
        while !state.pending && !state.closed {
            state = self
                .bell
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.pending = false;
        !state.closed
    }
}

/// Renders whenever rung, at most once per [`RENDER_EVERY`], until the view is gone.
fn render_ahead(view: Weak<View>, wake: Arc<Wake>) {
    let mut last: Option<Instant> = None;
    while wake.wait() {
        if let Some(last) = last {
            std::thread::sleep(RENDER_EVERY.saturating_sub(last.elapsed()));
        }
        let Some(view) = view.upgrade() else {
            return;
        };
        last = Some(Instant::now());
        let gzip = view.ahead.gzip_wanted.load(Ordering::Relaxed);
        view.render(gzip);
    }
}

impl ViewState {
    /// The installed body if it is current (with gzip when asked for).
    fn current(&self, gzip: bool) -> Option<(Pieces, ETag)> {
        let served = self.jobs.as_ref()?;
        if served.generation != self.jobs_generation {
            return None;
        }
        served.pick(gzip)
    }
}

impl ServedJobs {
    fn pick(&self, gzip: bool) -> Option<(Pieces, ETag)> {
        let body = if gzip {
            self.gzip.clone()?
        } else {
            self.json.clone()
        };
        Some((body, self.tag))
    }
}

impl View {
    /// The `GET /jobs` body and its tag if one may be served without rendering
    /// (gzip-compressed when `gzip`): the current one, or one the renderer is replacing.
    pub fn cached_jobs(&self, gzip: bool) -> Option<(Pieces, ETag)> {
        self.ahead.note_read();
        let state = self.read();
        let served = state.jobs.as_ref()?;
        if served.generation != state.jobs_generation {
            let behind = state
                .stale_since
                .is_none_or(|since| since.elapsed() > STALE_LIMIT);
            if behind
                || self.ahead.strict.load(Ordering::Acquire)
                || !self.ahead.started.load(Ordering::Acquire)
            {
                return None;
            }
            // The renderer may have skipped the change while nobody read.
            self.ahead.wake.raise();
        }
        served.pick(gzip)
    }

    /// The tag of the `GET /jobs` body a reader would get now, if it is rendered already.
    pub fn jobs_etag(&self) -> Option<ETag> {
        self.cached_jobs(false).map(|(_, tag)| tag)
    }

    /// The `GET /jobs` body: tunasync.json, sorted by name then worker (gzip-compressed when
    /// `gzip`), and its tag. Renders what changed when [`View::cached_jobs`] has nothing to
    /// serve: call it off the async runtime.
    pub fn jobs(self: &Arc<Self>, gzip: bool) -> (Pieces, ETag) {
        if gzip {
            self.ahead.gzip_wanted.store(true, Ordering::Relaxed);
        }
        self.start_rendering_ahead();
        if let Some(body) = self.cached_jobs(gzip) {
            return body;
        }
        self.render(gzip)
    }

    /// Notes that a reader saw the model through a route other than `GET /jobs`: if the
    /// installed body is behind it, the next `GET /jobs` renders rather than show less.
    pub(super) fn note_seen(&self, state: &ViewState) {
        let behind = state
            .jobs
            .as_ref()
            .is_some_and(|served| served.generation != state.jobs_generation);
        if behind {
            self.ahead.strict.store(true, Ordering::Release);
        }
    }

    fn start_rendering_ahead(self: &Arc<Self>) {
        if self.ahead.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let view = Arc::downgrade(self);
        let wake = self.ahead.wake.clone();
        let spawned = std::thread::Builder::new()
            .name("jobs-render".into())
            .spawn(move || render_ahead(view, wake));
        if spawned.is_err() {
            // Readers render, as they would without it.
            self.ahead.started.store(false, Ordering::Release);
        }
    }

    /// Brings the chunks up to the current generation (if no one did meanwhile) and
    /// installs the body.
    fn render(self: &Arc<Self>, gzip: bool) -> (Pieces, ETag) {
        let mut rendering = lock(&self.body);
        let started = Instant::now();
        {
            let state = self.read();
            if let Some(served) = state.current(gzip) {
                // Current: whatever a reader had to see, it is in there.
                self.ahead.strict.store(false, Ordering::Release);
                return served;
            }
            let dirty = std::mem::take(&mut *lock(&self.dirty));
            rendering.body.refresh(&state.model, &state.offline, dirty);
            rendering.generation = state.jobs_generation;
        }
        let gzip_too = gzip || self.ahead.gzip_wanted.load(Ordering::Relaxed);
        if gzip_too && rendering.body.uncompressed_bytes() > COMPRESS_NOW {
            // After a restart or a mass change: compressing on the thread that reads
            // costs less than sending it all uncompressed.
            rendering.body.compress();
        }
        let body = &rendering.body;
        let served = ServedJobs {
            json: body.json(),
            // Compressed through (the first render, compressed above): one buffer, as the
            // compressing thread leaves it.
            gzip: gzip_too.then(|| {
                let gzip = body.gzip();
                if body.needs_compression() {
                    gzip
                } else {
                    gzip.joined()
                }
            }),
            tag: body.tag(),
            generation: rendering.generation,
        };
        let compress = gzip_too && body.needs_compression();
        drop(rendering);
        self.telemetry
            .jobs_render
            .observe(started.elapsed().as_secs_f64());
        {
            let mut state = self.write();
            let newer = state
                .jobs
                .as_ref()
                .is_none_or(|installed| installed.generation <= served.generation);
            if newer {
                if state.jobs_generation == served.generation {
                    state.stale_since = None;
                    self.ahead.strict.store(false, Ordering::Release);
                } else {
                    // What changed during the render is younger than its start.
                    state.stale_since = Some(started);
                }
                state.jobs = Some(served.clone());
            }
        }
        if compress {
            self.compress_later();
        }
        let tag = served.tag;
        (served.gzip.filter(|_| gzip).unwrap_or(served.json), tag)
    }

    /// Compresses the chunks that went out uncompressed, on a thread of its own (one at a
    /// time), and replaces the served gzip body with the smaller one, joined into one
    /// buffer (same content, same tag), while nothing changed meanwhile.
    fn compress_later(self: &Arc<Self>) {
        if self.ahead.compressing.swap(true, Ordering::AcqRel) {
            return;
        }
        let view = self.clone();
        let spawned = std::thread::Builder::new()
            .name("jobs-gzip".into())
            .spawn(move || {
                loop {
                    loop {
                        let work = lock(&view.body).body.uncompressed();
                        if work.is_empty() {
                            break;
                        }
                        let done = work
                            .into_iter()
                            .map(|chunk| {
                                let bytes = chunk.compress();
                                (chunk, bytes)
                            })
                            .collect();
                        let mut rendering = lock(&view.body);
                        rendering.body.install(done);
                        // The served body is replaced only while it shows what the chunks
                        // show, and only if a gzip one is served.
                        let current = |state: &ViewState| {
                            state.jobs.as_ref().is_some_and(|served| {
                                served.generation == rendering.generation && served.gzip.is_some()
                            })
                        };
                        if current(&view.read()) {
                            // Joined here, off the readers' path: an idle reader's body is
                            // one buffer.
                            let gzip = rendering.body.gzip().joined();
                            let mut state = view.write();
                            if current(&state)
                                && let Some(served) = state.jobs.as_mut()
                            {
                                served.gzip = Some(gzip);
                            }
                        }
                    }
                    view.ahead.compressing.store(false, Ordering::Release);
                    // A render may have left work while this thread was finishing.
                    if !lock(&view.body).body.needs_compression()
                        || view.ahead.compressing.swap(true, Ordering::AcqRel)
                    {
                        break;
                    }
                }
            });
        if spawned.is_err() {
            self.ahead.compressing.store(false, Ordering::Release);
        }
    }
}
