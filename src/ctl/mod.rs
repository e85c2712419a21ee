//! `tunasynctl`: tunasync's control client, with its subcommands, flags, config files,
//! messages and exit codes, plus bearer tokens, `history`, `logs`, `maintenance` and shell
//! completions.

pub mod alerts;
pub mod config;
pub mod maintenance;
pub mod template;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use tunasync_shared::status::SyncStatus;

use config::{CtlConfig, Sources};
use template::Template;

/// Longer than the manager's wait for a worker's answer (5 s by default).
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Parser)]
#[command(
    name = "tunasynctl",
    version,
    about = "control client for tunasync manager"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CtlCommand,
    #[command(flatten)]
    pub common: Common,
}

/// Flags every subcommand takes.
#[derive(Args, Clone, Default)]
pub struct Common {
    /// Read configuration from FILE rather than ~/.config/tunasync/ctl.conf and /etc/tunasync/ctl.conf.
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The manager server address.
    #[arg(short, long, global = true, value_name = "ADDRESS")]
    pub manager: Option<String>,
    /// The manager server port.
    #[arg(short, long, global = true)]
    pub port: Option<u16>,
    /// Trust only this CA certificate (switches to https).
    #[arg(long, global = true, value_name = "CERT")]
    pub ca_cert: Option<PathBuf>,
    /// A file holding the bearer token for commands that change state (or TUNASYNC_TOKEN).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the requests made.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Print debugging details.
    #[arg(long, global = true)]
    pub debug: bool,
}

#[derive(Subcommand)]
pub enum CtlCommand {
    /// List jobs of workers
    List(ListArgs),
    /// List workers
    Workers,
    /// Flush disabled jobs
    Flush,
    /// Remove a worker
    RmWorker(WorkerFlag),
    /// Set mirror size
    SetSize(SetSizeArgs),
    /// Start a job
    Start(StartArgs),
    /// Stop a job
    Stop(JobArgs),
    /// Disable a job
    Disable(JobArgs),
    /// Restart a job
    Restart(JobArgs),
    /// Tell worker to reload configurations
    Reload(WorkerFlag),
    /// Ping a job
    Ping(JobArgs),
    /// Show the recent runs of a job
    History(HistoryArgs),
    /// Print a job's latest log (read from its worker through the manager)
    Logs(LogsArgs),
    /// Start, end or list maintenance of the cluster, a worker or a mirror
    Maintenance(maintenance::MaintenanceArgs),
    /// List the open alert incidents and what is not delivered yet
    Alerts,
    /// Print a shell completion script (bash, zsh, fish, …)
    Completion { shell: clap_complete::Shell },
}

#[derive(Args)]
pub struct ListArgs {
    /// List all jobs of all workers
    #[arg(short, long)]
    pub all: bool,
    /// Filter output based on status provided (comma-separated)
    #[arg(short, long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Pretty-print using a template such as '{{.Name}} {{.Status}}'
    #[arg(short, long, value_name = "TEMPLATE")]
    pub format: Option<String>,
    pub workers: Vec<String>,
}

#[derive(Args)]
pub struct WorkerFlag {
    /// The worker id
    #[arg(short, long = "worker", value_name = "ID")]
    pub worker: Option<String>,
}

#[derive(Args)]
pub struct SetSizeArgs {
    /// The worker id
    #[arg(short, long = "worker", value_name = "ID")]
    pub worker: Option<String>,
    pub args: Vec<String>,
}

#[derive(Args)]
pub struct JobArgs {
    /// The worker id
    #[arg(short, long = "worker", value_name = "ID")]
    pub worker: Option<String>,
    /// MIRROR [ARGS]: ARGS is a comma-separated list passed along
    pub args: Vec<String>,
}

#[derive(Args)]
pub struct StartArgs {
    /// Override the concurrent limit
    #[arg(short, long)]
    pub force: bool,
    #[command(flatten)]
    pub job: JobArgs,
}

#[derive(Args)]
pub struct HistoryArgs {
    /// The worker id
    #[arg(short, long = "worker", value_name = "ID")]
    pub worker: Option<String>,
    pub mirror: String,
}

#[derive(Args)]
pub struct LogsArgs {
    /// The worker id
    #[arg(short, long = "worker", value_name = "ID")]
    pub worker: Option<String>,
    /// Only the last N lines
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub lines: Option<u32>,
    /// Go on printing what the running job writes, until its run ends
    #[arg(short, long)]
    pub follow: bool,
    /// That run's log (a run id from `tunasynctl history`), while the worker keeps it
    #[arg(long = "run", value_name = "ID")]
    pub run: Option<String>,
    pub mirror: String,
}

