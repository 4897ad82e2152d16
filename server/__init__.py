"""The grpc.aio scoring server.

A pipeline of named stages whose names match its metrics:
validate -> batch -> state -> features -> rules + model -> decide -> ledger -> respond.
"""
