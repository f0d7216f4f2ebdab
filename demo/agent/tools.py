"""Tools the agent may call."""
from __future__ import annotations

from smolagents import DuckDuckGoSearchTool, Tool


class SearchTool(Tool):
    """DuckDuckGo search that turns a network failure into a short observation instead of an error."""

    name = "web_search"
    description = "Searches the web (DuckDuckGo) and returns the top results with titles, links and snippets."
    inputs = {"query": {"type": "string", "description": "The search query."}}
    output_type = "string"

    def __init__(self, max_results: int = 5, ledger=None):
        super().__init__()
        self.max_results = max_results
        self.ledger = ledger  # demo.agent.timing.Ledger: searches count as search_s
        self._inner = None

    def forward(self, query: str) -> str:
        if self.ledger is None:
            return self._search(query)
        with self.ledger.timed("search_s"):
            return self._search(query)

    def _search(self, query: str) -> str:
        try:
            if self._inner is None:
                self._inner = DuckDuckGoSearchTool(max_results=self.max_results)
            return self._inner.forward(query)
        except Exception as exc:  # no network, rate limit, DNS
            return f"search unavailable (offline): {type(exc).__name__}. Continue from your own knowledge."
