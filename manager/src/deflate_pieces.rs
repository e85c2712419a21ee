//! Pieces of one gzip stream made separately: raw deflate from fresh compressors (each
//! ending on a byte boundary), uncompressed *stored* blocks, and the CRC-32 of a
//! concatenation computed from the pieces' CRCs.
//!
//! Deflate streams can be concatenated when each piece but the last ends byte-aligned and
//! without the final-block bit: a sync flush gives that, and so does a stored block
//! (its header is one byte when the stream is aligned). CRC-32 of `a ‖ b` is
//! `crc(a) · x^(8·|b|) ⊕ crc(b)` in GF(2) modulo the CRC polynomial; keeping `x^(8·|b|)`
//! with each piece makes every combination one multiplication.

use axum::body::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// CRC-32's polynomial, bit-reflected (bit 31 is x⁰), as gzip uses it.
const POLY: u32 = 0xedb8_8320;

/// `a · b` modulo the polynomial, both bit-reflected.
fn multiply(a: u32, mut b: u32) -> u32 {
    let mut bit: u32 = 1 << 31;
    let mut product = 0;
    while bit != 0 {
        if a & bit != 0 {
            product ^= b;
        }
        bit >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    product
}

/// `x^(8·n)` modulo the polynomial: what a CRC is multiplied by when `n` bytes follow it.
fn shift(n: u64) -> u32 {
    let mut result: u32 = 1 << 31; // x⁰
    let mut square: u32 = 1 << 23; // x⁸
    let mut n = n;
    while n != 0 {
        if n & 1 != 0 {
            result = multiply(square, result);
        }
        square = multiply(square, square);
        n >>= 1;
    }
    result
}

/// The CRC-32 and length of some bytes, ready to be combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum {
    crc: u32,
    len: u64,
    /// `x^(8·len)`.
    shift: u32,
}

impl Checksum {
    /// Of nothing.
    pub const EMPTY: Checksum = Checksum {
        crc: 0,
        len: 0,
        shift: 1 << 31,
    };

    pub fn of(data: &[u8]) -> Checksum {
        let mut crc = Crc::new();
        crc.update(data);
        Checksum {
            crc: crc.sum(),
            len: data.len() as u64,
            shift: shift(data.len() as u64),
        }
    }

    /// The checksum of `self ‖ next`.
    pub fn then(self, next: &Checksum) -> Checksum {
        Checksum {
            crc: multiply(next.shift, self.crc) ^ next.crc,
            len: self.len + next.len,
            shift: multiply(self.shift, next.shift),
        }
    }

    /// The CRC and the length in one number (for a tag).
    pub fn fingerprint(&self) -> u64 {
        (u64::from(self.crc) << 32) ^ self.len
    }

    /// gzip's trailer: the CRC and the length modulo 2³², little-endian.
    pub fn trailer(&self) -> [u8; 8] {
        let mut trailer = [0; 8];
        trailer[..4].copy_from_slice(&self.crc.to_le_bytes());
        // gzip keeps the length modulo 2³²: the truncation is the format.
        trailer[4..].copy_from_slice(&(self.len as u32).to_le_bytes());
        trailer
    }
}

/// The CRC-32 and length of a concatenation built piece by piece: one multiplication a
/// piece (a [`Checksum`] also keeps its shift, to be combined further; this cannot be).
#[derive(Debug, Clone, Copy, Default)]
pub struct Running {
    crc: u32,
    len: u64,
}

impl Running {
    pub fn push(&mut self, next: &Checksum) {
        self.crc = multiply(next.shift, self.crc) ^ next.crc;
        self.len += next.len;
    }

    /// gzip's trailer: the CRC and the length modulo 2³², little-endian.
    pub fn trailer(&self) -> [u8; 8] {
        Checksum {
            crc: self.crc,
            len: self.len,
            shift: 0,
        }
        .trailer()
    }
}

