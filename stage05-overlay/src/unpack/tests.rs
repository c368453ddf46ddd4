//! Layers built in memory, hostile and ordinary. The hostile ones are applied into
//! `dest` next to a `sentinel` directory holding one file, `keep`: whatever a broken
//! unpacker would write, link or delete outside `dest` would show there.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use stage02_mountns::at::At;
use tar::{EntryType, Header};

use super::*;
use crate::digest::Digest;

const MTIME: u64 = 1_600_000_000;

/// A tar built entry by entry, with names written raw (the `tar` crate's own setters
/// refuse `..` and the like, which is the point of these tests).
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn entry(
        mut self,
        kind: EntryType,
        name: &[u8],
        link: &[u8],
        data: &[u8],
        mode: u32,
        ids: (u64, u64),
    ) -> Self {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_uid(ids.0);
        header.set_gid(ids.1);
        header.set_mtime(MTIME);
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
        header.set_cksum();
        self.0.append(&header, data).unwrap();
        self
    }

    fn file(self, name: &str, data: &str) -> Self {
        self.entry(
            EntryType::Regular,
            name.as_bytes(),
            b"",
            data.as_bytes(),
            0o644,
            (0, 0),
        )
    }

    fn dir(self, name: &str, mode: u32) -> Self {
        self.entry(
            EntryType::Directory,
            name.as_bytes(),
            b"",
            b"",
            mode,
            (0, 0),
        )
    }

    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(
            EntryType::Symlink,
            name.as_bytes(),
            target.as_bytes(),
            b"",
            0o777,
            (0, 0),
        )
    }

    fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(
            EntryType::Link,
            name.as_bytes(),
            target.as_bytes(),
            b"",
            0o644,
            (0, 0),
        )
    }

    fn device(mut self, name: &str, kind: EntryType, major: u32, minor: u32) -> Self {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(0);
        header.set_mode(0o666);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        self.0.append(&header, &b""[..]).unwrap();
        self
    }

    /// PAX records for the next entry.
    fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        self.0
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A directory with `dest`, and `sentinel/keep` beside it.
struct Scene {
    _tmp: tempfile::TempDir,
    base: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_owned();
        fs::create_dir(base.join("dest")).unwrap();
        fs::create_dir(base.join("sentinel")).unwrap();
        fs::write(base.join("sentinel/keep"), "intact").unwrap();
        Self { _tmp: tmp, base }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.base.join(name)
    }

    fn at(&self, name: &str) -> At {
        let path = self.path(name);
        fs::create_dir_all(&path).unwrap();
        At::open_dir(&path).unwrap()
    }

    fn dest(&self) -> PathBuf {
        self.path("dest")
    }

    fn sentinel(&self) -> String {
        self.path("sentinel").display().to_string()
    }

    /// Nothing outside the layers' directories changed.
    fn assert_intact(&self) {
        assert_eq!(names(&self.path("sentinel")), vec!["keep"]);
        let keep = self.path("sentinel/keep");
        assert_eq!(fs::read_to_string(&keep).unwrap(), "intact");
        assert_eq!(fs::metadata(&keep).unwrap().nlink(), 1);
        for name in names(&self.base) {
            assert!(
                name == "dest" || name == "sentinel" || name.starts_with('l'),
                "{name} appeared beside the layer"
            );
        }
    }

    fn overlay(&self, tar: &[u8]) -> Result<Applied> {
        apply_layer(tar, &self.at("dest"), &[], &Options::default())
    }

    fn flat(&self, tar: &[u8]) -> Result<Applied> {
        apply_flat(tar, &self.at("dest"), &Options::default())
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn err_of(result: Result<Applied>) -> String {
    format!("{:#}", result.expect_err("the layer was applied"))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

// ---- hostile layers ----

#[test]
fn dotdot_entries_are_refused_and_nothing_escapes() {
    for name in ["../../x", "../sentinel/evil", "a/../../x", "ok/.."] {
        let tar = Tar::new().file(name, "evil").bytes();
        let scene = Scene::new();
        let err = err_of(scene.overlay(&tar));
        assert!(err.contains("`..`"), "{name}: {err}");
        let err = err_of(scene.flat(&tar));
        assert!(err.contains("`..`"), "{name}: {err}");
        scene.assert_intact();
        assert!(names(&scene.dest()).is_empty(), "{name}");
    }
}

#[test]
fn absolute_names_land_inside_the_layer() {
    // Docker's rule: a leading `/` is dropped.
    let top = format!("keel-absolute-test-{}", std::process::id());
    let tar = Tar::new().file(&format!("/{top}/f"), "inside").bytes();
    let scene = Scene::new();
    scene.overlay(&tar).unwrap();
    assert_eq!(
        fs::read_to_string(scene.dest().join(&top).join("f")).unwrap(),
        "inside"
    );
    assert!(!Path::new("/").join(&top).exists());
    scene.assert_intact();
}

#[test]
fn a_file_through_a_symlink_of_the_same_layer_is_refused() {
    let scene = Scene::new();
    let absolute = Tar::new()
        .symlink("a", &scene.sentinel())
        .file("a/evil", "x")
        .bytes();
    let err = err_of(scene.overlay(&absolute));
    assert!(err.contains("symlink"), "{err}");
    scene.assert_intact();

    let scene = Scene::new();
    let relative = Tar::new()
        .symlink("b", "../sentinel")
        .file("b/evil", "x")
        .bytes();
    let err = err_of(scene.flat(&relative));
    assert!(err.contains("symlink"), "{err}");
    scene.assert_intact();
    // The symlink itself is stored as it was.
    assert_eq!(
        fs::read_link(scene.dest().join("b")).unwrap(),
        Path::new("../sentinel")
    );
}

#[test]
fn a_file_through_a_symlink_of_a_layer_below_is_refused_in_overlay_mode() {
    let scene = Scene::new();
    let layer1 = Tar::new().symlink("a", &scene.sentinel()).bytes();
    let layer2 = Tar::new().file("a/evil", "x").bytes();
    let lower = scene.at("l1");
    apply_layer(&layer1[..], &lower, &[], &Options::default()).unwrap();
    let err = err_of(apply_layer(
        &layer2[..],
        &scene.at("l2"),
        &[lower],
        &Options::default(),
    ));
    assert!(
        err.contains("the entry \"a/evil\" goes through a, a symlink"),
        "{err}"
    );
    // Found out once the layer was applied (the store then keeps none of it): its file
    // went into a directory of its own, not through the link.
    assert!(fs::symlink_metadata(scene.path("l2/a")).unwrap().is_dir());
    scene.assert_intact();
}

#[test]
fn a_file_through_a_symlink_of_a_layer_below_is_refused_in_flat_mode() {
    let scene = Scene::new();
    let layer1 = Tar::new().symlink("a", &scene.sentinel()).bytes();
    let layer2 = Tar::new().file("a/evil", "x").bytes();
    scene.flat(&layer1).unwrap();
    let err = err_of(scene.flat(&layer2));
    assert!(err.contains("symlink"), "{err}");
    scene.assert_intact();
}

#[test]
fn hardlinks_out_of_the_layer_are_refused() {
    let shadow_links = fs::metadata("/etc/shadow").map(|m| m.nlink()).ok();
    for (target, why) in [
        ("/etc/shadow", "not an earlier entry of this layer"),
        ("etc/shadow", "not an earlier entry of this layer"),
        ("../sentinel/keep", "`..`"),
        ("/", "the layer's root"),
    ] {
        let scene = Scene::new();
        let tar = Tar::new().hardlink("x", target).bytes();
        let err = err_of(scene.overlay(&tar));
        assert!(err.contains(why), "{target}: {err}");
        assert!(!scene.dest().join("x").exists());
        scene.assert_intact();
    }
    assert_eq!(
        fs::metadata("/etc/shadow").map(|m| m.nlink()).ok(),
        shadow_links
    );

    // Flat: a file of the layer below is not this layer's either.
    let scene = Scene::new();
    scene
        .flat(
            &Tar::new()
                .dir("etc", 0o755)
                .file("etc/shadow", "root:x")
                .bytes(),
        )
        .unwrap();
    let err = err_of(scene.flat(&Tar::new().hardlink("x", "etc/shadow").bytes()));
    assert!(err.contains("not an earlier entry of this layer"), "{err}");
}

#[test]
fn whiteouts_that_climb_out_are_refused() {
    for (name, why) in [
        ("../.wh.sentinel", "`..`"),
        ("../sentinel/.wh.keep", "`..`"),
        (".wh...", "not a name in its directory"),
        ("a/.wh..", "not a name in its directory"),
        (".wh.", "not a name in its directory"),
    ] {
        let scene = Scene::new();
        let tar = Tar::new().file(name, "").bytes();
        let err = err_of(scene.flat(&tar));
        assert!(err.contains(why), "{name}: {err}");
        let err = err_of(scene.overlay(&tar));
        assert!(err.contains(why), "{name}: {err}");
        scene.assert_intact();
    }
}

#[test]
fn whiteouts_and_opaque_markers_through_a_symlink_delete_nothing_outside() {
    for marker in ["a/.wh.keep", "a/.wh..wh..opq"] {
        let scene = Scene::new();
        scene
            .flat(&Tar::new().symlink("a", &scene.sentinel()).bytes())
            .unwrap();
        let err = err_of(scene.flat(&Tar::new().file(marker, "").bytes()));
        assert!(err.contains("symlink"), "{marker}: {err}");
        scene.assert_intact();
    }
}

#[test]
fn empty_numeric_fields_read_as_zero_but_garbage_is_refused() {
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_size(0);
    header.set_mode(0o644);
    header.as_old_mut().name[..1].copy_from_slice(b"f");
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &b""[..]).unwrap();
    let scene = Scene::new();
    scene.overlay(&builder.into_inner().unwrap()).unwrap();
    assert_eq!(fs::metadata(scene.dest().join("f")).unwrap().mtime(), 0);

    header.as_old_mut().uid.copy_from_slice(b"12x4567\0");
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &b""[..]).unwrap();
    let scene = Scene::new();
    let err = err_of(scene.overlay(&builder.into_inner().unwrap()));
    assert!(
        err.contains("the entry \"f\" has a malformed uid field"),
        "{err}"
    );
}

