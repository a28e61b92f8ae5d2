#!/usr/bin/env python3
"""System tests of A/B updates on the x86-64 image in QEMU (TCG, OVMF): the bootloader's
trial boots and the whole update through the box's API. Run by tests/image/run; every wait
is bounded and QEMU is always killed. Disks are throwaway qcow2 overlays over a copy of the
image; what the box wrote is read back from them after QEMU has stopped.

  tests/image/update_test.py trial    GRUB and the watchdog alone: slot B holds a system
                                      whose HTTPS cannot come up (--break-https), and the
                                      GRUB environment (written from the host with
                                      grub-editenv) gives it one try. It boots once, nothing
                                      feeds the watchdog, the hardware resets the box, and
                                      GRUB goes back to slot A, which serves.
  tests/image/update_test.py pi-layout  the Raspberry Pi image's tryboot files (no QEMU: it
                                      cannot run the Pi firmware): autoboot.txt, a cmdline.txt
                                      per slot, release file and keyring in both slots; the
                                      image's bundle carries the system and both boot
                                      partitions, and installing it (host percloud, fake
                                      bootloader) into files standing in for slot B and boot
                                      B gives exactly the image's p6 and p3.
  tests/image/update_test.py update   v1 boots; bad bundles are refused with slot B
                                      untouched; an update whose system fails its health
                                      gate comes back to v1 by itself and says so; a power
                                      cut while the slot is written leaves v1 booting and
                                      the update can be retried; the v2 bundle then installs
                                      through the API, boots, keeps files and accounts and
                                      shows in the history.

Options: --dir DIR (default out/x86-64): the v1 image percloud-x86-64-<v1>.img, and the
bundles and slot images next to it (see tests/image/run for how they are built);
--v1/--v2 their versions (default: the workspace's, and its next patch); --key and
--host-percloud sign the bundles the test makes itself (other board, unknown key); --image
another image (pi-layout: default out/rpi4-64/percloud-rpi4-64-<v1>.img).
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from boot_test import (DISK_SIZE, OWNER, PASSWORD, ROOT, Box, Qemu, fail,  # noqa: E402
                       kill_all, monitor, note, report_failure, x86_argv, free_port)

SECTOR = 512
GRUBENV = "::EFI/BOOT/grubenv"
MTOOLS_ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1")


# ---------------------------------------------------------------- disks, read and written from the host

def gpt_partitions(path):
    """{number: (offset, size)} in bytes, from the image's partition table."""
    import json
    table = json.loads(subprocess.run(["sfdisk", "-J", path], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]
    parts = {}
    for p in table["partitions"]:
        number = int(re.search(r"(\d+)$", p["node"]).group(1))
        parts[number] = (p["start"] * SECTOR, p["size"] * SECTOR)
    return parts


class Disk:
    """A throwaway disk for one scenario: a raw copy of the image (which the host may change
    before the first boot) under a qcow2 overlay of DISK_SIZE that QEMU boots."""

    ESP, SLOT_A, SLOT_B, DATA = 1, 2, 3, 4

    def __init__(self, image, run):
        self.run = run
        self.base = os.path.join(run, "base.img")
        subprocess.run(["cp", "--sparse=always", image, self.base], check=True)
        self.parts = gpt_partitions(self.base)
        self.qcow2 = os.path.join(run, "disk.qcow2")

    def write_partition(self, number, data_path):
        offset, size = self.parts[number]
        if os.path.getsize(data_path) > size:
            fail(f"{data_path} does not fit partition {number}")
        subprocess.run(["dd", f"if={data_path}", f"of={self.base}", "bs=1M", "conv=notrunc",
                        f"seek={offset}", "oflag=seek_bytes", "status=none"], check=True)

    def set_grubenv(self, **values):
        """Sets variables of the ESP's GRUB environment with the real grub-editenv."""
        offset, _ = self.parts[self.ESP]
        local = os.path.join(self.run, "grubenv")
        subprocess.run(["mcopy", "-o", "-i", f"{self.base}@@{offset}", GRUBENV, local],
                       check=True, env=MTOOLS_ENV)
        subprocess.run(["grub-editenv", local, "set"] + [f"{k}={v}" for k, v in values.items()],
                       check=True)
        subprocess.run(["mcopy", "-o", "-i", f"{self.base}@@{offset}", local, GRUBENV],
                       check=True, env=MTOOLS_ENV)

    def boot_disk(self):
        """The overlay QEMU boots (made on first use; later calls reuse it)."""
        if not os.path.exists(self.qcow2):
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                            self.base, self.qcow2, DISK_SIZE], check=True)
        return self.qcow2

    def read_partition(self, number, length=None):
        """Bytes of a partition as the box left them (QEMU must have stopped)."""
        offset, size = self.parts[number]
        length = size if length is None else length
        out = os.path.join(self.run, f"part{number}.raw")
        skip = offset // SECTOR
        # qemu-img dd counts `count` from the start of the input, skipped blocks included.
        count = skip + (length + SECTOR - 1) // SECTOR
        subprocess.run(["qemu-img", "dd", "-f", "qcow2", "-O", "raw", f"bs={SECTOR}",
                        f"skip={skip}", f"count={count}", f"if={self.qcow2}", f"of={out}"],
                       check=True, capture_output=True)
        with open(out, "rb") as f:
            data = f.read()
        os.unlink(out)
        if len(data) != length:
            fail(f"read {len(data)} bytes of partition {number}, wanted {length}")
        return data

    def grubenv(self):
        """The GRUB environment on the ESP as the box left it, read with grub-editenv."""
        esp = os.path.join(self.run, "esp.raw")
        with open(esp, "wb") as f:
            f.write(self.read_partition(self.ESP))
        local = os.path.join(self.run, "grubenv.after")
        subprocess.run(["mcopy", "-o", "-i", esp, GRUBENV, local], check=True, env=MTOOLS_ENV)
        listed = subprocess.run(["grub-editenv", local, "list"], capture_output=True, text=True,
                                check=True).stdout
        os.unlink(esp)
        return dict(line.split("=", 1) for line in listed.splitlines() if "=" in line)


