"""docs/design.md names real code: every file it cites exists, every
function or type it cites is defined in the repository, and where it says
which file a function is in (`file` `Name`, or `Name` (`file`)) the function
is defined in that file. A newcomer following the document finds each step
where it says."""

import os
import re
import sys
import unittest

# What the document cites that is not ours to define: system calls and the
# programs themselves.
NOT_OURS = {"clone", "futex_wait", "pidfd_getfd", "offloadd", "offloadctl", "offload"}
CODE_EXT = (".cc", ".h", ".c", ".py", ".sh", ".proto")
SKIP_DIRS = {"bazel-bin", "bazel-out", "bazel-testlogs", "docs", "third_party"}


def repo_root():
    here = os.path.dirname(os.path.realpath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    if os.path.exists(os.path.join(root, "docs", "design.md")):
        return root
    # Bazel runfiles: the workspace directory.
    ws = os.path.join(os.environ.get("TEST_SRCDIR", ""), os.environ.get("TEST_WORKSPACE", ""))
    return ws


def code_files(root):
    out = {}
    for top in sorted(os.listdir(root)):
        if top in SKIP_DIRS or top.startswith(".") or top.startswith("bazel-"):
            continue
        base = os.path.join(root, top)
        if os.path.isfile(base):
            continue
        for d, dirs, files in os.walk(base):
            dirs[:] = [x for x in dirs if not x.startswith(".")]
            for f in files:
                if f.endswith(CODE_EXT) or os.path.dirname(os.path.join(d, f)).endswith("bpf"):
                    p = os.path.join(d, f)
                    with open(p, errors="replace") as fh:
                        out[os.path.relpath(p, root)] = fh.read()
    return out


PATH_RE = re.compile(r"^[\w./-]+\.(cc|h|c|py|sh|proto|md)$|^[\w-]+(/[\w.-]+)+/?$")
IDENT_RE = re.compile(r"^(?:[a-z_][a-z0-9_]*::)*(?:[A-Za-z_]\w*::)*[A-Za-z_]\w*(?:\(\))?$")


def is_path(tok):
    return "/" in tok or bool(re.match(r"^[\w.-]+\.(cc|h|c|py|sh|proto|md)$", tok))


def defined_in(name, text):
    """Whether `name` (Func, Class, Class::Method, ns::Class::Method) looks
    defined or declared in `text`."""
    name = name.rstrip("()")
    parts = name.split("::")
    while len(parts) > 1 and parts[0].islower():  # drop namespaces (tcp::, shm::)
        parts = parts[1:]
    last = re.escape(parts[-1])
    if len(parts) >= 2:
        cls = re.escape(parts[-2])
        if re.search(r"\b%s::%s\s*\(" % (cls, last), text):
            return True
        m = re.search(r"\b(class|struct)\s+%s\b" % cls, text)
        return bool(m and re.search(r"\b%s\s*\(" % last, text[m.start():]))
    return bool(re.search(r"(\b%s\s*[(<;\[{=]|\b(class|struct|enum|using|constexpr)\s+(class\s+)?%s\b|"
                          r"#define\s+%s\b)" % (last, last, last), text))


class DesignPathsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = repo_root()
        with open(os.path.join(cls.root, "docs", "design.md")) as f:
            cls.doc = f.read()
        cls.files = code_files(cls.root)
        cls.dirs = [os.path.relpath(d, cls.root) for d, _, _ in os.walk(cls.root)
                    if "/bazel-" not in d and "/." not in d]

    def resolve(self, tok):
        """A cited path, full or short (`pipe_io.cc`), to the repository
        files it names; [] when none."""
        tok = tok.rstrip("/")
        if tok in self.files or os.path.exists(os.path.join(self.root, tok)):
            return [tok]
        found = [p for p in self.files if p.endswith("/" + tok)]
        return found or [d for d in self.dirs if d.endswith("/" + tok)]

    def test_cited_files_exist(self):
        missing = []
        for tok in re.findall(r"`([^`\s]+)`", self.doc):
            if tok.split("/")[0].isupper():
                continue  # a placeholder (RUN_DIR/ids)
            if is_path(tok) and not tok.startswith(("http", "/")) and "*" not in tok:
                if not self.resolve(tok):
                    missing.append(tok)
        self.assertEqual(sorted(set(missing)), [], "docs/design.md cites files that do not exist")

    def test_cited_names_are_defined(self):
        everything = "\n".join(self.files.values())
        missing = []
        for tok in re.findall(r"`([^`\s]+)`", self.doc):
            if is_path(tok) or not IDENT_RE.match(tok):
                continue
            if tok.rstrip("()") in NOT_OURS:
                continue
            if tok.rstrip("()").isupper() or len(tok.rstrip("()")) < 3:
                continue  # constants in the text (MSG_MORE, SO_RCVBUF...)
            if not defined_in(tok, everything):
                missing.append(tok)
        self.assertEqual(sorted(set(missing)), [], "docs/design.md cites names the code lacks")

    def test_functions_are_in_the_files_cited_for_them(self):
        # `file` `Name`  and  `Name` (`file`)  (with line breaks in between).
        pairs = re.findall(r"`([^`\s]+\.(?:cc|h))`\s+`([^`\s]+)`", self.doc)
        pairs += [(f, n) for n, f in
                  re.findall(r"`([^`\s]+)`\s+\(`([^`\s]+\.(?:cc|h))`", self.doc)]
        self.assertGreater(len(pairs), 10, "the path section should pair functions with files")
        wrong = []
        for path, name in pairs:
            if is_path(name) or not IDENT_RE.match(name) or name in NOT_OURS or "*" in path:
                continue
            cands = self.resolve(path)
            if not any(defined_in(name, self.files.get(p, "")) for p in cands):
                wrong.append("%s not in %s" % (name, path))
        self.assertEqual(wrong, [], "docs/design.md puts functions in the wrong files")


if __name__ == "__main__":
    unittest.main()
