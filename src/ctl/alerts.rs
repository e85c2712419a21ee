//! `tunasynctl alerts`: the open incidents and what is not delivered yet, per sink.

use serde_json::Value;

use super::{Client, Failure};

pub async fn run(client: &Client) -> Result<String, Failure> {
    let (status, body) = client
        .send(reqwest::Method::GET, "/alerts", None)
        .await
        .map_err(|err| format!("Failed to correctly get the alerts: {err}"))?;
    if status != 200 {
        return Err(format!(
            "Failed to correctly get the alerts: HTTP status code is not 200: {body}"
        )
        .into());
    }
    let alerts: Value = serde_json::from_str(&body)?;
    Ok(render(&alerts))
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// The incidents as a table, then the undelivered counts.
fn render(alerts: &Value) -> String {
    if alerts["enabled"] != true {
        return "Alerts are off: the manager's config has no [alerts] section\n".to_owned();
    }
    let incidents = alerts["incidents"].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    if incidents.is_empty() {
        out.push_str("No open incidents\n");
    } else {
        let rows: Vec<[String; 6]> = incidents
            .iter()
            .map(|incident| {
                [
                    incident["id"].to_string(),
                    text(&incident["rule"]).to_owned(),
                    text(&incident["worker"]).to_owned(),
                    text(&incident["mirror"]).to_owned(),
                    text(&incident["since"]).to_owned(),
                    text(&incident["summary"]).to_owned(),
                ]
            })
            .collect();
        let header = ["ID", "RULE", "WORKER", "MIRROR", "SINCE", "SUMMARY"];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut line = |cells: [&str; 6]| {
            let mut text = String::new();
            for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
                if index + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    text.push_str(&format!("{cell:<width$}  "));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(header);
        for row in &rows {
            line(row.each_ref().map(String::as_str));
        }
    }
    if let Some(undelivered) = alerts["undelivered"].as_object()
        && !undelivered.is_empty()
    {
        let counts: Vec<String> = undelivered
            .iter()
            .map(|(sink, n)| format!("{sink} {n}"))
            .collect();
        out.push_str(&format!("Undelivered: {}\n", counts.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_of_incidents() {
        let alerts = serde_json::json!({
            "enabled": true,
            "incidents": [
                {"id": 3, "rule": "failures", "worker": "w1", "mirror": "debian",
                 "summary": "debian on w1: the last 3 runs failed", "since": "2026-12-02T10:00:00Z"},
                {"id": 12, "rule": "worker_offline", "worker": "mirror-2",
                 "summary": "worker mirror-2 is offline", "since": "2026-12-02T11:00:00Z"},
            ],
            "undelivered": {"chat": 1, "hook": 0},
        });
        assert_eq!(
            render(&alerts),
            "ID  RULE            WORKER    MIRROR  SINCE                 SUMMARY\n\
             3   failures        w1        debian  2026-12-02T10:00:00Z  debian on w1: the last 3 runs failed\n\
             12  worker_offline  mirror-2          2026-12-02T11:00:00Z  worker mirror-2 is offline\n\
             Undelivered: chat 1, hook 0\n"
        );
        assert_eq!(
            render(&serde_json::json!({"enabled": false, "incidents": [], "undelivered": {}})),
            "Alerts are off: the manager's config has no [alerts] section\n"
        );
    }
}
