//! A writer of `newc` cpio archives: the format the kernel unpacks an initramfs from.
//!
//! Each entry is a 110-byte ASCII header (`070701`, then thirteen 8-digit hex fields),
//! its name with a NUL, padded to 4 bytes, then its data, padded to 4 bytes; the archive
//! ends with an entry named `TRAILER!!!`. Writing it ourselves (rather than running
//! `cpio`) lets an unprivileged build put a device node such as `/dev/console` in the
//! archive: the kernel, not the build, creates it.

use std::io::{self, Write};

/// What an entry is. Owner and group are always root.
pub enum Kind<'a> {
    Directory,
    File(&'a [u8]),
    Symlink(&'a str),
    /// A character device: major and minor numbers.
    CharDevice(u32, u32),
}

/// Writes entries one by one; [`Writer::finish`] writes the trailer.
pub struct Writer<W: Write> {
    out: W,
    next_inode: u32,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Self { out, next_inode: 1 }
    }

    /// Adds `name` (relative to the root, no leading `/`) with permission bits `mode`.
    /// Its parent directories must have been added before it.
    pub fn entry(&mut self, name: &str, mode: u32, kind: Kind<'_>) -> io::Result<()> {
        let (file_type, data, rdev): (u32, &[u8], (u32, u32)) = match kind {
            Kind::Directory => (0o040000, &[], (0, 0)),
            Kind::File(data) => (0o100000, data, (0, 0)),
            Kind::Symlink(target) => (0o120000, target.as_bytes(), (0, 0)),
            Kind::CharDevice(major, minor) => (0o020000, &[], (major, minor)),
        };
        let inode = self.next_inode;
        self.next_inode += 1;
        let nlink = if file_type == 0o040000 { 2 } else { 1 };
        self.header(
            name,
            inode,
            file_type | (mode & 0o7777),
            nlink,
            data.len(),
            rdev,
        )?;
        self.out.write_all(data)?;
        self.pad(data.len())
    }

    /// Writes the trailer and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.header("TRAILER!!!", 0, 0, 1, 0, (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn header(
        &mut self,
        name: &str,
        inode: u32,
        mode: u32,
        nlink: u32,
        size: usize,
        (rdev_major, rdev_minor): (u32, u32),
    ) -> io::Result<()> {
        let size = u32::try_from(size)
            .map_err(|_| io::Error::other(format!("{name}: too large for cpio (4 GiB)")))?;
        let name_size = u32::try_from(name.len() + 1)
            .map_err(|_| io::Error::other("name too long for cpio"))?;
        // inode, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
        // rdevminor, namesize, check (0: no checksum).
        let fields = [
            inode, mode, 0, 0, nlink, 0, size, 0, 0, rdev_major, rdev_minor, name_size, 0,
        ];
        let mut header = String::from("070701");
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.pad(header.len() + name.len() + 1)
    }

    /// Pads with NULs to the next multiple of 4 bytes after `len` bytes.
    fn pad(&mut self, len: usize) -> io::Result<()> {
        let zeros = [0u8; 3];
        self.out.write_all(&zeros[..(4 - len % 4) % 4])
    }
}

#[cfg(test)]
mod tests {
    use super::{Kind, Writer};
    use std::process::{Command, Stdio};

    /// busybox's cpio reads back what we wrote, names, types and contents.
    #[test]
    fn busybox_cpio_lists_the_entries() {
        if !std::path::Path::new("/bin/busybox").exists() {
            eprintln!("SKIP: no /bin/busybox");
            return;
        }
        let mut writer = Writer::new(Vec::new());
        writer.entry("bin", 0o755, Kind::Directory).unwrap();
        writer
            .entry("bin/hello", 0o755, Kind::File(b"hi\n"))
            .unwrap();
        writer
            .entry("bin/sh", 0o777, Kind::Symlink("busybox"))
            .unwrap();
        writer.entry("dev", 0o755, Kind::Directory).unwrap();
        writer
            .entry("dev/console", 0o600, Kind::CharDevice(5, 1))
            .unwrap();
        let archive = writer.finish().unwrap();
        assert_eq!(archive.len() % 4, 0);

        let mut cpio = Command::new("/bin/busybox")
            .args(["cpio", "-t", "-v"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut cpio.stdin.take().unwrap(), &archive).unwrap();
        let output = cpio.wait_with_output().unwrap();
        let listing = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{listing}");
        let lines: Vec<Vec<&str>> = listing
            .lines()
            .map(|line| line.split_whitespace().collect())
            .collect();
        let modes: Vec<&str> = lines.iter().map(|fields| fields[0]).collect();
        assert_eq!(
            modes,
            [
                "drwxr-xr-x",
                "-rwxr-xr-x",
                "lrwxrwxrwx",
                "drwxr-xr-x",
                "crw-------"
            ],
            "{listing}"
        );
        assert!(listing.contains("bin/sh -> busybox"), "{listing}");
        assert!(listing.contains("dev/console"), "{listing}");
    }
}
