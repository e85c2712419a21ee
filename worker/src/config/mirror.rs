//! One leaf mirror of worker.conf resolved into a [`JobConfig`]: what it inherits from its
//! ancestors and `[global]`, each key checked (every problem collected, naming the key),
//! and the command line its provider will run.

use std::path::{Path, PathBuf};

use tunasync_shared::names::{MirrorName, PoolName};
use tunasync_shared::wire::event::ProviderKind;

use super::raw::{RawFile, RawGlobal, RawMirror};
use super::stages::{self, split_command};
use super::units::{TemplateFields, memory_bytes, render_template};
use super::{Collector, DEFAULT_RETRY, DockerJob, JobConfig, publish, schedule};

/// Leaves of a mirror tree, each with what it inherits from its ancestors.
pub(super) fn flatten(mirror: RawMirror, leaves: &mut Vec<RawMirror>) {
    if mirror.mirrors.is_empty() {
        leaves.push(mirror);
        return;
    }
    let mut parent = mirror;
    let children = std::mem::take(&mut parent.mirrors);
    for mut child in children {
        child.inherit_from(&parent);
        flatten(child, leaves);
    }
}

fn merge_codes(lists: &[&[i32]]) -> Vec<i32> {
    let mut merged = Vec::new();
    for code in lists.iter().flat_map(|list| list.iter()) {
        if !merged.contains(code) {
            merged.push(*code);
        }
    }
    merged
}

/// A mirror's own list of hook commands, or `[global]`'s when it has none (an empty list
/// counts as none).
fn own_or_global<'a>(own: &'a Option<Vec<String>>, global: &'a [String]) -> &'a [String] {
    own.as_deref()
        .filter(|list| !list.is_empty())
        .unwrap_or(global)
}

