"""Read single members of a remote zip with HTTP Range requests.

The Open Images mask zips are 238-386 MB each with ~168k members (zip64). To get a few
hundred masks we read the end of the file (the end-of-central-directory records, zip64
aware), then the central directory (cached as a JSON index), then only the byte ranges
of the wanted members, merging neighbours into one request when the gap between them is
no larger than the member (so at most as many unwanted bytes as wanted ones travel).
When the server ignores Range, or when most of the zip is wanted anyway, the whole zip
is downloaded instead.

    z = RemoteZip(url, session, cache_dir)
    data = z.read_members(["a.png", "b.png"])     # {name: bytes}
    z.bytes_fetched                                # what it cost
"""
import hashlib
import json
import os
import re
import struct
import tempfile
import zipfile
import zlib

import requests

from .net import HTTPStatusError, ShortRead, check_status, with_retries
from .partfiles import part_path, remove_quietly

EOCD_SIG = 0x06054b50
ZIP64_LOCATOR_SIG = 0x07064b50
ZIP64_EOCD_SIG = 0x06064b50
CENTRAL_SIG = 0x02014b50
LOCAL_SIG = 0x04034b50
TAIL_BYTES = 65536 + 22 + 20 + 56   # max comment + EOCD + zip64 locator + zip64 EOCD


class RangeNotSupported(Exception):  # not an IOError: never retried
    """The server answered a Range request with the whole file."""


class ZipFormatError(ValueError):
    """The bytes are not a zip file we can read."""


def _get_range(session, url, start, end=None, timeout=60, retries=0, backoff=0.5):
    """GET bytes [start, end] (inclusive); a negative start asks for the last -start bytes.

    Returns (data, total size or None). Transient failures are tried again; what still
    fails raises DownloadError naming the URL; a server that ignores Range raises
    RangeNotSupported."""
    header = "bytes={}-{}".format(start, "" if end is None else end) if start >= 0 \
        else "bytes={}".format(start)

    def attempt():
        resp = session.get(url, headers={"Range": header}, timeout=timeout, stream=True)
        with resp:
            if resp.status_code == 200:
                raise RangeNotSupported(url)
            check_status(resp)
            if resp.status_code != 206:
                raise HTTPStatusError(resp.status_code, "instead of 206 for Range " + header)
            total = None
            content_range = resp.headers.get("Content-Range", "")
            if "/" in content_range and content_range.split("/")[-1].isdigit():
                total = int(content_range.split("/")[-1])
            data = resp.content
        if end is not None and start >= 0 and total is not None and \
                len(data) != min(end, total - 1) - start + 1:
            raise ShortRead("{} of {} bytes of Range {}".format(
                len(data), min(end, total - 1) - start + 1, header))
        return data, total

    return with_retries(attempt, url, retries=retries, backoff=backoff)


def parse_end_records(tail, file_size):
    """(central directory offset, size, entry count) from the last bytes of a zip."""
    pos = tail.rfind(struct.pack("<I", EOCD_SIG))
    if pos < 0:
        raise ZipFormatError("no end-of-central-directory record: not a zip, or truncated")
    (_, _, _, _, count, cd_size, cd_offset, _) = struct.unpack("<IHHHHIIH", tail[pos:pos + 22])
    if cd_offset == 0xFFFFFFFF or cd_size == 0xFFFFFFFF or count == 0xFFFF:
        loc = pos - 20
        if loc < 0 or struct.unpack("<I", tail[loc:loc + 4])[0] != ZIP64_LOCATOR_SIG:
            raise ZipFormatError("zip64 values without a zip64 locator")
        (_, _, z64_offset, _) = struct.unpack("<IIQI", tail[loc:loc + 20])
        tail_start = file_size - len(tail)
        rel = z64_offset - tail_start
        if rel < 0 or struct.unpack("<I", tail[rel:rel + 4])[0] != ZIP64_EOCD_SIG:
            raise ZipFormatError("zip64 end-of-central-directory record not found")
        (_, _, _, _, _, _, _, count, cd_size, cd_offset) = struct.unpack(
            "<IQHHIIQQQQ", tail[rel:rel + 56])
    return cd_offset, cd_size, count


def parse_central_directory(data):
    """{name: [local header offset, compressed size, method, crc32, uncompressed size]}."""
    entries = {}
    pos = 0
    while pos + 46 <= len(data):
        sig = struct.unpack("<I", data[pos:pos + 4])[0]
        if sig != CENTRAL_SIG:
            break
        (method, _, _, crc, csize, usize, nlen, elen, clen, _, _, _, offset) = struct.unpack(
            "<HHHIIIHHHHHII", data[pos + 10:pos + 46])
        name = data[pos + 46:pos + 46 + nlen].decode("utf-8", "replace")
        extra = data[pos + 46 + nlen:pos + 46 + nlen + elen]
        if csize == 0xFFFFFFFF or usize == 0xFFFFFFFF or offset == 0xFFFFFFFF:
            usize, csize, offset = _zip64_extra(extra, usize, csize, offset)
        entries[name] = [offset, csize, method, crc, usize]
        pos += 46 + nlen + elen + clen
    return entries


