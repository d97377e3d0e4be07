//! The client protocol's server pushes (`{"notification": …, "data": {…}}`, docs/protocol.md),
//! typed: each has its fields, and the frame is made once from the enum.

use ids::{ConsumerId, DataConsumerId, DataProducerId, ProducerId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Kind, PeerId};

/// What the server pushes to a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "notification", content = "data", rename_all = "camelCase")]
pub enum Notification {
    /// Who joined and who left the room since this peer joined or was last told: the room's
    /// joins and leaves of a short tick, in one frame.
    #[serde(rename_all = "camelCase")]
    PeersChanged {
        /// Peers that joined.
        joined: Vec<JoinedPeer>,
        /// Peers that left (or whose connection dropped and did not come back in time).
        left: Vec<PeerId>,
        /// In a room larger than the SFU lists watchers in: how many peers only watch (they
        /// are counted here, never listed). Absent in smaller rooms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        watching: Option<u32>,
    },
    /// Another peer produces: `consume` it to receive it.
    #[serde(rename_all = "camelCase")]
    NewProducer {
        /// Whose.
        peer_id: PeerId,
        /// Which.
        producer_id: ProducerId,
        /// Audio or video.
        kind: Kind,
        /// What its peer said of it in `produce` (e.g. `{"source":"screen"}`).
        #[serde(skip_serializing_if = "Option::is_none")]
        app_data: Option<Value>,
    },
    /// Quality of what this peer sends (mediasoup's `ProducerScore` list).
    #[serde(rename_all = "camelCase")]
    ProducerScore {
        /// Which producer.
        producer_id: ProducerId,
        /// Per encoding: `{ssrc, score, …}`.
        score: Value,
    },
    /// The producer behind a consumer went away.
    #[serde(rename_all = "camelCase")]
    ConsumerClosed {
        /// Which consumer.
        consumer_id: ConsumerId,
        /// Its producer.
        producer_id: ProducerId,
    },
    /// The producer behind a consumer was paused.
    #[serde(rename_all = "camelCase")]
    ConsumerPaused {
        /// Which consumer.
        consumer_id: ConsumerId,
    },
    /// The producer behind a consumer was resumed.
    #[serde(rename_all = "camelCase")]
    ConsumerResumed {
        /// Which consumer.
        consumer_id: ConsumerId,
    },
    /// Quality of what this peer receives (mediasoup's `ConsumerScore`).
    #[serde(rename_all = "camelCase")]
    ConsumerScore {
        /// Which consumer.
        consumer_id: ConsumerId,
        /// `{score, producerScore, producerScores}`.
        score: Value,
    },
    /// Simulcast/SVC layers switched (`null`: none is sent).
    #[serde(rename_all = "camelCase")]
    ConsumerLayersChanged {
        /// Which consumer.
        consumer_id: ConsumerId,
        /// Spatial layer.
        spatial_layer: Option<u8>,
        /// Temporal layer.
        temporal_layer: Option<u8>,
    },
    /// The loudest audio producer of the room changed.
    #[serde(rename_all = "camelCase")]
    ActiveSpeaker {
        /// Whose.
        peer_id: PeerId,
        /// Which producer.
        producer_id: ProducerId,
    },
    /// Which peers' videos this peer receives now (it asked for last-N): the others' video
    /// consumers are paused by the SFU until they are among them again.
    #[serde(rename_all = "camelCase")]
    ForwardedVideos {
        /// The peers, the most recent speaker first, then the pinned.
        peer_ids: Vec<PeerId>,
    },
    /// Another peer sends on a data channel: `consumeData` it to receive it.
    #[serde(rename_all = "camelCase")]
    NewDataProducer {
        /// Whose.
        peer_id: PeerId,
        /// Which.
        data_producer_id: DataProducerId,
        /// Its label (e.g. `chat`).
        label: String,
        /// Its sub-protocol.
        protocol: String,
        /// What its peer said of it in `produceData`.
        #[serde(skip_serializing_if = "Option::is_none")]
        app_data: Option<Value>,
    },
    /// The data producer behind a data consumer went away.
    #[serde(rename_all = "camelCase")]
    DataConsumerClosed {
        /// Which data consumer.
        data_consumer_id: DataConsumerId,
        /// Its data producer.
        data_producer_id: DataProducerId,
    },
    /// This peer's data producer sent more messages in a second than the SFU allows: it is
    /// paused for `pausedMs` (what it sends meanwhile is dropped).
    #[serde(rename_all = "camelCase")]
    DataProducerThrottled {
        /// Which data producer.
        data_producer_id: DataProducerId,
        /// The limit.
        max_messages_per_sec: u32,
        /// How long it is paused.
        paused_ms: u32,
    },
    /// The room's node failed: join again (docs/protocol.md, "Recovering from roomMoved").
    RoomMoved {
        /// The room.
        room: String,
        /// What happened.
        reason: String,
    },
    /// This peer's media moves to another media server (its node is drained): create new
    /// transports (`createWebRtcTransport` now places them there), consume `peers`'
    /// producers and produce again on them, then close the old transports
    /// (docs/protocol.md, "Moving in a drain").
    MediaMoving {
        /// What can be consumed there now, as in the join answer; the rest comes as
        /// `newProducer`.
        peers: Vec<crate::PeerInfo>,
    },
    /// One of this peer's transports connected (DTLS up, or ICE back after a loss), lost its
    /// client (no ICE consent checks for the consent timeout: its network is gone), or failed
    /// or was closed at the DTLS level. A lost transport sends nothing until ICE comes back
    /// (`restartIce` helps).
    #[serde(rename_all = "camelCase")]
    TransportState {
        /// Which transport.
        transport_id: ids::TransportId,
        /// What happened.
        state: TransportState,
    },
    /// The SFU is stopping; the socket closes within seconds.
    ShuttingDown {},
    /// In a cluster: the hosts changed (one joined or left); every host's signaling URL.
    HostsChanged {
        /// The URLs, as in the join answer's `hosts`.
        urls: Vec<String>,
    },
    /// The room is being recorded (`active`), told when it starts and to whoever joins while
    /// it lasts, or no longer (`active: false`).
    Recording {
        /// Whether it records now.
        active: bool,
    },
}

