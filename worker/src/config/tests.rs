//! Data-driven config tests: each case is a worker.conf and what it must resolve to.

use super::*;

/// A minimal valid head; lines appended to it land in `[global]`.
const HEAD: &str = r#"
[broker]
url = "amqp://localhost"
[global]
name = "w1"
log_dir = "/var/log/tunasync/{{.Name}}"
mirror_dir = "/data"
"#;

fn load(text: &str) -> Result<Loaded, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.conf");
    std::fs::write(&path, text).unwrap();
    WorkerConfig::load(&path)
}

fn load_ok(text: &str) -> WorkerConfig {
    match load(text) {
        Ok(loaded) => loaded.config,
        Err(err) => panic!("{err}"),
    }
}

fn job<'a>(config: &'a WorkerConfig, name: &str) -> &'a JobConfig {
    config.job(&MirrorName::new(name).unwrap()).unwrap()
}

fn words(text: &str) -> Vec<String> {
    text.split(' ').map(str::to_owned).collect()
}

const DEFAULT_BLOCK: &str = "-aHvh --no-o --no-g --stats --filter risk .~tmp~/ --exclude .~tmp~/ --delete --delete-after --delay-updates --safe-links";

/// The exact command lines of every provider variant, as tunasync v0.10.0 ran them.
#[test]
fn provider_argv_matches_tunasync() {
    let text = format!(
        r#"{HEAD}
[[mirrors]]
name = "rsync-default"
upstream = "rsync://up/pub/"
command = "/bin/fakersync"

[[mirrors]]
name = "rsync-override"
provider = "rsync"
upstream = "rsync://up/pub/"
rsync_override = ["-aH", "--no-motd", "--delete"]
rsync_options = ["--local-opt"]
use_ipv6 = true

[[mirrors]]
name = "rsync-override-only"
upstream = "rsync://up/pub/"
rsync_override = ["--bar", "baz"]
rsync_override_only = true
rsync_options = ["--local-opt"]
use_ipv6 = true
exclude_file = "/etc/ex.txt"

[[mirrors]]
name = "rsync-auth"
upstream = "rsync://up/pub/"
username = "mirroruser"
password = "s3cret"
use_ipv4 = true
rsync_timeout = 30
env = {{ RSYNC_PROXY = "proxy:3128" }}

[[mirrors]]
name = "rsync-notimeout"
upstream = "rsync://up/pub/"
rsync_no_timeout = true
mirror_subdir = "sub/dir"

[[mirrors]]
name = "two-stage-debian"
provider = "two-stage-rsync"
stage1_profile = "debian"
upstream = "rsync://up/pub/"
rsync_options = ["--local-opt"]
use_ipv6 = true
exclude_file = "/etc/ex.txt"

[[mirrors]]
name = "two-stage-oldstyle"
provider = "two-stage-rsync"
stage1_profile = "debian-oldstyle"
upstream = "rsync://up/pub/"

[[mirrors]]
name = "cmd"
provider = "command"
upstream = "https://example.org/"
command = "/bin/fakecmd first 'second arg' \"third arg\" fourth\\ arg"
mirror_dir = "/explicit"
"#
    );
    let config = load_ok(&text);
    let cases: [(&str, Vec<Vec<String>>); 8] = [
        (
            "rsync-default",
            vec![words(&format!(
                "/bin/fakersync {DEFAULT_BLOCK} --timeout=120 rsync://up/pub/ /data/rsync-default"
            ))],
        ),
        (
            "rsync-override",
            vec![words(
                "rsync -aH --no-motd --delete --timeout=120 -6 --local-opt rsync://up/pub/ /data/rsync-override",
            )],
        ),
        (
            "rsync-override-only",
            vec![words(
                "rsync --bar baz rsync://up/pub/ /data/rsync-override-only",
            )],
        ),
        (
            "rsync-auth",
            vec![words(&format!(
                "rsync {DEFAULT_BLOCK} --timeout=30 -4 rsync://up/pub/ /data/rsync-auth"
            ))],
        ),
        (
            "rsync-notimeout",
            vec![words(&format!(
                "rsync {DEFAULT_BLOCK} rsync://up/pub/ /data/sub/dir/rsync-notimeout"
            ))],
        ),
        (
            "two-stage-debian",
            vec![
                words(
                    "rsync -aHvh --no-o --no-g --stats --filter risk .~tmp~/ --exclude .~tmp~/ --safe-links --include=*.diff/ --include=by-hash/ --exclude=*.diff/Index --exclude=Contents* --exclude=Packages* --exclude=Sources* --exclude=Release* --exclude=InRelease --exclude=i18n/* --exclude=dep11/* --exclude=installer-*/current --exclude=ls-lR* --timeout=120 -6 --exclude-from /etc/ex.txt rsync://up/pub/ /data/two-stage-debian",
                ),
                words(&format!(
                    "rsync {DEFAULT_BLOCK} --local-opt --timeout=120 -6 --exclude-from /etc/ex.txt rsync://up/pub/ /data/two-stage-debian"
                )),
            ],
        ),
        (
            "two-stage-oldstyle",
            vec![
                words(
                    "rsync -aHvh --no-o --no-g --stats --filter risk .~tmp~/ --exclude .~tmp~/ --safe-links --exclude=Packages* --exclude=Sources* --exclude=Release* --exclude=InRelease --exclude=i18n/* --exclude=ls-lR* --exclude=dep11/* --timeout=120 rsync://up/pub/ /data/two-stage-oldstyle",
                ),
                words(&format!(
                    "rsync {DEFAULT_BLOCK} --timeout=120 rsync://up/pub/ /data/two-stage-oldstyle"
                )),
            ],
        ),
        (
            "cmd",
            vec![vec![
                "/bin/fakecmd".into(),
                "first".into(),
                "second arg".into(),
                "third arg".into(),
                "fourth arg".into(),
            ]],
        ),
    ];
    for (name, stages) in cases {
        // "risk .~tmp~/" is one argument; fix up the space-split expectation.
        let stages: Vec<Vec<String>> = stages.into_iter().map(join_filter).collect();
        assert_eq!(job(&config, name).stages, stages, "{name}");
    }
    let auth = job(&config, "rsync-auth");
    assert_eq!(auth.env["USER"], "mirroruser");
    assert_eq!(auth.env["RSYNC_PASSWORD"], "s3cret");
    assert_eq!(auth.env["RSYNC_PROXY"], "proxy:3128");
    assert_eq!(job(&config, "cmd").mirror_dir, Path::new("/explicit"));
}

