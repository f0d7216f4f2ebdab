"""The agent: a smolagents agent on the local engine that searches and builds slide decks."""
