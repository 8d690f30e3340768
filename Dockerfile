# The app image of compose.yaml (and compose.dev.yaml): Python only — no Node, no Anvil (the dev chain is its
# own service in compose.dev.yaml) — and it runs as an unprivileged user.
FROM python:3.11-slim
RUN groupadd --system --gid 10001 blockproof && \
    useradd --system --uid 10001 --gid blockproof --home-dir /app --shell /usr/sbin/nologin blockproof
WORKDIR /app
COPY pyproject.toml requirements.lock ./
COPY blockproof blockproof
COPY workers workers
COPY producers producers
COPY models models
COPY contracts contracts
COPY web web
RUN pip install --no-cache-dir -c requirements.lock -e . && mkdir -p var && chown blockproof:blockproof var
ENV PYTHONUNBUFFERED=1
USER blockproof
ENTRYPOINT ["blockproof"]
