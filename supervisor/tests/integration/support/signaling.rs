//! The tests' side of `/ws`: signaling-api's typed client (the one the loadgen uses too),
//! connected and checked as a test wants it: a refusal where an answer was expected, a
//! missing notification or a frame of the server that breaks the protocol fails the test
//! with what happened. Input that is malformed on purpose goes through the client's one raw
//! path, [`Client::send_raw`].

use std::sync::Arc;
use std::time::Duration;

use signaling_api::client::{CallError, Client, RawAnswer};
use signaling_api::{
    Call, ConsumerArgs, ConsumerId, CreateTransportArgs, Direction, JoinArgs, Notification, PeerId,
    ProducerArgs, ProducerId, TransportArgs, TransportId,
};

/// How long a test waits for an answer, a notification or a close.
pub const WITHIN: Duration = Duration::from_secs(15);

/// A TLS client configuration trusting the certificates of `ca_pem`.
pub fn client_tls(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("PEM")).expect("trust anchor");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// Connects to `url`; `ca_pem` is the certificate to trust for `wss://`.
pub async fn connect(url: &str, ca_pem: Option<&str>) -> Client {
    connect_with_headers(url, ca_pem, &[]).await
}

/// [`connect`] sending `headers` with the upgrade (e.g. what a reverse proxy adds).
pub async fn connect_with_headers(
    url: &str,
    ca_pem: Option<&str>,
    headers: &[(&str, &str)],
) -> Client {
    Client::connect_with_headers(url, ca_pem.map(client_tls), headers)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// Fails the test if the server sent a frame that breaks the protocol.
pub fn assert_sane(client: &Client) {
    if let Some(violation) = client.protocol_violation() {
        panic!("the server broke the protocol: {violation}");
    }
}

/// What a test expects of a call: its answer, or its refusal.
#[allow(async_fn_in_trait)]
pub trait Expect {
    /// `call`'s answer; a refusal fails the test.
    async fn ok<C: Call>(&mut self, call: &C) -> C::Answer;
    /// `call`'s refusal (see [`CallError::code`]); an answer fails the test.
    async fn refused<C: Call>(&mut self, call: &C) -> CallError;
    /// The next answer to no call of ours (to a raw frame, or `id: null`), within [`WITHIN`].
    async fn next_raw_answer(&mut self) -> RawAnswer;
    /// Waits (at most [`WITHIN`]) until the server closed the socket: its close code.
    async fn close_code(&self) -> Option<u16>;
}

impl Expect for Client {
    async fn ok<C: Call>(&mut self, call: &C) -> C::Answer {
        let answer = self.call(call).await;
        assert_sane(self);
        answer.unwrap_or_else(|e| panic!("{} failed: {e}", C::METHOD.name()))
    }

    async fn refused<C: Call>(&mut self, call: &C) -> CallError {
        let answer = self.call(call).await;
        assert_sane(self);
        match answer {
            Err(refused @ CallError::Refused { .. }) => refused,
            Err(e) => panic!("{} was not answered: {e}", C::METHOD.name()),
            Ok(_) => panic!("{} succeeded", C::METHOD.name()),
        }
    }

    async fn next_raw_answer(&mut self) -> RawAnswer {
        let answer = self.raw_answer(WITHIN).await;
        assert_sane(self);
        answer.unwrap_or_else(|e| panic!("an answer to a raw frame: {e}"))
    }

    async fn close_code(&self) -> Option<u16> {
        self.wait_closed(WITHIN)
            .await
            .and_then(|closed| closed.code)
    }
}

/// Waits (at most [`WITHIN`]) for the first notification `pick` takes, skipping others
/// (scores and the like); `what` names it when none comes.
pub async fn next_notification<T>(
    client: &mut Client,
    what: &str,
    pick: impl FnMut(Notification) -> Option<T>,
) -> T {
    let picked = client.notification(WITHIN, pick).await;
    assert_sane(client);
    picked.unwrap_or_else(|e| panic!("no {what} notification: {e}"))
}

/// The next peer `client` is told left (a `peersChanged` with a leave), skipping others.
pub async fn next_left(client: &mut Client) -> PeerId {
    next_notification(client, "peersChanged with a leave", |n| match n {
        Notification::PeersChanged { left, .. } => left.first().copied(),
        _ => None,
    })
    .await
}

/// The next peer `client` is told joined (a `peersChanged` with a join): its id and name.
pub async fn next_joined(client: &mut Client) -> (PeerId, String) {
    next_notification(client, "peersChanged with a join", |n| match n {
        Notification::PeersChanged { joined, .. } => {
            (joined.into_iter().next()).map(|j| (j.peer_id, j.display_name))
        }
        _ => None,
    })
    .await
}

/// Whether `told` says `peer` left.
pub fn told_left(told: &[Notification], peer: PeerId) -> bool {
    told.iter()
        .any(|n| matches!(n, Notification::PeersChanged { left, .. } if left.contains(&peer)))
}

/// Waits for the next notification matching a pattern of [`Notification`], skipping others:
/// `notified!(peer.signaling, Notification::NewProducer { producer_id, .. } => producer_id)`.
macro_rules! notified {
    ($client:expr, $pattern:pat => $value:expr) => {
        $crate::support::signaling::next_notification(
            &mut $client,
            stringify!($pattern),
            |notification| match notification {
                $pattern => Some($value),
                #[allow(unreachable_patterns)]
                _ => None,
            },
        )
        .await
    };
}
pub(crate) use notified;

/// Every notification of `client`'s connection, after waiting `window` for what may still
/// be on its way: what a check that someone was told nothing looks at (the waits for one
/// notification keep the others in the client's log, [`Client::seen`]).
pub async fn told(client: &mut Client, window: Duration) -> Vec<Notification> {
    tokio::time::sleep(window).await;
    assert_sane(client);
    client.seen().to_vec()
}

/// Takes what waits in `client`'s queue of notifications into its log, without waiting (a
/// queue never read fills up).
pub fn drain_notifications(client: &mut Client) {
    client.seen();
}

/// `join` arguments: `room` as `name`, without a token.
pub fn join(room: &str, name: &str) -> JoinArgs {
    JoinArgs {
        room: room.into(),
        display_name: name.into(),
        token: None,
        watch_only: false,
        last_n: None,
    }
}

/// `join` arguments with a join token.
pub fn join_with_token(room: &str, name: &str, token: &str) -> JoinArgs {
    JoinArgs {
        token: Some(token.into()),
        ..join(room, name)
    }
}

/// `createWebRtcTransport` arguments for `direction`, without data channels.
pub fn transport(direction: Direction) -> CreateTransportArgs {
    CreateTransportArgs {
        direction,
        data: false,
    }
}

/// Arguments naming producer `id`.
pub fn producer_args(id: &ProducerId) -> ProducerArgs {
    ProducerArgs {
        producer_id: id.to_string(),
    }
}

/// Arguments naming consumer `id`.
pub fn consumer_args(id: &ConsumerId) -> ConsumerArgs {
    ConsumerArgs {
        consumer_id: id.to_string(),
    }
}

/// Arguments naming transport `id`.
pub fn transport_args(id: &TransportId) -> TransportArgs {
    TransportArgs {
        transport_id: id.to_string(),
    }
}
