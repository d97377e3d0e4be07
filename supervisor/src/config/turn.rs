//! TURN settings: the servers every client is handed, with credentials of its own.

use std::path::PathBuf;

use super::{secrets, ConfigError};
use crate::edge::turn::TurnServers;

/// TURN servers for clients behind firewalls (coturn with `use-auth-secret`): each peer gets
/// time-limited credentials in its `join` answer (`iceServers`).
#[derive(Debug, Clone, clap::Args)]
pub struct TurnArgs {
    /// TURN (and STUN) server URLs handed to every client, comma-separated, e.g.
    /// `turn:turn.example.com:3478?transport=udp,turns:turn.example.com:443?transport=tcp`.
    /// Needs TURN_SECRET for `turn:`/`turns:` URLs.
    #[arg(long, env = "TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`): each client's
    /// password is the HMAC-SHA1 of its username `expiry:peer` (the TURN REST API scheme).
    #[arg(
        long,
        env = "TURN_SECRET",
        hide_env_values = true,
        conflicts_with = "turn_secret_file"
    )]
    pub turn_secret: Option<String>,
    /// File holding the TURN secret (kept out of `ps` and the environment); instead of
    /// --turn-secret.
    #[arg(long, env = "TURN_SECRET_FILE")]
    pub turn_secret_file: Option<PathBuf>,
    /// How long a client's TURN credentials last, in seconds (10 to 604800): longer than a
    /// call, since a TURN server refuses to refresh an allocation with expired ones.
    #[arg(long, env = "TURN_TTL_SECS", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(10..=604_800))]
    pub turn_ttl_secs: u64,
}

impl TurnArgs {
    /// Reads TURN_SECRET_FILE into the secret.
    pub fn load_secret(&mut self) -> Result<(), ConfigError> {
        if let Some(path) = &self.turn_secret_file {
            self.turn_secret = Some(secrets::read_secret_file(path, "TURN_SECRET_FILE")?);
        }
        Ok(())
    }

    /// The servers to hand out; `None` when none are configured.
    pub fn servers(&self) -> Result<Option<TurnServers>, ConfigError> {
        if self.turn_urls.is_empty() {
            if self.turn_secret.is_some() || self.turn_secret_file.is_some() {
                return Err(ConfigError::Turn(
                    "TURN_SECRET is set but TURN_URLS is empty: list the TURN servers".into(),
                ));
            }
            return Ok(None);
        }
        let secret = self.turn_secret.as_deref().unwrap_or_default();
        TurnServers::new(&self.turn_urls, secret.as_bytes(), self.turn_ttl_secs)
            .map(Some)
            .map_err(|e| ConfigError::Turn(e.to_string()))
    }
}
