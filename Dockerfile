# unused-access-reporter: the scheduled service (`serve`) or any other command.
# Pin the base image by digest in your own registry mirror for reproducible builds.
#
# Runs as a non-root user and works on a read-only root filesystem; only /tmp and the reports
# and state volumes are written:
#   docker run --read-only --tmpfs /tmp \
#     -v reporter-reports:/home/reporter/reports -v reporter-state:/home/reporter/state \
#     -v "$PWD/reporter.yaml:/app/config/reporter.yaml:ro" IMAGE
FROM python:3.11-slim-bookworm

# WeasyPrint renders with Pango; DejaVu gives the PDFs a complete Unicode font. The font cache
# is built here, so fontconfig finds it current and never needs to write one at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
       fonts-dejavu-core fontconfig \
    && rm -rf /var/lib/apt/lists/* \
    && fc-cache -f

# Numeric ids, so `runAsNonRoot` and similar checks can verify the user without /etc/passwd.
RUN groupadd --system --gid 10001 reporter \
    && useradd --system --create-home --home-dir /home/reporter --uid 10001 --gid 10001 reporter
WORKDIR /app

# Dependencies first, exactly as locked (every file checked against its hash), then the
# project itself without resolving anything further.
COPY requirements/lock.txt ./requirements/lock.txt
RUN pip install --no-cache-dir --require-hashes -r requirements/lock.txt
COPY pyproject.toml README.md ./
COPY reporter ./reporter
COPY templates ./templates
RUN pip install --no-cache-dir --no-deps . && rm -rf /app/build && pip check

COPY config ./config

# The volumes' mount points, owned by the user so a fresh named volume is writable.
RUN install -d -o reporter -g reporter /home/reporter/reports /home/reporter/state
USER 10001:10001
WORKDIR /home/reporter
# Caches (fontconfig, WeasyPrint, Python) go to /tmp, the one writable place besides the
# volumes when the root filesystem is read-only.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HOME=/tmp XDG_CACHE_HOME=/tmp/.cache XDG_CONFIG_HOME=/tmp/.config
VOLUME ["/home/reporter/reports", "/home/reporter/state"]

ENTRYPOINT ["access-reporter"]
CMD ["serve", "-c", "/app/config/reporter.yaml"]
