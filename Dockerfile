# One image for the three services; the command picks the service.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.lock pyproject.toml ./
RUN pip install --no-cache-dir --disable-pip-version-check -r requirements.lock
COPY shared ./shared
COPY services ./services
COPY config ./config
USER nobody
# e.g. uvicorn services.intake.app:create_app --factory --host 0.0.0.0 --port 8081
CMD ["uvicorn", "services.intake.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8081"]
