//! The IPC namespace: System V IPC objects and POSIX message queues of our own.
//!
//! Shared memory segments, semaphores and message queues are named by global keys;
//! without this namespace, a container could attach to the host's (`ipcs` lists them).
//! It needs no setup beyond the flag: the kernel gives the child an empty set.

use common::Layer;
use nix::sched::CloneFlags;

/// IPC namespace: nothing to do but ask for it.
#[derive(Debug, Default)]
pub struct IpcNamespace;

impl Layer for IpcNamespace {
    fn name(&self) -> &'static str {
        "ipc"
    }

    // ANCHOR: ipc_flags
    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWIPC
    }
    // ANCHOR_END: ipc_flags
}
