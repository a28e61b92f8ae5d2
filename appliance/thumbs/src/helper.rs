//! The helper process that makes one thumbnail: its own side ([`run_helper`]) and the daemon's
//! ([`generate`]: spawn, feed, read, time out, kill).

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rlimit::Resource;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::ThumbError;
use crate::render::render;

/// Address space the helper allows itself: the decoder's 256 MiB of pixels, the 64 MiB input,
/// the thumbnail and the program's own mappings, with room to spare.
const HELPER_ADDRESS_SPACE: u64 = 512 << 20;
/// CPU seconds the helper allows itself (SIGXCPU, then SIGKILL one second later).
const HELPER_CPU_SECONDS: u64 = 20;
/// Bytes of the helper's stderr kept for the log.
const STDERR_KEPT: u64 = 2048;

/// How to start the helper: a program and its first arguments; `--size S` is appended.
#[derive(Debug, Clone)]
pub struct HelperCommand {
    program: PathBuf,
    args: Vec<OsString>,
}

impl HelperCommand {
    pub fn new<I, S>(program: impl Into<PathBuf>, args: I) -> HelperCommand
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        HelperCommand {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// The running executable with `args`: the daemon's `HelperCommand::current_exe(["thumbnail"])`.
    pub fn current_exe<I, S>(args: I) -> Result<HelperCommand, ThumbError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let program = std::env::current_exe().map_err(ThumbError::CurrentExe)?;
        Ok(HelperCommand::new(program, args))
    }
}

/// The helper's side (`percloud thumbnail --size S`): lowers this process's resource limits,
/// then renders stdin to stdout. Meant to run in a process of its own, never in the daemon.
pub fn run_helper(size: u32) -> Result<(), ThumbError> {
    lower_limits().map_err(ThumbError::LowerLimits)?;
    let mut jpeg = Vec::new();
    render(&mut io::stdin().lock(), size, &mut jpeg)?;
    let mut stdout = io::stdout().lock();
    stdout.write_all(&jpeg).map_err(ThumbError::WriteOutput)?;
    stdout.flush().map_err(ThumbError::WriteOutput)
}

fn lower_limits() -> io::Result<()> {
    lower(Resource::AS, HELPER_ADDRESS_SPACE, HELPER_ADDRESS_SPACE)?;
    lower(Resource::CPU, HELPER_CPU_SECONDS, HELPER_CPU_SECONDS + 1)?;
    // No core dump of a crash.
    lower(Resource::CORE, 0, 0)
}

/// Sets soft and hard limits no higher than they already are (lowering is always allowed).
fn lower(resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
    let (current_soft, current_hard) = rlimit::getrlimit(resource)?;
    let hard = hard.min(current_hard);
    let soft = soft.min(current_soft).min(hard);
    rlimit::setrlimit(resource, soft, hard)
}

/// Bounds on one helper run, as seen from the daemon.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunLimits {
    pub timeout: Duration,
    pub max_input: u64,
    pub max_output: u64,
}

/// Opens the image's content; runs on a blocking thread.
pub(crate) type OpenContent =
    Box<dyn FnOnce() -> io::Result<Box<dyn Read + Send>> + Send + 'static>;

