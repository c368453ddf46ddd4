//! Who holds which address of the bridge: `/run/keel/bridge-leases`.
//!
//! Every container on `keel0` needs an address of its own, and the address must be
//! known before `clone` (it goes into `/etc/hosts`, and the child configures it
//! itself). keel has no daemon to hand addresses out, so the runtimes of all running
//! containers share a file in root's runtime directory (a tmpfs, empty at boot, when no
//! container runs), changed only under an exclusive `flock` of
//! `/run/keel/bridge-leases.lock`, one line per lease:
//!
//! ```text
//! 10.89.0.2/24 keel5e3a1b2c 4242 9170035    address/prefix, host end of the veth, the runtime's PID and start time
//! ```
//!
//! This is the pattern of stage 3's `--userns auto` slices (`stage03_userns::slices`),
//! and its [`Owner`] is reused as it is: a lease counts only while a process with that
//! PID *and* that start time (field 22 of `/proc/PID/stat`) exists, because PIDs are
//! reused. A runtime killed by SIGKILL cannot give its lease back; the next runtime to
//! take the lock finds the owner dead and hands the address out again. The file itself
//! is a [`RecordFile`], as stage 3's is: the same lock, the same whole-file rename.
//!
//! Every live lease is in one subnet, the one `keel0` carries: the first lease taken
//! when none is live decides it, and every later one joins it. The same lock also
//! covers creating and deleting `keel0` (see [`crate::bridge`]): the last runtime to
//! give its lease back deletes the bridge while no other can take a lease.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use common::explain;
use common::records::RecordFile;
use common::state::Owner;

use crate::subnet::{self, Route, Subnet};

/// The file's name in the runtime directory.
pub const FILE: &str = "bridge-leases";

/// One container's address on the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The container's address, in `subnet`.
    pub address: Ipv4Addr,
    /// The bridge's network.
    pub subnet: Subnet,
    /// The host end of the container's veth pair (`keel5e3a1b2c`).
    pub link: String,
    /// The runtime that holds it.
    pub owner: Owner,
}

impl Lease {
    fn to_line(&self) -> String {
        format!(
            "{}/{} {} {}",
            self.address,
            self.subnet.prefix(),
            self.link,
            self.owner
        )
    }

    fn from_line(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split(' ').collect();
        let [address, link, pid, start_time] = fields.as_slice() else {
            return None;
        };
        let (address, prefix) = address.split_once('/')?;
        let address: Ipv4Addr = address.parse().ok()?;
        let subnet = Subnet::containing(address, prefix.parse().ok()?);
        let valid_link = !link.is_empty() && link.len() <= 15 && link.is_ascii();
        Some(Self {
            address,
            subnet,
            link: valid_link.then(|| (*link).to_owned())?,
            owner: Owner::parse(pid, start_time)?,
        })
    }
}

/// A new lease, and the stale ones dropped while taking it (their runtimes died
/// without giving them back).
#[derive(Debug)]
pub struct Allocation {
    pub lease: Lease,
    pub stale: Vec<Lease>,
}

/// The file of leases.
#[derive(Debug, Clone)]
pub struct Leases {
    file: RecordFile,
}

impl Leases {
    /// `/run/keel/bridge-leases` (root's runtime directory).
    pub fn system() -> Result<Self> {
        Ok(Self::at(common::state::runtime_dir()?.join(FILE)))
    }

    /// A file at `path` (tests use their own).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self {
            file: RecordFile::at(path),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Takes the exclusive `flock` of `<file>.lock`; it is released when the returned
    /// value is dropped. Everything that reads and then changes the leases, or the
    /// bridge, happens while holding it.
    pub fn lock(&self) -> Result<Locked<'_>> {
        Ok(Locked {
            leases: self,
            _file: self.file.lock()?,
        })
    }

    /// The live leases as the file holds them now, without the lock: for `doctor`,
    /// which only reports (the file is replaced in one rename, so it is never seen
    /// half-written).
    pub fn peek(&self) -> Result<Vec<Lease>> {
        Ok(self
            .read()?
            .into_iter()
            .filter(|l| l.owner.is_alive())
            .collect())
    }

    fn read(&self) -> Result<Vec<Lease>> {
        self.file.read(
            Lease::from_line,
            "if no container runs with --network bridge, remove the file",
        )
    }

    fn write(&self, leases: &[Lease]) -> Result<()> {
        self.file.write(leases.iter().map(Lease::to_line))
    }
}

/// The leases while the lock is held: the only way to change them.
#[derive(Debug)]
pub struct Locked<'a> {
    leases: &'a Leases,
    _file: fs::File,
}

