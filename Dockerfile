# phonebot: the server with the embedded engines (works with no API keys).
#   docker build -t phonebot .
#   docker run -p 8080:8080 -e TWILIO_AUTH_TOKEN=... -e PUBLIC_URL=https://bot.example.com phonebot
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DATA_DIR=/data \
    PORT=8080

RUN pip install --no-cache-dir uv \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin phonebot \
 && mkdir -p /app /data && chown phonebot /data

WORKDIR /app
# dependencies first (cached layer), then the code
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --extra local --extra fast
COPY bot ./bot
COPY handlers ./handlers
COPY media ./media
COPY web ./web
COPY examples ./examples
RUN uv sync --frozen --no-dev --extra local --extra fast

USER phonebot
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8080\")}/livez', timeout=2)"
# SIGTERM drains: readiness fails, live turns finish, exit within DRAIN_SECONDS (default 25)
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]
