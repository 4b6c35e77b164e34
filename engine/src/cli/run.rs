//! `delinea run SCRIPT.rhai`: a protocol written as a Rhai script.

use std::path::PathBuf;
use std::time::Duration;

use delinea::device::{self, DeviceRequest};
use delinea::script::protocol::{self, ProtocolOptions};

use super::{ExitStatus, Global};

/// Run a whole protocol written as a Rhai script (scripts/README.md).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The script.
    #[arg(required_unless_present = "api")]
    script: Option<PathBuf>,
    /// Print the scripting API (every registered function, its signature and doc comment) as
    /// the Markdown table of scripts/README.md, and exit.
    #[arg(long)]
    api: bool,
    /// A `params` entry of the script, `key=value` (numbers and true/false are parsed);
    /// repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// A folder the script may read and write (repeatable); it can touch no other file.
    #[arg(long = "allow", value_name = "DIR")]
    allow: Vec<PathBuf>,
    /// Compute device of the script's models: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: DeviceRequest,
    /// Seed of the script's random numbers and selections.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Wall-clock limit of the whole run, seconds.
    #[arg(long, default_value_t = 86_400, value_name = "SECS")]
    deadline: u64,
    /// Only compile the script (syntax, undefined variables) and exit.
    #[arg(long)]
    check: bool,
}

pub fn run(args: Args, global: Global) -> anyhow::Result<ExitStatus> {
    if args.api {
        println!("| function | what it does, with an example |\n|---|---|");
        for (signature, doc) in delinea::script::api::signatures() {
            println!("| `{signature}` | {} |", doc.replace('|', "\\|"));
        }
        return Ok(ExitStatus::Success);
    }
    let Some(script) = args.script.clone() else {
        anyhow::bail!("give the script to run");
    };
    if args.check {
        protocol::check(&script, &args.sets)?;
        if !global.quiet {
            println!("{}: compiles", script.display());
        }
        return Ok(ExitStatus::Success);
    }
    let options = ProtocolOptions {
        script,
        sets: args.sets.clone(),
        allow: args.allow.clone(),
        base: std::env::current_dir()?,
        device: device::resolve(args.device)?,
        seed: args.seed,
        deadline: Duration::from_secs(args.deadline),
    };
    let quiet = global.quiet;
    let value = protocol::run(&options, move |line| {
        if !quiet {
            eprintln!("script: {line}");
        }
    })?;
    if !value.is_unit() && !quiet {
        match value.clone().into_string() {
            Ok(text) => print!("{text}{}", if text.ends_with('\n') { "" } else { "\n" }),
            Err(_) => println!("{value}"),
        }
    }
    Ok(ExitStatus::Success)
}
