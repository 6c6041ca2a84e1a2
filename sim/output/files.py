"""The run directory: what a finished run leaves behind, written all at once or not at all.

Files hold no timestamps, versions or absolute paths, so the same config and seed give
byte-identical directories. Everything is written under a temporary sibling name and renamed
into place when complete, so a failed or interrupted run leaves no partial directory. A run
that replaces another swaps the two in one step (Linux), so that at every instant the directory
holds the old run or the new one; where that swap is not available, a run killed between its
two renames is put back by the next start. Temporaries of killed writers are cleared then too.
"""

from __future__ import annotations

import csv
import ctypes
import errno
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from sim.errors import OutputError

SUMMARY = "summary.json"
PRODUCTS = "products.csv"
BIDS = "bids.csv"
ROUNDS = "rounds.csv"
WITHDRAWALS = "withdrawals.csv"
CAPACITY = "capacity.csv"
CONFIG = "config.toml"
SCENARIOS = "scenarios.csv"
RISK_CHECK = "risk_check.csv"
AC_CHECK = "ac_check.csv"
AC_CORRECTION = "ac_correction.csv"
CAPACITY_MAP = "capacity_map.png"
STANDALONE_MAP = "standalone_map.png"
CORRELATION = "correlation.csv"
# `dcmarket capacity --export-pandapower`: the firm allocation on the case as a pandapower net.
ALLOCATION_PANDAPOWER = "allocation_pandapower.json"
# Input files a study keeps as given (their last line may lack a line end).
INPUT_COPIES = frozenset({SCENARIOS, CORRELATION})
# A case given as a file or folder is copied into case/ under its own name (the name is the
# network's name in the outputs, so a re-run from the copy must see the same one).
CASE_FOLDER = "case"

BID_COLUMNS = ("round", "bidder", "product", "amount")
WITHDRAWAL_COLUMNS = ("round", "bidder", "product", "price", "reoffered_at")
ROUND_COLUMNS = ("round", "product", "standing_bidder", "standing_price")
PRODUCT_COLUMNS = ("id", "bus", "risk", "capacity_mw")


