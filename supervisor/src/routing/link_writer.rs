//! The writing half of a link between two supervisors: the link's queue written in batches,
//! a ping every second, and the end of the link when a write fails or stalls or the peer
//! stops answering pings.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_api::sealed::{LinkError, SealedWriter};
use cluster_api::LinkMessage;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

/// A message in a link's queue, holding its share of the queue's byte budget until written.
pub(super) type Queued = (LinkMessage, OwnedSemaphorePermit);
/// A ping this often on every link.
const PING_EVERY: Duration = Duration::from_secs(1);
/// A link whose last pong is older than this is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(5);
/// How long one write to a link may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Now, in microseconds since the epoch (what a ping carries, to time its pong).
pub(super) fn micros_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Writes a link's queue (batched), pings every second, and ends when a write fails or takes
/// too long, or the peer has not answered a ping for [`SILENCE_LIMIT`].
pub(super) async fn write_link(
    mut writer: SealedWriter<OwnedWriteHalf>,
    mut queue: mpsc::UnboundedReceiver<Queued>,
    last_pong: Arc<Mutex<Instant>>,
) -> LinkError {
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        let message = tokio::select! {
            message = queue.recv() => match message {
                // Its budget goes back as it leaves the queue (one batch in writing is
                // bounded by the batch size).
                Some((message, _permit)) => message,
                None => return LinkError::Closed,
            },
            _ = ping.tick() => {
                let silent = last_pong.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
                if silent > SILENCE_LIMIT {
                    return LinkError::Refused(format!("no pong for {silent:?}"));
                }
                LinkMessage::Ping(micros_now())
            }
        };
        let batch = async {
            writer.feed(&message).await?;
            for _ in 0..64 {
                match queue.try_recv() {
                    Ok((more, _permit)) => writer.feed(&more).await?,
                    Err(_) => break,
                }
            }
            writer.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, batch).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return e,
            Err(_) => return LinkError::Refused("a write took too long".into()),
        }
    }
}
