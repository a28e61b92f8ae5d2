//! Remote access against a real router: three network namespaces made by the test
//! (`lan` runs the daemon, `router` runs Debian's miniupnpd with its iptables backend and
//! NATs lan -> wan, `wan` is the internet side with a client, and Pebble for ACME), all
//! with no route out of this machine. The [`Net`] guard kills every process and deletes the
//! namespaces (with their iptables state) when dropped, also on panic. Needs root,
//! miniupnpd, miniupnpc, iptables, curl and pebble (scripts/test installs them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use percloud_system_tests::{PASSWORD, Ran, add_user, bin, run_bounded, temp_dir, wait_until};

/// The router's public-looking WAN address (only ever inside the namespaces).
const WAN_IP: &str = "45.67.89.1";
/// The wan client's (and Pebble's) address.
const WAN_PEER: &str = "45.67.89.2";
/// A reserved WAN address: miniupnpd refuses every mapping (double NAT).
const RESERVED_WAN_IP: &str = "10.99.0.1";
const BOX_IP: &str = "192.168.77.2";
const ROUTER_IGD: &str = "http://192.168.77.1:5555/rootDesc.xml";
const STEP: Duration = Duration::from_secs(60);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("remote")
        .join("net.sh")
}

/// The namespaces and the background processes in them; torn down on drop.
struct Net {
    id: String,
    dir: tempfile::TempDir,
    procs: Vec<(String, Child)>,
}

impl Net {
    fn up(wan_ip: &str) -> Net {
        // Six random digits: `net.sh down` of a clashing id would tear down another run's
        // network, so clashes must not happen (`l<id>a` stays within 15 bytes).
        let id = format!("{}", 100_000 + rand::random::<u32>() % 900_000);
        let net = Net {
            id,
            dir: temp_dir("remote"),
            procs: Vec::new(),
        };
        let mut up = Command::new(script());
        up.args(["up", &net.id, wan_ip]);
        run_bounded(up, None, STEP).expect_success("creating the test network");
        net
    }

    fn ns(&self, which: &str) -> String {
        format!("pc{}{which}", self.id)
    }

    fn command(&self, ns: &str, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns(ns), program]);
        command
    }

    fn run(&self, ns: &str, program: &str, args: &[&str]) -> Ran {
        let mut command = self.command(ns, program);
        command.args(args);
        run_bounded(command, None, STEP)
    }

    fn spawn(&mut self, name: &str, ns: &str, program: &str, args: &[&str], env: &[(&str, &str)]) {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).expect("log");
        let mut command = self.command(ns, program);
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.procs.push((name.to_owned(), child));
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// SIGTERM (clean stop) or SIGKILL, then reap, bounded.
    fn stop(&mut self, name: &str, clean: bool) -> Option<std::process::ExitStatus> {
        let index = self.procs.iter().position(|(n, _)| n == name)?;
        let (_, mut child) = self.procs.remove(index);
        let signal = if clean { "-TERM" } else { "-KILL" };
        let _ = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start_miniupnpd(&mut self) {
        let conf = self.dir.path().join("miniupnpd.conf");
        std::fs::write(
            &conf,
            format!(
                "ext_ifname=w{id}a\nlistening_ip=l{id}b\nhttp_port=5555\nenable_natpmp=no\n\
                 enable_upnp=yes\nsecure_mode=yes\nsystem_uptime=yes\nmin_lifetime=10\n\
                 uuid=3b1e9b8c-1111-4c2b-9a3a-0123456789ab\n\
                 allow 1-65535 192.168.77.0/24 1-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
                id = self.id
            ),
        )
        .expect("miniupnpd.conf");
        let pid = self.dir.path().join("miniupnpd.pid");
        let (conf, pid) = (conf.display().to_string(), pid.display().to_string());
        self.spawn(
            "miniupnpd",
            "rtr",
            "miniupnpd",
            &["-d", "-f", &conf, "-P", &pid],
            &[],
        );
        assert!(
            wait_until(Duration::from_secs(10), || self.upnp_list().code == Some(0)
                || self.upnp_list().stdout.contains("ExternalIPAddress")),
            "miniupnpd did not answer\n{}",
            self.log("miniupnpd")
        );
    }

    fn upnp_list(&self) -> Ran {
        self.run("lan", "upnpc", &["-u", ROUTER_IGD, "-l"])
    }

    /// The lease left on the router's mapping of external `port`, if there is one.
    fn mapping(&self, port: u16) -> Option<u32> {
        let list = self.upnp_list();
        let needle = format!("{port}->{BOX_IP}:8443");
        list.stdout
            .lines()
            .find(|l| l.contains(&needle))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|lease| lease.parse().ok())
    }

    fn nat_rules(&self) -> String {
        self.run("rtr", "iptables-legacy", &["-t", "nat", "-S", "MINIUPNPD"])
            .stdout
    }

    fn curl(&self, ns: &str, args: &[&str]) -> Ran {
        let mut all = vec!["-sS", "--max-time", "10"];
        all.extend_from_slice(args);
        self.run(ns, "curl", &all)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (_, child) in &mut self.procs {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut down = Command::new(script());
        down.args(["down", &self.id]);
        let _ = down.stdin(Stdio::null()).status();
    }
}

