//! A job's fingerprint: a digest of its resolved definition, which members of a pool
//! compare before running one another's runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tunasync_shared::names::{MirrorName, PoolName};
use tunasync_shared::schedule::Rules;
use tunasync_shared::wire::event::ProviderKind;

use super::{DockerJob, JobConfig};

/// What a job's fingerprint covers: what it runs and how, field by field, so that a new
/// field in a later version changes no fingerprint until it is added here (with a new
/// [`FINGERPRINT_VERSION`]), and members of different versions agree during an upgrade.
/// Left out: where the logs go, each host's own business.
#[derive(Serialize)]
struct Definition<'a> {
    name: &'a MirrorName,
    provider: ProviderKind,
    upstream: &'a str,
    is_master: bool,
    pool: &'a Option<PoolName>,
    schedule: &'a Rules,
    retry: u32,
    timeout_secs: Option<u64>,
    mirror_dir: &'a Path,
    stages: &'a [Vec<String>],
    env: &'a BTreeMap<String, String>,
    success_exit_codes: &'a [i32],
    size_pattern: &'a Option<String>,
    fail_on_match: &'a Option<String>,
    exec_on_success: &'a [Vec<String>],
    exec_on_success_extra: &'a [Vec<String>],
    exec_on_failure: &'a [Vec<String>],
    exec_on_failure_extra: &'a [Vec<String>],
    exclude_file: &'a Option<PathBuf>,
    memory_limit: Option<u64>,
    docker: &'a Option<DockerJob>,
    snapshot_path: &'a Option<PathBuf>,
}

/// The layout of [`Definition`], the first part of every fingerprint.
pub const FINGERPRINT_VERSION: u32 = 1;

impl JobConfig {
    /// A digest of what this job does (`v1:` and 16 hex digits), the same on every worker
    /// whose file defines it the same way: members of a pool compare theirs before running
    /// one another's runs.
    pub fn fingerprint(&self) -> String {
        let definition = Definition {
            name: &self.name,
            provider: self.provider,
            upstream: &self.upstream,
            is_master: self.is_master,
            pool: &self.pool,
            schedule: &self.schedule,
            retry: self.retry,
            timeout_secs: self.timeout_secs,
            mirror_dir: &self.mirror_dir,
            stages: &self.stages,
            env: &self.env,
            success_exit_codes: &self.success_exit_codes,
            size_pattern: &self.size_pattern,
            fail_on_match: &self.fail_on_match,
            exec_on_success: &self.exec_on_success,
            exec_on_success_extra: &self.exec_on_success_extra,
            exec_on_failure: &self.exec_on_failure,
            exec_on_failure_extra: &self.exec_on_failure_extra,
            exclude_file: &self.exclude_file,
            memory_limit: self.memory_limit,
            docker: &self.docker,
            snapshot_path: &self.snapshot_path,
        };
        // Plain data in declaration order, maps sorted: the text is the same everywhere.
        let text = serde_json::to_string(&definition).unwrap_or_default();
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        let hex: String = digest.as_ref()[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("v{FINGERPRINT_VERSION}:{hex}")
    }
}
