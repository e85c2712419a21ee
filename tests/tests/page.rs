//! The status page in a real browser: headless Chromium (over WebDriver) against the real
//! `tunasync manager` and `tunasync worker` binaries and the private broker. Screenshots of
//! each page are kept under `target/screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use tunasync_e2e::browser::Browser;
use tunasync_e2e::site::{self, Files};
use tunasync_e2e::{Daemon, ctl_ok};
use tunasync_shared::testkit::BrokerEnv;

const WAIT: Duration = Duration::from_secs(60);

fn screenshots() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/page-… → target/screenshots
    exe.ancestors().nth(3).unwrap().join("screenshots")
}

/// The mirrors the table shows (those not hidden), in order.
fn shown_names(browser: &Browser) -> Vec<String> {
    let names = browser.script(
        "return Array.from(document.querySelectorAll('#jobs tbody tr'))\
         .filter(function (row) { return !row.hidden; })\
         .map(function (row) { return row.getAttribute('data-name'); });",
    );
    serde_json::from_value(names).unwrap_or_default()
}

/// The badge text of `mirror`'s row.
fn badge(browser: &Browser, mirror: &str) -> Option<String> {
    browser.text_of(&format!("#jobs tr[data-name=\"{mirror}\"] .badge"))
}

#[test]
fn the_status_page_in_a_real_browser() {
    let env = BrokerEnv::get();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let files = Files {
        dir,
        env: &env,
        namespace: "page",
    };
    let (_manager, port, ctl) =
        files.start_manager("trusted_networks = [\"127.0.0.1/32\", \"::1/128\"]");
    let say = dir.join("say");
    let stop = dir.join("stop");
    let armed = dir.join("armed");
    let mirrors = format!(
        r#"
[[mirrors]]
name = "alpha-ok"
provider = "command"
upstream = "rsync://alpha.example.org/alpha/"
command = "/bin/sh -c 'echo alpha synced; echo Total size is 3.5G'"
size_pattern = "Total size is ([0-9\\.]+[KMGTP]?)"

[[mirrors]]
name = "beta-fail"
provider = "command"
command = "/bin/sh -c 'echo upstream unreachable; exit 4'"
retry = 1

[[mirrors]]
name = "gamma-live"
provider = "command"
command = "/bin/sh -c 'test -e {armed} || exit 0; while ! test -e {stop}; do if test -e {say}; then cat {say}; rm -f {say}; fi; echo tick; sleep 0.2; done'"
"#,
        armed = armed.display(),
        stop = stop.display(),
        say = say.display(),
    );
    let conf = files.worker_conf("w1", &files.plain_broker(), &mirrors);
    let _w1 = Daemon::start(
        "w1",
        &["worker", "-c", conf.to_str().unwrap()],
        &dir.join("w1.log"),
    );
    site::wait_status(&ctl, "w1", "alpha-ok", "success", WAIT);
    site::wait_status(&ctl, "w1", "beta-fail", "failed", WAIT);
    site::wait_status(&ctl, "w1", "gamma-live", "success", WAIT);

    let base = format!("https://localhost:{port}");
    let shots = screenshots();
    let browser = Browser::start(1280, 900);

    // The table: every mirror, the right badges, the worker online, the size.
    browser.open(&format!("{base}/"));
    browser.wait(WAIT, "the table", |browser| shown_names(browser).len() == 3);
    assert_eq!(
        shown_names(&browser),
        ["alpha-ok", "beta-fail", "gamma-live"]
    );
    assert_eq!(
        badge(&browser, "alpha-ok").as_deref(),
        Some("success"),
        "{}",
        browser.source()
    );
    assert_eq!(badge(&browser, "beta-fail").as_deref(), Some("failed"));
    let alpha = browser.text_of("#jobs tr[data-name=\"alpha-ok\"]").unwrap();
    assert!(
        alpha.contains("3.5G") && alpha.contains("w1 online"),
        "{alpha}"
    );
    assert!(
        alpha.contains("ago") || alpha.contains("just now"),
        "{alpha}"
    );
    let when = browser.attribute_of(
        "#jobs tr[data-name=\"alpha-ok\"] td[data-label=\"Last success\"] time",
        "title",
    );
    assert!(
        when.is_some_and(|exact| exact.len() >= 19),
        "the exact time on hover"
    );
    assert_eq!(
        browser
            .attribute_of("#jobs tr[data-name=\"beta-fail\"] .badge", "title")
            .as_deref(),
        Some("exit status 4")
    );
    browser.screenshot(&shots.join("index.png"));
    // Dark mode, by prefers-color-scheme.
    let background = |browser: &Browser| {
        browser.script("return getComputedStyle(document.body).backgroundColor;")
    };
    let light = background(&browser);
    browser.prefer_dark(true);
    browser.wait(WAIT, "the dark colours", |browser| {
        background(browser) != light
    });
    browser.screenshot(&shots.join("index-dark.png"));
    browser.prefer_dark(false);

    // The filter form (works without the script: a GET the server answers filtered).
    browser.click(&browser.find("#status option[value=\"failed\"]"));
    browser.click(&browser.find("form.filters button"));
    browser.wait(WAIT, "the filtered page", |browser| {
        browser.url().contains("status=failed")
    });
    browser.wait(WAIT, "only the failed mirror", |browser| {
        shown_names(browser) == ["beta-fail"]
    });
    browser.screenshot(&shots.join("index-failed.png"));

    // The search box: rows are hidden as one types; submitting asks the server.
    browser.open(&format!("{base}/"));
    browser.wait(WAIT, "the table", |browser| shown_names(browser).len() == 3);
    let search = browser.find("#q");
    browser.type_text(&search, "alph");
    browser.wait(WAIT, "the search to hide rows", |browser| {
        shown_names(browser) == ["alpha-ok"]
    });
    browser.type_text(&search, "\u{E007}"); // Enter
    browser.wait(WAIT, "the searched page", |browser| {
        browser.url().contains("q=alph")
    });
    browser.wait(WAIT, "the server's answer", |browser| {
        browser.find_all("#jobs tbody tr").len() == 1
    });
    browser.open(&format!("{base}/?q=nothing-like-this"));
    browser.wait(WAIT, "the empty answer", |browser| {
        browser.script("var none = document.getElementById('none'); return !!none && !none.hidden;")
            == serde_json::Value::Bool(true)
    });

    // A phone's width: the rows become cards; still every mirror.
    browser.set_window(390, 844);
    browser.open(&format!("{base}/"));
    browser.wait(WAIT, "the table", |browser| shown_names(browser).len() == 3);
    browser.screenshot(&shots.join("index-phone.png"));
    browser.set_window(1280, 900);

    // A mirror's page: its facts, its runs, its log.
    browser.open(&format!("{base}/mirrors/w1/beta-fail"));
    browser.wait(WAIT, "the history", |browser| {
        !browser.find_all("#history tbody tr").is_empty()
    });
    let run = browser.text_of("#history tbody tr").unwrap();
    assert!(
        run.contains("failed") && run.contains("exit status 4"),
        "{run}"
    );
    let log = browser.text_of("#log").unwrap();
    assert!(log.contains("upstream unreachable"), "{log}");
    browser.screenshot(&shots.join("mirror.png"));

    // Following a running job: a line the job writes after the page opened shows up; the
    // follow ends with the run, and the page's table follows the job's status.
    std::fs::write(&armed, "").unwrap();
    ctl_ok(&ctl, &["start", "-w", "w1", "gamma-live"]);
    site::wait_status(&ctl, "w1", "gamma-live", "syncing", WAIT);
    browser.open(&format!("{base}/mirrors/w1/gamma-live"));
    browser.wait(WAIT, "the log to follow", |browser| {
        browser.attribute_of("#log", "data-follow").is_some()
    });
    let log_text = |browser: &Browser| browser.text_of("#log").unwrap_or_default();
    browser.wait(WAIT, "ticks", |browser| log_text(browser).contains("tick"));
    let marker = format!("written after the page opened {}", std::process::id());
    assert!(!log_text(&browser).contains(&marker));
    std::fs::write(&say, format!("{marker}\n")).unwrap();
    browser.wait(WAIT, "the new line in the followed log", |browser| {
        log_text(browser).contains(&marker)
    });
    browser.screenshot(&shots.join("mirror-following.png"));
    std::fs::write(&stop, "").unwrap();
    browser.wait(WAIT, "the follow to end with the run", |browser| {
        browser.text_of("#following").as_deref() == Some("the run ended")
    });
    browser.open(&format!("{base}/"));
    browser.wait(WAIT, "the table", |browser| shown_names(browser).len() == 3);
    let before = badge(&browser, "gamma-live");
    assert_eq!(before.as_deref(), Some("success"));
    // The page refreshes itself: a run started after it opened shows without a reload.
    std::fs::remove_file(&stop).unwrap();
    ctl_ok(&ctl, &["start", "-w", "w1", "gamma-live"]);
    browser.wait(WAIT, "the page to show the new run", |browser| {
        badge(browser, "gamma-live").as_deref() == Some("syncing")
    });
    std::fs::write(&stop, "").unwrap();
    site::wait_status(&ctl, "w1", "gamma-live", "success", WAIT);
}
