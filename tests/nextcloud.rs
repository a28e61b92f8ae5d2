//! The Nextcloud protocol with the real clients: Debian's `nextcloudcmd` keeps two "devices"
//! in sync through the box over loopback HTTP and over HTTPS trusting only the box's CA;
//! large files go up by chunking v2, an interrupted upload resumes without sending its chunks
//! again, an edit on both devices keeps both versions, a 10,000-file tree re-syncs by fetching
//! only what changed; `owncloudcmd` and rclone (`vendor = nextcloud`) sync the same tree;
//! small files go up many to a request by the bulk upload, with their bytes and mtimes.
//!
//! Requests are counted in the daemon's access log (`percloud::access`, one line per request).
//! HTTPS: the client runs in a private mount namespace whose `/etc/ssl/certs` holds only the
//! box's CA (Qt reads trusted roots from there; it ignores `SSL_CERT_FILE`), so these tests
//! run as root and need `unshare`, `mount` and `openssl`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use percloud_system_tests::{
    Daemon, Dav, PASSWORD, Ran, add_user, pick, run_bounded, temp_dir, write_random_file,
};
use rand::SeedableRng;

const USER: &str = "alice";
const SYNC_TIMEOUT: Duration = Duration::from_secs(1200);

/// The box with one account, listening on loopback HTTP and HTTPS.
struct Box {
    daemon: Daemon,
    _data: tempfile::TempDir,
}

fn start() -> Box {
    let data = temp_dir("nextcloud");
    add_user(data.path(), USER, PASSWORD);
    let daemon = Daemon::start_with(data.path(), &["--tls-listen", "127.0.0.1:0"]);
    Box {
        daemon,
        _data: data,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Http,
    Https,
}

/// How a sync client reaches the box.
struct Client {
    program: &'static str,
    url: String,
    /// A folder holding only the box's CA, hashed for OpenSSL, when over HTTPS.
    certs: Option<tempfile::TempDir>,
    /// Extra arguments (owncloudcmd needs an exclude list file).
    extra: Vec<String>,
    _exclude: Option<tempfile::TempDir>,
}

impl Client {
    fn new(program: &'static str, the_box: &Box, transport: Transport) -> Client {
        let (url, certs) = match transport {
            Transport::Http => (format!("http://{}", the_box.daemon.addr), None),
            Transport::Https => {
                let certs = temp_dir("ca");
                std::fs::copy(
                    the_box.daemon.ca_cert(),
                    certs.path().join("percloud-ca.pem"),
                )
                .expect("copying the CA certificate");
                let mut rehash = Command::new("openssl");
                rehash.arg("rehash").arg(certs.path());
                run_bounded(rehash, None, Duration::from_secs(30)).expect_success("openssl rehash");
                (
                    format!("https://{}", the_box.daemon.tls_addr()),
                    Some(certs),
                )
            }
        };
        let mut client = Client {
            program,
            url,
            certs,
            extra: Vec::new(),
            _exclude: None,
        };
        if program == "owncloudcmd" {
            // Debian's owncloudcmd ships no system exclude list and refuses to start without one.
            let dir = temp_dir("exclude");
            let list = dir.path().join("exclude.lst");
            std::fs::write(&list, "").expect("writing an exclude list");
            client.extra = vec!["--exclude".into(), list.display().to_string()];
            client._exclude = Some(dir);
        }
        client
    }

    /// The command syncing `local` with the box, with `env` set and `options` added.
    fn command(&self, local: &Path, env: &[(&str, &str)], options: &[&str]) -> Command {
        let mut args: Vec<String> = vec![
            "--non-interactive".into(),
            "-u".into(),
            USER.into(),
            "-p".into(),
            PASSWORD.into(),
        ];
        args.extend(self.extra.iter().cloned());
        args.extend(options.iter().map(|o| o.to_string()));
        // The last two arguments must be the folder and the URL.
        args.push(local.display().to_string());
        args.push(self.url.clone());
        let mut command = match &self.certs {
            None => {
                let mut c = Command::new(self.program);
                c.args(&args);
                c
            }
            Some(certs) => {
                let mut c = Command::new("unshare");
                c.args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg("mount --bind \"$0\" /etc/ssl/certs && exec \"$@\"")
                    .arg(certs.path())
                    .arg(self.program)
                    .args(&args);
                c
            }
        };
        command.env("HOME", local.parent().unwrap_or(local));
        for (k, v) in env {
            command.env(k, v);
        }
        command
    }

    /// One sync run, which must succeed.
    fn sync(&self, local: &Path, env: &[(&str, &str)]) -> Ran {
        let ran = run_bounded(self.command(local, env, &[]), None, SYNC_TIMEOUT);
        assert_eq!(
            ran.code,
            Some(0),
            "{} failed\n{}",
            self.program,
            tail(&ran, 80)
        );
        ran
    }
}

/// The last `lines` lines of a run's output.
fn tail(ran: &Ran, lines: usize) -> String {
    let all: Vec<&str> = ran.stderr.lines().chain(ran.stdout.lines()).collect();
    let start = all.len().saturating_sub(lines);
    format!(
        "$ {}\nexit {:?}\n{}",
        ran.line,
        ran.code,
        all[start..].join("\n")
    )
}

/// Files the sync clients keep for themselves in a synced folder.
fn is_client_file(name: &str) -> bool {
    name.starts_with(".sync_")
        || name.starts_with("._sync_")
        || name == ".owncloudsync.log"
        || name == ".nextcloudsync.log"
        || name.starts_with(".csync_journal")
}

type Tree = BTreeMap<String, Option<blake3::Hash>>;

/// Every file (with its content hash) and folder under `root`, relative, `/`-separated.
fn local_tree(root: &Path) -> Tree {
    fn walk(root: &Path, rel: &str, out: &mut Tree) {
        let dir = if rel.is_empty() {
            root.to_owned()
        } else {
            root.join(rel)
        };
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let entry = entry.expect("a folder entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            if rel.is_empty() && is_client_file(&name) {
                continue;
            }
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if entry.file_type().expect("file type").is_dir() {
                out.insert(child.clone(), None);
                walk(root, &child, out);
            } else {
                out.insert(child, Some(hash_file(&entry.path())));
            }
        }
    }
    let mut out = Tree::new();
    walk(root, "", &mut out);
    out
}

