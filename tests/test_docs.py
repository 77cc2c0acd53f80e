"""The documentation works as written: README.md and every docs/*.md name only things that exist.

For every command in a shell code block (and every inline span that is a command), the test
checks that ``python Training.py`` uses an existing command, named configs and config keys
(``model_config.*``, ``partition_config.*``, ``dataset_roots.*`` included), that ``make`` uses
existing targets, and that scripts and repository files exist. Inline spans such as
``model_config.precision=mixed`` or ``partition_config.supervised_database`` are checked as
settings, and spans such as ``bench/train_step.py`` or ``docs/training.md`` as files. Links
must reach an existing file and heading. The real commands, named configs and keys come from
the sacred experiment itself, read once in a subprocess (importing Training sets TensorFlow
and sacred up, which the other tests should not inherit).
"""

import difflib
import glob
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from typing import List, Sequence, Set, Tuple

import pytest

from conftest import ROOT

DOCS = ["README.md"] + sorted(os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, "docs", "*.md")))
README_MAX_LINES = 250
README_SECTIONS = [
    "Quick start",
    "Separate your songs",
    "Reproduce the paper",
    "Your own data",
    "Monitoring",
    "How to cite",
]
SHELL_LANGUAGES = {"", "bash", "sh", "shell"}
PYTHONS = {"python", "python3", ".venv/bin/python"}
UNCHECKED_TOOLS = {".venv/bin/pip", "pip", "tensorboard", "source", "sudo", "nvidia-smi", "cd", "ls"}
REPO_FILE_SUFFIXES = (".py", ".md", ".xml", ".sh", ".txt", ".ini", ".npz")
USER_FILES = {"my_data.py"}  # files the docs ask the user to write
OUTPUT_OPTIONS = {"--xml"}  # options whose value is a file the command writes
FACTS_SCRIPT = """
import json
import Datasets
import Training
from sacred.initialize import create_run

def flat(config, prefix=""):
    for key, value in config.items():
        yield prefix + key
        if isinstance(value, dict):
            yield from flat(value, prefix + key + ".")

ex = Training.ex
keys = set()
for named in [[]] + [[name] for name in ex.named_configs]:
    keys.update(flat(create_run(ex, ex.default_command, config_updates={}, named_configs=named).config))
print(json.dumps({"commands": sorted(ex.commands), "named_configs": sorted(ex.named_configs),
                  "keys": sorted(keys), "databases": sorted(Datasets.DATABASE_NAMES)}))
"""


@dataclass
class Facts:
    """What the documentation may name: the experiment's commands, named configs and config keys
    (dotted, nested ones included), the database names of ``Datasets.py``, the Makefile's targets
    and the repository's source folders."""

    commands: Set[str]
    named_configs: Set[str]
    keys: Set[str]
    databases: Set[str]
    make_targets: Set[str]
    source_folders: Set[str]

    @property
    def dict_keys(self) -> Set[str]:
        """Keys that hold a dictionary (``model_config``, ``dataset_roots``, ...)."""
        return {key.rsplit(".", 1)[0] for key in self.keys if "." in key}


@dataclass
class Markdown:
    """A Markdown file split into what the checks read; line numbers are 1-based."""

    blocks: List[Tuple[int, str, List[str]]] = field(default_factory=list)  # (line, language, lines)
    paragraphs: List[Tuple[int, str]] = field(default_factory=list)  # (first line, text joined by spaces)
    headings: List[Tuple[int, int, str]] = field(default_factory=list)  # (line, level, title)
    unclosed_fence: int = 0  # line of a code fence that is never closed, 0 if none


def read(path: str) -> str:
    """The text of ``path`` (UTF-8)."""
    with open(path, encoding="utf-8") as file:
        return file.read()


def make_targets(makefile: str) -> Set[str]:
    """The explicit targets of ``makefile`` (rule lines outside recipes, variables left out)."""
    targets = set()
    for line in read(makefile).splitlines():
        match = re.match(r"^([A-Za-z0-9_.\- ]+):(?!=)", line)
        if match and not line.startswith("\t"):
            targets.update(name for name in match.group(1).split() if not name.startswith("."))
    return targets


def source_folders(root: str) -> Set[str]:
    """Top-level folders of the repository that hold code or documentation directly (so that
    run outputs such as ``cache/`` or ``runs/`` are not taken for repository files)."""
    return {
        name
        for name in os.listdir(root)
        if not name.startswith(".")
        and os.path.isdir(os.path.join(root, name))
        and any(entry.endswith((".py", ".sh", ".md")) for entry in os.listdir(os.path.join(root, name)))
    }