fn join_filter(argv: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in argv {
        if word == ".~tmp~/" && out.last().is_some_and(|last| last == "risk") {
            let last = out.pop().unwrap();
            out.push(format!("{last} {word}"));
        } else {
            out.push(word);
        }
    }
    out
}

/// Global rsync options come after the mirror's timeout and before its own options; with
/// an override they follow it; override-only drops them; two-stage ignores them (tunasync).
#[test]
fn global_rsync_options_are_placed_like_tunasync() {
    let text = format!(
        r#"{HEAD}
rsync_options = ["--global"]
[[mirrors]]
name = "full"
upstream = "rsync://up/pub/"
use_ipv6 = true
exclude_file = "/etc/ex.txt"
rsync_options = ["--local-opt1"]

[[mirrors]]
name = "override"
upstream = "rsync://up/pub/"
rsync_override = ["--override"]
rsync_options = ["--local"]

[[mirrors]]
name = "two"
provider = "two-stage-rsync"
stage1_profile = "debian"
upstream = "rsync://up/pub/"
"#
    );
    let config = load_ok(&text);
    assert_eq!(
        job(&config, "full").stages[0].join(" "),
        format!(
            "rsync {DEFAULT_BLOCK} --timeout=120 -6 --exclude-from /etc/ex.txt --global --local-opt1 rsync://up/pub/ /data/full"
        )
    );
    assert_eq!(
        job(&config, "override").stages[0].join(" "),
        "rsync --override --timeout=120 --global --local rsync://up/pub/ /data/override"
    );
    assert!(!job(&config, "two").stages[1].contains(&"--global".to_owned()));
}