def _zip64_extra(extra, usize, csize, offset):
    i = 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack("<HH", extra[i:i + 4])
        body = extra[i + 4:i + 4 + size]
        if tag == 0x0001:
            j = 0
            if usize == 0xFFFFFFFF:
                usize = struct.unpack("<Q", body[j:j + 8])[0]
                j += 8
            if csize == 0xFFFFFFFF:
                csize = struct.unpack("<Q", body[j:j + 8])[0]
                j += 8
            if offset == 0xFFFFFFFF:
                offset = struct.unpack("<Q", body[j:j + 8])[0]
            break
        i += 4 + size
    return usize, csize, offset


def extract_member(blob, entry, name):
    """Decompress one member from bytes that start at its local header."""
    offset, csize, method, crc, usize = entry
    if struct.unpack("<I", blob[:4])[0] != LOCAL_SIG:
        raise ZipFormatError("{}: no local file header at offset {}".format(name, offset))
    nlen, elen = struct.unpack("<HH", blob[26:30])
    start = 30 + nlen + elen
    raw = blob[start:start + csize]
    if method == 0:
        data = raw
    elif method == 8:
        data = zlib.decompressobj(-15).decompress(raw)
    else:
        raise ZipFormatError("{}: compression method {} is not supported".format(name, method))
    if zlib.crc32(data) & 0xFFFFFFFF != crc:
        raise ZipFormatError("{}: CRC mismatch (corrupt or truncated download)".format(name))
    return data


