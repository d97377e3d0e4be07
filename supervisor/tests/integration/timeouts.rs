//! Slow and silent clients, and certificate renewal, against the real supervisor: a TCP
//! connection that never completes its TLS handshake, one that sends nothing, and one that
//! sends its request headers a byte at a time (slowloris) are each closed after their
//! timeout, with a log line, while a call in another room goes on; SIGHUP swaps in renewed
//! certificate files without dropping an open connection, and refuses a pair that does not
//! go together.

use std::time::{Duration, Instant};

use signaling_api::calls::GetRouterRtpCapabilities;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::bystanders::Bystanders;
use crate::support::signaling::{self, client_tls, join, Expect};
use crate::support::{signal, Sfu, TestCert};

/// Longer than any timeout these tests set (2 s), far shorter than "never".
const CLOSED_WITHIN: Duration = Duration::from_secs(10);

/// Waits for the server to close `tcp` (EOF or reset), writing `drip` one byte every 300 ms
/// meanwhile if given; how long that took.
async fn wait_closed_by_server(mut tcp: TcpStream, drip: &[u8]) -> Duration {
    let start = Instant::now();
    let mut next = 0;
    let mut buf = [0u8; 1024];
    loop {
        assert!(
            start.elapsed() < CLOSED_WITHIN,
            "the server kept a slow client's connection open for {CLOSED_WITHIN:?}"
        );
        match tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(n)) => panic!(
                "the server answered a request that never ended: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => {
                if let Some(byte) = drip.get(next) {
                    if tcp.write_all(&[*byte]).await.is_err() {
                        return start.elapsed();
                    }
                    next += 1;
                }
            }
        }
    }
}

async fn wait_for_log(sfu: &Sfu, needle: &str) {
    assert!(
        sfu.wait_log(needle, Duration::from_secs(10)).await,
        "no {needle:?} in the log:\n{}",
        sfu.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slowloris_http_clients_are_dropped_after_the_header_timeout() {
    let sfu = Sfu::start(&["--http-header-timeout-secs", "2"]);
    let bystanders = Bystanders::start(&sfu.ws_url(), None, None).await;
    let address = ("127.0.0.1", sfu.port);

    let silent = TcpStream::connect(address).await.expect("connect");
    let took = wait_closed_by_server(silent, b"").await;
    println!("a silent connection was closed after {took:?}");

    let mut slow = TcpStream::connect(address).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("write");
    // Thirty seconds' worth of header bytes, if the server let it go on.
    let drip = b"Host: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let took = wait_closed_by_server(slow, drip).await;
    println!("a slowloris connection was closed after {took:?}");
    wait_for_log(&sfu, "request headers too slow").await;

    // A client that sends its request in time is served.
    let mut fine = TcpStream::connect(address).await.expect("connect");
    fine.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    fine.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    bystanders.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_completes_is_dropped() {
    let cert = TestCert::new("handshake");
    let sfu = Sfu::start_tls(&cert, &["--tls-handshake-timeout-secs", "2"]);
    let bystanders = Bystanders::start(&sfu.ws_url(), Some(&cert.cert_pem), None).await;
    let silent = TcpStream::connect(("127.0.0.1", sfu.port))
        .await
        .expect("connect");
    let took = wait_closed_by_server(silent, b"").await;
    println!("a connection without a handshake was closed after {took:?}");
    wait_for_log(&sfu, "TLS handshake timed out").await;
    bystanders.assert_unharmed().await;
}

/// Whether a `wss://` connection to `url` trusting only `ca_pem` succeeds.
async fn trusts(url: &str, ca_pem: &str) -> bool {
    let connector = tokio_tungstenite::Connector::Rustls(client_tls(ca_pem));
    tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_renewed_certificate_files_and_keeps_the_old_pair_if_the_new_is_bad() {
    let served = TestCert::new("renewed-served");
    let renewed = TestCert::new("renewed-next");
    let sfu = Sfu::start_tls(&served, &[]);
    let url = sfu.ws_url();
    let old_cert = served.cert_pem.clone();
    let mut open = signaling::connect(&url, Some(&old_cert)).await;
    open.ok(&join("renewal", "Open")).await;

    // Renewal: new files in place, then SIGHUP.
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(renewed.dir.join(file), served.dir.join(file)).expect("copy");
    }
    signal(sfu.pid(), "HUP");
    wait_for_log(&sfu, "reloaded the TLS certificate").await;
    assert!(
        trusts(&url, &renewed.cert_pem).await,
        "new connections get the new certificate"
    );
    assert!(!trusts(&url, &old_cert).await, "and no longer the old one");
    // The connection made with the old certificate goes on.
    open.ok(&GetRouterRtpCapabilities {}).await;

    // A botched renewal: a certificate with another's key. Refused, the good pair stays.
    std::fs::copy(
        TestCert::new("renewed-stray").dir.join("key.pem"),
        served.dir.join("key.pem"),
    )
    .expect("copy");
    signal(sfu.pid(), "HUP");
    wait_for_log(&sfu, "refused the new TLS certificate").await;
    assert!(
        trusts(&url, &renewed.cert_pem).await,
        "the last good pair is still served"
    );
    open.ok(&GetRouterRtpCapabilities {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_of_pending_tls_handshakes_connections_are_dropped_until_some_end() {
    let cap = supervisor::edge::serve::MAX_PENDING_HANDSHAKES;
    let cert = TestCert::new("handshake-cap");
    // Silent connections would wait two minutes for their handshake: longer than the test.
    let sfu = Sfu::start_tls(&cert, &["--tls-handshake-timeout-secs", "120"]);
    let bystanders = Bystanders::start(&sfu.ws_url(), Some(&cert.cert_pem), None).await;
    let address = ("127.0.0.1", sfu.port);
    let mut silent = Vec::with_capacity(cap);
    for _ in 0..cap {
        silent.push(TcpStream::connect(address).await.expect("connect"));
    }
    // One more (accepted after all of them): dropped at once, and the log says why.
    let extra = TcpStream::connect(address).await.expect("connect");
    let took = wait_closed_by_server(extra, b"").await;
    println!("connection {} was closed after {took:?}", cap + 1);
    wait_for_log(&sfu, &format!("{cap} TLS handshakes in progress")).await;
    // The cap's worth still wait, none closed.
    let closed = silent
        .iter()
        .filter(|tcp| {
            let mut buf = [0u8; 16];
            !matches!(tcp.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    assert_eq!(closed, 0, "of the first {cap}, {closed} were closed");
    // Some go away: their places free up, and a client gets in again (within 10 s).
    silent.truncate(cap - 16);
    let url = sfu.ws_url();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut client = loop {
        let tls = Some(client_tls(&cert.cert_pem));
        match signaling_api::client::Client::connect(&url, tls).await {
            Ok(client) => break client,
            Err(e) => assert!(Instant::now() < deadline, "no way in once some left: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    client.ok(&join("after-the-flood", "Late")).await;
    drop(silent);
    // Calls that were up before the flood went on through it.
    bystanders.assert_unharmed().await;
}
