//! The exposition gzipped as it is written: a scraper that takes gzip (Prometheus does)
//! gets the text compressed in 64 KiB pieces, so the whole text (about 700 bytes a job,
//! megabytes with thousands of jobs) is never held at once; only its compressed form
//! (about a twentieth) is.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::Compression;
use flate2::write::GzEncoder;
use prometheus_client::registry::Registry;

/// Text gathered before it goes to the compressor.
const PIECE: usize = 64 * 1024;

/// The length of the last compressed text: the next one's buffer starts at it (and an
/// eighth more), one allocation instead of doubling up to it.
static LAST_LEN: AtomicUsize = AtomicUsize::new(PIECE);

/// A `fmt::Write` that compresses what it is given, a piece at a time.
struct GzipText {
    pending: String,
    encoder: GzEncoder<Vec<u8>>,
}

impl GzipText {
    fn flush_pending(&mut self) -> fmt::Result {
        let result = self.encoder.write_all(self.pending.as_bytes());
        self.pending.clear();
        result.map_err(|_| fmt::Error)
    }
}

impl fmt::Write for GzipText {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.pending.push_str(text);
        if self.pending.len() >= PIECE {
            self.flush_pending()?;
        }
        Ok(())
    }
}

/// The exposition of `registry`, gzipped at the fastest level (what the encoder wrote, if it
/// stopped half-way: logged).
pub fn render_gzip(registry: &Registry) -> Vec<u8> {
    let hint = LAST_LEN.load(Ordering::Relaxed);
    let mut out = GzipText {
        pending: String::with_capacity(PIECE + PIECE / 4),
        encoder: GzEncoder::new(
            Vec::with_capacity(hint.saturating_add(hint / 8)),
            Compression::fast(),
        ),
    };
    let encoded = prometheus_client::encoding::text::encode(&mut out, registry)
        .and_then(|()| out.flush_pending());
    if let Err(err) = encoded {
        tracing::warn!(error = %err, "cannot render the metrics");
    }
    // Writing into a Vec cannot fail.
    let body = out.encoder.finish().unwrap_or_default();
    LAST_LEN.store(body.len().max(PIECE), Ordering::Relaxed);
    body
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;

    use super::*;

    /// A text of many pieces comes out whole, the same as the plain rendering.
    #[test]
    fn the_gzipped_text_is_the_plain_text() {
        let mut registry = Registry::default();
        let family = Family::<Vec<(String, String)>, Counter>::default();
        registry.register("many", "A family of many samples", family.clone());
        for n in 0..10_000 {
            family
                .get_or_create(&vec![("mirror".to_owned(), format!("mirror-{n}"))])
                .inc_by(n);
        }
        let plain = super::super::render(&registry);
        assert!(plain.len() > 3 * PIECE, "{} bytes", plain.len());
        let gzipped = render_gzip(&registry);
        let mut text = String::new();
        flate2::read::GzDecoder::new(gzipped.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, plain);
    }
}
