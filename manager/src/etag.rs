//! Entity tags for bodies the view caches, and `If-None-Match` against them.
//!
//! A tag is a digest of the identity-encoded body, so a change that leaves the body as it
//! was (a heartbeat) keeps the tag, and a restarted manager with the same state answers the
//! same tag. Weak (`W/"…"`), because the gzip-encoded body shares it.

use std::hash::{Hash as _, Hasher as _};

use axum::http::HeaderMap;
use axum::http::header;

/// The tag of one rendered body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ETag(u64);

impl ETag {
    pub fn of(body: &[u8]) -> ETag {
        let mut hasher = std::hash::DefaultHasher::new();
        body.hash(&mut hasher);
        ETag(hasher.finish())
    }

    /// A tag from a digest made elsewhere (a body kept in pieces).
    pub fn from_digest(digest: u64) -> ETag {
        ETag(digest)
    }

    /// The header value.
    pub fn header(self) -> String {
        format!("W/\"{:016x}\"", self.0)
    }

    /// Whether the request's `If-None-Match` names this tag (weak comparison, as RFC 9110
    /// asks for this header), or is `*`.
    pub fn matches_request(self, headers: &HeaderMap) -> bool {
        let ours = format!("\"{:016x}\"", self.0);
        headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, value.parse().unwrap());
        headers
    }

    #[test]
    fn a_tag_matches_itself_weak_or_strong_in_a_list_and_star() {
        let tag = ETag::of(b"[]");
        assert_eq!(tag, ETag::of(b"[]"));
        assert_ne!(tag, ETag::of(b"[ ]"));
        let text = tag.header();
        assert!(text.starts_with("W/\"") && text.ends_with('"'), "{text}");
        assert!(tag.matches_request(&request(&text)));
        assert!(tag.matches_request(&request(text.trim_start_matches("W/"))));
        assert!(tag.matches_request(&request(&format!("W/\"other\", {text}"))));
        assert!(tag.matches_request(&request("*")));
        assert!(!tag.matches_request(&request("W/\"0000000000000000\"")));
        assert!(!tag.matches_request(&HeaderMap::new()));
    }
}
