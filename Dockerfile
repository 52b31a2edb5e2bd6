FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY schemas schemas
COPY agents agents
COPY brokers brokers
COPY store store
COPY jax_exec jax_exec
COPY deploy deploy
RUN pip install --no-cache-dir -c constraints.txt .
ENV JAX_HOME=/data
ENTRYPOINT []
CMD ["jax-exec", "worker"]