/// gzip's member header: deflate, no name, no time, unknown OS.
pub const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// `data` as raw deflate from a fresh compressor at `level`, ending on a byte boundary
/// (sync flush), or with the final block when `last`.
pub fn deflate(data: &[u8], level: u32, last: bool) -> Bytes {
    let mut compressor = Compress::new(Compression::new(level), false);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 6 + 64);
    loop {
        let consumed = usize::try_from(compressor.total_in()).unwrap_or(data.len());
        let input = data.get(consumed..).unwrap_or_default();
        // Compressing into a Vec with room cannot fail; on the impossible error, stop with
        // what is there rather than loop.
        let Ok(status) = compressor.compress_vec(input, &mut out, flush) else {
            break;
        };
        let all_in = usize::try_from(compressor.total_in()).unwrap_or(0) >= data.len();
        let done = match status {
            Status::StreamEnd => true,
            Status::Ok | Status::BufError => !last && all_in && out.len() < out.capacity(),
        };
        if done {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    Bytes::from(out)
}

/// `data` as uncompressed (stored) deflate blocks, not final, for a byte-aligned stream,
/// appended to `out`: each block a 5-byte header and a slice of `data` (no copy), for a
/// piece that has to go out before it could be compressed.
pub fn stored(data: &Bytes, out: &mut Vec<Bytes>) {
    let mut at = 0;
    while at < data.len() {
        // One block holds at most 65,535 bytes.
        let len = (data.len() - at).min(usize::from(u16::MAX));
        let len16 = u16::try_from(len).unwrap_or(u16::MAX);
        let mut header = [0u8; 5]; // not final, stored; the rest of the byte is padding
        header[1..3].copy_from_slice(&len16.to_le_bytes());
        header[3..].copy_from_slice(&(!len16).to_le_bytes());
        out.push(Bytes::copy_from_slice(&header));
        out.push(data.slice(at..at + len));
        at += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn gunzip(body: &[u8]) -> Vec<u8> {
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut decoded)
            .unwrap();
        decoded
    }

    #[test]
    fn checksums_combine_as_the_concatenation() {
        let parts: [&[u8]; 5] = [b"[", b"", b"hello, ", &[7; 100_000], b"world]"];
        let mut whole = Vec::new();
        let mut combined = Checksum::EMPTY;
        for part in parts {
            whole.extend_from_slice(part);
            combined = combined.then(&Checksum::of(part));
        }
        assert_eq!(combined, Checksum::of(&whole));
        // Grouped differently, the same.
        let left = Checksum::of(parts[0]).then(&Checksum::of(parts[1]));
        let right = Checksum::of(parts[2])
            .then(&Checksum::of(parts[3]))
            .then(&Checksum::of(parts[4]));
        assert_eq!(left.then(&right), combined);
    }

    #[test]
    fn a_running_checksum_is_the_combined_one() {
        let parts: [&[u8]; 4] = [b"[", &[b'x'; 70_000], b"", b",{}]"];
        let mut running = Running::default();
        let mut combined = Checksum::EMPTY;
        for part in parts {
            running.push(&Checksum::of(part));
            combined = combined.then(&Checksum::of(part));
        }
        assert_eq!(running.trailer(), combined.trailer());
        assert_eq!(running.trailer(), Checksum::of(&parts.concat()).trailer());
    }

    #[test]
    fn compressed_and_stored_pieces_make_one_gzip_stream() {
        let parts: [(&[u8], bool); 4] = [
            (b"[", true),
            (&[b'a'; 70_000], false),
            (b",{\"name\":\"x\"}", true),
            (b"", false),
        ];
        let mut body = GZIP_HEADER.to_vec();
        let mut whole = Vec::new();
        let mut checksum = Checksum::EMPTY;
        for (data, compress) in parts {
            if compress {
                body.extend_from_slice(&deflate(data, 6, false));
            } else {
                let mut pieces = Vec::new();
                stored(&Bytes::copy_from_slice(data), &mut pieces);
                for piece in pieces {
                    body.extend_from_slice(&piece);
                }
            }
            whole.extend_from_slice(data);
            checksum = checksum.then(&Checksum::of(data));
        }
        body.extend_from_slice(&deflate(b"]", 6, true));
        whole.push(b']');
        checksum = checksum.then(&Checksum::of(b"]"));
        body.extend_from_slice(&checksum.trailer());
        assert_eq!(gunzip(&body), whole);
    }
}
