//! A recording's files: the folder of each start (its own, even within one second), the
//! names of its track files, and `manifest.json`, written so that a crash never leaves half.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use monitor_api::RecordingManifest;

/// Now, as a manifest says it (UTC, seconds).
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// `text` as a file name part: letters, digits, `-` and `_`, at most 40 characters.
pub(crate) fn file_part(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if cleaned.is_empty() {
        "_".into()
    } else {
        cleaned
    }
}

/// A new folder `name` under `parent` (`name-2`, `name-3`, … when a recording of the same
/// second exists: a stop and a start within a second must not share files).
pub(crate) fn new_folder(parent: &Path, name: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(parent)?;
    for n in 1..100 {
        let folder = if n == 1 {
            parent.join(name)
        } else {
            parent.join(format!("{name}-{n}"))
        };
        match std::fs::create_dir(&folder) {
            Ok(()) => return Ok(folder),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "99 recordings of this room in one second",
    ))
}

/// `manifest.json` of `folder`, written aside and renamed.
pub(crate) fn write_manifest(folder: &Path, manifest: &RecordingManifest) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    // Written aside and renamed: a crash never leaves half a manifest.
    let temporary = folder.join("manifest.json.tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, folder.join("manifest.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_started_in_the_same_second_as_another_gets_a_folder_of_its_own() {
        let parent = std::env::temp_dir().join(format!("sfu-new-folder-{}", std::process::id()));
        let first = new_folder(&parent, "2026-12-07T09-18-19Z").expect("first");
        let second = new_folder(&parent, "2026-12-07T09-18-19Z").expect("second");
        assert_ne!(first, second);
        assert!(second.ends_with("2026-12-07T09-18-19Z-2"), "{second:?}");
        let _ = std::fs::remove_dir_all(&parent);
    }

    #[test]
    fn file_names_keep_letters_digits_dashes_and_underscores_only() {
        assert_eq!(file_part("Alice Smith/../x"), "Alice_Smith____x");
        assert_eq!(file_part(""), "_");
        assert_eq!(file_part(&"é".repeat(50)).len(), 40);
    }
}
