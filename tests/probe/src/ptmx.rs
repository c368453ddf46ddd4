//! `keel-probe ptmx [UID]`: open `/dev/ptmx` and see where the new terminal lives.
//!
//! Opening `/dev/ptmx` allocates a pseudo-terminal in the devpts instance that ptmx
//! belongs to. In a container, that must be the devpts mounted at its own `/dev/pts`:
//! a ptmx of the host's would allocate terminals among the host's, which the container
//! cannot see (and `ptsname` would name a file that is not there, or another one).
//! The probe asks the kernel rather than the link text: `TIOCGPTN` gives the
//! terminal's number, `TIOCGPTPEER` opens its slave side from the master, and the
//! slave's device and filesystem are compared with what `/dev/pts` holds. With `UID`,
//! the probe first becomes that user (and group): an ordinary user of the container
//! must be able to open a terminal too (`ptmxmode=0666`).

use std::ffi::CStr;
use std::os::unix::fs::MetadataExt;

use serde_json::{Value, json};

/// Opens `/dev/ptmx` (as `uid`, if given) and reports the terminal it allocated.
pub fn ptmx(uid: Option<&str>) -> Value {
    if let Some(uid) = uid {
        let Ok(id) = uid.parse::<libc::uid_t>() else {
            return failed("parse UID", std::io::Error::from_raw_os_error(libc::EINVAL));
        };
        // SAFETY: plain system calls on ids.
        if unsafe { libc::setresgid(id, id, id) != 0 || libc::setresuid(id, id, id) != 0 } {
            return failed("setresgid/setresuid", std::io::Error::last_os_error());
        }
    }
    // SAFETY: a NUL-terminated path; the fd is ours.
    let master = unsafe { libc::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
    if master < 0 {
        return failed("open(\"/dev/ptmx\")", std::io::Error::last_os_error());
    }
    let unlock: libc::c_int = 0;
    let mut index: libc::c_uint = 0;
    // SAFETY: TIOCSPTLCK reads an int, TIOCGPTN writes an unsigned int.
    if unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &unlock) } < 0 {
        return failed("ioctl(TIOCSPTLCK)", std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut index) } < 0 {
        return failed("ioctl(TIOCGPTN)", std::io::Error::last_os_error());
    }
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd, or -1.
    let peer = unsafe { libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY) };
    if peer < 0 {
        return failed("ioctl(TIOCGPTPEER)", std::io::Error::last_os_error());
    }
    // SAFETY: an all-zero stat is valid; fstat fills it for an fd we own.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(peer, &mut stat) } < 0 {
        return failed("fstat(peer)", std::io::Error::last_os_error());
    }
    let node = format!("/dev/pts/{index}");
    let node_rdev = std::fs::metadata(&node)
        .ok()
        .map(|meta| device(meta.rdev()));
    json!({
        "ok": true,
        "error": null,
        "index": index,
        "ptsname": ptsname(master),
        "peer_dev": device(stat.st_dev),
        "peer_rdev": device(stat.st_rdev),
        "pts_dev": std::fs::metadata("/dev/pts").ok().map(|meta| device(meta.dev())),
        "node_rdev": node_rdev,
    })
}

/// What the C library says the slave's name is (`ptsname_r`).
fn ptsname(master: libc::c_int) -> Option<String> {
    let mut buffer = [0 as libc::c_char; 128];
    // SAFETY: a valid buffer of the given length.
    if unsafe { libc::ptsname_r(master, buffer.as_mut_ptr(), buffer.len()) } != 0 {
        return None;
    }
    // SAFETY: ptsname_r succeeded: the buffer holds a C string.
    let name = unsafe { CStr::from_ptr(buffer.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// `major:minor`, as mountinfo writes a filesystem's device.
fn device(dev: u64) -> String {
    format!("{}:{}", libc::major(dev), libc::minor(dev))
}

fn failed(step: &str, err: std::io::Error) -> Value {
    json!({ "ok": false, "error": format!("{step}: {err}"), "errno": err.raw_os_error() })
}
