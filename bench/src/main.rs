//! `percloud-bench`: the load generator behind `scripts/bench`.
//!
//! Each invocation runs one workload against one WebDAV server and prints one line of JSON:
//! `seconds` (wall time of the timed part), `bytes` moved, and — when given `--pid` — the
//! server's `peak_rss_kib` and `cpu_seconds` during the workload. Uploads are timed to durable
//! data: until the last response arrived *and* `sync -f --sync-dir` returned, so a server that
//! answers before its data is on disk gains nothing. Inputs (random files, small-file
//! contents) are prepared before the clock starts.

mod bulk;
mod http;
mod procstat;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use rand::RngCore;
use serde_json::{Value, json};

use crate::http::{Body, Client, Target};
use crate::procstat::Watch;

#[derive(Debug, Parser)]
#[command(about = "WebDAV workloads for scripts/bench; prints one JSON line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write SIZE random bytes to OUT (not timed; for the upload workloads)
    Gen {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        size: u64,
    },
    /// PUT one file
    Put {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        name: String,
        /// Invert the middle byte on the way (a one-byte edit)
        #[arg(long)]
        flip_middle: bool,
    },
    /// GET one file
    Get {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        name: String,
    },
    /// MKCOL FOLDER (untimed), then PUT COUNT files of SIZE random bytes into it
    PutMany {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        folder: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        size: usize,
        /// Parallel connections (rclone's default --transfers is 4)
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// MKCOL FOLDER (untimed), then upload COUNT files of SIZE random bytes by the Nextcloud
    /// bulk upload (`POST /remote.php/dav/bulk`), BATCH files a request
    BulkMany {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        folder: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        size: usize,
        /// Files per request (the Nextcloud desktop client sends up to 100)
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Parallel connections
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// PROPFIND Depth 1 on FOLDER; checks the number of entries
    Propfind {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        folder: String,
        /// Entries expected in the answer (the folder itself included)
        #[arg(long)]
        expect: Option<usize>,
    },
    /// CLIENTS connections each GET the whole of NAME in ranges of RANGE_SIZE bytes
    Ranges {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        size: u64,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 1 << 20)]
        range_size: u64,
    },
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// Base URL of the WebDAV tree, e.g. http://127.0.0.1:8080/dav/
    #[arg(long)]
    url: String,
    #[arg(long)]
    user: Option<String>,
    #[arg(long, default_value = "")]
    password: String,
    /// CA certificate to trust for https
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Server process to watch (repeatable: all are summed)
    #[arg(long)]
    pid: Vec<u32>,
    /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`)
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    /// The server's data folder: uploads end when `sync -f DIR` returned
    #[arg(long)]
    sync_dir: Option<PathBuf>,
}

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("percloud-bench: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("percloud-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<Value> {
    match command {
        Command::Gen { out, size } => gen_file(&out, size).map(|()| json!({"bytes": size})),
        Command::Put {
            server,
            file,
            name,
            flip_middle,
        } => {
            measured(&server, async |client: &mut Client| {
                let path = client.target().path(&name);
                let body = Body::File {
                    path: &file,
                    flip_middle,
                };
                let resp = client.request("PUT", &path, &[], body, false).await;
                let resp = resp.map_err(|e| format!("PUT {path}: {e}"))?;
                expect_status("PUT", &path, resp.status, &[200, 201, 204])?;
                let bytes = std::fs::metadata(&file).map_err(|e| e.to_string())?.len();
                Ok(json!({"bytes": bytes}))
            })
            .await
        }
        Command::Get { server, name } => {
            measured(&server, async |client: &mut Client| {
                let path = client.target().path(&name);
                let resp = client.request("GET", &path, &[], Body::Empty, false).await;
                let resp = resp.map_err(|e| format!("GET {path}: {e}"))?;
                expect_status("GET", &path, resp.status, &[200])?;
                Ok(json!({"bytes": resp.body_len}))
            })
            .await
        }
        Command::PutMany {
            server,
            folder,
            count,
            size,
            concurrency,
        } => put_many(&server, &folder, count, size, concurrency).await,
        Command::BulkMany {
            server,
            folder,
            count,
            size,
            batch,
            concurrency,
        } => bulk::bulk_many(&server, &folder, count, size, batch, concurrency).await,
        Command::Propfind {
            server,
            folder,
            expect,
        } => {
            measured(&server, async |client: &mut Client| {
                let path = client.target().path(&format!("{folder}/"));
                let headers = [
                    ("Depth", "1"),
                    ("Content-Type", "application/xml; charset=utf-8"),
                ];
                let body = Body::Bytes(PROPFIND_BODY.as_bytes());
                let resp = client
                    .request("PROPFIND", &path, &headers, body, true)
                    .await;
                let resp = resp.map_err(|e| format!("PROPFIND {path}: {e}"))?;
                expect_status("PROPFIND", &path, resp.status, &[207])?;
                let entries = count_responses(&resp.body);
                if let Some(expected) = expect
                    && entries != expected
                {
                    return Err(format!(
                        "PROPFIND {path}: {entries} entries, expected {expected}"
                    ));
                }
                Ok(json!({"bytes": resp.body_len, "entries": entries}))
            })
            .await
        }
        Command::Ranges {
            server,
            name,
            size,
            clients,
            range_size,
        } => ranges(&server, &name, size, clients, range_size).await,
    }
}

/// What a client asks for when it lists a folder (rclone and file managers ask for these).
const PROPFIND_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/><D:getetag/></D:prop></D:propfind>"#;

fn target(server: &ServerArgs) -> Result<Arc<Target>> {
    let credentials = server
        .user
        .as_deref()
        .map(|u| (u, server.password.as_str()));
    Target::new(&server.url, credentials, server.cacert.clone())
        .map(Arc::new)
        .map_err(|e| format!("{}: {e}", server.url))
}

/// Runs `work` on one warm connection (connected before the clock starts), under a watch of
/// the server, syncs the data folder, and merges the measurements into `work`'s JSON.
async fn measured<F>(server: &ServerArgs, work: F) -> Result<Value>
where
    F: AsyncFnOnce(&mut Client) -> Result<Value>,
{
    let mut client = Client::new(target(server)?);
    // Warm up the connection (and the server's credential cache) outside the timing.
    let root = client.target().base.clone();
    client
        .request("OPTIONS", &root, &[], Body::Empty, false)
        .await
        .map_err(|e| format!("OPTIONS {root}: {e}"))?;
    let watch = Watch::start(server.pid.clone(), server.clk_tck);
    let started = Instant::now();
    let mut value = work(&mut client).await?;
    sync_data(server)?;
    let seconds = started.elapsed().as_secs_f64();
    let usage = watch.finish();
    value["seconds"] = json!(seconds);
    value["peak_rss_kib"] = json!(usage.peak_rss_kib);
    value["cpu_seconds"] = json!(usage.cpu_seconds);
    Ok(value)
}

fn sync_data(server: &ServerArgs) -> Result<()> {
    let Some(dir) = &server.sync_dir else {
        return Ok(());
    };
    let status = std::process::Command::new("sync")
        .arg("-f")
        .arg(dir)
        .status()
        .map_err(|e| format!("sync -f {}: {e}", dir.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("sync -f {}: {status}", dir.display()))
    }
}

fn expect_status(method: &str, path: &str, status: u16, ok: &[u16]) -> Result<()> {
    if ok.contains(&status) {
        Ok(())
    } else {
        Err(format!("{method} {path}: status {status}"))
    }
}

fn gen_file(out: &PathBuf, size: u64) -> Result<()> {
    use std::io::Write;
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut file = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut rng = rand::thread_rng();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        rng.fill_bytes(&mut buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| format!("{}: {e}", out.display()))?;
        left -= n as u64;
    }
    file.flush().map_err(|e| format!("{}: {e}", out.display()))
}

/// Untimed: creates FOLDER and opens CONCURRENCY (at least one) warmed keep-alive
/// connections for the small-file workloads.
async fn folder_and_clients(
    target: &Arc<Target>,
    folder: &str,
    concurrency: usize,
) -> Result<Vec<Client>> {
    let path = target.path(&format!("{folder}/"));
    let mut clients = Vec::new();
    for i in 0..concurrency.max(1) {
        let mut client = Client::new(Arc::clone(target));
        let method = if i == 0 { "MKCOL" } else { "OPTIONS" };
        client
            .request(method, &path, &[], Body::Empty, false)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        clients.push(client);
    }
    Ok(clients)
}

async fn put_many(
    server: &ServerArgs,
    folder: &str,
    count: usize,
    size: usize,
    concurrency: usize,
) -> Result<Value> {
    let target = target(server)?;
    let mut contents = vec![0u8; count * size];
    rand::thread_rng().fill_bytes(&mut contents);
    let contents = Arc::new(contents);
    let clients = folder_and_clients(&target, folder, concurrency).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let watch = Watch::start(server.pid.clone(), server.clk_tck);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut client in clients {
        let (next, contents) = (Arc::clone(&next), Arc::clone(&contents));
        let folder = folder.to_string();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<(), String>(());
                }
                let path = client.target().path(&format!("{folder}/f{i:05}.bin"));
                let body = Body::Bytes(&contents[i * size..(i + 1) * size]);
                let resp = client.request("PUT", &path, &[], body, false).await;
                let resp = resp.map_err(|e| format!("PUT {path}: {e}"))?;
                expect_status("PUT", &path, resp.status, &[200, 201, 204])?;
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    sync_data(server)?;
    let seconds = started.elapsed().as_secs_f64();
    let usage = watch.finish();
    Ok(json!({
        "seconds": seconds,
        "bytes": count * size,
        "files": count,
        "peak_rss_kib": usage.peak_rss_kib,
        "cpu_seconds": usage.cpu_seconds,
    }))
}

async fn ranges(
    server: &ServerArgs,
    name: &str,
    size: u64,
    clients: usize,
    range_size: u64,
) -> Result<Value> {
    let target = target(server)?;
    let path = target.path(name);
    let mut warm = Vec::new();
    for _ in 0..clients.max(1) {
        let mut client = Client::new(Arc::clone(&target));
        client
            .request("HEAD", &path, &[], Body::Empty, false)
            .await
            .map_err(|e| format!("HEAD {path}: {e}"))?;
        warm.push(client);
    }
    let watch = Watch::start(server.pid.clone(), server.clk_tck);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut client in warm {
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut total = 0u64;
            let mut start = 0u64;
            while start < size {
                let end = (start + range_size).min(size) - 1;
                let range = format!("bytes={start}-{end}");
                let resp = client
                    .request("GET", &path, &[("Range", &range)], Body::Empty, false)
                    .await
                    .map_err(|e| format!("GET {path} {range}: {e}"))?;
                expect_status("GET", &path, resp.status, &[206])?;
                if resp.body_len != end - start + 1 {
                    return Err(format!("GET {path} {range}: {} bytes", resp.body_len));
                }
                total += resp.body_len;
                start = end + 1;
            }
            Ok::<u64, String>(total)
        }));
    }
    let mut bytes = 0;
    for task in tasks {
        bytes += task.await.map_err(|e| e.to_string())??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let usage = watch.finish();
    Ok(json!({
        "seconds": seconds,
        "bytes": bytes,
        "peak_rss_kib": usage.peak_rss_kib,
        "cpu_seconds": usage.cpu_seconds,
    }))
}

/// Number of `response` elements in a multistatus body, whatever the namespace prefix.
fn count_responses(body: &[u8]) -> usize {
    let text = String::from_utf8_lossy(body);
    text.match_indices("response>")
        .filter(|(i, _)| {
            let before = &text[..*i];
            before
                .rfind('<')
                .is_some_and(|lt| before[lt..].starts_with("</") && !before[lt..].contains(' '))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::count_responses;

    #[test]
    fn counts_responses_with_any_prefix() {
        let body = br#"<D:multistatus xmlns:D="DAV:"><D:response><D:href>/a</D:href></D:response><response><href>/b</href></response><D:responsedescription>x</D:responsedescription></D:multistatus>"#;
        assert_eq!(count_responses(body), 2);
    }
}
