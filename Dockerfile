# One image for the three services; the command picks the service.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# The PDF apology letter's font: Liberation Serif 2.x (Times New Roman metrics, Vietnamese letters),
# fonts-liberation2 on Debian 12, fonts-liberation from Debian 13 on.
RUN apt-get update \
    && (apt-get install -y --no-install-recommends fonts-liberation2 || apt-get install -y --no-install-recommends fonts-liberation) \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.lock pyproject.toml ./
RUN pip install --no-cache-dir --disable-pip-version-check -r requirements.lock
COPY shared ./shared
COPY services ./services
COPY config ./config
USER nobody
# e.g. uvicorn services.intake.app:create_app --factory --host 0.0.0.0 --port 8081
CMD ["uvicorn", "services.intake.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8081"]
