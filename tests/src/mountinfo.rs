//! Reading `/proc/<pid>/mountinfo`: the mount table as one process sees it.
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! │  │  │    │     │     │          │        │ │    │         └ super options
//! │  │  │    │     │     │          │        │ │    └ source
//! │  │  │    │     │     │          │        │ └ filesystem type
//! │  │  │    │     │     │          │        └ separator
//! │  │  │    │     │     │          └ optional fields (propagation: shared:N, master:N)
//! │  │  │    │     │     └ mount options (ro/rw, nosuid, ...)
//! │  │  │    │     └ mount point, relative to the process's root
//! │  │  │    └ root: which directory of the filesystem is mounted there
//! │  │  └ device (major:minor)
//! │  └ parent mount id
//! └ mount id
//! ```

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub id: u64,
    pub parent: u64,
    pub device: String,
    pub root: String,
    pub mount_point: String,
    pub options: String,
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

impl Mount {
    /// Parses one line; `None` if it is not a mountinfo line.
    pub fn parse(line: &str) -> Option<Self> {
        let (before, after) = line.split_once(" - ")?;
        let mut fields = before.split(' ');
        let id = fields.next()?.parse().ok()?;
        let parent = fields.next()?.parse().ok()?;
        let device = fields.next()?.to_owned();
        let root = unescape(fields.next()?);
        let mount_point = unescape(fields.next()?);
        let options = fields.next()?.to_owned();
        let optional = fields.map(str::to_owned).collect();
        let mut fields = after.split(' ');
        Some(Self {
            id,
            parent,
            device,
            root,
            mount_point,
            options,
            optional,
            fs_type: fields.next()?.to_owned(),
            source: unescape(fields.next()?),
            super_options: fields.next().unwrap_or_default().to_owned(),
        })
    }

    /// Whether this mount is read-only (its per-mount options start with `ro`).
    pub fn is_read_only(&self) -> bool {
        self.options.split(',').any(|option| option == "ro")
    }

    /// The line without the mount ids, which change whenever anything is remounted:
    /// what is mounted where, how, and with which propagation.
    pub fn key(&self) -> String {
        format!(
            "{} {} {} {} - {} {} {}",
            self.mount_point,
            self.root,
            self.options,
            self.optional.join(" "),
            self.fs_type,
            self.source,
            self.super_options
        )
    }
}

/// Every mount of a mountinfo text.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(Mount::parse).collect()
}

/// Every mount of a list of mountinfo lines (as the probe reports them).
pub fn parse_lines<S: AsRef<str>>(lines: &[S]) -> Vec<Mount> {
    lines
        .iter()
        .filter_map(|l| Mount::parse(l.as_ref()))
        .collect()
}

/// The mounts this process sees.
pub fn own() -> Vec<Mount> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_else(|err| panic!("cannot read /proc/self/mountinfo: {err}"));
    parse(&text)
}

/// The last mount at `mount_point` (the one on top, that paths resolve to).
pub fn find<'a>(mounts: &'a [Mount], mount_point: &str) -> Option<&'a Mount> {
    mounts.iter().rev().find(|m| m.mount_point == mount_point)
}

/// mountinfo writes space, tab, newline and backslash as octal escapes (`\040`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_man_page_example() {
        let line = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue";
        let mount = Mount::parse(line).unwrap();
        assert_eq!(mount.mount_point, "/mnt2");
        assert_eq!(mount.root, "/mnt1");
        assert_eq!(mount.optional, ["master:1"]);
        assert_eq!(mount.fs_type, "ext3");
        assert_eq!(mount.source, "/dev/root");
        assert!(!mount.is_read_only());
    }

    #[test]
    fn unescapes_spaces() {
        let line = "1 0 0:1 / /a\\040b ro - tmpfs tmpfs ro";
        let mount = Mount::parse(line).unwrap();
        assert_eq!(mount.mount_point, "/a b");
        assert!(mount.is_read_only());
    }
}
