"""The security tests run against the same real service as tests/service (uvicorn on
127.0.0.1 in a thread; see tests/service/conftest.py)."""

from service.conftest import service, start_service

__all__ = ["service", "start_service"]
