# One image for the worker, Flower, the sandbox and the command line.
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY importer ./importer
COPY tasks ./tasks
RUN pip install --no-cache-dir . && useradd --create-home importer
USER importer
WORKDIR /home/importer
ENTRYPOINT []
CMD ["tagmango-import", "--help"]
