//! The outbox's bounded queue, and the rules that keep it small while the broker is away.
//!
//! - `hello`, `heartbeat` and `schedule` describe the present, so only the newest of each
//!   kind is kept: an outage of a day queues one heartbeat, not 8,640.
//! - A job's `progress` replaces its older one; when the queue is full they go first.
//! - When the queue is full, room is made in this order: answers to commands and log
//!   chunks (the manager
//!   stopped waiting for them seconds after it asked); then a job's progress reports
//!   (`pre-syncing`, `syncing`) that a later report of the same job supersedes; then a job's
//!   older results that a later report of the same job supersedes. A job's newest report
//!   is never dropped for another kind of event. Only a queue holding nothing but the newest
//!   report of more jobs than it has room for drops its oldest event.

use std::collections::{HashSet, VecDeque};

use tunasync_shared::names::MirrorName;
use tunasync_shared::wire::{Event, EventEnvelope};
use uuid::Uuid;

/// What making room dropped, for the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub answers: usize,
    pub progress: usize,
    pub results: usize,
    pub oldest: usize,
}

#[derive(Debug)]
pub struct Backlog {
    events: VecDeque<EventEnvelope>,
    capacity: usize,
}

/// Kinds of which only the newest queued event matters.
fn describes_the_present(event: &Event) -> bool {
    matches!(
        event,
        Event::Hello(_) | Event::Heartbeat(_) | Event::Schedule(_)
    )
}

/// The job a report is about, for reports that supersede one another.
fn job_of(event: &Event) -> Option<&MirrorName> {
    match event {
        Event::Status(status) => Some(&status.mirror),
        Event::JobRemoved(removed) => Some(&removed.mirror),
        _ => None,
    }
}

