//! What hosts publish in etcd, and where. Values are JSON, so an operator can read them with
//! `etcdctl get --prefix /sfu/`.
//!
//! - `<prefix>hosts/<host id>`: a [`HostRecord`], under the host's lease (gone when the
//!   host is);
//! - `<prefix>rooms/<room>`: the id of the room's owner host, under the owner's lease,
//!   created only if absent.

use std::net::SocketAddr;

use ids::HostId;
use serde::{Deserialize, Serialize};

/// What a host says about itself, refreshed about once a second.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostRecord {
    /// The host (`HOST_ID`).
    pub id: HostId,
    /// Where its supervisor takes links from the other supervisors (`CLUSTER_ADDR`).
    pub cluster_addr: SocketAddr,
    /// The signaling URL clients use for it (`PUBLIC_URL`).
    pub public_url: String,
    /// Node processes running.
    pub nodes: u32,
    /// mediasoup workers over those nodes.
    pub workers: u32,
    /// Consumers on its workers.
    pub consumers: u32,
    /// Consumers it can still take, over its workers and the nodes it may still start.
    pub headroom: u32,
    /// Rooms it owns.
    pub rooms_owned: u32,
    /// The lease it is published under (hexadecimal).
    #[serde(default)]
    pub lease: String,
    /// Its nodes, as other hosts may open routers on them for rooms they own (a room that
    /// spans hosts).
    #[serde(default)]
    pub lent: Vec<LentNode>,
}

/// A node of a host, as other hosts see it for placement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LentNode {
    /// The node, as its host numbers it.
    pub node: u32,
    /// Consumers on each of its workers.
    pub consumers: Vec<u32>,
}

/// Longest record a host may publish: anything larger is refused as corrupt.
pub const MAX_RECORD_BYTES: usize = 16384;

impl HostRecord {
    /// The record as stored.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of plain fields always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A stored record, if it is one (a host's record is checked like any input).
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// A record that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Larger than [`MAX_RECORD_BYTES`].
    #[error("record of {0} bytes, more than {MAX_RECORD_BYTES}")]
    TooLarge(usize),
    /// Not a record.
    #[error("malformed record: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// The key layout under one prefix (default `/sfu/`: several clusters may share an etcd).
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new("/sfu/")
    }
}

impl Keys {
    /// Keys under `prefix` (a trailing `/` is added if missing).
    pub fn new(prefix: &str) -> Self {
        let mut prefix = prefix.to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Self { prefix }
    }

    /// Everything the cluster keeps (what a host watches).
    pub fn all(&self) -> String {
        self.prefix.clone()
    }

    /// Every host record.
    pub fn hosts(&self) -> String {
        format!("{}hosts/", self.prefix)
    }

    /// One host's record.
    pub fn host(&self, id: &HostId) -> String {
        format!("{}hosts/{id}", self.prefix)
    }

    /// Every room's owner.
    pub fn rooms(&self) -> String {
        format!("{}rooms/", self.prefix)
    }

    /// One room's owner.
    pub fn room(&self, room: &str) -> String {
        format!("{}rooms/{room}", self.prefix)
    }

    /// What a key names: a host's record, a room's owner, or something else.
    pub fn parse<'k>(&self, key: &'k [u8]) -> KeyOf<'k> {
        let Ok(key) = std::str::from_utf8(key) else {
            return KeyOf::Other;
        };
        let Some(rest) = key.strip_prefix(self.prefix.as_str()) else {
            return KeyOf::Other;
        };
        if let Some(host) = rest.strip_prefix("hosts/") {
            return match HostId::parse(host) {
                Ok(id) => KeyOf::Host(id),
                Err(_) => KeyOf::Other,
            };
        }
        match rest.strip_prefix("rooms/") {
            Some(room) if !room.is_empty() => KeyOf::Room(room),
            _ => KeyOf::Other,
        }
    }
}

/// What a key names.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyOf<'k> {
    /// A host's record.
    Host(HostId),
    /// A room's owner.
    Room(&'k str),
    /// Not ours.
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_hosts_and_rooms_and_nothing_else() {
        let keys = Keys::new("/sfu");
        let h1 = HostId::parse("h1").expect("valid");
        assert_eq!(keys.host(&h1), "/sfu/hosts/h1");
        assert_eq!(keys.parse(b"/sfu/hosts/h1"), KeyOf::Host(h1));
        assert_eq!(keys.parse(b"/sfu/rooms/demo"), KeyOf::Room("demo"));
        assert_eq!(keys.parse(b"/sfu/hosts/bad id"), KeyOf::Other);
        assert_eq!(keys.parse(b"/other/rooms/demo"), KeyOf::Other);
        assert_eq!(keys.parse(b"/sfu/rooms/"), KeyOf::Other);
        assert_eq!(keys.parse(&[0xff, 0xfe]), KeyOf::Other);
    }

    #[test]
    fn a_record_round_trips_and_garbage_is_refused() {
        let record = HostRecord {
            id: HostId::parse("h1").expect("valid"),
            cluster_addr: "10.0.0.1:7000".parse().expect("valid"),
            public_url: "ws://10.0.0.1:8000/ws".into(),
            nodes: 1,
            workers: 2,
            consumers: 3,
            headroom: 997,
            rooms_owned: 1,
            lease: "694da24b5bdde70c".into(),
            lent: vec![LentNode {
                node: 1,
                consumers: vec![3, 0],
            }],
        };
        assert_eq!(
            HostRecord::from_json(&record.to_json()).expect("reads"),
            record
        );
        assert!(HostRecord::from_json(b"{}").is_err());
        assert!(HostRecord::from_json(&vec![b' '; MAX_RECORD_BYTES + 1]).is_err());
        let forged = String::from_utf8(record.to_json())
            .expect("utf8")
            .replace("\"h1\"", "\"h 1\"");
        assert!(HostRecord::from_json(forged.as_bytes()).is_err());
    }
}
