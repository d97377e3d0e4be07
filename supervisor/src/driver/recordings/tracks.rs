//! A recording's tracks: each producer tapped on its node (a plain RTP transport sending to a
//! recorder) and written to its own file. A producer whose router is on this host's node is
//! written by this host's recorder; one whose router is on another host's node by that host's
//! recorder, into that host's `RECORD_DIR` (asked over the cluster link: the media never
//! crosses hosts for a recording), or here when that host cannot. The other side too: the
//! tracks this host records for rooms of other hosts ("lent" tracks), ended when asked, when
//! their link ends, or told to their host when they fail.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use ids::HostId;
use ipc::calls as call;
use ipc::messages::{ProducerId, RouterId, TransportId};
use ipc::recorder::{RecorderAnswer, RecorderRequest, TrackSummary};
use monitor_api::RecordedTrack;

use super::{Recordings, Track};
use crate::driver::node_link::NodeId;
use crate::driver::recording_files::file_part;
use crate::driver::recording_plan::Wanted;
use crate::driver::remote::RemoteTrack;
use crate::driver::rooms::Rooms;

/// How long another host may take to open or end a track (its node and recorder calls).
const REMOTE_WAIT: Duration = Duration::from_secs(20);

/// A node's tap of a producer, sending to a recorder.
#[derive(Clone, Debug)]
pub(super) struct Tap {
    node: NodeId,
    router: RouterId,
    transport: TransportId,
}

/// Where a track of this host's recording is written.
pub(super) enum At {
    /// By this host's recorder (the tap on any node, another host's included when that host
    /// could not record it).
    Here(Tap),
    /// By `host`'s recorder, into its `RECORD_DIR`.
    There(HostId),
}

/// A track this host records for a room of another host.
pub(super) struct Lent {
    host: HostId,
    /// The link it was asked through.
    link: u64,
    /// That host's number for it.
    track: u64,
    tap: Tap,
}

/// What a recorder says of a track that stopped with `error` without a summary of its own.
fn failed(error: &str) -> TrackSummary {
    TrackSummary {
        path: String::new(),
        duration_ms: 0,
        packets: 0,
        lost: 0,
        started_unix_ms: None,
        synced: false,
        error: Some(error.to_string()),
    }
}

impl Recordings {
    pub(super) fn lent(&self) -> MutexGuard<'_, std::collections::HashMap<u64, Lent>> {
        self.lent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts recording `wanted` of `room` into `folder`: on the host of its router when
    /// that is another host and it can, here otherwise.
    pub(super) async fn open_track(
        &self,
        rooms: &Rooms,
        room: &str,
        folder: &Path,
        wanted: &Wanted,
    ) -> anyhow::Result<Track> {
        let id = self.next_track.fetch_add(1, Ordering::Relaxed);
        let short: String = wanted.producer.to_string().chars().take(8).collect();
        let stem = format!("{}-{}-{short}", file_part(&wanted.peer), wanted.kind);
        let entry = |file: String, codec: String, host: Option<String>| RecordedTrack {
            file,
            peer: wanted.peer.clone(),
            kind: wanted.kind.into(),
            codec,
            producer: wanted.producer.to_string(),
            host,
            offset_ms: None,
            duration_ms: None,
            lost_packets: None,
            error: None,
        };
        if let Some(remote) = rooms.remote() {
            let order = RemoteTrack {
                track: id,
                router: wanted.router,
                producer: wanted.producer,
                room: room.to_string(),
                folder: (folder.file_name())
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                name: stem.clone(),
            };
            if let Some((place, answer)) = remote.record(wanted.node, order) {
                let why = match tokio::time::timeout(REMOTE_WAIT, answer).await {
                    Ok(Ok(Ok((file, codec)))) => {
                        let host = Some(place.host.to_string());
                        return Ok(Track {
                            id,
                            at: At::There(place.host),
                            entry: entry(file, codec, host),
                        });
                    }
                    Ok(Ok(Err(refused))) => refused,
                    Ok(Err(_)) => "its link is down".to_string(),
                    Err(_) => {
                        // It may still open it: ask it to end what it opens.
                        drop(remote.end_recorded(&place.host, id));
                        format!("no answer in {} s", REMOTE_WAIT.as_secs())
                    }
                };
                tracing::warn!(host = %place.host, producer = %wanted.producer, "the host of the track's router cannot record it ({why}): recording it here");
            }
        }
        let (id, tap, file, codec) = self
            .tap_here(
                rooms,
                folder,
                &stem,
                wanted.node,
                wanted.router,
                wanted.producer,
            )
            .await?;
        Ok(Track {
            id,
            at: At::Here(tap),
            entry: entry(file, codec, None),
        })
    }

