//! What happened in the SFU, for monitor subscribers: a bounded broadcast. A subscriber that
//! does not keep up loses the oldest events and is told how many (the supervisor's memory
//! does not grow with a slow monitor).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use monitor_api::{Event, EventKind};
use tokio::sync::broadcast;

/// Events kept for subscribers that are behind; older ones are dropped for them.
pub const EVENT_BACKLOG: usize = 1024;

/// The SFU's event stream.
#[derive(Clone, Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(EVENT_BACKLOG)
    }
}

impl EventBus {
    /// A stream keeping up to `backlog` events per lagging subscriber.
    pub fn new(backlog: usize) -> Self {
        Self {
            sender: broadcast::channel(backlog).0,
        }
    }

    /// Stamps `kind` with the current time and sends it to every subscriber (none is fine).
    pub fn publish(&self, kind: EventKind) {
        let _ = self.sender.send(Arc::new(stamped(kind)));
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}

/// `kind` stamped with the current time.
pub fn stamped(kind: EventKind) -> Event {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Event { at, kind }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broadcast::error::TryRecvError;

    fn left(n: u32) -> EventKind {
        EventKind::PeerLeft {
            room: "r".into(),
            peer_id: n.to_string(),
        }
    }

    #[test]
    fn a_slow_subscriber_is_told_how_many_it_missed_and_gets_the_newest() {
        let bus = EventBus::new(4);
        let mut slow = bus.subscribe();
        for n in 0..10 {
            bus.publish(left(n));
        }
        assert_eq!(slow.try_recv().unwrap_err(), TryRecvError::Lagged(6));
        let kept: Vec<EventKind> = std::iter::from_fn(|| slow.try_recv().ok())
            .map(|e| e.kind.clone())
            .collect();
        assert_eq!(kept, (6..10).map(left).collect::<Vec<_>>());
    }

    #[test]
    fn publishing_without_subscribers_is_fine() {
        let bus = EventBus::default();
        bus.publish(left(1));
        let mut late = bus.subscribe();
        assert_eq!(late.try_recv().unwrap_err(), TryRecvError::Empty);
    }
}
