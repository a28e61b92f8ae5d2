//! `percloud update …`: the build host's commands (keygen, pack, channel), which need no
//! configuration or data folder, and the box's (check, install, status), which go through
//! the daemon's control socket (`update_worker.rs` does the work).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use percloud_update::bundle::{self, BootImages, PackRequest};
use percloud_update::keys::{self, SigningKey};
use percloud_update::{UpdateError, channel};

use crate::cli::UpdateCommand;
use crate::error::CliError;

/// Runs a build-host command; `None` when `command` is one for the box.
pub fn build_host(command: &UpdateCommand) -> Option<Result<(), CliError>> {
    Some(match command {
        UpdateCommand::Keygen { out } => keygen(out),
        UpdateCommand::Pack {
            key,
            board,
            version,
            min_version,
            payload,
            boot_payload,
            out,
        } => boot_images(boot_payload).and_then(|boot| {
            pack(
                key,
                PackRequest {
                    board: board.clone(),
                    version: version.clone(),
                    min_version: min_version.clone(),
                    created: source_date_epoch(),
                    payload: payload.clone(),
                    boot,
                    out: out.clone(),
                },
            )
        }),
        UpdateCommand::Channel { out, bundles } => write_channel(out, bundles),
        _ => return None,
    })
}

fn keygen(out: &Path) -> Result<(), CliError> {
    let id = keys::generate(out)?;
    println!(
        "key {id} written to {}; keyring entry in {}",
        out.display(),
        keys::public_path(out).display()
    );
    Ok(())
}

/// `--boot-payload a=FILE --boot-payload b=FILE`, or none.
fn boot_images(args: &[String]) -> Result<Option<BootImages>, CliError> {
    if args.is_empty() {
        return Ok(None);
    }
    let (mut a, mut b) = (None, None);
    for arg in args {
        let (slot, file) = match arg.split_once('=') {
            Some(("a", file)) => (&mut a, file),
            Some(("b", file)) => (&mut b, file),
            _ => {
                return Err(CliError::Usage(format!(
                    "--boot-payload {arg}: expected a=FILE or b=FILE"
                )));
            }
        };
        if slot.replace(std::path::PathBuf::from(file)).is_some() {
            return Err(CliError::Usage(format!(
                "--boot-payload {arg}: given twice"
            )));
        }
    }
    match (a, b) {
        (Some(a), Some(b)) => Ok(Some(BootImages { a, b })),
        _ => Err(CliError::Usage(
            "--boot-payload needs both a=FILE and b=FILE (one boot partition per slot)".into(),
        )),
    }
}

fn pack(key: &Path, request: PackRequest) -> Result<(), CliError> {
    let key = SigningKey::load(key)?;
    let manifest = bundle::pack(&key, &request)?;
    let payloads: Vec<String> = manifest
        .payloads
        .iter()
        .map(|p| {
            format!(
                "{}{} {} bytes, {} compressed",
                p.role.as_str(),
                p.slot.map(|s| format!(" {s}")).unwrap_or_default(),
                p.size,
                p.compressed_size
            )
        })
        .collect();
    println!(
        "{}: {} {} ({}), signed by {}",
        request.out.display(),
        manifest.board,
        manifest.version,
        payloads.join("; "),
        key.key_id()
    );
    Ok(())
}

fn write_channel(out: &Path, bundles: &[std::path::PathBuf]) -> Result<(), CliError> {
    let paths: Vec<&Path> = bundles.iter().map(|p| p.as_path()).collect();
    let index = channel::build(out, &paths)?;
    let mut json = serde_json::to_vec_pretty(&index)
        .map_err(|e| CliError::Internal(format!("encoding the index: {e}")))?;
    json.push(b'\n');
    let temp = out.with_extension("json.tmp");
    std::fs::write(&temp, &json)
        .and_then(|()| std::fs::rename(&temp, out))
        .map_err(|source| CliError::Io {
            what: format!("writing {}", out.display()),
            source,
        })?;
    println!("{}: {} bundle(s)", out.display(), index.bundles.len());
    Ok(())
}

/// `SOURCE_DATE_EPOCH` (reproducible builds), else now.
fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        })
}

impl From<UpdateError> for CliError {
    fn from(error: UpdateError) -> Self {
        CliError::Update(error)
    }
}