class RemoteZip(object):
    """A zip on an HTTP server, read member by member with Range requests.

    cache_dir: where the central-directory index (JSON) is kept between runs.
    gap: the most bytes between two wanted members that are fetched in one request; a gap
        is also never larger than the member after it, so that a request never brings
        more unwanted bytes than wanted ones (bytes fetched <= 2 x the wanted members'
        bytes, plus the index).
    whole_fraction: download the whole zip when the wanted members make up more than
        this fraction of it.
    retries, backoff: tries again after transient network failures (see openimages.net);
        what still fails raises DownloadError naming the zip's URL.
    """

    # Why our own reader beside the kept library ``remotezip`` (a zipfile.ZipFile over
    # Range reads, which would do the job in fewer lines). Measured (issue 16) on a zip
    # laid out like an Open Images mask zip (55 MB, 66,315 members, zip64, central
    # directory 5.5 MB), reading 15 masks (17 kB), served by tests/fake_openimages.py:
    #                                   requests   bytes fetched
    #   remotezip 0.12.6, every run           17        5,586 kB
    #   this reader, first run                 3        5,586 kB
    #   this reader, later runs                1           18 kB
    # remotezip reads the central directory again on every run and each member with a
    # request of its own; this reader keeps the directory as a JSON index between runs
    # (a resumed run, or a second subset, fetches only the members), merges neighbouring
    # members, retries transient failures, and falls back to the whole zip when a server
    # ignores Range (remotezip raises). The real train zips have ~168k members each, a
    # central directory of ~14 MB (168k x 82-byte entries), 16 zips: ~220 MB that the
    # index saves on every later run (a resume), more than a 1,000-image subset's masks.

    def __init__(self, url, session=None, cache_dir=None, gap=256 * 1024,
                 whole_fraction=0.5, timeout=60, retries=0, backoff=0.5):
        self.url = url
        self.session = session or requests.Session()
        self.cache_dir = cache_dir
        self.gap = gap
        self.whole_fraction = whole_fraction
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.bytes_fetched = 0
        self.requests = 0
        self.used_whole_zip = False
        self.size = None
        self._cd_offset = None
        self._entries = None
        self._whole_path = None

    def _get(self, start, end=None):
        data, total = _get_range(self.session, self.url, start, end, timeout=self.timeout,
                                 retries=self.retries, backoff=self.backoff)
        self.requests += 1
        self.bytes_fetched += len(data)
        return data, total

    # -- index
    def _index_path(self):
        if not self.cache_dir:
            return None
        key = hashlib.sha1(self.url.encode("utf8")).hexdigest()[:16]
        return os.path.join(self.cache_dir, "zipindex-{}.json".format(key))

    def entries(self):
        """The central directory, from the cache or the server."""
        if self._entries is not None:
            return self._entries
        path = self._index_path()
        if path and os.path.exists(path):
            with open(path) as f:
                cached = json.load(f)
            self.size, self._entries = cached["size"], cached["entries"]
            self._cd_offset = cached.get("cd_offset")
            return self._entries
        try:
            tail, total = self._get(-TAIL_BYTES)
        except RangeNotSupported:
            self._download_whole()
            return self._entries
        self.size = total if total is not None else len(tail)
        cd_offset, cd_size, _ = parse_end_records(tail, self.size)
        tail_start = self.size - len(tail)
        if cd_offset >= tail_start:
            cd = tail[cd_offset - tail_start:cd_offset - tail_start + cd_size]
        else:
            cd, _ = self._get(cd_offset, cd_offset + cd_size - 1)
        self._entries = parse_central_directory(cd)
        self._cd_offset = cd_offset
        if path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = part_path(path)
            try:
                with open(tmp, "w") as f:
                    json.dump({"url": self.url, "size": self.size, "cd_offset": cd_offset,
                               "entries": self._entries}, f)
                os.replace(tmp, path)
            finally:
                remove_quietly(tmp)
        return self._entries

    # -- members
    def read_members(self, names):
        """{name: bytes} for the wanted member names (missing names raise KeyError)."""
        names = list(dict.fromkeys(names))
        entries = self.entries()
        missing = [n for n in names if n not in entries]
        if missing:
            raise KeyError("{} is missing from {}: {}".format(
                "member" if len(missing) == 1 else "members", self.url, missing[:5]))
        if self._whole_path:
            return self._read_from_whole(names)
        ends = self._member_ends(entries)
        wanted = sum(ends[n] - entries[n][0] for n in names)
        if self.size and wanted > self.whole_fraction * self.size:
            self._download_whole()
            return self._read_from_whole(names)
        out = {}
        for group in self._groups(names, entries, ends):
            start = entries[group[0]][0]
            end = max(ends[n] for n in group) - 1
            try:
                blob, _ = self._get(start, end)
            except RangeNotSupported:
                self._download_whole()
                out.update(self._read_from_whole([n for n in names if n not in out]))
                return out
            for n in group:
                rel = entries[n][0] - start
                out[n] = extract_member(blob[rel:], entries[n], n)
        return out

    def _member_ends(self, entries):
        """Each member ends where the next one (or the central directory) begins."""
        order = sorted(entries.items(), key=lambda kv: kv[1][0])
        ends = {}
        for (name, e), nxt in zip(order, order[1:] + [(None, None)]):
            if nxt[1] is not None:
                ends[name] = nxt[1][0]
            elif self._cd_offset is not None:
                ends[name] = self._cd_offset
            else:
                ends[name] = e[0] + 30 + len(name.encode("utf8")) + 1024 + e[1]
                if self.size:
                    ends[name] = min(ends[name], self.size)
        return ends

    def _groups(self, names, entries, ends):
        """The wanted members in file order, cut into runs fetched one request each: a
        member joins the run before it when the gap between them is at most
        min(self.gap, its own size), so every unwanted byte fetched pays for a wanted one."""
        ordered = sorted(names, key=lambda n: entries[n][0])
        groups, current = [], []
        for n in ordered:
            if current:
                gap = entries[n][0] - ends[current[-1]]
                if gap > min(self.gap, ends[n] - entries[n][0]):
                    groups.append(current)
                    current = []
            current.append(n)
        if current:
            groups.append(current)
        return groups

    # -- whole-zip fallback
    def _download_whole(self):
        """Fetch the whole zip (atomically, into cache_dir or a temp dir) and index it."""
        folder = self.cache_dir or tempfile.mkdtemp(prefix="oi-zip-")
        os.makedirs(folder, exist_ok=True)
        base = os.path.basename(self.url.split("?")[0])
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.zip", base):
            base = "zip-{}.zip".format(hashlib.sha1(self.url.encode("utf8")).hexdigest()[:16])
        path = os.path.join(folder, base)
        if not (os.path.exists(path) and zipfile.is_zipfile(path)):
            tmp = part_path(path)

            def attempt():
                got = 0
                with self.session.get(self.url, stream=True, timeout=self.timeout) as resp:
                    check_status(resp)
                    with open(tmp, "wb") as f:
                        for chunk in resp.iter_content(1 << 20):
                            f.write(chunk)
                            got += len(chunk)
                            self.bytes_fetched += len(chunk)
                    total = int(resp.headers.get("Content-Length") or 0) or None
                if total is not None and got != total:
                    raise ShortRead("the zip stopped at {} of {} bytes".format(got, total))

            try:
                with_retries(attempt, self.url, retries=self.retries, backoff=self.backoff)
                self.requests += 1
                os.replace(tmp, path)
            finally:
                remove_quietly(tmp)
        self.used_whole_zip = True
        self._whole_path = path
        self.size = os.path.getsize(path)
        with zipfile.ZipFile(path) as z:
            self._entries = {i.filename: [i.header_offset, i.compress_size, i.compress_type,
                                          i.CRC, i.file_size] for i in z.infolist()}

    def _read_from_whole(self, names):
        with zipfile.ZipFile(self._whole_path) as z:
            return {n: z.read(n) for n in names}
