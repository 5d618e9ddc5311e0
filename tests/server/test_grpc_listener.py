"""A worker's gRPC server settings: grpcio's options from tfaas's, and how long a leave waits."""

from __future__ import annotations

import pytest

from tfaas.config import Settings
from tfaas.server.grpc_listener import leave_seconds, max_tensor_bytes, server_options


def test_defaults_join_the_port_group_lift_the_message_limit_and_age_connections() -> None:
    options = server_options(Settings(max_request_body_bytes=1 << 20, graceful_timeout=12))
    assert options == [
        ("grpc.so_reuseport", 1),
        ("grpc.max_receive_message_length", 1 << 20),
        ("grpc.max_connection_age_ms", 1000),
        ("grpc.max_connection_age_grace_ms", 12000),
    ]
    assert leave_seconds(options) == pytest.approx(1.3)
    assert max_tensor_bytes(Settings(max_request_body_bytes=1 << 20)) == 1 << 20


def test_channel_arguments_win_but_never_over_reuseport() -> None:
    settings = Settings(
        grpc_channel_arguments="grpc.so_reuseport=0,grpc.max_receive_message_length=-1,grpc.max_connection_age_ms=5000"
    )
    options = server_options(settings)
    assert options[0] == ("grpc.so_reuseport", 1)  # NOTE: gRPC takes a repeated key's first value
    assert ("grpc.max_receive_message_length", -1) in options and ("grpc.max_connection_age_ms", 5000) in options
    assert [key for key, _ in options].count("grpc.max_receive_message_length") == 1
    assert leave_seconds(options) == pytest.approx(5.7)
    assert max_tensor_bytes(settings) == settings.max_request_body_bytes  # NOTE: unlimited messages: the body limit
    assert max_tensor_bytes(Settings(grpc_channel_arguments="grpc.max_receive_message_length=1000000000")) == 10**9
