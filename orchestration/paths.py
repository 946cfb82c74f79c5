"""Path globs: what a task says it will touch, and whether two such claims can meet.

One small module, used by every place that reads paths (plan validation, claim-next, the
ready list, the collisions read, unpredicted-overlap detection). The semantics, also in
``docs/scheduling.md``:

- A pattern is a relative, ``/``-separated path. Segments are matched one by one.
- ``*`` matches any run of characters within one segment (never a ``/``), ``?`` exactly one
  character; every other character is literal (``[`` and ``]`` too).
- A segment that is exactly ``**`` matches any number of whole segments, zero included:
  ``docs/**`` matches ``docs/api.md`` and ``docs/a/b.md`` (and ``docs`` itself), ``**/x.py``
  matches ``x.py`` and ``a/b/x.py``, and ``**`` alone matches everything.
- A trailing ``/`` means the whole directory: ``docs/`` is stored as ``docs/**``.
- Refused: an empty pattern, an absolute one (leading ``/``), empty segments (``a//b``),
  ``.`` and ``..`` segments, backslashes, control characters, and ``**`` inside a segment
  (``a**``).

Two patterns **overlap** when some path matches both. That is decided exactly, segment by
segment (``overlap``), by a search over pairs of positions in the two patterns, which is
the emptiness check of the two patterns' product automaton; within a segment the same is
done character by character. A concrete file path (an artifact's touched file) is a pattern
whose ``*`` and ``?`` are literal (``literal=True``).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

MAX_PATTERN_LENGTH = 1000
MAX_PATTERNS = 200
GLOBSTAR = "**"

# Tokens within a segment: a literal character, ANY_ONE (``?``) or ANY_RUN (``*``).
ANY_ONE = object()
ANY_RUN = object()


class PathError(ValueError):
    """A pattern or path that is not a valid relative path glob; the message says why."""


def normalise(pattern: object, *, literal: bool = False) -> str:
    """The stored form of ``pattern``, or ``PathError`` saying what is wrong with it."""
    if not isinstance(pattern, str):
        raise PathError("A path must be a string.")
    if not pattern:
        raise PathError("A path must not be empty.")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PathError(f"A path is at most {MAX_PATTERN_LENGTH} characters.")
    if pattern != pattern.strip():
        raise PathError(f"{pattern!r} starts or ends with white space.")
    if any(ord(c) < 32 or ord(c) == 127 for c in pattern):
        raise PathError(f"{pattern!r} contains a control character.")
    if "\\" in pattern:
        raise PathError(f"{pattern!r}: separate segments with '/', not a backslash.")
    if pattern.startswith("/"):
        raise PathError(f"{pattern!r} is absolute; paths are relative to the repository root.")
    if pattern.endswith("/"):
        if literal:
            raise PathError(f"{pattern!r} names a directory; name the files touched.")
        pattern = pattern + GLOBSTAR
    for segment in pattern.split("/"):
        if segment == "":
            raise PathError(f"{pattern!r} has an empty segment ('//').")
        if segment in (".", ".."):
            raise PathError(f"{pattern!r}: '.' and '..' segments are not allowed.")
        if not literal and "**" in segment and segment != GLOBSTAR:
            raise PathError(f"{pattern!r}: '**' must be a whole segment, as in 'docs/**'.")
    return pattern


def normalise_list(patterns: object, *, literal: bool = False, limit: int = MAX_PATTERNS):
    """A validated, de-duplicated, sorted list; ``PathError`` names the first bad entry."""
    if not isinstance(patterns, list | tuple):
        raise PathError("Paths are a list of strings.")
    if len(patterns) > limit:
        raise PathError(f"At most {limit} paths.")
    return sorted({normalise(p, literal=literal) for p in patterns})


@lru_cache(maxsize=65_536)
def _compile(pattern: str, literal: bool = False) -> tuple:
    """``pattern`` as a tuple of segments: GLOBSTAR, or a tuple of tokens."""
    segments = []
    for segment in pattern.split("/"):
        if segment == GLOBSTAR and not literal:
            if not segments or segments[-1] != GLOBSTAR:  # a/**/**/b is a/**/b
                segments.append(GLOBSTAR)
            continue
        tokens = []
        for char in segment:
            if literal:
                tokens.append(char)
            elif char == "*":
                if not tokens or tokens[-1] is not ANY_RUN:
                    tokens.append(ANY_RUN)
            elif char == "?":
                tokens.append(ANY_ONE)
            else:
                tokens.append(char)
        segments.append(tuple(tokens))
    return tuple(segments)


def _both_reach_the_end(a: tuple, b: tuple, moves) -> bool:
    """Walk the pairs of positions in ``a`` and ``b`` (depth first, each pair once) along
    ``moves(x, y, i, j)``, where ``x``/``y`` are the items at ``i``/``j`` (None past the end):
    can both sequences be consumed together? It is the product of two pattern automata."""
    seen = set()
    stack = [(0, 0)]
    while stack:
        i, j = stack.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        x = a[i] if i < len(a) else None
        y = b[j] if j < len(b) else None
        stack.extend(moves(x, y, i, j))
    return False


def _character_moves(ta, tb, i: int, j: int) -> list[tuple[int, int]]:
    nexts = []
    if ta is ANY_RUN:
        nexts.append((i + 1, j))  # the run matches nothing more
    if tb is ANY_RUN:
        nexts.append((i, j + 1))
    if ta is None or tb is None or (ta is ANY_RUN and tb is ANY_RUN):
        return nexts
    # Both consume one character: compatible unless two different literals.
    if ta is ANY_RUN or tb is ANY_RUN or ta is ANY_ONE or tb is ANY_ONE or ta == tb:
        nexts.append((i if ta is ANY_RUN else i + 1, j if tb is ANY_RUN else j + 1))
    return nexts


def _segment_moves(sa, sb, i: int, j: int) -> list[tuple[int, int]]:
    nexts = []
    if sa is GLOBSTAR:
        nexts.append((i + 1, j))  # matches no (more) segments
        if sb is not None:
            nexts.append((i, j + 1))  # swallows b's segment (or b's ** whole)
    if sb is GLOBSTAR:
        nexts.append((i, j + 1))
        if sa is not None:
            nexts.append((i + 1, j))
    if sa is None or sb is None or sa is GLOBSTAR or sb is GLOBSTAR:
        return nexts
    if _segments_meet(sa, sb):
        nexts.append((i + 1, j + 1))
    return nexts


def _segments_meet(a: tuple, b: tuple) -> bool:
    """Is there a (non-empty) segment text that both token sequences match?"""
    if ANY_RUN not in a and ANY_ONE not in a and ANY_RUN not in b and ANY_ONE not in b:
        return a == b
    return _both_reach_the_end(a, b, _character_moves)


def _patterns_meet(a: tuple, b: tuple) -> bool:
    return _both_reach_the_end(a, b, _segment_moves)


@lru_cache(maxsize=262_144)
def _overlap(a: str, a_literal: bool, b: str, b_literal: bool) -> bool:
    return _patterns_meet(_compile(a, a_literal), _compile(b, b_literal))


def overlap(a: str, b: str, *, a_literal: bool = False, b_literal: bool = False) -> bool:
    """Can one path match both ``a`` and ``b``? (Both already normalised.)"""
    if a == b:
        return True
    return _overlap(a, a_literal, b, b_literal)


def matches(pattern: str, path: str) -> bool:
    """Does the concrete ``path`` match ``pattern``?"""
    return overlap(pattern, path, b_literal=True)


def _literal_prefix(pattern: str, literal: bool) -> tuple[str, ...]:
    """The leading segments of ``pattern`` that are plain text."""
    prefix = []
    for segment in pattern.split("/"):
        if not literal and (segment == GLOBSTAR or "*" in segment or "?" in segment):
            break
        prefix.append(segment)
    return tuple(prefix)


def anchor(pattern: str, *, literal: bool = False) -> str:
    """The plain-text leading segments of ``pattern``, joined: every path it matches starts
    with them. Two patterns can overlap only if one's anchor is a segment prefix of the
    other's (``""``, the root, is a prefix of every anchor)."""
    return "/".join(_literal_prefix(pattern, literal))


