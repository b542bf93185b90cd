"""teamc: a compiler for virtio-net failover NIC pairs (libvirt <teaming>, QEMU failover)."""

__version__ = "0.1.0"