/// A failure: the message for stderr; the exit code is always 1 (as tunasync).
#[derive(Debug)]
pub struct Failure(pub String);

impl<T: std::fmt::Display> From<T> for Failure {
    fn from(message: T) -> Self {
        Failure(message.to_string())
    }
}

/// The manager's API, as configured.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    verbose: bool,
}

impl Client {
    pub fn new(config: &CtlConfig, verbose: bool) -> Result<Client, Failure> {
        let mut builder = reqwest::Client::builder().timeout(HTTP_TIMEOUT);
        let scheme = match &config.ca_cert {
            Some(ca) => {
                let pem = std::fs::read(ca).map_err(|err| {
                    format!("cannot read the CA certificate {}: {err}", ca.display())
                })?;
                let certificate = reqwest::Certificate::from_pem(&pem)
                    .map_err(|err| format!("invalid CA certificate {}: {err}", ca.display()))?;
                builder = builder.tls_certs_only([certificate]);
                "https"
            }
            None => "http",
        };
        let http = builder
            .build()
            .map_err(|err| format!("cannot set up the HTTP client: {err}"))?;
        Ok(Client {
            http,
            base: format!("{scheme}://{}:{}", config.manager_addr, config.manager_port),
            token: config.token.clone(),
            verbose,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, String), String> {
        let response = self.response(method, path, body).await?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|err| tunasync_shared::error_chain(&err))?;
        Ok((status, text))
    }

    /// The response to a request, its body not read yet.
    async fn response(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<reqwest::Response, String> {
        let url = self.url(path);
        if self.verbose {
            eprintln!("{method} {url}");
        }
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.map_err(|err| {
            format!(
                "{} \"{url}\": {}",
                go_method(&method),
                tunasync_shared::error_chain(&err)
            )
        })
    }
}

fn go_method(method: &reqwest::Method) -> &'static str {
    match *method {
        reqwest::Method::GET => "Get",
        reqwest::Method::POST => "Post",
        reqwest::Method::DELETE => "Delete",
        _ => "Request",
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// Runs one tunasynctl invocation; what to print on stdout.
pub async fn run(cli: Cli) -> Result<String, Failure> {
    if let CtlCommand::Completion { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut command, "tunasynctl", &mut out);
        return Ok(String::from_utf8_lossy(&out).into_owned());
    }
    let config = CtlConfig::resolve(&cli.common, &Sources::system())?;
    if cli.common.debug {
        eprintln!(
            "manager: {}:{} (https: {})",
            config.manager_addr,
            config.manager_port,
            config.ca_cert.is_some()
        );
    }
    let client = Client::new(&config, cli.common.verbose || cli.common.debug)?;
    match cli.command {
        CtlCommand::List(args) => list(&client, args).await,
        CtlCommand::Workers => {
            let (status, body) = client
                .send(reqwest::Method::GET, "/workers", None)
                .await
                .map_err(|err| {
                    format!("Failed to correctly get informations from manager server: {err}")
                })?;
            if status != 200 {
                return Err(format!("Failed to correctly get informations from manager server: HTTP status code is not 200: {body}").into());
            }
            let workers: Value = serde_json::from_str(&body)?;
            Ok(format!("{}\n", pretty(&workers)))
        }
        CtlCommand::Flush => {
            let (status, body) = client
                .send(reqwest::Method::DELETE, "/jobs/disabled", None)
                .await
                .map_err(|err| format!("Failed to send request to manager: {err}"))?;
            if status != 200 {
                return Err(format!(
                    "Failed to correctly send command: HTTP status code is not 200: {body}"
                )
                .into());
            }
            Ok("Successfully flushed disabled jobs\n".to_owned())
        }
        CtlCommand::RmWorker(flag) => {
            let worker = flag
                .worker
                .filter(|worker| !worker.is_empty())
                .ok_or("Please specify the <worker-id>")?;
            let (status, body) = client
                .send(reqwest::Method::DELETE, &format!("/workers/{worker}"), None)
                .await
                .map_err(|err| format!("Failed to send request to manager: {err}"))?;
            let deleted = serde_json::from_str::<Value>(&body)
                .ok()
                .is_some_and(|value| value["message"] == "deleted");
            if status != 200 || !deleted {
                return Err(format!(
                    "Failed to correctly send command: HTTP status code is not 200: {body}"
                )
                .into());
            }
            Ok("Successfully removed the worker\n".to_owned())
        }
        CtlCommand::SetSize(args) => {
            let (Some(worker), [mirror, size]) = (
                args.worker.filter(|worker| !worker.is_empty()),
                &args.args[..],
            ) else {
                return Err("Usage: tunasynctl set-size -w <worker-id> <mirror> <size>".into());
            };
            let (status, body) = client
                .send(
                    reqwest::Method::POST,
                    &format!("/workers/{worker}/jobs/{mirror}/size"),
                    Some(serde_json::json!({"name": mirror, "size": size})),
                )
                .await
                .map_err(|err| format!("Failed to send request to manager: {err}"))?;
            let updated = serde_json::from_str::<Value>(&body).ok();
            if status != 200
                || updated
                    .as_ref()
                    .is_none_or(|value| value["size"] != size.as_str())
            {
                return Err(format!("Manager failed to update mirror size: {body}").into());
            }
            Ok(format!("Successfully updated mirror size to {size}\n"))
        }
        CtlCommand::Start(args) => job_command(&client, "start", args.job, args.force).await,
        CtlCommand::Stop(args) => job_command(&client, "stop", args, false).await,
        CtlCommand::Disable(args) => job_command(&client, "disable", args, false).await,
        CtlCommand::Restart(args) => job_command(&client, "restart", args, false).await,
        CtlCommand::Ping(args) => job_command(&client, "ping", args, false).await,
        CtlCommand::Reload(flag) => {
            let worker = required_worker(flag.worker)?;
            send_cmd(&client, serde_json::json!({"cmd": "reload", "mirror_id": "", "worker_id": worker, "args": null, "options": null})).await
        }
        CtlCommand::History(args) => {
            let worker = required_worker(args.worker)?;
            let (status, body) = client
                .send(
                    reqwest::Method::GET,
                    &format!("/jobs/{worker}/{}/history", args.mirror),
                    None,
                )
                .await
                .map_err(|err| {
                    format!("Failed to correctly get the history from manager server: {err}")
                })?;
            if status != 200 {
                return Err(format!("Failed to correctly get the history from manager server: HTTP status code is not 200: {body}").into());
            }
            let runs: Value = serde_json::from_str(&body)?;
            Ok(format!("{}\n", pretty(&runs)))
        }
        CtlCommand::Logs(args) => {
            let worker = required_worker(args.worker)?;
            let mut query = Vec::new();
            if let Some(lines) = args.lines {
                query.push(format!("tail={lines}"));
            }
            if args.follow {
                query.push("follow=true".to_owned());
            }
            if let Some(run) = &args.run {
                let run = uuid_text(run)?;
                query.push(format!("run={run}"));
            }
            let mut path = format!("/jobs/{worker}/{}/log", args.mirror);
            if !query.is_empty() {
                path.push('?');
                path.push_str(&query.join("&"));
            }
            if args.follow {
                return follow_log(&client, &path).await;
            }
            let (status, body) = client
                .send(reqwest::Method::GET, &path, None)
                .await
                .map_err(|err| {
                    format!("Failed to correctly get the log from manager server: {err}")
                })?;
            if status != 200 {
                return Err(format!("Failed to correctly get the log from manager server: HTTP status code is not 200: {body}").into());
            }
            Ok(body)
        }
        CtlCommand::Maintenance(args) => maintenance::run(&client, args).await,
        CtlCommand::Alerts => alerts::run(&client).await,
        CtlCommand::Completion { .. } => Ok(String::new()),
    }
}

async fn job_command(
    client: &Client,
    verb: &str,
    args: JobArgs,
    force: bool,
) -> Result<String, Failure> {
    let Some(mirror) = args.args.first() else {
        return Err("Usage Error: cmd command receive just 1 required positional argument MIRROR and 1 optional argument WORKER".into());
    };
    let extra: Option<Vec<String>> = args
        .args
        .get(1)
        .map(|list| list.split(',').map(str::to_owned).collect());
    let options = force.then(|| serde_json::json!({"force": true}));
    send_cmd(
        client,
        serde_json::json!({
            "cmd": verb,
            "mirror_id": mirror,
            "worker_id": args.worker.unwrap_or_default(),
            "args": extra,
            "options": options,
        }),
    )
    .await
}

/// `logs -f`: prints the log as it comes, until the run ends.
async fn follow_log(client: &Client, path: &str) -> Result<String, Failure> {
    use std::io::Write as _;
    let failed = "Failed to correctly get the log from manager server";
    let mut response = client
        .response(reqwest::Method::GET, path, None)
        .await
        .map_err(|err| format!("{failed}: {err}"))?;
    if response.status() != 200 {
        let body = response.text().await.unwrap_or_default();
        return Err(format!("{failed}: HTTP status code is not 200: {body}").into());
    }
    let mut stdout = std::io::stdout();
    while let Some(piece) = response
        .chunk()
        .await
        .map_err(|err| format!("{failed}: {}", tunasync_shared::error_chain(&err)))?
    {
        stdout
            .write_all(&piece)
            .and_then(|()| stdout.flush())
            .map_err(|err| format!("cannot write the log: {err}"))?;
    }
    Ok(String::new())
}

/// The `-w` a command needs, as tunasync says when it is missing.
fn required_worker(worker: Option<String>) -> Result<String, Failure> {
    worker
        .filter(|worker| !worker.is_empty())
        .ok_or_else(|| Failure("Please specify the worker with -w <worker-id>".to_owned()))
}

async fn send_cmd(client: &Client, body: Value) -> Result<String, Failure> {
    let (status, text) = client
        .send(reqwest::Method::POST, "/cmd", Some(body))
        .await
        .map_err(|err| format!("Failed to correctly send command: {err}"))?;
    if status != 200 {
        return Err(format!(
            "Failed to correctly send command: HTTP status code is not 200: {text}"
        )
        .into());
    }
    // A start in a blackout window is taken but waits: the worker says until when.
    let answer: Value = serde_json::from_str(&text).unwrap_or_default();
    Ok(match answer["waits"].as_str() {
        Some(waits) => format!("Successfully send the command; it waits: {waits}\n"),
        None => "Successfully send the command\n".to_owned(),
    })
}

async fn list(client: &Client, args: ListArgs) -> Result<String, Failure> {
    if !args.all && args.workers.is_empty() {
        return Err(
            "Usage Error: jobs command need at least one arguments or \"--all\" flag.".into(),
        );
    }
    let statuses: Option<Vec<SyncStatus>> = match &args.status {
        Some(list) => Some(
            list.split(',')
                .map(|status| {
                    status.trim().parse::<SyncStatus>().map_err(|_| {
                        format!("Error parsing status: Invalid status value: {status:?}")
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        None => None,
    };
    let template = match &args.format {
        Some(text) => Some(
            Template::parse(text).map_err(|err| format!("Error parsing format template: {err}"))?,
        ),
        None => None,
    };
    let mut jobs: Vec<Value> = Vec::new();
    if args.all {
        let (status, body) = client
            .send(reqwest::Method::GET, "/jobs", None)
            .await
            .map_err(|err| {
                format!(
                    "Failed to correctly get information of all jobs from manager server: {err}"
                )
            })?;
        if status != 200 {
            return Err(format!("Failed to correctly get information of all jobs from manager server: HTTP status code is not 200: {body}").into());
        }
        jobs = serde_json::from_str::<Vec<Value>>(&body).map_err(|err| {
            format!("Failed to correctly get information of all jobs from manager server: {err}")
        })?;
    } else {
        let generic = "Failed to correctly get information of jobs from at least one manager";
        for worker in &args.workers {
            let (status, body) = client
                .send(
                    reqwest::Method::GET,
                    &format!("/workers/{worker}/jobs"),
                    None,
                )
                .await
                .map_err(|err| format!("{generic}: {err}"))?;
            if status != 200 {
                return Err(format!("{generic}: {body}").into());
            }
            jobs.extend(
                serde_json::from_str::<Vec<Value>>(&body)
                    .map_err(|err| format!("{generic}: {err}"))?,
            );
        }
    }
    if let Some(statuses) = statuses {
        jobs.retain(|job| {
            job["status"]
                .as_str()
                .and_then(|status| status.parse::<SyncStatus>().ok())
                .is_some_and(|status| statuses.contains(&status))
        });
    }
    match template {
        Some(template) => {
            let mut out = String::new();
            for job in &jobs {
                out.push_str(
                    &template
                        .render(job)
                        .map_err(|err| format!("Error printing out information: {err}"))?,
                );
                out.push('\n');
            }
            Ok(out)
        }
        None => Ok(format!("{}\n", pretty(&Value::Array(jobs)))),
    }
}

/// A run id as the API takes it, or a clear error.
fn uuid_text(text: &str) -> Result<String, Failure> {
    uuid::Uuid::parse_str(text)
        .map(|run| run.to_string())
        .map_err(|_| {
            format!("--run {text}: not a run id (a UUID, as `tunasynctl history` shows)").into()
        })
}