/// The daemon in `lan`, with `[remote]` from `remote_toml`.
struct BoxDaemon {
    data: tempfile::TempDir,
}

impl BoxDaemon {
    fn start(net: &mut Net, remote_toml: &str) -> BoxDaemon {
        let data = temp_dir("remote-data");
        add_user(data.path(), "olivia", PASSWORD);
        let config = data.path().join("config.toml");
        std::fs::write(&config, format!("[remote]\n{remote_toml}")).expect("config");
        let daemon = BoxDaemon { data };
        daemon.spawn(net);
        daemon
    }

    fn spawn(&self, net: &mut Net) {
        let (data, config) = (
            self.data.path().display().to_string(),
            self.data.path().join("config.toml").display().to_string(),
        );
        let bin = bin().display().to_string();
        net.spawn(
            "percloud",
            "lan",
            &bin,
            &[
                "serve",
                "--data",
                &data,
                "--config",
                &config,
                "--listen",
                &format!("{BOX_IP}:8080"),
                "--tls-listen",
                &format!("{BOX_IP}:8443"),
            ],
            &[("PERCLOUD_LOG", "info,percloud::access=warn")],
        );
        let healthy = wait_until(Duration::from_secs(60), || {
            net.curl("lan", &["-k", &format!("https://{BOX_IP}:8443/healthz")])
                .stdout
                .trim()
                == "ok"
        });
        assert!(healthy, "daemon did not start\n{}", net.log("percloud"));
    }

    fn ca(&self) -> String {
        self.data
            .path()
            .join("tls")
            .join("ca.pem")
            .display()
            .to_string()
    }

    /// Signs in from the LAN; returns the cookie jar and the CSRF token.
    fn login(&self, net: &Net) -> (String, String) {
        let jar = self.data.path().join("cookies.txt").display().to_string();
        let ran = net.curl(
            "lan",
            &[
                "--cacert",
                &self.ca(),
                "-c",
                &jar,
                "-H",
                "Content-Type: application/json",
                "-d",
                &format!(r#"{{"name":"olivia","password":"{PASSWORD}"}}"#),
                &format!("https://{BOX_IP}:8443/api/login"),
            ],
        );
        let state: serde_json::Value = serde_json::from_str(&ran.stdout)
            .unwrap_or_else(|e| panic!("login answer: {e}\n{ran}"));
        let csrf = state["csrf"].as_str().expect("csrf").to_owned();
        (jar, csrf)
    }

    fn status(&self, net: &Net) -> serde_json::Value {
        let (jar, _) = self.login(net);
        let ran = net.curl(
            "lan",
            &[
                "--cacert",
                &self.ca(),
                "-b",
                &jar,
                &format!("https://{BOX_IP}:8443/api/remote"),
            ],
        );
        serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("GET /api/remote: {e}\n{ran}"))
    }

    fn set_remote(&self, net: &Net, body: &str) {
        let (jar, csrf) = self.login(net);
        let ran = net.curl(
            "lan",
            &[
                "--cacert",
                &self.ca(),
                "-b",
                &jar,
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/json",
                "-H",
                &format!("X-CSRF-Token: {csrf}"),
                "-d",
                body,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("https://{BOX_IP}:8443/api/admin/remote"),
            ],
        );
        assert_eq!(ran.stdout.trim(), "200", "PUT /api/admin/remote\n{ran}");
    }
}

fn state_of(status: &serde_json::Value) -> &str {
    status["mapping"]["state"].as_str().unwrap_or_default()
}

