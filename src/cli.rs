//! The `tunasync` command line (clap definitions): the daemons' subcommands and flags, in
//! the library so that the man pages and completions are generated from the same
//! definitions (`src/bin/tunasync-docs.rs`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFlags;

#[derive(Parser)]
#[command(
    name = "tunasync",
    version,
    about = "Mirror-sync cluster over AMQP: manager and worker daemons, or both in one process"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Daemon,
}

#[derive(Subcommand)]
pub enum Daemon {
    /// Run the manager: status store, HTTPS API, command relay.
    #[command(alias = "m")]
    Manager(Box<ManagerArgs>),
    /// Run a worker: the mirror jobs of a tunasync worker.conf.
    #[command(alias = "w")]
    Worker(WorkerArgs),
    /// Run the manager and a worker in one process, without a broker (one-host sites).
    #[command(alias = "s")]
    Standalone(Box<StandaloneArgs>),
}

#[derive(Args)]
pub struct StandaloneArgs {
    /// The worker's config file (tunasync's worker.conf; no [broker] needed, and one is
    /// ignored).
    #[arg(short, long)]
    pub config: PathBuf,
    /// The manager's config file (a cluster manager's manager.conf works; its [broker] is
    /// ignored). Without one: the API on 127.0.0.1:14242 over plain HTTP and the store in
    /// /var/lib/tunasync/tunasync.redb. Without [auth] settings, peers on this host's
    /// loopback addresses may change state.
    #[arg(long, value_name = "FILE")]
    pub manager_config: Option<PathBuf>,
    /// The address the API listens on (overrides [server] addr).
    #[arg(long)]
    pub addr: Option<String>,
    /// The port the API listens on (overrides [server] port).
    #[arg(long)]
    pub port: Option<u16>,
    /// The redb store file (overrides [files] db_file).
    #[arg(long)]
    pub db_file: Option<PathBuf>,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Args)]
pub struct WorkerArgs {
    /// The worker's config file (tunasync's worker.conf plus a [broker] section).
    #[arg(short, long)]
    pub config: PathBuf,
    /// Check the config, print the resolved jobs as JSON (with the exact command lines)
    /// and exit; a bad file prints every problem and exits 1.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Args)]
pub struct LogArgs {
    /// Log at info level (the default).
    #[arg(short, long)]
    pub verbose: bool,
    /// Log at debug level, with source locations.
    #[arg(long)]
    pub debug: bool,
    /// Log without timestamps or colours, for journald.
    #[arg(long)]
    pub with_systemd: bool,
}

impl LogArgs {
    pub fn flags(&self) -> LogFlags {
        LogFlags {
            verbose: self.verbose,
            debug: self.debug,
            with_systemd: self.with_systemd,
        }
    }
}

#[derive(Args)]
pub struct ManagerArgs {
    /// The manager's config file.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// The address the API listens on (overrides [server] addr).
    #[arg(long)]
    pub addr: Option<String>,
    /// The port the API listens on (overrides [server] port).
    #[arg(long)]
    pub port: Option<u16>,
    /// HTTPS certificate (with --key; overrides [server] ssl_cert).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// HTTPS key (with --cert; overrides [server] ssl_key).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The redb store file (overrides [files] db_file).
    #[arg(long)]
    pub db_file: Option<PathBuf>,
    /// The store type: only "redb".
    #[arg(long)]
    pub db_type: Option<String>,
    /// Check the config file and exit.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub action: Option<ManagerAction>,
}

#[derive(Subcommand)]
pub enum ManagerAction {
    /// Seed the store from a running tunasync (Go) manager's public API (its jobs' last
    /// success, size, status), with this manager stopped; safe to run again.
    Import(ImportArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// The Go manager's API, e.g. http://127.0.0.1:14242.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The CA to trust for an https:// URL.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// This manager's config file (for its store).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// The redb store file (overrides [files] db_file).
    #[arg(long)]
    pub db_file: Option<PathBuf>,
}
