"""Documentation that cannot rot (issue 17, item 7).

Every shell command in README.md, docs/*.md and samples/*/README.md that starts with
``mrcnn`` (or ``.venv/bin/mrcnn``), ``python -m``, ``python samples/...`` or
``bash scripts/...`` is run with ``--help`` after its subcommand, from a folder outside
the repository, and every ``--option`` the documented command uses must be in that help:
a renamed option, a removed command or a wrong script path fails here. ``bash scripts/``
commands are syntax-checked (``bash -n``), not run; the options they pass on are checked
against the help of the module the script hands them to.

The ``../shared/data`` paths the sample commands use are loaded for real (the sample's
``inspect`` draws one image), so a path one folder too high fails. Also checked: the
README's length, that figures live in bench/RESULTS.md only (no
measured figure restated, one .venv size, no minutes of the shapes or demo runs),
relative links and their anchors, repository paths named in the text, the Python
examples' syntax and the names they import, and that every option of the ``mrcnn``
commands and of the downloader is documented.
"""
import ast
import functools
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMMAND_DOCS = sorted(
    [os.path.join(ROOT, "README.md")] + glob.glob(os.path.join(ROOT, "docs", "*.md")) +
    glob.glob(os.path.join(ROOT, "samples", "*", "README.md")))
ALL_DOCS = COMMAND_DOCS + [os.path.join(ROOT, "weights", "README.md"),
                           os.path.join(ROOT, "bench", "README.md")]
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
SHELL_LANGS = ("bash", "sh", "shell")
PYTHONS = ("python", "python3", ".venv/bin/python", ".venv/bin/python3")
HELP_TIMEOUT = 120


def rel(path):
    return os.path.relpath(path, ROOT)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---------------------------------------------------------------- collecting commands

def fenced_blocks(text):
    """[(language, [(line number, line), ...])] of the ``` blocks of a Markdown text."""
    blocks, current, lang = [], None, None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            if current is None:
                lang, current = stripped[3:].strip().lower(), []
            else:
                blocks.append((lang, current))
                current = None
            continue
        if current is not None:
            current.append((number, line))
    return blocks


def logical_lines(numbered):
    """Join lines continued with a trailing backslash: [(first line number, text)]."""
    out, pending, start = [], "", None
    for number, line in numbered:
        if start is None:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending, start = "", None
    if pending:
        out.append((start, pending))
    return out


def command_lines(text):
    """(line number, command text) of every shell command of a Markdown text: each line of
    a bash/sh/shell block, and lines starting with ``$ `` anywhere else."""
    found, fenced = [], set()
    for lang, numbered in fenced_blocks(text):
        fenced.update(n for n, _ in numbered)
        for number, line in logical_lines(numbered):
            stripped = line.strip()
            if stripped.startswith("$ "):
                found.append((number, stripped[2:]))
            elif lang in SHELL_LANGS and stripped:
                found.append((number, stripped))
    outside = [(n, l) for n, l in enumerate(text.splitlines(), 1) if n not in fenced]
    for number, line in logical_lines(outside):
        if line.strip().startswith("$ "):
            found.append((number, line.strip()[2:]))
    return found


