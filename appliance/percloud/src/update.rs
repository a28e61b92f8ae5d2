//! `percloud update …`: the build host's commands (keygen, pack, channel), which need no
//! configuration or data folder, and the box's (check, install, status), which go through
//! the daemon's control socket (`update_worker.rs` does the work).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use percloud_update::bundle::{self, PackRequest};
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
            out,
        } => pack(
            key,
            PackRequest {
                board: board.clone(),
                version: version.clone(),
                min_version: min_version.clone(),
                created: source_date_epoch(),
                payload: payload.clone(),
                out: out.clone(),
            },
        ),
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

fn pack(key: &Path, request: PackRequest) -> Result<(), CliError> {
    let key = SigningKey::load(key)?;
    let manifest = bundle::pack(&key, &request)?;
    println!(
        "{}: {} {} ({} bytes, {} compressed), signed by {}",
        request.out.display(),
        manifest.board,
        manifest.version,
        manifest.payload.size,
        manifest.payload.compressed_size,
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
