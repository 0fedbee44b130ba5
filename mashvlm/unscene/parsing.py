"""Reading a model's yes/no answer from free text.

The rule is deliberately narrow: the answer is the *leading* "yes" or "no" of the reply, after
markdown decoration and a short "Answer:" style prefix are stripped. A reply opening with "No one",
"No-one" or "Nobody" is a "no" too ("No one is dunking." answers "Is someone dunking?"). Anything
else ("None of them", "I cannot tell", "Yes and no") is unparseable; the scorer counts it as wrong
and reports how many there were, so a model is never credited with an answer it did not give.
"""

from __future__ import annotations

import re

# Decoration models put before the answer: markdown emphasis, headings, quotes, bullets, brackets.
_DECORATION = " \t\r\n*_#>`\"'“”‘’«»([{-•–—"
# Prefixes that announce the answer ("Answer: yes", "A: no", "ASSISTANT: Yes", "The answer is no").
_PREFIX = re.compile(
    r"^(?:(?:final\s+)?answer|a|assistant|response|output|gpt)\s*[:：\-–—]\s*"
    r"|^(?:the\s+)?(?:correct\s+|short\s+)?answer\s+is\s*:?\s*",
    re.IGNORECASE,
)
_LEADING = re.compile(r"^(yes|no)(?![A-Za-z0-9])(.*)", re.IGNORECASE | re.DOTALL)
# "No one ...", "No-one ...", "Nobody ...": a "no", however the words are joined.
_NOBODY = re.compile(r"^(?:no[ \t]*[-‐–]?[ \t]*one|nobody)(?![A-Za-z0-9])(.*)", re.IGNORECASE | re.DOTALL)
# After "no" and a space, these words start a clause ("No it is not", "No there isn't"), so "no" is
# the answer. Any other word makes "no" a determiner ("No people are...", "No player is..."), which
# does not answer the question by itself and is left unparsed.
_CLAUSE_STARTERS = frozenset(
    [
        "it",
        "its",
        "it's",
        "there",
        "the",
        "this",
        "that",
        "these",
        "those",
        "i",
        "i'm",
        "he",
        "she",
        "they",
        "we",
        "you",
        "sorry",
    ]
)
# Characters that may directly follow a bare yes/no that is the answer.
_TERMINATORS = set(".,!;:)]}*_\"'`’”-–—?…")


def parse_yes_no(text: str | None) -> str | None:
    """Return ``"yes"``, ``"no"`` or None (unparseable) for a model's raw reply.

    >>> parse_yes_no("Yes.")
    'yes'
    >>> parse_yes_no("**No**, there is no one.")
    'no'
    >>> parse_yes_no("No one is dunking.")
    'no'
    >>> parse_yes_no("No people are dunking.") is None
    True
    """
    if text is None:
        return None
    s = text.strip().lstrip(_DECORATION)
    for _ in range(2):  # "**Answer:** Yes" needs decoration, prefix, decoration again
        stripped = _PREFIX.sub("", s, count=1).lstrip(_DECORATION)
        if stripped == s:
            break
        s = stripped
    nobody = _NOBODY.match(s)
    if nobody:
        return "no" if not _is_hedge(nobody.group(1)) else None
    match = _LEADING.match(s)
    if not match:
        return None
    word, rest = match.group(1).lower(), match.group(2)
    if not rest or rest[0] in _TERMINATORS or rest[0] in "\r\n" or not rest.strip():
        return word if not _is_hedge(rest) else None
    if rest[0] in " \t":
        if rest.lstrip(" \t")[0] in _TERMINATORS:  # "No - the court is empty."
            return word if not _is_hedge(rest) else None
        nxt = re.match(r"[ \t]+([A-Za-z'’]+)", rest)
        following = nxt.group(1).lower().replace("’", "'") if nxt else ""
        if following in ("or", "and"):  # "Yes or no", "Yes and no": not an answer
            return None
        if word == "yes":
            return "yes"
        return "no" if following in _CLAUSE_STARTERS else None
    return None


def _is_hedge(rest: str) -> bool:
    # "Yes, and no." / "No, or yes?" hedges give both answers.
    return bool(re.match(r"^\s*[,;]?\s*(?:and|or)\s+(?:yes|no)\s*(?:[.!?,;]|$)", rest, re.IGNORECASE))
