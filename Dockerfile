# The app image used by compose.yaml for migrate, deploy, signer, consumer and web.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY pyproject.toml requirements.lock ./
COPY blockproof blockproof
COPY workers workers
COPY producers producers
COPY models models
COPY contracts contracts
COPY web web
COPY examples examples
RUN pip install --no-cache-dir -c requirements.lock -e .
ENTRYPOINT ["blockproof"]
