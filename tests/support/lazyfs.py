#!/usr/bin/python3
"""lazyfs.py: a FUSE file system that loses what was not fsynced, on command (a power cut).

Usage: /usr/bin/python3 lazyfs.py BACKING_DIR MOUNTPOINT   (root; needs Debian's python3-fuse,
libfuse2 and fusermount). Runs in the foreground, single-threaded, until unmounted.

What it simulates. BACKING_DIR holds the *durable image*: what a disk would hold after a power
cut. Every write and truncate through MOUNTPOINT lands in memory only (per file: the file's
current bytes and the list of pending operations since its last fsync); reads see the current
bytes, as the page cache would. fsync/fdatasync on a file applies that file's pending operations,
in order, to its durable image and fsyncs it. Writing a command line to MOUNTPOINT/.lazyfs cuts
the power (the caller SIGKILLs the writers first and waits for them, so no request is in flight):

  cut all SEED    every pending operation of every file is dropped;
  cut torn SEED   each pending write is split into 512-byte sectors (on the file's 512-byte
                  grid); each sector piece is kept with probability 1/2, the kept pieces are
                  applied in a random order (so a sector written twice may keep either version),
                  and one kept piece, chosen at random across all files, is *torn*: only a random
                  prefix of 1..len-1 bytes of it reaches the disk. The file's size is either its
                  durable size or its current size (a coin), applied last;
  cut keep SEED   every pending operation is applied in order (a process crash: what SIGKILL
                  leaves, the page cache surviving).

A slow device, for the tests of a tick that must not wait on the disk:

  slow MS         every fsync from now on takes MS milliseconds before it makes anything
                  durable (the file system is single-threaded, so every other request waits
                  too, as on a device busy with a long flush); "slow 0" ends it.

To cut at an exact instant rather than a random one, arm a trigger first:

  arm PATHS N [KIND]  the N-th write to one of PATHS (comma-separated: a file and the name
                      it is created under before a rename) from now on (with KIND: only
                      writes at a 4 KiB boundary whose byte 16, its top bit cleared, is KIND,
                      the kind of a belabox-store journal record: 1 insert, 2 mark, 3
                      retention) is taken as pending, and then the process that made it is
                      sent SIGKILL before the write returns (kill(2) of the writing thread's
                      id, which ends the whole process). The caller then cuts as above; the
                      cut disarms a trigger that did not fire.

After a cut the in-memory state is gone and the durable image is all there is. Reading
MOUNTPOINT/.lazyfs returns one JSON line describing the last cut (seed, mode, per file: pending
operations, sector pieces, pieces applied; the torn piece's file, offset, length and the prefix
kept; the write that fired the trigger, if one did), so that a test can say what the "disk"
held. All randomness comes from SEED.

What it does not model (its limits):
- Directory operations (create, mkdir, rename, unlink, chmod, utimens) reach the durable image at
  once, as if every directory were fsynced after each; a power cut never undoes them. A program
  that forgets a directory fsync after a create or rename is not caught. (fsyncdir is not
  implemented: python3-fuse 1.0.5 crashes on it without opendir; the kernel then answers a
  directory fsync with success, which is what this model says anyway.)
- A sector is torn as a prefix of the new bytes over the old ones; real devices may also leave
  garbage, or tear inside a 4 KiB page at a different granularity.
- fsync is a barrier per file: writes are never reordered across an fsync of the same file, and
  an fsync of one file makes nothing of another durable. Between fsyncs, any subset in any
  order (torn) or none (all). Reads never fail; no I/O errors, no full disk.
- flock is the kernel's local emulation (no lock operation is implemented), which is enough for
  one machine. The kernel's page cache is bypassed (direct_io, zero attribute timeouts), so that
  what is read after a cut is the durable image.
"""

import errno
import json
import os
import random
import signal
import sys
import time

import fuse

fuse.fuse_python_api = (0, 2)

CONTROL = "/.lazyfs"
SECTOR = 512


class Pending:
    """A file's unsynced state: its current bytes and the operations since its last fsync."""

    def __init__(self, durable):
        self.cur = bytearray(durable)
        # ("w", offset, bytes) or ("t", size), in the order they were made.
        self.ops = []