/// What became of a transport, in [`Notification::TransportState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TransportState {
    /// Media flows.
    Connected,
    /// The client went silent (ICE consent expired).
    Disconnected,
    /// DTLS failed.
    Failed,
    /// The client closed DTLS.
    Closed,
}

/// A peer that joined, in [`Notification::PeersChanged`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinedPeer {
    /// Its id.
    pub peer_id: PeerId,
    /// Its name.
    pub display_name: String,
}

impl Notification {
    /// The frame to send.
    pub fn to_frame(&self) -> String {
        // Plain strings, ids and JSON values: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| {
            tracing::error!("cannot serialize a notification: {e}");
            String::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const PROTOCOL_MD: &str = include_str!("../../docs/protocol.md");

    fn one_of_each() -> Vec<Notification> {
        let (peer_id, producer_id, consumer_id) = (
            PeerId::nil(),
            ProducerId(uuid::Uuid::nil()),
            ConsumerId(uuid::Uuid::nil()),
        );
        vec![
            Notification::PeersChanged {
                joined: vec![JoinedPeer {
                    peer_id,
                    display_name: "Alice".into(),
                }],
                left: vec![peer_id],
                watching: Some(740),
            },
            Notification::NewProducer {
                peer_id,
                producer_id,
                kind: Kind::Video,
                app_data: Some(serde_json::json!({"source": "screen"})),
            },
            Notification::ProducerScore {
                producer_id,
                score: serde_json::json!([{"ssrc": 1, "score": 10}]),
            },
            Notification::ConsumerClosed {
                consumer_id,
                producer_id,
            },
            Notification::ConsumerPaused { consumer_id },
            Notification::ConsumerResumed { consumer_id },
            Notification::ConsumerScore {
                consumer_id,
                score: serde_json::json!({"score": 10, "producerScore": 10, "producerScores": [10]}),
            },
            Notification::ConsumerLayersChanged {
                consumer_id,
                spatial_layer: None,
                temporal_layer: None,
            },
            Notification::ActiveSpeaker {
                peer_id,
                producer_id,
            },
            Notification::ForwardedVideos {
                peer_ids: vec![peer_id],
            },
            Notification::NewDataProducer {
                peer_id,
                data_producer_id: DataProducerId(uuid::Uuid::nil()),
                label: "chat".into(),
                protocol: String::new(),
                app_data: None,
            },
            Notification::DataConsumerClosed {
                data_consumer_id: DataConsumerId(uuid::Uuid::nil()),
                data_producer_id: DataProducerId(uuid::Uuid::nil()),
            },
            Notification::DataProducerThrottled {
                data_producer_id: DataProducerId(uuid::Uuid::nil()),
                max_messages_per_sec: 20,
                paused_ms: 1000,
            },
            Notification::RoomMoved {
                room: "demo".into(),
                reason: "media node failed".into(),
            },
            Notification::MediaMoving { peers: Vec::new() },
            Notification::ShuttingDown {},
            Notification::TransportState {
                transport_id: ids::TransportId(uuid::Uuid::nil()),
                state: TransportState::Disconnected,
            },
            Notification::HostsChanged {
                urls: vec!["wss://sfu1.example.org/ws".into()],
            },
            Notification::Recording { active: true },
        ]
    }

    #[test]
    fn frames_have_the_documented_shape() {
        let frame = Notification::NewProducer {
            peer_id: PeerId::nil(),
            producer_id: ProducerId(uuid::Uuid::nil()),
            kind: Kind::Audio,
            app_data: None,
        }
        .to_frame();
        let nil = "00000000-0000-0000-0000-000000000000";
        assert_eq!(
            frame,
            format!(
                r#"{{"notification":"newProducer","data":{{"peerId":"{nil}","producerId":"{nil}","kind":"audio"}}}}"#
            )
        );
        assert_eq!(
            Notification::ShuttingDown {}.to_frame(),
            r#"{"notification":"shuttingDown","data":{}}"#
        );
        for notification in one_of_each() {
            let back: Notification = serde_json::from_str(&notification.to_frame()).unwrap();
            assert_eq!(back, notification);
        }
    }

    /// The table of docs/protocol.md lists exactly the notifications of this enum, and every
    /// example frame in the document parses as one.
    #[test]
    fn docs_protocol_md_matches_the_enum() {
        let section = PROTOCOL_MD
            .split("## Notifications")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .and_then(|s| s.split("\n# ").next())
            .expect("a Notifications section");
        let documented: BTreeSet<String> = section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .flat_map(|l| {
                let names = l.split('|').nth(1).unwrap_or_default();
                names
                    .split(',')
                    .map(|n| n.trim().trim_matches('`').to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        let implemented: BTreeSet<String> = one_of_each()
            .iter()
            .map(|n| {
                serde_json::to_value(n).unwrap()["notification"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(documented, implemented);
        let examples: Vec<&str> = PROTOCOL_MD
            .lines()
            .filter(|l| l.starts_with(r#"{"notification""#))
            .collect();
        assert!(!examples.is_empty());
        for example in examples {
            serde_json::from_str::<Notification>(example)
                .unwrap_or_else(|e| panic!("docs/protocol.md example {example}: {e}"));
        }
    }
}
