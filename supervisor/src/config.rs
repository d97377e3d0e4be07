//! The supervisor's settings: every one a flag and an environment variable.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::Parser;

use crate::edge::join_tokens::JoinVerifier;

pub mod cluster;
pub mod env_file;
pub mod secrets;
pub mod turn;

/// The SFU's public entry point: serves the demo page (`/`), WebSocket signaling (`/ws`) and
/// `/healthz` on one port, places rooms on media nodes, and spawns, watches and respawns the
/// `node` processes that run mediasoup.
#[derive(Debug, Clone, Parser)]
#[command(name = "supervisor", version)]
pub struct Config {
    /// TCP port of HTTP(S) and WebSocket signaling.
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,
    /// Address to listen on. Default: 127.0.0.1 (this machine only: a page served over plain
    /// HTTP to another machine cannot use a camera anyway), or 0.0.0.0 (every interface) with
    /// TLS_MODE=1 or PUBLIC_IP.
    #[arg(long, env = "BIND")]
    pub bind: Option<IpAddr>,
    /// Serve HTTPS and WSS only (1) or plain HTTP (0). Needs the certificate, key and PUBLIC_IP.
    #[arg(long, env = "TLS_MODE", default_value = "0", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub tls_mode: bool,
    /// PEM certificate chain for TLS mode.
    #[arg(long, env = "TLS_CERT_PATH")]
    pub tls_cert_path: Option<PathBuf>,
    /// PEM private key of the certificate, for TLS mode.
    #[arg(long, env = "TLS_KEY_PATH")]
    pub tls_key_path: Option<PathBuf>,
    /// Address announced to clients in ICE candidates (the server's public IP). Required in
    /// TLS mode; defaults to --rtc-ip otherwise.
    #[arg(long, env = "PUBLIC_IP")]
    pub public_ip: Option<String>,
    /// Local address media sockets bind (default: 0.0.0.0 with PUBLIC_IP, else 127.0.0.1).
    #[arg(long, env = "RTC_IP")]
    pub rtc_ip: Option<IpAddr>,
    /// Lowest UDP/TCP port for media.
    #[arg(long, env = "RTC_MIN_PORT", default_value_t = 40000)]
    pub rtc_min_port: u16,
    /// Highest UDP/TCP port for media.
    #[arg(long, env = "RTC_MAX_PORT", default_value_t = 49999)]
    pub rtc_max_port: u16,
    /// One port per worker instead of a port per transport: worker i of this host listens
    /// on RTC_PORT + i, UDP and TCP, and every client transport on it shares them (for
    /// firewalls and Kubernetes: open RTC_PORT … RTC_PORT + MAX_NODES × WORKERS_PER_NODE − 1).
    /// A respawned node takes the ports of the one it replaces.
    #[arg(long, env = "RTC_PORT")]
    pub rtc_port: Option<u16>,
    /// Seconds without ICE consent checks (RFC 7675) from a client before its media
    /// transport counts as `disconnected` (the monitor shows it); 10 to 60, 0: off.
    #[arg(long, env = "ICE_CONSENT_TIMEOUT_SECS", default_value_t = 30, value_parser = ice_consent_timeout)]
    pub ice_consent_timeout_secs: u8,
    /// Largest data channel (chat) message a client may send, in bytes (1024 to 262144);
    /// larger ones are dropped by the media node's SCTP stack.
    #[arg(long, env = "MAX_DATA_MESSAGE_BYTES", default_value_t = 16_384, value_parser = clap::value_parser!(u32).range(1024..=262_144))]
    pub max_data_message_bytes: u32,
    /// Data channel messages one data producer may send per second; past it, what it sends
    /// is dropped for a second and its peer gets `dataProducerThrottled`.
    #[arg(long, env = "MAX_DATA_MESSAGES_PER_SEC", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_data_messages_per_sec: u32,
    /// Local address of the pipe transports that carry a room's media between its routers on
    /// different nodes (loopback while every node runs on this machine; in a cluster, an
    /// address the other hosts' nodes reach: a room spans hosts over SRTP pipes).
    #[arg(long, env = "PIPE_IP", default_value = "127.0.0.1")]
    pub pipe_ip: IpAddr,
    /// Node processes started at launch and kept running.
    #[arg(long, env = "NODES", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub nodes: u32,
    /// Most node processes the pool grows to when every worker is full (default: cores /
    /// workers per node, at least --nodes).
    #[arg(long, env = "MAX_NODES", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub max_nodes: Option<u32>,
    /// Consumers a mediasoup worker takes before it counts as full (mediasoup's guidance:
    /// about 500 per worker, one worker per core).
    #[arg(long, env = "MAX_CONSUMERS_PER_WORKER", default_value_t = 500)]
    pub max_consumers_per_worker: u32,
    /// mediasoup workers per node (one per core the node should use).
    #[arg(long, env = "WORKERS_PER_NODE", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers_per_node: u32,
    /// The `node` executable (default: `node` next to this executable).
    #[arg(long, env = "NODE_BINARY")]
    pub node_binary: Option<PathBuf>,
    /// Folder of recordings (`monitor record start ROOM`): one folder per room and start,
    /// a file per track and a `manifest.json`. Unset: recording is off.
    #[arg(long, env = "RECORD_DIR")]
    pub record_dir: Option<PathBuf>,
    /// The `recorder` executable, started when a recording starts (default: `recorder` next
    /// to this executable).
    #[arg(long, env = "RECORDER_BINARY")]
    pub recorder_binary: Option<PathBuf>,
    /// Serve the demo page from this folder instead of the build embedded in the binary
    /// (e.g. web/dist while working on the page).
    #[arg(long, env = "WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Secret (HS256, 32 bytes or more, e.g. `openssl rand -hex 32`) that signs join tokens:
    /// with it every `join` needs a `token` naming its room, identity and rights
    /// (`supervisor token` prints one). Without it or --join-public-key anyone may join any
    /// room.
    #[arg(
        long,
        env = "JOIN_SECRET",
        hide_env_values = true,
        conflicts_with = "join_public_key"
    )]
    pub join_secret: Option<String>,
    /// PEM public key (Ed25519 or RSA) whose private key, held by your backend, signs join
    /// tokens (EdDSA or RS256); the alternative to --join-secret.
    #[arg(long, env = "JOIN_PUBLIC_KEY")]
    pub join_public_key: Option<PathBuf>,
    /// Gone: the shared JOIN_TOKEN let its holder into every room with every right. Set, it
    /// stops the supervisor with a pointer to JOIN_SECRET rather than leave rooms open.
    #[arg(
        long = "join-token",
        env = "JOIN_TOKEN",
        hide = true,
        hide_env_values = true
    )]
    pub removed_join_token: Option<String>,
    /// Admin token of the monitor API (`/monitor`); without it the API is off (404). 32 or
    /// more visible ASCII characters without spaces (e.g. `openssl rand -hex 32`).
    #[arg(long, env = "MONITOR_TOKEN", hide_env_values = true)]
    pub monitor_token: Option<String>,
    /// File holding the monitor token (kept out of `ps` and the environment); instead of
    /// --monitor-token.
    #[arg(long, env = "MONITOR_TOKEN_FILE", conflicts_with = "monitor_token")]
    pub monitor_token_file: Option<PathBuf>,
    /// File holding the join token secret (kept out of `ps` and the environment); instead of
    /// --join-secret.
    #[arg(long, env = "JOIN_SECRET_FILE", conflicts_with_all = ["join_secret", "join_public_key"])]
    pub join_secret_file: Option<PathBuf>,
    /// Peers allowed in one room.
    #[arg(long, env = "MAX_PEERS_PER_ROOM", default_value_t = 50)]
    pub max_peers_per_room: usize,
    /// Rooms up to this many peers announce everyone who joins and leaves; in larger rooms
    /// (webinars) peers that may not publish (`watchOnly`, or a token without canPublish) are
    /// only counted ("and 740 watching"), which keeps 1,000 joins from costing a million
    /// announcements.
    #[arg(long, env = "LIST_WATCHERS_UP_TO", default_value_t = 100)]
    pub list_watchers_up_to: usize,
    /// Producers (tracks) one peer may publish.
    #[arg(long, env = "MAX_PRODUCERS_PER_PEER", default_value_t = 4)]
    pub max_producers_per_peer: usize,
    /// WebRTC transports one peer may open (a client needs one to send and one to receive).
    #[arg(long, env = "MAX_TRANSPORTS_PER_PEER", default_value_t = 4)]
    pub max_transports_per_peer: usize,
    /// Consumers one peer may have (one per track it receives).
    #[arg(long, env = "MAX_CONSUMERS_PER_PEER", default_value_t = 500)]
    pub max_consumers_per_peer: usize,
    /// `/ws` connections the SFU takes at once; more are refused (HTTP 503).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 5_000)]
    pub max_connections: u32,
    /// `/ws` connections from one address at once; more are refused (HTTP 429). 0: no cap,
    /// the default, because behind a reverse proxy every client has the proxy's address; set
    /// it when clients connect directly.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: u32,
    /// Requests per second one connection may send on average (bursts of twice that: a peer
    /// joining a full room consumes and resumes hundreds of tracks at once); more are
    /// answered `rate_limited`, and a client that keeps on is closed (1008).
    #[arg(long, env = "REQUESTS_PER_SECOND", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub requests_per_second: u32,
    /// Joins one address may make per minute (a bucket refilled over the minute); more are
    /// answered `rate_limited`. 0: no limit. Behind a reverse proxy set --trusted-proxies, or
    /// every client counts as the proxy.
    #[arg(long, env = "JOINS_PER_MINUTE_PER_IP", default_value_t = 300)]
    pub joins_per_minute_per_ip: u32,
    /// Reverse proxies (comma-separated addresses or networks, e.g. 127.0.0.1,10.0.0.0/8)
    /// whose X-Forwarded-For names the client: per-address limits and logs then use the
    /// client's address. Unset: the header is ignored (anyone could forge it).
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        default_value = "",
        hide_default_value = true
    )]
    pub trusted_proxies: crate::edge::admission::TrustedProxies,
    /// Page origins allowed to open `/ws` (comma-separated, e.g. https://meet.example.org);
    /// unset: any. Protects against cross-site WebSocket hijacking.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// A node silent (no load report) this long, in milliseconds, is hung: it is killed and
    /// replaced.
    #[arg(long, env = "NODE_HEARTBEAT_TIMEOUT_MS", default_value_t = 3_000)]
    pub node_heartbeat_timeout_ms: u64,
    /// Seconds between the WebSocket pings sent to each client (browsers answer them without
    /// the page's help).
    #[arg(long, env = "WS_PING_INTERVAL_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ws_ping_interval_secs: u64,
    /// A client that answers no ping for this many seconds is dropped, however much it sends
    /// otherwise (one that does not read cannot answer), and leaves its room unless it
    /// resumes. Above the ping interval.
    #[arg(long, env = "WS_IDLE_TIMEOUT_SECS", default_value_t = 45, value_parser = clap::value_parser!(u64).range(2..=86400))]
    pub ws_idle_timeout_secs: u64,
    /// Seconds a peer whose signaling connection dropped (without `leave`) stays in its room,
    /// media flowing, for a new connection to `resume` it; then it leaves. 0: it leaves at
    /// once.
    #[arg(long, env = "RESUME_GRACE_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub resume_grace_secs: u64,
    /// Seconds a client has to complete its TLS handshake (TLS mode); then it is dropped.
    #[arg(long, env = "TLS_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub tls_handshake_timeout_secs: u64,
    /// Seconds a client has to send a request's headers (and an idle connection to send its
    /// next request); then it is dropped. Against clients that hold connections open by
    /// sending nothing or a byte at a time (slowloris).
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub http_header_timeout_secs: u64,
    /// How long a node may take to answer a request, in milliseconds.
    #[arg(long, env = "NODE_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub node_request_timeout_ms: u64,
    /// `text` (for people) or `json` (one object per line, for log shippers); the nodes log
    /// the same way.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Cluster mode (on with ETCD_ENDPOINTS).
    #[command(flatten)]
    pub cluster: cluster::ClusterArgs,
    /// TURN servers for clients behind firewalls (TURN_URLS, TURN_SECRET).
    #[command(flatten)]
    pub turn: turn::TurnArgs,
    /// What to do instead of serving (nothing: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// JSON objects, one per line.
    Json,
}

