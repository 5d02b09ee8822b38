# landlink app image (the database is the postgis/postgis service in docker-compose.yml).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends gdal-bin postgresql-client \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir -e .
EXPOSE 8000
# Migrate, load the sample city (idempotent: a re-run changes nothing), analyse, serve.
CMD ["sh", "-c", "landlink migrate && landlink import-dir sample_shapefiles && landlink analyse-all && landlink serve --host 0.0.0.0 --port 8000"]
