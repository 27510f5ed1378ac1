"""Sample texts offered on the Inspect page: code, English prose, the Python reference."""

from __future__ import annotations

import functools

PYTHON_SNIPPET = '''\
def moving_average(values: list[float], window: int = 3) -> list[float]:
    """Average of each run of `window` consecutive values."""
    if window <= 0:
        raise ValueError("window must be positive")
    out = []
    total = sum(values[:window])
    out.append(total / window)
    for i in range(window, len(values)):
        total += values[i] - values[i - window]
        out.append(total / window)
    return out


if __name__ == "__main__":
    print(moving_average([1.0, 2.0, 3.0, 4.0, 5.0]))
'''

# Opening of Charles Dickens, "A Tale of Two Cities" (1859, public domain).
ENGLISH_PARAGRAPH = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was "
    "the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it "
    "was the season of Light, it was the season of Darkness, it was the spring of hope, it "
    "was the winter of despair, we had everything before us, we had nothing before us, we "
    "were all going direct to Heaven, we were all going direct the other way - in short, the "
    "period was so far like the present period, that some of its noisiest authorities "
    "insisted on its being received, for good or for evil, in the superlative degree of "
    "comparison only.\n"
)


@functools.cache
def python_reference(topic: str = "for", max_chars: int = 2400) -> str:
    """A piece of the Python language reference that ships with CPython (pydoc_data)."""
    import pydoc_data.topics

    text = str(pydoc_data.topics.topics.get(topic, ""))
    if not text:
        text = str(next(iter(pydoc_data.topics.topics.values())))
    return text[:max_chars].rsplit("\n", 1)[0] + "\n"


@functools.cache
def samples() -> list[dict[str, str]]:
    """The samples as {id, title, text}: the page's sample picker and GET /api/samples."""
    return [
        {"id": "python", "title": "Python snippet", "text": PYTHON_SNIPPET},
        {"id": "english", "title": "English paragraph (Dickens)", "text": ENGLISH_PARAGRAPH},
        {
            "id": "reference",
            "title": "Python reference: the for statement",
            "text": python_reference("for"),
        },
    ]
