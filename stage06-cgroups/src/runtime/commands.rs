//! Stage 6's subcommands: stage 5's images, plus the containers'.

use clap::Subcommand;

use super::exec::ExecArgs;

/// Stage 5's `pull`, `images`, `import`, `inspect`, `rmi`, and the containers'.
#[derive(Debug, Subcommand)]
pub enum Commands {
    #[command(flatten)]
    Images(stage05_overlay::commands::Commands),
    /// List the running containers (-a: every one).
    Ps {
        /// Every container, also those that exited.
        #[arg(short, long)]
        all: bool,
        /// Only the ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show what a detached container printed (-f: and follow it until it exits).
    Logs {
        /// Keep showing new output until the container exits.
        #[arg(short, long)]
        follow: bool,
        /// The container: a name, an id, or the start of an id.
        container: String,
    },
    /// Run a command in a running container (its namespaces and cgroup).
    Exec(ExecArgs),
    /// Stop containers: SIGTERM to PID 1, SIGKILL after a timeout.
    Stop {
        /// Seconds to wait after SIGTERM before SIGKILL.
        #[arg(short = 't', long = "time", value_name = "SECS", default_value_t = 10)]
        time: u64,
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to containers' PID 1.
    Kill {
        /// The signal: a name (TERM, SIGHUP) or a number.
        #[arg(
            short = 's',
            long = "signal",
            value_name = "SIG",
            default_value = "KILL"
        )]
        signal: String,
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Wait until containers exit, and print their exit codes.
    Wait {
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Show running containers' CPU, memory and tasks, from their cgroups.
    Stats {
        /// Print the figures once instead of every second.
        #[arg(long)]
        no_stream: bool,
        /// The containers (default: every running one).
        containers: Vec<String>,
    },
    /// Remove containers, and everything they made on the host.
    Rm {
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
        /// The containers.
        #[arg(required = true)]
        containers: Vec<String>,
    },
}

/// Runs `command`; returns the exit code.
pub fn run(command: Commands) -> i32 {
    let result = match command {
        Commands::Images(command) => return stage05_overlay::commands::run(command),
        Commands::Ps { all, quiet } => super::ps::ps(all, quiet),
        Commands::Logs { follow, container } => super::logs::logs(&container, follow),
        Commands::Exec(args) => super::exec::exec(args),
        Commands::Stop { time, containers } => return super::stop::stop(&containers, time),
        Commands::Kill { signal, containers } => return super::stop::kill(&containers, &signal),
        Commands::Wait { containers } => return super::stop::wait(&containers),
        Commands::Rm { force, containers } => return super::rm::rm(&containers, force),
        Commands::Stats {
            no_stream,
            containers,
        } => super::top::stats(&containers, no_stream),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}: {err:#}", common::program::name());
            common::exit::code_of(&err)
        }
    }
}
