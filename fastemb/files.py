"""Files, safely: the one guarded opener for everything fastemb reads, and the pieces of every write.

Reading: `check_readable` refuses what is not a regular file (a FIFO with no writer would hang, a device
never ends) before anything is opened; `read_text_lines` decodes text strictly (UTF-8, a BOM dropped) and
names the file and line of the first bad byte.

Writing: temporary names carry the writer's pid (`.OUT.PID.RANDOM.part` beside an output, `fastemb-PID-*`
work directories), so a later run can tell the leftovers of dead runs from those of live ones and remove
them (`clean_stale`, `fastemb clean`); `SafeFile` is the file object HDF5 writes through, which records a
failed write (a full disk) instead of letting the HDF5 library see it (its state after a failed write makes
the process crash at exit); `output_lock` is an advisory lock per output (.NAME.fastemb-lock), so that two runs
never write the same file.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
import shutil
import stat
import tempfile

from fastemb.errors import FileError

TMP_PREFIX = "fastemb-"
_PART = re.compile(r"^\.(?P<base>.*)\.(?P<pid>\d+)\.[0-9a-f]{8}\.part$")
_WORK = re.compile(r"^fastemb-(?:[a-z]+-)?(?P<pid>\d+)-[a-z0-9_]{8}$")
_STAGING = re.compile(r"^\.fastemb-staging-(?P<pid>\d+)-[a-z0-9_]{8}$")
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
WORK_MARKER = ".fastemb-work"   # written inside every work directory when it is made; checked before removal


def describe_os_error(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "no space left on the device"
    if e.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return e.strerror or str(e)


# ------------------------------------------------------------------------------------------ reading
def check_readable(path, what="file") -> str:
    """The path as a string if it is a readable regular file; otherwise a one-line FileError."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise FileError(f"{path}: no such file (a broken symbolic link?)") from None
        raise FileError(f"{path}: no such {what}") from None
    except OSError as e:
        raise FileError(f"{path}: {describe_os_error(e)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileError(f"{path}: is a directory, not a {what}")
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode) or stat.S_ISCHR(st.st_mode) \
            or stat.S_ISBLK(st.st_mode):
        raise FileError(f"{path}: not a regular file (a pipe, socket or device): give a file, or '-' for "
                        f"standard input where a corpus is read")
    if not os.access(path, os.R_OK):
        raise FileError(f"{path}: permission denied")
    return path


def read_text_lines(path, what="file"):
    """Yields (line number, line without its newline) of a UTF-8 text file (a BOM is dropped), or of UTF-16/32
    text with a byte-order mark (as corpora are read); a byte that is not UTF-8 stops with a FileError naming
    the file (once) and the line."""
    from fastemb.corpus import sniff_encoding
    path = check_readable(path, what)
    try:
        with open(path, "rb") as f:
            codec, skip = sniff_encoding(f.read(4096), path)  # UTF-16/32 with a byte-order mark, as corpora
            f.seek(skip)
            if codec != "utf-8":
                text = io.TextIOWrapper(f, encoding=codec, errors="strict", newline=None)
                n = 0
                try:
                    for n, line in enumerate(text, 1):
                        yield n, line.rstrip("\r\n")
                except UnicodeDecodeError:
                    raise FileError(f"{path}:{n + 1}: not {codec.upper()} text, as its byte-order mark says: "
                                    f"convert the file to UTF-8") from None
                return
            for n, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise FileError(f"{path}:{n}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column "
                                    f"{e.start + 1}): convert the file to UTF-8") from None
                yield n, line.rstrip("\r\n")
    except FileError:
        raise  # a FileError is an OSError too: it names the file already
    except OSError as e:
        raise FileError(f"{path}: {describe_os_error(e)}") from None


# ------------------------------------------------------------------------------------------ writing
def file_sha256(path) -> str:
    """SHA-256 of a file's bytes (read in 4 MB pieces; nothing is parsed)."""
    import hashlib
    h = hashlib.sha256()
    try:
        with open(check_readable(path), "rb") as f:
            for piece in iter(lambda: f.read(4 << 20), b""):
                h.update(piece)
    except FileError:
        raise
    except OSError as e:
        raise FileError(f"{path}: {describe_os_error(e)}") from None
    return h.hexdigest()


