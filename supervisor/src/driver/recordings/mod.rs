//! Recordings of rooms: which rooms record, and keeping their tracks in step with the room.
//! A recording reconciles twice a second: every producer of the room (or of the one peer
//! asked for) gets a track (a node's tap sending RTP to the recorder, which writes a file),
//! a producer gone ends its track, and the room gone stops the recording. Reconciling rather
//! than reacting to each event keeps it right after anything: a late producer, a node moved
//! by a drain, a recorder that died. Stopping ends every file and writes `manifest.json`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use ids::HostId;
use ipc::messages::{ProducerId, RoomId};
use ipc::recorder::{RecorderEvent, TrackSummary};
use monitor_api::{RecordedTrack, RecordingManifest};
use signaling_api::{Notification, PeerId};
use tokio::sync::mpsc;

use crate::driver::recorder_link::{RecorderLink, RecorderNews};
use crate::driver::recording_files::{file_part, new_folder, now_rfc3339, write_manifest};
use crate::driver::recording_plan::{plan, Has};
use crate::driver::rooms::Rooms;

/// How often a recording catches up with its room.
const RECONCILE_EVERY: Duration = Duration::from_millis(500);

/// Why a recording cannot start or stop.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// No `RECORD_DIR`.
    #[error("recording is off: set RECORD_DIR (--record-dir) to the folder recordings go to")]
    Off,
    /// No such room here.
    #[error("no room {0:?}")]
    UnknownRoom(String),
    /// The room has no participant by that name or id.
    #[error("no participant {peer:?} in room {room:?}")]
    UnknownPeer {
        /// The room.
        room: String,
        /// Who was asked for.
        peer: String,
    },
    /// The room records already.
    #[error("room {0:?} is being recorded already (monitor record stop first)")]
    AlreadyRecording(String),
    /// The room does not record.
    #[error("room {0:?} is not being recorded")]
    NotRecording(String),
    /// The folder cannot be made or written.
    #[error("cannot write recordings to {path}: {reason}")]
    Unwritable {
        /// The folder.
        path: String,
        /// Why.
        reason: String,
    },
}

mod tracks;

/// A track being recorded.
struct Track {
    /// The recorder's number for it (the host's that records it).
    id: u64,
    at: tracks::At,
    entry: RecordedTrack,
}

/// A room being recorded.
struct Recording {
    folder: PathBuf,
    manifest: RecordingManifest,
    tracks: HashMap<ProducerId, Track>,
    /// Producers being tapped right now, or that cannot be recorded (never retried).
    busy: HashSet<ProducerId>,
    /// Tracks that ended, for the manifest, with their start (Unix ms) when known.
    ended: Vec<(RecordedTrack, Option<i64>)>,
    /// Peers told that the room records (everyone in it, late joiners too).
    told: HashSet<PeerId>,
}

/// The recordings of this host.
pub struct Recordings {
    dir: Option<PathBuf>,
    /// Where the recorder listens and the nodes' taps send from (the pipe address).
    ip: IpAddr,
    link: RecorderLink,
    rooms: Weak<Rooms>,
    state: Mutex<HashMap<RoomId, Recording>>,
    /// Tracks this host records for other hosts' rooms, by this host's recorder's number.
    lent: Mutex<HashMap<u64, tracks::Lent>>,
    /// Lent tracks being opened (host, link, its number), and whether their end was asked
    /// meanwhile (their host gave up waiting): ended as soon as they are open.
    opening: Mutex<HashMap<(HostId, u64, u64), bool>>,
    next_track: AtomicU64,
}

impl Recordings {
    /// Recordings into `dir` (`None`: off), through `link`, of `rooms`' rooms. `news` is
    /// the link's; [`Recordings::follow_recorder`] consumes it.
    pub fn new(dir: Option<PathBuf>, ip: IpAddr, link: RecorderLink, rooms: Weak<Rooms>) -> Self {
        Self {
            dir,
            ip,
            link,
            rooms,
            state: Mutex::new(HashMap::new()),
            lent: Mutex::new(HashMap::new()),
            opening: Mutex::new(HashMap::new()),
            next_track: AtomicU64::new(1),
        }
    }

