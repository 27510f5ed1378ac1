# EntroDrop Studio, CPU image: the README's install steps (make install), the default model baked in.
#   docker build -t entrodrop-studio .
#   docker run -p 8000:8000 entrodrop-studio      # then open the URL with ?token=... from the logs
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 entrodrop
USER entrodrop
WORKDIR /home/entrodrop/app
ENV ENTRODROP_HOME=/home/entrodrop/data \
    ENTRODROP_MODEL_CACHE=/home/entrodrop/models \
    PYTHONUNBUFFERED=1

COPY --chown=entrodrop:entrodrop . .
# Same steps as `make install`, with the CPU-only torch wheel.
RUN make install TORCH_INDEX=https://download.pytorch.org/whl/cpu \
 && .venv/bin/entrodrop prepare

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD .venv/bin/python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4).status == 200 else 1)"

# Listening on 0.0.0.0 inside the container needs an access token: docker/entrypoint.sh makes one
# when ENTRODROP_TOKEN is not given and prints the URL to open.
ENTRYPOINT ["docker/entrypoint.sh"]