def part_name(path) -> str:
    """A fresh temporary name beside `path`: .BASE.PID.RANDOM.part, with BASE shortened so that the name
    fits the directory's limit whatever the length of the output's own name."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    limit = _name_max(parent)
    suffix = f".{os.getpid()}.{secrets.token_hex(4)}.part"
    short = os.fsdecode(os.fsencode(base)[: max(1, limit - len(suffix) - 1)])
    return os.path.join(parent, "." + short + suffix)


def _name_max(directory) -> int:
    try:
        return int(os.pathconf(directory, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def check_name_fits(path):
    """Refuse an output name the file system cannot hold (before any work)."""
    parent = os.path.dirname(os.path.abspath(os.fspath(path)))
    if len(os.fsencode(os.path.basename(os.fspath(path)))) > _name_max(parent):
        raise FileError(f"{os.fspath(path)}: file name too long (at most {_name_max(parent)} bytes here)")


def probe_writable(path):
    """Create and remove a temporary file beside `path`: the directory takes new files (permissions,
    a read-only or full file system show now, not after the work)."""
    tmp = part_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.remove(tmp)
    except OSError as e:
        raise FileError(f"{os.path.dirname(tmp)}: cannot write {os.path.basename(os.fspath(path))} there: "
                        f"{describe_os_error(e)}") from None


def available_memory():
    """MemAvailable in bytes (Linux), or None when it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def check_space(directory, need: int, what: str):
    """Refuse, before the work, an output the file system has no room for."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if need > free:
        raise FileError(f"{directory}: no room for {what}: it needs about {need / 2**20:,.0f} MB and "
                        f"{free / 2**20:,.0f} MB are free")


def write_array(f, array, where):
    """Append an array's bytes to an open binary file; a failed write is one line naming `where`."""
    import numpy as np
    try:
        f.write(memoryview(np.ascontiguousarray(array)).cast("B"))
    except OSError as e:
        raise FileError(f"{where}: cannot write: {describe_os_error(e)}") from None