#[test]
fn mapping_https_from_wan_renewal_router_restart_and_removal() {
    let mut net = Net::up(WAN_IP);
    net.start_miniupnpd();
    let started = Instant::now();
    let daemon = BoxDaemon::start(
        &mut net,
        &format!("enabled = true\nlease_secs = 20\nigd_url = \"{ROUTER_IGD}\"\n"),
    );

    // The mapping appears on the router and in its NAT rules.
    assert!(
        wait_until(Duration::from_secs(30), || net.mapping(443).is_some()),
        "no mapping on the router\n{}\n{}",
        net.upnp_list(),
        net.log("percloud")
    );
    eprintln!(
        "time to map (daemon start included): {:.1?}",
        started.elapsed()
    );
    let rules = net.nat_rules();
    // (iptables-legacy cannot print miniupnpd's DNAT target revision, only that it is there.)
    assert!(rules.contains("--dport 443 -j DNAT"), "{rules}");

    // A client on the internet side fetches the page, trusting only the box's CA.
    let https = format!("https://{WAN_IP}/");
    let ok = wait_until(Duration::from_secs(20), || {
        net.curl("wan", &["--cacert", &daemon.ca(), &https])
            .stdout
            .contains("percloud")
    });
    assert!(
        ok,
        "HTTPS through the router failed\n{}",
        net.curl("wan", &["-v", "--cacert", &daemon.ca(), &https])
    );

    // From outside: admin and claim refused, plain HTTP serves nothing, guessing is slowed.
    for path in ["admin", "claim", "api/admin/users"] {
        let ran = net.curl(
            "wan",
            &[
                "--cacert",
                &daemon.ca(),
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("{https}{path}"),
            ],
        );
        assert_eq!(ran.stdout.trim(), "403", "/{path} from wan\n{ran}");
    }
    // HTTP/1.1: the early 403 to a POST whose body is unread ends an HTTP/2 stream with
    // RST_STREAM, which curl sometimes reports as a framing error instead of the status.
    let claim = net.curl(
        "wan",
        &[
            "--http1.1",
            "--cacert",
            &daemon.ca(),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"name":"eve","password":"x"}"#,
            &format!("{https}api/claim"),
        ],
    );
    assert_eq!(claim.stdout.trim(), "403", "{claim}");
    let plain = net.curl("wan", &[&format!("http://{WAN_IP}/")]);
    assert!(
        plain.code != Some(0) && plain.stdout.is_empty(),
        "plain HTTP from wan must not serve\n{plain}"
    );
    let plain_on_https = net.curl("wan", &[&format!("http://{WAN_IP}:443/")]);
    assert!(
        !plain_on_https.stdout.contains("percloud"),
        "{plain_on_https}"
    );
    let headers = net.curl(
        "wan",
        &[
            "--cacert",
            &daemon.ca(),
            "-D",
            "-",
            "-o",
            "/dev/null",
            &https,
        ],
    );
    assert!(
        headers
            .stdout
            .to_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{headers}"
    );
    assert!(
        !headers
            .stdout
            .to_lowercase()
            .contains("strict-transport-security"),
        "no HSTS with the own CA\n{headers}"
    );
    let mut codes = Vec::new();
    for _ in 0..8 {
        let ran = net.curl(
            "wan",
            &[
                "--http1.1",
                "--cacert",
                &daemon.ca(),
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Content-Type: application/json",
                "-d",
                r#"{"name":"olivia","password":"wrong-wrong-wrong"}"#,
                &format!("{https}api/login"),
            ],
        );
        codes.push(ran.stdout.trim().to_owned());
    }
    assert!(
        codes.iter().any(|c| c == "429"),
        "bad passwords were not slowed: {codes:?}"
    );

    // A 20 s lease is renewed at half-life.
    let first = net.mapping(443).expect("mapped");
    std::thread::sleep(Duration::from_secs(14));
    let later = net.mapping(443).expect("still mapped");
    assert!(
        later > 20 - 14 + 2 || later > first,
        "lease not renewed: {first} then {later}"
    );
    let status = daemon.status(&net);
    assert!(
        status["mapping"]["renewals"].as_u64().unwrap_or(0) >= 1,
        "{status}"
    );
    assert_eq!(status["mapping"]["external_ip"], WAN_IP, "{status}");
    assert_eq!(status["mapping"]["nat"], "public", "{status}");

    // The router restarts and forgets: the mapping comes back.
    net.stop("miniupnpd", false);
    net.run("rtr", "iptables-legacy", &["-t", "nat", "-F", "MINIUPNPD"])
        .expect_success("flush");
    net.start_miniupnpd();
    assert_eq!(net.mapping(443), None, "the restarted router starts empty");
    let restarted = Instant::now();
    assert!(
        wait_until(Duration::from_secs(40), || net.mapping(443).is_some()),
        "mapping not re-added after the router restart\n{}",
        net.log("percloud")
    );
    eprintln!(
        "mapping back {:.1?} after the router restart",
        restarted.elapsed()
    );

    // Remote access off: the mapping goes; on again: back; daemon stopped: gone.
    daemon.set_remote(
        &net,
        r#"{"enabled":false,"domain":"","allow_remote_admin":false}"#,
    );
    assert!(
        wait_until(Duration::from_secs(10), || net.mapping(443).is_none()),
        "mapping kept after off"
    );
    assert_eq!(state_of(&daemon.status(&net)), "disabled");
    daemon.set_remote(
        &net,
        r#"{"enabled":true,"domain":"","allow_remote_admin":false}"#,
    );
    assert!(
        wait_until(Duration::from_secs(20), || net.mapping(443).is_some()),
        "no mapping after on"
    );
    let status = net.stop("percloud", true).expect("stopped");
    assert!(
        status.success(),
        "daemon exit {status}\n{}",
        net.log("percloud")
    );
    assert_eq!(net.mapping(443), None, "mapping left after a clean stop");
}