def split_command(text):
    """The simple commands of a shell line (split at &&, ||, ;, |), comments dropped and
    leading VAR=value assignments removed; [] when the line does not parse."""
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
    except ValueError:
        return []
    commands, current = [], []
    for token in tokens:
        if token and set(token) <= set(";&|"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    out = []
    for command in commands:
        while command and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", command[0]):
            command = command[1:]
        if command:
            out.append(command)
    return out


def classify(tokens):
    """What a documented command runs: {"kind", "program" (argv prefix), "rest"} for the
    commands this test checks, else None."""
    head = tokens[0]
    if head in ("mrcnn", ".venv/bin/mrcnn"):
        return {"kind": "mrcnn", "program": ("mrcnn",), "rest": tokens[1:]}
    if head in PYTHONS and len(tokens) > 1:
        if tokens[1] == "-m" and len(tokens) > 2:
            return {"kind": "module", "program": ("-m", tokens[2]), "rest": tokens[3:]}
        if tokens[1].startswith("samples/") and tokens[1].endswith(".py"):
            return {"kind": "script", "program": (tokens[1],), "rest": tokens[2:]}
    if head == "bash" and len(tokens) > 1 and tokens[1].startswith("scripts/"):
        return {"kind": "bash", "program": (tokens[1],), "rest": tokens[2:]}
    return None


def launched(tokens):
    """``mrcnn launch [options] -- WORKER...``: the launcher's own command and the
    worker's (``mrcnn WORKER...``, or ``python script.py ...``), each checked on its own;
    other commands as they are."""
    if len(tokens) > 1 and tokens[0] in ("mrcnn", ".venv/bin/mrcnn") and \
            tokens[1] == "launch" and "--" in tokens:
        k = tokens.index("--")
        worker = tokens[k + 1:]
        if worker and worker[0].endswith(".py"):
            return [tokens[:k], ["python"] + worker]
        return [tokens[:k], [tokens[0]] + worker] if worker else [tokens[:k]]
    return [tokens]


def documented_commands():
    """[(id, tokens, classification)] over COMMAND_DOCS."""
    out = []
    for path in COMMAND_DOCS:
        for number, line in command_lines(read(path)):
            for whole in split_command(line):
                for tokens in launched(whole):
                    kind = classify(tokens)
                    if kind is not None:
                        out.append(("{}:{}".format(rel(path), number), tokens, kind))
    return out


COMMANDS = documented_commands()


def options_of(tokens):
    """The --options a command line uses (``--x=1`` gives ``--x``), --help left out."""
    return sorted({t.split("=", 1)[0] for t in tokens
                   if re.match(r"--[A-Za-z]", t) and t.split("=", 1)[0] != "--help"})


def subcommand_of(rest):
    """The subcommand: the first word after the program, when it is not an option."""
    return rest[0] if rest and not rest[0].startswith("-") else None


# ---------------------------------------------------------------- running --help

@pytest.fixture(scope="module")
def outside():
    """A working directory outside the repository, as a user's."""
    folder = tempfile.mkdtemp(prefix="mrcnn-docs-")
    assert not os.path.abspath(folder).startswith(ROOT + os.sep)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def console_script():
    """The installed ``mrcnn`` when it belongs to this Python, else ``python -m mrcnn``."""
    found = shutil.which("mrcnn")
    if found and os.path.dirname(os.path.abspath(found)) == \
            os.path.dirname(os.path.abspath(sys.executable)):
        return [found]
    here = os.path.join(os.path.dirname(sys.executable), "mrcnn")
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return [here]
    return [sys.executable, "-m", "mrcnn"]


def help_env():
    env = dict(os.environ)
    # this checkout's code (the venv may hold another editable install)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in env.get("PYTHONPATH", "")
                                                  .split(os.pathsep) if p])
    env["MPLBACKEND"] = "Agg"
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


@functools.lru_cache(maxsize=None)
def run_help(argv, cwd):
    """(exit code, stdout + stderr) of ``argv`` (a tuple) run from ``cwd``; one run per
    command and subcommand."""
    proc = subprocess.run(list(argv), cwd=cwd, env=help_env(), capture_output=True,
                          text=True, timeout=HELP_TIMEOUT)
    return proc.returncode, proc.stdout + proc.stderr


def help_argv(kind, sub):
    """The argv that shows the help of a documented command (and its subcommand)."""
    if kind["kind"] == "mrcnn":
        argv = console_script()
    elif kind["kind"] == "module":
        argv = [sys.executable] + list(kind["program"])
    else:
        argv = [sys.executable, os.path.join(ROOT, kind["program"][0])]
    return tuple(argv + ([sub] if sub else []) + ["--help"])


def script_receiver(script_path):
    """The module a bash script hands its arguments to (``exec python -m X ... "$@"``)."""
    m = re.search(r'^\s*exec\s+python3?\s+-m\s+([\w.]+)\b.*"\$@"', read(script_path), re.M)
    return m.group(1) if m else None