#[test]
fn defaults_and_tunasyncs_rules() {
    let text = format!(
        r#"{HEAD}
[[mirrors]]
name = "plain"
upstream = "rsync://up/plain/"
"#
    );
    let config = load_ok(&text);
    assert_eq!(
        config.concurrent, DEFAULT_CONCURRENT,
        "left out: a sane default, not tunasync's 0"
    );
    let plain = job(&config, "plain");
    assert_eq!(
        plain.provider,
        ProviderKind::Rsync,
        "provider left out means rsync"
    );
    assert_eq!(plain.retry, 2);
    assert_eq!(plain.timeout_secs, None);
    assert_eq!(plain.schedule.interval_minutes(), 0);
    assert!(plain.is_master);
    assert_eq!(plain.log_dir, Path::new("/var/log/tunasync/plain"));
    assert_eq!(plain.mirror_dir, Path::new("/data/plain"));
}

/// Nested mirrors inherit from their parents (a child's zero value keeps the parent's),
/// includes come after the main file in glob order, and only leaves become jobs.
#[test]
fn nesting_and_includes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mirrors")).unwrap();
    std::fs::write(
        dir.path().join("mirrors/b.conf"),
        "[[mirrors]]\nname = \"inc-b\"\nprovider = \"command\"\ncommand = \"true\"\nupstream = \"x\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mirrors/a.conf"),
        "[[mirrors]]\nname = \"inc-a\"\nprovider = \"command\"\ncommand = \"true\"\nupstream = \"x\"\n",
    )
    .unwrap();
    let text = format!(
        r#"{HEAD}
interval = 60
retry = 3
timeout = 600
[include]
include_mirrors = "mirrors/*.conf"

[[mirrors]]
name = "debian-family"
provider = "two-stage-rsync"
stage1_profile = "debian"
use_ipv6 = true
interval = 120
memory_limit = "256M"
env = {{ A = "parent", B = "parent" }}
    [[mirrors.mirrors]]
    name = "debian"
    upstream = "rsync://up/debian/"
    env = {{ B = "child" }}
    [[mirrors.mirrors]]
    name = "debian-security"
    upstream = "rsync://up/debian-security/"
    mirror_subdir = "debian"
    stage1_profile = "debian-oldstyle"
    interval = 0
    use_ipv6 = false
"#
    );
    let path = dir.path().join("worker.conf");
    std::fs::write(&path, text).unwrap();
    let config = WorkerConfig::load(&path).unwrap().config;
    let names: Vec<&str> = config.jobs.iter().map(|job| job.name.as_str()).collect();
    assert_eq!(names, ["debian", "debian-security", "inc-a", "inc-b"]);
    let debian = job(&config, "debian");
    assert_eq!(debian.provider, ProviderKind::TwoStageRsync);
    assert_eq!(debian.schedule.interval_minutes(), 120);
    assert_eq!(debian.retry, 3);
    assert_eq!(debian.timeout_secs, Some(600));
    assert_eq!(debian.memory_limit, Some(256 << 20));
    assert_eq!(debian.env["A"], "parent");
    assert_eq!(debian.env["B"], "child");
    assert!(debian.stages[0].contains(&"-6".to_owned()));
    let security = job(&config, "debian-security");
    assert_eq!(
        security.mirror_dir,
        Path::new("/data/debian/debian-security")
    );
    assert!(security.stages[0].contains(&"--exclude=ls-lR*".to_owned()));
    assert!(
        !security.stages[0].contains(&"--include=by-hash/".to_owned()),
        "oldstyle profile"
    );
    assert!(
        security.stages[0].contains(&"-6".to_owned()),
        "a child's false keeps the parent's true (tunasync)"
    );
    assert_eq!(
        security.schedule.interval_minutes(),
        120,
        "a child's 0 keeps the parent's value"
    );
}