    /// Ends a track's file and closes its tap; what the manifest says of it, and when it
    /// started (Unix ms) when the recorder knows.
    pub(super) async fn end_track(&self, track: Track) -> (RecordedTrack, Option<i64>) {
        let mut entry = track.entry;
        let summary = match &track.at {
            At::Here(tap) => self.untap_here(track.id, tap).await,
            At::There(host) => {
                let remote = self.rooms.upgrade().and_then(|r| r.remote().cloned());
                match remote {
                    Some(remote) => {
                        let ended = remote.end_recorded(host, track.id);
                        match tokio::time::timeout(REMOTE_WAIT, ended).await {
                            Ok(Ok(answer)) => answer,
                            Ok(Err(_)) => Err(format!("the link to host {host} is down")),
                            Err(_) => Err(format!("host {host} did not answer")),
                        }
                    }
                    None => Err("no cluster".to_string()),
                }
            }
        };
        let mut started = None;
        match summary {
            Ok(summary) => {
                entry.duration_ms = Some(summary.duration_ms);
                entry.lost_packets = Some(summary.lost);
                entry.error = summary.error.clone();
                started = summary.started_unix_ms;
            }
            Err(e) => entry.error = Some(e),
        }
        (entry, started)
    }

    /// Taps `producer` of `router` on `node` and has this host's recorder write it to
    /// `folder/stem.<extension>`: the recorder's number for the track, the tap, the file's
    /// name and the codec.
    async fn tap_here(
        &self,
        rooms: &Rooms,
        folder: &Path,
        stem: &str,
        node: NodeId,
        router: RouterId,
        producer: ProducerId,
    ) -> anyhow::Result<(u64, Tap, String, String)> {
        let opened = rooms
            .node_call(node, call::RecordProducer { router, producer })
            .await?;
        let tap = Tap {
            node,
            router,
            transport: opened.transport,
        };
        let close_tap = || Self::close_tap(rooms, &tap);
        let extension = if opened.mime_type.eq_ignore_ascii_case("video/h264") {
            "mkv"
        } else {
            "webm"
        };
        let id = self.next_track.fetch_add(1, Ordering::Relaxed);
        let file = format!("{stem}.{extension}");
        let answer = self
            .link
            .call(RecorderRequest::OpenTrack {
                track: id,
                mime_type: opened.mime_type.clone(),
                payload_type: opened.payload_type,
                clock_rate: opened.clock_rate,
                ip: self.ip.to_string(),
                path: folder.join(&file).display().to_string(),
            })
            .await;
        let port = match answer {
            Ok(RecorderAnswer::TrackOpened { port }) => port,
            other => {
                close_tap().await;
                anyhow::bail!("the recorder did not open the track: {other:?}");
            }
        };
        let connected = rooms
            .node_call(
                node,
                call::ConnectRecording {
                    router,
                    transport: tap.transport,
                    ip: self.ip.to_string(),
                    port,
                },
            )
            .await;
        if let Err(e) = connected {
            close_tap().await;
            let _ = self
                .link
                .call(RecorderRequest::CloseTrack { track: id })
                .await;
            return Err(e.into());
        }
        Ok((id, tap, file, opened.mime_type))
    }

    /// Ends this host's recorder's track `id` and closes its tap.
    async fn untap_here(&self, id: u64, tap: &Tap) -> Result<TrackSummary, String> {
        let summary = match self
            .link
            .call(RecorderRequest::CloseTrack { track: id })
            .await
        {
            Ok(RecorderAnswer::TrackClosed(summary)) => Ok(summary),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        };
        if let Some(rooms) = self.rooms.upgrade() {
            Self::close_tap(&rooms, tap).await;
        }
        summary
    }

    async fn close_tap(rooms: &Rooms, tap: &Tap) {
        let close = call::CloseRecording {
            router: tap.router,
            transport: tap.transport,
        };
        let _ = rooms.node_call(tap.node, close).await;
    }

    // ---- tracks recorded here for other hosts' rooms ----

