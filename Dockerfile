# landlink app image (the database is the postgis/postgis service in docker-compose.yml).
# Stage 1: the pages' JavaScript from npm (MapLibre GL JS, ECharts, Swagger UI, ReDoc), as
# `make web` does; no page loads anything from a CDN.
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
RUN SCARF_ANALYTICS=false npm ci --no-audit --no-fund --loglevel=error \
    && mkdir -p vendor \
    && cp node_modules/maplibre-gl/dist/maplibre-gl.js node_modules/maplibre-gl/dist/maplibre-gl.css \
          node_modules/echarts/dist/echarts.min.js \
          node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
          vendor/ \
    && cp node_modules/swagger-ui-dist/favicon-32x32.png vendor/favicon.png \
    && sed 's#https://cdn.redoc.ly/redoc/logo-mini.svg#data:,#' \
          node_modules/redoc/bundles/redoc.standalone.js > vendor/redoc.standalone.js

# Stage 2: the app. gdal-bin for ogr2ogr/ogrinfo users; the CJK font for the PDF reports; pango
# (and HarfBuzz's subsetter) for WeasyPrint, which lays out the yearly publication's PDF.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends gdal-bin postgresql-client \
        fonts-wqy-microhei libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
COPY --from=web /web/vendor/ /app/app/static/vendor/
RUN pip install --no-cache-dir -e . && python -m compileall -q app gis
EXPOSE 8000
# Migrate, load the sample city (idempotent: a re-run changes nothing), analyse as of the
# sample survey's reference_date (as `make demo` does), serve.
CMD ["sh", "-c", "landlink migrate && landlink import-dir sample_shapefiles && landlink analyse-all --as-of \"$(sed -n 's/.*\"reference_date\": *\"\\([0-9-]*\\)\".*/\\1/p' sample_shapefiles/planted.json)\" && landlink serve --host 0.0.0.0 --port 8000"]