#[test]
fn exit_codes_merge_in_tunasyncs_order() {
    let text = format!(
        r#"{HEAD}
dangerous_global_success_exit_codes = [10]
dangerous_global_rsync_success_exit_codes = [23, 24]
[[mirrors]]
name = "r1"
upstream = "rsync://up/r1/"
success_exit_codes = [20]
rsync_success_exit_codes = [25]
[[mirrors]]
name = "r2"
upstream = "rsync://up/r2/"
success_exit_codes = [10, 20, 30]
rsync_success_exit_codes = [24, 25]
[[mirrors]]
name = "c"
provider = "command"
command = "true"
success_exit_codes = [40]
rsync_success_exit_codes = [99]
"#
    );
    let loaded = load(&text).unwrap();
    let config = loaded.config;
    assert_eq!(job(&config, "r1").success_exit_codes, [10, 20, 23, 24, 25]);
    assert_eq!(
        job(&config, "r2").success_exit_codes,
        [10, 20, 30, 23, 24, 25]
    );
    assert_eq!(job(&config, "c").success_exit_codes, [10, 40]);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|warning| warning.contains("rsync_success_exit_codes"))
    );
}

#[test]
fn new_keys_hooks_and_sections() {
    let text = format!(
        r#"{HEAD}
exec_on_success = ["/bin/hook success"]
exec_on_failure = ["/bin/hook 'the failure'"]
jitter = "30s"
[docker]
enable = true
volumes = ["/etc/a:/etc/a:ro"]
options = ["--net=host"]
[btrfs_snapshot]
enable = true
snapshot_path = "/snap"
[[mirrors]]
name = "c"
provider = "command"
command = "/bin/sync.sh"
upstream = "https://x/"
cron = "*/15 * * * *"
docker_image = "img:latest"
docker_volumes = ["/b:/b"]
exec_on_success_extra = ["/bin/extra"]
exec_on_failure = ["/bin/mine"]
size_pattern = "Total size is ([0-9\\.]+[KMGTP]?)"
"#
    );
    let config = load_ok(&text);
    let c = job(&config, "c");
    assert_eq!(
        c.schedule.cron().map(|cron| cron.as_str()),
        Some("*/15 * * * *")
    );
    assert_eq!(c.schedule.jitter, std::time::Duration::from_secs(30));
    assert_eq!(
        c.exec_on_success,
        [vec!["/bin/hook".to_owned(), "success".to_owned()]]
    );
    assert_eq!(c.exec_on_success_extra, [vec!["/bin/extra".to_owned()]]);
    assert_eq!(
        c.exec_on_failure,
        [vec!["/bin/mine".to_owned()]],
        "the mirror's list replaces the global one"
    );
    let docker = c.docker.as_ref().unwrap();
    assert_eq!(docker.volumes, ["/etc/a:/etc/a:ro", "/b:/b"]);
    assert_eq!(docker.options, ["--net=host"]);
    assert_eq!(c.snapshot_path.as_deref(), Some(Path::new("/snap/c")));
    let ended = chrono::DateTime::parse_from_rfc3339("2026-11-26T10:07:00Z")
        .unwrap()
        .to_utc();
    let next = c.schedule.next_after(ended);
    assert!(next > ended && next <= ended + chrono::Duration::minutes(15));
}

