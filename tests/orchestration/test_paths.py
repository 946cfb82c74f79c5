"""Path globs: validation, matching (``*``, ``?``, ``**``) and pattern-vs-pattern overlap."""

import itertools
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration.paths import PathError, PathIndex, matches, normalise, normalise_list, overlap


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("orchestration/models.py", "orchestration/models.py", True),
        ("orchestration/models.py", "orchestration/models.pyc", False),
        ("docs/*", "docs/api.md", True),
        ("docs/*", "docs/sub/api.md", False),  # * stays within a segment
        ("docs/**", "docs/api.md", True),
        ("docs/**", "docs/a/b/c.md", True),
        ("docs/**", "docs", True),  # ** matches zero segments too
        ("docs/**", "documents/a.md", False),
        ("**", "anything/at/all.py", True),
        ("**/x.py", "x.py", True),
        ("**/x.py", "a/b/x.py", True),
        ("a/**/b.py", "a/b.py", True),
        ("a/**/b.py", "a/x/y/b.py", True),
        ("a/**/b.py", "a/x/y/c.py", False),
        ("*/migrations/*", "orchestration/migrations/0001.py", True),
        ("*/migrations/*", "orchestration/migrations/sub/0001.py", False),
        ("*.py", "a/b.py", False),
        ("a/?.py", "a/b.py", True),
        ("a/?.py", "a/bb.py", False),
        ("a/[id].tsx", "a/[id].tsx", True),  # brackets are literal
        ("a/[id].tsx", "a/i.tsx", False),
        ("Docs/*", "docs/a.md", False),  # case-sensitive
    ],
)
def test_matching(pattern, path, expected):
    assert matches(pattern, path) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("docs/**", "docs/api.md", True),
        ("*/migrations/*", "orchestration/migrations/0001.py", True),
        ("a/*.py", "a/b/*.py", False),
        ("**", "x", True),
        ("**", "a/*/b/**", True),
        ("docs/**", "src/**", False),
        ("**/*.md", "docs/**", True),
        ("a/*_test.py", "a/foo_*.py", True),  # a/foo_test.py
        ("a/x*", "a/y*", False),
        ("a/?", "a/ab", False),
        ("a/**/z", "a/b/**", True),  # a/b/z
        ("a/**/z", "b/**", False),
        ("*/*/c", "a/**", True),
        ("*/*/c", "*/d", False),
        ("src/*.py", "src/app.js", False),
    ],
)
def test_overlap_is_symmetric_and_exact(a, b, expected):
    assert overlap(a, b) is expected
    assert overlap(b, a) is expected


def test_a_touched_file_is_literal():
    """Guards against a file named with a star matching every file beside it."""
    assert overlap("a/*.py", "a/b.py", b_literal=True)
    assert not overlap("a/x.py", "a/*.py", a_literal=True, b_literal=True)
    assert overlap("a/*.py", "a/*.py", a_literal=True, b_literal=True)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/etc/passwd",
        "a//b",
        "../outside",
        "a/../b",
        "./a",
        "a**",
        "**b/c",
        "a\\b",
        " a",
        "a\n",
        "x" * 1001,
    ],
)
def test_invalid_patterns_are_refused_with_a_reason(bad):
    with pytest.raises(PathError) as refused:
        normalise(bad)
    assert str(refused.value)


def test_a_trailing_slash_means_the_whole_directory():
    assert normalise("docs/") == "docs/**"
    with pytest.raises(PathError):
        normalise("docs/", literal=True)  # a touched file is a file


def test_lists_are_deduplicated_sorted_and_bounded():
    assert normalise_list(["b", "a", "b", "docs/"]) == ["a", "b", "docs/**"]
    with pytest.raises(PathError):
        normalise_list(["a"] * 201)
    with pytest.raises(PathError):
        normalise_list("docs/**")  # a string is not a list


# --- against a brute-force reference --------------------------------------------------------
SEGMENTS = ["a", "b", "*", "a*", "*b", "?", "**", "ab"]
UNIVERSE_SEGMENTS = ["a", "b", "ab", "ba", "aa", "bb", "c", "abb"]


def _reference_regex(pattern: str) -> re.Pattern:
    """An independent translation to a regular expression over "/" + path."""
    regex = ""
    for segment in pattern.split("/"):
        if segment == "**":
            regex += "(?:/[^/]+)*"
        else:
            regex += "/" + "".join(
                "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in segment
            )
    return re.compile(regex + r"\Z")


def _universe(depth: int) -> list[str]:
    paths = []
    for n in range(1, depth + 1):
        paths += ["/".join(p) for p in itertools.product(UNIVERSE_SEGMENTS, repeat=n)]
    return paths


UNIVERSE = _universe(3)
patterns = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map("/".join)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(patterns, patterns)
def test_overlap_agrees_with_a_brute_force_search(a, b):
    """Every overlap answer agrees with an exhaustive search for a common path."""
    ra, rb = _reference_regex(a), _reference_regex(b)
    for path in UNIVERSE:
        assert matches(a, path) is bool(ra.match("/" + path)), (a, path)
    witness = any(ra.match("/" + p) and rb.match("/" + p) for p in UNIVERSE)
    assert overlap(a, b) is witness, (a, b)


def test_the_index_finds_exactly_what_a_full_comparison_finds():
    """Guards against the prefix index skipping a pattern a wildcard could still meet."""
    rng = random.Random(7)
    words = ["src", "docs", "app", "models.py", "*", "**", "*.py", "api", "m?"]
    pool = sorted({"/".join(rng.choices(words, k=rng.randint(1, 4))) for _ in range(400)})
    pool = [p for p in pool if _valid(p)]
    index = PathIndex()
    for owner, pattern in enumerate(pool):
        index.add(pattern, owner)
    for query in pool[:120]:
        found = {owner for _theirs, owner in index.overlapping(query)}
        assert found == {o for o, p in enumerate(pool) if overlap(query, p)}, query


def _valid(pattern: str) -> bool:
    try:
        normalise(pattern)
    except PathError:
        return False
    return True