impl LogFormat {
    /// The value of `LOG_FORMAT`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Commands besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Print a join token signed with JOIN_SECRET (what the page takes as `?token=` and a
    /// client sends in `join`).
    Token(TokenArgs),
    /// Print every setting as a commented `NAME=default` line under its help: the template
    /// of an environment file (the Debian package's /etc/sfu/sfu.env).
    EnvFile,
}

/// `supervisor token`.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The room it admits to (`*`: any room).
    #[arg(long)]
    pub room: String,
    /// Who holds it (the `sub` claim, logged at each join).
    #[arg(long)]
    pub identity: String,
    /// Display name, overriding the one the client asks for.
    #[arg(long)]
    pub name: Option<String>,
    /// How long it stays valid (e.g. 90s, 30m, 1h, 7d).
    #[arg(long, default_value = "1h")]
    pub ttl: humantime::Duration,
    /// The holder may not publish (`produce` is refused `forbidden`).
    #[arg(long)]
    pub no_publish: bool,
    /// The holder may not subscribe (`consume` is refused `forbidden`).
    #[arg(long)]
    pub no_subscribe: bool,
    /// The holder may start and stop the recording of its room (`startRecording`,
    /// `stopRecording`; needs RECORD_DIR).
    #[arg(long)]
    pub can_record: bool,
}

