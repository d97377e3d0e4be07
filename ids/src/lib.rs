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

/// A host of a cluster (`HOST_ID`): 1 to 63 characters of ASCII letters, digits, `-`, `_`
/// and `.`, so it is safe in etcd keys, log lines and the resume tokens it prefixes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostId(String);

/// Why a host id is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadHostId(pub String);

impl fmt::Display for BadHostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host id {:?}: 1 to 63 characters of letters, digits, '-', '_' and '.'",
            self.0
        )
    }
}

impl std::error::Error for BadHostId {}

impl HostId {
    /// Longest host id.
    pub const MAX_LEN: usize = 63;

    /// `text` as a host id, if it is one.
    pub fn parse(text: &str) -> Result<Self, BadHostId> {
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(Self(text.to_string()))
        } else {
            Err(BadHostId(text.chars().take(80).collect()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for HostId {
    type Err = BadHostId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for HostId {
    type Error = BadHostId;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<HostId> for String {
    fn from(id: HostId) -> String {
        id.0
    }
}

#[cfg(test)]
mod host_id_tests {
    use super::HostId;

    #[test]
    fn host_ids_are_short_and_safe_in_keys_and_logs() {
        assert!(HostId::parse("h1").is_ok());
        assert!(HostId::parse("sfu-eu.west_2").is_ok());
        assert!(HostId::parse("").is_err());
        assert!(HostId::parse("a/b").is_err());
        assert!(HostId::parse("line\nbreak").is_err());
        assert!(HostId::parse(&"x".repeat(64)).is_err());
        // Deserializing goes through the same check.
        assert!(HostId::try_from("a b".to_string()).is_err());
    }
}
