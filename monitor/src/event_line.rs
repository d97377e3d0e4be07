//! Human output of events: one line each, with its time.

use monitor_api::{Event, EventKind};

use crate::tables::short;

/// `HH:MM:SS.mmm` (UTC) of a Unix time in milliseconds.
pub fn clock(at_ms: u64) -> String {
    let ms = at_ms % 1000;
    let secs = at_ms / 1000 % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{ms:03}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// One line for an event.
pub fn event(event: &Event) -> String {
    let what = match &event.kind {
        EventKind::RoomCreated { room, node, worker } => {
            format!("room created    {room} on {node} worker {worker}")
        }
        EventKind::RoomClosed { room, reason } => format!("room closed     {room}: {reason}"),
        EventKind::PeerJoined {
            room,
            peer_id,
            display_name,
        } => format!(
            "peer joined     {room}: {display_name} ({})",
            short(peer_id)
        ),
        EventKind::PeerLeft { room, peer_id } => {
            format!("peer left       {room}: {}", short(peer_id))
        }
        EventKind::PeerDisconnected {
            room,
            peer_id,
            resumable_secs,
        } => format!(
            "peer away       {room}: {} disconnected, resumable for {resumable_secs} s",
            short(peer_id)
        ),
        EventKind::PeerResumed { room, peer_id } => {
            format!("peer resumed    {room}: {}", short(peer_id))
        }
        EventKind::ResumeExpired { room, peer_id } => {
            format!(
                "resume expired  {room}: {} did not come back",
                short(peer_id)
            )
        }
        EventKind::ProducerAdded {
            room,
            peer_id,
            producer_id,
            kind,
        } => format!(
            "producer added  {room}: {kind} {} of {}",
            short(producer_id),
            short(peer_id)
        ),
        EventKind::ProducerClosed {
            room,
            peer_id,
            producer_id,
        } => format!(
            "producer closed {room}: {} of {}",
            short(producer_id),
            short(peer_id)
        ),
        EventKind::NodeSpawned { node, pid, reason } => {
            format!("node spawned    {node} (pid {pid}, {reason})")
        }
        EventKind::NodeRespawned { node, pid } => {
            format!("node respawned  {node} (pid {pid})")
        }
        EventKind::NodeExited { node, reason } => format!("node exited     {node}: {reason}"),
        EventKind::Unknown => "(an event this monitor does not know: upgrade it)".to_string(),
        EventKind::NodeDraining { node, peers } => {
            format!("node draining   {node}: {peers} peers to move")
        }
        EventKind::PeerMoved {
            room,
            peer_id,
            from,
            to,
        } => format!(
            "peer moved      {room}: {} from {from} to {to}",
            short(peer_id)
        ),
        EventKind::HostDrained {
            host,
            ms,
            nodes_left,
            rooms_left,
        } => match (nodes_left, rooms_left) {
            (0, 0) => format!("host drained    {host} in {ms} ms"),
            (n, r) => format!(
                "host drained    {host} in {ms} ms, {n} nodes still running (deadline), {r} rooms not handed over"
            ),
        },
        EventKind::RecordingStarted { room, folder } => {
            format!("recording       {room} into {folder}")
        }
        EventKind::RecordingStopped {
            room,
            tracks,
            error,
        } => match error {
            None => format!("recording ended {room}: {tracks} tracks"),
            Some(error) => format!("recording ended {room}: {tracks} tracks; {error}"),
        },
        EventKind::RoomHandedOver {
            room,
            to,
            peers,
            ms,
        } => format!("room handed over {room} to {to} ({peers} peers) in {ms} ms"),
        EventKind::RoomAdopted {
            room,
            from,
            peers,
            routers_lost,
            ms,
        } => format!(
            "room adopted    {room} from lost host {from} {ms} ms after its loss ({peers} peers, {routers_lost} routers lost with it)"
        ),
        EventKind::RoomFailedOver { room, from, ms } => {
            format!("room failed over {room} from lost host {from}, claimed {ms} ms after the host left")
        }
        EventKind::HostLost { host, rooms } => {
            format!("host lost       {host} (it owned {rooms} rooms)")
        }
        EventKind::RoomTakenOver { room, from, peers } => {
            format!("room taken over {room} from {from} ({peers} peers)")
        }
        EventKind::NodeDrained { node, ms, forced } => {
            let how = if *forced {
                " (deadline: peers left behind lost their media there)"
            } else {
                ""
            };
            format!("node drained    {node} in {ms} ms{how}")
        }
        EventKind::WorkerDied {
            node,
            worker,
            message,
        } => format!("worker died     {node} worker {worker}: {message}"),
        EventKind::QualityDegraded {
            room,
            display_name,
            subject,
            id,
            reason,
            ..
        } => format!(
            "quality BAD     {room}: {display_name}'s {subject} {}: {reason}",
            short(id)
        ),
        EventKind::QualityRecovered {
            room,
            display_name,
            subject,
            id,
            reason,
            ..
        } => format!(
            "quality ok      {room}: {display_name}'s {subject} {}: {reason}",
            short(id)
        ),
    };
    format!("{}  {what}", clock(event.at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disconnected_peer_says_how_long_it_may_resume() {
        let line = event(&Event {
            at: 0,
            kind: EventKind::PeerDisconnected {
                room: "demo".into(),
                peer_id: "b".repeat(36),
                resumable_secs: 30,
            },
        });
        assert!(line.contains("resumable for 30 s"), "{line}");
    }

    #[test]
    fn times_read_as_a_clock() {
        assert_eq!(clock(86_400_000 + 3_723_004), "01:02:03.004");
    }
}