def grub_lines(console):
    """GRUB's choices in a console log, one per boot: [(ORDER, A_TRIES, B_TRIES, slot)]. GRUB
    prints each line twice (serial and the firmware console, which is the serial port too)."""
    found = re.findall(r"percloud: ORDER=([AB ]+) A_TRIES=(\d) B_TRIES=(\d): booting slot ([AB])",
                       console)
    return [c for i, c in enumerate(found) if i % 2 == 0]


def reboot_and_stop(run, q, timeout=120):
    """A clean reboot (Ctrl-Alt-Del: init stops percloud, unmounts, syncs); QEMU is killed
    once GRUB shows up again, so everything the system wrote has reached the disk."""
    mark = q.mark()
    monitor(run, "sendkey ctrl-alt-delete")
    q.wait_console("percloud: ORDER=", timeout, mark)
    q.kill()


# ---------------------------------------------------------------- trial: GRUB and the watchdog

def test_trial(args, run):
    results = {}
    disk = Disk(args.image, run)
    broken = find_one(args.dir, "percloud-x86-64-*-broken-https.system.squashfs")
    note(f"slot B <- {os.path.basename(broken)}; grubenv ORDER='B A' B_TRIES=1 (a trial)")
    disk.write_partition(Disk.SLOT_B, broken)
    disk.set_grubenv(ORDER="B A", A_TRIES="3", B_TRIES="1")
    port = free_port()
    box = Box(port)
    q = Qemu(x86_argv(run, disk.boot_disk(), port), os.path.join(run, "console.log"))
    try:
        q.wait_console("booting slot B", 120)
        q.wait_console("starting (slot B)", 120)
        q.wait_console("watchdog armed until percloud feeds it", 60)
        q.wait_console("percloud exited", 120)  # HTTPS cannot be bound: init retries it
        armed = time.monotonic()
        note("slot B runs on trial, its percloud cannot serve; waiting for the watchdog")
        mark = q.mark()
        q.wait_console("booting slot A", 240, mark)
        results["trial: percloud failing -> watchdog reset -> GRUB again"] = time.monotonic() - armed
        trial_boot = q.console_since(0)[:mark + 1]
        for sign in ("Restarting system", "Kernel panic", "initramfs: FATAL"):
            if sign in trial_boot:
                fail(f"the trial boot ended by {sign!r}, not by the watchdog")
        choices = grub_lines(q.console_since(0))
        if [c[3] for c in choices] != ["B", "A"] or choices[1][2] != "0":
            fail(f"GRUB's choices were {choices}; wanted B on trial (1 try), then A with B at 0")
        note(f"GRUB: {choices}")
        box.state_when_up(q, 300)
        results["trial: back on slot A, HTTPS answers after"] = time.monotonic() - armed
        if "starting (slot A)" not in q.console_since(mark):
            fail("slot A did not start after the failed trial")
        q.wait_console("watchdog armed: fed while healthy", 60, mark)
        note("slot A serves again and feeds the watchdog")
        reboot_and_stop(run, q)
    finally:
        q.kill()
    env = disk.grubenv()
    note(f"grubenv after: {env}")
    if env.get("B_TRIES") != "0":
        fail(f"slot B got tries back after failing its trial: {env}")
    return results


