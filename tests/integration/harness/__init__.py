"""Real container runtimes for the integration tests.

``rootfs``: a busybox root filesystem from the host's busybox-static. ``hoststate``: what the
runtimes may change on the host, snapshotted before and restored after. ``containers``: start
and stop one container per runtime (Docker with a private dockerd, Podman with private storage,
runc with a hand-made OCI bundle, LXC with a private lxcpath), each with
``net.core.somaxconn=1024`` requested. ``fixtures``: the session-scoped pytest fixtures.
"""