def anchor_prefixes(anchor_: str) -> list[str]:
    """``anchor_`` and every segment prefix of it, the root ``""`` first."""
    segments = anchor_.split("/") if anchor_ else []
    return ["/".join(segments[:n]) for n in range(len(segments) + 1)]


@dataclass
class _Node:
    children: dict[str, "_Node"] = field(default_factory=dict)
    # (pattern, literal, owner) whose literal prefix ends at this node.
    here: list[tuple[str, bool, object]] = field(default_factory=list)


class PathIndex:
    """Many owners' patterns, indexed by their literal leading segments.

    ``owners_overlapping(pattern)`` compares a pattern only with the patterns that share its
    literal prefix (or diverge into a wildcard before it ends), so scoring a candidate
    against everything in flight costs about the depth of its paths, not their number.
    """

    def __init__(self) -> None:
        self._root = _Node()

    def add(self, pattern: str, owner: object, *, literal: bool = False) -> None:
        node = self._root
        for segment in _literal_prefix(pattern, literal):
            node = node.children.setdefault(segment, _Node())
        node.here.append((pattern, literal, owner))

    def _candidates(self, pattern: str, literal: bool) -> Iterable[tuple[str, bool, object]]:
        node = self._root
        for segment in _literal_prefix(pattern, literal):
            yield from node.here  # theirs turns into a wildcard (or ends) here
            node = node.children.get(segment)
            if node is None:
                return
        # Ours turns into a wildcard (or ends) here: everything below may meet it.
        stack = [node]
        while stack:
            current = stack.pop()
            yield from current.here
            stack.extend(current.children.values())

    def overlapping(self, pattern: str, *, literal: bool = False):
        """(their pattern, owner) for every indexed pattern that overlaps ``pattern``."""
        for theirs, their_literal, owner in self._candidates(pattern, literal):
            if overlap(pattern, theirs, a_literal=literal, b_literal=their_literal):
                yield theirs, owner