    /// `host` (through its link `link`) asks this host to record `order`, a producer of a
    /// router it created on this host's `node` (the caller checked that the router is that
    /// host's): the file's name and the codec, or why not.
    pub async fn record_for(
        &self,
        host: &HostId,
        link: u64,
        node: NodeId,
        order: RemoteTrack,
    ) -> Result<(String, String), String> {
        let dir = (self.dir.as_ref()).ok_or("recording is off on this host (no RECORD_DIR)")?;
        let rooms = self.rooms.upgrade().ok_or("this host is stopping")?;
        let asked = |l: &Lent| &l.host == host && l.link == link && l.track == order.track;
        let key = (host.clone(), link, order.track);
        {
            let mut opening = self.opening();
            if self.lent().values().any(asked) || opening.contains_key(&key) {
                return Err(format!("track {} is being recorded already", order.track));
            }
            opening.insert(key.clone(), false);
        }
        let opened = self.open_lent(dir, &rooms, node, &order).await;
        let (id, tap, file, codec) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                self.opening().remove(&key);
                return Err(e);
            }
        };
        // Out of `opening` and into `lent` under one lock: an end asked meanwhile finds it in
        // one or the other.
        let ended_meanwhile = {
            let mut opening = self.opening();
            let ended = opening.remove(&key).unwrap_or(false);
            if !ended {
                let lent = Lent {
                    host: host.clone(),
                    link,
                    track: order.track,
                    tap: tap.clone(),
                };
                self.lent().insert(id, lent);
            }
            ended
        };
        if ended_meanwhile {
            // Its host gave up waiting and asked for the end before the open was done.
            let _ = self.untap_here(id, &tap).await;
            return Err(format!("track {} was ended while it opened", order.track));
        }
        tracing::info!(%host, room = %order.room, file, "recording a track of another host's room");
        Ok((file, codec))
    }

    fn opening(&self) -> MutexGuard<'_, std::collections::HashMap<(HostId, u64, u64), bool>> {
        self.opening.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a lent track: its folder under `dir`, the tap and this host's recorder.
    async fn open_lent(
        &self,
        dir: &Path,
        rooms: &Rooms,
        node: NodeId,
        order: &RemoteTrack,
    ) -> Result<(u64, Tap, String, String), String> {
        // Names another host sends are made safe here: no path leaves RECORD_DIR.
        let folder = dir
            .join(file_part(&order.room))
            .join(file_part(&order.folder));
        std::fs::create_dir_all(&folder)
            .map_err(|e| format!("cannot write recordings to {}: {e}", folder.display()))?;
        self.tap_here(
            rooms,
            &folder,
            &file_part(&order.name),
            node,
            order.router,
            order.producer,
        )
        .await
        .map_err(|e| format!("{e:#}"))
    }

    /// Ends the track `track` this host records for `host`: what its file holds.
    pub async fn end_for(
        &self,
        host: &HostId,
        link: u64,
        track: u64,
    ) -> Result<TrackSummary, String> {
        let found = {
            let mut opening = self.opening();
            let mut lent = self.lent();
            let id = (lent.iter())
                .find(|(_, l)| &l.host == host && l.link == link && l.track == track)
                .map(|(id, _)| *id);
            match id.and_then(|id| lent.remove(&id).map(|l| (id, l))) {
                Some(found) => Some(found),
                None => match opening.get_mut(&(host.clone(), link, track)) {
                    // Still opening: it is ended as soon as it is open.
                    Some(ended) => {
                        *ended = true;
                        return Err(format!(
                            "track {track} was still opening: it ends once open"
                        ));
                    }
                    None => None,
                },
            }
        };
        let (id, lent) = found.ok_or_else(|| format!("no track {track} of host {host} here"))?;
        self.untap_here(id, &lent.tap).await
    }

    /// The link `link` to `host` ended: every track recorded for it ends here (its files
    /// keep what came; that host hears nothing more of them).
    pub fn end_all_for(self: &Arc<Self>, host: &HostId, link: u64) {
        let ended: Vec<(u64, Lent)> = {
            let mut lent = self.lent();
            let ids: Vec<u64> = (lent.iter())
                .filter(|(_, l)| &l.host == host && l.link == link)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| lent.remove(&id).map(|l| (id, l)))
                .collect()
        };
        if ended.is_empty() {
            return;
        }
        tracing::warn!(%host, tracks = ended.len(), "ending the tracks recorded for another host's rooms: its link is down");
        let this = self.clone();
        tokio::spawn(async move {
            for (id, lent) in ended {
                let _ = this.untap_here(id, &lent.tap).await;
            }
        });
    }

    /// This host's recorder stopped track `id` on its own (`None`: the recorder died, and
    /// every lent track with it). Whether it was a lent track: its tap is closed and its
    /// host told.
    pub(super) async fn lent_failed(&self, id: Option<u64>, summary: &TrackSummary) -> bool {
        let failed_ones: Vec<Lent> = {
            let mut lent = self.lent();
            match id {
                Some(id) => lent.remove(&id).into_iter().collect(),
                None => lent.drain().map(|(_, l)| l).collect(),
            }
        };
        let Some(rooms) = self.rooms.upgrade() else {
            return !failed_ones.is_empty();
        };
        let found = !failed_ones.is_empty();
        for lent in failed_ones {
            tracing::error!(host = %lent.host, track = lent.track, "a track recorded for another host's room stops: {}", summary.error.as_deref().unwrap_or("?"));
            Self::close_tap(&rooms, &lent.tap).await;
            if let Some(remote) = rooms.remote() {
                remote.recorded_failed(&lent.host, lent.link, lent.track, summary.clone());
            }
        }
        found
    }

    /// A summary for tracks a dead recorder held.
    pub(super) fn died(reason: &str) -> TrackSummary {
        failed(&format!("the recorder died: {reason}"))
    }
}
