//! Discovery on a real (virtual) LAN: network namespaces joined by a bridge, made and removed
//! by each test (needs root). The daemon runs in one namespace; in another, two independent
//! mDNS implementations look at it: avahi (with its own D-Bus instance) and python3-zeroconf
//! (`tests/mdns_peer.py`). Nothing here touches the host's own interfaces.
//!
//! Every wait is bounded, every process is killed and every namespace deleted on drop, also
//! when a test panics.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use percloud_system_tests::{PASSWORD, Ran, bin, run_bounded, temp_dir, wait_until};
use serde_json::Value;

/// Bound of every short command (ip, curl, avahi-resolve).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a name or service may take to show up on the other side.
const SEEN_TIMEOUT: Duration = Duration::from_secs(30);
/// The port the box serves HTTPS on in these tests.
const HTTPS_PORT: u16 = 8443;

static LANS: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let mut command = Command::new("ip");
    command.args(args);
    run_bounded(command, None, COMMAND_TIMEOUT).expect_success(&format!("ip {}", args.join(" ")));
}

/// A bridge (in a namespace of its own) and one namespace per peer, each with `eth0` on the
/// bridge at 10.213.0.(10+i)/24, IPv4 only. Deleted on drop.
struct Lan {
    prefix: String,
    created: Vec<String>,
    peers: Vec<String>,
}