def csv_bytes(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buffer.getvalue().encode("utf-8")


def write_error(path: Path, error: OSError) -> OutputError:
    """A write of ``path`` that failed, as one line naming it; a full disk says so."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"{path}: cannot write ({error.strerror}): the disk may be full, or its quota used up; "
                           "free some space, or choose another --out")
    return OutputError(f"{path}: cannot write ({error.strerror or error or type(error).__name__}); check the path "
                       "and its permissions")


def write_atomically(path: Path, content: bytes) -> None:
    """One file, written under a temporary name (hidden, per process) and renamed, so a crash
    leaves no half file and two writers never share a temporary. A failure (a full disk) is
    one line naming ``path``, and leaves no temporary."""
    partial = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(content)
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise write_error(path, error) from None


def write_table_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """A study's CSV, written atomically."""
    write_atomically(path, csv_bytes(columns, rows))


def write_bench_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """A benchmark's table: floats to 6 significant digits (timings carry no more), atomically."""
    write_table_csv(path, columns, [{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()}
                                    for r in rows])


def json_bytes(data: Any) -> bytes:
    try:
        return (json.dumps(data, indent=2, allow_nan=False) + "\n").encode("utf-8")
    except ValueError:
        raise OutputError(
            "the results contain an infinite or undefined number; check the magnitudes of values and increments"
        ) from None


# A plan study's files (sim/studies/plan.py): a plan directory, or plan/ inside a run directory.
PLAN_FOLDER = "plan"
PLAN_FILES = frozenset({"plan.csv", "dispatch.csv", "dispatch_profile.csv", "scenario_costs.csv", "site_outcomes.csv",
                        "frontier.csv",
                        "shocks.csv", "shock_events.csv", "plan_map.png", "shocks.png", "frontier.png",
                        "out_of_sample.png", "dispatch.png"})
# A price study's files (sim/studies/price/study.py): a price directory, or price/ inside a run directory.
PRICE_FOLDER = "price"
PRICE_FILES = frozenset({"voltages.csv", "dlmp.csv", "sites.csv", "voltage_profile.png", "unbalance.png",
                         "dlmp_map.png", "costs.png"})
# A headroom study's files (sim/studies/headroom/report.py).
HEADROOM_FILES = frozenset({"headroom.csv", "totals.csv", "headroom_duration.png", "headroom_map.png", "hourly.csv",
                            "hourly.parquet", "hourly.m"})
# An interconnection study's files (sim/studies/evolve.py): every regime's rows, a column naming it.
EVOLVE_FILES = frozenset({"cycles.csv", "requests.csv", "connected.png", "outcomes.png"})
RUN_FILES = (frozenset({SUMMARY, PRODUCTS, BIDS, ROUNDS, WITHDRAWALS, CAPACITY, CONFIG, SCENARIOS, "scenarios.parquet",
                       RISK_CHECK, AC_CHECK, AC_CORRECTION, CAPACITY_MAP, STANDALONE_MAP, CORRELATION,
                       ALLOCATION_PANDAPOWER, "price_path.png", "holdings.png", "report.html"})
             | PLAN_FILES | PRICE_FILES | HEADROOM_FILES | EVOLVE_FILES)
_CASE_FILES = frozenset({"buses.csv", "lines.csv", "generators.csv"})


def _is_case_copy(folder: Path) -> bool:
    """case/ holds one case file (MATPOWER .m, PSS/E .raw) or one folder of case CSVs, as `input_copies` writes it."""
    entries = list(folder.iterdir())
    if len(entries) != 1 or entries[0].is_symlink():
        return False
    entry = entries[0]
    if entry.is_file():
        return entry.suffix.lower() in (".m", ".raw")
    return entry.is_dir() and all(f.name in _CASE_FILES and f.is_file() and not f.is_symlink() for f in entry.iterdir())


def _is_run_entry(entry: Path) -> bool:
    if entry.is_symlink():
        return False
    if entry.name == CASE_FOLDER and entry.is_dir():
        return _is_case_copy(entry)
    if entry.name in (PLAN_FOLDER, PRICE_FOLDER) and entry.is_dir():
        return all(f.name in RUN_FILES and f.is_file() and not f.is_symlink() for f in entry.iterdir())
    return entry.name in RUN_FILES and entry.is_file()


def input_copies(inputs: Mapping[str, Path]) -> tuple[dict[str, bytes], dict[str, str]]:
    """Copies of the files a run read, by role, and the names the effective config should use.

    Roles: "scenarios" (CSV or Parquet), "correlation" (CSV), "case" (a MATPOWER file or a CSV
    case folder). With the copies beside it, a run directory's config.toml re-runs on its own.
    """
    files: dict[str, bytes] = {}
    names: dict[str, str] = {}
    for role, path in inputs.items():
        if role == "scenarios":
            name = "scenarios.parquet" if path.suffix.lower() == ".parquet" else SCENARIOS
            files[name] = path.read_bytes()
        elif role == "correlation":
            name = CORRELATION
            files[name] = path.read_bytes()
        elif role == "case" and path.is_dir():
            name = f"{CASE_FOLDER}/{path.name}"
            for member in sorted(path.iterdir()):
                if member.name in _CASE_FILES:
                    files[f"{name}/{member.name}"] = member.read_bytes()
        elif role == "case":
            name = f"{CASE_FOLDER}/{path.name}"
            files[name] = path.read_bytes()
        else:
            raise ValueError(f"unknown input role {role!r}")
        names[role] = name
    return files, names


def _is_replaceable_run(out: Path) -> bool:
    """An empty folder, or one that holds only the files of a run and a readable summary."""
    entries = list(out.iterdir())
    if not entries:
        return True
    if not all(_is_run_entry(entry) for entry in entries):
        return False
    try:
        summary = read_summary(out, required=())
    except OutputError:
        return False
    # A run, a capacity, a plan, a price, a headroom or an interconnection directory.
    return any(key in summary for key in ("products", "plans", "cases", "headroom", "regimes"))


def check_writable(folder: Path, out: Path | None = None) -> None:
    """Refuse, before any work, a folder that cannot be written: the nearest part of ``folder``
    that exists must be a directory in which a folder can be made (tried, then removed: under
    /proc, on a read-only or full disk, in an immutable folder, it cannot). Errors name ``out``
    (default ``folder``), the --out the user gave."""
    out = folder if out is None else out
    existing = Path(os.path.abspath(folder))
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            if existing == Path(os.path.abspath(out)):
                raise OutputError(f"{out}: exists and is not a directory; choose another --out")
            raise OutputError(f"{out}: {existing} is a file, not a folder; choose another --out")
        os.rmdir(tempfile.mkdtemp(prefix=".dcmarket-probe-", dir=existing))
    except OSError as error:
        reason = error.strerror or type(error).__name__
        if error.errno == errno.ENOSPC:
            reason += "; the disk may be full"
        raise OutputError(f"{out}: cannot write in {existing} ({reason}); choose another --out") from None


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse to overwrite anything that is not a previous run directory.

    `--force` replaces a finished run (nothing but run files, with a valid summary.json) or an
    empty directory; never the working directory, one of its parents, or anyone's other files.
    """
    try:
        clear_stale(out)
        if not out.exists():
            check_writable(out.parent, out)
            return
        if not out.is_dir():
            raise OutputError(f"{out}: exists and is not a directory; choose another --out")
        if not force:
            raise OutputError(f"{out}: already exists; pass --force to replace it or choose another --out")
        resolved, here = out.resolve(), Path.cwd().resolve()
        if resolved == here or resolved in here.parents:
            raise OutputError(f"{out}: is the working directory or one of its parents; choose a subdirectory for --out")
        if not _is_replaceable_run(out):
            raise OutputError(
                f"{out}: holds files that are not a dcmarket run; --force replaces only run directories, "
                "choose another --out"
            )
        check_writable(out.parent, out)
    except OSError as error:
        raise OutputError(f"{out}: cannot inspect ({error.strerror}); check its permissions or choose another --out") from None


# Temporaries beside a path NAME, PID being the writer's: `.NAME.tmp-PID-XXXXXXXX` (a directory being
# written; XXXXXXXX is tempfile's), `.NAME.old-PID-XXXXXXXX` (a replaced run on its way out), and
# `.NAME.tmp-PID` (a file being written: a table, a record, a page). Nothing else is touched.
_STAGING_FOLDER = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[a-z0-9_]{8}")
_STAGING_FILE = re.compile(r"\.(?P<name>.+\.(html|json|parquet|csv|toml|png))\.(?P<kind>tmp)-(?P<pid>\d+)")
# A pid whose process started this long after a temporary was made is not its writer (seconds:
# a process's start is known to 1/100 s, the boot time to 1 s).
_PID_REUSE_SLACK = 2.0


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from /proc; None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/stat", encoding="ascii", errors="replace") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


# This process's start, as far as temporaries go: one made since then may be another live
# writer's (a start read from /proc is known only to the second, so the import time is used).
_STARTED = time.time()


def _abandoned(entry: Path, pid: int) -> bool:
    """Whether a temporary was left by a writer that is gone: it was made before this process
    started, and no process runs under its writer's pid (or the one that does started later)."""
    try:
        made = entry.lstat().st_mtime
    except OSError:
        return False
    if pid == os.getpid() or made >= _STARTED:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it runs, as another user
        pass
    started = _process_start(pid)
    return started is not None and started > made + _PID_REUSE_SLACK


# Folders already cleared by this process: what is stale was made before it started, so once is
# enough (a sweep's worker writes thousands of runs into one folder).
_CLEARED: set[str] = set()


def clear_stale(path: Path) -> None:
    """In the folder of ``path``, once per process: put back a run that a killed replacement
    left aside (``.NAME.old-*`` while NAME is missing), and remove the other temporaries that
    killed writers left; those of a writer still running, or made since this process started,
    are left alone."""
    folder = path.parent if str(path.parent) else Path(".")
    key = os.path.abspath(folder)
    if key in _CLEARED:
        return
    _CLEARED.add(key)
    try:
        entries = sorted(((e.name, e.is_dir(follow_symlinks=False)) for e in os.scandir(folder)
                          if e.name.startswith(".")))
    except OSError:
        return
    stale = []
    for name, is_folder in entries:
        match = (_STAGING_FOLDER if is_folder else _STAGING_FILE).fullmatch(name)
        if match and _abandoned(folder / name, int(match["pid"])):
            stale.append((match["kind"], folder / name, folder / match["name"]))
    for kind, entry, target in stale:
        try:
            if kind == "old" and (entry / target.name).is_dir() and not target.exists():
                os.replace(entry / target.name, target)
                print(f"note: {target}: put back the run that an interrupted --force left in {entry.name}",
                      file=sys.stderr)
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            pass  # another process got there first, or it cannot be removed: it stays, harmless


# renameat2(2) flag: swap two paths atomically (Linux 3.15, glibc 2.28).
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one step; False where the system cannot (not Linux, an old
    kernel or C library, a file system without it), and the caller does it in two renames."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_run_directory(out: Path, files: Mapping[str, bytes], *, force: bool = False) -> None:
    """Write every file under a temporary name beside `out`, then put it in place: renamed, or
    swapped in one step with the run it replaces (the old one is then removed)."""
    check_out_dir(out, force)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=parent))
    except OSError as error:
        raise OutputError(f"{out}: cannot create the run directory ({error.strerror}); choose another --out") from None
    retired: Path | None = None
    try:
        # mkdtemp makes a private (0700) folder; a run directory is an ordinary one.
        os.chmod(staging, 0o777 & ~_umask())
        for name, content in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        if out.exists() and _exchange(staging, out):
            shutil.rmtree(staging, ignore_errors=True)  # now the old run
            return
        if out.exists():
            # Move the old run aside first so that a crash never leaves neither (killed between
            # the two renames, clear_stale puts it back at the next start).
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=parent))
            os.replace(out, retired / out.name)
        os.replace(staging, out)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if retired is not None and (retired / out.name).exists() and not out.exists():
            os.replace(retired / out.name, out)  # put the old run back
        if isinstance(error, OSError):
            raise write_error(out, error) from None
        raise
    finally:
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
            if retired.exists():
                print(f"warning: could not remove the previous run kept at {retired}; delete it by hand", file=sys.stderr)


