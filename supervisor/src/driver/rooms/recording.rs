//! A participant's `startRecording` and `stopRecording`: the core says which room the peer
//! may record (its token's `canRecord`), the host's [`Recordings`] does it, and the answer
//! goes out on the connection like any other.

use std::sync::Arc;

use signaling_api::{error_answer, ok_answer, Answer, ClientError, ClientErrorCode, Done, PeerId};

use super::Rooms;
use crate::driver::recordings::{RecordingError, Recordings};

/// What a participant asks of its room's recording.
pub(super) enum Asked {
    /// `startRecording`: everyone's tracks, or only `only`'s.
    Start { only: Option<String> },
    /// `stopRecording`.
    Stop,
}

/// A recording's refusal, as its client hears it.
fn client_error(error: RecordingError) -> ClientError {
    let code = match &error {
        RecordingError::Off => ClientErrorCode::Forbidden,
        RecordingError::AlreadyRecording(_) => ClientErrorCode::InvalidArgument,
        RecordingError::UnknownRoom(_)
        | RecordingError::UnknownPeer { .. }
        | RecordingError::NotRecording(_) => ClientErrorCode::NotFound,
        RecordingError::Unwritable { .. } => ClientErrorCode::Internal,
    };
    // The folder is the operator's business, not the participant's.
    let message = match error {
        RecordingError::Off => "recording is off on this SFU".to_string(),
        RecordingError::Unwritable { .. } => "the SFU cannot write recordings".to_string(),
        RecordingError::AlreadyRecording(room) => {
            format!("room {room:?} is being recorded already")
        }
        other => other.to_string(),
    };
    ClientError::new(code, message)
}

impl Rooms {
    /// Where participants' recording requests go (the host's recordings).
    pub fn set_recordings(&self, recordings: Arc<Recordings>) {
        let _ = self.recordings.set(recordings);
    }

    /// This host's recordings (set at start).
    pub fn recordings(&self) -> Option<&Arc<Recordings>> {
        self.recordings.get()
    }

    /// `startRecording` or `stopRecording` from `peer`, answered to `session` as request
    /// `id`.
    pub(super) async fn client_recording(
        self: &Arc<Self>,
        (session, peer, id): (PeerId, PeerId, u64),
        asked: Asked,
    ) {
        let result = self.carry_out_recording(peer, asked).await;
        let frame = match &result {
            Ok(()) => ok_answer(id, &Answer::Done(Done {})),
            Err(error) => {
                tracing::debug!(%session, id, "request refused: {error}");
                self.metrics.signaling_error(error.code.as_str());
                error_answer(Some(id), error)
            }
        };
        if let Some(outbox) = self.state().sessions.get(&session) {
            if !outbox.push(frame) {
                tracing::warn!(%session, "cannot queue an answer: the client does not read");
            }
        }
    }

    async fn carry_out_recording(&self, peer: PeerId, asked: Asked) -> Result<(), ClientError> {
        // The core's lock is released before the recordings look at the rooms.
        let room = self.state().core.recording_room(peer)?;
        let recordings = self.recordings.get().ok_or_else(|| {
            ClientError::new(ClientErrorCode::Forbidden, "recording is off on this SFU")
        })?;
        match asked {
            Asked::Start { only } => {
                recordings.start(&room.0, only).map_err(client_error)?;
                tracing::info!(room = %room.0, %peer, "recording started by a participant");
            }
            Asked::Stop => {
                recordings.stop(&room.0).await.map_err(client_error)?;
                tracing::info!(room = %room.0, %peer, "recording stopped by a participant");
            }
        }
        Ok(())
    }
}
