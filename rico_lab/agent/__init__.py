"""The agent: the worker, its host, conversations, tools, model choice, and the service."""