#[test]
fn empty_names_and_nul_bytes_are_refused() {
    let scene = Scene::new();
    let err = err_of(scene.overlay(&Tar::new().file("", "x").bytes()));
    assert!(err.contains("empty name"), "{err}");
    let tar = Tar::new()
        .pax(&[("path", b"a\0b")])
        .file("placeholder", "x")
        .bytes();
    let err = err_of(scene.overlay(&tar));
    assert!(err.contains("NUL"), "{err}");
    assert!(names(&scene.dest()).is_empty());
}

#[test]
fn a_truncated_gzip_stream_is_a_clear_error_and_leaves_no_layer() {
    let data: String = (0..200_000)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let tar = Tar::new().file("big", &data).file("after", "x").bytes();
    let gz = gzip(&tar);
    let cut = &gz[..gz.len() / 2];
    let scene = Scene::new();
    let err = err_of(scene.overlay(cut));
    assert!(err.contains("truncated or corrupt"), "{err}");

    // Through the store: the half-made layer is not kept.
    let store = crate::store::Store::open(scene.path("store")).unwrap();
    let diff_id = Digest::of(&tar);
    let err = store
        .ensure_layer(&diff_id, |dir| {
            Ok(apply_layer(cut, dir, &[], &Options::default())?.diff_id)
        })
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("truncated or corrupt"),
        "{err:#}"
    );
    assert!(!store.has_layer(&diff_id));
    assert!(names(&scene.path("store/layers")).is_empty());
    // And the whole stream is.
    store
        .ensure_layer(&diff_id, |dir| {
            Ok(apply_layer(&gz[..], dir, &[], &Options::default())?.diff_id)
        })
        .unwrap();
    assert!(store.has_layer(&diff_id));
    assert_eq!(
        fs::read_to_string(store.layer_path(&diff_id).join("after")).unwrap(),
        "x"
    );
}