fn ice_consent_timeout(text: &str) -> Result<u8, String> {
    match text.parse::<u8>() {
        Ok(secs @ (0 | 10..=60)) => Ok(secs),
        _ => Err("0 (off) or 10 to 60 seconds, as mediasoup takes".into()),
    }
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// TLS mode without certificate or key.
    #[error(
        "TLS_MODE=1 needs TLS_CERT_PATH and TLS_KEY_PATH (or --tls-cert-path and --tls-key-path)"
    )]
    TlsFilesMissing,
    /// TLS (public) mode without the address to announce.
    #[error(
        "TLS_MODE=1 needs PUBLIC_IP (or --public-ip): the address clients reach the media ports on"
    )]
    PublicIpMissing,
    /// Empty port range.
    #[error("--rtc-min-port {0} is above --rtc-max-port {1}")]
    PortRange(u16, u16),
    /// Not enough ports above RTC_PORT for every worker the pool may run.
    #[error("RTC_PORT {port} leaves no room for {workers} workers (MAX_NODES × WORKERS_PER_NODE): ports end at 65535")]
    WorkerPorts {
        /// The first port.
        port: u16,
        /// Workers the pool may run.
        workers: u32,
    },
    /// A monitor token that cannot travel in an HTTP header.
    #[error("MONITOR_TOKEN (--monitor-token) must be visible ASCII characters without spaces")]
    MonitorToken,
    /// A monitor token too short to resist guessing.
    #[error("MONITOR_TOKEN (--monitor-token) has {0} characters; it needs {min} or more: make one with `openssl rand -hex 32`", min = secrets::MIN_MONITOR_TOKEN_LEN)]
    MonitorTokenShort(usize),
    /// A secret file that cannot be read.
    #[error("cannot read {variable} {path}: {reason}")]
    SecretFile {
        /// The variable naming the file.
        variable: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A silence limit that a ping cannot beat.
    #[error("--ws-idle-timeout-secs {0} must be above --ws-ping-interval-secs {1}: a client is heard from at each ping")]
    Keepalive(u64, u64),
    /// The removed shared token is still configured.
    #[error("JOIN_TOKEN (--join-token) is no longer supported: set JOIN_SECRET and give each client a token from `supervisor token` (see the README)")]
    JoinTokenRemoved,
    /// A join token key that cannot be used.
    #[error("{0}")]
    JoinKey(String),
    /// TURN settings that cannot work.
    #[error("{0}")]
    Turn(String),
    /// Cluster settings that cannot work.
    #[error("{0}")]
    Cluster(String),
}

