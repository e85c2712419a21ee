//! A private Docker daemon for a test (its own data, exec root and socket, no networking
//! set-up, `vfs` storage), stopped by its PID when dropped, with a tiny image made from
//! Debian's static busybox (nothing is pulled: the machine has no registry access).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::{Daemon, wait_for};

/// The image the daemon holds: busybox's `sh`, `sleep` and `echo`.
pub const IMAGE: &str = "tunasync-test-busybox";

const DOCKERD: &str = "/usr/sbin/dockerd";
const BUSYBOX: &str = "/bin/busybox";

pub struct DockerDaemon {
    /// `DOCKER_HOST` for the clients of this daemon.
    pub host: String,
    _daemon: Daemon,
}

impl DockerDaemon {
    /// Starts it under `dir` and waits (60 s at most) until it answers; imports [`IMAGE`].
    pub fn start(dir: &Path) -> DockerDaemon {
        for (path, package) in [(DOCKERD, "docker.io"), (BUSYBOX, "busybox-static")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: apt-get install {package} (.ci/run does)"
            );
        }
        std::fs::create_dir_all(dir).unwrap();
        let path = |name: &str| dir.join(name).display().to_string();
        let host = format!("unix://{}", path("docker.sock"));
        let daemon = Daemon::start_program(
            "dockerd",
            Path::new(DOCKERD),
            &[
                "--data-root",
                &path("data"),
                "--exec-root",
                &path("exec"),
                "--host",
                &host,
                "--pidfile",
                &path("docker.pid"),
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ],
            &dir.join("dockerd.log"),
        );
        let docker = DockerDaemon {
            host,
            _daemon: daemon,
        };
        wait_for(Duration::from_secs(60), "dockerd to answer", || {
            docker.docker(&["info"]).status.success()
        });
        docker.import_image(&dir.join("image"));
        docker
    }

    /// `docker ARGS` against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .env("DOCKER_HOST", &self.host)
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("cannot run docker (apt-get install docker.io): {err}"))
    }

    /// The ids of the containers, running or not, named exactly `name`.
    pub fn containers(&self, name: &str) -> Vec<String> {
        let filter = format!("name=^{name}$");
        let output = self.docker(&["ps", "-a", "-q", "--no-trunc", "--filter", &filter]);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn import_image(&self, root: &Path) {
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
        for tool in ["sh", "sleep", "echo"] {
            std::os::unix::fs::symlink("busybox", bin.join(tool)).unwrap();
        }
        let tar: PathBuf = root.with_extension("tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success(), "tar of the image");
        let output = self.docker(&["import", &tar.display().to_string(), IMAGE]);
        assert!(
            output.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
