#!/usr/bin/env python3
"""The repository stands alone: a user clones only this repository.

Fails (exit 1, one line per finding) when a tracked file
  - names a path outside the repository (a parent folder's notes) or one of the team's private
    documents, or
  - mentions a Markdown document (`something.md`) that is not in the repository, or
  - links (Markdown `[text](target)`) to a relative path that does not exist.
URLs are not checked (`https://...` is another site's business).

  tests/lint/standalone_check.py [REPO]      check REPO (default: this repository)
  tests/lint/standalone_check.py --selftest  prove that each rule catches what it should
"""
import os
import re
import subprocess
import sys
import tempfile

# Written so that this file does not match itself.
FORBIDDEN = re.compile(r"\.\./shared\b|\bshared[/]reference\b|\bCONTRACT\.md\b|\bDESIGN\.md\b")
MD_MENTION = re.compile(r"(?<![\w/.:-])([\w./-]*[\w-]\.md)\b")
MD_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
URL_BEFORE = re.compile(r"[a-z]+://\S*$")
SKIP_DIRS = {".git", "node_modules", "build"}


def tracked_files(repo):
    try:
        out = subprocess.run(["git", "-C", repo, "ls-files", "-z"], check=True,
                             capture_output=True).stdout.decode()
        return [f for f in out.split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for root, dirs, names in os.walk(repo):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith("build")]
            files += [os.path.relpath(os.path.join(root, n), repo) for n in names]
        return files


def read_text(path):
    try:
        with open(path, "rb") as f:
            data = f.read(2_000_000)
    except OSError:
        return None
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def resolves(mention, here, repo, basenames):
    """A mention resolves as a path from the file's folder, from the top, or by its file name."""
    if "/" not in mention:
        return mention in basenames
    for base in (here, repo):
        if os.path.exists(os.path.normpath(os.path.join(base, mention))):
            return True
    return False


def check_line(rel, lineno, line, here, repo, basenames):
    if FORBIDDEN.search(line):
        return [f"{rel}:{lineno}: names something outside this repository: {line.strip()}"]
    problems = []
    linked = {m.group(1) for m in MD_LINK.finditer(line)} if rel.endswith(".md") else set()
    for m in MD_MENTION.finditer(line):
        if URL_BEFORE.search(line[: m.start(1)]) or m.group(1) in linked:
            continue
        if not resolves(m.group(1), here, repo, basenames):
            problems.append(f"{rel}:{lineno}: mentions {m.group(1)}, which is not in this repository")
    if rel.endswith(".md"):
        for m in MD_LINK.finditer(line):
            target = m.group(1)
            if "://" in target or target.startswith("mailto:"):
                continue
            if not os.path.exists(os.path.normpath(os.path.join(here, target))):
                problems.append(f"{rel}:{lineno}: links to {target}, which does not exist")
    return problems


def check(repo):
    files = tracked_files(repo)
    basenames = {os.path.basename(f) for f in files}
    problems = []
    for rel in files:
        if rel.startswith("tests/lint/standalone_check"):
            continue
        text = read_text(os.path.join(repo, rel))
        if text is None:
            continue
        here = os.path.dirname(os.path.join(repo, rel))
        for lineno, line in enumerate(text.splitlines(), 1):
            problems += check_line(rel, lineno, line, here, repo, basenames)
    return problems


def selftest():
    cases = {
        "ok": ({"README.md": "See [tests](tests/README.md) and tests/README.md.\n",
                "tests/README.md": "Back to [the top](../README.md); https://x.io/missing.md\n"}, 0),
        "parent folder": ({"a.cc": "// see ../" + "shared/notes\n"}, 1),
        "private notes": ({"a.cc": "// as CONTRACT" + ".md says\n"}, 1),
        "missing doc": ({"a.h": "// see docs/gone.md\n"}, 1),
        "broken link": ({"README.md": "[x](deploy/README.md)\n"}, 1),
    }
    failed = 0
    for name, (files, want) in cases.items():
        with tempfile.TemporaryDirectory() as tmp:
            for rel, body in files.items():
                os.makedirs(os.path.dirname(os.path.join(tmp, rel)) or tmp, exist_ok=True)
                with open(os.path.join(tmp, rel), "w") as f:
                    f.write(body)
            got = len(check(tmp))
        status = "ok" if got == want else "FAIL"
        failed += got != want
        print(f"selftest {status}: {name}: {got} finding(s), expected {want}")
    return 1 if failed else 0


def main():
    if sys.argv[1:] == ["--selftest"]:
        return selftest()
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    problems = check(os.path.abspath(repo))
    for p in problems:
        print(p)
    print(f"standalone: {len(problems)} finding(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