# ---------------------------------------------------------------- update: the whole thing through the API

class Updater:
    """The box's update API as the owner uses it (docs/update.md)."""

    def __init__(self, box):
        self.box = box

    def status(self):
        return self.box.api("GET", "/api/admin/update")

    def install(self, bundle_path):
        with open(bundle_path, "rb") as f:
            body = f.read()
        status, _, data = self.box.request("POST", "/api/admin/update/install", body,
                                           {"Content-Type": "application/octet-stream"},
                                           timeout=300)
        if status != 202:
            fail(f"install of {os.path.basename(bundle_path)}: {status} {data[:300]!r}")

    def wait_phase(self, phases, timeout, poll=0.5):
        """Polls the status until progress.phase is one of `phases`; returns the status."""
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            st = self.status()
            last = st["progress"]
            if last["phase"] in phases:
                return st
            time.sleep(poll)
        fail(f"update phase never became {phases} within {timeout} s (last: {last})")


def bundle_parts(data):
    """(manifest end, signature start, payload start) offsets of a .pcup (docs/update.md)."""
    m = int.from_bytes(data[8:12], "little")
    return 12 + m, 20 + m, 84 + m


def bad_bundles(args, run, good):
    """Bundles the box must refuse, made from the good v2 bundle: {what: (path, reason word)}."""
    with open(good, "rb") as f:
        data = bytearray(f.read())
    _, sig, payload = bundle_parts(data)
    made = {}

    def write(name, content):
        path = os.path.join(run, name)
        with open(path, "wb") as f:
            f.write(content)
        return path

    flipped = bytearray(data)
    flipped[sig + 10] ^= 0x01
    made["bad signature"] = write("bad-signature.pcup", flipped)
    tampered = bytearray(data)
    tampered[payload + (len(data) - payload) // 2] ^= 0x01
    made["tampered payload"] = write("tampered.pcup", tampered)
    slot = find_one(args.dir, f"percloud-x86-64-{args.v2}.system.squashfs")
    other_key = os.path.join(run, "other.key")
    subprocess.run([args.host_percloud, "update", "keygen", "--out", other_key], check=True,
                   capture_output=True)
    for what, key, board in (("unknown key", other_key, "x86-64"),
                             ("other board", args.key, "rpi4-64")):
        out = os.path.join(run, what.replace(" ", "-") + ".pcup")
        subprocess.run([args.host_percloud, "update", "pack", "--key", key, "--board", board,
                        "--version", args.v2, "--payload", slot, "--out", out], check=True,
                       capture_output=True)
        made[what] = out
    return made


def test_update(args, run):
    results = {}
    disk = Disk(args.image, run)
    v1_slot = find_one(args.dir, f"percloud-x86-64-{args.v1}.system.squashfs")
    v2_slot = find_one(args.dir, f"percloud-x86-64-{args.v2}.system.squashfs")
    good = find_one(args.dir, f"percloud-x86-64-{args.v2}.pcup")
    broken = find_one(args.dir, f"percloud-x86-64-{args.v2}-broken-https.pcup")
    bad = bad_bundles(args, run, good)
    port = free_port()
    box = Box(port)
    updater = Updater(box)
    log = os.path.join(run, "console.log")
    payload = os.urandom(400_000)

    def boot():
        q = Qemu(x86_argv(run, disk.boot_disk(), port), log)
        box.state_when_up(q, 400)
        return q

    # v1 boots; the owner claims it, stores a file and adds an account.
    note(f"v1 ({args.v1}) boots")
    q = boot()
    try:
        claimed = box.api("POST", "/api/claim", {"name": OWNER, "password": PASSWORD})
        box.csrf = claimed["csrf"]
        status, data = box.dav_put("/before-update.bin", payload)
        if status not in (201, 204):
            fail(f"WebDAV PUT: {status} {data[:200]!r}")
        box.api("POST", "/api/admin/users", {"name": "alice", "password": PASSWORD + " 2",
                                             "quota": None}, expect=201)
        st = updater.status()
        if st["running"]["version"] != args.v1 or st["running"]["slot"] not in ("a", "A"):
            fail(f"v1 reports {st['running']}")
        note(f"claimed, a file stored, alice added; update status: running {st['running']}")

        # Bundles that must be refused, with nothing written.
        for what, path in bad.items():
            started = time.monotonic()
            updater.install(path)
            st = updater.wait_phase(("failed", "reboot"), 180)
            if st["progress"]["phase"] != "failed":
                fail(f"the {what} bundle was not refused: {st['progress']}")
            latest = st["history"][0]
            if latest["outcome"] != "refused" or latest["to_version"] not in (args.v2, ""):
                fail(f"the {what} bundle's history entry: {latest}")
            note(f"{what}: refused in {time.monotonic() - started:.1f} s: {st['progress']['message']}")
        reboot_and_stop(run, q)
    finally:
        q.kill()
    with open(v1_slot, "rb") as f:
        v1 = f.read()
    if disk.read_partition(Disk.SLOT_B, len(v1)) != v1:
        fail("slot B changed although every bundle was refused")
    note("slot B still holds v1, byte for byte")

    # An update whose system cannot serve HTTPS: the box must come back to v1 by itself.
    q = boot()
    try:
        box.login()
        started = time.monotonic()
        mark = q.mark()
        updater.install(broken)
        q.wait_console("booting slot B", 300, mark)
        note(f"{os.path.basename(broken)} installed; the box restarted into slot B on trial")
        q.wait_console("booting slot A", 300, mark)
        box.state_when_up(q, 300)
        results["failed update: install -> trial -> watchdog -> v1 serving"] = time.monotonic() - started
        box.login()
        st = updater.status()
        if st["running"]["version"] != args.v1 or str(st["running"]["slot"]).lower() != "a":
            fail(f"after the failed trial the box runs {st['running']}")
        latest = st["history"][0]
        if latest["outcome"] != "failed" or not st["report"] or args.v2 not in st["report"]:
            fail(f"the failed update is not reported: report={st['report']!r}, latest={latest}")
        note(f"back on v1 by itself; report: {st['report']!r}")

        # A power cut while the good v2 is written: writes are slowed to 2 MB/s (a slow SD
        # card) so that the cut lands in the write.
        updater.install(good)
        monitor(run, "block_set_io_throttle d0 0 0 2000000 0 0 0")
        st = updater.wait_phase(("write", "read back", "arm", "reboot", "failed"), 120, poll=0.2)
        if st["progress"]["phase"] != "write":
            fail(f"the slot write was over before the cut: {st['progress']}")
        note(f"power cut while writing slot B ({st['progress']['done']} of {st['progress']['total']} bytes)")
    finally:
        q.kill()

    q = boot()
    try:
        if "booting slot A" not in q.console_since(0) or "starting (slot A)" not in q.console_since(0):
            fail("after the power cut the box did not boot v1 from slot A")
        box.login()
        st = updater.status()
        if st["running"]["version"] != args.v1:
            fail(f"after the power cut the box runs {st['running']}")
        note("after the power cut v1 boots normally; installing the v2 bundle again")
        started = time.monotonic()
        mark = q.mark()
        updater.install(good)
        q.wait_console("booting slot B", 300, mark)
        box.state_when_up(q, 300)
        end = time.monotonic() + 300
        while True:
            box.login()
            st = updater.status()
            if st["history"] and st["history"][0]["outcome"] == "committed":
                break
            if time.monotonic() > end:
                fail(f"v2 was never committed: {st}")
            time.sleep(2)
        results["update: install -> reboot -> v2 committed"] = time.monotonic() - started
        if st["running"]["version"] != args.v2 or str(st["running"]["slot"]).lower() != "b":
            fail(f"after the update the box runs {st['running']}")
        status, _, body = box.dav_get("/before-update.bin")
        if status != 200 or body != payload:
            fail(f"the file stored before the update is {status}, {len(body)} bytes")
        alice = Box(port)
        alice.api("POST", "/api/login", {"name": "alice", "password": PASSWORD + " 2"})
        outcomes = [e["outcome"] for e in st["history"]]
        for wanted in ("committed", "failed", "refused"):
            if wanted not in outcomes:
                fail(f"the history lacks a {wanted} entry: {outcomes}")
        note(f"v2 runs from slot B; files and accounts intact; history: {outcomes}")
        reboot_and_stop(run, q)
    finally:
        q.kill()
    env = disk.grubenv()
    with open(v2_slot, "rb") as f:
        v2 = f.read()
    if disk.read_partition(Disk.SLOT_B, len(v2)) != v2:
        fail("slot B does not hold the v2 slot image")
    if env.get("ORDER") != "B A":
        fail(f"grubenv after the update: {env}")
    note(f"slot B holds v2 byte for byte; grubenv {env}")
    return results


# ---------------------------------------------------------------- the Raspberry Pi's A/B files

def test_pi_layout(args, run):
    """QEMU cannot run the Pi's GPU firmware, so what it would read is checked in the image:
    autoboot.txt picks slot A's boot partition and slot B's after a tryboot, each boot
    partition's cmdline.txt names its own slot, and both slots carry the release file and
    the keyring."""
    image = args.image or os.path.join(ROOT, "out", "rpi4-64", f"percloud-rpi4-64-{args.v1}.img")
    parts = {n: offset for n, (offset, _) in gpt_partitions(image).items()}

    def fat_file(number, name):
        out = os.path.join(run, f"p{number}-{name}")
        subprocess.run(["mcopy", "-o", "-i", f"{image}@@{parts[number]}", f"::{name}", out],
                       check=True, env=MTOOLS_ENV)
        with open(out, "rb") as f:
            return f.read().decode("utf-8", "replace")

    autoboot = fat_file(1, "autoboot.txt")
    sections, current = {}, "all"
    for line in autoboot.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            sections.setdefault(current, {})[key] = value
    want = {"all": {"tryboot_a_b": "1", "boot_partition": "2"}, "tryboot": {"boot_partition": "3"}}
    if sections != want:
        fail(f"autoboot.txt says {sections}, wanted {want}")
    signature = None
    for number, slot, root in ((2, "A", 5), (3, "B", 6)):
        args_ = fat_file(number, "cmdline.txt").split()
        if f"percloud.slot={slot}" not in args_:
            fail(f"p{number}'s cmdline.txt does not say percloud.slot={slot}: {args_}")
        roots = [a for a in args_ if a.startswith("percloud.root=PARTUUID=")]
        if len(roots) != 1 or not roots[0].endswith(f"-{root:02}"):
            fail(f"p{number}'s cmdline.txt does not boot partition {root}: {roots}")
        signature = roots[0].split("=")[-1].split("-")[0]
        for name in ("config.txt", "vmlinuz", "initrd.img", "start4.elf"):
            fat_file(number, name)  # present on both boot partitions
    with open(image, "rb") as f:
        f.seek(440)
        on_disk = f.read(4)[::-1].hex()
    if signature != on_disk:
        fail(f"cmdline.txt names disk {signature}, the image's MBR signature is {on_disk}")
    for number in (5, 6):
        offset, size = gpt_partitions(image)[number]
        slot = os.path.join(run, f"slot{number}.squashfs")
        subprocess.run(["dd", f"if={image}", f"of={slot}", "bs=1M", f"skip={offset}",
                        f"count={size}", "iflag=skip_bytes,count_bytes", "status=none"], check=True)
        release = subprocess.run(["unsquashfs", "-cat", slot, "etc/percloud/release"],
                                 capture_output=True, text=True, check=True).stdout
        if "BOARD=rpi4-64" not in release.split():
            fail(f"slot p{number}'s release file: {release!r}")
        keys = subprocess.run(["unsquashfs", "-l", slot, "etc/percloud/update-keys"],
                              capture_output=True, text=True, check=True).stdout
        if ".pub" not in keys:
            fail(f"slot p{number} has no keyring")
    note(f"autoboot.txt {sections}; p2 boots slot A (p5), p3 slot B (p6); both slots carry "
         "the release file and the keyring")
    install_pi_bundle(args, run, image)
    return {}


def partition_bytes(image, number, length=None):
    offset, size = gpt_partitions(image)[number]
    with open(image, "rb") as f:
        f.seek(offset)
        return f.read(size if length is None else length)


def install_pi_bundle(args, run, image):
    """The image's bundle, installed by a percloud on this machine into files standing in for
    slot B and boot B (boot = "fake", running slot A), must give exactly what the image has
    in p6 (the slot) and p3 (B's boot partition); A's files stay as they were."""
    bundle = os.path.join(os.path.dirname(image), f"percloud-rpi4-64-{args.v1}.pcup")
    with open(bundle, "rb") as f:
        head = f.read(12)
        manifest = json.loads(f.read(int.from_bytes(head[8:12], "little")))
    kinds = [(p["role"], p.get("slot")) for p in manifest["payloads"]]
    if kinds != [("system", None), ("boot", "a"), ("boot", "b")]:
        fail(f"the Pi bundle's payloads are {kinds}, wanted the system and a boot partition per slot")
    box = os.path.join(run, "box")
    os.makedirs(os.path.join(box, "keys"))
    os.makedirs(os.path.join(box, "data"))
    shutil.copy(f"{args.key}.pub", os.path.join(box, "keys", "signer.pub"))
    files = {name: os.path.join(box, name) for name in ("slot-a", "slot-b", "boot-a", "boot-b")}
    for name, path in files.items():
        with open(path, "wb") as f:
            f.write(f"{name} before the update".encode())
    with open(os.path.join(box, "release"), "w") as f:
        f.write("VERSION=0.0.0\nBOARD=rpi4-64\n")
    with open(os.path.join(box, "config.toml"), "w") as f:
        f.write("[update]\n" + "".join(f'{k.replace("-", "_")} = "{v}"\n' for k, v in files.items())
                + f'boot = "fake"\nfake_state = "{box}/fake-boot.json"\nkeyring = "{box}/keys"\n'
                + f'release_file = "{box}/release"\nreboot_command = ["true"]\n')
    data = os.path.join(box, "data")
    daemon = subprocess.Popen([args.host_percloud, "serve", "--data", data, "--config",
                               os.path.join(box, "config.toml"), "--listen", "127.0.0.1:0",
                               "--tls-listen", "127.0.0.1:0", "--no-discovery"],
                              stdout=subprocess.PIPE, stderr=open(os.path.join(run, "daemon.log"), "w"),
                              text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = daemon.stdout.readline()
            if not line or line.startswith("listening on http://"):
                break
        else:
            fail("the host percloud did not start listening")
        control = os.path.join(data, "control.sock")
        while time.monotonic() < deadline and daemon.poll() is None and not os.path.exists(control):
            time.sleep(0.1)
        if daemon.poll() is not None or not os.path.exists(control):
            fail(f"the host percloud does not serve its control socket: see {run}/daemon.log")
        ran = subprocess.run([args.host_percloud, "--data", data, "update", "install", bundle],
                             capture_output=True, text=True, timeout=300)
        if ran.returncode != 0:
            fail(f"installing the Pi bundle: {ran.stdout}{ran.stderr}")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    with open(files["slot-b"], "rb") as f:
        slot_b = f.read()
    if slot_b != partition_bytes(image, 6, len(slot_b)) or slot_b[:4] != b"hsqs":
        fail("slot B as installed differs from the image's p6")
    with open(files["boot-b"], "rb") as f:
        boot_b = f.read()
    if boot_b != partition_bytes(image, 3):
        fail("boot B as installed differs from the image's p3")
    for name in ("slot-a", "boot-a"):
        with open(files[name], "rb") as f:
            if f.read() != f"{name} before the update".encode():
                fail(f"{name} (the running slot's) was written")
    sizes = ", ".join(f'{p["role"]} {p.get("slot") or ""} {p["compressed_size"]}'.replace("  ", " ")
                      for p in manifest["payloads"])
    note(f"the Pi bundle ({os.path.getsize(bundle)} bytes: {sizes}) installs slot B = p6 "
         f"({len(slot_b)} bytes) and boot B = p3 ({len(boot_b)} bytes); A untouched")


# ---------------------------------------------------------------- helpers

def find_one(folder, pattern):
    found = sorted(glob.glob(os.path.join(folder, pattern)))
    if not found:
        fail(f"no {pattern} in {folder} (tests/image/run builds it)")
    return found[-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["trial", "update", "pi-layout"])
    parser.add_argument("--dir", default=os.path.join(ROOT, "out", "x86-64"))
    parser.add_argument("--image")
    parser.add_argument("--v1", help="the image's version (default: the workspace's)")
    parser.add_argument("--v2", help="the update's version (default: v1 with the patch + 1)")
    parser.add_argument("--key", default=os.path.join(ROOT, "out", "keys", "development.key"))
    parser.add_argument("--host-percloud",
                        default=os.path.join(ROOT, "target", "x86_64-unknown-linux-musl", "image", "percloud"))
    args = parser.parse_args()
    if not args.v1:
        with open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8") as f:
            args.v1 = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
    if not args.v2:
        major, minor, patch = args.v1.split("-")[0].split(".")
        args.v2 = f"{major}.{minor}.{int(patch) + 1}"
    if args.scenario != "pi-layout":
        args.image = args.image or os.path.join(args.dir, f"percloud-x86-64-{args.v1}.img")
    signal.signal(signal.SIGTERM, lambda *_: (kill_all(), sys.exit(143)))
    run = tempfile.mkdtemp(prefix=f"percloud-update-{args.scenario}-", dir=os.path.join(ROOT, "out"))
    note(f"{args.scenario}: work folder {run}")
    try:
        results = {"trial": test_trial, "update": test_update,
                   "pi-layout": test_pi_layout}[args.scenario](args, run)
    except AssertionError as e:
        report_failure(e, f"{run}/console.log")
        return 1
    finally:
        kill_all()
    for what, seconds in results.items():
        note(f"{what}: {seconds:.1f} s")
    shutil.rmtree(run, ignore_errors=True)
    note("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
