//! Where a session's outgoing frames go: a bounded queue, so that a client that does not read
//! cannot grow the supervisor's memory. A notification that does not fit is not dropped
//! silently (a lost `newProducer` would leave someone invisible to that client for ever): the
//! session is told to close the connection (1013), and the client joins again with a
//! consistent view.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

/// The sending side of a session's queue (clones share it).
#[derive(Clone, Debug)]
pub struct Outbox {
    frames: mpsc::Sender<String>,
    overflow: Arc<Notify>,
    /// Set when another connection resumed this session's peer.
    evicted: Arc<AtomicBool>,
}

/// The session's side: the frames to write, and the signal that one did not fit.
#[derive(Debug)]
pub struct Inbox {
    /// Frames to write, in order.
    pub frames: mpsc::Receiver<String>,
    /// Notified when a notification did not fit, or when the session was evicted
    /// ([`Outbox::is_evicted`]).
    pub overflow: Arc<Notify>,
}

impl Outbox {
    /// A queue of `capacity` frames.
    pub fn new(capacity: usize) -> (Outbox, Inbox) {
        let (frames, queued) = mpsc::channel(capacity);
        let overflow = Arc::new(Notify::new());
        let outbox = Outbox {
            frames,
            overflow: overflow.clone(),
            evicted: Arc::default(),
        };
        (
            outbox,
            Inbox {
                frames: queued,
                overflow,
            },
        )
    }

    /// Queues a notification without waiting; `false` if it did not fit (the session is then
    /// told to close) or the session is gone.
    pub fn push(&self, frame: String) -> bool {
        match self.frames.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Whether `other` is this very queue (not just another of the same shape).
    pub fn same_as(&self, other: &Outbox) -> bool {
        self.frames.same_channel(&other.frames)
    }

    /// Another connection took this session's peer over (`resume`): its session is told to
    /// close.
    pub fn evict(&self) {
        self.evicted.store(true, Ordering::Relaxed);
        self.overflow.notify_one();
    }

    /// Whether [`Outbox::evict`] was called.
    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Queues an answer, waiting for room (the client's own requests wait for it to read).
    pub async fn send(&self, frame: String) -> Result<(), ()> {
        self.frames.send(frame).await.map_err(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_and_signals_instead_of_dropping_quietly() {
        let (outbox, mut inbox) = Outbox::new(2);
        assert!(outbox.push("a".into()));
        assert!(outbox.push("b".into()));
        assert!(!outbox.push("c".into()), "no room for a third");
        // The overflow was signalled (a permit is stored for the session to see).
        tokio::time::timeout(std::time::Duration::from_secs(1), inbox.overflow.notified())
            .await
            .expect("overflow signalled");
        assert_eq!(inbox.frames.recv().await.as_deref(), Some("a"));
        assert_eq!(inbox.frames.recv().await.as_deref(), Some("b"));
        drop(inbox);
        assert!(!outbox.push("d".into()), "the session is gone");
    }
}
