//! The worker's concurrency limit (`concurrent`): at most `limit` runs hold a slot at once,
//! and the limit stays exact when a reload changes it while runs hold slots.
//!
//! Lowering the limit takes nothing from running jobs: the slots they return are retired
//! until the number in use is below the new limit. Raising it lets waiting jobs start at
//! once. Waiting jobs get slots by priority (higher first), then in the order they asked.
//! A forced run takes no slot.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, oneshot};

#[derive(Clone)]
pub struct Slots {
    state: Arc<Mutex<State>>,
    /// Woken whenever slots are taken, given back, waited for, or the limit changes.
    changed: Arc<Notify>,
}

struct State {
    limit: usize,
    in_use: usize,
    /// By priority (highest first), then arrival.
    waiting: BTreeMap<(Reverse<u8>, u64), oneshot::Sender<Slot>>,
    arrivals: u64,
}

/// A held slot; dropping it gives it back.
pub struct Slot {
    state: Option<Arc<Mutex<State>>>,
    changed: Option<Arc<Notify>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Hands a slot that is in use (counted in `in_use`) to the first waiter still waiting;
/// whether one took it.
fn hand_over(state: &Arc<Mutex<State>>, changed: &Arc<Notify>, guard: &mut State) -> bool {
    while let Some((_, waiter)) = guard.waiting.pop_first() {
        let slot = Slot {
            state: Some(state.clone()),
            changed: Some(changed.clone()),
        };
        match waiter.send(slot) {
            Ok(()) => return true,
            // That waiter gave up (its job was stopped): the slot goes to the next one.
            Err(mut unsent) => {
                unsent.state = None;
                unsent.changed = None;
            }
        }
    }
    false
}

impl Slots {
    pub fn new(limit: usize) -> Self {
        Slots {
            state: Arc::new(Mutex::new(State {
                limit,
                in_use: 0,
                waiting: BTreeMap::new(),
                arrivals: 0,
            })),
            changed: Arc::new(Notify::new()),
        }
    }

    fn slot(&self) -> Slot {
        Slot {
            state: Some(self.state.clone()),
            changed: Some(self.changed.clone()),
        }
    }

    /// A slot now, if one is free and no job waits for one (waiting jobs go first).
    pub fn try_acquire(&self) -> Option<Slot> {
        let mut guard = lock(&self.state);
        guard.waiting.retain(|_, waiter| !waiter.is_closed());
        if guard.waiting.is_empty() && guard.in_use < guard.limit {
            guard.in_use += 1;
            drop(guard);
            self.changed.notify_waiters();
            return Some(self.slot());
        }
        None
    }

    /// Slots free for a newcomer: none while jobs wait for one.
    pub fn free(&self) -> usize {
        let mut guard = lock(&self.state);
        guard.waiting.retain(|_, waiter| !waiter.is_closed());
        if guard.waiting.is_empty() {
            guard.limit.saturating_sub(guard.in_use)
        } else {
            0
        }
    }

    /// Returns once [`Slots::free`] is above zero.
    pub async fn wait_free(&self) {
        self.wait_until(|free| free > 0).await;
    }

    /// Returns once [`Slots::free`] is zero.
    pub async fn wait_full(&self) {
        self.wait_until(|free| free == 0).await;
    }

