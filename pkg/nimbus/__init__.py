"""nimbus: a compact cloud control plane (Nova- and Trove-style flows over gRPC and etcd)."""
