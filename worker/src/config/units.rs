//! Small value parsers: memory sizes as docker's `RAMInBytes`, and the `log_dir` template.

/// Parses `256M`, `512MiB`, `1g`, `1.5G`, `1048576`: binary units, as docker/go-units'
/// `RAMInBytes` (so `256M` is 256 MiB).
pub fn memory_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?}: write e.g. \"256M\" or \"1GiB\""))?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let multiplier: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(format!("invalid size {text:?}: unknown unit")),
    };
    let bytes = number * multiplier as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("invalid size {text:?}"));
    }
    Ok(bytes as u64)
}

/// The fields a `log_dir` template may use, as tunasync's Go template over the mirror.
pub struct TemplateFields<'a> {
    pub name: &'a str,
    pub provider: &'a str,
    pub upstream: &'a str,
}

/// Renders `{{.Name}}`-style placeholders. Unlike tunasync, nothing is HTML-escaped.
pub fn render_template(template: &str, fields: &TemplateFields<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed {{{{ in template {template:?}"))?;
        let field = after[..end].trim();
        let value = match field {
            ".Name" => fields.name,
            ".Provider" => fields.provider,
            ".Upstream" => fields.upstream,
            other => {
                return Err(format!(
                    "unknown template field {other:?} in {template:?} (use {{{{.Name}}}})"
                ));
            }
        };
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units_are_binary() {
        let cases = [
            ("256M", 256 << 20),
            ("128M", 128 << 20),
            ("512MiB", 512 << 20),
            ("1g", 1 << 30),
            ("1.5G", 3 << 29),
            ("64k", 64 << 10),
            ("1048576", 1 << 20),
            ("2 GB", 2 << 30),
        ];
        for (text, bytes) in cases {
            assert_eq!(memory_bytes(text), Ok(bytes), "{text}");
        }
        for bad in ["", "M", "12X", "-1G", "0"] {
            assert!(memory_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates_render_without_escaping() {
        let fields = TemplateFields {
            name: "tpl+a&b",
            provider: "rsync",
            upstream: "rsync://x/",
        };
        assert_eq!(
            render_template("/var/log/tunasync/{{.Name}}", &fields).unwrap(),
            "/var/log/tunasync/tpl+a&b"
        );
        assert_eq!(
            render_template("/l/{{ .Provider }}/{{.Name}}", &fields).unwrap(),
            "/l/rsync/tpl+a&b"
        );
        assert_eq!(render_template("/plain", &fields).unwrap(), "/plain");
        assert!(
            render_template("/l/{{.Nope}}", &fields)
                .unwrap_err()
                .contains("unknown template field")
        );
        assert!(
            render_template("/l/{{.Name", &fields)
                .unwrap_err()
                .contains("unclosed")
        );
    }
}
