//! The supervisor put together: TLS, the node pool and its watcher, the rooms, the HTTP
//! routes, and a graceful stop on SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::driver::node_pool::{NodePool, NodeSpec};
use crate::driver::node_watch;
use crate::driver::rooms::{Limits, Rooms};
use crate::edge::admission::AddressBuckets;
use crate::edge::monitor_socket::Monitor;
use crate::edge::{http, serve, tls};
use crate::monitoring::event_bus::EventBus;
use crate::monitoring::metrics::Metrics;
use crate::monitoring::metrics_page;
use crate::monitoring::stats::Stats;
use room_core::lifecycle::{Input as LifecycleInput, Lifecycle, Output as LifecycleOutput};

/// Connections the kernel queues for the supervisor before it accepts them (capped by
/// `net.core.somaxconn`). std's and tokio's `bind` ask for 128, which a join storm of 200
/// clients overflows: each dropped SYN costs its client a one-second retransmit.
const ACCEPT_BACKLOG: u32 = 4096;

/// The signaling port, listening with [`ACCEPT_BACKLOG`].
fn listen(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std's bind does: a restarted supervisor must not wait for TIME_WAIT to clear.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// The node executable installed with this supervisor: `../lib/sfu/node` from its folder as
/// the Debian package lays it out (`/usr/bin/sfu-supervisor`, `/usr/lib/sfu/node`, since
/// `/usr/bin/node` is Node.js), else `node` beside it as cargo builds it.
fn sibling_node_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the supervisor executable")?;
    let packaged = exe
        .parent()
        .and_then(|bin| bin.parent())
        .map(|prefix| prefix.join("lib/sfu/node"));
    Ok(match packaged {
        Some(packaged) if packaged.is_file() => packaged,
        _ => exe.with_file_name("node"),
    })
}

/// The recorder installed with this supervisor, found as [`sibling_node_binary`] finds the
/// node.
fn sibling_recorder_binary() -> anyhow::Result<PathBuf> {
    let node = sibling_node_binary()?;
    Ok(node.with_file_name("recorder"))
}