// ---- ordinary layers ----

#[test]
fn diff_id_is_the_digest_of_the_uncompressed_tar() {
    let tar = Tar::new().dir("d", 0o755).file("d/f", "hello").bytes();
    for blob in [
        tar.clone(),
        gzip(&tar),
        zstd::encode_all(&tar[..], 3).unwrap(),
    ] {
        let scene = Scene::new();
        let applied = scene.overlay(&blob).unwrap();
        assert_eq!(applied.diff_id, Digest::of(&tar));
        assert_eq!(applied.entries, 2);
        assert_eq!(
            fs::read_to_string(scene.dest().join("d/f")).unwrap(),
            "hello"
        );
    }
}

#[test]
fn entries_get_their_kind_mode_owner_and_time() {
    if !is_root() {
        println!("SKIP: needs root (ownership and device nodes)");
        return;
    }
    let tar = Tar::new()
        .entry(EntryType::Directory, b"d", b"", b"", 0o1777, (0, 0))
        .entry(
            EntryType::Regular,
            b"d/suid",
            b"",
            b"#!",
            0o4755,
            (1000, 1001),
        )
        .entry(EntryType::Regular, b"d/sgid", b"", b"", 0o2710, (0, 50))
        .entry(
            EntryType::Symlink,
            b"d/link",
            b"/abs/target",
            b"",
            0o777,
            (5, 6),
        )
        .entry(EntryType::Fifo, b"d/fifo", b"", b"", 0o640, (0, 0))
        .device("d/null", EntryType::Char, 1, 3)
        .hardlink("d/hard", "d/suid")
        .pax(&[("uid", b"3000000"), ("mtime", b"1500000000.25")])
        .file("big-uid", "")
        .bytes();
    let scene = Scene::new();
    let applied = scene.overlay(&tar).unwrap();
    assert!(applied.warnings.is_empty(), "{:?}", applied.warnings);
    let dest = scene.dest();
    let meta = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap();

    let d = meta("d");
    assert!(d.is_dir());
    assert_eq!(d.mode() & 0o7777, 0o1777, "sticky kept");
    // Set after its entries were made, which touched it.
    assert_eq!(d.mtime(), MTIME as i64);

    let suid = meta("d/suid");
    assert_eq!(suid.mode() & 0o7777, 0o4755, "setuid kept after chown");
    assert_eq!((suid.uid(), suid.gid()), (1000, 1001));
    assert_eq!(suid.mtime(), MTIME as i64);
    assert_eq!(fs::read(dest.join("d/suid")).unwrap(), b"#!");
    assert_eq!(meta("d/sgid").mode() & 0o7777, 0o2710, "setgid kept");

    let link = meta("d/link");
    assert!(link.file_type().is_symlink());
    assert_eq!((link.uid(), link.gid()), (5, 6));
    assert_eq!(
        fs::read_link(dest.join("d/link")).unwrap(),
        Path::new("/abs/target")
    );

    assert!(meta("d/fifo").file_type().is_fifo());
    assert_eq!(meta("d/fifo").mode() & 0o7777, 0o640);
    let null = meta("d/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), makedev(1, 3));

    assert_eq!(meta("d/hard").ino(), suid.ino());
    assert_eq!(meta("d/hard").nlink(), 2);

    let big = meta("big-uid");
    assert_eq!(big.uid(), 3_000_000, "PAX uid wins");
    assert_eq!(
        (big.mtime(), big.mtime_nsec()),
        (1_500_000_000, 250_000_000)
    );
}

#[test]
fn rootless_skips_device_nodes_with_a_warning_naming_them() {
    let tar = Tar::new()
        .device("null", EntryType::Char, 1, 3)
        .device("sda", EntryType::Block, 8, 0)
        .entry(EntryType::Fifo, b"fifo", b"", b"", 0o600, (0, 0))
        .bytes();
    let scene = Scene::new();
    let applied = apply_layer(
        &tar[..],
        &scene.at("dest"),
        &[],
        &Options { rootless: true },
    )
    .unwrap();
    assert_eq!(names(&scene.dest()), vec!["fifo"]);
    assert_eq!(applied.warnings.len(), 2, "{:?}", applied.warnings);
    assert!(applied.warnings[0].contains("\"null\"") && applied.warnings[0].contains("1:3"));
    assert!(
        applied.warnings[1].contains("\"sda\"") && applied.warnings[1].contains("block device")
    );
}

#[test]
fn later_entries_replace_earlier_ones_and_a_directory_entry_updates_the_mode() {
    let tar = Tar::new()
        .file("a", "first")
        .file("a", "second")
        .dir("d", 0o755)
        .file("d/x", "kept")
        .dir("d", 0o700)
        .file("f", "a file")
        .dir("f", 0o755)
        .dir("g", 0o755)
        .file("g/child", "")
        .file("g", "a file now")
        .dir("./", 0o750)
        .bytes();
    let scene = Scene::new();
    scene.overlay(&tar).unwrap();
    let dest = scene.dest();
    assert_eq!(fs::read_to_string(dest.join("a")).unwrap(), "second");
    assert_eq!(fs::metadata(dest.join("d")).unwrap().mode() & 0o7777, 0o700);
    assert_eq!(fs::read_to_string(dest.join("d/x")).unwrap(), "kept");
    assert!(dest.join("f").is_dir());
    assert_eq!(fs::read_to_string(dest.join("g")).unwrap(), "a file now");
    // `./` is the layer's root.
    assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o7777, 0o750);
}

