//! `tunasync-docs DIR`: writes the man pages (`DIR/man/*.1`: `tunasync`, each of its
//! subcommands, `tunasynctl` and each of its) and the shell completions
//! (`DIR/completions/{bash,zsh,fish}/`) from the clap definitions, for the Debian package
//! (`scripts/package-deb.sh`). Not installed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: tunasync-docs DIR");
        return ExitCode::FAILURE;
    };
    match write_all(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tunasync-docs: {err}");
            ExitCode::FAILURE
        }
    }
}

fn write_all(dir: &Path) -> std::io::Result<()> {
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    for command in [tunasync::cli::Cli::command(), tunasync::ctl::Cli::command()] {
        clap_mangen::generate_to(command, &man)?;
    }
    for (shell, subdir, file) in [
        (Shell::Bash, "bash", "{}"),
        (Shell::Zsh, "zsh", "_{}"),
        (Shell::Fish, "fish", "{}.fish"),
    ] {
        let out = dir.join("completions").join(subdir);
        std::fs::create_dir_all(&out)?;
        for (name, mut command) in [
            ("tunasync", tunasync::cli::Cli::command()),
            ("tunasynctl", tunasync::ctl::Cli::command()),
        ] {
            let path = out.join(file.replace("{}", name));
            let mut sink = std::fs::File::create(path)?;
            clap_complete::generate(shell, &mut command, name, &mut sink);
        }
    }
    Ok(())
}