def option_in_help(option, text):
    return re.search(r"(?<![\w-]){}(?![\w-])".format(re.escape(option)), text) is not None


def test_the_docs_hold_commands_of_every_kind():
    kinds = {k["kind"] for _, _, k in COMMANDS}
    assert kinds == {"mrcnn", "module", "script", "bash"}, kinds
    programs = {" ".join(k["program"]) for _, _, k in COMMANDS}
    for expected in ("mrcnn", "-m openimages", "samples/traffic/train.py",
                     "samples/nucleus/train.py", "scripts/demo.sh", "scripts/test.sh"):
        assert expected in programs, expected


@pytest.mark.parametrize("where,tokens,kind", COMMANDS,
                         ids=["{} {}".format(w, " ".join(t[:3])) for w, t, _ in COMMANDS])
def test_documented_command_answers_help_with_every_option_it_uses(where, tokens, kind,
                                                                    outside):
    options = options_of(tokens)
    if kind["kind"] == "bash":
        script = os.path.join(ROOT, kind["program"][0])
        assert os.path.isfile(script), "{}: {} does not exist".format(where, kind["program"][0])
        check = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
        assert check.returncode == 0, "{}: {}".format(where, check.stderr)
        if not options:
            return
        receiver = script_receiver(script)
        assert receiver, "{}: {} passes {} on, but to no python -m module this test " \
            "can find".format(where, kind["program"][0], options)
        code, text = run_help((sys.executable, "-m", receiver, "--help"), outside)
        assert code == 0, "{}: python -m {} --help failed:\n{}".format(where, receiver,
                                                                       text[-2000:])
    else:
        if kind["kind"] == "script":
            path = os.path.join(ROOT, kind["program"][0])
            assert os.path.isfile(path), "{}: {} does not exist".format(where,
                                                                       kind["program"][0])
        sub = subcommand_of(kind["rest"])
        argv = help_argv(kind, sub)
        if kind["rest"] == ["--version"]:  # answered before the parser: run it as it is
            argv = argv[:-1] + ("--version",)
            options = []
        code, text = run_help(argv, outside)
        assert code == 0, "{}: `{}` --help exits with {}:\n{}".format(
            where, " ".join(tokens[:4]), code, text[-2000:])
    missing = [o for o in options if not option_in_help(o, text)]
    assert not missing, "{}: `{}` uses {}, which its --help does not list".format(
        where, " ".join(tokens), missing)


def option_value(tokens, name):
    """The value a command line gives ``name`` (``--x=v`` or ``--x v``), or None."""
    for k, token in enumerate(tokens):
        if token.startswith(name + "="):
            return token.split("=", 1)[1]
        if token == name and k + 1 < len(tokens):
            return tokens[k + 1]
    return None


def shared_data_datasets():
    """{(sample script, dataset path)} of the documented sample commands whose --dataset
    is under ../shared/data (relative to the repository root, as the docs say)."""
    found = set()
    for where, tokens, kind in COMMANDS:
        if kind["kind"] != "script":
            continue
        dataset = option_value(tokens, "--dataset")
        if not dataset or not dataset.startswith("../shared/data/"):
            continue
        script = kind["program"][0]
        if script == "samples/calculate_ap.py":
            script = "samples/{}/train.py".format(option_value(tokens, "--sample"))
        found.add((script, dataset))
    return sorted(found)


def test_documented_shared_data_paths_load_with_their_sample(outside):
    """The real-data paths the docs give are the folders the samples read (not one level
    too high): the sample's inspect command loads and draws one image from them."""
    pairs = shared_data_datasets()
    assert pairs, "no documented --dataset under ../shared/data"
    if not os.path.isdir(os.path.join(ROOT, "..", "shared", "data")):
        pytest.skip("needs ../shared/data, which is missing on this machine")
    for script, dataset in pairs:
        path = os.path.normpath(os.path.join(ROOT, dataset))
        proc = subprocess.run(
            [sys.executable, os.path.join(ROOT, script), "inspect", "--dataset", path,
             "--count", "1", "--out", os.path.join(outside, "inspect")],
            cwd=outside, env=help_env(), capture_output=True, text=True, timeout=HELP_TIMEOUT)
        assert proc.returncode == 0, "{} inspect --dataset={}: {}".format(
            script, dataset, proc.stderr[-2000:])


