//! The `tunasync` package: thin binaries over the workspace crates.
//!
//! The binaries `tunasync` (subcommands `manager`, `worker`) and `tunasynctl` arrive with the
//! manager, worker and client; until then this package only ties the workspace together.
pub use tunasync_shared as shared;
