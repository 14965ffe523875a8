"""The app shell: the command line (cli_*), the server with its drain (server), the
workers' supervisor and what it needs (supervisor, standin, listen, steering). It builds the
app from handlers/ and runs it; nothing below it (handlers/, the engine in bot/, media/)
imports it (the layers contract in pyproject.toml)."""
