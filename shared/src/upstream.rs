//! The host an upstream URL names: what per-upstream limits count by, on a worker and
//! across a pool.

/// The host an upstream names: `rsync://host[:port]/…`, `https://user@host/…`,
/// `host::module`. `None` for a path or anything else.
pub fn host_of(upstream: &str) -> Option<String> {
    let authority = if let Some((_, rest)) = upstream.split_once("://") {
        rest.split('/').next()?
    } else if let Some((host, _)) = upstream.split_once("::") {
        host
    } else {
        return None;
    };
    let authority = authority.rsplit('@').next()?;
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_upstreams() {
        for (upstream, host) in [
            (
                "rsync://rsync.example.org/debian/",
                Some("rsync.example.org"),
            ),
            (
                "rsync://Mirror.Example.org:8873/x/",
                Some("mirror.example.org"),
            ),
            ("https://user:pw@pypi.org/simple/", Some("pypi.org")),
            ("rsync://[2001:db8::1]/x/", Some("2001:db8::1")),
            ("ftp.example.org::debian/", Some("ftp.example.org")),
            ("/srv/local/", None),
            ("", None),
        ] {
            assert_eq!(host_of(upstream).as_deref(), host, "{upstream}");
        }
    }
}
