#!/usr/bin/python3
"""Writes the seed inputs of the `engine` fuzz target (seeds/engine/): valid
request sequences in the target's input format, so the fuzzer starts from
frames that get past every layer and mutates from there.

Input format (see fuzz_targets/engine.rs): one settings byte (bit 0:
authoritative), then per frame a 2-byte big-endian length, a clock step in
seconds, a flag byte (bit 0: fix the IPv4 checksum) and the frame.
"""
import os
import struct
import sys

from scapy.all import BOOTP, DHCP, IP, UDP, Dot1Q, Ether, mac2str

SERVER = "192.0.2.1"


def req(opts, mac="02:00:00:00:00:09", ciaddr="0.0.0.0", giaddr="0.0.0.0",
        src="0.0.0.0", dst="255.255.255.255", vlan=None, flags=0x8000, xid=0x1234):
    eth = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
    if vlan:
        eth = eth / Dot1Q(vlan=vlan)
    sport = 68 if giaddr == "0.0.0.0" else 67
    return bytes(
        eth
        / IP(src=src, dst=dst)
        / UDP(sport=sport, dport=67)
        / BOOTP(op=1, chaddr=mac2str(mac), xid=xid, flags=flags, ciaddr=ciaddr, giaddr=giaddr)
        / DHCP(options=opts + ["end"])
    )


def seq(settings, frames):
    out = bytes([settings])
    for step, f in frames:
        out += struct.pack(">HBB", len(f), step, 0) + f
    return out


def main(out_dir):
    cid = b"\x01\x02\x00\x00\x00\x00\x09"
    disc = req([("message-type", "discover"), ("param_req_list", [1, 3, 6, 15, 51, 54, 58, 59]),
                ("max_dhcp_size", 1500), ("client_id", cid)])
    sel = req([("message-type", "request"), ("server_id", SERVER),
               ("requested_addr", "192.0.2.10"), ("client_id", cid)])
    other = req([("message-type", "request"), ("server_id", "192.0.2.99"),
                 ("requested_addr", "192.0.2.10")])
    renew = req([("message-type", "request")], ciaddr="192.0.2.10", src="192.0.2.10",
                dst=SERVER, flags=0)
    rebind = req([("message-type", "request")], ciaddr="192.0.2.10", src="192.0.2.10")
    reboot = req([("message-type", "request"), ("requested_addr", "10.9.9.9")])
    release = req([("message-type", "release"), ("server_id", SERVER)], ciaddr="192.0.2.10",
                  src="192.0.2.10", dst=SERVER, flags=0)
    decline = req([("message-type", "decline"), ("server_id", SERVER),
                   ("requested_addr", "192.0.2.10")])
    inform = req([("message-type", "inform"), ("param_req_list", [1, 3, 6, 15])],
                 ciaddr="192.0.2.50", src="192.0.2.50", dst=SERVER, flags=0)
    o82 = b"\x01\x06eth0/1\x02\x04abcd"
    relay = req([("message-type", "discover"), ("relay_agent_information", o82)],
                giaddr="198.51.100.1", src="198.51.100.1", dst=SERVER)
    relay_sel = req([("message-type", "request"), ("server_id", SERVER),
                     ("requested_addr", "198.51.100.10"), ("relay_agent_information", o82)],
                    giaddr="198.51.100.1", src="198.51.100.1", dst=SERVER)
    link_sel = req([("message-type", "discover"),
                    ("relay_agent_information", b"\x05\x04\xcb\x00\x71\x00")])
    vlan = req([("message-type", "discover")], vlan=100)
    many = [req([("message-type", "discover")], mac=f"02:00:00:00:01:{i:02x}", xid=i)
            for i in range(6)]
    seeds = {
        "dora": seq(0, [(0, disc), (1, sel), (5, renew), (8, rebind), (1, release), (1, disc)]),
        "dora-auth": seq(1, [(0, disc), (0, sel), (0, reboot), (0, renew)]),
        "other-server": seq(0, [(0, disc), (0, other), (0, disc)]),
        "decline": seq(0, [(0, disc), (0, sel), (0, decline), (0, disc)]),
        "inform": seq(0, [(0, inform)]),
        "relay": seq(0, [(0, relay), (0, relay_sel)]),
        "link-selection": seq(0, [(0, link_sel)]),
        "vlan": seq(0, [(0, vlan)]),
        "exhaust": seq(0, [(0, f) for f in many] + [(10, many[0])]),
    }
    os.makedirs(out_dir, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "engine"))
