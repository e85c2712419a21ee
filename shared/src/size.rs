//! tunasync's size text (`1.33T`, `20.07K`, `512`, `5GB`), as jobs report it, in bytes:
//! one reading for the manager's and the workers' metrics.

/// Parses tunasync's size text (`1.33T`, `20.07K`, `512`, `5GB`) into bytes (binary units).
pub fn size_bytes(size: &str) -> Option<f64> {
    let text = size.trim().trim_end_matches(['B', 'b']);
    let (number, multiplier) = match text.chars().last()? {
        'K' | 'k' => (&text[..text.len() - 1], 1024f64),
        'M' | 'm' => (&text[..text.len() - 1], 1024f64.powi(2)),
        'G' | 'g' => (&text[..text.len() - 1], 1024f64.powi(3)),
        'T' | 't' => (&text[..text.len() - 1], 1024f64.powi(4)),
        'P' | 'p' => (&text[..text.len() - 1], 1024f64.powi(5)),
        _ => (text, 1.0),
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .map(|value| value * multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_tunasyncs_units() {
        let cases = [
            ("1.33T", 1.33 * 1024f64.powi(4)),
            ("20.07K", 20.07 * 1024.0),
            ("512", 512.0),
            ("5GB", 5.0 * 1024f64.powi(3)),
        ];
        for (text, bytes) in cases {
            assert!((size_bytes(text).unwrap() - bytes).abs() < 1.0, "{text}");
        }
        for bad in ["", "unknown", "G", "1.2.3M"] {
            assert_eq!(size_bytes(bad), None, "{bad}");
        }
    }
}
