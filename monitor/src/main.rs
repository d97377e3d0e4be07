//! `monitor`: a command-line view of a running SFU through the supervisor's monitor API
//! (docs/monitor-api.md). It connects only when run, so an SFU nobody watches does no
//! monitoring work.

mod connection;
mod dashboard;
mod event_line;
mod recording_tables;
mod tables;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use monitor_api::{
    DrainStarted, EventKind, HostView, NodeInfo, PeerDiagnostics, Query, RecordingManifest,
    RoomDetail, RoomInfo, ServerMessage, Summary,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::connection::{Client, ConnectError, Target, Trust};

/// Watch a running SFU: SFU-wide stats, nodes, rooms, one room, live events.
///
/// Connects to the supervisor's monitor API over TLS and authenticates with the admin token
/// the supervisor was started with (MONITOR_TOKEN). The certificate is checked against the
/// system's roots, or against --ca for a self-signed one.
///
/// Examples:
///   MONITOR_TOKEN=s3cret monitor --ca cert.pem summary
///   monitor --ca cert.pem --token s3cret room demo
///   monitor --ca cert.pem peer demo Alice
///   monitor --ca cert.pem events --room demo --quality --json
///   monitor --url ws://127.0.0.1:8000/monitor watch
#[derive(Debug, Parser)]
#[command(name = "monitor", version, verbatim_doc_comment)]
struct Cli {
    /// The supervisor's monitor API. ws:// is accepted only for a loopback host.
    #[arg(
        long,
        env = "MONITOR_URL",
        default_value = "wss://127.0.0.1:8000/monitor",
        global = true
    )]
    url: String,
    /// The admin token (the supervisor's MONITOR_TOKEN).
    #[arg(long, env = "MONITOR_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Trust the certificate(s) in this PEM file (the supervisor's own certificate, or the
    /// CA that signed it) instead of the system's roots.
    #[arg(long, value_name = "FILE", global = true, conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// Do not verify the supervisor's certificate (for a first try only: anyone on the path
    /// could read the token).
    #[arg(long, global = true)]
    insecure: bool,
    /// Print JSON (one document; JSON lines for `events`) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// SFU-wide counts: nodes, workers, rooms, participants, producers, consumers, load.
    Summary,
    /// Each node process with its workers, their CPU use and what they host.
    Nodes,
    /// Each room with its placement and counts.
    Rooms,
    /// One room: participants with their producers and consumers, scores, bitrates.
    Room {
        /// The room's name.
        room: String,
    },
    /// One participant in depth: its transports (ICE, DTLS, selected pair, bytes, available
    /// bitrate), what it sends (score, bitrate, loss, NACK/PLI/FIR, layers) and what it
    /// receives from whom (score, paused and why, layers, RTT, loss).
    Peer {
        /// The room's name.
        room: String,
        /// The participant's display name or peer id.
        peer: String,
    },
    /// Follow events (rooms, peers, producers, nodes) until interrupted.
    Events {
        /// Only this room's events.
        #[arg(long)]
        room: Option<String>,
        /// Quality events too (a consumer scoring below 5 for 5 s, a producer silent for
        /// 5 s, ICE disconnected, DTLS failed): the rooms followed are sampled every 2 s
        /// while this runs.
        #[arg(long)]
        quality: bool,
    },
    /// A live dashboard of nodes, workers, rooms, participants and events; q quits.
    Watch,
    /// The hosts of a cluster: each one's URLs, lease, link, nodes, load and rooms owned
    /// (a single host answers that it is not in a cluster).
    Hosts,
    /// Drain a node (a rolling upgrade of nodes): its peers move to other nodes while their
    /// media goes on (make before break), then it stops and the pool replaces it with the
    /// node binary installed now. Prints each move and returns once the node is drained
    /// (within 30 s: what a peer has not moved by then is closed). In a cluster, the id of
    /// the host the monitor is connected to drains that host: every node of it, the other
    /// hosts moving their peers off its nodes too, and no node started again.
    Drain {
        /// The node, as `monitor nodes` names it (`node-2`), or this host's id.
        node: String,
    },
    /// Record a room: every participant's tracks, each to its own file under the
    /// supervisor's RECORD_DIR, with a manifest.json that puts them back in sync.
    Record {
        #[command(subcommand)]
        action: RecordAction,
    },
}

/// `monitor record …`.
#[derive(Debug, Subcommand)]
enum RecordAction {
    /// Start recording a room (tracks that start later are recorded too).
    Start {
        /// The room's name.
        room: String,
        /// Only this participant (display name or peer id).
        #[arg(long)]
        peer: Option<String>,
    },
    /// Stop recording a room: every file is ended; prints its tracks.
    Stop {
        /// The room's name.
        room: String,
    },
    /// The recordings, running and finished.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("monitor: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("monitor: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn decode<T: DeserializeOwned>(data: Value) -> Result<T, ConnectError> {
    serde_json::from_value(data)
        .map_err(|e| ConnectError::Protocol(format!("unexpected answer from the supervisor: {e}")))
}

fn print_json(data: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(data).unwrap_or_else(|_| data.to_string())
    );
}

