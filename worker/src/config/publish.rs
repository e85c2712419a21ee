//! `atomic_publish` and `staging_dir`: where a job's runs write, and what it serves.

use std::path::{Path, PathBuf};

use super::Collector;
use super::raw::{RawGlobal, RawMirror};
use crate::publish::{Publish, device_of};

/// The directory runs write to, and the served one when `atomic_publish` is on.
pub(super) fn resolve(
    mirror: &RawMirror,
    global: &RawGlobal,
    name: &str,
    mirror_dir: PathBuf,
    file: &Path,
    key: &dyn Fn(&str) -> String,
    collector: &mut Collector,
) -> (PathBuf, Option<Publish>) {
    if !mirror
        .atomic_publish
        .or(global.atomic_publish)
        .unwrap_or(false)
    {
        return (mirror_dir, None);
    }
    let staging = match (
        mirror.staging_dir.as_deref().filter(|dir| !dir.is_empty()),
        global.staging_dir.as_deref().filter(|dir| !dir.is_empty()),
    ) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(root)) => Path::new(root).join(name),
        (None, None) => {
            collector.problem(
                file,
                key("staging_dir"),
                "atomic_publish needs a staging_dir on the filesystem of mirror_dir",
            );
            return (mirror_dir, None);
        }
    };
    let problem = if !staging.is_absolute() {
        Some(format!("{} is not absolute", staging.display()))
    } else if staging == mirror_dir
        || staging.starts_with(&mirror_dir)
        || mirror_dir.starts_with(&staging)
    {
        Some(format!(
            "{} and mirror_dir {} must be apart (neither inside the other)",
            staging.display(),
            mirror_dir.display()
        ))
    } else if device_of(&staging) != device_of(&mirror_dir) {
        Some(format!(
            "{} is on another filesystem than mirror_dir {}: the swap is a rename, which \
             needs one filesystem",
            staging.display(),
            mirror_dir.display()
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        collector.problem(file, key("staging_dir"), problem);
        return (mirror_dir, None);
    }
    (staging, Some(Publish { served: mirror_dir }))
}
