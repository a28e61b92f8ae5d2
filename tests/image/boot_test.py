#!/usr/bin/env python3
"""System tests of the appliance images: boot them in QEMU (TCG) and use them as a person
would, through a port forward to the box's HTTPS port. Run by scripts/test; every wait is
bounded and QEMU is always killed, whatever fails.

  tests/image/boot_test.py x86-64        claim, WebDAV upload, reboot, data grown, power cut
  tests/image/boot_test.py arm64-virt    the arm64 image's kernel, DTB-less virt, page answers
  tests/image/boot_test.py rpi4-raspi4b  smoke boot on QEMU's Raspberry Pi 4 model

Options: --image PATH (default: the newest out/<board>/percloud-<board>-*.img).
Prints "boot-to-HTTPS" times; exits non-zero on the first failed check.
"""
import argparse
import base64
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
OWNER, PASSWORD = "owner", "correct horse battery staple"
DISK_SIZE = "2G"  # the virtual disk is larger than the image: first boot must grow /data
RUNNING = []  # QEMU processes to kill on any exit


def note(msg):
    print(f"[image-test] {msg}", flush=True)


def fail(msg):
    raise AssertionError(msg)


def report_failure(error, log_path, lines=60):
    """Says why a test failed and prints the end of the guest's console, so that a CI log
    that keeps nothing else still shows what the box was doing."""
    note(f"FAILED: {error} (console log: {log_path})")
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = f.read().splitlines()[-lines:]
    except OSError:
        return
    note(f"last {len(tail)} console lines:")
    for line in tail:
        print("    | " + "".join(c if c.isprintable() else "?" for c in line), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Qemu:
    """One QEMU process; its serial console is kept in memory and in a log file."""

    def __init__(self, argv, log_path):
        self.argv = argv
        self.log = open(log_path, "a", encoding="utf-8")
        self.log.write("\n### " + " ".join(argv) + "\n")
        self.text = ""
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        RUNNING.append(self)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in iter(lambda: self.proc.stdout.read1(4096), b""):
            chunk = raw.decode("utf-8", "replace")
            with self.lock:
                self.text += chunk
            self.log.write(chunk)
            self.log.flush()

    def mark(self):
        with self.lock:
            return len(self.text)

    def console_since(self, mark=0):
        with self.lock:
            return self.text[mark:]

    def wait_console(self, needle, timeout, since=0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.console_since(since):
                return
            if self.proc.poll() is not None:
                fail(f"QEMU exited ({self.proc.returncode}) before the console showed {needle!r}")
            time.sleep(0.2)
        fail(f"console never showed {needle!r} within {timeout} s")

    def kill(self):
        """Pulls the plug (SIGKILL to QEMU's process group); safe to call from any thread, twice."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        if self in RUNNING:
            RUNNING.remove(self)


def kill_all(*_):
    for q in list(RUNNING):
        q.kill()


class Box:
    """HTTPS to the box through the port forward (its certificate is its own: not verified)."""

    def __init__(self, port):
        self.port = port
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, headers=None, timeout=20):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)
        try:
            h = dict(headers or {})
            if self.cookie:
                h["Cookie"] = self.cookie
            if self.csrf and method not in ("GET", "HEAD"):
                h["X-CSRF-Token"] = self.csrf
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def api(self, method, path, payload=None, expect=200, timeout=20):
        body = None if payload is None else json.dumps(payload).encode()
        status, headers, data = self.request(method, path, body, {"Content-Type": "application/json"},
                                             timeout=timeout)
        if status != expect:
            fail(f"{method} {path}: {status} (wanted {expect}): {data[:300]!r}")
        cookie = headers.get("Set-Cookie") or headers.get("set-cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        return json.loads(data) if data else None

    def state_when_up(self, qemu, timeout):
        """Polls GET /api/state until it answers with its JSON body (the port forward accepts
        connections before the guest listens, so only the body proves the box is up)."""
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            if qemu.proc.poll() is not None:
                fail(f"QEMU exited ({qemu.proc.returncode}) before HTTPS answered")
            try:
                status, _, data = self.request("GET", "/api/state", timeout=5)
                if status == 200 and b'"claimed"' in data:
                    return json.loads(data)
                last = f"{status} {data[:100]!r}"
            except (OSError, http.client.HTTPException, ssl.SSLError) as e:
                last = repr(e)
            time.sleep(1)
        fail(f"HTTPS never answered /api/state within {timeout} s (last: {last})")

    def dav_put(self, path, content, timeout=30):
        auth = base64.b64encode(f"{OWNER}:{PASSWORD}".encode()).decode()
        status, _, data = self.request("PUT", "/dav" + path, content,
                                       {"Authorization": "Basic " + auth}, timeout=timeout)
        return status, data

    def dav_get(self, path):
        auth = base64.b64encode(f"{OWNER}:{PASSWORD}".encode()).decode()
        return self.request("GET", "/dav" + path, None, {"Authorization": "Basic " + auth})

    def login(self):
        self.cookie = self.csrf = None
        state = self.api("POST", "/api/login", {"name": OWNER, "password": PASSWORD})
        self.csrf = state["csrf"]


def newest_image(board):
    images = sorted(p for p in glob.glob(f"{ROOT}/out/{board}/percloud-{board}-*.img")
                    if "-debug" not in p and "-broken-https" not in p)
    if not images:
        fail(f"no image in out/{board}: run scripts/build-image {board}")
    return images[-1]


def overlay(image, run):
    disk = os.path.join(run, "disk.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", image, disk,
                    DISK_SIZE], check=True)
    return disk


# ---------------------------------------------------------------- x86-64 (OVMF, GRUB, A/B)

def x86_argv(run, disk, port):
    vars_copy = os.path.join(run, "OVMF_VARS.fd")
    if not os.path.exists(vars_copy):
        shutil.copy(OVMF_VARS, vars_copy)
    return ["qemu-system-x86_64", "-M", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "2",
            "-m", "1024", "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", "stdio", "-monitor", f"unix:{run}/monitor.sock,server=on,wait=off",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
            "-drive", f"if=none,id=d0,format=qcow2,file={disk}",
            "-device", "virtio-blk-pci,drive=d0,bootindex=0",
            "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:443",
            "-device", "virtio-net-pci,netdev=n0,romfile=",
            "-device", "i6300esb"]


def monitor(run, command):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(f"{run}/monitor.sock")
        s.sendall((command + "\n").encode())
        time.sleep(0.5)


def test_x86(image, run):
    results = {}
    disk = overlay(image, run)
    port = free_port()
    box = Box(port)
    log = os.path.join(run, "console.log")

    note(f"x86-64: first boot of {os.path.basename(image)} (OVMF, TCG)")
    q = Qemu(x86_argv(run, disk, port), log)
    try:
        state = box.state_when_up(q, 400)
        results["x86-64 boot-to-HTTPS (first boot, grows /data)"] = time.monotonic() - q.started
        note(f"HTTPS answered after {time.monotonic() - q.started:.1f} s: claimed={state['claimed']}")
        if state["claimed"]:
            fail("a new box must start unclaimed")
        q.wait_console("first boot: growing", 5)
        q.wait_console("watchdog armed", 60)
        q.wait_console("is ready. Open in a browser", 60)

        claimed = box.api("POST", "/api/claim", {"name": OWNER, "password": PASSWORD})
        box.csrf = claimed["csrf"]
        if not claimed["claimed"] or claimed["user"]["name"] != OWNER:
            fail(f"claim answered {claimed}")
        note("claimed by the owner")
        storage = box.api("GET", "/api/admin/storage")
        if storage["disk_total"] < 1500 * 2**20:
            fail(f"/data was not grown: disk_total={storage['disk_total']}")
        note(f"/data grown to {storage['disk_total'] // 2**20} MiB")

        payload = os.urandom(300_000)
        status, data = box.dav_put("/survives-reboot.bin", payload)
        if status not in (201, 204):
            fail(f"WebDAV PUT: {status} {data[:200]!r}")
        note("uploaded /survives-reboot.bin over WebDAV; rebooting (Ctrl-Alt-Del)")

        mark = q.mark()
        monitor(run, "sendkey ctrl-alt-delete")
        q.wait_console("percloud: ORDER=", 120, mark)  # GRUB again: a real reboot
        box.state_when_up(q, 400)
        boot2 = q.console_since(mark)
        results["x86-64 boot-to-HTTPS (reboot, counted from Ctrl-Alt-Del)"] = None
        if "growing" in boot2:
            fail("the second boot grew /data again")
        status, _, body = box.dav_get("/survives-reboot.bin")
        if status != 200 or body != payload:
            fail(f"after the reboot the file is {status}, {len(body)} bytes")
        note("second boot: nothing grown again, the file survived the reboot")
        box.login()

        # Power cut: upload files one after another, kill QEMU while one is in flight.
        acked = upload_until_cut(box, q)
    finally:
        q.kill()

    note(f"power cut after {len(acked)} acknowledged uploads; booting again")
    q = Qemu(x86_argv(run, disk, port), log)
    try:
        box.state_when_up(q, 400)
        results["x86-64 boot-to-HTTPS (after the power cut)"] = time.monotonic() - q.started
        console = q.console_since(0)
        if "data: filesystem clean" not in console and "data: filesystem errors corrected" not in console:
            fail("the initramfs did not report a clean (or cleanly repaired) data filesystem")
        note("e2fsck: " + ("clean" if "data: filesystem clean" in console else "journal/errors corrected"))
        box.login()
        for name, content in acked.items():
            status, _, body = box.dav_get(name)
            if status != 200 or body != content:
                fail(f"acknowledged {name} is {status}, {len(body)} bytes after the power cut")
        note(f"all {len(acked)} acknowledged files intact")
        store_fsck(box)
    finally:
        q.kill()
    return results


def upload_until_cut(box, q):
    acked = {}
    stop = threading.Event()

    def cutter():
        # Let a few uploads finish, then pull the plug while another one is on the wire.
        while len(acked) < 5 and not stop.is_set():
            time.sleep(0.05)
        time.sleep(0.3)
        q.kill()

    threading.Thread(target=cutter, daemon=True).start()
    try:
        for i in range(200):
            name = f"/cut/file-{i:03}.bin"
            content = os.urandom(200_000 + i * 1000)
            if i == 0:
                status, _, _ = box.request("MKCOL", "/dav/cut/", None, {
                    "Authorization": "Basic " + base64.b64encode(f"{OWNER}:{PASSWORD}".encode()).decode()})
            try:
                status, _ = box.dav_put(name, content, timeout=20)
            except (OSError, http.client.HTTPException, ssl.SSLError):
                break
            if status in (201, 204):
                acked[name] = content
    finally:
        stop.set()
    if len(acked) < 5:
        fail(f"only {len(acked)} uploads were acknowledged before the cut")
    return acked


def store_fsck(box):
    box.api("POST", "/api/admin/fsck", None, expect=202)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        fsck = box.api("GET", "/api/admin/storage")["fsck"]
        if fsck and not fsck["running"]:
            if not fsck["clean"]:
                fail(f"store fsck after the power cut: {fsck['problems']}")
            note(f"store fsck clean ({fsck['chunks_checked']} chunks)")
            return
        time.sleep(1)
    fail("store fsck did not finish within 120 s")


# ---------------------------------------------------------------- arm64 (virt and raspi4b)

def partitions(image):
    table = json.loads(subprocess.run(["sfdisk", "-J", image], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]
    return {int(p["node"].rsplit("img", 1)[1]): p["start"] * 512 for p in table["partitions"]}


def pi_boot_files(image, run):
    """Kernel, initramfs, DTB and command line of slot A, read from its FAT partition."""
    offset = partitions(image)[2]
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    for name in ("vmlinuz", "initrd.img", "bcm2711-rpi-4-b.dtb", "cmdline.txt"):
        subprocess.run(["mcopy", "-o", "-i", f"{image}@@{offset}", f"::{name}", f"{run}/{name}"],
                       check=True, env=env)
    args = open(f"{run}/cmdline.txt").read().split()
    return [a for a in args if not a.startswith("console=")] + ["console=ttyAMA0,115200"]


def raspi4b_dtb(run):
    """Test-only edits to a copy of Debian's DTB so QEMU's raspi4b model boots it
    (notes/testbeds.md): no HDMI, SD on the Arasan controller, no Bluetooth, USB host,
    no watchdog."""
    dtb = f"{run}/bcm2711-rpi-4-b.dtb"

    def fdtput(*a):
        subprocess.run(["fdtput", *a], check=True)

    nodes = subprocess.run(["fdtget", "-l", dtb, "/soc"], capture_output=True, text=True,
                           check=True).stdout.split()
    for node in nodes:
        if "@7ef0" in node:
            fdtput("-t", "s", dtb, f"/soc/{node}", "status", "disabled")
    fdtput("-d", dtb, "/soc/mmc@7e300000", "mmc-pwrseq")
    fdtput("-d", dtb, "/soc/mmc@7e300000", "non-removable")
    fdtput("-r", dtb, "/soc/mmc@7e300000/wifi@1")
    fdtput("-t", "s", dtb, "/emmc2bus/mmc@7e340000", "status", "disabled")
    fdtput("-r", dtb, "/soc/serial@7e201000/bluetooth")
    fdtput("-t", "s", dtb, "/soc/usb@7e980000", "dr_mode", "host")
    # QEMU's model of the PM watchdog resets the machine as soon as percloud arms it: the
    # watchdog is tested on x86 (i6300esb) instead.
    fdtput("-t", "s", dtb, "/soc/watchdog@7e100000", "status", "disabled")
    return dtb


def raspi4b_argv(run, dtb, disk, port, cmdline):
    """QEMU's raspi4b with the image's kernel, the test DTB and the SD card, and a user-mode
    network for the USB network device that plug_usb_net attaches later. `cmdline` must
    keep the kernel's info messages on the console (loglevel=7): plug_usb_net waits for one.
    One host thread runs the four cores: with a thread each, the kernel's ftrace set-up
    (it patches 44,279 call sites, stopping every core for each, while three of them spin
    in QEMU's boot stub) took 88-96 s of a 2-core host before the first driver probed;
    with one thread percloud starts 6.5 s after power-on."""
    return ["qemu-system-aarch64", "-M", "raspi4b", "-dtb", dtb,
            "-drive", f"if=sd,format=qcow2,file={disk}",
            "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:443",
            "-monitor", f"unix:{run}/monitor.sock,server=on,wait=off",
            "-kernel", f"{run}/vmlinuz", "-initrd", f"{run}/initrd.img", "-append", " ".join(cmdline),
            "-display", "none", "-serial", "stdio", "-no-user-config", "-accel", "tcg,thread=single"]


def raspi4b_cmdline(cmdline):
    """The image's command line for the raspi4b tests: the kernel's info messages on the
    console (plug_usb_net waits for one), and the PL011 as an early console. Without it the
    kernel replays its log only once the serial driver has probed, and on QEMU's raspi4b
    that replay held the boot up: percloud started 28-30 s after power-on instead of 13-19 s
    here, and a loaded CI host showed the first console line only after 85-108 s."""
    kept = [a for a in cmdline if a not in ("quiet",) and not a.startswith("loglevel=")]
    return kept + ["loglevel=7", "earlycon=pl011,mmio32,0xfe201000"]


def plug_usb_net(q, run, since=0, name="net0"):
    """Plugs QEMU's usb-net in once the guest's dwc2 host driver has its root hub, as a user
    plugs a cable into a running box. Present from power-on, the device races the driver's
    start-up: the driver clears its port-connected flag after the model has raised the
    connect interrupt, every transfer then fails with "dwc2 ... Not connected" and the
    guest never gets a network (about one boot in two here, more on a fast idle host). A
    plugged device stays through a machine reset, and cannot be unplugged safely while the
    guest talks to it (QEMU's dwc2 model asserts on a transfer to a removed device)."""
    q.wait_console("USB hub found", 180, since)
    monitor(run, f"device_add usb-net,netdev=n0,id={name}")


def test_arm64(image, run, machine):
    cmdline = pi_boot_files(image, run)
    disk = overlay(image, run)
    port = free_port()
    net = ["-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:443"]
    common = ["-kernel", f"{run}/vmlinuz", "-initrd", f"{run}/initrd.img", "-append", " ".join(cmdline),
              "-display", "none", "-serial", "stdio", "-no-user-config", "-accel", "tcg"]
    if machine == "virt":
        argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", "max,pauth-impdef=on", "-smp", "2",
                "-m", "1024", "-nodefaults",
                "-drive", f"if=none,id=d0,format=qcow2,file={disk}", "-device", "virtio-blk-pci,drive=d0",
                "-device", "virtio-net-pci,netdev=n0,romfile="] + net + common
        timeout = 300
    else:
        argv = raspi4b_argv(run, raspi4b_dtb(run), disk, port, raspi4b_cmdline(cmdline))
        timeout = 240  # boots to HTTPS in 22 s here (one TCG thread); a loaded CI host is slower
    note(f"arm64 on QEMU {machine}: {os.path.basename(image)}")
    q = Qemu(argv, os.path.join(run, "console.log"))
    try:
        if machine == "raspi4b":
            plug_usb_net(q, run)
        state = Box(port).state_when_up(q, timeout)
        took = time.monotonic() - q.started
        if state["claimed"]:
            fail("a new box must start unclaimed")
        if machine == "virt":
            q.wait_console("first boot: growing", 5)
        q.wait_console("is ready. Open in a browser", 60)
        note(f"HTTPS answered after {took:.1f} s (unclaimed)")
        return {f"rpi4-64 image on QEMU {machine} boot-to-HTTPS": took}
    finally:
        q.kill()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("target", choices=["x86-64", "arm64-virt", "rpi4-raspi4b"])
    parser.add_argument("--image")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (kill_all(), sys.exit(143)))
    board = "x86-64" if args.target == "x86-64" else "rpi4-64"
    image = os.path.abspath(args.image) if args.image else newest_image(board)  # qcow2 backing file
    run = tempfile.mkdtemp(prefix=f"percloud-{args.target}-", dir=os.path.join(ROOT, "out"))
    note(f"console log: {run}/console.log")
    try:
        if args.target == "x86-64":
            results = test_x86(image, run)
        else:
            results = test_arm64(image, run, "virt" if args.target == "arm64-virt" else "raspi4b")
    except AssertionError as e:
        report_failure(e, f"{run}/console.log")
        return 1
    finally:
        kill_all()
    for what, seconds in results.items():
        if seconds is not None:
            note(f"{what}: {seconds:.1f} s")
    shutil.rmtree(run, ignore_errors=True)
    note("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