/// Turns an answer's data into a table.
type Render = fn(Value) -> Result<String, ConnectError>;

async fn run(cli: Cli) -> Result<(), ConnectError> {
    let trust = match (cli.insecure, cli.ca) {
        (true, _) => Trust::Insecure,
        (false, Some(ca)) => Trust::Ca(ca),
        (false, None) => Trust::SystemRoots,
    };
    let target = Target {
        url: cli.url,
        token: cli.token,
        trust,
    };
    let mut client = Client::connect(&target).await?;
    let (query, show): (Query, Render) = match cli.command {
        Command::Summary => (Query::Summary, |d| {
            Ok(tables::summary(&decode::<Summary>(d)?))
        }),
        Command::Nodes => (Query::Nodes, |d| {
            Ok(tables::nodes(&decode::<Vec<NodeInfo>>(d)?))
        }),
        Command::Rooms => (Query::Rooms, |d| {
            Ok(tables::rooms(&decode::<Vec<RoomInfo>>(d)?))
        }),
        Command::Room { room } => (Query::Room { room }, |d| {
            Ok(tables::room(&decode::<RoomDetail>(d)?))
        }),
        Command::Peer { room, peer } => (Query::Peer { room, peer }, |d| {
            Ok(tables::peer(&decode::<PeerDiagnostics>(d)?))
        }),
        Command::Events { room, quality } => {
            return follow_events(&mut client, room, quality, cli.json).await
        }
        Command::Watch => return dashboard::run(client, &target.url).await,
        Command::Drain { node } => return drain(&mut client, node, cli.json).await,
        Command::Hosts => (Query::Hosts, |d| {
            Ok(tables::hosts(&decode::<Vec<HostView>>(d)?))
        }),
        Command::Record {
            action: RecordAction::Start { room, peer },
        } => (Query::RecordStart { room, peer }, |d| {
            Ok(recording_tables::recording(&decode::<RecordingManifest>(
                d,
            )?))
        }),
        Command::Record {
            action: RecordAction::Stop { room },
        } => (Query::RecordStop { room }, |d| {
            Ok(recording_tables::recording(&decode::<RecordingManifest>(
                d,
            )?))
        }),
        Command::Record {
            action: RecordAction::List,
        } => (Query::Recordings, |d| {
            Ok(recording_tables::recordings(&decode::<
                Vec<RecordingManifest>,
            >(d)?))
        }),
    };
    let data = client.call(query).await?;
    if cli.json {
        print_json(&data);
    } else {
        println!("{}", show(data)?);
    }
    Ok(())
}

/// Drains `node`, printing its moves, until it is drained.
async fn drain(client: &mut Client, node: String, json: bool) -> Result<(), ConnectError> {
    // Subscribed first: a node without peers is drained before the answer comes.
    client
        .call(Query::Subscribe {
            room: None,
            quality: false,
        })
        .await?;
    let started: DrainStarted = decode(client.call(Query::Drain { node }).await?)?;
    if json {
        println!("{}", serde_json::to_string(&started).unwrap_or_default());
    } else {
        println!("draining {}: {} peers to move", started.node, started.peers);
    }
    loop {
        let message = tokio::select! {
            message = client.next() => message?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let ServerMessage::Event(e) = message else {
            continue;
        };
        // A node's moves and end; a host's (all its nodes') moves, nodes and end.
        let host = !started.node.starts_with("node-");
        let (ours, done) = match &e.event.kind {
            EventKind::PeerMoved { from, .. } => (host || *from == started.node, false),
            EventKind::NodeDrained { node, .. } => (
                host || *node == started.node,
                !host && *node == started.node,
            ),
            EventKind::RoomHandedOver { .. } => (host, false),
            EventKind::HostDrained { host: name, .. } => {
                (*name == started.node, *name == started.node)
            }
            _ => (false, false),
        };
        if ours {
            if json {
                println!("{}", serde_json::to_string(&e.event).unwrap_or_default());
            } else {
                println!("{}", event_line::event(&e.event));
            }
        }
        if done {
            return Ok(());
        }
    }
}

async fn follow_events(
    client: &mut Client,
    room: Option<String>,
    quality: bool,
    json: bool,
) -> Result<(), ConnectError> {
    client.call(Query::Subscribe { room, quality }).await?;
    // On stderr, so that stdout stays data only; scripts can wait for this line.
    eprintln!("monitor: following events (Ctrl-C stops)");
    loop {
        let message = tokio::select! {
            message = client.next() => message?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match message {
            ServerMessage::Event(e) if json => {
                println!("{}", serde_json::to_string(&e.event).unwrap_or_default())
            }
            ServerMessage::Event(e) => println!("{}", event_line::event(&e.event)),
            ServerMessage::Lagged(l) if json => {
                println!("{}", serde_json::to_string(&l).unwrap_or_default())
            }
            ServerMessage::Lagged(l) => eprintln!(
                "monitor: {} events were dropped because this terminal did not keep up",
                l.lagged.missed
            ),
            ServerMessage::Answer(_) => {}
        }
    }
}
