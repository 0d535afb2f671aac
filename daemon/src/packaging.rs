//! Shell completion scripts and man pages for `belterd` and `belter`, generated from their clap
//! definitions, so they list exactly the flags that the binaries accept.

use std::io::Write;
use std::path::PathBuf;

pub use clap_complete::Shell;

/// Arguments of the `completions` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Arguments of the `man` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct ManArgs {
    /// Write one page per command and subcommand into this directory, such as
    /// /usr/local/share/man/man1, instead of printing the main page to standard output
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Writes the completion script of `command` for `args.shell` to `out`.
pub fn write_completions(
    mut command: clap::Command,
    args: &CompletionsArgs,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let name = command.get_name().to_owned();
    // clap_complete panics when its writer fails, so the script is built in memory first.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    ignore_closed_pipe(out.write_all(&script).and_then(|()| out.flush()))
}

/// Treats a reader that stopped early, such as `head`, as success.
fn ignore_closed_pipe(written: std::io::Result<()>) -> std::io::Result<()> {
    match written {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes the man page of `command` in roff to `out`, or, with `args.out_dir`, one page per
/// command and subcommand into that directory, named such as `belter-endpoints-add.1`.
pub fn write_man(
    command: clap::Command,
    args: &ManArgs,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match &args.out_dir {
        Some(dir) => clap_mangen::generate_to(command, dir),
        None => ignore_closed_pipe(clap_mangen::Man::new(command).render(out)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, Subcommand};

    /// A small command line with one subcommand, standing in for the binaries'.
    #[derive(Debug, Parser)]
    #[command(name = "sample", version = "1.0")]
    struct SampleCli {
        /// Where the data goes
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: Option<SampleCommand>,
    }

    #[derive(Debug, Subcommand)]
    enum SampleCommand {
        /// Check a file
        Check,
    }

    #[test]
    fn completions_list_flags_and_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            write_completions(SampleCli::command(), &CompletionsArgs { shell }, &mut out).unwrap();
            let script = String::from_utf8(out).unwrap();
            assert!(script.contains("data-dir"), "{shell}: {script}");
            assert!(script.contains("check"), "{shell}: {script}");
        }
    }

    #[test]
    fn man_page_prints_or_writes_files() {
        let mut out = Vec::new();
        write_man(SampleCli::command(), &ManArgs { out_dir: None }, &mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{page}");
        assert!(page.contains(".TH sample 1"), "{page}");
        assert!(page.contains("data\\-dir"), "{page}");

        let dir = tempfile::tempdir().unwrap();
        let args = ManArgs {
            out_dir: Some(dir.path().to_owned()),
        };
        write_man(SampleCli::command(), &args, &mut Vec::new()).unwrap();
        assert!(dir.path().join("sample.1").is_file());
        assert!(dir.path().join("sample-check.1").is_file());
    }

    /// A writer whose reader has gone, as stdout is under `| head` once head exits.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn closed_pipe_is_not_an_error() {
        let man = write_man(
            SampleCli::command(),
            &ManArgs { out_dir: None },
            &mut ClosedPipe,
        );
        assert!(man.is_ok(), "{man:?}");
        let args = CompletionsArgs { shell: Shell::Bash };
        let completions = write_completions(SampleCli::command(), &args, &mut ClosedPipe);
        assert!(completions.is_ok(), "{completions:?}");
    }
}
