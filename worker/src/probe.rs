//! `check_upstream` and `upstream_fallback`: before a run, the upstreams are probed
//! (concurrently, each for at most [`PROBE_TIMEOUT`]) and the run uses the first in the
//! configured order that answered. An rsync daemon answers when it greets (`@RSYNCD:`);
//! an HTTP(S) or other URL when its port accepts a connection.

use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

use crate::config::JobConfig;

pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Host and port an upstream is reached at, and whether it is an rsync daemon.
fn address(upstream: &str) -> Option<(String, u16, bool)> {
    let host = tunasync_shared::upstream::host_of(upstream)?;
    let (scheme, authority) = match upstream.split_once("://") {
        Some((scheme, rest)) => (scheme, rest.split('/').next().unwrap_or("")),
        None => ("rsync", ""),
    };
    let authority = authority.rsplit('@').next().unwrap_or("");
    // `[v6]:port` or `host:port`.
    let port_text = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once("]:").map(|(_, port)| port),
        None => authority.rsplit_once(':').map(|(_, port)| port),
    };
    let explicit = port_text.and_then(|port| port.parse::<u16>().ok());
    let (default, rsync) = match scheme {
        "rsync" => (873, true),
        "https" => (443, false),
        "http" => (80, false),
        _ => (0, false),
    };
    let port = explicit.unwrap_or(default);
    (port != 0).then_some((host, port, rsync))
}

/// Whether `upstream` answers; why not.
pub async fn probe(upstream: &str, timeout: Duration) -> Result<(), String> {
    let (host, port, rsync) =
        address(upstream).ok_or_else(|| "not a URL that can be probed".to_owned())?;
    let attempt = async {
        let mut stream = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|err| err.to_string())?;
        if rsync {
            let mut greeting = [0u8; 9];
            stream
                .read_exact(&mut greeting)
                .await
                .map_err(|err| format!("no rsync greeting: {err}"))?;
            if &greeting != b"@RSYNCD: " {
                return Err("not an rsync daemon".to_owned());
            }
        }
        Ok(())
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no answer within {}s", timeout.as_secs()))?
}

/// The first of `candidates` (in order) that answers, all probed at once; every one's
/// reason when none does.
pub async fn choose(candidates: &[String], timeout: Duration) -> Result<String, String> {
    let probes = candidates.iter().map(|upstream| {
        let upstream = upstream.clone();
        tokio::spawn(async move { probe(&upstream, timeout).await })
    });
    let probes: Vec<_> = probes.collect();
    let mut reasons = Vec::new();
    for (upstream, probe) in candidates.iter().zip(probes) {
        match probe.await {
            Ok(Ok(())) => return Ok(upstream.clone()),
            Ok(Err(reason)) => reasons.push(format!("{upstream} ({reason})")),
            Err(err) => reasons.push(format!("{upstream} ({err})")),
        }
    }
    Err(format!("no upstream answered: {}", reasons.join(", ")))
}

/// `job` with `upstream` in place of its own, in its command lines too.
pub fn with_upstream(job: &JobConfig, upstream: &str) -> JobConfig {
    let mut chosen = job.clone();
    for stage in &mut chosen.stages {
        for arg in stage.iter_mut() {
            if *arg == job.upstream {
                upstream.clone_into(arg);
            }
        }
    }
    chosen.upstream = upstream.to_owned();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_upstreams_are_probed() {
        for (upstream, expected) in [
            (
                "rsync://rsync.example.org/debian/",
                Some(("rsync.example.org", 873, true)),
            ),
            (
                "rsync://127.0.0.1:8873/pub/",
                Some(("127.0.0.1", 8873, true)),
            ),
            ("https://pypi.org/simple/", Some(("pypi.org", 443, false))),
            (
                "http://u:p@mirror.example.org:8080/x/",
                Some(("mirror.example.org", 8080, false)),
            ),
            (
                "ftp.example.org::debian/",
                Some(("ftp.example.org", 873, true)),
            ),
            ("rsync://[2001:db8::1]/x/", Some(("2001:db8::1", 873, true))),
            ("/local/path/", None),
        ] {
            let got = address(upstream);
            assert_eq!(
                got.as_ref()
                    .map(|(host, port, rsync)| (host.as_str(), *port, *rsync)),
                expected,
                "{upstream}"
            );
        }
    }

    #[tokio::test]
    async fn a_closed_port_does_not_answer_and_the_reasons_are_given() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .unwrap();
        let dead = format!("rsync://127.0.0.1:{port}/x/");
        let err = choose(std::slice::from_ref(&dead), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            err.starts_with(&format!("no upstream answered: {dead} (")),
            "{err}"
        );
        // A listener that is not an rsync daemon.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            if let Ok((mut stream, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt as _;
                let _ = stream.write_all(b"HTTP/1.0 400 Bad\r\n\r\n").await;
            }
        });
        let err = probe(&format!("rsync://{addr}/x/"), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(err, "not an rsync daemon");
    }
}