# ---------------------------------------------------------------- every option documented

def mrcnn_commands():
    from mrcnn.cli.main import DELEGATES, build_parser, mrcnn_sample
    parser, commands = build_parser(mrcnn_sample())
    return sorted(set(commands) | set(DELEGATES))


def help_options(text):
    return sorted(set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", text)) - {"--help"})


def test_every_option_of_every_mrcnn_command_is_documented(outside):
    docs = read(os.path.join(ROOT, "docs", "cli.md")) + read(
        os.path.join(ROOT, "docs", "deploy.md"))
    undocumented = {}
    for command in mrcnn_commands():
        assert re.search(r"^#+ .*\b{}\b".format(re.escape(command)), docs, re.M), \
            "docs/cli.md has no section for mrcnn {}".format(command)
        code, text = run_help(tuple(console_script() + [command, "--help"]), outside)
        assert code == 0, text[-2000:]
        missing = [o for o in help_options(text) if not option_in_help(o, docs)]
        if missing:
            undocumented[command] = missing
    assert not undocumented, "options missing from docs/cli.md and docs/deploy.md: {}" \
        .format(undocumented)


def test_every_option_of_the_downloader_is_documented(outside):
    docs = read(os.path.join(ROOT, "docs", "openimages.md"))
    for command in ("download", "coco"):
        code, text = run_help((sys.executable, "-m", "openimages", command, "--help"), outside)
        assert code == 0, text[-2000:]
        missing = [o for o in help_options(text) if not option_in_help(o, docs)]
        assert not missing, "python -m openimages {}: {} missing from docs/openimages.md" \
            .format(command, missing)


# ---------------------------------------------------------------- figures live in one place

def test_readme_is_at_most_250_lines():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        count = sum(1 for _ in f)
    assert count <= 250, "README.md has {} lines".format(count)


def current_results_rows():
    text = read(RESULTS)
    assert "## Current results" in text, "bench/RESULTS.md has no Current results table"
    section = text.split("## Current results", 1)[1].split("\n# ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    assert rows, "bench/RESULTS.md's Current results table is empty"
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def measured_figures():
    """The figures of the Current results table (the mrcnn, peer and ratio columns) as
    they are written there: a number with its unit (``2.00 s``, ``1721 MB``, ``0.64x``) or
    a bare decimal (``0.972``)."""
    figures = set()
    for cells in current_results_rows():
        for cell in cells[1:4]:
            for m in re.finditer(r"(?<![\w.,])(\d[\d,]*(?:\.\d+)?)(x|\s(?:s|MB|GB|steps))?"
                                 r"(?![\w.])", cell):
                number, unit = m.group(1), m.group(2) or ""
                if unit or "." in number or "," in number:
                    figures.add(number + unit)
    return figures


def test_measured_figures_are_stated_only_in_bench_results():
    figures = measured_figures()
    assert "0.972" in figures and "2.00 s" in figures  # the table is read
    restated = []
    for path in ALL_DOCS:
        text = read(path)
        for figure in figures:
            pattern = r"(?<![\w.,]){}(?!\w|[.,]\d)".format(
                re.escape(figure).replace(r"\ ", r"\s+"))
            if re.search(pattern, text):
                restated.append("{}: {}".format(rel(path), figure))
    assert not restated, "figures of bench/RESULTS.md restated (link to it instead): {}" \
        .format(restated)


def test_the_venv_size_is_stated_once():
    sizes = []
    for path in ALL_DOCS + [RESULTS]:
        for line in read(path).splitlines():
            if ".venv" in line:
                sizes += ["{}: {}".format(rel(path), s)
                          for s in re.findall(r"\d+(?:\.\d+)?\s*[GM]B\b", line)]
    assert len(sizes) <= 1, "the size of .venv is stated more than once: {}".format(sizes)


def test_no_minutes_of_the_shapes_or_demo_runs_outside_bench_results():
    found = []
    for path in ALL_DOCS:
        for paragraph in re.split(r"\n\s*\n", read(path)):
            if not re.search(r"shapes|demo", paragraph, re.I):
                continue
            for m in re.finditer(r"\b\d+(?:\.\d+)?[\s-]*min(?:utes?)?\b", paragraph):
                found.append("{}: {!r}".format(rel(path), m.group(0)))
    assert not found, "minutes of the shapes/demo runs belong in bench/RESULTS.md: {}" \
        .format(found)


# ---------------------------------------------------------------- links, paths, examples

def github_anchors(path):
    """The anchors of a Markdown file: explicit ``<a id>``s and GitHub's heading slugs."""
    text = read(path)
    anchors = set(re.findall(r'<a id="([^"]+)"', text))
    in_block = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_block = not in_block
            continue
        m = re.match(r"#+\s+(.*)", line)
        if m and not in_block:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def prose(text):
    """A Markdown text without its fenced blocks and inline code (no links there)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def test_relative_links_and_anchors_resolve():
    broken = []
    for path in ALL_DOCS + [RESULTS]:
        text = prose(read(path))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) \
                if file_part else path
            if not os.path.exists(dest):
                broken.append("{}: {} (no such file)".format(rel(path), target))
            elif anchor and dest.endswith(".md") and anchor not in github_anchors(dest):
                broken.append("{}: {} (no such anchor)".format(rel(path), target))
    assert not broken, broken


REPO_PATH = re.compile(r"(?<![\w/.-])((?:mrcnn|openimages|samples|scripts|bench|tests|docs)"
                       r"/[\w./-]*)")


def test_repository_paths_named_in_the_docs_exist():
    missing = []
    for path in ALL_DOCS:
        for m in REPO_PATH.finditer(read(path)):
            name = m.group(1).rstrip(".")
            if not os.path.exists(os.path.join(ROOT, name)):
                missing.append("{}: {}".format(rel(path), name))
    assert not missing, "paths named in the docs that are not in the repository: {}" \
        .format(sorted(set(missing)))


def python_blocks():
    out = []
    for path in ALL_DOCS:
        for lang, numbered in fenced_blocks(read(path)):
            if lang == "python":
                out.append(("{}:{}".format(rel(path), numbered[0][0] if numbered else 0),
                            "\n".join(line for _, line in numbered)))
    return out


def test_python_examples_parse_and_import_names_that_exist(outside):
    imports = set()
    for where, source in python_blocks():
        try:
            tree = ast.parse(source)
        except SyntaxError as e:
            pytest.fail("{}: the Python example does not parse: {}".format(where, e))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.split(".")[0] in ("mrcnn", "openimages", "samples"):
                imports.update((node.module, a.name) for a in node.names)
            elif isinstance(node, ast.Import):
                imports.update((a.name, None) for a in node.names
                               if a.name.split(".")[0] in ("mrcnn", "openimages", "samples"))
    assert ("mrcnn.config", "Config") in imports  # the examples were read
    proc = subprocess.run([sys.executable, "-c", IMPORT_CHECK, json.dumps(sorted(
        imports, key=str))], cwd=outside, env=help_env(), capture_output=True, text=True,
        timeout=HELP_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    missing = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not missing, "names the Python examples import that do not exist: {}".format(
        missing)


# run in a subprocess (with this checkout first on the path): [[module, name|null], ...]
# -> the JSON list of those that cannot be imported
IMPORT_CHECK = """
import importlib, json, sys
missing = []
for module, name in json.loads(sys.argv[1]):
    try:
        m = importlib.import_module(module)
        if name and not hasattr(m, name):
            importlib.import_module(module + "." + name)
    except ImportError as e:
        missing.append("{} {}: {}".format(module, name or "", e))
print(json.dumps(missing))
"""
