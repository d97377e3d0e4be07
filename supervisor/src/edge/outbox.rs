//! Where a session's outgoing frames go: a queue bounded in bytes, so that a client that does
//! not read cannot grow the supervisor's memory, whatever the size of its frames. Nothing
//! waits for room in it: a frame that does not fit (an answer or a notification) is not
//! dropped silently (a lost `newProducer` would leave someone invisible to that client for
//! ever): the session is told to close the connection (1013), and the client joins again
//! with a consistent view.
//!
//! It is a `VecDeque` behind a lock rather than a channel: a tokio channel reserves a block of
//! 32 slots up front, ~0.8 KB for each of thousands of mostly idle sessions, and a queue that
//! is empty most of the time needs none.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Bytes a session may have queued for its client before it is closed as too slow.
pub const OUTBOX_BYTES: usize = 1 << 20;

/// What a frame costs beyond its text (its `String` and queue slot), so that a flood of tiny
/// frames is bounded too.
const FRAME_OVERHEAD: usize = 64;

/// Slots an emptied queue may keep; a burst's larger allocation is given back.
const KEPT_SLOTS: usize = 8;

/// What the two sides share.
#[derive(Debug)]
struct Shared {
    frames: Mutex<Frames>,
    /// Woken when a frame is queued or the last [`Outbox`] goes.
    ready: Notify,
    /// [`Outbox`] handles alive: at none, the queue ends once drained.
    senders: AtomicUsize,
    capacity: usize,
    overflow: Arc<Notify>,
    /// Set when another connection resumed this session's peer.
    evicted: AtomicBool,
    /// The session's room moved to another host ([`Outbox::move_away`]).
    moved: AtomicBool,
}

#[derive(Debug, Default)]
struct Frames {
    queue: VecDeque<String>,
    /// Bytes queued and not yet taken by the writer (with [`FRAME_OVERHEAD`] each).
    bytes: usize,
    /// The [`Inbox`] is gone: nothing is queued any more.
    closed: bool,
}

impl Shared {
    fn frames(&self) -> MutexGuard<'_, Frames> {
        // Nothing panics while holding it; a poisoned queue is still a consistent one.
        self.frames.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending side of a session's queue (clones share it).
#[derive(Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// The session's side: the frames to write, and the signal that one did not fit.
#[derive(Debug)]
pub struct Inbox {
    shared: Arc<Shared>,
    /// Notified when a frame did not fit, or when the session was evicted
    /// ([`Outbox::is_evicted`]).
    pub overflow: Arc<Notify>,
}

fn cost(frame: &str) -> usize {
    frame.len() + FRAME_OVERHEAD
}

impl Outbox {
    /// A queue of at most `capacity` bytes.
    pub fn new(capacity: usize) -> (Outbox, Inbox) {
        let overflow = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            frames: Mutex::new(Frames::default()),
            ready: Notify::new(),
            senders: AtomicUsize::new(1),
            capacity,
            overflow: overflow.clone(),
            evicted: AtomicBool::new(false),
            moved: AtomicBool::new(false),
        });
        let inbox = Inbox {
            shared: shared.clone(),
            overflow,
        };
        (Outbox { shared }, inbox)
    }

    /// Queues a frame without waiting; `false` if it did not fit (the session is then told to
    /// close) or the session is gone.
    pub fn push(&self, frame: String) -> bool {
        let cost = cost(&frame);
        let shared = &self.shared;
        {
            let mut frames = shared.frames();
            if frames.closed {
                return false;
            }
            if frames.bytes + cost > shared.capacity {
                drop(frames);
                shared.overflow.notify_one();
                return false;
            }
            frames.bytes += cost;
            frames.queue.push_back(frame);
        }
        shared.ready.notify_one();
        true
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.shared.frames().bytes
    }

    /// Whether `other` is this very queue (not just another of the same shape).
    pub fn same_as(&self, other: &Outbox) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Another connection took this session's peer over (`resume`): its session is told to
    /// close.
    pub fn evict(&self) {
        self.shared.evicted.store(true, Ordering::Relaxed);
        self.shared.overflow.notify_one();
    }

    /// The session's room was handed to another host: its session is told to close, so
    /// that its client resumes there.
    pub fn move_away(&self) {
        self.shared.moved.store(true, Ordering::Relaxed);
        self.evict();
    }

    /// Whether [`Outbox::move_away`] was called.
    pub fn is_moved(&self) -> bool {
        self.shared.moved.load(Ordering::Relaxed)
    }

    /// Whether [`Outbox::evict`] was called.
    pub fn is_evicted(&self) -> bool {
        self.shared.evicted.load(Ordering::Relaxed)
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Outbox {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        Outbox {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: the writer drains what is left and ends.
            self.shared.ready.notify_one();
        }
    }
}