impl Config {
    /// Reads the secrets given as files into the settings they stand for.
    pub fn load_secrets(&mut self) -> Result<(), ConfigError> {
        if let Some(path) = &self.join_secret_file {
            self.join_secret = Some(secrets::read_secret_file(path, "JOIN_SECRET_FILE")?);
        }
        if let Some(path) = &self.monitor_token_file {
            self.monitor_token = Some(secrets::read_secret_file(path, "MONITOR_TOKEN_FILE")?);
        }
        self.turn.load_secret()?;
        self.cluster.load_secret()
    }

    /// Checks settings that depend on each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls_mode {
            if self.tls_cert_path.is_none() || self.tls_key_path.is_none() {
                return Err(ConfigError::TlsFilesMissing);
            }
            if self.public_ip.is_none() {
                return Err(ConfigError::PublicIpMissing);
            }
        }
        if self.rtc_min_port > self.rtc_max_port {
            return Err(ConfigError::PortRange(self.rtc_min_port, self.rtc_max_port));
        }
        if let Some(port) = self.rtc_port {
            let workers = self.max_nodes() * self.workers_per_node;
            if u32::from(port) + workers - 1 > u32::from(u16::MAX) {
                return Err(ConfigError::WorkerPorts { port, workers });
            }
        }
        if let Some(token) = &self.monitor_token {
            secrets::check_monitor_token(token)?;
        }
        if self.removed_join_token.is_some() {
            return Err(ConfigError::JoinTokenRemoved);
        }
        self.join_verifier()?;
        self.cluster_settings()?;
        self.turn.servers()?;
        if self.ws_idle_timeout_secs <= self.ws_ping_interval_secs {
            return Err(ConfigError::Keepalive(
                self.ws_idle_timeout_secs,
                self.ws_ping_interval_secs,
            ));
        }
        Ok(())
    }

    /// The verifier of join tokens, if they are on.
    pub fn join_verifier(&self) -> Result<Option<JoinVerifier>, ConfigError> {
        if let Some(secret) = &self.join_secret {
            return JoinVerifier::from_secret(secret.as_bytes())
                .map(Some)
                .map_err(|e| ConfigError::JoinKey(e.to_string()));
        }
        let Some(path) = &self.join_public_key else {
            return Ok(None);
        };
        let pem = std::fs::read(path).map_err(|e| {
            ConfigError::JoinKey(format!(
                "cannot read JOIN_PUBLIC_KEY {}: {e}",
                path.display()
            ))
        })?;
        JoinVerifier::from_public_key_pem(&pem)
            .map(Some)
            .map_err(|e| ConfigError::JoinKey(e.to_string()))
    }

    /// Cluster mode's settings; `None` on a single host.
    pub fn cluster_settings(&self) -> Result<Option<cluster::ClusterSettings>, ConfigError> {
        let scheme = if self.tls_mode { "wss" } else { "ws" };
        let host = match &self.public_ip {
            Some(ip) => ip.clone(),
            None => self.bind_address().to_string(),
        };
        self.cluster
            .settings(format!("{scheme}://{host}:{}/ws", self.port))
    }

    /// The cap of the node pool.
    pub fn max_nodes(&self) -> u32 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        self.max_nodes
            .unwrap_or(cores / self.workers_per_node)
            .max(self.nodes)
    }

    /// The address the HTTP(S) port listens on: `--bind`, or loopback unless the SFU is
    /// meant to be public (TLS mode or a public IP).
    pub fn bind_address(&self) -> IpAddr {
        self.bind
            .unwrap_or(if self.tls_mode || self.public_ip.is_some() {
                IpAddr::from([0, 0, 0, 0])
            } else {
                IpAddr::from([127, 0, 0, 1])
            })
    }

    /// The address media sockets bind.
    pub fn rtc_ip(&self) -> IpAddr {
        self.rtc_ip.unwrap_or(if self.public_ip.is_some() {
            IpAddr::from([0, 0, 0, 0])
        } else {
            IpAddr::from([127, 0, 0, 1])
        })
    }
}

#[cfg(test)]
mod tests;