#[test]
fn no_router_then_double_nat_are_diagnosed() {
    let mut net = Net::up(RESERVED_WAN_IP);
    let daemon = BoxDaemon::start(
        &mut net,
        &format!("enabled = true\nigd_url = \"{ROUTER_IGD}\"\n"),
    );
    // No IGD: clear status, retries with a growing backoff, no crash.
    let mut seen = Vec::new();
    assert!(
        wait_until(Duration::from_secs(40), || {
            let status = daemon.status(&net);
            let failures = status["mapping"]["failures"].as_u64().unwrap_or(0);
            if failures > 0 {
                seen.push((
                    failures,
                    status["mapping"]["retry_in_secs"].as_u64().unwrap_or(0),
                ));
            }
            failures >= 2
        }),
        "no failed attempts recorded"
    );
    let status = daemon.status(&net);
    assert_eq!(state_of(&status), "failed", "{status}");
    let diagnosis = status["mapping"]["diagnosis"].as_str().unwrap_or_default();
    assert!(diagnosis.contains("No UPnP"), "{status}");
    let retry = status["mapping"]["retry_in_secs"].as_u64().unwrap_or(0);
    assert!(retry >= 10, "backoff must grow: {seen:?} {status}");

    // A router whose WAN address is reserved: miniupnpd refuses (501): double NAT.
    net.start_miniupnpd();
    assert!(
        wait_until(Duration::from_secs(40), || {
            daemon.status(&net)["mapping"]["nat"] == "double_nat"
        }),
        "double NAT not reported\n{}",
        daemon.status(&net)
    );
    let status = daemon.status(&net);
    assert_eq!(status["mapping"]["upnp_error"], 501, "{status}");
    assert!(
        status["mapping"]["diagnosis"]
            .as_str()
            .unwrap_or_default()
            .contains("Double NAT"),
        "{status}"
    );
    assert!(net.log("percloud").contains("port mapping failed"));
}

/// Makes a CA and a certificate for Pebble's listener at `ip` with openssl; returns the
/// CA's path (what the box is told to trust for the ACME server).
fn pebble_tls(dir: &Path, ip: &str) -> PathBuf {
    let sh = |script: &str| {
        let mut command = Command::new("sh");
        command.args(["-ec", script]).current_dir(dir);
        run_bounded(command, None, STEP).expect_success("openssl");
    };
    sh(&format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
           -subj /CN=test-acme-ca -keyout ca.key -out ca.pem 2>/dev/null
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=pebble \
           -keyout key.pem -out req.pem 2>/dev/null
         printf 'subjectAltName=IP:{ip}\\nbasicConstraints=critical,CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf
         openssl x509 -req -in req.pem -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
           -extfile ext.cnf -out cert.pem 2>/dev/null"
    ));
    dir.join("ca.pem")
}

