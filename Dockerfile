# unused-access-reporter: the scheduled service (`serve`) or any other command.
# Pin the base image by digest in your own registry mirror for reproducible builds.
FROM python:3.11-slim-bookworm

# WeasyPrint renders with Pango; DejaVu gives the PDFs a complete Unicode font.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
       fonts-dejavu-core fontconfig \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --create-home --home-dir /home/reporter --uid 10001 reporter
WORKDIR /app

COPY pyproject.toml README.md ./
COPY reporter ./reporter
COPY templates ./templates
RUN pip install --no-cache-dir . && rm -rf /app/build

COPY config ./config

USER reporter
WORKDIR /home/reporter
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

ENTRYPOINT ["access-reporter"]
CMD ["serve", "-c", "/app/config/reporter.yaml"]