impl Backlog {
    pub fn new(capacity: usize) -> Self {
        Backlog {
            events: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Queues `envelope` behind everything queued, after replacing an older event of the same
    /// present-describing kind and, if the queue is full, making room. Says what it dropped
    /// to make room, if anything.
    pub fn push(&mut self, envelope: EventEnvelope) -> Option<Dropped> {
        if describes_the_present(&envelope.event) {
            let kind = envelope.event.kind();
            self.events.retain(|queued| queued.event.kind() != kind);
        }
        if let Event::Progress(progress) = &envelope.event {
            // Only the newest progress of a job matters.
            let mirror = &progress.mirror;
            self.events.retain(
                |queued| !matches!(&queued.event, Event::Progress(older) if older.mirror == *mirror),
            );
        }
        let dropped = (self.events.len() >= self.capacity).then(|| self.make_room());
        self.events.push_back(envelope);
        dropped
    }

    fn make_room(&mut self) -> Dropped {
        let mut dropped = Dropped::default();
        let before = self.events.len();
        self.events
            .retain(|queued| !matches!(queued.event, Event::Progress(_)));
        dropped.progress = before - self.events.len();
        if self.events.len() < self.capacity {
            return dropped;
        }
        let before = self.events.len();
        self.events
            .retain(|queued| !matches!(queued.event, Event::CmdResult(_) | Event::LogChunk(_)));
        dropped.answers = before - self.events.len();
        if self.events.len() >= self.capacity {
            dropped.progress += self.drop_superseded(true);
        }
        if self.events.len() >= self.capacity {
            dropped.results = self.drop_superseded(false);
        }
        while self.events.len() >= self.capacity {
            self.events.pop_front();
            dropped.oldest += 1;
        }
        dropped
    }

    /// Drops every job report that a later report of the same job supersedes (only progress
    /// reports if `progress_only`); how many it dropped.
    fn drop_superseded(&mut self, progress_only: bool) -> usize {
        let mut later: HashSet<MirrorName> = HashSet::new();
        let mut keep = vec![true; self.events.len()];
        for (idx, queued) in self.events.iter().enumerate().rev() {
            let Some(mirror) = job_of(&queued.event) else {
                continue;
            };
            if later.contains(mirror) {
                let droppable = match &queued.event {
                    Event::Status(status) => !progress_only || status.status.is_running(),
                    _ => false,
                };
                keep[idx] = !droppable;
            } else {
                later.insert(mirror.clone());
            }
        }
        let before = self.events.len();
        let mut flags = keep.into_iter();
        self.events.retain(|_| flags.next().unwrap_or(true));
        before - self.events.len()
    }

    pub fn front(&self) -> Option<&EventEnvelope> {
        self.events.front()
    }

    /// Removes the front event if it is the one with `id` (it was published); a front that
    /// was replaced meanwhile stays.
    pub fn pop_front_if(&mut self, id: Uuid) -> bool {
        if self
            .events
            .front()
            .is_some_and(|front| front.header.id == id)
        {
            self.events.pop_front();
            return true;
        }
        false
    }

    pub fn pop_front(&mut self) -> Option<EventEnvelope> {
        self.events.pop_front()
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Takes every queued event.
    pub fn drain(&mut self) -> Vec<EventEnvelope> {
        self.events.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tunasync_shared::gotime::GoTime;
    use tunasync_shared::names::WorkerId;
    use tunasync_shared::status::SyncStatus;
    use tunasync_shared::wire::command::CommandKind;
    use tunasync_shared::wire::event::{
        CmdOutcome, CmdResult, Heartbeat, JobRemoved, JobStatus, Schedule,
    };

    struct Numbered {
        backlog: Backlog,
        seq: u64,
    }

    impl Numbered {
        fn new(capacity: usize) -> Self {
            Numbered {
                backlog: Backlog::new(capacity),
                seq: 0,
            }
        }

        fn push(&mut self, event: Event) -> Option<Dropped> {
            self.seq += 1;
            let worker = WorkerId::new("w").unwrap();
            self.backlog
                .push(EventEnvelope::new(worker, self.seq, event))
        }

        /// What is queued, as short labels in queue order.
        fn labels(&mut self) -> Vec<String> {
            let events = self.backlog.drain();
            assert!(
                events.windows(2).all(|pair| pair[0].seq < pair[1].seq),
                "queue order is numbering order"
            );
            events
                .into_iter()
                .map(|envelope| match envelope.event {
                    Event::Status(status) => format!("{}:{}", status.mirror, status.status),
                    Event::JobRemoved(removed) => format!("{}:removed", removed.mirror),
                    Event::Progress(progress) => {
                        format!("{}:progress {}", progress.mirror, progress.log_lines)
                    }
                    other => other.kind().as_str().to_owned(),
                })
                .collect()
        }
    }

    fn status(mirror: &str, status: SyncStatus) -> Event {
        Event::Status(JobStatus {
            mirror: MirrorName::new(mirror).unwrap(),
            status,
            run_id: Uuid::nil(),
            attempt: 1,
            at: GoTime::ZERO,
            upstream: String::new(),
            is_master: true,
            size: None,
            error_msg: String::new(),
            pooled: None,
            transferred_bytes: None,
            ends_run: false,
        })
    }

    fn heartbeat() -> Event {
        Event::Heartbeat(Heartbeat {
            session: Uuid::nil(),
            interval_secs: 10,
            running: vec![],
            free_slots: None,
        })
    }

    fn answer() -> Event {
        Event::CmdResult(CmdResult {
            cmd_id: Uuid::new_v4(),
            cmd: CommandKind::Ping,
            mirror: None,
            outcome: CmdOutcome::Accepted,
        })
    }

    fn progress(mirror: &str, log_lines: u64) -> Event {
        Event::Progress(tunasync_shared::wire::event::JobProgress {
            mirror: MirrorName::new(mirror).unwrap(),
            run_id: Uuid::nil(),
            attempt: 1,
            running_secs: 1,
            log_bytes: 0,
            log_lines,
            files: None,
            transferred_bytes: None,
            percent: None,
        })
    }

    #[test]
    fn a_jobs_progress_replaces_its_older_one_and_goes_first_when_full() {
        let mut queue = Numbered::new(3);
        queue.push(progress("a", 1));
        queue.push(progress("b", 1));
        queue.push(progress("a", 2));
        assert_eq!(queue.labels(), ["b:progress 1", "a:progress 2"]);
        queue.push(progress("a", 3));
        queue.push(answer());
        queue.push(status("a", SyncStatus::Syncing));
        let dropped = queue.push(status("b", SyncStatus::Syncing)).unwrap();
        assert_eq!(
            dropped,
            Dropped {
                progress: 1,
                ..Dropped::default()
            },
            "progress goes before the answer"
        );
        assert_eq!(queue.labels(), ["cmd-result", "a:syncing", "b:syncing"]);
    }

    /// A day without the broker: 8,640 heartbeats queue as one, and the run that ended
    /// during the outage keeps its result however small the queue.
    #[test]
    fn an_outage_keeps_one_heartbeat_and_every_jobs_last_report() {
        let mut queue = Numbered::new(4);
        queue.push(status("debian", SyncStatus::PreSyncing));
        queue.push(status("debian", SyncStatus::Syncing));
        for _ in 0..8640 {
            assert_eq!(queue.push(heartbeat()), None, "heartbeats never fill it");
        }
        queue.push(status("debian", SyncStatus::Success));
        queue.push(Event::Schedule(Schedule { schedules: vec![] }));
        queue.push(status("ubuntu", SyncStatus::PreSyncing));
        queue.push(Event::Schedule(Schedule { schedules: vec![] }));
        assert_eq!(
            queue.labels(),
            [
                "heartbeat",
                "debian:success",
                "ubuntu:pre-syncing",
                "schedule"
            ]
        );
    }

    #[test]
    fn room_comes_from_answers_then_progress_then_older_results() {
        let mut queue = Numbered::new(5);
        queue.push(answer());
        queue.push(status("a", SyncStatus::PreSyncing));
        queue.push(status("a", SyncStatus::Failed));
        queue.push(answer());
        queue.push(status("a", SyncStatus::PreSyncing));
        let dropped = queue.push(status("a", SyncStatus::Syncing)).unwrap();
        assert_eq!(
            dropped,
            Dropped {
                answers: 2,
                ..Dropped::default()
            }
        );
        queue.push(status("b", SyncStatus::Success));
        // Full again: a's superseded progress goes, its result and newest report stay.
        let dropped = queue.push(status("c", SyncStatus::Success)).unwrap();
        assert_eq!(
            dropped,
            Dropped {
                progress: 2,
                ..Dropped::default()
            }
        );
        assert_eq!(
            queue.labels(),
            ["a:failed", "a:syncing", "b:success", "c:success"]
        );

        let mut queue = Numbered::new(3);
        queue.push(status("a", SyncStatus::Failed));
        queue.push(status("a", SyncStatus::Success));
        queue.push(Event::JobRemoved(JobRemoved {
            mirror: MirrorName::new("a").unwrap(),
        }));
        let dropped = queue.push(status("b", SyncStatus::Failed)).unwrap();
        assert_eq!(dropped.results, 2);
        assert_eq!(queue.labels(), ["a:removed", "b:failed"]);

        // Nothing superseded: only then the oldest goes.
        let mut queue = Numbered::new(2);
        queue.push(status("a", SyncStatus::Success));
        queue.push(status("b", SyncStatus::Success));
        let dropped = queue.push(status("c", SyncStatus::Success)).unwrap();
        assert_eq!(dropped.oldest, 1);
        assert_eq!(queue.labels(), ["b:success", "c:success"]);
    }

    #[test]
    fn the_front_is_popped_only_if_it_is_the_published_one() {
        let mut queue = Numbered::new(10);
        queue.push(heartbeat());
        let id = queue.backlog.front().unwrap().header.id;
        queue.push(heartbeat());
        assert!(!queue.backlog.pop_front_if(id), "replaced while in flight");
        assert_eq!(queue.backlog.len(), 1);
        let id = queue.backlog.front().unwrap().header.id;
        assert!(queue.backlog.pop_front_if(id));
        assert!(queue.backlog.is_empty());
    }
}