#[test]
fn acme_certificate_through_the_mapped_port_served_and_renewed() {
    const DOMAIN: &str = "box.percloud.test";
    let mut net = Net::up(WAN_IP);
    net.start_miniupnpd();
    let dir = net.dir.path().to_owned();
    let acme_ca = pebble_tls(&dir, WAN_PEER);
    std::fs::write(
        dir.join("pebble.json"),
        format!(
            r#"{{"pebble":{{"listenAddress":"{WAN_PEER}:14000","managementListenAddress":"{WAN_PEER}:15000","certificate":"{c}","privateKey":"{k}","httpPort":80,"tlsPort":443,"ocspResponderURL":"","externalAccountBindingRequired":false}}}}"#,
            c = dir.join("cert.pem").display(),
            k = dir.join("key.pem").display()
        ),
    )
    .expect("pebble config");
    let dns = format!("{WAN_PEER}:8053");
    net.spawn(
        "challtestsrv",
        "wan",
        "pebble-challtestsrv",
        &[
            "-dns01",
            &dns,
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("{WAN_PEER}:8055"),
            "-defaultIPv4",
            WAN_IP,
            "-defaultIPv6",
            "",
        ],
        &[],
    );
    let config = dir.join("pebble.json").display().to_string();
    net.spawn(
        "pebble",
        "wan",
        "pebble",
        &["-config", &config, "-dnsserver", &dns],
        &[("PEBBLE_VA_NOSLEEP", "1"), ("PEBBLE_WFE_NONCEREJECT", "0")],
    );
    let directory = format!("https://{WAN_PEER}:14000/dir");
    let ca = acme_ca.display().to_string();
    assert!(
        wait_until(Duration::from_secs(20), || net
            .curl("wan", &["--cacert", &ca, &directory])
            .stdout
            .contains("newOrder")),
        "pebble did not start\n{}",
        net.log("pebble")
    );

    let daemon = BoxDaemon::start(
        &mut net,
        &format!(
            "enabled = true\nigd_url = \"{ROUTER_IGD}\"\ndomain = \"{DOMAIN}\"\n\
             acme_directory = \"{directory}\"\nacme_ca_file = \"{ca}\"\n"
        ),
    );
    let issued = |net: &Net| {
        daemon.status(net)["certificate"]["public"]["issued"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(120), || issued(&net) >= 1),
        "no certificate from Pebble\n{}\n{}\n{}",
        daemon.status(&net),
        net.log("percloud"),
        net.log("pebble")
    );
    let status = daemon.status(&net);
    eprintln!(
        "ACME issuance took {} ms",
        status["certificate"]["public"]["last_order_ms"]
    );
    assert_eq!(status["certificate"]["public"]["trusted"], true, "{status}");

    // The wan client trusts Pebble's root (from its management endpoint) and gets the page
    // for the domain, with HSTS now that the certificate is publicly trusted.
    let root = dir.join("pebble-root.pem").display().to_string();
    net.curl(
        "wan",
        &[
            "-k",
            "-o",
            &root,
            &format!("https://{WAN_PEER}:15000/roots/0"),
        ],
    )
    .expect_success("fetching Pebble's root");
    let resolve = format!("{DOMAIN}:443:{WAN_IP}");
    let url = format!("https://{DOMAIN}/");
    let page = net.curl(
        "wan",
        &["--cacert", &root, "--resolve", &resolve, "-D", "-", &url],
    );
    assert!(page.stdout.contains("percloud"), "{page}");
    assert!(
        page.stdout
            .to_lowercase()
            .contains("strict-transport-security"),
        "{page}"
    );
    let expiry = status["certificate"]["public"]["not_after"].clone();

    // Renewal on request: a new order, a new certificate served.
    let serial = |net: &Net| {
        let mut command = net.command("wan", "sh");
        command.args([
            "-c",
            &format!("openssl s_client -connect {WAN_IP}:443 -servername {DOMAIN} </dev/null 2>/dev/null | openssl x509 -noout -serial"),
        ]);
        run_bounded(command, None, STEP).stdout
    };
    let before = serial(&net);
    let (jar, csrf) = daemon.login(&net);
    let renew = net.curl(
        "lan",
        &[
            "--cacert",
            &daemon.ca(),
            "-b",
            &jar,
            "-X",
            "POST",
            "-H",
            &format!("X-CSRF-Token: {csrf}"),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("https://{BOX_IP}:8443/api/admin/remote/renew"),
        ],
    );
    assert_eq!(renew.stdout.trim(), "204", "{renew}");
    assert!(
        wait_until(Duration::from_secs(120), || issued(&net) >= 2),
        "not renewed\n{}\n{}",
        daemon.status(&net),
        net.log("percloud")
    );
    let after = serial(&net);
    assert!(
        after.contains("serial=") && after != before,
        "same certificate served: {before} / {after}"
    );
    assert!(
        daemon
            .data
            .path()
            .join("acme")
            .join(format!("{DOMAIN}.key"))
            .exists()
    );
    eprintln!(
        "renewed: expiry {expiry} -> {}",
        daemon.status(&net)["certificate"]["public"]["not_after"]
    );
}
