//! Where a session's outgoing frames go: a queue bounded in bytes, so that a client that does
//! not read cannot grow the supervisor's memory, whatever the size of its frames. Nothing
//! waits for room in it: a frame that does not fit (an answer or a notification) is not
//! dropped silently (a lost `newProducer` would leave someone invisible to that client for
//! ever): the session is told to close the connection (1013), and the client joins again
//! with a consistent view.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

/// Bytes a session may have queued for its client before it is closed as too slow.
pub const OUTBOX_BYTES: usize = 1 << 20;

/// What a frame costs beyond its text (its `String` and queue slot), so that a flood of tiny
/// frames is bounded too.
const FRAME_OVERHEAD: usize = 64;

/// What the two sides share.
#[derive(Debug)]
struct Shared {
    /// Bytes queued and not yet taken by the writer.
    queued: AtomicUsize,
    capacity: usize,
    overflow: Arc<Notify>,
    /// Set when another connection resumed this session's peer.
    evicted: AtomicBool,
    /// The session's room moved to another host ([`Outbox::move_away`]).
    moved: AtomicBool,
}

/// The sending side of a session's queue (clones share it).
#[derive(Clone, Debug)]
pub struct Outbox {
    frames: mpsc::UnboundedSender<String>,
    shared: Arc<Shared>,
}

/// The session's side: the frames to write, and the signal that one did not fit.
#[derive(Debug)]
pub struct Inbox {
    frames: mpsc::UnboundedReceiver<String>,
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
        let (frames, queued) = mpsc::unbounded_channel();
        let overflow = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            capacity,
            overflow: overflow.clone(),
            evicted: AtomicBool::new(false),
            moved: AtomicBool::new(false),
        });
        let inbox = Inbox {
            frames: queued,
            shared: shared.clone(),
            overflow,
        };
        (Outbox { frames, shared }, inbox)
    }

    /// Queues a frame without waiting; `false` if it did not fit (the session is then told to
    /// close) or the session is gone.
    pub fn push(&self, frame: String) -> bool {
        let cost = cost(&frame);
        let shared = &self.shared;
        let reserved = shared
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued + cost <= shared.capacity).then_some(queued + cost)
            });
        if reserved.is_err() {
            shared.overflow.notify_one();
            return false;
        }
        if self.frames.send(frame).is_err() {
            shared.queued.fetch_sub(cost, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Whether `other` is this very queue (not just another of the same shape).
    pub fn same_as(&self, other: &Outbox) -> bool {
        self.frames.same_channel(&other.frames)
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

impl Inbox {
    fn taken(&self, frame: &str) {
        self.shared.queued.fetch_sub(cost(frame), Ordering::AcqRel);
    }

    /// The next frame, waiting for one; `None` once every [`Outbox`] is gone.
    pub async fn recv(&mut self) -> Option<String> {
        let frame = self.frames.recv().await?;
        self.taken(&frame);
        Some(frame)
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Option<String> {
        let frame = self.frames.try_recv().ok()?;
        self.taken(&frame);
        Some(frame)
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
}