class SafeFile(io.RawIOBase):
    """A read/write binary file for h5py's file-object driver that never reports a failed write to the
    HDF5 library: the first error is kept in `error` (and later writes are dropped), and the caller raises
    it once HDF5 has closed the file cleanly."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.pos = 0
        self.error: OSError | None = None

    def readable(self):
        return True

    def writable(self):
        return True

    def seekable(self):
        return True

    def seek(self, pos, whence=0):
        if whence == 0:
            self.pos = pos
        elif whence == 1:
            self.pos += pos
        else:
            self.pos = os.fstat(self.fd).st_size + pos
        return self.pos

    def tell(self):
        return self.pos

    def readinto(self, b):
        n = len(b)
        got = os.preadv(self.fd, [b], self.pos)
        if got < n:
            memoryview(b)[got:] = bytes(n - got)
        self.pos += n
        return n

    def write(self, b):
        n = len(b)
        if self.error is None:
            try:
                view, done = memoryview(b).cast("B"), 0
                while done < n:
                    done += os.pwrite(self.fd, view[done:], self.pos + done)
            except OSError as e:
                self.error = e
        self.pos += n
        return n

    def truncate(self, size=None):
        if self.error is None:
            try:
                os.ftruncate(self.fd, self.pos if size is None else size)
            except OSError as e:
                self.error = e
        return self.pos if size is None else size

    def flush(self):
        pass

    def sync(self):
        if self.error is None:
            try:
                os.fsync(self.fd)
            except OSError as e:
                self.error = e

    def close(self):
        if not self.closed:
            os.close(self.fd)
        super().close()


# ----------------------------------------------------------------------------- leftovers of dead runs
def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_work_dir(tmp_dir):
    """--tmp-dir must be a directory where new files can be made."""
    from fastemb.errors import OptionError
    if tmp_dir is not None and not (os.path.isdir(tmp_dir) and os.access(tmp_dir, os.W_OK | os.X_OK)):
        raise OptionError("tmp_dir", f"{tmp_dir}: not a writable directory")


def work_dir(parent=None, kind="") -> str:
    """A new work directory fastemb-[KIND-]PID-RANDOM (in `parent` or the system's temp directory)."""
    parent = parent or tempfile.gettempdir()
    clean_stale(parent)
    prefix = f"{TMP_PREFIX}{kind + '-' if kind else ''}{os.getpid()}-"
    # Made whole, then renamed into place: a run killed at any moment leaves either nothing under the work
    # name or a directory that holds its marker (so the next run can prove it is fastemb's and remove it).
    # A staging directory (.fastemb-staging-PID-XXXXXXXX, the marker alone in it) is removed as stale too.
    try:
        staging = tempfile.mkdtemp(prefix=f".{TMP_PREFIX}staging-{os.getpid()}-", dir=parent)
        for _ in range(100):
            path = os.path.join(parent, prefix + "".join(secrets.choice(_NAME_CHARS) for _ in range(8)))
            with open(os.path.join(staging, WORK_MARKER), "w") as f:
                f.write(_marker_text(path))
            try:
                os.rename(staging, path)  # fails when `path` exists and is not empty
            except OSError:
                if not os.path.exists(path):
                    raise
                continue
            return path
        raise FileExistsError(errno.EEXIST, "no free work directory name")
    except OSError as e:
        raise FileError(f"{parent}: cannot create a work directory: {describe_os_error(e)}") from None


def _marker_text(path) -> str:
    return f"fastemb work directory {os.path.basename(path)}\n"


def is_work_dir(path) -> bool:
    """Did fastemb make this directory (`work_dir`)? Its name is fastemb-[KIND-]PID-XXXXXXXX, it is a real
    directory (not a link) and it holds the marker file written when it was made, naming it. A user's
    folder that merely looks like one (fastemb-2024-results/) is never taken for one."""
    name = os.path.basename(os.path.normpath(path))
    marker = os.path.join(path, WORK_MARKER)
    if not _WORK.match(name) or os.path.islink(path) or not os.path.isdir(path):
        return False
    try:
        st = os.lstat(marker)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 4096:
            return False
        with open(marker, encoding="utf-8", errors="replace") as f:
            return f.read(4096) == _marker_text(path)
    except OSError:
        return False


def stale_entries(directory) -> list:
    """Temporary files and directories of fastemb runs that are no longer running, in `directory`."""
    out = []
    try:
        names = os.listdir(directory)
    except OSError:
        return out
    for name in names:
        path = os.path.join(directory, name)
        work, part, staging = _WORK.match(name), _PART.match(name), _STAGING.match(name)
        if work and is_work_dir(path) and not _alive(int(work.group("pid"))):
            out.append(path)
        elif staging and _only_marker(path) and not _alive(int(staging.group("pid"))):
            out.append(path)
        elif part and _regular_file(path) and not _alive(int(part.group("pid"))):
            out.append(path)
        elif name.startswith(".") and name.endswith(LOCK_SUFFIX) and _regular_file(path) and _lock_is_free(path):
            out.append(path)
    return out


def _only_marker(path) -> bool:
    """A staging directory of work_dir: a real directory holding nothing but (at most) the marker file."""
    try:
        return (stat.S_ISDIR(os.lstat(path).st_mode)
                and set(os.listdir(path)) <= {WORK_MARKER}
                and all(_regular_file(os.path.join(path, n)) for n in os.listdir(path)))
    except OSError:
        return False


def _regular_file(path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def clean_stale(directory) -> list:
    """Remove what dead runs left in `directory`; returns what was removed."""
    removed = []
    for path in stale_entries(directory):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                if _STAGING.match(os.path.basename(path)):
                    if not _only_marker(path):  # checked again just before removal
                        continue
                elif not is_work_dir(path):  # checked again just before removal
                    continue
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(path)
        except OSError:
            pass
    return removed


# ------------------------------------------------------------------------------------------- locks
LOCK_SUFFIX = ".fastemb-lock"


def lock_path(path) -> str:
    """.NAME.fastemb-lock beside the output (NAME shortened and hashed when the whole would not fit)."""
    import hashlib
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    base = os.fsencode(os.path.basename(path))
    limit = _name_max(parent) - len(LOCK_SUFFIX) - 1
    if len(base) > limit:
        base = base[: limit - 17] + b"." + hashlib.sha1(base).hexdigest()[:16].encode()
    return os.path.join(parent, "." + os.fsdecode(base) + LOCK_SUFFIX)


def _lock_is_free(path) -> bool:
    import fcntl
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def output_lock(path):
    """Hold an advisory lock on `path` (a file .NAME.lock beside it) for the duration: a second fastemb run
    writing the same output fails at once, naming the first one's pid."""
    import fcntl
    lp = lock_path(path)
    parent = os.path.dirname(lp)
    if not os.path.isdir(parent):
        raise FileError(f"{os.fspath(path)}: output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise FileError(f"{os.fspath(path)}: output directory {parent} is not writable")
    while True:
        try:
            fd = os.open(lp, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise FileError(f"{os.fspath(path)}: cannot lock the output: {describe_os_error(e)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            finally:
                os.close(fd)
            raise FileError(f"{os.fspath(path)}: another fastemb run (pid {holder}) is writing this output") \
                from None
        try:
            same = os.stat(lp).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file between our open and lock: take the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(lp)
        os.close(fd)