#[test]
fn http_era_sections_are_accepted_with_warnings() {
    let text = format!(
        "{HEAD}\n[manager]\napi_base = \"http://localhost:12345\"\ntoken = \"x\"\n[server]\nhostname = \"localhost\"\nlisten_port = 6000\n[cgroup]\nenable = false\nbase_path = \"/sys/fs/cgroup\"\n[mystery]\nkey = 1\n[[mirrors]]\nname = \"m\"\nupstream = \"rsync://up/m/\"\nconcurrent = 3\n"
    );
    let loaded = load(&text).unwrap();
    let warnings = loaded.warnings.join("\n");
    for expected in [
        "[manager] is ignored",
        "[server] is ignored",
        "cgroup.base_path",
        "unknown key `mystery`",
        "unknown key `mirrors.0.concurrent`",
    ] {
        assert!(warnings.contains(expected), "{expected}: {warnings}");
    }
}

/// A bad file is refused with every problem, each naming the file and the key.
#[test]
fn every_problem_is_reported() {
    let text = r#"
[global]
name = "bad id"
log_dir = "/log/{{.Nope}}"
concurrent = 0
[[mirrors]]
name = "no-slash"
upstream = "rsync://up/x"
[[mirrors]]
name = "bad-provider"
provider = "ftp"
upstream = "x/"
[[mirrors]]
name = "bad-regex"
provider = "command"
command = "true"
size_pattern = "([0-9"
[[mirrors]]
name = "unicode-class"
provider = "command"
command = "true"
fail_on_match = '\p{Han}'
[[mirrors]]
name = "bad-profile"
provider = "two-stage-rsync"
stage1_profile = "nosuchprofile"
upstream = "rsync://up/x/"
[[mirrors]]
name = "no-command"
provider = "command"
[[mirrors]]
name = "bad-memory"
upstream = "rsync://up/x/"
memory_limit = "lots"
[[mirrors]]
name = "bad-cron"
upstream = "rsync://up/x/"
cron = "every day"
[[mirrors]]
name = "override-only"
upstream = "rsync://up/x/"
rsync_override_only = true
[[mirrors]]
name = "override-only"
upstream = "rsync://up/y/"
[[mirrors]]
name = "bad/name"
upstream = "rsync://up/x/"
[health]
addr = "localhost"
"#;
    let err = load(text).unwrap_err();
    let message = err.to_string();
    let expected = [
        "`global.name`",
        "`global.concurrent`: 0 would never run a job",
        "`broker`: the [broker] section is required",
        "`mirrors.no-slash.upstream`: \"rsync://up/x\" must end with '/'",
        "`mirrors.bad-provider.provider`: unknown provider \"ftp\"",
        "`mirrors.bad-regex.size_pattern`: invalid regular expression",
        "`mirrors.unicode-class.fail_on_match`: invalid regular expression",
        "`mirrors.bad-profile.stage1_profile`: invalid stage 1 profile \"nosuchprofile\"",
        "`mirrors.no-command.command`",
        "`mirrors.bad-memory.memory_limit`",
        "`mirrors.bad-cron.cron`",
        "`mirrors.override-only.rsync_override_only`: needs rsync_override",
        "`mirrors.bad/name.name`",
        "`health.addr`: \"localhost\" is not an address with a port",
        "unknown template field \".Nope\"",
    ];
    for expected in expected {
        assert!(
            message.contains(expected),
            "missing {expected:?} in:\n{message}"
        );
    }
    assert!(
        message.lines().all(|line| line.contains("worker.conf")),
        "{message}"
    );

    let err = WorkerConfig::load(Path::new("/nonexistent/worker.conf")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/worker.conf: cannot read the file"),
        "{err}"
    );
    let err = load("[global\nname = 1").unwrap_err();
    assert!(err.to_string().contains("worker.conf"), "{err}");
    let err = load(&format!(
        "{HEAD}\n[[mirrors]]\nname = \"m\"\nupstream = \"rsync://u/m/\"\ninterval = \"soon\"\n"
    ))
    .unwrap_err();
    assert!(err.to_string().contains("interval"), "{err}");
}

