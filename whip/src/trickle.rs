//! A PATCH's body (RFC 8840 `application/trickle-ice-sdpfrag`): trickled candidates, or new
//! ICE credentials (an ICE restart); and the fragment the SFU answers a restart with. A
//! fragment is a few `a=` and `m=` lines, not a whole SDP, so it is read line by line.

use crate::answer::ServerTransport;
use crate::Refusal;

/// The largest fragment read.
pub const MAX_FRAGMENT_BYTES: usize = 16 * 1024;

/// A PATCH's fragment, read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fragment {
    /// Its ICE username fragment.
    pub ice_ufrag: Option<String>,
    /// Its ICE password.
    pub ice_pwd: Option<String>,
    /// Its candidates (the SFU is ICE-lite: it needs none, the client's checks reach it).
    pub candidates: usize,
}

impl Fragment {
    /// Reads `text`.
    pub fn read(text: &str) -> Result<Fragment, Refusal> {
        if text.len() > MAX_FRAGMENT_BYTES {
            return Err(Refusal::NotSdp(format!(
                "larger than {MAX_FRAGMENT_BYTES} bytes"
            )));
        }
        let mut fragment = Fragment::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let Some((key, value)) = line.split_once('=') else {
                return Err(Refusal::NotSdp(format!("`{line}` is not an SDP line")));
            };
            if key.len() != 1 {
                return Err(Refusal::NotSdp(format!("`{line}` is not an SDP line")));
            }
            if key != "a" {
                continue;
            }
            let (name, value) = value.split_once(':').unwrap_or((value, ""));
            match name {
                "ice-ufrag" => fragment.ice_ufrag = Some(value.to_string()),
                "ice-pwd" => fragment.ice_pwd = Some(value.to_string()),
                "candidate" => fragment.candidates += 1,
                _ => {}
            }
        }
        if fragment.ice_ufrag.is_some() != fragment.ice_pwd.is_some() {
            return Err(Refusal::Incomplete(
                "an ICE restart needs both `a=ice-ufrag` and `a=ice-pwd`".into(),
            ));
        }
        Ok(fragment)
    }

    /// Whether it restarts ICE: new credentials, not those the session has.
    pub fn restarts(&self, current_ufrag: &str) -> bool {
        self.ice_ufrag
            .as_deref()
            .is_some_and(|ufrag| ufrag != current_ufrag)
    }
}

/// The SFU's answer to an ICE restart: its new credentials and its candidates, for the
/// session's first section `mid` of `media_type`.
pub fn restart_fragment(server: &ServerTransport, media_type: &str, mid: &str) -> String {
    let mut lines = vec![
        "a=ice-lite".to_string(),
        format!("a=ice-ufrag:{}", server.ice.username_fragment),
        format!("a=ice-pwd:{}", server.ice.password),
        format!("m={media_type} 9 UDP/TLS/RTP/SAVPF 0"),
        format!("a=mid:{mid}"),
    ];
    lines.extend(
        server
            .candidates
            .iter()
            .map(|c| format!("a=candidate:{}", c.line())),
    );
    lines.push("a=end-of-candidates".into());
    lines.join("\r\n") + "\r\n"
}
