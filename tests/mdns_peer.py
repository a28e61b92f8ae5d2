#!/usr/bin/python3
"""An independent mDNS peer for tests/discovery.rs, on python3-zeroconf (no D-Bus).

  mdns_peer.py browse TYPE... [--host NAME] [--timeout S]
      browses TYPEs (e.g. _https._tcp) and resolves NAME (e.g. percloud.local); prints one
      JSON object {"host": [addresses], "services": {type: [{name, server, port, addresses,
      txt}]}} once every type has an instance and the host resolved, or at the timeout.
  mdns_peer.py watch TYPE [--timeout S]
      prints "added NAME" / "removed NAME" lines as they happen (flushed), until the timeout.
  mdns_peer.py flood TYPE COUNT [--garbage N]
      multicasts COUNT made-up instances of TYPE (each with a 40-entry TXT record and its own
      host) as unsolicited answers, plus N malformed packets; prints "sent".
  mdns_peer.py publish TYPE NAME PORT [k=v...]
      registers a service on this host's addresses, prints "ready", and keeps it until
      stdin closes or SIGTERM (then unregisters).
"""
import json
import signal
import socket
import sys
import threading
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf


def fq(ty):
    return ty if ty.endswith(".local.") else ty + ".local."


def browse(types, host, timeout):
    zc = Zeroconf(ip_version=IPVersion.V4Only)
    found = {t: {} for t in types}
    lock = threading.Lock()

    def on_change(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Removed:
            return
        info = zeroconf.get_service_info(service_type, name, timeout=3000)
        if info is None:
            return
        entry = {
            "name": name,
            "server": info.server,
            "port": info.port,
            "addresses": info.parsed_addresses(),
            "txt": {k.decode(): (v or b"").decode() for k, v in info.properties.items()},
        }
        with lock:
            found[service_type.removesuffix(".local.")][name] = entry

    browsers = [ServiceBrowser(zc, fq(t), handlers=[on_change]) for t in types]
    deadline = time.monotonic() + timeout
    addresses = []
    while time.monotonic() < deadline:
        if host and not addresses:
            info = ServiceInfo("_x._tcp.local.", "x._x._tcp.local.", server=host.rstrip(".") + ".")
            if info.request(zc, 1000):
                addresses = info.parsed_addresses()
        with lock:
            complete = all(found[t] for t in types)
        if complete and (addresses or not host):
            break
        time.sleep(0.2)
    for b in browsers:
        b.cancel()
    with lock:
        out = {"host": addresses, "services": {t: list(v.values()) for t, v in found.items()}}
    zc.close()
    print(json.dumps(out), flush=True)


def watch(ty, timeout):
    zc = Zeroconf(ip_version=IPVersion.V4Only)

    def on_change(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Added:
            print(f"added {name}", flush=True)
        elif state_change is ServiceStateChange.Removed:
            print(f"removed {name}", flush=True)

    browser = ServiceBrowser(zc, fq(ty), handlers=[on_change])
    time.sleep(timeout)
    browser.cancel()
    zc.close()


def publish(ty, name, port, props):
    zc = Zeroconf(ip_version=IPVersion.V4Only)
    addrs = [a for a in local_ipv4() if not a.startswith("127.")]
    info = ServiceInfo(
        fq(ty),
        f"{name}.{fq(ty)}",
        port=port,
        properties=dict(p.split("=", 1) for p in props),
        server=f"peer-{port}.local.",
        addresses=[socket.inet_aton(a) for a in addrs],
    )
    zc.register_service(info)
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    zc.unregister_service(info)
    zc.close()


def flood(ty, count, garbage):
    import random
    from zeroconf import DNSAddress, DNSOutgoing, DNSPointer, DNSService, DNSText, const

    addr = [a for a in local_ipv4() if not a.startswith("127.")][0]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    dest = ("224.0.0.251", 5353)
    txt = b"".join(bytes([len(e)]) + e for e in (f"k{i}=".encode() + b"v" * 200 for i in range(40)))
    unique = const._CLASS_IN | const._CLASS_UNIQUE
    for i in range(count):
        out = DNSOutgoing(const._FLAGS_QR_RESPONSE | const._FLAGS_AA)
        name = f"flood {i:06d}.{fq(ty)}"
        host = f"flood-{i}.local."
        out.add_answer_at_time(DNSPointer(fq(ty), const._TYPE_PTR, const._CLASS_IN, 4500, name), 0)
        out.add_answer_at_time(DNSService(name, const._TYPE_SRV, unique, 4500, 0, 0, 1000 + i % 60000, host), 0)
        out.add_answer_at_time(DNSText(name, const._TYPE_TXT, unique, 4500, txt), 0)
        out.add_answer_at_time(DNSAddress(host, const._TYPE_A, unique, 4500, socket.inet_aton(addr)), 0)
        for packet in out.packets():
            sock.sendto(packet, dest)
        if i % 50 == 49:
            time.sleep(0.01)
    rng = random.Random(7)
    for i in range(garbage):
        size = rng.randrange(1, 1500)
        packet = bytes(rng.randrange(256) for _ in range(size))
        if i % 2:
            # A plausible header claiming many records, then junk and loops of pointers.
            packet = b"\x00\x00\x84\x00\x00\x00\xff\xff\xff\xff\xff\xff" + b"\xc0\x0c" * 200
        sock.sendto(packet, dest)
    print("sent", flush=True)


def local_ipv4():
    import subprocess
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines()]


def main(argv):
    cmd, rest = argv[1], argv[2:]
    opts = {}
    args = []
    i = 0
    while i < len(rest):
        if rest[i].startswith("--"):
            opts[rest[i][2:]] = rest[i + 1]
            i += 2
        else:
            args.append(rest[i])
            i += 1
    timeout = float(opts.get("timeout", "10"))
    if cmd == "browse":
        browse(args, opts.get("host"), timeout)
    elif cmd == "watch":
        watch(args[0], timeout)
    elif cmd == "flood":
        flood(args[0], int(args[1]), int(opts.get("garbage", "0")))
    elif cmd == "publish":
        publish(args[0], args[1], int(args[2]), args[3:])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