/// TUNA's production-style config (88 mirrors of every kind) resolves, as tunasync does.
#[test]
fn a_production_style_config_resolves() {
    let mut text = String::from(HEAD);
    text.push_str("concurrent = 10\ninterval = 120\n[docker]\nenable = true\n");
    for idx in 0..30 {
        text.push_str(&format!(
            "[[mirrors]]\nname = \"cmd-{idx}\"\ninterval = 1440\nprovider = \"command\"\nupstream = \"https://up/{idx}\"\ncommand = \"/home/scripts/s{idx}.sh\"\nsize_pattern = \"size-sum: ([0-9\\\\.]+[KMGTP])\"\ndocker_image = \"tunathu/tunasync-scripts:latest\"\n[mirrors.env]\nTUNASYNC_UPSTREAM = \"https://up/{idx}/\"\n\n"
        ));
        text.push_str(&format!(
            "[[mirrors]]\nname = \"rsync-{idx}\"\nprovider = \"rsync\"\nupstream = \"rsync://up/r{idx}/\"\nrsync_options = [ \"--delete-excluded\" ]\nmemory_limit = \"256M\"\n\n"
        ));
        text.push_str(&format!(
            "[[mirrors]]\nname = \"deb-{idx}\"\nprovider = \"two-stage-rsync\"\nstage1_profile = \"debian\"\nupstream = \"rsync://up/d{idx}/\"\nuse_ipv6 = true\n\n"
        ));
    }
    let config = load_ok(&text);
    assert_eq!(config.jobs.len(), 90);
    assert!(config.docker);
    assert!(job(&config, "cmd-3").docker.is_some());
    assert_eq!(job(&config, "rsync-3").schedule.interval_minutes(), 120);
}

/// `pool` is inherited from `[global]` and parent mirrors like every tunasync key, and is
/// checked like a name.
#[test]
fn pools_are_inherited_and_checked() {
    let text = format!(
        r#"{HEAD}pool = "shared"
[[mirrors]]
name = "a"
upstream = "rsync://up/a/"
[[mirrors]]
pool = "other"
[[mirrors.mirrors]]
name = "b"
upstream = "rsync://up/b/"
[[mirrors.mirrors]]
name = "b-child"
upstream = "rsync://up/bc/"
"#
    );
    let config = load_ok(&text);
    let pool = |name: &str| {
        job(&config, name)
            .pool
            .as_ref()
            .map(|pool| pool.to_string())
    };
    assert_eq!(pool("a").as_deref(), Some("shared"));
    assert_eq!(pool("b").as_deref(), Some("other"));
    assert_eq!(pool("b-child").as_deref(), Some("other"));
    assert!(
        load_ok(&format!(
            "{HEAD}[[mirrors]]\nname = \"own\"\nupstream = \"rsync://up/o/\"\n"
        ))
        .jobs[0]
            .pool
            .is_none()
    );

    let err = load(&format!("{HEAD}pool = \"a b\"\n[[mirrors]]\nname = \"m\"\nupstream = \"rsync://up/m/\"\n[[mirrors]]\nname = \"n\"\nupstream = \"rsync://up/n/\"\npool = \"x/y\"\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`global.pool`: pool name \"a b\""), "{err}");
    assert!(err.contains("`mirrors.n.pool`: pool name \"x/y\""), "{err}");
}

/// Two members defining a pooled mirror the same way agree on its fingerprint, whatever
/// their log directories; any difference in what it runs shows.
#[test]
fn fingerprints_cover_what_a_job_runs() {
    let member = |log_dir: &str, upstream: &str| {
        let text = format!(
            "[broker]\nurl = \"amqp://localhost\"\n[global]\nname = \"w\"\nlog_dir = \"{log_dir}\"\nmirror_dir = \"/srv\"\npool = \"p\"\n[[mirrors]]\nname = \"debian\"\nupstream = \"{upstream}\"\n"
        );
        load_ok(&text).jobs[0].fingerprint()
    };
    let one = member("/var/log/a/{{.Name}}", "rsync://up/debian/");
    assert!(one.starts_with("v1:") && one.len() == 19, "{one}");
    assert_eq!(one, member("/logs/b/{{.Name}}", "rsync://up/debian/"));
    assert_ne!(one, member("/var/log/a/{{.Name}}", "rsync://other/debian/"));
}

