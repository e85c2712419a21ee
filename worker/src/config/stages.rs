//! The command lines of a job's provider: the command provider's, and rsync's and
//! two-stage rsync's as tunasync builds them (option blocks, timeout, IP version,
//! excludes, overrides), with the environment they need (`USER`, `RSYNC_PASSWORD`).

use std::collections::BTreeMap;
use std::path::Path;

use tunasync_shared::wire::event::ProviderKind;

use super::Collector;
use super::raw::{RawGlobal, RawMirror};

/// rsync's `--timeout` when `rsync_timeout` is left out.
pub const DEFAULT_RSYNC_TIMEOUT: i64 = 120;

/// rsync's default option block (tunasync's).
pub const RSYNC_DEFAULT_OPTIONS: &[&str] = &[
    "-aHvh",
    "--no-o",
    "--no-g",
    "--stats",
    "--filter",
    "risk .~tmp~/",
    "--exclude",
    ".~tmp~/",
    "--delete",
    "--delete-after",
    "--delay-updates",
    "--safe-links",
];

/// Stage 1 of two-stage rsync: no deletion, no delayed updates.
const STAGE1_BASE_OPTIONS: &[&str] = &[
    "-aHvh",
    "--no-o",
    "--no-g",
    "--stats",
    "--filter",
    "risk .~tmp~/",
    "--exclude",
    ".~tmp~/",
    "--safe-links",
];

const STAGE1_DEBIAN: &[&str] = &[
    "--include=*.diff/",
    "--include=by-hash/",
    "--exclude=*.diff/Index",
    "--exclude=Contents*",
    "--exclude=Packages*",
    "--exclude=Sources*",
    "--exclude=Release*",
    "--exclude=InRelease",
    "--exclude=i18n/*",
    "--exclude=dep11/*",
    "--exclude=installer-*/current",
    "--exclude=ls-lR*",
];

const STAGE1_DEBIAN_OLDSTYLE: &[&str] = &[
    "--exclude=Packages*",
    "--exclude=Sources*",
    "--exclude=Release*",
    "--exclude=InRelease",
    "--exclude=i18n/*",
    "--exclude=ls-lR*",
    "--exclude=dep11/*",
];

pub(super) fn split_command(text: &str) -> Option<Vec<String>> {
    shlex::split(text).filter(|words| !words.is_empty())
}

/// Each stage's argv, and the environment (`env` plus rsync's login).
#[allow(clippy::too_many_arguments)]
pub(super) fn build(
    mirror: &RawMirror,
    global: &RawGlobal,
    provider: ProviderKind,
    upstream: &str,
    mirror_dir: &Path,
    exclude_file: Option<&Path>,
    file: &Path,
    key: &dyn Fn(&str) -> String,
    collector: &mut Collector,
) -> (Vec<Vec<String>>, BTreeMap<String, String>) {
    let mut env = mirror.env.clone().unwrap_or_default();
    let stages = match provider {
        ProviderKind::Command => {
            let text = mirror.command.clone().unwrap_or_default();
            match split_command(&text) {
                Some(argv) => vec![argv],
                None => {
                    collector.problem(
                        file,
                        key("command"),
                        format!("the command provider needs a command line (got {text:?})"),
                    );
                    vec![]
                }
            }
        }
        ProviderKind::Rsync | ProviderKind::TwoStageRsync => {
            if let Some(user) = mirror.username.as_deref().filter(|user| !user.is_empty()) {
                env.insert("USER".into(), user.into());
            }
            if let Some(password) = mirror
                .password
                .as_deref()
                .filter(|password| !password.is_empty())
            {
                env.insert("RSYNC_PASSWORD".into(), password.into());
            }
            let rsync = mirror
                .command
                .clone()
                .filter(|command| !command.is_empty())
                .unwrap_or_else(|| "rsync".into());
            let mut tail: Vec<String> = Vec::new();
            if !mirror.rsync_no_timeout.unwrap_or(false) {
                let seconds = match mirror.rsync_timeout.unwrap_or(0) {
                    n if n > 0 => n,
                    n if n < 0 => {
                        collector.problem(file, key("rsync_timeout"), format!("{n} is negative"));
                        DEFAULT_RSYNC_TIMEOUT
                    }
                    _ => DEFAULT_RSYNC_TIMEOUT,
                };
                tail.push(format!("--timeout={seconds}"));
            }
            if mirror.use_ipv6.unwrap_or(false) {
                tail.push("-6".into());
            } else if mirror.use_ipv4.unwrap_or(false) {
                tail.push("-4".into());
            }
            if let Some(exclude) = &exclude_file {
                tail.push("--exclude-from".into());
                tail.push(exclude.display().to_string());
            }
            let local_options = mirror.rsync_options.clone().unwrap_or_default();
            let target = [upstream.to_owned(), mirror_dir.display().to_string()];
            if provider == ProviderKind::Rsync {
                let override_options = mirror
                    .rsync_override
                    .clone()
                    .filter(|options| !options.is_empty());
                let override_only = mirror.rsync_override_only.unwrap_or(false);
                let mut argv = vec![rsync];
                match (&override_options, override_only) {
                    (None, true) => {
                        collector.problem(file, key("rsync_override_only"), "needs rsync_override");
                    }
                    (Some(options), true) => argv.extend(options.iter().cloned()),
                    (options, false) => {
                        match options {
                            Some(options) => argv.extend(options.iter().cloned()),
                            None => argv.extend(
                                RSYNC_DEFAULT_OPTIONS
                                    .iter()
                                    .map(|option| option.to_string()),
                            ),
                        }
                        argv.extend(tail);
                        argv.extend(global.rsync_options.iter().cloned());
                        argv.extend(local_options);
                    }
                }
                argv.extend(target);
                vec![argv]
            } else {
                let profile: &[&str] = match mirror.stage1_profile.as_deref().unwrap_or("") {
                    "debian" => STAGE1_DEBIAN,
                    "debian-oldstyle" => STAGE1_DEBIAN_OLDSTYLE,
                    other => {
                        collector.problem(
                            file,
                            key("stage1_profile"),
                            format!(
                                "invalid stage 1 profile {other:?}: use debian or debian-oldstyle"
                            ),
                        );
                        &[]
                    }
                };
                let mut stage1 = vec![rsync.clone()];
                stage1.extend(STAGE1_BASE_OPTIONS.iter().map(|option| option.to_string()));
                stage1.extend(profile.iter().map(|option| option.to_string()));
                stage1.extend(tail.iter().cloned());
                stage1.extend(target.iter().cloned());
                let mut stage2 = vec![rsync];
                stage2.extend(
                    RSYNC_DEFAULT_OPTIONS
                        .iter()
                        .map(|option| option.to_string()),
                );
                stage2.extend(local_options);
                stage2.extend(tail);
                stage2.extend(target);
                vec![stage1, stage2]
            }
        }
    };
    (stages, env)
}
