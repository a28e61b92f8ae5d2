//! The [`Thumbnailer`] end to end, with real and fake helper processes.
//!
//! This test has its own `main` (`harness = false`) so that its executable doubles as the real
//! helper: `<this test> thumbnail --size S` runs [`run_helper`], as `percloud thumbnail` does.
//! Fake helpers are `/bin/sh -c SCRIPT` that hang, crash, fail or write garbage.

use std::io::{self, Cursor, Read};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use percloud_thumbs::{
    HelperCommand, ThumbOptions, ThumbOutcome, ThumbStatus, Thumbnailer, run_helper,
};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("thumbnail") {
        let size = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
        return match run_helper(size) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("helper: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
    let tests: [(&str, fn()); 7] = [
        ("real_helper_makes_and_caches", real_helper_makes_and_caches),
        (
            "hostile_image_is_unsupported_once",
            hostile_image_is_unsupported_once,
        ),
        (
            "failing_helpers_are_not_retried",
            failing_helpers_are_not_retried,
        ),
        ("hung_helper_is_killed", hung_helper_is_killed),
        ("content_errors_are_retried", content_errors_are_retried),
        (
            "one_job_per_key_and_bounded_queue",
            one_job_per_key_and_bounded_queue,
        ),
        (
            "shutdown_kills_the_running_helper",
            shutdown_kills_the_running_helper,
        ),
    ];
    let mut failed = 0;
    for (name, test) in tests {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn real_helper() -> HelperCommand {
    HelperCommand::current_exe(["thumbnail"]).expect("current exe")
}

fn sh(script: &str) -> HelperCommand {
    HelperCommand::new("/bin/sh", ["-c", script, "fake-helper"])
}

fn options() -> ThumbOptions {
    ThumbOptions {
        timeout: Duration::from_secs(10),
        ..ThumbOptions::default()
    }
}

type Opener = Box<dyn FnOnce() -> io::Result<Box<dyn Read + Send>> + Send>;

fn content(bytes: Vec<u8>) -> Opener {
    Box::new(move || Ok(Box::new(Cursor::new(bytes)) as Box<dyn Read + Send>))
}

fn photo(width: u32, height: u32) -> Vec<u8> {
    let image = DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    }));
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg)
        .expect("encode");
    bytes
}

/// Asks until the answer is not `Pending` (a worker runs meanwhile).
async fn wait_for(thumbs: &Thumbnailer, hash: [u8; 32], size: u32, bytes: &[u8]) -> ThumbOutcome {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let outcome = thumbs.get(hash, size, content(bytes.to_vec())).await;
        if outcome != ThumbOutcome::Pending || Instant::now() > deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `thumbs`' workers in the background for the duration of `body`.
fn with_workers<F>(thumbs: &Thumbnailer, body: impl FnOnce(Thumbnailer) -> F)
where
    F: std::future::Future<Output = ()>,
{
    runtime().block_on(async {
        let stop = CancellationToken::new();
        let worker = tokio::spawn({
            let thumbs = thumbs.clone();
            let stop = stop.clone();
            async move { thumbs.run(stop).await }
        });
        body(thumbs.clone()).await;
        stop.cancel();
        worker.await.expect("worker");
    });
}

fn real_helper_makes_and_caches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("thumbs");
    let thumbs = Thumbnailer::with_options(cache.clone(), real_helper(), options()).expect("new");
    let jpeg = photo(800, 600);
    with_workers(&thumbs, |thumbs| async move {
        for (size, expected) in [(256, (256, 192)), (1024, (800, 600))] {
            let ThumbOutcome::Ready(bytes) = wait_for(&thumbs, [7; 32], size, &jpeg).await else {
                panic!("no thumbnail at {size}");
            };
            let thumb =
                image::load_from_memory_with_format(&bytes, ImageFormat::Jpeg).expect("a JPEG");
            assert_eq!((thumb.width(), thumb.height()), expected);
        }
        assert_eq!(thumbs.status().made, 2);
        // Not a size we serve.
        let odd = thumbs.get([7; 32], 300, content(jpeg.clone())).await;
        assert_eq!(odd, ThumbOutcome::Unsupported);
    });
    let hex = "07".repeat(32);
    assert!(cache.join("07").join(format!("{hex}-256.jpg")).is_file());
    // A new thumbnailer (a restarted daemon), no workers: straight from the cache, no reading.
    let again = Thumbnailer::new(cache, sh("exit 1")).expect("reopen");
    let outcome = runtime().block_on(again.get([7; 32], 256, || {
        Err(io::Error::other(
            "content must not be read for a cached thumbnail",
        ))
    }));
    assert!(matches!(outcome, ThumbOutcome::Ready(_)));
}

fn hostile_image_is_unsupported_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let thumbs = Thumbnailer::with_options(dir.path().join("thumbs"), real_helper(), options())
        .expect("new");
    // A PNG claiming 100,000 × 100,000 pixels, then garbage with a JPEG's magic.
    let mut bomb =
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\x01\x86\xa0\0\x01\x86\xa0\x08\x02\0\0\0".to_vec();
    bomb.extend_from_slice(&[0; 4096]);
    let mut fake_jpeg = vec![0xff, 0xd8, 0xff, 0xe0];
    fake_jpeg.extend((0..50_000u32).map(|i| (i * 31 % 256) as u8));
    with_workers(&thumbs, |thumbs| async move {
        for (hash, bytes) in [([1; 32], bomb), ([2; 32], fake_jpeg)] {
            assert_eq!(
                wait_for(&thumbs, hash, 256, &bytes).await,
                ThumbOutcome::Unsupported
            );
            // Any size of the same content: no second helper run.
            assert_eq!(
                wait_for(&thumbs, hash, 1024, &bytes).await,
                ThumbOutcome::Unsupported
            );
        }
        assert_eq!(thumbs.status().failed, 2);
    });
}

