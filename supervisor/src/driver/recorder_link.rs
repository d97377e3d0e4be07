//! The supervisor's side of its recorder process: started when the first track is to be
//! recorded (nothing runs while nobody records), spoken to over a Unix socket
//! (`ipc::recorder`), and started again by the next request after it died. A dead recorder
//! fails what was waiting and tells [`RecorderLink::events`] so that recordings stop.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use ipc::recorder::{
    FromRecorder, RecorderAnswer, RecorderEvent, RecorderRequest, ToRecorder,
    RECORDER_PROTOCOL_VERSION,
};
use ipc::rpc::Pending;
use tokio::process::Command;
use tokio::sync::mpsc;

/// Requests that may wait for the recorder at once.
const IN_FLIGHT: usize = 1_024;
/// How long the recorder may take to start and say hello.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may wait (closing a track ends its file: a few seconds at most).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What happened to the recorder without being asked.
#[derive(Debug)]
pub enum RecorderNews {
    /// A track stopped on its own (disk full, unwritable).
    Event(RecorderEvent),
    /// The process exited or its socket closed: every track it had is over.
    Died(String),
}

type Answer = Result<RecorderAnswer, String>;

/// One running recorder.
struct Running {
    pending: Arc<Pending<Answer>>,
    to_recorder: mpsc::Sender<ToRecorder>,
    pid: u32,
    /// Set when the process exited or its socket closed.
    gone: Arc<AtomicBool>,
}

/// The recorder process of this host, started on demand.
pub struct RecorderLink {
    binary: PathBuf,
    socket_dir: PathBuf,
    log_format: &'static str,
    running: tokio::sync::Mutex<Option<Running>>,
    news: mpsc::UnboundedSender<RecorderNews>,
    /// Generations of recorders started (for the socket's name).
    started: Mutex<u64>,
}

impl RecorderLink {
    /// A link that will start `binary` when first needed; news goes to `news`.
    pub fn new(
        binary: PathBuf,
        socket_dir: PathBuf,
        log_format: &'static str,
        news: mpsc::UnboundedSender<RecorderNews>,
    ) -> Self {
        Self {
            binary,
            socket_dir,
            log_format,
            running: tokio::sync::Mutex::new(None),
            news,
            started: Mutex::new(0),
        }
    }

    /// The recorder's process id, when one runs.
    pub async fn pid(&self) -> Option<u32> {
        self.running.lock().await.as_ref().map(|r| r.pid)
    }

    /// Asks the recorder (started first if none runs) and waits for its answer.
    pub async fn call(&self, request: RecorderRequest) -> anyhow::Result<RecorderAnswer> {
        let (pending, to_recorder) = {
            // Held while a recorder starts (bounded by START_TIMEOUT), never across a request.
            let mut running = self.running.lock().await;
            let alive = running
                .as_ref()
                .is_some_and(|r| !r.gone.load(Ordering::Relaxed));
            if !alive {
                *running = Some(self.start().await?);
            }
            let r = running.as_ref().ok_or_else(|| anyhow!("no recorder"))?;
            (r.pending.clone(), r.to_recorder.clone())
        };
        let ticket = pending.register()?;
        let id = ticket.id;
        to_recorder
            .try_send(ToRecorder::Request { id, request })
            .map_err(|_| anyhow!("the recorder is not taking requests"))?;
        pending
            .wait(ticket, REQUEST_TIMEOUT)
            .await?
            .map_err(|refusal| anyhow!(refusal))
    }

    async fn start(&self) -> anyhow::Result<Running> {
        let generation = {
            let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
            *started += 1;
            *started
        };
        let socket = self.socket_dir.join(format!("recorder-{generation}.sock"));
        let listener = ipc::socket::listen(&socket)
            .with_context(|| format!("cannot listen on {}", socket.display()))?;
        let mut child = Command::new(&self.binary)
            .arg("--socket")
            .arg(&socket)
            .env("LOG_FORMAT", self.log_format)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start the recorder {}", self.binary.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("the recorder exited at once"))?;
        let connected = tokio::select! {
            accepted = tokio::time::timeout(START_TIMEOUT, ipc::socket::accept(&listener)) => {
                accepted.map_err(|_| anyhow!("the recorder did not connect within {START_TIMEOUT:?}"))?
                    .context("accepting the recorder")?
            }
            status = child.wait() => bail!("the recorder exited at start: {status:?}"),
        };
        let _ = std::fs::remove_file(&socket);
        let (mut reader, mut writer) = connected;
        match tokio::time::timeout(START_TIMEOUT, reader.recv::<FromRecorder>()).await {
            Ok(Ok(Some(FromRecorder::Hello {
                protocol_version, ..
            }))) if protocol_version == RECORDER_PROTOCOL_VERSION => {}
            Ok(Ok(Some(FromRecorder::Hello {
                protocol_version, ..
            }))) => bail!(
                "the recorder speaks protocol {protocol_version}, this supervisor \
                 {RECORDER_PROTOCOL_VERSION}: install a recorder of the same build"
            ),
            other => bail!("no hello from the recorder: {other:?}"),
        }
        writer
            .send(&ToRecorder::Hello {
                protocol_version: RECORDER_PROTOCOL_VERSION,
            })
            .await?;
        tracing::info!(pid, "recorder started");

        let pending = Arc::new(Pending::<Answer>::with_capacity(IN_FLIGHT));
        let (to_recorder, mut outgoing) = mpsc::channel::<ToRecorder>(IN_FLIGHT);
        tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if writer.send(&message).await.is_err() {
                    break;
                }
            }
        });
        let answers = pending.clone();
        let news = self.news.clone();
        let gone = Arc::new(AtomicBool::new(false));
        let gone_flag = gone.clone();
        tokio::spawn(async move {
            let reason = loop {
                tokio::select! {
                    message = reader.recv::<FromRecorder>() => match message {
                        Ok(Some(FromRecorder::Answer { id, result })) => {
                            answers.answer(id, result);
                        }
                        Ok(Some(FromRecorder::Event(event))) => {
                            let _ = news.send(RecorderNews::Event(event));
                        }
                        Ok(Some(FromRecorder::Hello { .. })) => {}
                        Ok(None) => break "its socket closed".to_string(),
                        Err(e) => break format!("its socket failed: {e}"),
                    },
                    status = child.wait() => break format!("it exited: {status:?}"),
                }
            };
            gone_flag.store(true, Ordering::Relaxed);
            answers.close();
            let _ = child.kill().await;
            tracing::warn!(pid, "recorder gone: {reason}");
            let _ = news.send(RecorderNews::Died(reason));
        });
        Ok(Running {
            pending,
            to_recorder,
            pid,
            gone,
        })
    }
}
