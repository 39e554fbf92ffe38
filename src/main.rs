//! Thin entry point: parse the command line, run it, map the outcome to an exit code.

use clap::Parser;
use reconnoiter::cli::Cli;
use reconnoiter::exit::{Exit, code_for};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout and errors to stderr.
            let _ = e.print();
            let code = if e.use_stderr() {
                Exit::BadInput
            } else {
                Exit::Pass
            };
            std::process::exit(code.code());
        }
    };
    reconnoiter::cli::init_tracing(cli.verbose);
    match reconnoiter::cli::execute(cli) {
        Ok(exit) => std::process::exit(exit.code()),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(code_for(&err).code());
        }
    }
}
