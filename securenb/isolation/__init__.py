"""Isolation service: sandboxes for untrusted training code (bwrap, podman, docker, k8s).

Modules (imported directly; this package imports nothing so ``detect`` stays cheap):

- ``spec``: ``SandboxSpec`` / ``build_spec`` (policy + options, every path checked)
- ``bwrap``, ``containers``, ``kube``: one backend each; ``seccomp``, ``cgroups``, ``hostenv``
- ``provisioner``: jupyter_client kernel provisioners (``securenb-bwrap`` ...)
- ``subkernel``: one warm sandboxed kernel; ``train``: ``Trainer`` behind ``%%secure_train``
- ``transfer``, ``secrets``, ``recorder``: the data boundary, secret injection, run records
- ``kernelspecs``: "Python 3 (isolated, bwrap)" etc.; ``detect``: what works on this machine
"""