/// The daemon's answer to an update request from the control socket.
pub async fn answer(
    updates: &crate::update_worker::Updates,
    request: crate::admin::Request,
) -> Result<crate::admin::Reply, String> {
    use crate::admin::{Reply, Request};
    match request {
        Request::UpdateStatus => Ok(Reply::UpdateStatus {
            status: updates.status_json(),
        }),
        Request::UpdateCheck => {
            let checked = updates.check().await.map_err(|e| e.to_string())?;
            Ok(Reply::Done {
                message: match checked.available() {
                    Some(entry) => format!(
                        "{} is available ({} bytes): percloud update install {}",
                        entry.version, entry.size, entry.url
                    ),
                    None => "this box runs the newest version its channel offers".into(),
                },
            })
        }
        Request::UpdateInstall { source, force } => {
            let pending = updates.install_now(source, force).await?;
            Ok(Reply::Done {
                message: format!(
                    "{} written to slot {}; restarting into it for a trial",
                    pending.to_version, pending.to_slot
                ),
            })
        }
        _ => Err("not an update request".into()),
    }
}

/// `percloud update status` for people.
pub fn render_status(status: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_owned();
    let running = &status["running"];
    let mut out = format!(
        "running {} on slot {} ({}, boot: {}, {})",
        text(&running["version"]),
        text(&running["slot"]),
        text(&running["board"]),
        text(&status["boot"]["backend"]),
        text(&status["boot"]["kind"]),
    );
    if let Some(report) = status["report"].as_str() {
        out.push_str(&format!("\n{report}"));
    }
    let progress = &status["progress"];
    match progress["phase"].as_str() {
        None | Some("idle") => {}
        Some(phase @ ("failed" | "reboot")) => {
            out.push_str(&format!("\n{phase}: {}", text(&progress["message"])));
        }
        Some(phase) => out.push_str(&format!(
            "\nnow: {phase}, {} of {} bytes",
            progress["done"],
            progress["total"]
                .as_u64()
                .map_or("?".into(), |t| t.to_string())
        )),
    }
    if let Some(pending) = status["pending"].as_object() {
        out.push_str(&format!(
            "\npending: {} in slot {}, waiting for its trial boot",
            pending["to_version"].as_str().unwrap_or("?"),
            pending["to_slot"].as_str().unwrap_or("?")
        ));
    }
    let history = status["history"].as_array().cloned().unwrap_or_default();
    if history.is_empty() {
        out.push_str("\nno updates yet");
    }
    for entry in history {
        out.push_str(&format!(
            "\n{}  {} -> {}  {}: {}",
            utc(entry["at"].as_u64().unwrap_or(0)),
            text(&entry["from_version"]),
            text(&entry["to_version"]),
            text(&entry["outcome"]),
            text(&entry["message"])
        ));
        for line in entry["logs"].as_array().into_iter().flatten() {
            out.push_str(&format!("\n    {}", line.as_str().unwrap_or("")));
        }
    }
    out
}

/// The control request of a box command.
pub fn request(command: UpdateCommand) -> Result<crate::admin::Request, CliError> {
    use crate::admin::Request;
    Ok(match command {
        UpdateCommand::Check => Request::UpdateCheck,
        UpdateCommand::Status => Request::UpdateStatus,
        UpdateCommand::Install { source, force } => {
            let source = if source.starts_with("https://") || source.starts_with("http://") {
                source
            } else {
                // The daemon may run elsewhere in the file system's view: send a full path.
                std::fs::canonicalize(&source)
                    .map_err(|e| CliError::Usage(format!("{source}: {e}")))?
                    .display()
                    .to_string()
            };
            Request::UpdateInstall { source, force }
        }
        UpdateCommand::Keygen { .. }
        | UpdateCommand::Pack { .. }
        | UpdateCommand::Channel { .. } => {
            return Err(CliError::Internal(
                "a build-host command reached the box".into(),
            ));
        }
    })
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc(secs: u64) -> String {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0)) else {
        return secs.to_string();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The daemon stopped with an error: if this was a trial boot, leave the reason and the last
/// log lines where the previous system will find them.
pub fn after_failed_start(
    config: &crate::config::UpdateConfig,
    data: &Path,
    error: &str,
    logs: &[String],
) {
    let recorded = crate::update_worker::backend(config)
        .map_err(|e| e.to_string())
        .and_then(|boot| boot.running_slot().map_err(|e| e.to_string()))
        .and_then(|running| {
            let states = percloud_update::state::StateDir::new(data);
            percloud_update::gate::record_start_failure(&states, running, error, logs)
                .map_err(|e| e.to_string())
        });
    if let Err(reason) = recorded {
        eprintln!("percloud: recording the failed start for the update history: {reason}");
    }
}

/// The running system's version as the console, discovery and the first-boot marker show
/// it: the image's release file, else the version this binary was built as.
pub fn running_version() -> String {
    percloud_update::release::Release::read(
        Path::new(percloud_update::release::RELEASE_FILE),
        env!("CARGO_PKG_VERSION"),
    )
    .version
    .to_string()
}