/// `url` and `desc` belong to one mirror: read, not inherited by nested mirrors, and not
/// part of the definition members of a pool must agree on.
#[test]
fn url_and_desc_are_per_mirror() {
    let text = format!(
        r#"{HEAD}
[[mirrors]]
provider = "command"
command = "/bin/true"
url = "https://mirrors.example.edu/parent/"

[[mirrors.mirrors]]
name = "debian"
url = "https://mirrors.example.edu/debian/"
desc = "Debian GNU/Linux"

[[mirrors.mirrors]]
name = "debian-security"
"#
    );
    let config = load_ok(&text);
    let debian = job(&config, "debian");
    assert_eq!(
        debian.url.as_deref(),
        Some("https://mirrors.example.edu/debian/")
    );
    assert_eq!(debian.desc.as_deref(), Some("Debian GNU/Linux"));
    let nested = job(&config, "debian-security");
    assert_eq!(
        (nested.url.as_deref(), nested.desc.as_deref()),
        (None, None)
    );
    let mut other = debian.clone();
    other.url = None;
    other.desc = Some("another line".into());
    assert_eq!(other.fingerprint(), debian.fingerprint());
}

/// The schedule keys: inherited from `[global]`, overridden per mirror, and each bad value
/// named by its key.
#[test]
fn schedule_keys_resolve_and_bad_ones_are_named() {
    let text = format!(
        r#"{HEAD}
timezone = "Asia/Shanghai"
blackout = ["08:00-18:00 Mon-Fri"]
priority = 70
retry_after_failure = "30m"
[[mirrors]]
name = "inherits"
upstream = "rsync://up/a/"
[[mirrors]]
name = "own"
upstream = "rsync://up/b/"
interval = 360
interval_mode = "fixed-rate"
fixed_rate_anchor = "00:15"
timezone = "UTC"
blackout = []
priority = 0
"#
    );
    let config = load_ok(&text);
    let inherits = job(&config, "inherits");
    assert_eq!(inherits.schedule.zone.name(), "Asia/Shanghai");
    assert_eq!(inherits.schedule.blackouts.len(), 1);
    assert_eq!(inherits.priority, 70);
    assert_eq!(
        inherits.schedule.retry_after_failure,
        Some(Duration::from_secs(1800))
    );
    assert_eq!(inherits.schedule.fixed_rate_anchor, None);
    let own = job(&config, "own");
    assert_eq!(own.schedule.zone.name(), "UTC");
    assert!(own.schedule.blackouts.is_empty(), "an empty list clears it");
    assert_eq!(own.priority, 0, "0 is a priority of its own");
    assert_eq!(
        own.schedule.fixed_rate_anchor,
        chrono::NaiveTime::from_hms_opt(0, 15, 0)
    );
    let plain = load_ok(&format!(
        "{HEAD}\n[[mirrors]]\nname = \"m\"\nupstream = \"rsync://u/m/\"\n"
    ));
    assert_eq!(job(&plain, "m").priority, DEFAULT_PRIORITY);
    assert!(job(&plain, "m").schedule.zone.is_local());

    let bad = format!(
        r#"{HEAD}
[[mirrors]]
name = "zone"
upstream = "rsync://up/a/"
timezone = "Mars/Olympus"
[[mirrors]]
name = "window"
upstream = "rsync://up/a/"
blackout = ["sometimes"]
[[mirrors]]
name = "mode"
upstream = "rsync://up/a/"
interval_mode = "sometimes"
[[mirrors]]
name = "anchor"
upstream = "rsync://up/a/"
interval_mode = "fixed-rate"
fixed_rate_anchor = "25:00"
[[mirrors]]
name = "cron-rate"
upstream = "rsync://up/a/"
cron = "0 * * * *"
interval_mode = "fixed-rate"
[[mirrors]]
name = "lonely-anchor"
upstream = "rsync://up/a/"
fixed_rate_anchor = "01:00"
[[mirrors]]
name = "prio"
upstream = "rsync://up/a/"
priority = 101
[[mirrors]]
name = "again"
upstream = "rsync://up/a/"
retry_after_failure = "soon"
"#
    );
    let message = load(&bad).unwrap_err().to_string();
    for expected in [
        "`mirrors.zone.timezone`: \"Mars/Olympus\" is not a time zone",
        "`mirrors.window.blackout`: \"sometimes\" is not a blackout window",
        "`mirrors.mode.interval_mode`: \"sometimes\" is not an interval mode",
        "`mirrors.anchor.fixed_rate_anchor`: \"25:00\" is not a time of day",
        "`mirrors.cron-rate.interval_mode`: fixed-rate counts an interval",
        "`mirrors.lonely-anchor.fixed_rate_anchor`: only with interval_mode",
        "`mirrors.prio.priority`: 101 is not in 0..=100",
        "`mirrors.again.retry_after_failure`: invalid duration \"soon\"",
    ] {
        assert!(
            message.contains(expected),
            "missing {expected:?} in:\n{message}"
        );
    }
}

