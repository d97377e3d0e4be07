//! The SFU's typed ids, shared by every wire (the client protocol on `/ws`, the supervisor ⇄
//! node IPC, the monitor): a router, transport, producer or consumer id is a type of its own,
//! so one cannot be passed where another is meant. Each is a UUID on the wire (JSON: its
//! string; postcard: its 16 bytes); a room is named by the string clients join it with.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A router, as the supervisor names it when it asks for one: a room has one router per
    /// worker it spans.
    RouterId
);
uuid_id!(
    /// A mediasoup WebRTC or pipe transport, as mediasoup numbers it.
    TransportId
);
uuid_id!(
    /// A mediasoup producer.
    ProducerId
);
uuid_id!(
    /// A mediasoup consumer.
    ConsumerId
);
uuid_id!(
    /// A mediasoup data producer (an SCTP stream a client sends on).
    DataProducerId
);
uuid_id!(
    /// A mediasoup data consumer.
    DataConsumerId
);

/// A room, by the name clients join it with (validated by the supervisor).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoomId(pub String);

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
