"""The models: each module declares its options, its trainer and its `ALGORITHMS` for the registry."""