# The fix for a damaged file in a directory a study wrote: write the directory again.
REBUILD = "the directory is damaged; run its study again with --force to rebuild it"


def read_csv_rows(path: Path, *, integers: Sequence[str] = (), numbers: Sequence[str] = (),
                  copied: bool = False) -> list[dict[str, str]]:
    """The rows of a CSV a study wrote. A file cut short (each ends with a line end; not so a
    ``copied`` input such as scenarios.csv, which is the user's file as given), a row
    whose cells do not match the header, or, in the ``integers`` and ``numbers`` columns, a
    cell that is not one (empty numbers are allowed), is an error that names the file and line."""
    try:
        text = path.read_bytes().decode("utf-8")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
        header = list(reader.fieldnames or [])
    except FileNotFoundError:
        raise OutputError(f"{path}: not found; is {path.parent} a finished dcmarket run directory?") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise OutputError(f"{path}: cannot read ({type(error).__name__}); {REBUILD}") from None
    if text and not text.endswith("\n") and not copied:
        raise OutputError(f"{path}: cut short (its last line has no line end); {REBUILD}")
    missing = [name for name in (*integers, *numbers) if name not in header]
    if missing:
        raise OutputError(f"{path}: has no column {missing[0]!r}; {REBUILD}")
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            cells = len(row.get(None, [])) + sum(v is not None for k, v in row.items() if k is not None)
            raise OutputError(f"{path}, line {line}: {cells} cells but the header has {len(header)}; {REBUILD}")
        for name in (*integers, *numbers):
            text = row[name].strip()
            try:
                int(text) if name in integers else float(text) if text else None
            except ValueError:
                raise OutputError(f"{path}, line {line}: {name} {text[:60]!r} is not a number; {REBUILD}") from None
    return rows


