//! tunasynctl's `--format`: Go text/template-style `{{.Field}}` placeholders over the
//! fields of a listed job, by tunasync's struct field names (`{{.Name}} {{.Status}}`).

use serde_json::Value;

/// A parsed template: literal text and field references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(String),
}

/// Go field names and the JSON keys they stand for.
const FIELDS: &[(&str, &str)] = &[
    ("Name", "name"),
    ("Worker", "worker"),
    ("IsMaster", "is_master"),
    ("Status", "status"),
    ("LastUpdate", "last_update"),
    ("LastUpdateTs", "last_update_ts"),
    ("LastStarted", "last_started"),
    ("LastStartedTs", "last_started_ts"),
    ("LastEnded", "last_ended"),
    ("LastEndedTs", "last_ended_ts"),
    ("Scheduled", "next_schedule"),
    ("ScheduledTs", "next_schedule_ts"),
    ("NextSchedule", "next_schedule"),
    ("NextScheduleTs", "next_schedule_ts"),
    ("Upstream", "upstream"),
    ("Size", "size"),
    ("ErrorMsg", "error_msg"),
];

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or("template: :1: unclosed action")?;
            let action = after[..end].trim();
            let field = action
                .strip_prefix('.')
                .filter(|field| {
                    !field.is_empty()
                        && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .ok_or_else(|| {
                    format!("template: :1: unsupported action {{{{{action}}}}}: use {{{{.Field}}}}")
                })?;
            parts.push(Part::Field(field.to_owned()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// Renders one job (a JSON object as the manager sent it).
    pub fn render(&self, job: &Value) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field(field) => {
                    let key = FIELDS
                        .iter()
                        .find(|(go_name, _)| go_name == field)
                        .map(|(_, key)| *key)
                        .ok_or_else(|| format!("template: can't evaluate field {field}"))?;
                    match job.get(key) {
                        Some(Value::String(text)) => out.push_str(text),
                        Some(Value::Null) | None => {
                            return Err(format!("template: can't evaluate field {field}"));
                        }
                        Some(other) => out.push_str(&other.to_string()),
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_go_field_names() {
        let job = serde_json::json!({"name": "alpha", "status": "success", "size": "99G", "worker": "w5", "last_update_ts": 17, "is_master": true});
        let template = Template::parse("{{.Name}} {{.Status}} {{.Size}} {{.Worker}}").unwrap();
        assert_eq!(template.render(&job).unwrap(), "alpha success 99G w5");
        assert_eq!(
            Template::parse("{{ .LastUpdateTs }}/{{.IsMaster}}")
                .unwrap()
                .render(&job)
                .unwrap(),
            "17/true"
        );
        assert!(
            Template::parse("{{.Name")
                .unwrap_err()
                .contains("unclosed action")
        );
        assert!(
            Template::parse("{{.Nope}}")
                .unwrap()
                .render(&job)
                .unwrap_err()
                .contains("can't evaluate field Nope")
        );
        assert!(
            Template::parse("{{.ErrorMsg}}")
                .unwrap()
                .render(&job)
                .is_err(),
            "no error_msg in tunasync.json"
        );
    }
}
