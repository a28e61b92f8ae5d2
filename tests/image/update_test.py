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
  tests/image/update_test.py update   v1 boots; bad bundles are refused with slot B
                                      untouched; an update whose system fails its health
                                      gate comes back to v1 by itself and says so; a power
                                      cut while the slot is written leaves v1 booting and
                                      the update can be retried; the v2 bundle then installs
                                      through the API, boots, keeps files and accounts and
                                      shows in the history.

Options: --dir DIR (default out/x86-64): the v1 image percloud-x86-64-<v1>.img, and the
bundles and slot images next to it (see tests/image/run for how they are built).
"""
import argparse
import glob
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
                       kill_all, monitor, note, x86_argv, free_port)

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
        subprocess.run(["qemu-img", "dd", "-f", "qcow2", "-O", "raw", f"bs={SECTOR}",
                        f"skip={offset // SECTOR}", f"count={(length + SECTOR - 1) // SECTOR}",
                        f"if={self.qcow2}", f"of={out}"], check=True, capture_output=True)
        with open(out, "rb") as f:
            data = f.read()[:length]
        os.unlink(out)
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


# ---------------------------------------------------------------- helpers

def find_one(folder, pattern):
    found = sorted(glob.glob(os.path.join(folder, pattern)))
    if not found:
        fail(f"no {pattern} in {folder} (tests/image/run builds it)")
    return found[-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["trial"])
    parser.add_argument("--dir", default=os.path.join(ROOT, "out", "x86-64"))
    parser.add_argument("--image")
    args = parser.parse_args()
    args.image = args.image or find_one(args.dir, "percloud-x86-64-[0-9]*[0-9].img")
    signal.signal(signal.SIGTERM, lambda *_: (kill_all(), sys.exit(143)))
    run = tempfile.mkdtemp(prefix=f"percloud-update-{args.scenario}-", dir=os.path.join(ROOT, "out"))
    note(f"{args.scenario}: {os.path.basename(args.image)}; console log: {run}/console.log")
    try:
        results = {"trial": test_trial}[args.scenario](args, run)
    except AssertionError as e:
        note(f"FAILED: {e} (console log: {run}/console.log)")
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
