//! The worker's concurrency limit (`concurrent`): at most `limit` runs hold a slot at once,
//! and the limit stays exact when a reload changes it while runs hold slots.
//!
//! Lowering the limit takes nothing from running jobs: the slots they return are retired
//! until the number in use is below the new limit. Raising it lets waiting jobs start at
//! once. Waiting jobs get slots in the order they asked. A forced run takes no slot.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

#[derive(Clone)]
pub struct Slots {
    state: Arc<Mutex<State>>,
}

struct State {
    limit: usize,
    in_use: usize,
    waiting: VecDeque<oneshot::Sender<Slot>>,
}

/// A held slot; dropping it gives it back.
pub struct Slot {
    state: Option<Arc<Mutex<State>>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Hands a slot that is in use (counted in `in_use`) to the first waiter still waiting;
/// whether one took it.
fn hand_over(state: &Arc<Mutex<State>>, guard: &mut State) -> bool {
    while let Some(waiter) = guard.waiting.pop_front() {
        let slot = Slot {
            state: Some(state.clone()),
        };
        match waiter.send(slot) {
            Ok(()) => return true,
            // That waiter gave up (its job was stopped): the slot goes to the next one.
            Err(mut unsent) => unsent.state = None,
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
                waiting: VecDeque::new(),
            })),
        }
    }

    /// Waits for a slot. Cancel-safe: a waiter dropped before it got one takes none.
    pub async fn acquire(&self) -> Slot {
        loop {
            let answer = {
                let mut guard = lock(&self.state);
                if guard.waiting.is_empty() && guard.in_use < guard.limit {
                    guard.in_use += 1;
                    return Slot {
                        state: Some(self.state.clone()),
                    };
                }
                let (sender, answer) = oneshot::channel();
                guard.waiting.push_back(sender);
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
            if !hand_over(&self.state, &mut guard) {
                guard.in_use -= 1;
                break;
            }
        }
    }

    /// Slots held now.
    pub fn in_use(&self) -> usize {
        lock(&self.state).in_use
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(state) = self.state.take() else {
            return;
        };
        let mut guard = lock(&state);
        if guard.in_use <= guard.limit && hand_over(&state, &mut guard) {
            return;
        }
        guard.in_use -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn try_acquire(slots: &Slots) -> Option<Slot> {
        tokio::time::timeout(Duration::from_millis(50), slots.acquire())
            .await
            .ok()
    }

    #[tokio::test]
    async fn the_limit_is_exact_when_it_changes_under_load() {
        let slots = Slots::new(4);
        let mut held: Vec<Slot> = Vec::new();
        for _ in 0..4 {
            held.push(slots.acquire().await);
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
        let first = slots.acquire().await;
        let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for idx in 0..3 {
            let slots = slots.clone();
            let order_tx = order_tx.clone();
            tasks.push(tokio::spawn(async move {
                let slot = slots.acquire().await;
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
}
