"""The grpc.aio scoring server: validate -> batch -> state -> features -> rules + model -> decide -> ledger -> respond."""