impl Locked<'_> {
    /// The leases whose runtime still runs.
    pub fn live(&self) -> Result<Vec<Lease>> {
        self.leases.peek()
    }

    // ANCHOR: allocate_lease
    /// Leases the first free address of the bridge's subnet to `owner`, for the veth
    /// whose host end is `link`. The subnet is the one live leases use; with none, it
    /// is `wanted` (`--subnet`) or the first free default (see [`subnet`]). Leases of
    /// dead runtimes are dropped on the way, and returned.
    pub fn allocate(
        &self,
        wanted: Option<Subnet>,
        routes: &[Route],
        link: &str,
        owner: Owner,
    ) -> Result<Allocation> {
        let (live, stale): (Vec<Lease>, Vec<Lease>) = self
            .leases
            .read()?
            .into_iter()
            .partition(|l| l.owner.is_alive());
        let subnet = choose_subnet(wanted, &live, routes)?;
        let Some(address) = subnet
            .container_addresses()
            .find(|a| !live.iter().any(|l| l.address == *a))
        else {
            bail!(
                "--network bridge: all {} addresses of {subnet} are held by running \
                 containers: wait for one to end, or (when none runs) choose a larger \
                 network with --subnet",
                live.len()
            );
        };
        let lease = Lease {
            address,
            subnet,
            link: link.to_owned(),
            owner,
        };
        let mut leases = live;
        leases.push(lease.clone());
        self.leases.write(&leases)?;
        explain::step(
            format_args!(
                "flock({}); record {:?} in it",
                self.leases.file.lock_path().display(),
                lease.to_line()
            ),
            "this container's address on the bridge, known before clone; no other running \
             container holds it",
        );
        // A stale lease's link died with its container's network namespace, unless a
        // live container happens to use the same name.
        let stale = stale
            .into_iter()
            .filter(|s| !leases.iter().any(|l| l.link == s.link))
            .collect();
        Ok(Allocation { lease, stale })
    }
    // ANCHOR_END: allocate_lease

    /// Gives `lease` back (and drops the leases of dead runtimes); returns the live
    /// leases left: with none, the bridge is no longer needed.
    pub fn release(&self, lease: &Lease) -> Result<Vec<Lease>> {
        let kept: Vec<Lease> = self
            .leases
            .read()?
            .into_iter()
            .filter(|l| l != lease && l.owner.is_alive())
            .collect();
        self.leases.write(&kept)?;
        explain::step(
            format_args!(
                "remove {:?} from {}",
                lease.to_line(),
                self.leases.path().display()
            ),
            "the container is gone: its address is free for the next one",
        );
        Ok(kept)
    }
}

// ANCHOR: choose_subnet
/// The subnet for a new lease: the one `keel0` serves while containers run on it;
/// otherwise `wanted`, if no route of the host's covers it, or the first free default.
pub fn choose_subnet(wanted: Option<Subnet>, live: &[Lease], routes: &[Route]) -> Result<Subnet> {
    if let Some(first) = live.first() {
        let in_use = first.subnet;
        match wanted {
            Some(wanted) if wanted != in_use => {
                let pids: Vec<String> = live.iter().map(|l| l.owner.pid.to_string()).collect();
                bail!(
                    "--subnet {wanted}: the bridge {} already serves {in_use} to running \
                     containers (runtimes {}); a bridge has one subnet: use --subnet \
                     {in_use}, or leave --subnet out, or wait until they end",
                    crate::bridge::BRIDGE,
                    pids.join(", ")
                );
            }
            _ => return Ok(in_use),
        }
    }
    match wanted {
        Some(wanted) => match subnet::collision(wanted, routes) {
            Some(route) => bail!(
                "--subnet {wanted} overlaps the host's route {route}: the host could no \
                 longer tell the containers from that network; choose another --subnet"
            ),
            None => Ok(wanted),
        },
        None => subnet::default_subnet(routes),
    }
}
// ANCHOR_END: choose_subnet

#[cfg(test)]
mod tests {
    use super::*;

    fn leases() -> (tempfile::TempDir, Leases) {
        let dir = tempfile::tempdir().unwrap();
        let leases = Leases::at(dir.path().join(FILE));
        (dir, leases)
    }

    fn me() -> Owner {
        Owner::current().unwrap()
    }

    /// A process that has exited and been reaped: its lease is stale.
    fn dead() -> Owner {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        Owner { pid, start_time: 1 }
    }

    fn subnet(spec: &str) -> Subnet {
        spec.parse().unwrap()
    }

    fn route(device: &str, spec: &str) -> Route {
        Route {
            device: device.into(),
            destination: subnet(spec),
        }
    }

    fn allocate(
        leases: &Leases,
        wanted: Option<&str>,
        link: &str,
        owner: Owner,
    ) -> Result<Allocation> {
        leases
            .lock()?
            .allocate(wanted.map(subnet), &[], link, owner)
    }

    #[test]
    fn containers_at_the_same_time_get_the_next_addresses() {
        let (_dir, leases) = leases();
        let a = allocate(&leases, None, "keel00000001", me()).unwrap().lease;
        let b = allocate(&leases, None, "keel00000002", me()).unwrap().lease;
        assert_eq!(a.address, Ipv4Addr::new(10, 89, 0, 2));
        assert_eq!(b.address, Ipv4Addr::new(10, 89, 0, 3));
        let text = fs::read_to_string(leases.path()).unwrap();
        assert_eq!(
            text,
            format!(
                "10.89.0.2/24 keel00000001 {pid} {start}\n10.89.0.3/24 keel00000002 {pid} {start}\n",
                pid = me().pid,
                start = me().start_time
            )
        );
    }

