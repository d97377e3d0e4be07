//! This host's side of the cluster directory in etcd: its record under a lease refreshed
//! about once a second, room claims (a transaction that creates the room's key only if it is
//! absent, under this host's lease) and releases (only of the key this host created: fenced
//! by its create revision), and the watch that tells [`Routing`] every host and every room's
//! owner. etcd does the consensus; nothing here is home-made.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_api::records::KeyOf;
use cluster_api::{HostRecord, Keys};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use ids::HostId;
use ipc::messages::RoomId;

use super::Routing;

/// How often the lease is renewed and the record refreshed.
const REFRESH: Duration = Duration::from_secs(1);
/// How long one call to etcd may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the directory could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// etcd refused or failed.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// etcd took too long.
    #[error("etcd did not answer within {CALL_TIMEOUT:?}")]
    Timeout,
    /// This host has no lease to claim under.
    #[error("this host holds no lease")]
    NoLease,
    /// An answer that does not say what it should.
    #[error("unexpected answer from etcd: {0}")]
    Unexpected(&'static str),
}

async fn timed<T>(
    call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, DirectoryError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(DirectoryError::Timeout),
    }
}

/// The directory, as this host uses it.
pub struct Directory {
    client: Client,
    keys: Keys,
    me: HostId,
    /// The lease this host holds now; 0: none.
    lease: AtomicI64,
}

impl Directory {
    /// Connects to etcd at `endpoints` (a start without a reachable etcd fails here, with
    /// the reason).
    pub async fn connect(
        endpoints: &[String],
        keys: Keys,
        me: HostId,
    ) -> Result<Self, DirectoryError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(CALL_TIMEOUT)
            .with_timeout(CALL_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        let client = timed(Client::connect(endpoints, Some(options))).await?;
        // One call, so that an unreachable etcd stops the start instead of every join.
        let mut probe = client.clone();
        timed(probe.get(keys.hosts(), Some(GetOptions::new().with_count_only()))).await?;
        Ok(Self {
            client,
            keys,
            me,
            lease: AtomicI64::new(0),
        })
    }

    /// Claims `room` for this host: `Ok(Ok(revision))` when its key was absent and is now
    /// this host's (created at `revision`), `Ok(Err(owner))` when another host has it.
    pub async fn claim(&self, room: &RoomId) -> Result<Result<i64, HostId>, DirectoryError> {
        let lease = self.lease.load(Ordering::Acquire);
        if lease == 0 {
            return Err(DirectoryError::NoLease);
        }
        let key = self.keys.room(&room.0);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                self.me.as_str(),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let mut client = self.client.clone();
        let response = timed(client.txn(txn)).await?;
        if response.succeeded() {
            let revision = response
                .header()
                .map(|h| h.revision())
                .ok_or(DirectoryError::Unexpected("a transaction without header"))?;
            return Ok(Ok(revision));
        }
        // Created and gone between the compare and the get: the caller may try again.
        owner_in(&response, "the room's key vanished during the claim").map(Err)
    }

    /// After this host got a new lease: `room`, which it still serves, is put under the new
    /// lease if its key is gone or still names this host (then under the old lease, which
    /// expires): the create revision its release is fenced by. If another host owns the room
    /// now, that host.
    pub async fn reclaim(&self, room: &RoomId) -> Result<Result<i64, HostId>, DirectoryError> {
        let lease = self.lease.load(Ordering::Acquire);
        if lease == 0 {
            return Err(DirectoryError::NoLease);
        }
        let key = self.keys.room(&room.0);
        let put = || {
            TxnOp::put(
                key.clone(),
                self.me.as_str(),
                Some(PutOptions::new().with_lease(lease)),
            )
        };
        let mut client = self.client.clone();
        // Absent, or this host's: put under the new lease, in one transaction each way.
        let absent = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([put()]);
        let response = timed(client.txn(absent)).await?;
        if response.succeeded() {
            return response
                .header()
                .map(|h| Ok(h.revision()))
                .ok_or(DirectoryError::Unexpected("a transaction without header"));
        }
        let mine = Txn::new()
            .when([Compare::value(
                key.clone(),
                CompareOp::Equal,
                self.me.as_str(),
            )])
            .and_then([put()])
            .or_else([TxnOp::get(key.clone(), None)]);
        let response = timed(client.txn(mine)).await?;
        if response.succeeded() {
            let listed = timed(client.get(key, None)).await?;
            return listed
                .kvs()
                .first()
                .map(|kv| Ok(kv.create_revision()))
                .ok_or(DirectoryError::Unexpected(
                    "the room's key vanished after its reclaim",
                ));
        }
        owner_in(&response, "the room's key vanished during the reclaim").map(Err)
    }

