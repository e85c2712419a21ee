//! The page's stylesheet and script, embedded in the binary and served with a long cache
//! life: their addresses carry a digest of the content (`?v=…`), so a new build's page asks
//! for the new files.

use std::sync::LazyLock;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::etag::ETag;

const STYLE: &str = include_str!("../../assets/style.css");
const SCRIPT: &str = include_str!("../../assets/page.js");

static TAGS: LazyLock<(ETag, ETag, String)> = LazyLock::new(|| {
    let style = ETag::of(STYLE.as_bytes());
    let script = ETag::of(SCRIPT.as_bytes());
    let both = ETag::of(format!("{}{}", style.header(), script.header()).as_bytes());
    let version = both.header();
    let version = version
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_owned();
    (style, script, version)
});

/// The digest both files' addresses carry.
pub fn version() -> &'static str {
    &TAGS.2
}

fn asset(kind: &'static str, body: &'static str, tag: ETag, headers: &HeaderMap) -> Response {
    let common = [
        (header::ETAG, tag.header()),
        (header::CACHE_CONTROL, "public, max-age=86400".to_owned()),
    ];
    if tag.matches_request(headers) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, [(header::CONTENT_TYPE, kind)], body).into_response()
}

pub async fn style(headers: HeaderMap) -> Response {
    asset("text/css; charset=utf-8", STYLE, TAGS.0, &headers)
}

pub async fn script(headers: HeaderMap) -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT, TAGS.1, &headers)
}
