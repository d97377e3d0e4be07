//! The demo page: the build embedded in this binary (see build.rs), or the folder
//! `--web-dir` names, served at `/`.

use std::path::PathBuf;

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::services::ServeDir;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// Whether this binary carries the demo page.
pub fn embedded() -> bool {
    embedded::ASSETS
        .iter()
        .any(|(name, _)| *name == "index.html")
}

/// The routes of the page: from `web_dir` when given, else the embedded build.
pub fn routes(web_dir: Option<PathBuf>) -> Router {
    match web_dir {
        Some(dir) if dir.join("index.html").is_file() => {
            tracing::info!("serving the demo page from {}", dir.display());
            Router::new().fallback_service(ServeDir::new(dir))
        }
        Some(dir) => {
            tracing::warn!("no index.html in --web-dir {}: no demo page", dir.display());
            Router::new().fallback(|| async { missing() })
        }
        None if embedded() => Router::new().fallback(serve_embedded),
        None => {
            tracing::warn!(
                "this supervisor was built without the demo page (run scripts/setup.sh, then build again)"
            );
            Router::new().fallback(|| async { missing() })
        }
    }
}

fn missing() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "The demo page is not built: run scripts/setup.sh (or `npm ci && npm run build` in web/), then build the supervisor again.\n",
    )
        .into_response()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("map" | "json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

async fn serve_embedded(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let name = if path.is_empty() { "index.html" } else { path };
    match embedded::ASSETS.iter().find(|(n, _)| *n == name) {
        Some((name, body)) => ([(header::CONTENT_TYPE, content_type(name))], *body).into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_of_the_page_files() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("app.js.map"), "application/json");
        assert_eq!(content_type("style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("blob"), "application/octet-stream");
    }
}
