//! One HTTP/1.1 request over plain TCP or TLS (hyper's client on a fresh connection), for
//! the WHIP and WHEP participants: a POST of an offer, a DELETE of a session.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A request's answer: its status, `Location` and `ETag`, and its body.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// `Location`, resolved against the request's URL.
    pub location: Option<String>,
    /// The body (SDP, or the reason of a refusal).
    pub body: String,
}

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// `method` `url` with `headers` and `body`.
pub async fn request(
    tls: &Arc<rustls::ClientConfig>,
    method: Method,
    url: &str,
    headers: &[(&'static str, String)],
    body: String,
) -> Result<Answer, String> {
    tokio::time::timeout(REQUEST_TIMEOUT, send(tls, method, url, headers, body))
        .await
        .map_err(|_| format!("no answer from {url} within {REQUEST_TIMEOUT:?}"))?
}

async fn send(
    tls: &Arc<rustls::ClientConfig>,
    method: Method,
    url: &str,
    headers: &[(&'static str, String)],
    body: String,
) -> Result<Answer, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let secure = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{url}: not http:// or https://")),
    };
    let host = uri.host().ok_or_else(|| format!("{url}: no host"))?;
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_else(|| host.to_string());
    let path = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("connecting to {authority}: {e}"))?;
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, authority.as_str());
    for (name, value) in headers {
        let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
        request = request.header(HeaderName::from_static(name), value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = if secure {
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|e| format!("{host}: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {authority}: {e}"))?;
        exchange(TokioIo::new(stream), request).await?
    } else {
        exchange(TokioIo::new(tcp), request).await?
    };
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| resolve(url, l));
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok(Answer {
        status,
        location,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

async fn exchange<T>(
    io: TokioIo<T>,
    request: Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))
}

/// `location` resolved against `base` (RFC 3986, for the forms a server sends: absolute,
/// absolute path, or relative to the base's last segment).
pub fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let without_query = base.split(['?', '#']).next().unwrap_or(base);
    let origin_end = without_query
        .find("://")
        .and_then(|i| without_query[i + 3..].find('/').map(|j| i + 3 + j))
        .unwrap_or(without_query.len());
    if location.starts_with('/') {
        return format!("{}{location}", &without_query[..origin_end]);
    }
    let directory = without_query
        .rfind('/')
        .filter(|&i| i >= origin_end)
        .map_or(without_query, |i| &without_query[..=i]);
    let directory = if directory.len() == origin_end {
        format!("{directory}/")
    } else {
        directory.to_string()
    };
    format!("{directory}{location}")
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn a_location_resolves_as_a_browser_resolves_it() {
        let base = "https://sfu.example.org/conference/whip/room1?x=1";
        assert_eq!(
            resolve(base, "room1/abc"),
            "https://sfu.example.org/conference/whip/room1/abc"
        );
        assert_eq!(
            resolve(base, "/whip/room1/abc"),
            "https://sfu.example.org/whip/room1/abc"
        );
        assert_eq!(resolve(base, "http://other/x"), "http://other/x");
        assert_eq!(resolve("http://h:8000", "a/b"), "http://h:8000/a/b");
    }
}