impl Lan {
    fn new(peers: usize) -> Lan {
        let prefix = format!(
            "pcd{}x{}",
            std::process::id(),
            LANS.fetch_add(1, Ordering::SeqCst)
        );
        let mut lan = Lan {
            prefix: prefix.clone(),
            created: Vec::new(),
            peers: Vec::new(),
        };
        let switch = format!("{prefix}sw");
        ip(&["netns", "add", &switch]);
        lan.created.push(switch.clone());
        ip(&[
            "-n",
            &switch,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for i in 0..peers {
            let ns = format!("{prefix}p{i}");
            ip(&["netns", "add", &ns]);
            lan.created.push(ns.clone());
            lan.exec_ok(&ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            lan.exec_ok(
                &ns,
                &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
            );
            let port = format!("v{i}");
            ip(&[
                "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", Lan::addr(i)),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", "eth0"]);
            lan.peers.push(ns);
        }
        lan
    }

    /// The first address of peer `i`.
    fn addr(i: usize) -> String {
        format!("10.213.0.{}", 10 + i)
    }

    fn ns(&self, i: usize) -> &str {
        &self.peers[i]
    }

    /// `ip netns exec NS ARGS` as a command.
    fn command(&self, ns: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).args(args);
        command
    }

    fn exec(&self, ns: &str, args: &[&str]) -> Ran {
        run_bounded(self.command(ns, args), None, COMMAND_TIMEOUT)
    }

    fn exec_ok(&self, ns: &str, args: &[&str]) -> Ran {
        let ran = self.exec(ns, args);
        ran.expect_success(&format!("in {ns}: {}", args.join(" ")));
        ran
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = &self.prefix;
    }
}

/// A background process; killed and reaped on drop.
struct Proc {
    child: Option<Child>,
    what: String,
}

impl Proc {
    fn spawn(mut command: Command, what: &str, log: &Path) -> Proc {
        let log = std::fs::File::create(log).expect("log file");
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        Proc {
            child: Some(child),
            what: what.to_owned(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = &self.what;
    }
}

/// `percloud serve` in a namespace: plain HTTP on the namespace's loopback (for the API),
/// HTTPS on every address.
struct BoxDaemon {
    child: Option<Child>,
    ns: String,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    jar: PathBuf,
    _dir: tempfile::TempDir,
}

impl BoxDaemon {
    fn start(lan: &Lan, ns: &str, data: &Path) -> BoxDaemon {
        let dir = temp_dir("discovery-box");
        let log = dir.path().join("daemon.log");
        let log_file = std::fs::File::create(&log).expect("daemon log");
        let binary = bin();
        let tls = format!("0.0.0.0:{HTTPS_PORT}");
        let mut command = lan.command(
            ns,
            &[
                binary.to_str().expect("UTF-8 path"),
                "serve",
                "--data",
                data.to_str().expect("UTF-8 path"),
                "--listen",
                "127.0.0.1:0",
                "--tls-listen",
                &tls,
            ],
        );
        command
            .env_remove("PERCLOUD_DATA")
            .env_remove("PERCLOUD_CONFIG")
            .env("PERCLOUD_LOG", "info,percloud_discovery=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let mut child = command.spawn().expect("starting percloud serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    let _ = sender.send(addr.trim().to_owned());
                }
            }
        });
        let mut daemon = BoxDaemon {
            child: Some(child),
            ns: ns.to_owned(),
            port: 0,
            data: data.to_owned(),
            log,
            jar: dir.path().join("cookies"),
            _dir: dir,
        };
        let addr = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no listening line\n{}", daemon.log()));
        daemon.port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        let healthy = wait_until(Duration::from_secs(30), || {
            daemon.curl(lan, &["/healthz"]).stdout.trim() == "ok"
        });
        assert!(healthy, "no /healthz\n{}", daemon.log());
        daemon
    }

    fn curl(&self, lan: &Lan, args: &[&str]) -> Ran {
        let (path, rest) = args.split_first().expect("a path");
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let jar = self.jar.to_str().expect("UTF-8 path");
        let mut all = vec!["curl", "-sS", "--max-time", "10", "-b", jar, "-c", jar];
        all.extend_from_slice(rest);
        all.push(&url);
        lan.exec(&self.ns, &all)
    }

    /// Claims the box (creates the owner and signs in); returns the CSRF token.
    fn claim(&self, lan: &Lan) -> String {
        let body = format!(r#"{{"name":"owner","password":"{PASSWORD}"}}"#);
        let ran = self.curl(
            lan,
            &[
                "/api/claim",
                "-H",
                "Content-Type: application/json",
                "--data",
                &body,
            ],
        );
        let state: Value = serde_json::from_str(&ran.stdout).unwrap_or(Value::Null);
        state["csrf"]
            .as_str()
            .unwrap_or_else(|| panic!("claim failed\n{ran}"))
            .to_owned()
    }

    fn json(&self, lan: &Lan, path: &str) -> Value {
        let ran = self.curl(lan, &[path]);
        serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{path}: {e}\n{ran}"))
    }

    fn discovery(&self, lan: &Lan) -> Value {
        self.json(lan, "/api/discovery")
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "exit {status}\n{}", self.log());
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("did not stop on SIGTERM\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Resident memory of the daemon in KiB (`VmRSS`).
    fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().map(Child::id).expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    fn log(&self) -> String {
        format!(
            "--- daemon log ---\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

impl Drop for BoxDaemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = &self.data;
    }
}

/// avahi-daemon with a private D-Bus system bus, in a namespace.
struct Avahi {
    ns: String,
    bus: String,
    log: PathBuf,
    // Dropped in this order: avahi, then its bus, then the folder.
    _avahi: Proc,
    _dbus: Proc,
    _dir: tempfile::TempDir,
}

impl Avahi {
    fn start(lan: &Lan, ns: &str) -> Avahi {
        let dir = temp_dir("avahi");
        let socket = dir.path().join("system_bus_socket");
        let dbus_conf = dir.path().join("dbus.conf");
        std::fs::write(
            &dbus_conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .expect("dbus.conf");
        let avahi_conf = dir.path().join("avahi-daemon.conf");
        std::fs::write(
            &avahi_conf,
            "[server]\nhost-name=avahipeer\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=eth0\nenable-dbus=yes\nratelimit-interval-usec=0\n\
             [wide-area]\nenable-wide-area=no\n\
             [publish]\npublish-hinfo=no\npublish-workstation=no\n",
        )
        .expect("avahi-daemon.conf");
        let bus = format!("unix:path={}", socket.display());
        let dbus = Proc::spawn(
            lan.command(
                ns,
                &[
                    "dbus-daemon",
                    "--nofork",
                    "--nopidfile",
                    &format!("--config-file={}", dbus_conf.display()),
                ],
            ),
            "dbus-daemon",
            &dir.path().join("dbus.log"),
        );
        assert!(
            wait_until(Duration::from_secs(10), || socket.exists()),
            "the private D-Bus did not start"
        );
        // `ip netns exec` gives the command its own mount namespace: the tmpfs keeps avahi's
        // pid file and socket away from the host's.
        let script = format!(
            "mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon && \
             exec avahi-daemon -f {} --no-drop-root --no-chroot --no-rlimits --no-proc-title",
            avahi_conf.display()
        );
        let log = dir.path().join("avahi.log");
        let mut command = lan.command(ns, &["sh", "-c", &script]);
        command.env("DBUS_SYSTEM_BUS_ADDRESS", &bus);
        let avahi = Proc::spawn(command, "avahi-daemon", &log);
        let started = wait_until(Duration::from_secs(15), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Server startup complete"))
        });
        let avahi = Avahi {
            ns: ns.to_owned(),
            bus,
            log,
            _avahi: avahi,
            _dbus: dbus,
            _dir: dir,
        };
        assert!(started, "avahi-daemon did not start\n{}", avahi.log());
        avahi
    }

    fn tool(&self, lan: &Lan, args: &[&str]) -> Ran {
        let mut command = lan.command(&self.ns, args);
        command.env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus);
        run_bounded(command, None, COMMAND_TIMEOUT)
    }

    /// `avahi-resolve -4 -n NAME` → the address, if it resolved.
    fn resolve(&self, lan: &Lan, name: &str) -> Option<String> {
        let ran = self.tool(lan, &["avahi-resolve", "-4", "-n", name]);
        let line = ran.stdout.lines().next()?.to_owned();
        let mut fields = line.split_whitespace();
        (fields.next()? == name).then(|| fields.next().map(str::to_owned))?
    }

    /// The resolved (`=`) lines of `avahi-browse -rpt TYPE`.
    fn browse(&self, lan: &Lan, ty: &str) -> Vec<String> {
        let ran = self.tool(lan, &["avahi-browse", "-rpt", ty]);
        ran.stdout
            .lines()
            .filter(|l| l.starts_with("=;"))
            .map(str::to_owned)
            .collect()
    }

    fn log(&self) -> String {
        format!(
            "--- avahi log ---\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

fn peer_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mdns_peer.py")
        .to_str()
        .expect("UTF-8 path")
        .to_owned()
}

/// python3-zeroconf's view: `mdns_peer.py browse TYPES --host HOST`.
fn zeroconf_browse(lan: &Lan, ns: &str, types: &[&str], host: &str) -> Value {
    let script = peer_script();
    let mut args = vec!["/usr/bin/python3", script.as_str(), "browse"];
    args.extend_from_slice(types);
    args.extend_from_slice(&["--host", host, "--timeout", "20"]);
    let ran = lan.exec_ok(ns, &args);
    serde_json::from_str(ran.stdout.trim()).unwrap_or_else(|e| panic!("{e}\n{ran}"))
}

/// The box's server certificate fingerprint, as `/api/state` shows it.
fn fingerprint(lan: &Lan, daemon: &BoxDaemon) -> String {
    daemon.json(lan, "/api/state")["server_fingerprint"]
        .as_str()
        .expect("server_fingerprint")
        .to_owned()
}

#[test]
fn avahi_and_zeroconf_resolve_the_box_and_its_services() {
    let lan = Lan::new(2);
    let data = temp_dir("discovery-data");
    let daemon = BoxDaemon::start(&lan, lan.ns(0), data.path());
    let avahi = Avahi::start(&lan, lan.ns(1));
    let box_ip = Lan::addr(0);
    let fp = fingerprint(&lan, &daemon);

    let started = Instant::now();
    let resolved = wait_until(SEEN_TIMEOUT, || {
        avahi.resolve(&lan, "percloud.local").as_deref() == Some(box_ip.as_str())
    });
    assert!(
        resolved,
        "avahi never resolved percloud.local to {box_ip}\n{}",
        avahi.log()
    );
    eprintln!(
        "avahi resolved percloud.local after {:.1?}",
        started.elapsed()
    );

    let expected = [
        ("_https._tcp", vec!["\"path=/\"".to_owned()]),
        ("_webdavs._tcp", vec!["\"path=/dav/\"".to_owned()]),
        (
            "_percloud._tcp",
            vec![
                "\"name=percloud\"".to_owned(),
                format!("\"ver={}\"", env!("CARGO_PKG_VERSION")),
                format!("\"fp={fp}\""),
                "\"id=".to_owned(),
            ],
        ),
    ];
    for (ty, txt) in &expected {
        let mut last = Vec::new();
        let found = wait_until(SEEN_TIMEOUT, || {
            last = avahi.browse(&lan, ty);
            last.iter().any(|line| {
                line.contains(&format!(";percloud.local;{box_ip};{HTTPS_PORT};"))
                    && txt.iter().all(|t| line.contains(t.as_str()))
            })
        });
        assert!(found, "avahi-browse {ty}: {last:#?}\n{}", avahi.log());
    }
    // No plain WebDAV on the LAN: plain HTTP is redirected to HTTPS there.
    assert!(avahi.browse(&lan, "_webdav._tcp").is_empty());

    let seen = zeroconf_browse(
        &lan,
        lan.ns(1),
        &["_https._tcp", "_webdavs._tcp", "_percloud._tcp"],
        "percloud.local",
    );
    assert_eq!(seen["host"], serde_json::json!([box_ip]), "{seen:#}");
    let one = |ty: &str| seen["services"][ty][0].clone();
    for ty in ["_https._tcp", "_webdavs._tcp", "_percloud._tcp"] {
        let s = one(ty);
        assert_eq!(s["port"], HTTPS_PORT, "{ty}: {seen:#}");
        assert_eq!(s["server"], "percloud.local.", "{ty}: {seen:#}");
        assert_eq!(
            s["addresses"],
            serde_json::json!([box_ip]),
            "{ty}: {seen:#}"
        );
    }
    assert_eq!(one("_https._tcp")["txt"]["path"], "/");
    assert_eq!(one("_webdavs._tcp")["txt"]["path"], "/dav/");
    let txt = &one("_percloud._tcp")["txt"];
    assert_eq!(txt["fp"], fp.as_str());
    assert_eq!(txt["name"], "percloud");
    assert_eq!(txt["ver"], env!("CARGO_PKG_VERSION"));
    let id = txt["id"].as_str().expect("id");
    assert_eq!(id.len(), 32, "{txt}");
    // The id is the one persisted in the data folder.
    let state = std::fs::read_to_string(data.path().join("discovery.json")).expect("state");
    assert!(state.contains(id), "{state}");
}

#[test]
fn the_box_lists_devices_announced_nearby() {
    let lan = Lan::new(2);
    let data = temp_dir("discovery-data");
    let daemon = BoxDaemon::start(&lan, lan.ns(0), data.path());
    daemon.claim(&lan);
    let script = peer_script();
    let dir = temp_dir("publish");
    let publish = |ty: &str, name: &str, port: &str, txt: &[&str], log: &str| {
        let mut args = vec![
            "/usr/bin/python3",
            script.as_str(),
            "publish",
            ty,
            name,
            port,
        ];
        args.extend_from_slice(txt);
        // stdin from /dev/null would end it at once: keep it open with `sleep`.
        let line = args.join("' '");
        Proc::spawn(
            lan.command(lan.ns(1), &["sh", "-c", &format!("sleep 300 | '{line}'")]),
            "mdns_peer.py publish",
            &dir.path().join(log),
        )
    };
    let _other = publish(
        "_percloud._tcp",
        "Other box",
        "9443",
        &[
            "id=0123456789abcdef",
            "name=Other box",
            "ver=9.9.9",
            "fp=AA:BB",
        ],
        "other.log",
    );
    let _tv = publish(
        "_googlecast._tcp",
        "Living Room TV",
        "8009",
        &["fn=Living Room"],
        "tv.log",
    );

    let started = Instant::now();
    let mut last = Value::Null;
    let found = wait_until(SEEN_TIMEOUT, || {
        last = daemon.discovery(&lan);
        let devices = last["devices"].as_array().cloned().unwrap_or_default();
        let has =
            |name: &str, ty: &str| devices.iter().any(|d| d["name"] == name && d["type"] == ty);
        has("Other box", "_percloud._tcp") && has("Living Room TV", "_googlecast._tcp")
    });
    assert!(found, "devices never listed: {last:#}\n{}", daemon.log());
    eprintln!("both devices listed after {:.1?}", started.elapsed());
    let devices = last["devices"].as_array().expect("devices");
    let tv = devices
        .iter()
        .find(|d| d["type"] == "_googlecast._tcp")
        .expect("tv");
    assert_eq!(tv["port"], 8009);
    assert_eq!(tv["host"], "peer-8009.local");
    assert_eq!(tv["addresses"], serde_json::json!([Lan::addr(1)]));
    assert_eq!(tv["txt"]["fn"], "Living Room");
    assert!(tv["last_seen"].as_u64().is_some_and(|t| t > 1_600_000_000));
    let other = devices
        .iter()
        .find(|d| d["type"] == "_percloud._tcp")
        .expect("other");
    assert_eq!(other["txt"]["id"], "0123456789abcdef");
    // The box does not list itself.
    assert_eq!(
        devices
            .iter()
            .filter(|d| d["type"] == "_percloud._tcp")
            .count(),
        1,
        "{last:#}"
    );
    assert_eq!(last["hostname"], "percloud");
    assert_eq!(last["addresses"], serde_json::json!([Lan::addr(0)]));
    // Anyone but the owner is refused; the QR code is an SVG.
    let qr = daemon.curl(&lan, &["/api/admin/phone-qr.svg"]);
    assert!(qr.stdout.contains("<svg"), "{qr}");
}

#[test]
fn two_boxes_on_one_segment_get_different_host_names() {
    let lan = Lan::new(3);
    let (data1, data2) = (temp_dir("discovery-data"), temp_dir("discovery-data"));
    let first = BoxDaemon::start(&lan, lan.ns(0), data1.path());
    first.claim(&lan);
    let avahi = Avahi::start(&lan, lan.ns(2));
    assert!(
        wait_until(SEEN_TIMEOUT, || avahi
            .resolve(&lan, "percloud.local")
            .is_some()),
        "the first box never answered\n{}",
        avahi.log()
    );
    let mut second = BoxDaemon::start(&lan, lan.ns(1), data2.path());
    second.claim(&lan);
    let mut last = (Value::Null, Value::Null);
    let renamed = wait_until(SEEN_TIMEOUT, || {
        last = (first.discovery(&lan), second.discovery(&lan));
        last.0["hostname"] == "percloud" && last.1["hostname"] == "percloud-2"
    });
    assert!(
        renamed,
        "host names: {:#} / {:#}\n{}",
        last.0,
        last.1,
        second.log()
    );
    let both = wait_until(SEEN_TIMEOUT, || {
        avahi.resolve(&lan, "percloud-2.local").as_deref() == Some(Lan::addr(1).as_str())
            && avahi.resolve(&lan, "percloud.local").as_deref() == Some(Lan::addr(0).as_str())
    });
    assert!(both, "avahi does not see both names\n{}", avahi.log());

    // The name won is kept across a restart.
    second.terminate();
    drop(second);
    let again = BoxDaemon::start(&lan, lan.ns(1), data2.path());
    let state = std::fs::read_to_string(data2.path().join("discovery.json")).expect("state");
    assert!(state.contains("percloud-2"), "{state}");
    let body = format!(r#"{{"name":"owner","password":"{PASSWORD}"}}"#);
    again.curl(
        &lan,
        &[
            "/api/login",
            "-H",
            "Content-Type: application/json",
            "--data",
            &body,
        ],
    );
    assert_eq!(again.discovery(&lan)["hostname"], "percloud-2");
}

#[test]
fn sigterm_sends_goodbyes_the_other_side_sees() {
    let lan = Lan::new(2);
    let data = temp_dir("discovery-data");
    let mut daemon = BoxDaemon::start(&lan, lan.ns(0), data.path());
    let script = peer_script();
    let mut watcher = lan
        .command(
            lan.ns(1),
            &[
                "/usr/bin/python3",
                &script,
                "watch",
                "_percloud._tcp",
                "--timeout",
                "60",
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watcher");
    let stdout = watcher.stdout.take().expect("stdout");
    let _watcher = Proc {
        child: Some(watcher),
        what: "watch".into(),
    };
    let (sender, events) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = sender.send(line);
        }
    });
    let added = events
        .recv_timeout(SEEN_TIMEOUT)
        .expect("the watcher never saw the box");
    assert!(added.starts_with("added percloud."), "{added}");

    let stopped = Instant::now();
    daemon.terminate();
    let removed = events
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("no goodbye seen\n{}", daemon.log()));
    assert!(removed.starts_with("removed percloud."), "{removed}");
    eprintln!(
        "goodbye seen {:.1?} after SIGTERM (the daemon's exit included)",
        stopped.elapsed()
    );
}

#[test]
fn an_address_change_is_seen_within_seconds() {
    let lan = Lan::new(2);
    let data = temp_dir("discovery-data");
    let _daemon = BoxDaemon::start(&lan, lan.ns(0), data.path());
    let avahi = Avahi::start(&lan, lan.ns(1));
    let old = Lan::addr(0);
    assert!(
        wait_until(SEEN_TIMEOUT, || {
            avahi.resolve(&lan, "percloud.local").as_deref() == Some(old.as_str())
        }),
        "never resolved\n{}",
        avahi.log()
    );
    let new = "10.213.0.50";
    let box_ns = lan.ns(0);
    // Like a move to another network. (Deleting a primary address also deletes the
    // secondaries of its subnet, so the old one goes first.)
    ip(&[
        "-n",
        box_ns,
        "addr",
        "del",
        &format!("{old}/24"),
        "dev",
        "eth0",
    ]);
    ip(&[
        "-n",
        box_ns,
        "addr",
        "add",
        &format!("{new}/24"),
        "dev",
        "eth0",
    ]);
    ip(&[
        "-n",
        box_ns,
        "route",
        "replace",
        "224.0.0.0/4",
        "dev",
        "eth0",
    ]);
    let changed = Instant::now();
    let seen = wait_until(Duration::from_secs(20), || {
        avahi.resolve(&lan, "percloud.local").as_deref() == Some(new)
    });
    assert!(seen, "the new address was never seen\n{}", avahi.log());
    eprintln!(
        "new address seen by avahi {:.1?} after the change",
        changed.elapsed()
    );
    assert!(changed.elapsed() < Duration::from_secs(10));
    // python3-zeroconf agrees.
    let seen = zeroconf_browse(&lan, lan.ns(1), &["_https._tcp"], "percloud.local");
    assert_eq!(
        seen["services"]["_https._tcp"][0]["addresses"],
        serde_json::json!([new])
    );
}

#[test]
fn a_flood_of_announcements_and_garbage_stays_bounded() {
    let lan = Lan::new(2);
    let data = temp_dir("discovery-data");
    let daemon = BoxDaemon::start(&lan, lan.ns(0), data.path());
    daemon.claim(&lan);
    std::thread::sleep(Duration::from_secs(2));
    let before = daemon.rss_kib();
    let script = peer_script();
    let airplay = |d: &Value| {
        d["devices"]
            .as_array()
            .map(|a| a.iter().filter(|x| x["type"] == "_airplay._tcp").count())
            .unwrap_or_default()
    };
    let mut peaks = Vec::new();
    for round in 0..4 {
        let started = Instant::now();
        lan.exec_ok(
            lan.ns(1),
            &[
                "/usr/bin/python3",
                &script,
                "flood",
                "_airplay._tcp",
                "5000",
                "--garbage",
                "2000",
            ],
        );
        let sent = started.elapsed();
        let mut last = Value::Null;
        let listed = wait_until(SEEN_TIMEOUT, || {
            last = daemon.discovery(&lan);
            airplay(&last) >= 500
        });
        assert!(
            listed,
            "round {round}: {} listed\n{}",
            airplay(&last),
            daemon.log()
        );
        assert!(airplay(&last) <= 512, "round {round}: {}", airplay(&last));
        std::thread::sleep(Duration::from_secs(3));
        let rss = daemon.rss_kib();
        eprintln!(
            "round {round}: 5000 announcements (40 x 200-byte TXT each) + 2000 malformed packets sent in {sent:.1?}; \
             RSS {before} KiB before, {rss} KiB after; {} listed",
            airplay(&daemon.discovery(&lan))
        );
        peaks.push(rss);
    }
    // Memory levels off: the last flood, as large as the first, adds little.
    assert!(
        peaks[3] < peaks[2] + 16 * 1024,
        "memory keeps growing: {before} -> {peaks:?} KiB"
    );
    assert!(peaks[3] < before + 256 * 1024, "{before} -> {peaks:?} KiB");
    // Still alive and still discovering.
    let dir = temp_dir("publish");
    let _tv = Proc::spawn(
        lan.command(
            lan.ns(1),
            &["sh", "-c", &format!("sleep 300 | /usr/bin/python3 '{script}' publish _googlecast._tcp 'After flood' 8009")],
        ),
        "publish",
        &dir.path().join("tv.log"),
    );
    let seen = wait_until(SEEN_TIMEOUT, || {
        daemon.discovery(&lan)["devices"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d["name"] == "After flood"))
    });
    assert!(seen, "not discovering after the flood\n{}", daemon.log());
}

#[test]
fn names_set_on_the_admin_page_are_announced() {
    let lan = Lan::new(2);
    let data = temp_dir("discovery-data");
    let daemon = BoxDaemon::start(&lan, lan.ns(0), data.path());
    let csrf = daemon.claim(&lan);
    let avahi = Avahi::start(&lan, lan.ns(1));
    let box_ip = Lan::addr(0);
    assert!(
        wait_until(SEEN_TIMEOUT, || {
            avahi.resolve(&lan, "percloud.local").as_deref() == Some(box_ip.as_str())
        }),
        "never resolved\n{}",
        avahi.log()
    );
    let token = format!("X-CSRF-Token: {csrf}");
    let ran = daemon.curl(
        &lan,
        &[
            "/api/admin/names",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "-H",
            &token,
            "--data",
            r#"{"instance":"Attic box","hostname":"attic"}"#,
        ],
    );
    assert!(ran.stdout.contains("\"hostname\":\"attic\""), "{ran}");
    let changed = Instant::now();
    let mut last = Vec::new();
    let announced = wait_until(SEEN_TIMEOUT, || {
        last = avahi.browse(&lan, "_percloud._tcp");
        avahi.resolve(&lan, "attic.local").as_deref() == Some(box_ip.as_str())
            && last
                .iter()
                .any(|l| l.contains(";attic.local;") && l.contains("\"name=Attic box\""))
    });
    assert!(announced, "{last:#?}\n{}\n{}", avahi.log(), daemon.log());
    eprintln!("new names seen {:.1?} after the change", changed.elapsed());
    assert_eq!(daemon.discovery(&lan)["hostname"], "attic");
    let state = std::fs::read_to_string(data.path().join("discovery.json")).expect("state");
    assert!(state.contains("\"attic\""), "{state}");
}
