//! Secrets read from files (`JOIN_SECRET_FILE`, `MONITOR_TOKEN_FILE`): what a secret in a
//! variable or flag would show to anyone who can run `ps` or read the environment stays in a
//! file only its owner reads (a systemd credential, a Kubernetes secret volume).

use std::path::Path;

use super::ConfigError;

/// The shortest monitor token taken: it guards the whole SFU's statistics and events.
pub const MIN_MONITOR_TOKEN_LEN: usize = 32;

/// The secret in `path`: its text without the line ending an editor or `echo` adds.
pub fn read_secret_file(path: &Path, variable: &'static str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::SecretFile {
        variable,
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let secret = text.trim_end_matches(['\n', '\r']).to_string();
    if secret.is_empty() {
        return Err(ConfigError::SecretFile {
            variable,
            path: path.display().to_string(),
            reason: "the file is empty".into(),
        });
    }
    Ok(secret)
}

/// Whether `token` may be the monitor token: long enough, and able to travel in a header.
pub fn check_monitor_token(token: &str) -> Result<(), ConfigError> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::MonitorToken);
    }
    if token.len() < MIN_MONITOR_TOKEN_LEN {
        return Err(ConfigError::MonitorTokenShort(token.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_gives_its_text_without_the_line_ending() {
        let dir = std::env::temp_dir().join(format!("secrets-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
        assert_eq!(
            read_secret_file(&path, "JOIN_SECRET_FILE").unwrap(),
            "0123456789abcdef0123456789abcdef"
        );
        std::fs::write(&path, "\n").unwrap();
        let empty = read_secret_file(&path, "JOIN_SECRET_FILE").unwrap_err();
        assert!(empty.to_string().contains("empty"), "{empty}");
        let missing = read_secret_file(&dir.join("nope"), "MONITOR_TOKEN_FILE").unwrap_err();
        let message = missing.to_string();
        assert!(
            message.contains("MONITOR_TOKEN_FILE") && message.contains("nope"),
            "{message}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_monitor_token_is_32_visible_characters_or_more() {
        assert_eq!(check_monitor_token(&"a".repeat(32)), Ok(()));
        assert_eq!(
            check_monitor_token("right-token"),
            Err(ConfigError::MonitorTokenShort(11))
        );
        let message = ConfigError::MonitorTokenShort(11).to_string();
        assert!(message.contains("openssl rand"), "{message}");
        for bad in ["has space", "tab\t", "é"] {
            assert_eq!(
                check_monitor_token(bad),
                Err(ConfigError::MonitorToken),
                "{bad:?}"
            );
        }
    }
}