@pytest.fixture(scope="module")
def facts() -> Facts:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(
        [sys.executable, "-c", FACTS_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "model_config.alpha" in found["keys"] and "demo" in found["named_configs"], found
    return Facts(
        set(found["commands"]),
        set(found["named_configs"]),
        set(found["keys"]),
        set(found["databases"]),
        make_targets(os.path.join(ROOT, "Makefile")),
        source_folders(ROOT),
    )


def parse_markdown(text: str) -> Markdown:
    """Split ``text`` into fenced code blocks, prose paragraphs and headings."""
    doc = Markdown()
    fence, block, paragraph = None, None, []

    def end_paragraph():
        if paragraph:
            doc.paragraphs.append((paragraph[0][0], " ".join(line.strip() for _, line in paragraph)))
            paragraph.clear()

    for number, line in enumerate(text.splitlines(), 1):
        match = re.match(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)", line)
        if fence is not None:
            if match and match.group(1).startswith(fence) and not match.group(2):
                doc.blocks.append(block)
                fence = None
            else:
                block[2].append(line)
        elif match:
            end_paragraph()
            fence, block = match.group(1), (number, match.group(2).lower(), [])
            doc.unclosed_fence = number
        elif re.match(r"^#{1,6} ", line):
            end_paragraph()
            hashes, title = line.split(" ", 1)
            doc.headings.append((number, len(hashes), title.strip()))
        elif line.strip():
            paragraph.append((number, line))
        else:
            end_paragraph()
    end_paragraph()
    if fence is None:
        doc.unclosed_fence = 0
    return doc


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def suggestion(name: str, known: Set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def check_setting(key: str, facts: Facts) -> List[str]:
    """Problems with one config key, e.g. ``model_config.alpha`` (none if it exists)."""
    return [] if key in facts.keys else [f"unknown setting {key}{suggestion(key, facts.keys)}"]


def check_with(tokens: Sequence[str], facts: Facts) -> List[str]:
    """Problems with the words after ``with``: ``key=value`` settings and named configs."""
    problems = []
    for token in tokens:
        if "=" in token:
            problems += check_setting(token.split("=", 1)[0], facts)
        elif not token.endswith((".json", ".yaml")) and token not in facts.named_configs:
            problems.append(f"unknown named config {token}{suggestion(token, facts.named_configs)}")
        elif token.endswith((".json", ".yaml")) and not os.path.exists(os.path.join(ROOT, token)):
            problems.append(f"config file {token} does not exist")
    return problems


def check_training(args: Sequence[str], facts: Facts) -> List[str]:
    """Problems with the arguments of ``python Training.py``."""
    args = list(args)
    problems = []
    if args and args[0] != "with":
        command = args.pop(0)
        if command not in facts.commands:
            problems.append(f"unknown command {command}{suggestion(command, facts.commands)}")
    if args and args[0] != "with":
        return problems + [f"expected 'with' before {args[0]}"]
    return problems + check_with(args[1:], facts)


def check_datasets_script(args: Sequence[str], facts: Facts) -> List[str]:
    """Problems with the arguments of ``python Datasets.py NAME ROOT [--xml FILE]``."""
    positional = [arg for i, arg in enumerate(args) if not arg.startswith("-") and (i == 0 or args[i - 1] != "--xml")]
    problems = [f"unknown option {arg} of Datasets.py" for arg in args if arg.startswith("-") and arg != "--xml"]
    if len(positional) != 2:
        problems.append(f"Datasets.py takes a database name and a folder, got {positional}")
    elif positional[0] not in facts.databases:
        problems.append(f"unknown database {positional[0]}{suggestion(positional[0], facts.databases)}")
    return problems


def repo_path(name: str, facts: Facts) -> bool:
    """Whether ``name`` (a backticked word or a command argument) names a file of the repository."""
    if (
        not name
        or re.search(r"[\s<>*{}=()'\"…]|\.\.\.", name)
        or name.startswith(("/", ".", "~"))
        or name in USER_FILES
    ):
        return False
    if "/" in name:
        return name.split("/", 1)[0] in facts.source_folders
    return name.endswith(REPO_FILE_SUFFIXES) or name == "Makefile"


def check_path(name: str, facts: Facts) -> List[str]:
    """Problems with a name that looks like a repository file (none for other names)."""
    if repo_path(name, facts) and not os.path.exists(os.path.join(ROOT, name.rstrip("/"))):
        return [f"no file or folder {name} in the repository"]
    return []


def check_command(tokens: Sequence[str], facts: Facts) -> List[str]:
    """Problems with one shell command, split into words."""
    program, args = tokens[0], list(tokens[1:])
    problems = [
        problem
        for i, arg in enumerate(args)
        if i == 0 or args[i - 1] not in OUTPUT_OPTIONS
        for problem in check_path(arg, facts)
    ]
    if program in PYTHONS:
        if args[:2] == ["-m", "pytest"]:
            problems += [
                f"no test path {arg}"
                for arg in args[2:]
                if not arg.startswith("-") and not os.path.exists(os.path.join(ROOT, arg))
            ]
        elif args[:1] == ["-m"]:
            module = args[1] if len(args) > 1 else ""
            if module != "venv" and not os.path.isfile(os.path.join(ROOT, *module.split(".")) + ".py"):
                problems.append(f"no module {module} in the repository")
        elif args and args[0] != "-c":
            if not os.path.isfile(os.path.join(ROOT, args[0])):
                problems.append(f"no script {args[0]}")
            elif args[0] == "Training.py":
                problems += check_training(args[1:], facts)
            elif args[0] == "Datasets.py":
                problems += check_datasets_script(args[1:], facts)
    elif program == "make":
        for arg in args:
            if arg.startswith("DEMO_ARGS="):
                problems += check_with(shlex.split(arg.split("=", 1)[1]), facts)
            elif "=" not in arg and arg not in facts.make_targets:
                problems.append(f"no make target {arg}{suggestion(arg, facts.make_targets)}")
    elif program in ("sh", "bash"):
        if not args or not os.path.isfile(os.path.join(ROOT, args[0])):
            problems.append(f"no script {args[:1]}")
    elif program not in UNCHECKED_TOOLS:
        problems.append(f"unknown program {program} (add it to UNCHECKED_TOOLS if it is a real tool)")
    return problems


def shell_commands(source: str) -> List[List[str]]:
    """The commands of a piece of shell, each split into words (comments, ``&&`` and ``;`` split off)."""
    commands = []
    for line in source.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars="&;|")
        lexer.whitespace_split = True
        current = []
        for token in lexer:
            if token in ("&&", "||", ";", "|"):
                commands.append(current)
                current = []
            else:
                current.append(token)
        commands.append(current)
    return [command for command in commands if command]


def check_inline(span: str, facts: Facts) -> List[str]:
    """Problems with one inline code span: a command, settings, a config key or a file name."""
    words = span.split()
    if words and (words[0] in PYTHONS | {"make", "sh"} or words[0].endswith(".py") and len(words) > 1):
        tokens = shell_commands(span)[0]
        return check_command(["python"] + tokens if tokens[0].endswith(".py") else tokens, facts)
    if words and words[0] == "with":
        return check_with(shlex.split(span)[1:], facts)
    setting = re.match(r"^([a-z_]\w*(?:\.\w+)*)=[^\s'\"]*$", span)  # split='valid' is Python, not a setting
    if setting:
        return check_setting(setting.group(1), facts)
    if re.match(r"^[a-z_]\w*(\.\w+)+$", span) and span.split(".")[0] in facts.dict_keys and not span.endswith(".json"):
        return check_setting(span, facts)
    return check_path(span, facts)


def check_links(doc_path: str, doc: Markdown) -> List[str]:
    """Problems with the relative links of a document: missing files or headings."""
    problems = []
    for _, text in doc.paragraphs:
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = os.path.normpath(os.path.join(os.path.dirname(os.path.join(ROOT, doc_path)), path))
            if path and not os.path.exists(file):
                problems.append(f"link to a missing file: {target}")
                continue
            if anchor:
                headings = parse_markdown(read(file)).headings if path else doc.headings
                if anchor not in {slug(title) for _, _, title in headings}:
                    problems.append(f"link to a missing heading: {target}")
    return problems


def check_structure(doc: Markdown) -> List[str]:
    """Problems with how a document renders: unclosed code fences, headings out of order."""
    problems = [f"line {doc.unclosed_fence}: code fence never closed"] if doc.unclosed_fence else []
    levels = [level for _, level, _ in doc.headings]
    if not levels or levels[0] != 1 or levels.count(1) != 1:
        problems.append("the document must start with its one level-1 heading")
    problems += [
        f"line {line}: heading level jumps from {before} to {level}"
        for (_, before, _), (line, level, _) in zip(doc.headings, doc.headings[1:])
        if level > before + 1
    ]
    return problems


def check_document(doc_path: str, text: str, facts: Facts) -> List[str]:
    """Every problem of one Markdown document, each prefixed with its file and line."""
    doc = parse_markdown(text)
    problems = [f"{doc_path}: {problem}" for problem in check_structure(doc) + check_links(doc_path, doc)]
    for line, language, lines in doc.blocks:
        if language in SHELL_LANGUAGES:
            for command in shell_commands("\n".join(lines)):
                problems += [
                    f"{doc_path}:{line}: {' '.join(command)}: {problem}" for problem in check_command(command, facts)
                ]
    for line, paragraph in doc.paragraphs:
        for span in re.findall(r"`([^`]+)`", paragraph):
            problems += [f"{doc_path}:{line}: `{span}`: {problem}" for problem in check_inline(span, facts)]
    return problems


@pytest.mark.parametrize("doc_path", DOCS)
def test_every_command_key_target_and_file_exists(doc_path, facts):
    problems = check_document(doc_path, read(os.path.join(ROOT, doc_path)), facts)
    assert problems == [], "\n".join(problems)


def test_the_readme_is_short_and_has_its_sections():
    text = read(os.path.join(ROOT, "README.md"))
    titles = [title for _, level, title in parse_markdown(text).headings if level == 2]
    assert len(text.splitlines()) <= README_MAX_LINES
    assert [title for title in titles if title in README_SECTIONS] == README_SECTIONS


@pytest.mark.parametrize(
    "snippet, expected",
    [
        (
            "```bash\npython Training.py with model_config.alpah=0.01\n```",
            "unknown setting model_config.alpah (did you mean model_config.alpha?)",
        ),
        ("```bash\npython Training.py with dataset_roots.DSD10=/data\n```", "unknown setting dataset_roots.DSD10"),
        (
            "```bash\npython Training.py evaluatee with model_path=x\n```",
            "unknown command evaluatee (did you mean evaluate?)",
        ),
        ("```bash\npython Training.py with demoo\n```", "unknown named config demoo"),
        (
            "```bash\nmake demo DEMO_ARGS='seed=3 model_config.precison=mixed'\n```",
            "unknown setting model_config.precison",
        ),
        ("```bash\nmake tset\n```", "no make target tset (did you mean test?)"),
        ("```bash\n.venv/bin/python bench/no_such_bench.py\n```", "no script bench/no_such_bench.py"),
        ("```bash\npython Datasets.py DSD101 /data/DSD100\n```", "unknown database DSD101"),
        ("```bash\nfrobnicate --all\n```", "unknown program frobnicate"),
        (
            "Run `python Training.py with partition_config.supervised_databse=MUSDB18`.",
            "unknown setting partition_config.supervised_databse",
        ),
        ("Set `model_config.presicion=mixed`.", "unknown setting model_config.presicion"),
        ("The key `model_config.num_worker` sets readers.", "unknown setting model_config.num_worker"),
        ("See `tools/no-such-tool.sh` and `docs/nothing.md`.", "no file or folder tools/no-such-tool.sh"),
        ("See [the training notes](docs/nothing.md).", "link to a missing file: docs/nothing.md"),
        ("See [the start](#no-such-heading).", "link to a missing heading: #no-such-heading"),
        ("```bash\nmake demo\n", "code fence never closed"),
        ("## A section first\n", "the document must start with its one level-1 heading"),
    ],
)
def test_the_checks_catch_mistakes(snippet, expected, facts):
    problems = check_document(
        "README.md", "# Title\n\n## Quick start\n\n" + snippet + "\n" if not snippet.startswith("#") else snippet, facts
    )
    assert any(expected in problem for problem in problems), problems


def test_the_checks_accept_correct_text(facts):
    text = (
        "# Title\n\n## Quick start\n\n```bash\nmake demo DEMO_ARGS='model_config.precision=mixed seed=3'\n"
        "python Training.py evaluate with demo model_path=checkpoints/x/best 'bss_eval=[\"v4\"]'\n"
        "python Datasets.py MUSDB18 /data/musdb18 --xml MUSDB18.xml  # writes MUSDB18.xml\n```\n\n"
        "With `partition_config.supervised_validation=musdb_valid` and `dataset_roots.MUSDB18`, see "
        "`bench/train_step.py`, `cache/magnitudes/` and [the start](#quick-start).\n"
    )
    assert check_document("README.md", text, facts) == []
