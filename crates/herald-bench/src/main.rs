//! `herald-bench`: Herald's load tool. See README.md beside Cargo.toml.

mod cli;
mod client;
mod collect;
mod fleet;
mod floor;
mod payload;
mod procfs;
mod push;
mod recovery;
mod run;
mod stats;
mod targets;
mod tstamp;
mod worker;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

use cli::{Cli, Command, CommonArgs, FanoutArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Worker => worker::run(),
        Command::RecoveryWorker => recovery::worker::run(),
        Command::Storm(args) => recovery::storm::main(&args),
        Command::Soak(args) => recovery::soak::main(&args),
        Command::Fanout(args) => parent(&args.common.clone(), Some(args)),
        Command::Logins(args) => parent(&args, None),
        Command::Push(args) => push::main(&args),
        Command::Floor(args) => floor::main(&args),
        Command::FloorRecv(args) => floor::recv_main(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The orchestrating process: one current-thread runtime (child processes are spawned from this
/// thread, which PR_SET_PDEATHSIG needs). Ctrl-C and SIGTERM drop the run, which kills the
/// server and the workers.
fn parent(common: &CommonArgs, fanout: Option<FanoutArgs>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let report = tokio::select! {
            r = run::run(common, fanout.as_ref()) => r?,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
            _ = term.recv() => anyhow::bail!("terminated"),
        };
        if !common.json {
            print!("{}", run::summary(&report));
        }
        println!("{}", serde_json::to_string(&report)?);
        Ok(())
    })
}
