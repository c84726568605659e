"""The gRPC contract: ``streamchat.proto`` and the code generated from it.

Regenerate ``streamchat_pb2.py`` / ``.pyi`` after editing the ``.proto``::

    python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. streamchat.proto

(run in this folder; ``tests/test_proto.py`` checks they are current).
"""