/// Runs the supervisor with `config` until SIGTERM or Ctrl-C: starts the warm nodes, then
/// serves HTTP(S), `/ws`, `/monitor` and `/metrics`.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let metrics = Metrics::default();
    let tls = if config.tls_mode {
        // validate() made sure both paths are there.
        let (cert, key) = match (&config.tls_cert_path, &config.tls_key_path) {
            (Some(cert), Some(key)) => (cert, key),
            _ => anyhow::bail!("TLS_MODE=1 needs TLS_CERT_PATH and TLS_KEY_PATH"),
        };
        let store = Arc::new(tls::CertStore::load(cert, key)?);
        metrics.tls_certificate_expires(store.not_after());
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(store.server_config()?));
        tokio::spawn(tls::reload_on_sighup(store, metrics.clone()));
        Some(acceptor)
    } else {
        None
    };
    let node_binary = match &config.node_binary {
        Some(path) => path.clone(),
        None => sibling_node_binary()?,
    };
    if !node_binary.is_file() {
        anyhow::bail!(
            "node executable not found at {} (build it with cargo build, or pass --node-binary)",
            node_binary.display()
        );
    }
    let bind = config.bind_address();
    let listener = listen(std::net::SocketAddr::new(bind, config.port))
        .with_context(|| format!("cannot listen on {bind}:{}", config.port))?;

    let socket_dir =
        crate::driver::node_pool::create_socket_dir(&crate::driver::node_pool::socket_parent())?;
    let spec = NodeSpec {
        binary: node_binary,
        workers: config.workers_per_node,
        rtc_ip: config.rtc_ip(),
        pipe_ip: config.pipe_ip,
        public_ip: config.public_ip.clone(),
        rtc_ports: (config.rtc_min_port, config.rtc_max_port),
        rtc_port: config.rtc_port,
        max_nodes: config.max_nodes(),
        ice_consent_timeout_secs: config.ice_consent_timeout_secs,
        max_data_message_bytes: config.max_data_message_bytes,
        max_data_messages_per_sec: config.max_data_messages_per_sec,
        log_format: config.log_format.as_str(),
        socket_dir: socket_dir.clone(),
        request_timeout: Duration::from_millis(config.node_request_timeout_ms),
        start_timeout: Duration::from_secs(30),
    };
    // Unbounded, as each node's own events are bounded by its budget
    // (`node_link::NODE_EVENT_BUDGET`) and the pool by --max-nodes.
    let (link_events, link_rx) = mpsc::unbounded_channel();
    let monitor_events = EventBus::default();
    let pool = Arc::new(NodePool::new(
        spec,
        link_events,
        monitor_events.clone(),
        metrics.clone(),
    ));
    let mut lifecycle = Lifecycle::new(
        config.nodes,
        Duration::from_millis(config.node_heartbeat_timeout_ms),
    );
    // The warm nodes start before the port opens: a node that cannot start stops the
    // supervisor with the reason.
    lifecycle.handle(LifecycleInput::Start, std::time::Instant::now());
    while let Some(output) = lifecycle.poll_output() {
        if let LifecycleOutput::Spawn { origin, .. } = output {
            pool.spawn(origin).await.context("starting a media node")?;
        }
    }
    // Cluster mode: etcd must answer before this host opens its port.
    let cluster = match config.cluster_settings()? {
        Some(settings) => Some(crate::routing::start::connect(&settings, &metrics).await?),
        None => None,
    };
    let rooms = Rooms::new(
        pool.clone(),
        Limits {
            max_peers_per_room: config.max_peers_per_room,
            max_producers_per_peer: config.max_producers_per_peer,
            max_transports_per_peer: config.max_transports_per_peer,
            max_consumers_per_peer: config.max_consumers_per_peer,
            max_consumers_per_worker: config.max_consumers_per_worker,
            max_nodes: config.max_nodes(),
            list_watchers_up_to: config.list_watchers_up_to,
        },
        Duration::from_secs(config.resume_grace_secs),
        monitor_events.clone(),
        metrics.clone(),
        cluster.as_ref().map(|c| c.routing.me()),
    )
    .with_join_verifier(config.join_verifier()?)
    .with_turn_servers(match config.turn.servers()? {
        Some(mut turn) => {
            turn.resolve().await;
            Some(turn)
        }
        None => None,
    });
    let (rooms, closed_rooms) = match &cluster {
        Some(_) => {
            let (tx, rx) = mpsc::unbounded_channel();
            (rooms.with_closed_rooms(tx), Some(rx))
        }
        None => (rooms, None),
    };
    let rooms = Arc::new(rooms);
    if config.join_secret.is_some() || config.join_public_key.is_some() {
        tracing::info!("join tokens on: every join needs a signed token");
    } else if bind.is_loopback() {
        tracing::info!("join tokens off: anyone on this machine may join any room (set JOIN_SECRET to require tokens)");
    } else {
        tracing::warn!(
            "join tokens off and listening on {bind}, beyond this machine: anyone who reaches this port may join any room (set JOIN_SECRET or JOIN_PUBLIC_KEY; see README, Security)"
        );
    }

    // The pool's lifecycle: node events, deaths and heartbeats go into the state machine;
    // its actions are carried out by the watcher.
    tokio::spawn(node_watch::watch(
        lifecycle,
        link_rx,
        pool.clone(),
        rooms.clone(),
        monitor_events.clone(),
    ));

    let web_dir = config.web_dir.clone();
    let stats = Arc::new(Stats::new(rooms.clone(), pool.clone(), metrics.clone()));
    let joins = Arc::new(AddressBuckets::new(
        config.joins_per_minute_per_ip,
        Duration::from_secs(60),
    ));
    let routing = match cluster {
        Some(cluster) => Some(
            cluster
                .run(crate::routing::start::Serving {
                    rooms: rooms.clone(),
                    stats: stats.clone(),
                    joins: joins.clone(),
                    closed_rooms,
                    capacity: u64::from(config.max_nodes())
                        * u64::from(config.workers_per_node)
                        * u64::from(config.max_consumers_per_worker),
                    pool: pool.clone(),
                    node_timeout: Duration::from_millis(config.node_request_timeout_ms),
                })
                .await?,
        ),
        None => None,
    };
    if config.monitor_token.is_none() {
        tracing::info!("monitor API off: set MONITOR_TOKEN (or --monitor-token) to enable it");
    } else if !config.tls_mode && !bind.is_loopback() {
        tracing::warn!(
            "the monitor API is served over plain HTTP on {bind}: its token is only safe from this machine (ws://127.0.0.1); use TLS_MODE=1 for remote monitors"
        );
    }
    // Open `/ws` sessions, against their caps; the shutdown waits for them too.
    let sessions = crate::edge::admission::ConnectionCaps::new(
        config.max_connections,
        match config.max_connections_per_ip {
            0 => u32::MAX,
            cap => cap,
        },
    );
    let keepalive = crate::edge::signaling::Keepalive {
        ping_every: Duration::from_secs(config.ws_ping_interval_secs),
        silence_limit: Duration::from_secs(config.ws_idle_timeout_secs),
    };
    let recorder_binary = match &config.recorder_binary {
        Some(path) => path.clone(),
        None => sibling_recorder_binary()?,
    };
    let (recorder_news, recorder_news_rx) = mpsc::unbounded_channel();
    let recordings = Arc::new(crate::driver::recordings::Recordings::new(
        config.record_dir.clone(),
        config.pipe_ip,
        crate::driver::recorder_link::RecorderLink::new(
            recorder_binary,
            socket_dir.clone(),
            config.log_format.as_str(),
            recorder_news,
        ),
        Arc::downgrade(&rooms),
    ));
    tokio::spawn(recordings.clone().follow_recorder(recorder_news_rx));
    rooms.set_recordings(recordings.clone());
    let monitor = Monitor {
        token: config.monitor_token.clone(),
        keepalive,
        stats: stats.clone(),
        events: monitor_events,
        routing: routing.clone(),
        recordings,
    };
    if let Some(routing) = &routing {
        routing.links.set_monitor(monitor.clone());
    }
    let app = http::router(
        http::AppState {
            rooms: rooms.clone(),
            caps: sessions.clone(),
            allowed_origins: Arc::new(config.allowed_origins.clone()),
            proxies: Arc::new(config.trusted_proxies.clone()),
            joins,
            routing: routing.clone(),
            monitor_failures: Arc::new(AddressBuckets::new(
                crate::edge::monitor_socket::FAILED_LOGINS_PER_MINUTE,
                Duration::from_secs(60),
            )),
            requests_per_second: config.requests_per_second,
            keepalive,
            pool: pool.clone(),
            registry: Arc::new(metrics_page::registry(
                &metrics,
                stats.clone(),
                routing.is_some(),
                tls.is_some(),
            )),
            metrics,
            whip: crate::edge::whip::sessions(),
            monitor,
        },
        web_dir,
    );
    let stopping = Arc::new(tokio::sync::Notify::new());
    let shutdown = {
        let (rooms, pool, stopping) = (rooms.clone(), pool.clone(), stopping.clone());
        let routing = routing.clone();
        async move {
            wait_for_stop_signal().await;
            if let Some(routing) = routing {
                // In a cluster the others carry on: move what this host carries to them
                // first (a second signal stops at once).
                tracing::info!("stopping: draining this host first (SIGTERM again stops at once)");
                routing.drain_host();
                // Past its deadline the core closes what is left; then the rooms' handoffs.
                let limit = room_core::rooms::DRAIN_DEADLINE + Duration::from_secs(30);
                let drained = tokio::time::timeout(limit, routing.drained());
                tokio::select! {
                    done = drained => match done {
                        Ok(()) => tracing::info!("drained: nodes stopped, rooms handed over"),
                        Err(_) => tracing::warn!("the drain did not end in time: stopping anyway"),
                    },
                    () = wait_for_stop_signal() => tracing::warn!("stopping without waiting for the drain"),
                }
            }
            tracing::info!("stopping: no new joins, closing nodes");
            rooms.start_shutdown();
            pool.shutdown_all();
            stopping.notify_one();
        }
    };
    // Open WebSockets would hold a graceful shutdown forever: give them a few seconds.
    let deadline = async move {
        stopping.notified().await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        tracing::info!("closing the remaining connections");
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("listening on {scheme}://{bind}:{}", config.port);
    let timeouts = serve::Timeouts {
        tls_handshake: Duration::from_secs(config.tls_handshake_timeout_secs),
        http_headers: Duration::from_secs(config.http_header_timeout_secs),
    };
    let served = async {
        serve::serve(listener, tls, app, timeouts, shutdown).await;
        // Upgraded WebSockets outlive their HTTP connection: let them take their last
        // notification (`shuttingDown`) and close.
        while sessions.count() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        () = served => {}
        () = deadline => {}
    }
    let _ = std::fs::remove_dir_all(&socket_dir);
    Ok(())
}

async fn wait_for_stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
