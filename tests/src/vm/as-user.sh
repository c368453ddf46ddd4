#!/bin/sh
# as-user COMMAND [ARG...]: runs COMMAND as the VM's ordinary user, the way a login
# session under systemd would start it: in a leaf cgroup inside the user's delegated
# subtree ($KEEL_VM_DELEGATED/session.scope), with XDG_RUNTIME_DIR set. The subtree's
# root then holds no process itself, so the user may enable controllers in it and
# move processes to cgroups it makes there.
set -eu
. /keel/env
if [ "$#" -eq 0 ]; then
    echo "usage: as-user COMMAND [ARG...]" >&2
    exit 2
fi
leaf=$KEEL_VM_DELEGATED/session.scope
if [ ! -d "$leaf" ]; then
    mkdir "$leaf"
    chown "$KEEL_VM_UID:$KEEL_VM_UID" "$leaf" "$leaf/cgroup.procs" \
        "$leaf/cgroup.subtree_control" "$leaf/cgroup.threads"
fi
echo $$ > "$leaf/cgroup.procs"
export XDG_RUNTIME_DIR=/run/user/$KEEL_VM_UID
cd "/home/$KEEL_VM_USER"
# su sets HOME, USER, LOGNAME and SHELL, and the user's groups. After `--` (which
# keeps su from reading the command's options as its own), its -c command gets
# ARG0 (as-user) and the arguments, and "$@" passes them on unchanged.
exec su -s /bin/sh -c 'exec "$@"' -- "$KEEL_VM_USER" as-user "$@"