/// Helpers that fail in every way; each content is tried once (the script counts its runs).
fn failing_helpers_are_not_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runs = dir.path().join("runs");
    let scripts = [
        "cat >/dev/null; echo 'decoder exploded' >&2; exit 3",
        "cat >/dev/null; kill -SEGV $$",
        "cat >/dev/null; echo 'not a jpeg'",
        "exec head -c 20000000 /dev/zero",
        "exit 0",
    ];
    for (index, script) in scripts.into_iter().enumerate() {
        let counted = format!("echo run >> '{}'; {script}", runs.display());
        let options = ThumbOptions {
            max_output: 1 << 20,
            ..options()
        };
        let cache = dir.path().join(format!("thumbs{index}"));
        let thumbs = Thumbnailer::with_options(cache, sh(&counted), options).expect("new");
        let jpeg = photo(64, 64);
        with_workers(&thumbs, |thumbs| async move {
            for _ in 0..3 {
                let outcome = wait_for(&thumbs, [3; 32], 256, &jpeg).await;
                assert_eq!(outcome, ThumbOutcome::Unsupported, "{script}");
            }
            assert_eq!(
                thumbs.status(),
                ThumbStatus {
                    failed: 1,
                    ..ThumbStatus::default()
                },
                "{script}"
            );
        });
        let count = std::fs::read_to_string(&runs)
            .expect("runs")
            .lines()
            .count();
        assert_eq!(count, index + 1, "{script}: helper runs");
    }
}

fn hung_helper_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = ThumbOptions {
        timeout: Duration::from_millis(500),
        ..options()
    };
    // `exec` so that the process killed is the one holding the pipes.
    let thumbs =
        Thumbnailer::with_options(dir.path().join("t"), sh("exec sleep 60"), options).expect("new");
    with_workers(&thumbs, |thumbs| async move {
        let started = Instant::now();
        let outcome = wait_for(&thumbs, [4; 32], 256, &photo(64, 64)).await;
        assert_eq!(outcome, ThumbOutcome::Unsupported);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    });
    let marker = std::fs::read_to_string(failure_marker(&dir.path().join("t"), 4)).expect("marker");
    assert!(marker.contains("killed"), "{marker}");
}

fn failure_marker(cache: &Path, byte: u8) -> std::path::PathBuf {
    let hex = format!("{byte:02x}").repeat(32);
    cache.join(&hex[..2]).join(format!("{hex}.failed"))
}

/// The store failing to give the content is not the image's fault: no marker, asked again later.
fn content_errors_are_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let thumbs =
        Thumbnailer::with_options(dir.path().join("t"), real_helper(), options()).expect("new");
    with_workers(&thumbs, |thumbs| async move {
        let outcome = thumbs
            .get([5; 32], 256, || Err(io::Error::other("disk unplugged")))
            .await;
        assert_eq!(outcome, ThumbOutcome::Pending);
        let deadline = Instant::now() + Duration::from_secs(20);
        while thumbs.status().errors == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(thumbs.status().errors, 1);
        assert_eq!(thumbs.status().failed, 0);
        let outcome = wait_for(&thumbs, [5; 32], 256, &photo(64, 64)).await;
        assert!(matches!(outcome, ThumbOutcome::Ready(_)));
    });
}

fn one_job_per_key_and_bounded_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = ThumbOptions {
        queue_capacity: 3,
        ..options()
    };
    let thumbs =
        Thumbnailer::with_options(dir.path().join("t"), real_helper(), options).expect("new");
    let rt = runtime();
    // No workers yet: jobs accumulate.
    rt.block_on(async {
        for _ in 0..5 {
            let outcome = thumbs.get([6; 32], 256, content(photo(32, 32))).await;
            assert_eq!(outcome, ThumbOutcome::Pending);
        }
        assert_eq!(thumbs.status().pending, 1);
        for byte in 10..20 {
            thumbs.get([byte; 32], 256, content(photo(32, 32))).await;
        }
        assert_eq!(thumbs.status().pending, 3);
    });
    drop(rt);
    with_workers(&thumbs, |thumbs| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while thumbs.status().pending > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(thumbs.status().made, 3);
    });
}

fn shutdown_kills_the_running_helper() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > '{}'; exec sleep 60", pid_file.display());
    let thumbs =
        Thumbnailer::with_options(dir.path().join("t"), sh(&script), options()).expect("new");
    let started = Instant::now();
    with_workers(&thumbs, |thumbs| async move {
        thumbs.get([8; 32], 256, content(photo(16, 16))).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pid_file.exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid = std::fs::read_to_string(dir.path().join("pid")).expect("pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{}", pid.trim())).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Gone, or at worst a zombie about to be reaped.
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap_or_default();
    assert!(status.is_empty() || status.contains("zombie"), "{status}");
}
