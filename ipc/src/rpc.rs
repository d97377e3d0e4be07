//! The asking side of request/answer: ids, exactly one answer per request, timeouts, and
//! failing every request in flight when the connection goes away.
//!
//! [`Pending`] is plain bookkeeping without I/O: the caller sends the request it is given an
//! id for, and hands every answer that arrives to [`Pending::answer`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::RpcError;

/// Requests waiting for their answer, of answer type `A`.
#[derive(Debug)]
pub struct Pending<A> {
    next_id: AtomicU64,
    /// Requests that may wait at once.
    capacity: usize,
    state: Mutex<State<A>>,
}

#[derive(Debug)]
struct State<A> {
    waiting: HashMap<u64, oneshot::Sender<Result<A, RpcError>>>,
    closed: bool,
}

/// One request's claim on its answer.
#[derive(Debug)]
pub struct Ticket<A> {
    /// Id to send the request with.
    pub id: u64,
    answer: oneshot::Receiver<Result<A, RpcError>>,
}

impl<A> Default for Pending<A> {
    fn default() -> Self {
        Self {
            next_id: AtomicU64::new(1),
            capacity: usize::MAX,
            state: Mutex::new(State {
                waiting: HashMap::new(),
                closed: false,
            }),
        }
    }
}

impl<A> Pending<A> {
    /// No request in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// No request in flight; at most `capacity` at once (more fail with
    /// [`RpcError::Busy`]), so that a peer that stops answering cannot make memory grow.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<A>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a new request; fails at once when the connection is already closed.
    pub fn register(&self) -> Result<Ticket<A>, RpcError> {
        let mut state = self.state();
        if state.closed {
            return Err(RpcError::Disconnected);
        }
        if state.waiting.len() >= self.capacity {
            return Err(RpcError::Busy(self.capacity));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        state.waiting.insert(id, tx);
        Ok(Ticket { id, answer: rx })
    }

    /// Delivers the answer to request `id`. Returns `false` for an id nobody waits for (never
    /// sent, already answered, or given up after its timeout).
    pub fn answer(&self, id: u64, answer: A) -> bool {
        match self.state().waiting.remove(&id) {
            Some(tx) => tx.send(Ok(answer)).is_ok(),
            None => false,
        }
    }

    /// Fails every request in flight, and every later one, with [`RpcError::Disconnected`].
    pub fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        for (_, tx) in state.waiting.drain() {
            let _ = tx.send(Err(RpcError::Disconnected));
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.state().waiting.len()
    }

    /// Waits for the answer to `ticket`, at most `timeout`.
    pub async fn wait(&self, ticket: Ticket<A>, timeout: Duration) -> Result<A, RpcError> {
        let id = ticket.id;
        match tokio::time::timeout(timeout, ticket.answer).await {
            Ok(Ok(result)) => result,
            // The sender was dropped without an answer: only `close` does that.
            Ok(Err(_)) => Err(RpcError::Disconnected),
            Err(_) => {
                self.state().waiting.remove(&id);
                Err(RpcError::Timeout(timeout))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_request_gets_its_own_answer_once() {
        let pending = Pending::<&str>::new();
        let a = pending.register().unwrap();
        let b = pending.register().unwrap();
        assert_ne!(a.id, b.id);
        assert!(pending.answer(b.id, "b"));
        assert!(pending.answer(a.id, "a"));
        assert!(!pending.answer(a.id, "again"), "a second answer is refused");
        assert_eq!(pending.wait(a, Duration::from_secs(1)).await, Ok("a"));
        assert_eq!(pending.wait(b, Duration::from_secs(1)).await, Ok("b"));
        assert_eq!(pending.in_flight(), 0);
    }

    #[tokio::test]
    async fn unanswered_request_times_out_and_late_answer_is_dropped() {
        let pending = Pending::<u8>::new();
        let ticket = pending.register().unwrap();
        let id = ticket.id;
        let result = pending.wait(ticket, Duration::from_millis(20)).await;
        assert_eq!(result, Err(RpcError::Timeout(Duration::from_millis(20))));
        assert!(!pending.answer(id, 1));
        assert_eq!(pending.in_flight(), 0);
    }

    #[tokio::test]
    async fn close_fails_requests_in_flight_and_later_ones() {
        let pending = Pending::<u8>::new();
        let ticket = pending.register().unwrap();
        pending.close();
        assert_eq!(
            pending.wait(ticket, Duration::from_secs(5)).await,
            Err(RpcError::Disconnected)
        );
        assert_eq!(pending.register().unwrap_err(), RpcError::Disconnected);
    }

    #[tokio::test]
    async fn requests_beyond_the_capacity_are_refused_until_one_is_answered() {
        let pending = Pending::<u8>::with_capacity(2);
        let a = pending.register().unwrap();
        let _b = pending.register().unwrap();
        assert!(matches!(pending.register(), Err(RpcError::Busy(2))));
        assert!(pending.answer(a.id, 1));
        assert_eq!(pending.wait(a, Duration::from_secs(1)).await, Ok(1));
        assert!(pending.register().is_ok(), "a place was freed");
    }
}
