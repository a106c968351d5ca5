"""Files are written under a temporary name, ``<final name>.part-<pid>``, and renamed
when complete, so a file under its final name is always whole: an interrupted or killed
run leaves at most ``.part-<pid>`` files, which the next run removes."""
import os
import re

PART = re.compile(r"\.part(?:-(\d+))?\Z")


def part_path(path):
    return "{}.part-{}".format(path, os.getpid())


def atomic_write(path, data):
    """Write bytes to path through a temporary file (removed if the write fails)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = part_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    return path


def remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _alive(pid):
    if pid == os.getpid():
        return False            # ours from before (an earlier call in this process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_orphans(folder, subfolders=("images", "masks", ".cache")):
    """Remove the temporary files of runs that are gone (killed, crashed) from folder and
    its subfolders; keep those of a run still going. Returns the removed paths, relative
    to folder."""
    removed = []
    places = [(folder, [], _files(folder))]
    for sub in subfolders:
        places.extend(os.walk(os.path.join(folder, sub)))
    for d, _, files in places:
        for name in files:
            m = PART.search(name)
            if not m:
                continue
            if m.group(1) and _alive(int(m.group(1))):
                continue
            path = os.path.join(d, name)
            remove_quietly(path)
            removed.append(os.path.relpath(path, folder))
    return sorted(removed)


def _files(folder):
    try:
        return [e.name for e in os.scandir(folder) if e.is_file()]
    except OSError:
        return []
