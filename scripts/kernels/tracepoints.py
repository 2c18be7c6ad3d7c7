#!/usr/bin/env python3
"""tracepoints.py -- list the built-in trace events of a vmlinux as category:name.

Usage:
    tracepoints.py VMLINUX FILE.btf[.xz]

VMLINUX is the (stripped) ELF that extract-btf.sh decompresses from a bzImage,
FILE.btf is that kernel's BTF.  Debian ships no real System.map, so the
`__start_ftrace_events`/`__stop_ftrace_events` symbols are not available.
Instead the `_ftrace_events` array (pointers to `struct trace_event_call`,
linked into .init.data) is found as the longest run of consecutive 8-byte
words that all point to something that decodes as a trace_event_call:

    call->class->system              a C identifier string   -> category
    call->name, or call->tp->name    (when flags has TRACE_EVENT_FL_TRACEPOINT)
                                     a C identifier string   -> event name

Struct member offsets and the flag value are taken from the kernel's own BTF
(via btf-stats.py), so this works across kernel versions.  Events defined in
loadable modules are not in vmlinux and therefore not listed; neither are
dynamic events (kprobe/uprobe/fprobe events).

Prints one `category:name` per line, sorted.  Standard library only
(plus bpftool, used by btf-stats.py).
"""

import bisect
import importlib.util
import os
import re
import struct
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("btf_stats", os.path.join(_here, "btf-stats.py"))
btf_stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(btf_stats)

IDENT = re.compile(rb"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
KERNEL_BASE = 0xFFFF800000000000


class Image:
    """Virtual-address view of the allocated PROGBITS sections of an ELF64."""

    def __init__(self, data):
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise ValueError("not an ELF64 little-endian file")
        self.data = data
        (shoff,) = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        hdrs = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
        strtab_off = hdrs[shstrndx][4]

        def name(off):
            b = strtab_off + off
            return data[b:data.index(b"\0", b)].decode()

        SHT_PROGBITS, SHF_ALLOC = 1, 2
        self.sections = {}
        ranges = []
        for sh_name, sh_type, flags, addr, offset, size in hdrs:
            n = name(sh_name)
            self.sections[n] = (addr, offset, size)
            if sh_type == SHT_PROGBITS and flags & SHF_ALLOC and addr >= KERNEL_BASE:
                ranges.append((addr, addr + size, offset))
        ranges.sort()
        self.starts = [r[0] for r in ranges]
        self.ranges = ranges

    def _off(self, va, n):
        i = bisect.bisect_right(self.starts, va) - 1
        if i < 0:
            return None
        start, end, off = self.ranges[i]
        if va + n > end:
            return None
        return off + (va - start)

    def u64(self, va):
        o = self._off(va, 8)
        return None if o is None else struct.unpack_from("<Q", self.data, o)[0]

    def u32(self, va):
        o = self._off(va, 4)
        return None if o is None else struct.unpack_from("<I", self.data, o)[0]

    def ident(self, va):
        """The NUL-terminated C identifier at va, or None."""
        if va is None:
            return None
        o = self._off(va, 1)
        if o is None:
            return None
        end = self.data.find(b"\0", o, o + 129)
        if end < 0:
            return None
        s = self.data[o:end]
        return s.decode() if IDENT.match(s) else None


def events(img, btf):
    off_class = btf.member_offset("trace_event_call", "class")
    off_name = btf.member_offset("trace_event_call", "name")
    off_flags = btf.member_offset("trace_event_call", "flags")
    off_system = btf.member_offset("trace_event_class", "system")
    off_tp_name = btf.member_offset("tracepoint", "name")
    fl_tracepoint = btf.enum_value("TRACE_EVENT_FL_TRACEPOINT")

    cache = {}

    def decode(call):
        if call in cache:
            return cache[call]
        res = None
        cls = img.u64(call + off_class)
        flags = img.u32(call + off_flags)
        if cls is not None and flags is not None:
            system = img.ident(img.u64(cls + off_system))
            ptr = img.u64(call + off_name)
            if system and ptr is not None:
                if flags & fl_tracepoint:
                    name = img.ident(img.u64(ptr + off_tp_name))
                else:
                    name = img.ident(ptr)
                if name:
                    res = (system, name)
        cache[call] = res
        return res

    best = []
    for sec in (".init.data", ".data"):
        if sec not in img.sections:
            continue
        addr, offset, size = img.sections[sec]
        run = []
        for i in range(0, size - 7, 8):
            (ptr,) = struct.unpack_from("<Q", img.data, offset + i)
            ev = decode(ptr) if ptr >= KERNEL_BASE else None
            if ev is not None:
                run.append(ev)
                continue
            if len(run) > len(best):
                best = run
            run = []
        if len(run) > len(best):
            best = run
    return best


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        img = Image(f.read())
    btf = btf_stats.BTF.from_file(argv[2])
    evs = events(img, btf)
    if len(evs) < 50:
        print(f"tracepoints: found only {len(evs)} events; giving up", file=sys.stderr)
        return 1
    uniq = sorted(set(evs))
    if len(uniq) != len(evs):
        print(f"tracepoints: note: {len(evs) - len(uniq)} duplicate entries", file=sys.stderr)
    for system, name in uniq:
        print(f"{system}:{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
