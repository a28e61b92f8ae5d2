//! `percloud`: the appliance's supervisor. This binary is the only place that reads argv, env
//! and config files, sets up tracing, and wires the library crates together.

mod admin;
mod allocator;
mod appliance;
mod cli;
mod config;
mod control;
mod data_dir;
mod error;
mod password;
mod remote;
mod serve;
mod update;
mod update_gate;
mod update_worker;
mod workers;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use percloud_store::{Store, StoreOptions};
use percloud_web::RecentLogs;

use crate::admin::{Reply, Request};
use crate::cli::{Cli, Command, UserCommand};
use crate::config::Config;
use crate::error::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let recent_logs = init_tracing(matches!(cli.command, Command::Serve(_)));
    match run(cli, recent_logs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("percloud: {error}");
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
        }
    }
}

/// Logs go to stderr and, for the admin page, into a ring of recent lines.
fn init_tracing(daemon: bool) -> RecentLogs {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let default = if daemon { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PERCLOUD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let recent_logs = RecentLogs::new();
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(recent_logs.clone())
        .init();
    recent_logs
}

fn run(cli: Cli, recent_logs: RecentLogs) -> Result<(), CliError> {
    if let Command::Thumbnail { size } = cli.command {
        // Needs no configuration or data folder: stdin to stdout, in a process of its own.
        return Ok(percloud_thumbs::run_helper(size)?);
    }
    if let Command::Update(command) = &cli.command
        && let Some(outcome) = update::build_host(command)
    {
        // The build host has no configuration or data folder.
        return outcome;
    }
    let config = Config::load(cli.config.as_deref())?;
    let data = cli.data.clone().unwrap_or_else(|| config.data.clone());
    let store_options = StoreOptions {
        retention: config.retention.into(),
        ..StoreOptions::default()
    };
    match cli.command {
        Command::Serve(args) => {
            let hostname = args
                .hostname
                .or_else(|| config.discovery.hostname.clone())
                .unwrap_or_else(|| config.hostname.clone());
            config::validate_hostname(&hostname).map_err(CliError::Usage)?;
            let flags_given = !args.listen.is_empty() || !args.tls_listen.is_empty();
            let (listen, tls_listen) = if flags_given {
                (args.listen, args.tls_listen)
            } else {
                (config.listen.clone(), config.tls_listen.clone())
            };
            let update_config = config.update.clone();
            let trial_logs = recent_logs.clone();
            let settings = serve::ServeSettings {
                data,
                listen,
                tls_listen,
                hostname,
                store: store_options,
                recent_logs,
                appliance: config.appliance.clone(),
                remote: config.remote.clone(),
                update: config.update.clone(),
                discovery: serve::DiscoveryChoice {
                    enabled: if args.no_discovery {
                        Some(false)
                    } else {
                        config.discovery.enabled
                    },
                    instance: config.discovery.instance_name.clone(),
                },
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("percloud")
                .build()
                .map_err(|source| CliError::Io {
                    what: "starting the async runtime".into(),
                    source,
                })?;
            let data = settings.data.clone();
            let outcome = runtime.block_on(serve::run(settings));
            if let (Err(error), Some(config)) = (&outcome, &update_config) {
                update::after_failed_start(config, &data, &error.to_string(), &trial_logs.lines());
            }
            outcome
        }
        Command::User(command) => {
            let request = user_request(command)?;
            print_reply(&dispatch(&data, &store_options, request)?);
            Ok(())
        }
        Command::Fsck { repair } => {
            let reply = dispatch(&data, &store_options, Request::Fsck { repair })?;
            print_reply(&reply);
            match reply {
                Reply::Fsck(summary) => {
                    let unrepaired = summary.problems.iter().filter(|p| !p.repaired).count();
                    if unrepaired > 0 {
                        return Err(CliError::FsckProblems(unrepaired));
                    }
                    Ok(())
                }
                _ => Err(CliError::Internal("unexpected reply to fsck".into())),
            }
        }
        Command::Gc => {
            print_reply(&dispatch(&data, &store_options, Request::Gc)?);
            Ok(())
        }
        Command::Update(command) => {
            let request = update::request(command)?;
            match control::send(&data, &request) {
                Ok(reply) => {
                    print_reply(&reply);
                    Ok(())
                }
                Err(control::ControlError::NoDaemon(path)) => Err(CliError::Usage(format!(
                    "no daemon listens on {}: updates go through `percloud serve`",
                    path.display()
                ))),
                Err(error) => Err(error.into()),
            }
        }
        Command::Thumbnail { .. } => Err(CliError::Internal("thumbnail handled above".into())),
    }
}

fn user_request(command: UserCommand) -> Result<Request, CliError> {
    Ok(match command {
        UserCommand::Add { name, quota } => Request::UserAdd {
            password_hash: password::read_new(&format!("Password for {name}"))?,
            name,
            quota,
        },
        UserCommand::Passwd { name } => Request::UserPasswd {
            password_hash: password::read_new(&format!("New password for {name}"))?,
            name,
        },
        UserCommand::List => Request::UserList,
        UserCommand::Quota { name, quota } => Request::UserQuota {
            name,
            quota: quota.0,
        },
        UserCommand::Remove { name } => Request::UserRemove { name },
    })
}

/// Runs an admin request through the daemon serving `data`, or on the store itself when no
/// daemon is running.
fn dispatch(data: &Path, options: &StoreOptions, request: Request) -> Result<Reply, CliError> {
    match control::send(data, &request) {
        Ok(reply) => Ok(reply),
        Err(control::ControlError::NoDaemon(_)) => {
            data_dir::prepare(data)?;
            let store = Store::open(data, options.clone())?;
            Ok(admin::execute(&store, request)?)
        }
        Err(error) => Err(error.into()),
    }
}

fn print_reply(reply: &Reply) {
    println!("{}", admin::render(reply));
}
