//! The `fluo` binary: parses the command line and hands over to the library.

use clap::Parser;
use fluo::cli::{Cli, Command, RulesCommand};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Err(error) = fluo::config::apply_config_file(&args) {
        eprintln!("error: {error:#}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Rules(RulesCommand::Test(args)) => fluo::cli::rules_test(args),
        Command::Rules(RulesCommand::Apply(args)) => fluo::cli::apply::run(args),
        Command::Demo(args) => match fluo::demo::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
        Command::Openapi => {
            println!("{}", fluo::api::document().to_pretty_json().expect("the OpenAPI document serializes"));
            ExitCode::SUCCESS
        }
        Command::Serve(args) => match fluo::config::Config::from_args(args).and_then(fluo::app::serve) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}