impl Inbox {
    /// The next frame, waiting for one; `None` once every [`Outbox`] is gone and the queue
    /// is drained.
    pub async fn recv(&mut self) -> Option<String> {
        loop {
            if let Some(frame) = self.try_recv() {
                return Some(frame);
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                // A frame queued just before the last sender went is still delivered.
                return self.try_recv();
            }
            // A wake-up between the checks above and this wait is kept as a permit.
            self.shared.ready.notified().await;
        }
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Option<String> {
        let mut frames = self.shared.frames();
        let frame = frames.queue.pop_front()?;
        frames.bytes -= cost(&frame);
        if frames.queue.is_empty() && frames.queue.capacity() > KEPT_SLOTS {
            frames.queue = VecDeque::new();
        }
        Some(frame)
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut frames = self.shared.frames();
        frames.closed = true;
        frames.bytes = 0;
        frames.queue = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_and_signals_instead_of_dropping_quietly() {
        let (outbox, mut inbox) = Outbox::new(2 * (FRAME_OVERHEAD + 1));
        assert!(outbox.push("a".into()));
        assert!(outbox.push("b".into()));
        assert!(!outbox.push("c".into()), "no room for a third");
        // The overflow was signalled (a permit is stored for the session to see).
        tokio::time::timeout(std::time::Duration::from_secs(1), inbox.overflow.notified())
            .await
            .expect("overflow signalled");
        assert_eq!(inbox.recv().await.as_deref(), Some("a"));
        assert!(outbox.push("d".into()), "a frame taken frees its room");
        assert_eq!(inbox.try_recv().as_deref(), Some("b"));
        assert_eq!(inbox.try_recv().as_deref(), Some("d"));
        assert_eq!(outbox.queued_bytes(), 0);
        drop(inbox);
        assert!(!outbox.push("e".into()), "the session is gone");
        assert_eq!(
            outbox.queued_bytes(),
            0,
            "nothing is counted for a gone session"
        );
    }

    #[tokio::test]
    async fn the_bound_is_in_bytes_so_one_large_frame_fills_it() {
        let (outbox, _inbox) = Outbox::new(1000);
        assert!(
            !outbox.push("x".repeat(1000)),
            "larger than the whole queue"
        );
        assert!(outbox.push("x".repeat(500)));
        assert!(
            !outbox.push("x".repeat(500)),
            "500 + 500 + overheads > 1000"
        );
        assert!(outbox.push("x".repeat(100)));
        assert_eq!(outbox.queued_bytes(), 600 + 2 * FRAME_OVERHEAD);
    }

    #[tokio::test]
    async fn the_queue_ends_once_every_outbox_is_gone_after_delivering_what_they_queued() {
        let (outbox, mut inbox) = Outbox::new(OUTBOX_BYTES);
        let other = outbox.clone();
        assert!(outbox.push("a".into()));
        drop(outbox);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(frame) = inbox.recv().await {
                got.push(frame);
            }
            got
        });
        // The reader is waiting on an empty queue when these come.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(other.push("b".into()));
        assert!(other.push("c".into()));
        drop(other);
        let got = tokio::time::timeout(std::time::Duration::from_secs(1), reader)
            .await
            .expect("the queue ended when the last sender went")
            .expect("reader ran");
        assert_eq!(got, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn an_emptied_queue_gives_back_a_bursts_memory() {
        let (outbox, mut inbox) = Outbox::new(OUTBOX_BYTES);
        for i in 0..1000 {
            assert!(outbox.push(i.to_string()));
        }
        while inbox.try_recv().is_some() {}
        assert!(outbox.shared.frames().queue.capacity() <= KEPT_SLOTS);
        assert_eq!(outbox.queued_bytes(), 0);
    }
}