pub(super) fn resolve_mirror(
    mirror: &RawMirror,
    idx: usize,
    global: &RawGlobal,
    raw: &RawFile,
    file: &Path,
    collector: &mut Collector,
) -> Option<JobConfig> {
    let shown_name = mirror
        .name
        .clone()
        .unwrap_or_else(|| format!("#{}", idx + 1));
    let key = |field: &str| format!("mirrors.{shown_name}.{field}");
    let n_problems = collector.problems.len();

    let name = match MirrorName::new(mirror.name.clone().unwrap_or_default()) {
        Ok(name) => Some(name),
        Err(err) => {
            collector.problem(file, key("name"), err.to_string());
            None
        }
    };
    let provider = match mirror.provider.as_deref().unwrap_or("") {
        "" | "rsync" => ProviderKind::Rsync,
        "two-stage-rsync" => ProviderKind::TwoStageRsync,
        "command" => ProviderKind::Command,
        other => {
            collector.problem(
                file,
                key("provider"),
                format!("unknown provider {other:?}: use rsync, two-stage-rsync or command"),
            );
            ProviderKind::Rsync
        }
    };
    let is_rsync = provider != ProviderKind::Command;
    let upstream_fallback: Vec<String> = mirror
        .upstream_fallback
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|fallback| !fallback.trim().is_empty())
        .collect();
    for fallback in &upstream_fallback {
        if is_rsync && !fallback.ends_with('/') {
            collector.problem(
                file,
                key("upstream_fallback"),
                format!("{fallback:?} must end with '/' for rsync providers"),
            );
        }
    }
    let check_upstream = mirror
        .check_upstream
        .or(global.check_upstream)
        .unwrap_or(!upstream_fallback.is_empty());
    if !check_upstream && !upstream_fallback.is_empty() {
        collector.problem(
            file,
            key("check_upstream"),
            "upstream_fallback is used only when the upstreams are probed: leave check_upstream out or set it true",
        );
    }
    let upstream = mirror.upstream.clone().unwrap_or_default();
    if is_rsync && !upstream.ends_with('/') {
        collector.problem(
            file,
            key("upstream"),
            format!("{upstream:?} must end with '/' for rsync providers"),
        );
    }
    let is_master = match mirror.role.as_deref() {
        None | Some("") | Some("master") => true,
        Some("slave") => false,
        Some(other) => {
            collector.warn(
                file,
                format_args!(
                    "`{}`: unknown role {other:?}, counted as master",
                    key("role")
                ),
            );
            true
        }
    };

    let non_negative = |value: Option<i64>, field: &str, collector: &mut Collector| -> u64 {
        match value {
            Some(value) if value < 0 => {
                collector.problem(file, key(field), format!("{value} is negative"));
                0
            }
            Some(value) => value as u64,
            None => 0,
        }
    };
    let interval = match non_negative(mirror.interval, "interval", collector) {
        0 => global.interval.max(0) as u64,
        n => n,
    };
    let retry = match non_negative(mirror.retry, "retry", collector) {
        0 => match global.retry {
            n if n > 0 => u32::try_from(n).unwrap_or(DEFAULT_RETRY),
            _ => DEFAULT_RETRY,
        },
        n => u32::try_from(n).unwrap_or(DEFAULT_RETRY),
    };
    let timeout = match non_negative(mirror.timeout, "timeout", collector) {
        0 => global.timeout.max(0) as u64,
        n => n,
    };

    let (schedule, priority) = schedule::resolve(mirror, global, interval, file, &key, collector);

    let pool = match (mirror.pool.as_deref(), global.pool.as_deref()) {
        (Some(text), _) if !text.is_empty() => Some((text, key("pool"))),
        (_, Some(text)) if !text.is_empty() => Some((text, "global.pool".to_owned())),
        _ => None,
    };
    let pool = pool.and_then(|(text, at)| match PoolName::new(text) {
        Ok(pool) => Some(pool),
        Err(err) => {
            collector.problem(file, at, err.to_string());
            None
        }
    });

    let name_text = name
        .as_ref()
        .map_or(shown_name.as_str(), MirrorName::as_str);
    let mirror_dir = match mirror.mirror_dir.as_deref().filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let mut dir = PathBuf::from(&global.mirror_dir);
            if let Some(subdir) = mirror
                .mirror_subdir
                .as_deref()
                .filter(|dir| !dir.is_empty())
            {
                dir.push(subdir);
            }
            dir.push(name_text);
            dir
        }
    };
    if !mirror_dir.is_absolute() {
        collector.problem(
            file,
            key("mirror_dir"),
            format!(
                "{} is not absolute: set global.mirror_dir or the mirror's mirror_dir",
                mirror_dir.display()
            ),
        );
    }
    // With atomic_publish, runs write to the staging copy and mirror_dir is what is served.
    let (mirror_dir, publish) =
        publish::resolve(mirror, global, name_text, mirror_dir, file, &key, collector);
    let log_template = mirror
        .log_dir
        .as_deref()
        .filter(|dir| !dir.is_empty())
        .unwrap_or(&global.log_dir);
    let fields = TemplateFields {
        name: name_text,
        provider: provider.as_str(),
        upstream: &upstream,
    };
    let log_dir = match render_template(log_template, &fields) {
        Ok(dir) if dir.is_empty() => {
            collector.problem(
                file,
                key("log_dir"),
                "no log_dir: set global.log_dir (or \"/dev/null\" for no logs)",
            );
            PathBuf::new()
        }
        Ok(dir) => PathBuf::from(dir),
        Err(err) => {
            collector.problem(file, key("log_dir"), err);
            PathBuf::new()
        }
    };

    for (field, pattern) in [
        ("size_pattern", &mirror.size_pattern),
        ("fail_on_match", &mirror.fail_on_match),
    ] {
        if let Some(pattern) = pattern
            && let Err(err) = regex_lite::Regex::new(pattern)
        {
            let reason = err.to_string();
            let reason = reason
                .lines()
                .last()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned();
            collector.problem(
                file,
                key(field),
                format!("invalid regular expression {pattern:?}: {reason}"),
            );
        }
    }
    if !is_rsync
        && mirror
            .rsync_success_exit_codes
            .as_ref()
            .is_some_and(|codes| !codes.is_empty())
    {
        collector.warn(
            file,
            format_args!(
                "`{}` is ignored for the command provider",
                key("rsync_success_exit_codes")
            ),
        );
    }
    let success_exit_codes = if is_rsync {
        merge_codes(&[
            &global.dangerous_global_success_exit_codes,
            mirror.success_exit_codes.as_deref().unwrap_or_default(),
            &global.dangerous_global_rsync_success_exit_codes,
            mirror
                .rsync_success_exit_codes
                .as_deref()
                .unwrap_or_default(),
        ])
    } else {
        merge_codes(&[
            &global.dangerous_global_success_exit_codes,
            mirror.success_exit_codes.as_deref().unwrap_or_default(),
        ])
    };

    let commands = |field: &str, list: &[String], collector: &mut Collector| -> Vec<Vec<String>> {
        list.iter()
            .filter_map(|text| {
                let words = split_command(text);
                if words.is_none() {
                    collector.problem(
                        file,
                        key(field),
                        format!("cannot split the command {text:?}"),
                    );
                }
                words
            })
            .collect()
    };
    let exec_on_success = commands(
        "exec_on_success",
        own_or_global(&mirror.exec_on_success, &global.exec_on_success),
        collector,
    );
    let exec_on_failure = commands(
        "exec_on_failure",
        own_or_global(&mirror.exec_on_failure, &global.exec_on_failure),
        collector,
    );
    let exec_on_success_extra = commands(
        "exec_on_success_extra",
        mirror.exec_on_success_extra.as_deref().unwrap_or_default(),
        collector,
    );
    let exec_on_failure_extra = commands(
        "exec_on_failure_extra",
        mirror.exec_on_failure_extra.as_deref().unwrap_or_default(),
        collector,
    );

    let memory_limit = match mirror
        .memory_limit
        .as_deref()
        .filter(|text| !text.is_empty())
    {
        Some(text) => match memory_bytes(text) {
            Ok(bytes) => Some(bytes),
            Err(err) => {
                collector.problem(file, key("memory_limit"), err);
                None
            }
        },
        None => None,
    };
    let disk_min_free = match mirror
        .disk_min_free
        .as_deref()
        .or(global.disk_min_free.as_deref())
        .filter(|text| !text.trim().is_empty())
    {
        Some(text) => match crate::disk::MinFree::parse(text) {
            Ok(min) => Some(min),
            Err(err) => {
                collector.problem(file, key("disk_min_free"), err);
                None
            }
        },
        None => None,
    };
    let exclude_file = mirror
        .exclude_file
        .as_deref()
        .filter(|path| !path.is_empty())
        .map(PathBuf::from);

    let (stages, env) = stages::build(
        mirror,
        global,
        provider,
        &upstream,
        &mirror_dir,
        exclude_file.as_deref(),
        file,
        &key,
        collector,
    );

    let docker = match mirror
        .docker_image
        .as_deref()
        .filter(|image| !image.is_empty())
    {
        Some(image) if raw.docker.enable => {
            let mut volumes = raw.docker.volumes.clone();
            volumes.extend(mirror.docker_volumes.clone().unwrap_or_default());
            let mut options = raw.docker.options.clone();
            options.extend(mirror.docker_options.clone().unwrap_or_default());
            Some(DockerJob {
                image: image.to_owned(),
                volumes,
                options,
            })
        }
        _ => None,
    };
    let snapshot_path = raw.btrfs_snapshot.enable.then(|| {
        mirror
            .snapshot_path
            .as_deref()
            .filter(|path| !path.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(&raw.btrfs_snapshot.snapshot_path).join(name_text))
    });

    if collector.problems.len() > n_problems {
        return None;
    }
    Some(JobConfig {
        name: name?,
        provider,
        upstream,
        is_master,
        pool,
        schedule,
        priority,
        retry,
        timeout_secs: (timeout > 0).then_some(timeout),
        mirror_dir,
        log_dir,
        stages,
        env,
        success_exit_codes,
        size_pattern: mirror
            .size_pattern
            .clone()
            .filter(|pattern| !pattern.is_empty()),
        fail_on_match: mirror
            .fail_on_match
            .clone()
            .filter(|pattern| !pattern.is_empty()),
        exec_on_success,
        exec_on_success_extra,
        exec_on_failure,
        exec_on_failure_extra,
        exclude_file,
        memory_limit,
        disk_min_free,
        publish,
        upstream_fallback,
        check_upstream,
        docker,
        snapshot_path,
        url: mirror.url.clone().filter(|url| !url.trim().is_empty()),
        desc: mirror.desc.clone().filter(|desc| !desc.trim().is_empty()),
    })
}