class LazyFs(fuse.Fuse):
    def __init__(self, backing, *args, **kw):
        fuse.Fuse.__init__(self, *args, **kw)
        self.backing = backing
        self.files = {}  # path -> Pending
        self.report = b"{}\n"
        self.cuts = 0
        self.trigger = None  # [path, writes left, kind or None]
        self.fired = None  # the write that fired it: {"file", "offset", "len", "pid"}
        self.fsync_delay = 0.0  # seconds every fsync takes ("slow MS")

    # -- helpers --------------------------------------------------------------------------

    def real(self, path):
        return self.backing + path

    def pending(self, path):
        p = self.files.get(path)
        if p is None:
            with open(self.real(path), "rb") as f:
                p = Pending(f.read())
            self.files[path] = p
        return p

    def apply(self, path, ops):
        """Applies `ops` to the durable image of `path` and fsyncs it."""
        fd = os.open(self.real(path), os.O_WRONLY)
        try:
            for op in ops:
                if op[0] == "w":
                    os.pwrite(fd, op[2], op[1])
                else:
                    os.ftruncate(fd, op[1])
            os.fsync(fd)
        finally:
            os.close(fd)

    def cut(self, mode, seed):
        rng = random.Random(seed)
        files = {}
        pieces = []  # (path, offset, bytes), every kept sector piece of every file
        sizes = {}
        for path in sorted(self.files):
            p = self.files[path]
            info = {"ops": len(p.ops)}
            files[path] = info
            if not p.ops or mode == "all":
                continue
            if mode == "keep":
                self.apply(path, p.ops)
                continue
            durable = os.stat(self.real(path)).st_size
            sizes[path] = rng.choice([durable, len(p.cur)])
            n = kept = 0
            for op in p.ops:
                if op[0] != "w":
                    continue
                off, data = op[1], op[2]
                at = 0
                while at < len(data):
                    end = min(len(data), (off + at) // SECTOR * SECTOR + SECTOR - off)
                    n += 1
                    if rng.random() < 0.5:
                        kept += 1
                        pieces.append((path, off + at, data[at:end]))
                    at = end
            info["pieces"] = n
            info["applied"] = kept
        torn = None
        if mode == "torn" and pieces:
            rng.shuffle(pieces)
            i = rng.randrange(len(pieces))
            path, off, data = pieces[i]
            if len(data) > 1:
                keep = rng.randint(1, len(data) - 1)
                pieces[i] = (path, off, data[:keep])
                torn = {"file": path, "offset": off, "len": len(data), "kept": keep}
        if mode == "torn":
            fds = {}
            try:
                for path, off, data in pieces:
                    if path not in fds:
                        fds[path] = os.open(self.real(path), os.O_WRONLY)
                    os.pwrite(fds[path], data, off)
                for path, size in sizes.items():
                    if path not in fds:
                        fds[path] = os.open(self.real(path), os.O_WRONLY)
                    os.ftruncate(fds[path], size)
                for fd in fds.values():
                    os.fsync(fd)
            finally:
                for fd in fds.values():
                    os.close(fd)
        self.files = {}
        self.cuts += 1
        rep = {"cut": self.cuts, "mode": mode, "seed": seed, "files": files, "torn": torn,
               "fired": self.fired}
        self.trigger = None
        self.fired = None
        self.report = (json.dumps(rep, sort_keys=True) + "\n").encode()
        sys.stderr.write("lazyfs: " + self.report.decode())
        sys.stderr.flush()

    # -- file system ----------------------------------------------------------------------

    def getattr(self, path):
        if path == CONTROL:
            st = fuse.Stat()
            st.st_mode = 0o100600
            st.st_nlink = 1
            st.st_size = len(self.report)
            return st
        try:
            s = os.lstat(self.real(path))
        except OSError as e:
            return -e.errno
        st = fuse.Stat()
        for k in ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size",
                  "st_atime", "st_mtime", "st_ctime"):
            setattr(st, k, getattr(s, k))
        p = self.files.get(path)
        if p is not None:
            st.st_size = len(p.cur)
        return st

    def readdir(self, path, offset):
        names = [".", ".."] + os.listdir(self.real(path))
        if path == "/":
            names.append(CONTROL[1:])
        for n in names:
            yield fuse.Direntry(n)

    def statfs(self):
        return os.statvfs(self.backing)

    def access(self, path, mode):
        return 0

    def open(self, path, flags):
        if path != CONTROL and not os.path.exists(self.real(path)):
            return -errno.ENOENT
        return 0

    def create(self, path, flags, mode):
        fd = os.open(self.real(path), os.O_WRONLY | os.O_CREAT, mode & 0o7777)
        os.close(fd)
        return 0

    def mknod(self, path, mode, dev):
        os.mknod(self.real(path), mode, dev)

    def mkdir(self, path, mode):
        os.mkdir(self.real(path), mode)

    def rmdir(self, path):
        os.rmdir(self.real(path))

    def unlink(self, path):
        os.unlink(self.real(path))
        self.files.pop(path, None)

    def rename(self, old, new):
        os.rename(self.real(old), self.real(new))
        self.files.pop(new, None)
        if old in self.files:
            self.files[new] = self.files.pop(old)

    def chmod(self, path, mode):
        os.chmod(self.real(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self.real(path), uid, gid)

    def utimens(self, path, ts_acc, ts_mod):
        os.utime(self.real(path), ns=(ts_acc.tv_sec * 10**9 + ts_acc.tv_nsec,
                                      ts_mod.tv_sec * 10**9 + ts_mod.tv_nsec))

    def read(self, path, size, offset):
        if path == CONTROL:
            return self.report[offset:offset + size]
        p = self.files.get(path)
        if p is not None:
            return bytes(p.cur[offset:offset + size])
        with open(self.real(path), "rb") as f:
            f.seek(offset)
            return f.read(size)

    def write(self, path, buf, offset):
        if path == CONTROL:
            words = bytes(buf).decode().split()
            if len(words) == 3 and words[0] == "cut" and words[1] in ("all", "torn", "keep"):
                self.cut(words[1], int(words[2]))
            elif len(words) == 2 and words[0] == "slow":
                self.fsync_delay = int(words[1]) / 1000.0
            elif len(words) in (3, 4) and words[0] == "arm":
                kind = int(words[3]) if len(words) == 4 else None
                self.trigger = [words[1].split(","), int(words[2]), kind]
                self.fired = None
            else:
                return -errno.EINVAL
            return len(buf)
        p = self.pending(path)
        data = bytes(buf)
        if offset > len(p.cur):
            p.cur.extend(b"\0" * (offset - len(p.cur)))
        p.cur[offset:offset + len(data)] = data
        p.ops.append(("w", offset, data))
        t = self.trigger
        if t is not None and path in t[0] and (
                t[2] is None
                or (offset % 4096 == 0 and len(data) > 16 and data[16] & 0x7f == t[2])):
            t[1] -= 1
            if t[1] <= 0:
                pid = self.GetContext()["pid"]
                self.fired = {"file": path, "offset": offset, "len": len(data), "pid": pid}
                self.trigger = None
                os.kill(pid, signal.SIGKILL)
        return len(data)

    def truncate(self, path, size):
        if path == CONTROL:
            return 0
        p = self.pending(path)
        if size < len(p.cur):
            del p.cur[size:]
        else:
            p.cur.extend(b"\0" * (size - len(p.cur)))
        p.ops.append(("t", size))
        return 0

    def ftruncate(self, path, size, fh=None):
        return self.truncate(path, size)

    def fsync(self, path, isdatasync, fh=None):
        if self.fsync_delay > 0:
            # Single-threaded: the whole file system waits, as a device busy with a slow
            # flush makes every other request to it wait.
            time.sleep(self.fsync_delay)
        p = self.files.pop(path, None)
        if p is not None and p.ops:
            self.apply(path, p.ops)
        return 0

    def flush(self, path, fh=None):
        return 0  # close(2) makes nothing durable

    def release(self, path, flags, fh=None):
        return 0


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: lazyfs.py BACKING_DIR MOUNTPOINT")
    backing = os.path.abspath(sys.argv[1])
    mnt = sys.argv[2]
    fs = LazyFs(backing, version="lazyfs", usage=__doc__, dash_s_do="setsingle")
    fs.multithreaded = False
    fs.parse([mnt, "-f", "-s", "-o",
              "direct_io,attr_timeout=0,entry_timeout=0,negative_timeout=0,fsname=lazyfs"],
             errex=1)
    fs.main()


if __name__ == "__main__":
    main()
