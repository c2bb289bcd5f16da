FROM python:3.11.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY workers ./workers
RUN pip install --no-cache-dir . && useradd --system --uid 10001 bridge
USER bridge
ENV BRIDGE_CONFIG=/config/config.toml
EXPOSE 8080
ENTRYPOINT ["convo-bridge"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
