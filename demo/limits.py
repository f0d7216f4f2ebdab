"""What a public app (a share link or a non-loopback address) allows one visitor to ask for: caps on sizes and
queue. Pure data and checks; app.py and the views apply them (the login and API key: demo/server/access.py)."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    public: bool
    prompt_chars: int  # race prompt and agent task
    max_new_tokens: int  # the race's slider
    agent_steps: int  # the agent's step slider
    queue_size: int | None  # waiting events in Gradio's queue; more get "Queue is full"
    upload_size: str | None  # Gradio max_file_size (the app takes no uploads; its /upload route exists anyway)


# 16,000 characters is ~4,000 tokens, about the agent's context after its system prompt; a longer text is a
# paste gone wrong locally, and on a public link 4,000 is plenty for a demo prompt.
LOCAL = Limits(public=False, prompt_chars=16_000, max_new_tokens=512, agent_steps=10, queue_size=None,
               upload_size=None)
# one model worker serves everyone: 8 waiting events is minutes of waiting already
PUBLIC = Limits(public=True, prompt_chars=4_000, max_new_tokens=256, agent_steps=6, queue_size=8,
                upload_size="1mb")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def for_launch(host: str, share: bool) -> Limits:
    return PUBLIC if share or not is_loopback(host) else LOCAL


def text_problem(text: str, limits: Limits, what: str = "prompt") -> str | None:
    """A message when the text is over the cap, or None."""
    if text and len(text) > limits.prompt_chars:
        where = " on this public link" if limits.public else ""
        return (f"The {what} has {len(text):,} characters; the limit{where} is {limits.prompt_chars:,}. "
                f"Shorten it and run again.")
    return None