fn hash_file(path: &Path) -> blake3::Hash {
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).expect("reading a file");
        if n == 0 {
            return hasher.finalize();
        }
        hasher.update(&buf[..n]);
    }
}

/// The tree on the box, read over plain WebDAV (`/dav/`), independent of the client.
fn server_tree(dav: &Dav) -> Tree {
    fn walk(dav: &Dav, rel: &str, out: &mut Tree) {
        let me = format!("/dav/{rel}");
        for href in dav.list(rel) {
            let Some(child) = href.strip_prefix("/dav/") else {
                panic!("unexpected href {href}");
            };
            if href == me || href.trim_end_matches('/') == me.trim_end_matches('/') {
                continue;
            }
            if let Some(folder) = child.strip_suffix('/') {
                out.insert(folder.to_owned(), None);
                walk(dav, &format!("{folder}/"), out);
            } else {
                let body = dav.get_ok(child);
                out.insert(child.to_owned(), Some(blake3::hash(&body)));
            }
        }
    }
    let mut out = Tree::new();
    walk(dav, "", &mut out);
    out
}

fn assert_same(what: &str, a: &Tree, b: &Tree) {
    if a != b {
        let only_a: Vec<_> = a.iter().filter(|(k, v)| b.get(*k) != Some(v)).collect();
        let only_b: Vec<_> = b.iter().filter(|(k, v)| a.get(*k) != Some(v)).collect();
        panic!(
            "{what}: trees differ\nleft only/different: {only_a:#?}\nright only/different: {only_b:#?}"
        );
    }
}

/// The daemon's access log lines since byte `from`, ANSI colours removed.
fn access_lines(daemon: &Daemon, from: usize) -> Vec<String> {
    let log = daemon.log();
    let log = log.get(from..).unwrap_or("");
    log.lines()
        .filter(|l| l.contains("percloud::access"))
        .map(strip_ansi)
        .collect()
}

