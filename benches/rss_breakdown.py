#!/usr/bin/env python3
"""What a running agent's resident memory is made of (issue 30): one `name value` figure per
line (KiB), then a Markdown table, from /proc/PID/smaps and the threads' stack pointers.

    benches/rss_breakdown.py PID [--store PATH]

Categories (Rss of each mapping, summed):
- text / rodata / data: the binary's executable, read-only and writable mappings (a static musl
  build maps only itself; a glibc build adds libc.so and ld.so as `libraries`);
- anon: `[heap]` (brk) and every anonymous mapping: malloc's blocks (musl's mallocng maps
  larger allocations on their own) and the other threads' stacks. They cannot be told apart from
  smaps: the kernel merges a thread's stack with the anonymous mapping next to it (seen here: a
  512 KiB worker stack and 368 KiB of malloc's in one VMA). `anon_with_a_stack` is the part in
  mappings that hold some thread's stack pointer (/proc/PID/task/TID/syscall), an upper bound of
  the threads' stacks;
- stack_main: `[stack]`;
- vdso/vvar: the kernel's.
`--store PATH` (the agent's `storage.path`): also the page cache of the store's files (PATH and
its siblings PATH.*: the journal, the lock) (`fincore`,
util-linux), which the kernel charges to the service's cgroup but not to the process's RSS (redb reads with pread into
its own cache, which is in `heap`).
"""
import argparse
import os
import re
import subprocess
import sys


def mappings(pid):
    """(start, end, perms, path, rss_kib) of every mapping."""
    out = []
    cur = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$", line)
            if m:
                cur = [int(m.group(1), 16), int(m.group(2), 16), m.group(3), m.group(4).strip(), 0]
                out.append(cur)
            elif line.startswith("Rss:") and cur is not None:
                cur[4] = int(line.split()[1])
    return out


def thread_stacks(pid):
    """{stack pointer: thread name} of every thread not running at the time."""
    stacks = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                fields = f.read().split()
        except OSError:
            continue
        # "running" has no registers; otherwise the stack pointer is the second-to-last field.
        if len(fields) >= 3:
            stacks[int(fields[-2], 16)] = name
    return stacks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pid", type=int)
    ap.add_argument("--store", help="the agent's storage.path, for the page cache of its files")
    a = ap.parse_args()
    exe = os.readlink(f"/proc/{a.pid}/exe")
    maps = mappings(a.pid)
    sps = thread_stacks(a.pid)
    sizes = {}

    def add(k, v):
        sizes[k] = sizes.get(k, 0) + v

    for start, end, perms, path, rss in maps:
        holds_sp = any(start <= sp < end for sp in sps)
        if path == exe or path.startswith(exe + " "):
            add("text" if "x" in perms else "data" if "w" in perms else "rodata", rss)
        elif path == "[stack]":
            add("stack_main", rss)
        elif path in ("[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]"):
            add("vdso", rss)
        elif path in ("[heap]", ""):
            add("anon", rss)
            if holds_sp:
                add("anon_with_a_stack", rss)
        elif path.startswith("/"):
            add("libraries", rss)
        else:
            add("other", rss)
    sizes["threads"] = len(os.listdir(f"/proc/{a.pid}/task"))
    with open(f"/proc/{a.pid}/status") as f:
        status = dict(l.split(":", 1) for l in f if ":" in l)
    total = int(status["VmRSS"].split()[0])
    cache = None
    if a.store:
        d, base = os.path.split(os.path.abspath(a.store))
        files = [os.path.join(d, n) for n in sorted(os.listdir(d)) if n == base or n.startswith(base + ".")]
        files = [p for p in files if os.path.isfile(p)]
        if files:
            r = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", *files],
                               capture_output=True, text=True, check=False)
            if r.returncode == 0:
                cache = sum(int(x) for x in r.stdout.split()) // 1024
    threads = sizes.pop("threads")
    names = sorted(sizes, key=lambda k: -sizes[k])
    for k in names:
        print(f"rss_kib_{k} {sizes[k]}")
    print(f"threads {threads}")
    print(f"rss_kib_total {total}")
    if cache is not None:
        print(f"store_page_cache_kib {cache}")
    print()
    print("| part | KiB |")
    print("|---|---:|")
    for k in names:
        label = "⊃ anon in mappings holding a thread's stack" if k == "anon_with_a_stack" else k
        print(f"| {label} | {sizes[k]} |")
    print(f"| **VmRSS** | **{total}** |")
    if cache is not None:
        print(f"| store files in the page cache (not in RSS) | {cache} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
