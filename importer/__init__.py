"""tagmango-importer: spreadsheets in, validated plans out, handed to the Celery pipeline in ``tasks``."""

__version__ = "0.1.0"
