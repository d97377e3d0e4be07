//! Behind a reverse proxy at a path, as the README configures it: Debian's nginx and Caddy
//! in front of the supervisor (without TLS here: loopback pages are secure contexts), the page
//! at /conference/, signaling at /api/conference; two Chromium pages call through each.
//!
//! Needs `scripts/setup.sh --tests` (nginx and caddy besides the browser's needs).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::browser::{check_prerequisites, run_browser_call};
use crate::support::Sfu;

/// Waits (10 s at most) until something listens on `port`; `log` says why not.
fn wait_listening(what: &str, port: u16, log: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not start: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Debian's nginx in front of the supervisor, as the README configures it (without TLS here:
/// loopback pages are secure contexts): the page at /conference/, signaling at
/// /api/conference. Stopped when dropped.
struct Nginx {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Nginx {
    fn start(sfu_port: u16) -> Nginx {
        let binary = Path::new("/usr/sbin/nginx");
        assert!(
            binary.is_file(),
            "nginx is missing: run scripts/setup.sh --tests"
        );
        let port = crate::support::free_port();
        let dir = std::env::temp_dir().join(format!("sfu-test-nginx-{port}"));
        std::fs::create_dir_all(&dir).expect("nginx folder");
        let conf = format!(
            r#"master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
events {{}}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' close;
    }}
    server {{
        listen 127.0.0.1:{port};
        location = /api/conference {{
            proxy_pass http://127.0.0.1:{sfu_port}/ws;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 1h;
        }}
        location /conference/ {{
            proxy_pass http://127.0.0.1:{sfu_port}/;
        }}
    }}
}}
"#,
            dir = dir.display()
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).expect("nginx.conf");
        let child = Command::new(binary)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&path)
            .args(["-g", "daemon off;"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx { child, port, dir };
        wait_listening("nginx", port, || {
            std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default()
        });
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Debian's Caddy in front of the supervisor, with the README's site block (TLS, admin API
/// and the automatic HTTPS redirect off for the test). Stopped when dropped.
struct Caddy {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Caddy {
    fn start(sfu_port: u16) -> Caddy {
        let binary = Path::new("/usr/bin/caddy");
        assert!(
            binary.is_file(),
            "caddy is missing: run scripts/setup.sh --tests"
        );
        let port = crate::support::free_port();
        let dir = std::env::temp_dir().join(format!("sfu-test-caddy-{port}"));
        std::fs::create_dir_all(&dir).expect("caddy folder");
        let conf = format!(
            r#"{{
    admin off
    auto_https off
    storage file_system {dir}
}}
http://127.0.0.1:{port} {{
    handle /api/conference {{
        rewrite * /ws
        reverse_proxy 127.0.0.1:{sfu_port}
    }}
    handle_path /conference/* {{
        reverse_proxy 127.0.0.1:{sfu_port}
    }}
}}
"#,
            dir = dir.display()
        );
        let path = dir.join("Caddyfile");
        std::fs::write(&path, conf).expect("Caddyfile");
        let log = dir.join("caddy.log");
        let child = Command::new(binary)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .env("HOME", &dir)
            .env("XDG_DATA_HOME", &dir)
            .env("XDG_CONFIG_HOME", &dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("caddy log"))
            .spawn()
            .expect("start caddy");
        let caddy = Caddy { child, port, dir };
        wait_listening("caddy", port, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        });
        caddy
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn two_browser_tabs_call_through_nginx_with_signaling_on_a_path() {
    check_prerequisites();
    // The page this binary carries, behind the proxy.
    let sfu = Sfu::start(&["--trusted-proxies", "127.0.0.1"]);
    let nginx = Nginx::start(sfu.port);
    let page = format!("http://127.0.0.1:{}/conference", nginx.port);
    let stdout = run_browser_call(&page, &[("SFU_WS", "/api/conference")]);
    assert!(stdout.contains("ok: 2 pages"), "{stdout}");
    whip_and_whep_through(nginx.port);
}

/// WHIP publishers and WHEP viewers (the loadgen's) through the proxy on `port`, under its
/// `/conference` prefix: the session URLs (relative `Location`s) stay under it.
fn whip_and_whep_through(port: u16) {
    let mut loadgen = crate::load::loadgen(&[
        "--url",
        &format!("ws://127.0.0.1:{port}/api/conference"),
        "--http-url",
        &format!("http://127.0.0.1:{port}/conference"),
        "--publishers",
        "1",
        "--subscribers",
        "2",
        "--whip",
        "--whep",
        "--duration",
        "3",
        "--json",
        "--quiet",
    ]);
    let output = crate::support::process::output_within(
        &mut loadgen,
        std::time::Duration::from_secs(60),
        "loadgen",
    );
    let summary = crate::load::summary(&output);
    assert!(
        output.status.success(),
        "WHIP and WHEP through the proxy: {summary:#}"
    );
    assert_eq!(summary["streams_received"], 4, "{summary:#}");
}

#[test]
fn two_browser_tabs_call_through_caddy_with_signaling_on_a_path() {
    check_prerequisites();
    let sfu = Sfu::start(&["--trusted-proxies", "127.0.0.1"]);
    let caddy = Caddy::start(sfu.port);
    let page = format!("http://127.0.0.1:{}/conference/", caddy.port);
    let stdout = run_browser_call(&page, &[("SFU_WS", "/api/conference")]);
    assert!(stdout.contains("ok: 2 pages"), "{stdout}");
    whip_and_whep_through(caddy.port);
}
