//! A participant's signaling session, as the SFU handed it out: where to take it back when
//! its connection closes (its host, then the others the SFU listed) and the resume token to
//! present, tried with backoff for a while.

use std::time::{Duration, Instant};

use signaling_api::client::Client;

use crate::participant::{failed, Failed};
use crate::sfu_peer::SfuTarget;

/// What a participant needs to take its session back on a new connection.
pub struct Session {
    /// The signaling URL it uses now.
    pub url: String,
    /// Every host's signaling URL, as the SFU last listed them.
    pub hosts: Vec<String>,
    /// The resume token of the last join or resume answer.
    pub token: String,
}

/// How long a participant keeps trying to take its session back.
const RESUME_WITHIN: Duration = Duration::from_secs(20);

impl Session {
    /// Reconnects (its URL first, then each other host in turn, backing off) and resumes; the
    /// new connection and the answer.
    pub async fn resume(
        &mut self,
        target: &SfuTarget,
    ) -> Result<(Client, signaling_api::Resumed), Failed> {
        let deadline = Instant::now() + RESUME_WITHIN;
        let mut candidates: Vec<String> = std::iter::once(self.url.clone())
            .chain(self.hosts.iter().filter(|h| **h != self.url).cloned())
            .collect();
        candidates.dedup();
        let mut delay = Duration::from_millis(100);
        let mut last = failed("connection", "the SFU closed the signaling connection");
        for url in candidates.iter().cycle() {
            if Instant::now() > deadline {
                break;
            }
            let attempt = async {
                let mut client = Client::connect(url, Some(target.tls.clone())).await?;
                let args = signaling_api::ResumeArgs {
                    resume_token: self.token.clone(),
                };
                let resumed = client.call(&args).await?;
                Ok::<_, Failed>((client, resumed))
            };
            match attempt.await {
                Ok((client, resumed)) if resumed.joined => {
                    if let Some(token) = &resumed.resume_token {
                        self.token = token.clone();
                    }
                    if !resumed.hosts.is_empty() {
                        self.hosts = resumed.hosts.clone();
                    }
                    self.url = url.clone();
                    return Ok((client, resumed));
                }
                // Its room moved while it was away: what a `roomMoved` means here.
                Ok(_) => return Err(failed("roomMoved", "the room moved while resuming")),
                // A refused token is final; a host that cannot be reached is not.
                Err(e) if e.code == "unauthorized" => return Err(e),
                Err(e) => last = e,
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        Err(last)
    }
}
