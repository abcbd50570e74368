"""The local targets: moto's server in-process and its fixes, provisioning from the template,
the endpoints (embedded, LocalStack, AWS) and the local HTTP API."""
