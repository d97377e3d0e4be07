//! A call that minds its own business: two peers in a room of their own exchanging media the
//! whole time an abuse test runs, to show that a refusal (a limit, a bad token, a timeout)
//! harmed nobody else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signaling_api::calls::GetRouterRtpCapabilities;
use tokio::task::JoinHandle;

use super::peer::{Joining, TestPeer};
use super::signaling::Expect;
use super::streams::assert_exact_media_from;

/// Packets per second per track.
const RATE: u64 = 50;

/// Two peers of room `bystanders` sending and receiving audio and video.
pub struct Bystanders {
    started: Instant,
    /// The first packet number counted: each sends until both have heard the other.
    counted_from: u64,
    stop: Arc<AtomicBool>,
    task: JoinHandle<(TestPeer, TestPeer, u64)>,
}

impl Bystanders {
    /// Joins the two, makes each consume the other, and starts the media.
    pub async fn start(url: &str, ca: Option<&str>, token: Option<&str>) -> Bystanders {
        let room = "bystanders";
        let (mut a, mut b) = Joining::new(url)
            .ca(ca)
            .token(token)
            .pair(room, ["A", "B"], 0x0b00_0000)
            .await;
        // Until each has heard the other, packets are not counted: a stream's first packet is
        // the one loss NACK cannot repair (the receiver has no earlier number to see a gap
        // from), and an abuse test loads the machine while the call starts (seen: the first
        // video packet of 48 lost, once).
        let deadline = Instant::now() + Duration::from_secs(5);
        let heard = |receiver: &TestPeer, sender: &TestPeer| {
            (receiver.consumers_of(&[sender]).into_iter()).all(|i| receiver.arrivals(i).count() > 0)
        };
        loop {
            a.send_media();
            b.send_media();
            tokio::time::sleep(Duration::from_millis(1000 / RATE)).await;
            if heard(&a, &b) && heard(&b, &a) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the bystanders never heard each other"
            );
        }
        let counted_from = a.sent() + 1;
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut ticks = 0;
                while !stop.load(Ordering::Relaxed) {
                    a.send_media();
                    b.send_media();
                    ticks += 1;
                    tokio::time::sleep(Duration::from_millis(1000 / RATE)).await;
                }
                (a, b, ticks)
            }
        });
        Bystanders {
            started: Instant::now(),
            counted_from,
            stop,
            task,
        }
    }

    /// Stops the media and checks that every packet of every track arrived, exactly once,
    /// and that both peers' signaling still answers.
    pub async fn assert_unharmed(self) {
        // A quick test still gets a second of the call's media to judge.
        tokio::time::sleep_until((self.started + Duration::from_secs(1)).into()).await;
        self.stop.store(true, Ordering::Relaxed);
        let (mut a, mut b, ticks) = self.task.await.expect("the bystanders' media task");
        assert!(
            ticks >= RATE / 2,
            "{ticks} ticks: a second of media, near enough"
        );
        // Every packet counted arrives, once.
        assert_exact_media_from(&[&a, &b], &[&a, &b], self.counted_from).await;
        for peer in [&mut a, &mut b] {
            assert_eq!(peer.consumers.len(), 2, "{} consumes two tracks", peer.name);
            peer.signaling.ok(&GetRouterRtpCapabilities {}).await;
        }
    }
}