#[test]
fn overlay_mode_makes_whiteouts_and_opaque_directories() {
    for (options, xattr) in [
        (Options { rootless: false }, "trusted.overlay.opaque"),
        (Options { rootless: true }, "user.overlay.opaque"),
    ] {
        let tar = Tar::new()
            .file(".wh.gone", "")
            .dir("o", 0o755)
            .file("o/.wh..wh..opq", "")
            .file("o/new", "x")
            .file("deep/er/.wh.file", "")
            .file(".wh..wh.plnk/1.2", "aufs bookkeeping")
            .bytes();
        let scene = Scene::new();
        apply_layer(&tar[..], &scene.at("dest"), &[], &options).unwrap();
        let dest = scene.dest();
        for whiteout in ["gone", "deep/er/file"] {
            let meta = fs::symlink_metadata(dest.join(whiteout)).unwrap();
            assert!(meta.file_type().is_char_device(), "{whiteout}");
            assert_eq!(meta.rdev(), 0, "{whiteout}");
        }
        let o = File::open(dest.join("o")).unwrap();
        assert_eq!(
            xattr::get(o.as_fd(), xattr).unwrap().as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(names(&dest.join("o")), vec!["new"]);
        assert_eq!(names(&dest), vec!["deep", "gone", "o"]);
    }
}

#[test]
fn flat_mode_deletes_and_empties() {
    let layer1 = Tar::new()
        .dir("a", 0o755)
        .file("a/x", "")
        .dir("a/sub", 0o755)
        .file("a/sub/y", "")
        .dir("b", 0o755)
        .file("b/z", "")
        .dir("c", 0o755)
        .file("c/in-c", "")
        .file("f", "")
        .bytes();
    let layer2 = Tar::new()
        .file(".wh.c", "")
        .file("a/new", "from layer 2")
        .file("a/.wh..wh..opq", "")
        .file("b/.wh.z", "")
        .file(".wh.f", "")
        .file(".wh.never-was", "")
        .bytes();
    let scene = Scene::new();
    scene.flat(&layer1).unwrap();
    scene.flat(&layer2).unwrap();
    let dest = scene.dest();
    assert_eq!(names(&dest), vec!["a", "b"]);
    // Emptied of layer 1's entries, not of layer 2's own.
    assert_eq!(names(&dest.join("a")), vec!["new"]);
    assert!(names(&dest.join("b")).is_empty());
    scene.assert_intact();
}

#[test]
fn implied_directories_copy_what_the_layers_below_show() {
    if !is_root() {
        println!("SKIP: needs root (ownership)");
        return;
    }
    let scene = Scene::new();
    let layer1 = Tar::new()
        .dir("tmp", 0o1777)
        .entry(EntryType::Directory, b"home", b"", b"", 0o750, (1000, 1000))
        .bytes();
    let layer2 = Tar::new().file(".wh.tmp", "").bytes();
    let layer3 = Tar::new().file("tmp/x", "").file("home/u/f", "").bytes();
    let (l1, l2, l3) = (scene.at("l1"), scene.at("l2"), scene.at("l3"));
    let options = Options::default();
    apply_layer(&layer1[..], &l1, &[], &options).unwrap();
    let l1_again = At::open_dir(&scene.path("l1")).unwrap();
    apply_layer(&layer3[..], &l3, &[l1_again], &options).unwrap();
    let mode = |p: &str| fs::metadata(scene.path(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("l3/tmp"), 0o1777);
    assert_eq!(mode("l3/home"), 0o750);
    assert_eq!(fs::metadata(scene.path("l3/home")).unwrap().uid(), 1000);
    assert_eq!(mode("l3/home/u"), 0o755);

    // With /tmp whited out in between, nothing is below to copy.
    apply_layer(&layer2[..], &l2, &[], &options).unwrap();
    let lowers = [At::open_dir(&scene.path("l1")).unwrap(), l2];
    let l4 = scene.at("l4");
    apply_layer(&layer3[..], &l4, &lowers, &options).unwrap();
    assert_eq!(mode("l4/tmp"), 0o755);
    drop(l1);
}

#[test]
fn xattrs_are_kept_or_skipped_by_policy() {
    if !is_root() {
        println!("SKIP: needs root (security.capability)");
        return;
    }
    // cap_net_raw, permitted and effective (struct vfs_cap_data, revision 2).
    let cap: [u8; 20] = [
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let tar = Tar::new()
        .pax(&[
            ("SCHILY.xattr.user.note", b"hello"),
            ("SCHILY.xattr.security.capability", &cap),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            (
                "SCHILY.xattr.security.selinux",
                b"system_u:object_r:bin_t:s0",
            ),
        ])
        .entry(EntryType::Regular, b"ping", b"", b"", 0o755, (0, 0))
        .bytes();
    let scene = Scene::new();
    let applied = scene.overlay(&tar).unwrap();
    let file = File::open(scene.dest().join("ping")).unwrap();
    assert_eq!(
        xattr::get(file.as_fd(), "user.note").unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        xattr::get(file.as_fd(), "security.capability")
            .unwrap()
            .as_deref(),
        Some(&cap[..])
    );
    assert_eq!(
        xattr::get(file.as_fd(), "trusted.overlay.opaque").unwrap(),
        None
    );
    assert_eq!(applied.warnings.len(), 2, "{:?}", applied.warnings);
    assert!(applied.warnings[0].contains("trusted.overlay.opaque"));
    assert!(applied.warnings[1].contains("security.selinux"));
}

/// Set in the copy of the test binary that runs inside a user namespace.
const IN_USERNS: &str = "KEEL_UNPACK_TEST_IN_USERNS";

#[test]
fn in_a_user_namespace_unmapped_ids_are_errors_and_whiteouts_can_be_made() {
    if std::env::var_os(IN_USERNS).is_some() {
        // Inside `unshare --user --map-root-user`: only uid 0 and gid 0 are mapped.
        let scene = Scene::new();
        let rootless = Options { rootless: true };
        let owned = Tar::new()
            .entry(
                EntryType::Regular,
                b"home/app/file",
                b"",
                b"",
                0o644,
                (1000, 1001),
            )
            .bytes();
        let err = err_of(apply_layer(&owned[..], &scene.at("dest"), &[], &rootless));
        println!("OWNED: {err}");
        let whiteouts = Tar::new()
            .file(".wh.gone", "")
            .dir("o", 0o755)
            .file("o/.wh..wh..opq", "")
            .bytes();
        let outcome = apply_layer(&whiteouts[..], &scene.at("l2"), &[], &rootless).map(|_| {
            let gone = fs::symlink_metadata(scene.path("l2/gone")).unwrap();
            let o = File::open(scene.path("l2/o")).unwrap();
            let opaque = xattr::get(o.as_fd(), "user.overlay.opaque").unwrap();
            (gone.file_type().is_char_device(), gone.rdev(), opaque)
        });
        println!("WHITEOUTS: {outcome:?}");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let run = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user"])
        .arg(exe)
        .args([
            "--exact",
            "unpack::tests::in_a_user_namespace_unmapped_ids_are_errors_and_whiteouts_can_be_made",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(IN_USERNS, "1")
        .output();
    let output = match run {
        Ok(output) if output.status.success() => output,
        other => {
            println!("SKIP: cannot run the test in a user namespace: {other:?}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "OWNED: the entry \"home/app/file\" belongs to uid 1000 gid 1001, which this user \
             namespace does not map"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("WHITEOUTS: Ok((true, 0, Some([121])))"),
        "{stdout}"
    );
}
