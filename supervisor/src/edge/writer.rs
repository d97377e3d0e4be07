//! A `/ws` session's writer: its own task, so that a client slow to read never holds up the
//! session's reader. It writes the session's outbox (batched, one flush per burst) and what
//! the reader asks of it (pings, the close), each write bounded in time.

use std::sync::Mutex;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::sync::Notify;

use crate::edge::outbox::Inbox;

/// Frames written before one flush.
const WRITE_BATCH: usize = 64;
/// How long one write (or flush) to a client's socket may take: a client that takes nothing
/// for this long is dropped rather than holding the writer (and its queue) for ever.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the reader asks of the writer.
enum Control {
    /// A ping with this payload.
    Ping([u8; 16]),
    /// The connection's last frame.
    Close(CloseFrame),
}

/// The reader's requests to the writer: the latest ping not yet written and the close. Two
/// slots rather than a channel, which would reserve 32 per session up front.
#[derive(Default)]
pub(crate) struct Controls {
    slots: Mutex<ControlSlots>,
    ready: Notify,
}

#[derive(Default)]
struct ControlSlots {
    ping: Option<[u8; 16]>,
    close: Option<CloseFrame>,
}

impl Controls {
    fn slots(&self) -> std::sync::MutexGuard<'_, ControlSlots> {
        // Nothing panics while holding it.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for a ping; an unwritten older one is replaced (only recent pings count).
    pub(crate) fn ping(&self, payload: [u8; 16]) {
        self.slots().ping = Some(payload);
        self.ready.notify_one();
    }

    /// Asks for the close frame (the first one asked wins).
    pub(crate) fn close(&self, frame: CloseFrame) {
        self.slots().close.get_or_insert(frame);
        self.ready.notify_one();
    }

    /// The next request, the close first.
    async fn next(&self) -> Control {
        loop {
            {
                let mut slots = self.slots();
                if let Some(frame) = slots.close.take() {
                    return Control::Close(frame);
                }
                if let Some(payload) = slots.ping.take() {
                    return Control::Ping(payload);
                }
            }
            // A request between the check and this wait is kept as a permit.
            self.ready.notified().await;
        }
    }
}

/// Writes the session's frames (batched, one flush per burst) and the reader's pings and
/// close, until the queue ends, a close is written, or a write fails or times out.
pub(crate) async fn write_frames(
    sink: &mut SplitSink<WebSocket, Message>,
    mut queued: Inbox,
    controls: &Controls,
) -> Result<(), WriteError> {
    loop {
        tokio::select! {
            // A close decided by the reader wins over the end of the queue it implies.
            biased;
            control = controls.next() => match control {
                Control::Close(frame) => {
                    return write(sink.send(Message::Close(Some(frame)))).await;
                }
                Control::Ping(payload) => {
                    write(sink.send(Message::Ping(payload.to_vec().into()))).await?
                }
            },
            frame = queued.recv() => {
                let Some(text) = frame else { return Ok(()) };
                // Write what else is queued too, then flush once: one syscall for a burst of
                // notifications instead of one per frame.
                write(sink.feed(Message::Text(text.into()))).await?;
                let mut batch = 1;
                while batch < WRITE_BATCH {
                    let Some(text) = queued.try_recv() else { break };
                    write(sink.feed(Message::Text(text.into()))).await?;
                    batch += 1;
                }
                write(sink.flush()).await?;
            }
        }
    }
}

/// Why the writer stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("the socket took nothing for {WRITE_TIMEOUT:?}")]
    Timeout,
    #[error("{0}")]
    Socket(#[from] axum::Error),
}

/// One write to the socket, at most [`WRITE_TIMEOUT`].
async fn write(
    io: impl std::future::Future<Output = Result<(), axum::Error>>,
) -> Result<(), WriteError> {
    match tokio::time::timeout(WRITE_TIMEOUT, io).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(WriteError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_ping(control: &Control, payload: u8) -> bool {
        matches!(control, Control::Ping(p) if *p == [payload; 16])
    }

    #[tokio::test]
    async fn the_close_goes_before_any_ping_and_only_the_latest_unwritten_ping_is_sent() {
        let controls = Controls::default();
        controls.ping([1; 16]);
        controls.ping([2; 16]);
        assert!(
            is_ping(&controls.next().await, 2),
            "the older ping was replaced"
        );
        controls.ping([3; 16]);
        controls.close(CloseFrame {
            code: 1000,
            reason: "first".into(),
        });
        controls.close(CloseFrame {
            code: 1013,
            reason: "second".into(),
        });
        match controls.next().await {
            Control::Close(frame) => {
                assert_eq!((frame.code, frame.reason.as_str()), (1000, "first"))
            }
            Control::Ping(_) => panic!("a ping before the close"),
        }
        assert!(is_ping(&controls.next().await, 3));
    }

    #[tokio::test]
    async fn a_request_made_while_the_writer_waits_wakes_it() {
        let controls = std::sync::Arc::new(Controls::default());
        let waiting = tokio::spawn({
            let controls = controls.clone();
            async move { matches!(controls.next().await, Control::Ping(_)) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        controls.ping([7; 16]);
        let woke = tokio::time::timeout(std::time::Duration::from_secs(1), waiting).await;
        assert!(
            matches!(woke, Ok(Ok(true))),
            "the writer was woken by the ping"
        );
    }
}
