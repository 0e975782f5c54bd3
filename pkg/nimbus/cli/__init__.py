"""The `nimbus` command-line client: gRPC to the API through the generated
stubs, click for arguments, rich for tables and progress."""
