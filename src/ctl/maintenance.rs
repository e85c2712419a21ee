//! `tunasynctl maintenance on|off|list`: takes the cluster, a worker or pool (`-w`), a
//! mirror, or one worker's mirror out of the schedule (runs going on finish, alerts are
//! muted), and puts it back.

use clap::{Args, Subcommand};
use serde_json::Value;
use tunasync_shared::maintenance::{MaintenanceEntry, MaintenanceRequest, Scope};
use tunasync_shared::names::{MirrorName, WorkerId};

use super::{Client, Failure, pretty};

#[derive(Args)]
pub struct MaintenanceArgs {
    #[command(subcommand)]
    pub action: Option<MaintenanceAction>,
}

#[derive(Subcommand)]
pub enum MaintenanceAction {
    /// Start a maintenance: no new runs start on their schedule
    On(OnArgs),
    /// End a maintenance: what came due meanwhile runs now
    Off(Target),
    /// List the maintenance in force (the default)
    List,
}

/// What a maintenance covers: nothing named is the whole cluster.
#[derive(Args)]
pub struct Target {
    /// The worker (or pool) id
    #[arg(short, long = "worker", value_name = "ID")]
    pub worker: Option<String>,
    /// One mirror (of that worker, or wherever it runs)
    pub mirror: Option<String>,
}

#[derive(Args)]
pub struct OnArgs {
    #[command(flatten)]
    pub target: Target,
    /// Shown with it on the status page and in the API
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
}

impl Target {
    fn request(self, message: Option<String>) -> MaintenanceRequest {
        MaintenanceRequest {
            worker: self.worker.unwrap_or_default(),
            mirror: self.mirror.unwrap_or_default(),
            message: message.unwrap_or_default(),
        }
    }
}

/// What it covers, in words (names the manager took are valid).
fn described(worker: Option<&str>, mirror: Option<&str>) -> String {
    let worker = worker.map(WorkerId::new).transpose();
    let mirror = mirror.map(MirrorName::new).transpose();
    match (worker, mirror) {
        (Ok(worker), Ok(mirror)) => Scope::new(worker, mirror).to_string(),
        _ => "it".to_owned(),
    }
}

pub async fn run(client: &Client, args: MaintenanceArgs) -> Result<String, Failure> {
    match args.action.unwrap_or(MaintenanceAction::List) {
        MaintenanceAction::List => {
            let (status, body) = client
                .send(reqwest::Method::GET, "/maintenance", None)
                .await
                .map_err(|err| format!("Failed to correctly get the maintenance: {err}"))?;
            if status != 200 {
                return Err(format!(
                    "Failed to correctly get the maintenance: HTTP status code is not 200: {body}"
                )
                .into());
            }
            let entries: Value = serde_json::from_str(&body)?;
            Ok(format!("{}\n", pretty(&entries)))
        }
        MaintenanceAction::On(args) => {
            let request = args.target.request(args.message);
            let body = serde_json::to_value(&request)?;
            let (status, body) = client
                .send(reqwest::Method::POST, "/maintenance", Some(body))
                .await
                .map_err(|err| format!("Failed to send request to manager: {err}"))?;
            let entry: Option<MaintenanceEntry> = serde_json::from_str(&body).ok();
            let Some(entry) = entry.filter(|_| status == 200) else {
                return Err(format!("Failed to start the maintenance: {body}").into());
            };
            let what = described(entry.worker.as_deref(), entry.mirror.as_deref());
            Ok(if entry.message.is_empty() {
                format!("Maintenance of {what} started\n")
            } else {
                format!("Maintenance of {what} started: {}\n", entry.message)
            })
        }
        MaintenanceAction::Off(target) => {
            let what = described(target.worker.as_deref(), target.mirror.as_deref());
            let body = serde_json::to_value(target.request(None))?;
            let (status, body) = client
                .send(reqwest::Method::DELETE, "/maintenance", Some(body))
                .await
                .map_err(|err| format!("Failed to send request to manager: {err}"))?;
            if status != 200 {
                return Err(format!("Failed to end the maintenance: {body}").into());
            }
            Ok(format!("Maintenance of {what} ended\n"))
        }
    }
}
