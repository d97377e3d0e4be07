//! Data channels of a test transport (str0m's SCTP): channels are opened on the stream ids
//! the server's `produceData`/`consumeData` name (negotiated out of band, as mediasoup-client
//! does), text is written on them, and what arrives is kept per stream id.

use std::collections::{BTreeSet, HashMap};

use str0m::channel::{ChannelConfig, ChannelId};
use str0m::{Event, Rtc};

/// What the test asks of a transport's data channels.
#[derive(Debug)]
pub enum ChannelCommand {
    /// Open a channel on SCTP stream `stream` (starts SCTP the first time).
    Open { stream: u16, label: String },
    /// Send `text` on the channel of `stream`.
    Send { stream: u16, text: String },
}

/// The transport task's side: which str0m channel is which stream.
#[derive(Default)]
pub struct Channels {
    sctp_started: bool,
    by_stream: HashMap<u16, ChannelId>,
}

/// What the test reads: open streams and the messages that arrived on each.
#[derive(Clone, Debug, Default)]
pub struct ChannelLog {
    pub open: BTreeSet<u16>,
    pub received: HashMap<u16, Vec<String>>,
}

impl Channels {
    pub fn apply(&mut self, rtc: &mut Rtc, command: ChannelCommand) -> Result<(), String> {
        match command {
            ChannelCommand::Open { stream, label } => {
                let mut api = rtc.direct_api();
                if !self.sctp_started {
                    // The DTLS client is the SCTP client too.
                    api.start_sctp(true);
                    self.sctp_started = true;
                }
                let id = api.create_data_channel(ChannelConfig {
                    label,
                    negotiated: Some(stream),
                    ..ChannelConfig::default()
                });
                self.by_stream.insert(stream, id);
            }
            ChannelCommand::Send { stream, text } => {
                let id = self
                    .by_stream
                    .get(&stream)
                    .ok_or_else(|| format!("no channel on SCTP stream {stream}"))?;
                let mut channel = rtc
                    .channel(*id)
                    .ok_or_else(|| format!("the channel on SCTP stream {stream} is not open"))?;
                channel
                    .write(false, text.as_bytes())
                    .map_err(|e| format!("writing on SCTP stream {stream}: {e}"))?;
            }
        }
        Ok(())
    }

    /// Records a channel event in `log`; `false` when `event` is not one.
    pub fn handle_event(&self, event: &Event, log: &mut ChannelLog) -> bool {
        let stream_of = |id: &ChannelId| {
            self.by_stream
                .iter()
                .find(|(_, c)| *c == id)
                .map(|(s, _)| *s)
        };
        match event {
            Event::ChannelOpen(id, _) => {
                if let Some(stream) = stream_of(id) {
                    log.open.insert(stream);
                }
                true
            }
            Event::ChannelData(data) => {
                if let Some(stream) = stream_of(&data.id) {
                    let text = String::from_utf8_lossy(&data.data).into_owned();
                    log.received.entry(stream).or_default().push(text);
                }
                true
            }
            _ => false,
        }
    }
}
