//! Embeds the built demo page (`web/dist`, made by `npm run build` in `web/`, which
//! `scripts/setup.sh` runs) into the supervisor, so that the binary serves it wherever it is
//! copied. Without a build the supervisor still compiles, says so here, and its page says how
//! to build it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, base, out);
        } else if let Ok(relative) = path.strip_prefix(base) {
            out.push((relative.to_string_lossy().replace('\\', "/"), path));
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dist = manifest.join("../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut found = Vec::new();
    if dist.join("index.html").is_file() {
        files(&dist, &dist, &mut found);
        found.sort();
        for (_, path) in &found {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    } else {
        println!(
            "cargo:warning=web/dist is not built: this supervisor will serve no demo page. Run scripts/setup.sh (or `npm ci && npm run build` in web/), then build again."
        );
    }
    let mut code = String::from(
        "/// The built demo page: (path, contents).\npub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for (name, path) in &found {
        let _ = writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("web_assets.rs");
    std::fs::write(out, code).expect("write web_assets.rs");
}