/// Runs the helper once: feeds it the content, returns its JPEG. The helper is killed when it
/// runs past the timeout, writes too much, or this future is dropped.
pub(crate) async fn generate(
    helper: &HelperCommand,
    size: u32,
    open: OpenContent,
    limits: RunLimits,
) -> Result<Vec<u8>, ThumbError> {
    let mut child = Command::new(&helper.program)
        .args(&helper.args)
        .arg("--size")
        .arg(size.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ThumbError::SpawnHelper {
            program: helper.program.clone(),
            source,
        })?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(ThumbError::HelperIo(io::Error::other(
            "helper pipes missing",
        )));
    };
    let feeding = tokio::spawn(feed(open, stdin, limits.max_input));
    let complaint = tokio::spawn(read_stderr(stderr));

    let ran = tokio::time::timeout(limits.timeout, collect(&mut child, stdout, limits)).await;
    let result = match ran {
        Ok(result) => result,
        Err(_) => {
            let _ = child.kill().await;
            Err(ThumbError::HelperTimeout(limits.timeout))
        }
    };
    if result.is_err() {
        // Killing is idempotent; it also covers the output cap. A dropped `child` would too.
        let _ = child.start_kill();
    }
    // A content error explains any failure of the helper (it saw a truncated image).
    let fed = tokio::time::timeout(Duration::from_secs(1), feeding).await;
    if let Ok(Ok(Err(content_error))) = fed {
        return Err(content_error);
    }
    match result {
        Err(ThumbError::HelperFailed { status, .. }) => {
            let stderr = match tokio::time::timeout(Duration::from_millis(500), complaint).await {
                Ok(Ok(text)) => text,
                _ => String::new(),
            };
            Err(ThumbError::HelperFailed { status, stderr })
        }
        other => {
            complaint.abort();
            other
        }
    }
}

/// Reads the helper's output (up to the cap) and waits for it to exit successfully.
async fn collect(
    child: &mut Child,
    stdout: impl AsyncRead + Unpin,
    limits: RunLimits,
) -> Result<Vec<u8>, ThumbError> {
    let mut jpeg = Vec::new();
    stdout
        .take(limits.max_output.saturating_add(1))
        .read_to_end(&mut jpeg)
        .await
        .map_err(ThumbError::HelperIo)?;
    if jpeg.len() as u64 > limits.max_output {
        return Err(ThumbError::OutputTooLarge {
            limit: limits.max_output,
        });
    }
    let status = child.wait().await.map_err(ThumbError::HelperIo)?;
    if !status.success() {
        return Err(ThumbError::HelperFailed {
            status,
            stderr: String::new(),
        });
    }
    if !(jpeg.starts_with(&[0xff, 0xd8, 0xff]) && jpeg.ends_with(&[0xff, 0xd9])) {
        return Err(ThumbError::NotJpeg);
    }
    Ok(jpeg)
}

/// Copies at most `max_input + 1` bytes of content into the helper's stdin (one byte more than
/// it accepts, so it notices). Content is read on a blocking thread; the helper closing its
/// stdin early is not an error here (its exit status tells why).
async fn feed(
    open: OpenContent,
    mut stdin: tokio::process::ChildStdin,
    max_input: u64,
) -> Result<(), ThumbError> {
    let (chunks, mut received) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let reader = tokio::task::spawn_blocking(move || -> Result<(), ThumbError> {
        let mut content = open().map_err(ThumbError::OpenContent)?;
        let mut remaining = max_input.saturating_add(1);
        while remaining > 0 {
            let want = usize::try_from(remaining.min(64 << 10)).unwrap_or(64 << 10);
            let mut chunk = vec![0; want];
            let read = match content.read(&mut chunk) {
                Ok(0) => break,
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ThumbError::ReadContent(e)),
            };
            chunk.truncate(read);
            remaining -= read as u64;
            if chunks.blocking_send(chunk).is_err() {
                break; // the helper stopped reading
            }
        }
        Ok(())
    });
    while let Some(chunk) = received.recv().await {
        if stdin.write_all(&chunk).await.is_err() {
            break;
        }
    }
    drop(received);
    drop(stdin);
    reader
        .await
        .map_err(|e| ThumbError::ReadContent(io::Error::other(e)))?
}

async fn read_stderr(stderr: impl AsyncRead + Unpin) -> String {
    let mut kept = Vec::new();
    let mut stderr = stderr;
    let _ = (&mut stderr).take(STDERR_KEPT).read_to_end(&mut kept).await;
    let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
    String::from_utf8_lossy(&kept).trim().to_owned()
}