    #[test]
    fn the_last_release_removes_the_file() {
        let (_dir, leases) = leases();
        let a = allocate(&leases, None, "keel00000001", me()).unwrap().lease;
        let b = allocate(&leases, None, "keel00000002", me()).unwrap().lease;
        assert_eq!(
            leases.lock().unwrap().release(&a).unwrap(),
            std::slice::from_ref(&b)
        );
        let c = allocate(&leases, None, "keel00000003", me()).unwrap().lease;
        assert_eq!(
            c.address, a.address,
            "a released address is handed out again"
        );
        leases.lock().unwrap().release(&b).unwrap();
        assert!(leases.lock().unwrap().release(&c).unwrap().is_empty());
        assert!(!leases.path().exists());
    }

    #[test]
    fn the_lease_of_a_killed_runtime_is_stale_and_handed_out_again() {
        let (_dir, leases) = leases();
        let killed = allocate(&leases, None, "keel0000dead", dead())
            .unwrap()
            .lease;
        let next = allocate(&leases, None, "keel00000001", me()).unwrap();
        assert_eq!(next.lease.address, killed.address);
        assert_eq!(next.stale, [killed]);
        let text = fs::read_to_string(leases.path()).unwrap();
        assert_eq!(
            text.lines().count(),
            1,
            "the stale lease is dropped: {text}"
        );
    }

    #[test]
    fn a_reused_pid_is_not_mistaken_for_its_earlier_owner() {
        let (_dir, leases) = leases();
        let earlier = Owner {
            start_time: me().start_time + 1,
            ..me()
        };
        let old = allocate(&leases, None, "keel00000001", earlier)
            .unwrap()
            .lease;
        let next = allocate(&leases, None, "keel00000002", me()).unwrap().lease;
        assert_eq!(next.address, old.address);
    }

    #[test]
    fn live_leases_decide_the_subnet() {
        let (_dir, leases) = leases();
        allocate(&leases, Some("10.88.0.0/24"), "keel00000001", me()).unwrap();
        let b = allocate(&leases, None, "keel00000002", me()).unwrap().lease;
        assert_eq!(b.address, Ipv4Addr::new(10, 88, 0, 3));
        let same = allocate(&leases, Some("10.88.0.0/24"), "keel00000003", me()).unwrap();
        assert_eq!(same.lease.address, Ipv4Addr::new(10, 88, 0, 4));
        let err = allocate(&leases, Some("10.77.0.0/24"), "keel00000004", me()).unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("already serves 10.88.0.0/24"), "{err}");
        assert!(err.contains(&me().pid.to_string()), "{err}");
    }

    #[test]
    fn a_full_subnet_says_so() {
        let (_dir, leases) = leases();
        allocate(&leases, Some("10.88.0.0/30"), "keel00000001", me()).unwrap();
        let err = format!(
            "{:#}",
            allocate(&leases, None, "keel00000002", me()).unwrap_err()
        );
        assert!(err.contains("all 1 addresses of 10.88.0.0/30"), "{err}");
    }

    #[test]
    fn a_subnet_the_host_routes_is_refused_and_the_default_avoids_it() {
        let routes = [route("eth0", "10.89.0.0/16")];
        let err = choose_subnet(Some(subnet("10.89.4.0/24")), &[], &routes).unwrap_err();
        assert!(
            format!("{err:#}").contains("10.89.0.0/16 dev eth0"),
            "{err:#}"
        );
        assert_eq!(
            choose_subnet(None, &[], &routes).unwrap(),
            subnet("10.90.0.0/24")
        );
    }

    #[test]
    fn a_line_keel_did_not_write_stops_the_allocation() {
        let (_dir, leases) = leases();
        fs::write(leases.path(), "10.89.0.2 keel1 1 1\n").unwrap();
        let err = format!("{:#}", allocate(&leases, None, "keel1", me()).unwrap_err());
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn concurrent_allocations_never_share_an_address() {
        let (_dir, leases) = leases();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let leases = leases.clone();
                // Each thread opens the lock file itself: flock locks belong to the open
                // file, so the threads exclude each other as processes would.
                std::thread::spawn(move || {
                    allocate(&leases, None, &format!("keel{i:08x}"), me())
                        .unwrap()
                        .lease
                        .address
                })
            })
            .collect();
        let mut addresses: Vec<Ipv4Addr> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        addresses.sort();
        addresses.dedup();
        assert_eq!(addresses.len(), 16, "{addresses:?}");
        assert_eq!(
            fs::read_to_string(leases.path()).unwrap().lines().count(),
            16
        );
    }
}
