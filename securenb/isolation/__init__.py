"""Isolation service: sandboxes for untrusted training code (bwrap, podman, docker, k8s)."""
