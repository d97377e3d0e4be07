//! `supervisor env-file`: every setting as a commented `NAME=default` line under its help,
//! generated from the flags themselves so the template never misses one. The Debian package
//! installs it as /etc/sfu/sfu.env, which the systemd unit reads.

use clap::CommandFactory;

use super::Config;

/// The commented environment file of every setting `Config` reads from the environment.
pub fn env_file() -> String {
    let command = Config::command();
    let mut out = String::new();
    for arg in command.get_arguments() {
        let Some(name) = arg.get_env().and_then(|n| n.to_str()) else {
            continue;
        };
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        out.push('\n');
        for line in wrap(&help, 94) {
            out.push_str("# ");
            out.push_str(&line);
            out.push('\n');
        }
        let default = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(",");
        out.push_str(&format!("#{name}={default}\n"));
    }
    out
}

/// `text` as lines of at most `width` characters (longer words stay whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_read_from_the_environment_is_in_the_env_file_with_its_default() {
        let file = env_file();
        let command = Config::command();
        let envs: Vec<_> = command
            .get_arguments()
            .filter_map(|a| a.get_env())
            .collect();
        assert!(envs.len() > 40, "{} settings", envs.len());
        for env in envs {
            let line = format!("\n#{}=", env.to_string_lossy());
            assert!(file.contains(&line), "{line:?} missing");
        }
        assert!(file.contains("\n#PORT=8000\n"), "{file}");
        assert!(file.contains("\n#TURN_TTL_SECS=86400\n"), "{file}");
        assert!(file.contains("\n#TLS_CERT_PATH=\n"), "{file}");
    }

    #[test]
    fn long_help_wraps_into_comment_lines_of_at_most_96_characters() {
        for line in env_file().lines() {
            let long_word = line.split_whitespace().any(|w| w.len() > 94);
            assert!(line.len() <= 96 || long_word, "{line}");
        }
    }
}
