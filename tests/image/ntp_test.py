#!/usr/bin/env python3
"""Time from NTP in the real image: the rpi4-64 image boots on QEMU `-M virt` with its
clock three hours ahead (`-rtc base=`), finds the NTP Pool through DHCP and DNS like a box at
home would, and percloud's ntp worker must step the clock back to the server's time and
log it.

Everything runs in a network and mount namespace of its own (the script re-executes itself
under `unshare`): chronyd serves the namespace's time on 127.0.0.1:123 without touching any
clock (`-x`); a small DNS responder answers every name with 10.0.2.2, QEMU's address for the
host, and /etc/resolv.conf is bind-mounted to point QEMU's DNS proxy at it. Nothing leaves the
namespace and the host's clock is never set.

  tests/image/ntp_test.py [--image PATH]     (root; Debian packages chrony, qemu-system-arm)
"""
import argparse
import email.utils
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import boot_test  # noqa: E402  (the image tests' QEMU and boot-file helpers)

AHEAD = 3 * 3600  # the guest's clock starts this far ahead of the truth
HOST_FROM_GUEST = "10.0.2.2"  # QEMU user networking: the host's loopback as the guest sees it
STEPPED = re.compile(r"clock stepped from (.+? GMT) to (.+? GMT)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def dns_responder(sock):
    """Answers every A query with HOST_FROM_GUEST and every other type with no records."""
    while True:
        try:
            query, peer = sock.recvfrom(512)
        except OSError:
            return
        if len(query) < 12:
            continue
        end = 12
        while end < len(query) and query[end] != 0:
            end += query[end] + 1
        question = query[12:end + 5]
        qtype = struct.unpack("!H", query[end + 1:end + 3])[0] if end + 3 <= len(query) else 0
        answers = 1 if qtype == 1 else 0
        header = query[:2] + struct.pack("!HHHHH", 0x8180, 1, answers, 0, 0)
        answer = b""
        if answers:
            answer = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(HOST_FROM_GUEST)
        sock.sendto(header + question + answer, peer)


def start_chronyd(run):
    if not shutil.which("chronyd"):
        boot_test.fail("chronyd is missing: install the Debian package chrony")
    conf = os.path.join(run, "chrony.conf")
    with open(conf, "w") as f:
        f.write("port 123\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 7\n"
                f"cmdport 0\npidfile {run}/chronyd.pid\n")
    return subprocess.Popen(["chronyd", "-d", "-x", "-f", conf], stdin=subprocess.DEVNULL,
                            stdout=open(os.path.join(run, "chronyd.log"), "w"),
                            stderr=subprocess.STDOUT)


def in_namespace(image, run):
    """The test proper; runs inside the fresh network and mount namespace."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open(os.path.join(run, "resolv.conf"), "w") as f:
        f.write("nameserver 127.0.0.1\n")
    subprocess.run(["mount", "--bind", os.path.join(run, "resolv.conf"), "/etc/resolv.conf"],
                   check=True)
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 53))
    threading.Thread(target=dns_responder, args=(dns,), daemon=True).start()
    chronyd = start_chronyd(run)
    try:
        took = boot_and_wait_for_the_step(image, run)
    finally:
        chronyd.kill()
        chronyd.wait()
        dns.close()
    shutil.rmtree(run, ignore_errors=True)
    boot_test.note(f"NTP in the image: clock stepped {AHEAD // 3600} h back after {took:.1f} s")


def boot_and_wait_for_the_step(image, run):
    cmdline = boot_test.pi_boot_files(image, run)
    disk = boot_test.overlay(image, run)
    rtc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + AHEAD))
    argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", "max,pauth-impdef=on", "-smp", "2",
            "-m", "1024", "-nodefaults", "-rtc", f"base={rtc}",
            "-drive", f"if=none,id=d0,format=qcow2,file={disk}", "-device", "virtio-blk-pci,drive=d0",
            "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile=",
            "-kernel", f"{run}/vmlinuz", "-initrd", f"{run}/initrd.img", "-append", " ".join(cmdline),
            "-display", "none", "-serial", "stdio", "-no-user-config", "-accel", "tcg"]
    boot_test.note(f"arm64 on QEMU virt, guest clock set to {rtc} UTC ({AHEAD // 3600} h ahead)")
    q = boot_test.Qemu(argv, os.path.join(run, "console.log"))
    try:
        q.wait_console("clock stepped from", 180)
        took = time.monotonic() - q.started
        seen = time.time()
        console = ANSI.sub("", q.console_since(0))
        line = next(l for l in console.splitlines() if "clock stepped from" in l)
        match = STEPPED.search(line)
        if not match:
            boot_test.fail(f"cannot read the step from {line!r}")
        before, after = (email.utils.parsedate_to_datetime(d).timestamp() for d in match.groups())
        if abs(before - (seen + AHEAD)) > 120:
            boot_test.fail(f"the guest's clock was not {AHEAD} s ahead before the step: {line!r}")
        if abs(after - seen) > 30:
            boot_test.fail(f"stepped to {match.group(2)}, but the server's time is "
                           f"{time.strftime('%H:%M:%S', time.gmtime(seen))}: {line!r}")
        if f"server={HOST_FROM_GUEST}:123" not in line:
            boot_test.fail(f"the step names no server {HOST_FROM_GUEST}:123: {line!r}")
        boot_test.note(f"stepped {match.group(1)} -> {match.group(2)} after {took:.1f} s")
        return took
    finally:
        q.kill()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--image")
    args = parser.parse_args()
    image = os.path.abspath(args.image) if args.image else boot_test.newest_image("rpi4-64")
    if os.environ.get("PERCLOUD_NTP_NAMESPACE") != "1":
        # Again, inside new namespaces: nothing we start is visible outside them.
        env = dict(os.environ, PERCLOUD_NTP_NAMESPACE="1")
        os.execvpe("unshare", ["unshare", "--net", "--mount", "--", sys.executable,
                               os.path.abspath(__file__), "--image", image], env)
    signal.signal(signal.SIGTERM, lambda *_: (boot_test.kill_all(), sys.exit(143)))
    run = tempfile.mkdtemp(prefix="percloud-ntp-", dir=os.path.join(boot_test.ROOT, "out"))
    boot_test.note(f"console log: {run}/console.log")
    try:
        in_namespace(image, run)
    except AssertionError as e:
        boot_test.report_failure(e, os.path.join(run, "console.log"))
        return 1
    finally:
        boot_test.kill_all()
    boot_test.note("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
