//! `fluo serve` configuration: one typed [`Config`] from flags and `FLUO_*`
//! environment variables, defaults in code, validated before anything starts.
//! This is the only module that reads the environment.

use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Directory of the embedded sled database (created if missing).
    #[arg(long, env = "FLUO_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Fuel per rule call.
    #[arg(long, env = "FLUO_RULE_FUEL", default_value_t = crate::rules::Limits::default().fuel_per_call)]
    pub rule_fuel: u64,
    /// Linear memory cap per tenant sandbox, in MiB.
    #[arg(long, env = "FLUO_RULE_MEMORY_MIB", default_value_t = 64)]
    pub rule_memory_mib: usize,
    /// Wall-clock deadline per rule call, in milliseconds.
    #[arg(long, env = "FLUO_RULE_DEADLINE_MS", default_value_t = 100)]
    pub rule_deadline_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub limits: crate::rules::Limits,
}

impl Config {
    pub fn from_args(args: ServeArgs) -> Result<Config> {
        if args.rule_fuel < 1_000_000 {
            bail!("--rule-fuel must be at least 1000000 (a rule needs some fuel to run at all)");
        }
        if !(4..=4096).contains(&args.rule_memory_mib) {
            bail!("--rule-memory-mib must be between 4 and 4096");
        }
        if !(1..=60_000).contains(&args.rule_deadline_ms) {
            bail!("--rule-deadline-ms must be between 1 and 60000");
        }
        let limits = crate::rules::Limits {
            fuel_per_call: args.rule_fuel,
            memory_bytes: args.rule_memory_mib << 20,
            deadline: std::time::Duration::from_millis(args.rule_deadline_ms),
            ..crate::rules::Limits::default()
        };
        Ok(Config { data_dir: args.data_dir, limits })
    }
}