fn log_len(daemon: &Daemon) -> usize {
    daemon.log().len()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Requests with `method` whose path starts with `prefix`, in `lines`.
fn count(lines: &[String], method: &str, prefix: &str) -> usize {
    let method = format!("method={method} ");
    let path = format!("path=\"{prefix}");
    lines
        .iter()
        .filter(|l| l.contains(&method) && l.contains(&path))
        .count()
}

/// Chunk PUTs the box stored (answered 201).
fn count_stored(lines: &[String]) -> usize {
    let path = format!("path=\"{}", uploads_prefix());
    lines
        .iter()
        .filter(|l| l.contains("method=PUT ") && l.contains(&path) && l.contains("status=201"))
        .count()
}

fn files_prefix() -> String {
    format!("/remote.php/dav/files/{USER}/")
}

fn uploads_prefix() -> String {
    format!("/remote.php/dav/uploads/{USER}/")
}

/// Two devices (folders) synced through the box: every step changes one side, syncs that
/// device then the other, and checks both folders and the server hold the same tree.
fn two_devices(transport: Transport) {
    let the_box = start();
    let client = Client::new("nextcloudcmd", &the_box, transport);
    let dav = the_box.daemon.dav(USER, PASSWORD);
    let home = temp_dir("devices");
    let one = home.path().join("one");
    let two = home.path().join("two");
    std::fs::create_dir_all(&one).expect("device one");
    std::fs::create_dir_all(&two).expect("device two");
    let step = |what: &str, first: &Path, second: &Path| {
        client.sync(first, &[]);
        client.sync(second, &[]);
        // A second pass on the first device picks up what the second one sent meanwhile.
        client.sync(first, &[]);
        let a = local_tree(&one);
        let b = local_tree(&two);
        assert_same(&format!("{what}: device one vs device two"), &a, &b);
        assert_same(
            &format!("{what}: device one vs server"),
            &a,
            &server_tree(&dav),
        );
    };

    let awkward = [
        "plain.txt",
        "with space.txt",
        "été ☃ 日本.txt",
        "one+one.txt",
        "this&that.txt",
        "a#hash.txt",
        "100% done.txt",
        "semi;colon=equals",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for (i, name) in awkward.iter().enumerate() {
        write_random_file(&mut rng, &one.join(name), 100 + 1000 * i as u64);
    }
    let nested = one.join("folder a").join("inner + & # %").join("deepest é");
    std::fs::create_dir_all(&nested).expect("nested folders");
    write_random_file(&mut rng, &nested.join("deep file.bin"), 70_000);
    std::fs::create_dir_all(one.join("folder b")).expect("folder b");
    write_random_file(&mut rng, &one.join("folder b").join("b+1.txt"), 10);
    std::fs::create_dir_all(one.join("empty folder")).expect("empty folder");
    step("create on one", &one, &two);

    // Edit (a different size, so no mtime granularity can hide it), rename, move between
    // folders, a new nested folder: on device two.
    std::fs::write(two.join("plain.txt"), b"edited on device two").expect("edit");
    std::fs::rename(two.join("one+one.txt"), two.join("one+two.txt")).expect("rename");
    std::fs::rename(
        two.join("this&that.txt"),
        two.join("folder b").join("this&that.txt"),
    )
    .expect("move");
    std::fs::create_dir_all(two.join("new # folder").join("sub %")).expect("new folders");
    std::fs::write(two.join("new # folder").join("sub %").join("n.txt"), b"new").expect("file");
    step("edit, rename, move on two", &two, &one);

    // Deletes on device one: a file, a folder with contents; a folder moved into another.
    std::fs::remove_file(one.join("with space.txt")).expect("delete a file");
    std::fs::remove_dir_all(one.join("folder a").join("inner + & # %")).expect("delete a folder");
    std::fs::rename(
        one.join("folder b"),
        one.join("new # folder").join("folder b"),
    )
    .expect("move a folder");
    step("delete and move folders on one", &one, &two);

    // Deletes on device two.
    std::fs::remove_file(two.join("100% done.txt")).expect("delete");
    std::fs::remove_dir_all(two.join("empty folder")).expect("delete an empty folder");
    step("delete on two", &two, &one);
    assert!(!one.join("100% done.txt").exists());
    assert!(one.join("new # folder/folder b/this&that.txt").is_file());
}

#[test]
fn two_devices_over_http() {
    two_devices(Transport::Http);
}

#[test]
fn two_devices_over_https_trusting_the_box_ca() {
    two_devices(Transport::Https);
}

/// The environment that makes the client cut uploads into chunks of `bytes` exactly.
fn chunk_env(bytes: u64) -> Vec<(&'static str, String)> {
    let b = bytes.to_string();
    vec![
        ("OWNCLOUD_CHUNK_SIZE", b.clone()),
        ("OWNCLOUD_MIN_CHUNK_SIZE", b.clone()),
        ("OWNCLOUD_MAX_CHUNK_SIZE", b),
        ("OWNCLOUD_TARGET_CHUNK_UPLOAD_DURATION", "0".to_owned()),
    ]
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn large_file_by_chunking_v2_and_an_interrupted_upload_resumes() {
    let the_box = start();
    let client = Client::new("nextcloudcmd", &the_box, Transport::Http);
    let dav = the_box.daemon.dav(USER, PASSWORD);
    let home = temp_dir("large");
    let local = home.path().join("device");
    std::fs::create_dir_all(&local).expect("device");
    let size: u64 = pick(300, 40) * 1024 * 1024;
    let chunk: u64 = 10 * 1024 * 1024;
    let chunks = size.div_ceil(chunk) as usize;
    let env = chunk_env(chunk);
    let mut rng = rand::rngs::StdRng::seed_from_u64(300);

    // 1. A whole large file, chunk by chunk.
    let big = write_random_file(&mut rng, &local.join("big file.bin"), size);
    let mark = log_len(&the_box.daemon);
    let started = Instant::now();
    client.sync(&local, &env_refs(&env));
    let took = started.elapsed();
    let lines = access_lines(&the_box.daemon, mark);
    assert_eq!(count(&lines, "MKCOL", &uploads_prefix()), 1, "{lines:#?}");
    assert_eq!(count(&lines, "PUT", &uploads_prefix()), chunks);
    assert_eq!(count(&lines, "MOVE", &uploads_prefix()), 1);
    assert_eq!(
        count(&lines, "PUT", &files_prefix()),
        0,
        "no whole-file PUT"
    );
    assert_eq!(blake3::hash(&dav.get_ok("big file.bin")), big);
    eprintln!(
        "chunked upload of {} MiB in {chunks} chunks: {took:.1?} ({:.0} MiB/s)",
        size >> 20,
        (size >> 20) as f64 / took.as_secs_f64()
    );

    // 2. The same file changed: assembled over the old version (the client's MOVE carries an
    // `If` with the ETag it knows), both versions kept.
    let changed = write_random_file(&mut rng, &local.join("big file.bin"), size - 12_345);
    client.sync(&local, &env_refs(&env));
    assert_eq!(blake3::hash(&dav.get_ok("big file.bin")), changed);
    let versions = dav
        .raw(
            "PROPFIND",
            &format!("/remote.php/dav/files/{USER}/big%20file.bin"),
            &[("Depth", "0")],
            br#"<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop><oc:fileid/></d:prop></d:propfind>"#,
        )
        .expect("PROPFIND");
    let text = versions.text();
    let file_id = text
        .split("<oc:fileid>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("a file id");
    let listing = dav
        .raw(
            "PROPFIND",
            &format!("/remote.php/dav/versions/{USER}/versions/{file_id}"),
            &[("Depth", "1")],
            b"",
        )
        .expect("PROPFIND versions");
    assert_eq!(listing.status, 207, "{listing}");
    assert_eq!(
        listing.text().matches("<d:href>").count(),
        2,
        "one older version\n{listing}"
    );

    // 3. Another one, the client killed mid-upload, then run again.
    let second = write_random_file(&mut rng, &local.join("second.bin"), size);
    let mark = log_len(&the_box.daemon);
    let limit = pick("20000", "8000");
    let mut command = client.command(&local, &env_refs(&env), &["--uplimit", limit]);
    let out = home.path().join("killed.log");
    let file = std::fs::File::create(&out).expect("client log");
    command.stdout(Stdio::null()).stderr(file);
    let mut child: Child = command.spawn().expect("starting nextcloudcmd");
    let wanted = (chunks / 3).max(2);
    let reached = percloud_system_tests::wait_until(Duration::from_secs(600), || {
        let lines = access_lines(&the_box.daemon, mark);
        count(&lines, "PUT", &uploads_prefix()) >= wanted
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(reached, "the upload never got {wanted} chunks in");
    let before = access_lines(&the_box.daemon, mark);
    let sent_before = count_stored(&before);
    assert!(
        sent_before < chunks,
        "the client finished before it was killed"
    );

    let mark = log_len(&the_box.daemon);
    resume(&client, &local, &env_refs(&env));
    let after = access_lines(&the_box.daemon, mark);
    // The chunk cut off by the kill was not stored: the server answers 400 once it sees the
    // body end early, which may be logged after this point; only stored chunks count.
    let sent_after = count_stored(&after);
    eprintln!(
        "interrupted after {sent_before} of {chunks} chunks; the second run sent {sent_after}"
    );
    assert_eq!(
        count(&after, "MKCOL", &uploads_prefix()),
        0,
        "the upload was started over\n{after:#?}"
    );
    assert!(
        count(&after, "PROPFIND", &uploads_prefix()) >= 1,
        "the client did not ask which chunks were there"
    );
    assert_eq!(
        sent_before + sent_after,
        chunks,
        "chunks already stored were sent again\n{after:#?}"
    );
    assert_eq!(blake3::hash(&dav.get_ok("second.bin")), second);
}

/// The sync after the kill. nextcloudcmd 3.7.3 now and then fails the first chunk PUT of a
/// resumed upload on its own side ("UnknownNetworkError", no request reaches the box; seen
/// once in five full runs): one more run is allowed, and what both sent is counted.
fn resume(client: &Client, local: &Path, env: &[(&str, &str)]) {
    let ran = run_bounded(client.command(local, env, &[]), None, SYNC_TIMEOUT);
    if ran.code == Some(0) {
        return;
    }
    eprintln!(
        "the resumed sync failed once; running it again\n{}",
        tail(&ran, 15)
    );
    client.sync(local, env);
}

#[test]
fn an_edit_on_both_devices_keeps_both_versions() {
    let the_box = start();
    let client = Client::new("nextcloudcmd", &the_box, Transport::Http);
    let home = temp_dir("conflict");
    let one = home.path().join("one");
    let two = home.path().join("two");
    std::fs::create_dir_all(&one).expect("one");
    std::fs::create_dir_all(&two).expect("two");
    std::fs::write(one.join("notes.txt"), b"the original").expect("write");
    client.sync(&one, &[]);
    client.sync(&two, &[]);
    std::fs::write(one.join("notes.txt"), b"edited on device one").expect("edit one");
    std::fs::write(two.join("notes.txt"), b"edited on device two, longer").expect("edit two");
    client.sync(&one, &[]);
    client.sync(&two, &[]);
    client.sync(&one, &[]);

    let dav = the_box.daemon.dav(USER, PASSWORD);
    assert_eq!(dav.get_ok("notes.txt"), b"edited on device one");
    assert_eq!(
        std::fs::read(two.join("notes.txt")).expect("read"),
        b"edited on device one"
    );
    let conflicts: Vec<PathBuf> = std::fs::read_dir(&two)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().contains("conflicted copy"))
        .collect();
    assert_eq!(
        conflicts.len(),
        1,
        "one conflict copy expected: {conflicts:?}"
    );
    assert_eq!(
        std::fs::read(&conflicts[0]).expect("read"),
        b"edited on device two, longer"
    );
}

#[test]
fn a_big_tree_resyncs_by_fetching_only_what_changed() {
    let the_box = start();
    let client = Client::new("nextcloudcmd", &the_box, Transport::Http);
    let home = temp_dir("tree");
    let one = home.path().join("one");
    let two = home.path().join("two");
    std::fs::create_dir_all(&two).expect("two");
    let files: usize = pick(10_000, 1_000);
    let per_folder = 100;
    for i in 0..files {
        let dir = one.join(format!("folder {:03}", i / per_folder));
        if i % per_folder == 0 {
            std::fs::create_dir_all(&dir).expect("folder");
        }
        std::fs::write(
            dir.join(format!("file {i}.txt")),
            format!("content of file {i}\n"),
        )
        .expect("file");
    }
    let started = Instant::now();
    client.sync(&one, &[]);
    let up = started.elapsed();
    let started = Instant::now();
    client.sync(&two, &[]);
    let down = started.elapsed();
    eprintln!("{files} files: up {up:.1?}, down {down:.1?}");
    assert_same("after the first sync", &local_tree(&one), &local_tree(&two));

    let index = files / 2 + 42;
    let changed = format!("folder {:03}/file {index}.txt", index / per_folder);
    std::fs::write(one.join(&changed), b"changed, and longer than before\n").expect("edit");
    client.sync(&one, &[]);
    let mark = log_len(&the_box.daemon);
    let started = Instant::now();
    client.sync(&two, &[]);
    let resync = started.elapsed();
    let lines = access_lines(&the_box.daemon, mark);
    let gets: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("method=GET") && l.contains(&files_prefix()))
        .collect();
    let propfinds = count(&lines, "PROPFIND", &files_prefix());
    eprintln!(
        "re-sync after one change: {resync:.1?}, {} GET, {propfinds} PROPFIND",
        gets.len()
    );
    assert_eq!(
        gets.len(),
        1,
        "only the changed file is downloaded: {gets:#?}"
    );
    assert!(gets[0].contains("file%20"), "{gets:?}");
    assert!(
        propfinds <= 3,
        "only the changed branch is listed: {propfinds} PROPFINDs"
    );
    assert_same("after one change", &local_tree(&one), &local_tree(&two));
}

#[test]
fn owncloudcmd_and_rclone_sync_the_same_tree() {
    let the_box = start();
    let nextcloud = Client::new("nextcloudcmd", &the_box, Transport::Http);
    let owncloud = Client::new("owncloudcmd", &the_box, Transport::Http);
    let dav = the_box.daemon.dav(USER, PASSWORD);
    let home = temp_dir("others");
    let source = home.path().join("source");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (i, name) in ["a.txt", "b + c & d.txt", "é # 100%.bin"]
        .iter()
        .enumerate()
    {
        let dir = source.join(format!("dir {i}"));
        std::fs::create_dir_all(&dir).expect("dir");
        write_random_file(&mut rng, &dir.join(name), 5_000 * (i as u64 + 1));
    }
    write_random_file(&mut rng, &source.join("large.bin"), 12 * 1024 * 1024);
    nextcloud.sync(&source, &[]);

    // owncloudcmd: the same tree down, a change up.
    let oc = home.path().join("owncloud");
    std::fs::create_dir_all(&oc).expect("oc");
    owncloud.sync(&oc, &[]);
    assert_same(
        "owncloudcmd download",
        &local_tree(&source),
        &local_tree(&oc),
    );
    std::fs::write(oc.join("from owncloud.txt"), b"hello from owncloudcmd").expect("write");
    owncloud.sync(&oc, &[]);
    assert_eq!(dav.get_ok("from owncloud.txt"), b"hello from owncloudcmd");

    // rclone with the nextcloud vendor: down, then a change up, then compare with the server.
    let rc = home.path().join("rclone");
    let obscured = {
        let mut c = Command::new("rclone");
        c.args(["obscure", PASSWORD]);
        run_bounded(c, None, Duration::from_secs(60))
    };
    obscured.expect_success("rclone obscure");
    let remote = format!(
        ":webdav,url='http://{}/remote.php/dav/files/{USER}/',vendor=nextcloud,user={USER},pass='{}':",
        the_box.daemon.addr,
        obscured.stdout.trim()
    );
    let rclone = |args: &[&str]| {
        let mut c = Command::new("rclone");
        c.args(args).env("RCLONE_CONFIG", "/dev/null");
        let ran = run_bounded(c, None, SYNC_TIMEOUT);
        ran.expect_success("rclone");
        ran
    };
    rclone(&["sync", &remote, rc.to_str().expect("utf-8")]);
    let server = server_tree(&dav);
    assert_same("rclone download", &server, &local_tree(&rc));
    std::fs::write(
        rc.join("dir 0").join("from rclone.txt"),
        b"hello from rclone",
    )
    .expect("w");
    std::fs::remove_file(rc.join("dir 1").join("b + c & d.txt")).expect("delete");
    rclone(&["sync", rc.to_str().expect("utf-8"), &remote]);
    let server = server_tree(&dav);
    assert_same("rclone upload", &local_tree(&rc), &server);

    // And the Nextcloud client sees what the others did.
    nextcloud.sync(&source, &[]);
    assert_same(
        "nextcloudcmd after the others",
        &server,
        &local_tree(&source),
    );
}

/// Requests to the bulk upload endpoint in `lines`.
fn bulk_posts(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| l.contains("method=POST ") && l.contains("path=\"/remote.php/dav/bulk\""))
        .count()
}

#[test]
fn small_files_go_up_by_bulk_upload() {
    use std::os::unix::fs::MetadataExt;
    let the_box = start();
    let client = Client::new("nextcloudcmd", &the_box, Transport::Http);
    let home = temp_dir("bulk");
    let one = home.path().join("one");
    let two = home.path().join("two");
    std::fs::create_dir_all(one.join("sub dir é")).expect("folders");
    std::fs::create_dir_all(&two).expect("two");
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let files: u64 = 600;
    for i in 0..files {
        let name = if i % 5 == 0 {
            format!("sub dir é/small {i} + & #.bin")
        } else {
            format!("small {i}.bin")
        };
        let path = one.join(name);
        write_random_file(&mut rng, &path, 1 + (i * 97) % 8192);
        let mtime = std::time::UNIX_EPOCH + Duration::from_secs(1_500_000_000 + i * 3600);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(mtime))
            .expect("setting an mtime");
    }

    let mark = log_len(&the_box.daemon);
    let started = Instant::now();
    client.sync(&one, &[]);
    let took = started.elapsed();
    let lines = access_lines(&the_box.daemon, mark);
    let posts = bulk_posts(&lines);
    let puts = count(&lines, "PUT", &files_prefix());
    eprintln!("{files} small files: {took:.1?}, {posts} bulk POSTs, {puts} PUTs");
    assert!(posts >= 1, "no bulk upload: {lines:#?}");
    assert_eq!(puts, 0, "every small file went by bulk upload");
    assert!(
        posts as u64 <= files.div_ceil(50),
        "{posts} bulk requests for {files} files: the client batches up to 100"
    );
    let ok_posts = lines
        .iter()
        .filter(|l| l.contains("path=\"/remote.php/dav/bulk\"") && l.contains("status=200"))
        .count();
    assert_eq!(ok_posts, posts, "every bulk request answered 200");

    let dav = the_box.daemon.dav(USER, PASSWORD);
    assert_same(
        "after the bulk upload",
        &local_tree(&one),
        &server_tree(&dav),
    );

    // A second sync sends nothing.
    let mark = log_len(&the_box.daemon);
    client.sync(&one, &[]);
    let lines = access_lines(&the_box.daemon, mark);
    assert_eq!(bulk_posts(&lines), 0, "{lines:#?}");
    assert_eq!(count(&lines, "PUT", &files_prefix()), 0, "{lines:#?}");
    assert_eq!(count(&lines, "GET", &files_prefix()), 0, "{lines:#?}");

    // Another device gets the same bytes with the mtimes the first one sent.
    client.sync(&two, &[]);
    assert_same("device two", &local_tree(&one), &local_tree(&two));
    for (name, hash) in local_tree(&one) {
        if hash.is_none() {
            continue;
        }
        let a = std::fs::metadata(one.join(&name)).expect("one").mtime();
        let b = std::fs::metadata(two.join(&name)).expect("two").mtime();
        assert_eq!(a, b, "mtime of {name}");
    }
}