    /// Takes `room` over from host `from`, which handed it to this host: its key, still
    /// `from`'s (same create revision), names this host and lives under this host's lease
    /// from now on, in one transaction; `Ok(Err(owner))` when it is not `from`'s any more.
    pub async fn take_over(
        &self,
        room: &RoomId,
        from: &HostId,
        revision: i64,
    ) -> Result<Result<(), HostId>, DirectoryError> {
        let lease = self.lease.load(Ordering::Acquire);
        if lease == 0 {
            return Err(DirectoryError::NoLease);
        }
        let key = self.keys.room(&room.0);
        let txn = Txn::new()
            .when([
                Compare::value(key.clone(), CompareOp::Equal, from.as_str()),
                Compare::create_revision(key.clone(), CompareOp::Equal, revision),
            ])
            .and_then([TxnOp::put(
                key.clone(),
                self.me.as_str(),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let mut client = self.client.clone();
        let response = timed(client.txn(txn)).await?;
        if response.succeeded() {
            return Ok(Ok(()));
        }
        owner_in(&response, "the room's key is gone: its lease expired").map(Err)
    }

    /// Deletes `room`'s key if it is still the one this host created at `revision`.
    pub async fn release(&self, room: &RoomId, revision: i64) {
        let key = self.keys.room(&room.0);
        let txn = Txn::new()
            .when([Compare::create_revision(
                key.clone(),
                CompareOp::Equal,
                revision,
            )])
            .and_then([TxnOp::delete(key, None)]);
        let mut client = self.client.clone();
        match timed(client.txn(txn)).await {
            Ok(r) if r.succeeded() => tracing::info!(room = %room, "room released"),
            Ok(_) => {
                tracing::info!(room = %room, "room not released: its key is not this host's any more")
            }
            Err(e) => {
                tracing::warn!(room = %room, "releasing the room failed (its key goes with the lease): {e}")
            }
        }
    }

    /// Keeps this host's lease and record for as long as the process lives: grants a lease,
    /// publishes `record()` under it, renews it every second and republishes the record
    /// when it changed. When
    /// renewals fail for longer than the lease minus a second, the host fences itself
    /// (before etcd lets the lease expire), then starts over with a new lease.
    pub async fn keep_lease(
        self: Arc<Self>,
        routing: Arc<Routing>,
        ttl: Duration,
        record: impl Fn() -> HostRecord + Send + 'static,
    ) {
        let host_key = self.keys.host(&self.me);
        let margin = ttl.saturating_sub(Duration::from_secs(1));
        loop {
            let mut client = self.client.clone();
            let granted = timed(client.lease_grant(ttl.as_secs() as i64, None)).await;
            let lease = match granted {
                Ok(granted) => granted.id(),
                Err(e) => {
                    tracing::warn!("cannot get a lease from etcd: {e}; retrying");
                    tokio::time::sleep(REFRESH).await;
                    continue;
                }
            };
            let leased = |mut record: HostRecord| {
                record.lease = format!("{lease:x}");
                record.to_json()
            };
            let mut published = leased(record());
            let put = client.put(
                host_key.clone(),
                published.clone(),
                Some(PutOptions::new().with_lease(lease)),
            );
            if let Err(e) = timed(put).await {
                tracing::warn!("cannot publish this host's record: {e}; retrying");
                tokio::time::sleep(REFRESH).await;
                continue;
            }
            let (mut keeper, mut answers) = match timed(client.lease_keep_alive(lease)).await {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!("cannot renew the lease: {e}; retrying");
                    continue;
                }
            };
            self.lease.store(lease, Ordering::Release);
            routing.lease(true);
            tracing::info!(host = %self.me, lease = format!("{lease:x}"), ttl_secs = ttl.as_secs(), "joined the cluster");
            let mut renewed = Instant::now();
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                tick.tick().await;
                let renewal = async {
                    keeper.keep_alive().await?;
                    answers.message().await
                };
                match tokio::time::timeout(CALL_TIMEOUT, renewal).await {
                    Ok(Ok(Some(answer))) if answer.ttl() > 0 => renewed = Instant::now(),
                    Ok(Ok(Some(_))) => {
                        tracing::error!("the lease expired in etcd");
                        break;
                    }
                    Ok(Ok(None)) => tracing::warn!("lease renewal: etcd closed the stream"),
                    Ok(Err(e)) => tracing::warn!("lease renewal failed: {e}"),
                    Err(_) => tracing::warn!("lease renewal: etcd did not answer"),
                }
                if renewed.elapsed() >= margin {
                    tracing::error!(
                        "no lease renewal for {:?}: fencing this host before etcd expires its lease",
                        renewed.elapsed()
                    );
                    break;
                }
                // Only a changed record is written: every write is a revision etcd keeps
                // until it is compacted, and an idle cluster should not grow its history.
                let now = leased(record());
                if now == published {
                    continue;
                }
                let put = client.put(
                    host_key.clone(),
                    now.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                );
                match timed(put).await {
                    Ok(_) => published = now,
                    Err(e) => tracing::debug!("refreshing this host's record failed: {e}"),
                }
            }
            self.lease.store(0, Ordering::Release);
            routing.lease(false);
            // Give it back in case etcd still has it: its keys go at once.
            let _ = timed(client.lease_revoke(lease)).await;
        }
    }

    /// Follows every host and room owner for as long as the process lives: lists them, then
    /// watches changes from the listed revision on; lists again when the watch breaks.
    pub async fn follow(self: Arc<Self>, routing: Arc<Routing>) {
        loop {
            if let Err(e) = self.follow_once(&routing).await {
                tracing::warn!("watching the cluster directory failed: {e}; listing again");
            }
            tokio::time::sleep(REFRESH).await;
        }
    }

    async fn follow_once(&self, routing: &Arc<Routing>) -> Result<(), DirectoryError> {
        let mut client = self.client.clone();
        let listed =
            timed(client.get(self.keys.all(), Some(GetOptions::new().with_prefix()))).await?;
        let revision = listed
            .header()
            .map(|h| h.revision())
            .ok_or(DirectoryError::Unexpected("a listing without header"))?;
        let mut hosts: HashMap<HostId, HostRecord> = HashMap::new();
        let mut owners = HashMap::new();
        for kv in listed.kvs() {
            match self.keys.parse(kv.key()) {
                KeyOf::Host(id) => {
                    if let Some(record) = host_record(&id, kv.value()) {
                        hosts.insert(id, record);
                    }
                }
                KeyOf::Room(room) => {
                    if let Some(owner) = owner_of(room, kv.value()) {
                        owners.insert(RoomId(room.to_string()), owner);
                    }
                }
                KeyOf::Other => {}
            }
        }
        routing.hosts_changed(hosts.values().cloned().collect());
        routing.owners_listed(owners);
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut stream = timed(client.watch(self.keys.all(), Some(options))).await?;
        while let Some(answer) = stream.message().await? {
            if answer.canceled() {
                return Err(DirectoryError::Unexpected(
                    "the watch was canceled (compacted?)",
                ));
            }
            let mut hosts_changed = false;
            for event in answer.events() {
                let Some(kv) = event.kv() else { continue };
                let put = event.event_type() == EventType::Put;
                match self.keys.parse(kv.key()) {
                    KeyOf::Host(id) => {
                        hosts_changed = true;
                        match put.then(|| host_record(&id, kv.value())).flatten() {
                            Some(record) => hosts.insert(id, record),
                            None => hosts.remove(&id),
                        };
                    }
                    KeyOf::Room(room) => {
                        let owner = put.then(|| owner_of(room, kv.value())).flatten();
                        routing.owner_changed(RoomId(room.to_string()), owner);
                    }
                    KeyOf::Other => {}
                }
            }
            if hosts_changed {
                routing.hosts_changed(hosts.values().cloned().collect());
            }
        }
        Err(DirectoryError::Unexpected("the watch ended"))
    }
}

/// A host's record, if it is one and names the host its key does (a record claiming to be
/// another host is ignored: nothing a host says about itself is taken on trust).
fn host_record(id: &HostId, value: &[u8]) -> Option<HostRecord> {
    match HostRecord::from_json(value) {
        Ok(record) if record.id == *id => Some(record),
        Ok(record) => {
            tracing::warn!(key = %id, claims = %record.id, "ignoring a host record under another host's key");
            None
        }
        Err(e) => {
            tracing::warn!(host = %id, "ignoring an unreadable host record: {e}");
            None
        }
    }
}

/// A room key's owner, if it names one.
fn owner_of(room: &str, value: &[u8]) -> Option<HostId> {
    let owner = std::str::from_utf8(value)
        .ok()
        .and_then(|v| HostId::parse(v).ok());
    if owner.is_none() {
        tracing::warn!(room, "ignoring a room key without a valid host id");
    }
    owner
}

/// The host a failed transaction's `get` of a room key found there (`vanished`: no key).
fn owner_in(
    response: &etcd_client::TxnResponse,
    vanished: &'static str,
) -> Result<HostId, DirectoryError> {
    let found = response.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
        _ => None,
    });
    let value = found.ok_or(DirectoryError::Unexpected(vanished))?;
    std::str::from_utf8(&value)
        .ok()
        .and_then(|v| HostId::parse(v).ok())
        .ok_or(DirectoryError::Unexpected("a room key without a host id"))
}