    fn state(&self) -> MutexGuard<'_, HashMap<RoomId, Recording>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts recording `room` (only `peer`'s tracks, when given).
    pub fn start(
        self: &Arc<Self>,
        room: &str,
        peer: Option<String>,
    ) -> Result<RecordingManifest, RecordingError> {
        let dir = self.dir.as_ref().ok_or(RecordingError::Off)?;
        let rooms = self.rooms.upgrade().ok_or(RecordingError::Off)?;
        let room_id = RoomId(room.to_string());
        let views = rooms.views(Some(&room_id));
        let view = views
            .get(&room_id)
            .ok_or_else(|| RecordingError::UnknownRoom(room.into()))?;
        if let Some(peer) = &peer {
            let known = view
                .peers
                .iter()
                .any(|(id, p)| p.display_name == *peer || id.to_string() == *peer);
            if !known {
                return Err(RecordingError::UnknownPeer {
                    room: room.into(),
                    peer: peer.clone(),
                });
            }
        }
        let started = now_rfc3339();
        let manifest = RecordingManifest {
            room: room.into(),
            folder: String::new(),
            started: started.clone(),
            stopped: None,
            peer,
            error: None,
            tracks: Vec::new(),
        };
        // Claimed under the lock, so that two starts of one room cannot both go on.
        {
            let mut state = self.state();
            if state.contains_key(&room_id) {
                return Err(RecordingError::AlreadyRecording(room.into()));
            }
            state.insert(
                room_id.clone(),
                Recording {
                    folder: PathBuf::new(),
                    manifest: manifest.clone(),
                    tracks: HashMap::new(),
                    busy: HashSet::new(),
                    ended: Vec::new(),
                    told: HashSet::new(),
                },
            );
        }
        // Made and written now, so that an unwritable folder is refused at once.
        let parent = dir.join(file_part(room));
        let made = new_folder(&parent, &started.replace(':', "-")).and_then(|folder| {
            let manifest = RecordingManifest {
                folder: folder.display().to_string(),
                ..manifest
            };
            write_manifest(&folder, &manifest).map(|()| (folder, manifest))
        });
        let (folder, manifest) = match made {
            Ok(made) => made,
            Err(e) => {
                self.state().remove(&room_id);
                return Err(RecordingError::Unwritable {
                    path: parent.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        tracing::info!(room, folder = %folder.display(), "recording started");
        rooms.publish(monitor_api::EventKind::RecordingStarted {
            room: room.into(),
            folder: folder.display().to_string(),
        });
        self.with_recording(&room_id, |r| {
            r.folder = folder.clone();
            r.manifest = manifest.clone();
        });
        let recordings = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RECONCILE_EVERY);
            loop {
                every.tick().await;
                let Some(recordings) = recordings.upgrade() else {
                    return;
                };
                if !recordings.reconcile(&room_id).await {
                    return;
                }
            }
        });
        Ok(manifest)
    }

    /// Stops recording `room`: every file is ended and the manifest written.
    pub async fn stop(&self, room: &str) -> Result<RecordingManifest, RecordingError> {
        let recording = self
            .state()
            .remove(&RoomId(room.to_string()))
            .ok_or_else(|| RecordingError::NotRecording(room.into()))?;
        Ok(self.finish(recording, None).await)
    }

    /// Every recording under `RECORD_DIR`: those running, then the finished ones' manifests.
    pub fn list(&self) -> Result<Vec<RecordingManifest>, RecordingError> {
        let dir = self.dir.as_ref().ok_or(RecordingError::Off)?;
        let running: Vec<RecordingManifest> =
            self.state().values().map(|r| r.manifest.clone()).collect();
        let mut found = running.clone();
        let folders = std::fs::read_dir(dir).into_iter().flatten().flatten();
        for room in folders {
            for recording in std::fs::read_dir(room.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = recording.path().join("manifest.json");
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let Ok(manifest) = serde_json::from_str::<RecordingManifest>(&text) else {
                    continue;
                };
                if !running.iter().any(|r| r.folder == manifest.folder) {
                    found.push(manifest);
                }
            }
        }
        found.sort_by(|a, b| a.started.cmp(&b.started).then(a.room.cmp(&b.room)));
        Ok(found)
    }

    /// Whether `room` records now.
    pub fn is_recording(&self, room: &RoomId) -> bool {
        self.state().contains_key(room)
    }

    /// Follows what the recorder reports: a track that failed ends (and, since its disk is
    /// what failed, its recording stops); a recorder that died stops every recording.
    pub async fn follow_recorder(self: Arc<Self>, mut news: mpsc::UnboundedReceiver<RecorderNews>) {
        while let Some(news) = news.recv().await {
            match news {
                RecorderNews::Event(RecorderEvent::TrackFailed { track, summary }) => {
                    if !self.lent_failed(Some(track), &summary).await {
                        self.track_failed(None, track, summary).await;
                    }
                }
                RecorderNews::Died(reason) => {
                    self.lent_failed(None, &Self::died(&reason)).await;
                    let all: Vec<Recording> = self.state().drain().map(|(_, r)| r).collect();
                    for recording in all {
                        tracing::error!(room = %recording.manifest.room, "recording stops: the recorder died ({reason})");
                        self.finish(recording, Some(format!("the recorder died: {reason}")))
                            .await;
                    }
                }
            }
        }
    }

    /// Track `track` stopped on its own, written by this host's recorder (`host` `None`) or
    /// by `host`'s: its recording stops, since its disk is what failed.
    pub async fn track_failed(&self, host: Option<&HostId>, track: u64, summary: TrackSummary) {
        let room = self
            .state()
            .iter()
            .find(|(_, r)| {
                r.tracks.values().any(|t| {
                    t.id == track
                        && match (&t.at, host) {
                            (tracks::At::Here(_), None) => true,
                            (tracks::At::There(at), Some(host)) => at == host,
                            _ => false,
                        }
                })
            })
            .map(|(room, _)| room.clone());
        let Some(room) = room else { return };
        let error = summary
            .error
            .clone()
            .unwrap_or_else(|| "a track stopped".into());
        match host {
            Some(host) => tracing::error!(%room, track, %host, "recording stops: {error}"),
            None => tracing::error!(%room, track, "recording stops: {error}"),
        }
        let recording = self.state().remove(&room);
        if let Some(recording) = recording {
            self.finish(recording, Some(error)).await;
        }
    }

    /// Brings `room`'s recording in step with the room; `false` once it is over.
    async fn reconcile(self: &Arc<Self>, room: &RoomId) -> bool {
        let Some(rooms) = self.rooms.upgrade() else {
            return false;
        };
        let views = rooms.views(Some(room));
        let Some(view) = views.get(room) else {
            // The room closed: the recording ends with it.
            let recording = self.state().remove(room);
            if let Some(recording) = recording {
                self.finish(recording, None).await;
            }
            return false;
        };
        let (wanted, gone, untold) = {
            let mut state = self.state();
            let Some(recording) = state.get_mut(room) else {
                return false;
            };
            let recorded: HashSet<ProducerId> = recording.tracks.keys().copied().collect();
            let plan = plan(
                view,
                &Has {
                    only: recording.manifest.peer.as_deref(),
                    recorded: &recorded,
                    busy: &recording.busy,
                    told: &recording.told,
                },
            );
            recording.told.extend(plan.tell.iter().copied());
            recording.busy.extend(plan.tap.iter().map(|w| w.producer));
            let gone: Vec<Track> = plan
                .end
                .iter()
                .filter_map(|p| recording.tracks.remove(p))
                .collect();
            (plan.tap, gone, plan.tell)
        };
        if !untold.is_empty() {
            rooms.notify(&untold, &Notification::Recording { active: true });
        }
        for track in gone {
            let entry = self.end_track(track).await;
            self.with_recording(room, |r| r.ended.push(entry));
        }
        for wanted in wanted {
            let producer = wanted.producer;
            let folder = match self.state().get(room) {
                Some(r) => r.folder.clone(),
                None => return false,
            };
            match self.open_track(&rooms, &room.0, &folder, &wanted).await {
                Ok(track) => {
                    tracing::info!(%room, %producer, file = %track.entry.file, "recording a track");
                    let mut track = Some(track);
                    self.with_recording(room, |r| {
                        r.busy.remove(&producer);
                        if let Some(track) = track.take() {
                            r.tracks.insert(producer, track);
                        }
                    });
                    if let Some(track) = track {
                        // Stopped meanwhile: nobody else would end this track.
                        self.end_track(track).await;
                        return false;
                    }
                }
                Err(e) => {
                    // Left in `busy`: a producer that cannot be recorded is not retried.
                    tracing::warn!(%room, %producer, "cannot record a track: {e:#}");
                }
            }
        }
        true
    }

    fn with_recording<T>(&self, room: &RoomId, f: impl FnOnce(&mut Recording) -> T) -> Option<T> {
        self.state().get_mut(room).map(f)
    }

    /// Ends every track of `recording`, tells the room, and writes its final manifest.
    async fn finish(&self, recording: Recording, error: Option<String>) -> RecordingManifest {
        let Recording {
            folder,
            mut manifest,
            tracks,
            mut ended,
            told,
            ..
        } = recording;
        if let Some(rooms) = self.rooms.upgrade() {
            let told: Vec<PeerId> = told.into_iter().collect();
            rooms.notify(&told, &Notification::Recording { active: false });
        }
        for (_, track) in tracks {
            ended.push(self.end_track(track).await);
        }
        // Offsets from the earliest start; tracks without a known start have none.
        let earliest = ended.iter().filter_map(|(_, start)| *start).min();
        let mut tracks: Vec<RecordedTrack> = ended
            .into_iter()
            .map(|(mut track, start)| {
                track.offset_ms = start.zip(earliest).map(|(s, e)| s - e);
                track
            })
            .collect();
        tracks.sort_by_key(|t| t.offset_ms.unwrap_or(i64::MAX));
        manifest.tracks = tracks;
        manifest.stopped = Some(now_rfc3339());
        manifest.error = error;
        if let Err(e) = write_manifest(&folder, &manifest) {
            tracing::error!(folder = %folder.display(), "cannot write the recording's manifest: {e}");
        }
        match &manifest.error {
            None => {
                tracing::info!(room = %manifest.room, tracks = manifest.tracks.len(), "recording stopped")
            }
            Some(error) => {
                tracing::warn!(room = %manifest.room, tracks = manifest.tracks.len(), %error, "recording stopped early; the calls go on")
            }
        }
        if let Some(rooms) = self.rooms.upgrade() {
            rooms.publish(monitor_api::EventKind::RecordingStopped {
                room: manifest.room.clone(),
                tracks: u32::try_from(manifest.tracks.len()).unwrap_or(u32::MAX),
                error: manifest.error.clone(),
            });
        }
        manifest
    }
}
