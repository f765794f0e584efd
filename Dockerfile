# One image for every tickwire service (feed, ingest, processor); the command picks the role.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY tickwire ./tickwire
COPY schemas ./schemas
COPY producers ./producers
COPY processors ./processors
COPY consumers ./consumers
COPY deploy ./deploy
RUN pip install --no-deps . && useradd --create-home --uid 10001 tickwire
USER tickwire
ENTRYPOINT ["tickwire"]
CMD ["--help"]
