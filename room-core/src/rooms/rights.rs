//! Who may do what: a peer's rights and credentials from its join token, how it reached the
//! SFU, and the limits on what any client may do.

use serde::{Deserialize, Serialize};

/// Limits on what clients may do.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Peers in one room.
    pub max_peers_per_room: usize,
    /// Producers of one peer.
    pub max_producers_per_peer: usize,
    /// WebRTC transports of one peer.
    pub max_transports_per_peer: usize,
    /// Consumers of one peer.
    pub max_consumers_per_peer: usize,
    /// Consumers one mediasoup worker takes before it counts as full.
    pub max_consumers_per_worker: u32,
    /// Node processes the pool may grow to.
    pub max_nodes: u32,
    /// Rooms up to this size list every peer; in larger ones a peer that may not publish is
    /// counted (`watching`), not announced.
    pub list_watchers_up_to: usize,
}

/// What a peer may do in its room: its join token's grant, or [`Rights::OPEN`] when the SFU
/// runs without join tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rights {
    /// May produce.
    pub publish: bool,
    /// May consume.
    pub subscribe: bool,
    /// May start and stop the room's recording.
    pub record: bool,
}

impl Rights {
    /// Publish, subscribe and record.
    pub const ALL: Rights = Rights {
        publish: true,
        subscribe: true,
        record: true,
    };
    /// Without join tokens: publish and subscribe; recording is the admin's (the monitor),
    /// so that nobody who merely reaches the port can fill the SFU's disk.
    pub const OPEN: Rights = Rights {
        publish: true,
        subscribe: true,
        record: false,
    };
}

/// Who a peer is by its join token, and until when the token holds: a session outlives
/// neither (a `resume` after `expires_at` is refused).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// What it may do.
    pub rights: Rights,
    /// The token's `sub`; `None` without join tokens.
    pub identity: Option<String>,
    /// The token's `exp`, seconds since the Unix epoch; `None` without join tokens.
    pub expires_at: Option<u64>,
    /// How it came: `/ws`, WHIP or WHEP.
    pub via: Via,
}

/// How a peer reached the SFU, for the monitor (its rights and limits are the same).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The `/ws` protocol (the demo page, mediasoup-client apps, the loadgen).
    #[default]
    Ws,
    /// A WHIP publisher.
    Whip,
    /// A WHEP player.
    Whep,
}

impl Via {
    /// `whip` or `whep`; `None` for `/ws`, the usual way.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Via::Ws => None,
            Via::Whip => Some("whip"),
            Via::Whep => Some("whep"),
        }
    }
}

impl Default for Rights {
    fn default() -> Self {
        Rights::OPEN
    }
}

impl From<Rights> for Credentials {
    fn from(rights: Rights) -> Self {
        Credentials {
            rights,
            identity: None,
            expires_at: None,
            via: Via::Ws,
        }
    }
}