def read_text(path: Path) -> str:
    """A text file a study wrote (its config.toml), or an error naming it."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise OutputError(f"{path}: not UTF-8 text (byte {error.start}); {REBUILD}") from None
    except OSError as error:
        raise OutputError(f"{path}: cannot read ({error.strerror}); check its permissions") from None


_PNG_HEAD, _PNG_TAIL = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


def is_png(content: bytes) -> bool:
    """Whether ``content`` is a whole PNG file: its signature and its closing chunk."""
    return content.startswith(_PNG_HEAD) and content.endswith(_PNG_TAIL)


def read_png(path: Path) -> bytes:
    """A figure a study wrote, or an error naming it when it is not a whole PNG."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise OutputError(f"{path}: cannot read ({error.strerror}); check its permissions") from None
    if not is_png(content):
        raise OutputError(f"{path}: not a whole PNG image; {REBUILD}")
    return content


# What `dcmarket log` needs from a run's summary; a capacity directory has only "products".
SUMMARY_KEYS = ("products", "allocation", "prices", "payments", "rounds", "rounds_run")


def require_keys(summary: Any, run_dir: Path, required: Sequence[str] = SUMMARY_KEYS) -> dict[str, Any]:
    """``summary`` (as read from ``run_dir``) if it has every ``required`` key, else a one-line error."""
    missing = [key for key in required if key not in summary]
    if missing:
        raise OutputError(f"{run_dir / SUMMARY}: has no {missing[0]!r}; {REBUILD}")
    return summary


def read_summary(run_dir: Path, required: Sequence[str] = SUMMARY_KEYS) -> dict[str, Any]:
    path = run_dir / SUMMARY
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(summary, dict):
            raise TypeError
        return require_keys(summary, run_dir, required)
    except FileNotFoundError:
        raise OutputError(f"{run_dir}: no {SUMMARY}; give the directory of a finished dcmarket run") from None
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError, RecursionError):
        raise OutputError(f"{path}: not valid JSON; {REBUILD}") from None
    except OSError as error:
        raise OutputError(f"{path}: cannot read ({error.strerror}); check its permissions") from None