    async fn wait_until(&self, condition: impl Fn(usize) -> bool) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if condition(self.free()) {
                return;
            }
            notified.await;
        }
    }

    /// Waits for a slot; among waiting jobs the one with the highest `priority` gets the
    /// next. Cancel-safe: a waiter dropped before it got one takes none.
    pub async fn acquire(&self, priority: u8) -> Slot {
        loop {
            let answer = {
                let mut guard = lock(&self.state);
                if guard.waiting.is_empty() && guard.in_use < guard.limit {
                    guard.in_use += 1;
                    drop(guard);
                    self.changed.notify_waiters();
                    return self.slot();
                }
                let (sender, answer) = oneshot::channel();
                guard.arrivals += 1;
                let arrival = guard.arrivals;
                guard.waiting.insert((Reverse(priority), arrival), sender);
                drop(guard);
                // A job now waits: nothing is free for newcomers.
                self.changed.notify_waiters();
                answer
            };
            if let Ok(slot) = answer.await {
                return slot;
            }
        }
    }

    /// Changes the limit; runs that hold slots keep them.
    pub fn set_limit(&self, limit: usize) {
        let mut guard = lock(&self.state);
        guard.limit = limit;
        while guard.in_use < guard.limit {
            guard.in_use += 1;
            if !hand_over(&self.state, &self.changed, &mut guard) {
                guard.in_use -= 1;
                break;
            }
        }
        drop(guard);
        self.changed.notify_waiters();
    }

    /// Jobs waiting for a slot now.
    pub fn n_waiting(&self) -> usize {
        let mut guard = lock(&self.state);
        guard.waiting.retain(|_, waiter| !waiter.is_closed());
        guard.waiting.len()
    }

    /// Slots held now.
    pub fn in_use(&self) -> usize {
        lock(&self.state).in_use
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (Some(state), Some(changed)) = (self.state.take(), self.changed.take()) else {
            return;
        };
        let mut guard = lock(&state);
        if guard.in_use <= guard.limit && hand_over(&state, &changed, &mut guard) {
            return;
        }
        guard.in_use -= 1;
        drop(guard);
        changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn try_acquire(slots: &Slots) -> Option<Slot> {
        tokio::time::timeout(Duration::from_millis(50), slots.acquire(50))
            .await
            .ok()
    }

    #[tokio::test]
    async fn the_limit_is_exact_when_it_changes_under_load() {
        let slots = Slots::new(4);
        let mut held: Vec<Slot> = Vec::new();
        for _ in 0..4 {
            held.push(slots.acquire(50).await);
        }
        assert!(try_acquire(&slots).await.is_none(), "4 of 4 in use");

        slots.set_limit(2);
        held.pop();
        held.pop();
        assert_eq!(slots.in_use(), 2);
        assert!(try_acquire(&slots).await.is_none(), "2 of 2 in use");
        held.pop();
        assert_eq!(slots.in_use(), 1);
        held.push(try_acquire(&slots).await.expect("1 of 2 in use"));
        assert!(try_acquire(&slots).await.is_none());

        slots.set_limit(4);
        held.push(try_acquire(&slots).await.expect("2 of 4"));
        held.push(try_acquire(&slots).await.expect("3 of 4"));
        assert!(try_acquire(&slots).await.is_none(), "never past 4");
        assert_eq!(slots.in_use(), 4);
        held.clear();
        assert_eq!(slots.in_use(), 0);
    }

    #[tokio::test]
    async fn waiters_are_served_in_order_and_a_raise_wakes_them() {
        let slots = Slots::new(1);
        let first = slots.acquire(50).await;
        let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for idx in 0..3 {
            let slots = slots.clone();
            let order_tx = order_tx.clone();
            tasks.push(tokio::spawn(async move {
                let slot = slots.acquire(50).await;
                order_tx.send(idx).unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(slot);
            }));
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A waiter that gives up takes no slot with it.
        let gave_up = try_acquire(&slots).await;
        assert!(gave_up.is_none());
        slots.set_limit(2);
        assert_eq!(order.recv().await, Some(0));
        drop(first);
        assert_eq!(order.recv().await, Some(1));
        assert_eq!(order.recv().await, Some(2));
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(slots.in_use(), 0);
    }

    #[tokio::test]
    async fn the_higher_priority_waits_less_and_equal_ones_keep_their_order() {
        let slots = Slots::new(1);
        let held = slots.acquire(50).await;
        let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for (idx, priority) in [10u8, 90, 50, 90].into_iter().enumerate() {
            let slots_for_task = slots.clone();
            let order_tx = order_tx.clone();
            tasks.push(tokio::spawn(async move {
                let slot = slots_for_task.acquire(priority).await;
                order_tx.send(idx).unwrap();
                drop(slot);
            }));
            // Each is queued before the next asks, so arrival order is known.
            let queued = idx + 1;
            tokio::time::timeout(Duration::from_secs(5), async {
                while slots.n_waiting() < queued {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .unwrap();
        }
        drop(held);
        let mut served = Vec::new();
        for _ in 0..4 {
            served.push(order.recv().await.unwrap());
        }
        assert_eq!(served, [1, 3, 2, 0]);
        for task in tasks {
            task.await.unwrap();
        }
    }

    #[tokio::test]
    async fn newcomers_see_free_slots_only_when_nobody_waits() {
        let slots = Slots::new(1);
        assert_eq!(slots.free(), 1);
        let held = slots.try_acquire().expect("one free");
        assert_eq!(slots.free(), 0);
        assert!(slots.try_acquire().is_none());
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire(50).await })
        };
        tokio::time::timeout(Duration::from_secs(5), slots.wait_full())
            .await
            .unwrap();
        drop(held);
        let got = waiter.await.unwrap();
        assert_eq!(slots.free(), 0, "the waiter got it, not a newcomer");
        let freed = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.wait_free().await })
        };
        drop(got);
        tokio::time::timeout(Duration::from_secs(5), freed)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(slots.free(), 1);
    }
}