/// `atomic_publish`: runs write to the staging copy (the rsync target too), the served
/// directory is kept apart; a staging directory missing, inside mirror_dir, or on another
/// filesystem is an error.
#[test]
fn atomic_publish_stages_on_the_same_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display();
    let text = format!(
        r#"
[broker]
url = "amqp://localhost"
[global]
name = "w1"
log_dir = "/var/log/tunasync/{{{{.Name}}}}"
mirror_dir = "{root}/data"
staging_dir = "{root}/staging"
[[mirrors]]
name = "debian"
upstream = "rsync://up/debian/"
atomic_publish = true
[[mirrors]]
name = "plain"
upstream = "rsync://up/plain/"
"#
    );
    let config = load_ok(&text);
    let debian = job(&config, "debian");
    assert_eq!(debian.mirror_dir, dir.path().join("staging/debian"));
    assert_eq!(
        debian.publish.as_ref().unwrap().served,
        dir.path().join("data/debian")
    );
    assert_eq!(
        debian.stages[0].last().unwrap(),
        &dir.path().join("staging/debian").display().to_string(),
        "rsync writes to the staging copy"
    );
    assert_eq!(job(&config, "plain").publish, None);

    let bad = format!(
        r#"{HEAD}
[[mirrors]]
name = "nostaging"
upstream = "rsync://up/a/"
atomic_publish = true
[[mirrors]]
name = "inside"
upstream = "rsync://up/a/"
atomic_publish = true
mirror_dir = "{root}/data/inside"
staging_dir = "{root}/data/inside/.staging"
[[mirrors]]
name = "elsewhere"
upstream = "rsync://up/a/"
atomic_publish = true
mirror_dir = "{root}/data/elsewhere"
staging_dir = "/proc/tunasync-staging/elsewhere"
"#
    );
    let message = load(&bad).unwrap_err().to_string();
    for expected in [
        "`mirrors.nostaging.staging_dir`: atomic_publish needs a staging_dir",
        "`mirrors.inside.staging_dir`:",
        "must be apart",
        "`mirrors.elsewhere.staging_dir`: /proc/tunasync-staging/elsewhere is on another filesystem",
    ] {
        assert!(
            message.contains(expected),
            "missing {expected:?} in:\n{message}"
        );
    }
}
