//! The `tunasync` package: the binaries `tunasync` (subcommands `manager`, `worker`,
//! `standalone`) and
//! `tunasynctl`, thin `main`s over the workspace crates, and what they share: logging and
//! signal handling, systemd's notifications.

pub use tunasync_shared as shared;

pub mod cli;
pub mod ctl;
pub mod logging;
pub mod memory;
pub mod signals;
pub mod standalone;
pub mod systemd;
