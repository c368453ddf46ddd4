//! Graders of stage 5 (`stage05-overlay`): stage 4 plus images. `run IMAGE CMD` runs
//! the command on an overlay of the image's layers under a writable layer of the
//! container's own.
//!
//! Each grader has a store of its own (`KEEL_STORE`, a directory it made) and runs as
//! the test user with subordinate ids (rootless) or as root. The images are the offline
//! `busybox` (made from the host's static busybox on first use) and OCI image layouts
//! that the graders build from the entries they name (`keel_graders::oci`), imported
//! with `import`. Every grader checks at its end that the host's mount table did not
//! change.

use std::path::{Path, PathBuf};

use keel_graders::oci::{self, Entry};
use keel_graders::rootfs::busybox_layer;
use keel_graders::runtime::RunAs;
use keel_graders::users::{self, TestUser};
use keel_graders::{LeakCheck, Output, Runtime, Skip, need};
use serde_json::json;
use tempfile::TempDir;

const NAME: &str = "stage05-overlay";

/// The twin binary, copied where the test users can execute it.
fn binary() -> PathBuf {
    users::accessible_copy(Path::new(env!("CARGO_BIN_EXE_keel-stage05")))
}

/// The stage, run by one user with a store of its own.
struct Images {
    stage: Runtime,
    store: TempDir,
    /// Who owns the store's files (the user; root for root's store).
    owner: (u32, u32),
    /// The host uid of container uid 1 (the user's first subordinate id); `None` for
    /// root, whose containers' ids are the host's.
    first_subuid: Option<u32>,
}

impl Images {
    /// As the test user with subordinate ids.
    fn rootless() -> Result<Self, Skip> {
        Self::as_user(users::with_ranges()?)
    }

    fn as_user(user: &TestUser) -> Result<Self, Skip> {
        let store = users::dir_owned_by(user.uid, user.gid, 0o700);
        let mut run_as = user.run_as();
        run_as
            .env
            .push(("KEEL_STORE".into(), store.path().join("store").into()));
        Ok(Self {
            stage: Runtime::new(NAME, binary()).as_user(run_as),
            store,
            owner: (user.uid, user.gid),
            first_subuid: user.subuids.first().map(|range| range.start),
        })
    }

    /// As root.
    fn root() -> Result<Self, Skip> {
        users::require_root()?;
        let store = tempfile::tempdir().expect("a store directory");
        let run_as = RunAs::root_with_store(&store.path().join("store"));
        Ok(Self {
            stage: Runtime::new(NAME, binary()).as_user(run_as),
            store,
            owner: (0, 0),
            first_subuid: None,
        })
    }

    /// The store's directory.
    fn path(&self) -> PathBuf {
        self.store.path().join("store")
    }

    /// `stage ARGS...` (a subcommand).
    fn command(&self, args: &[&str]) -> Output {
        self.stage.command_line().args(args).output()
    }

    /// `stage run [OPTIONS] -- IMAGE CMD...`.
    fn run(&self, options: &[&str], image_and_command: &[&str]) -> Output {
        self.stage
            .run()
            .args(options)
            .cmd(image_and_command)
            .output()
    }

    /// Writes an OCI layout of `layers` and `config` in a directory the user can read,
    /// and imports it as `name`.
    fn import(&self, name: &str, layers: &[Vec<u8>], config: serde_json::Value) {
        let layout = users::dir_owned_by(self.owner.0, self.owner.1, 0o755);
        oci::write_layout(layout.path(), layers, config);
        let path = layout.path().to_str().expect("a UTF-8 path");
        let out = self.command(&["import", path, name]);
        out.expect_success();
    }

    /// The names in the store's `containers/`: the writable layers kept.
    fn containers(&self) -> Vec<String> {
        names(&self.path().join("containers"))
    }

    /// The host uid of `uid` in the container: the user's for root, a subordinate id
    /// for the others (rootless), or the same (root's containers).
    fn host_uid(&self, uid: u32) -> u32 {
        match (self.first_subuid, uid) {
            (None, uid) => uid,
            (Some(_), 0) => self.owner.0,
            (Some(first), uid) => first + uid - 1,
        }
    }

    /// The names in the store's `layers/`: one per unpacked layer.
    fn layers(&self) -> Vec<String> {
        names(&self.path().join("layers"))
    }
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `run busybox ...`, the image that works offline.
mod offline_busybox {
    use super::*;

    fn echo_prints_hi(images: &Images) {
        let _leaks = LeakCheck::start();
        let out = images.run(&[], &["busybox", "echo", "hi"]);
        out.expect_success();
        assert_eq!(out.stdout, "hi\n", "{out}");
        let listed = images.command(&["images"]);
        listed.expect_success();
        assert!(
            listed.stdout.contains("docker.io/library/busybox:latest"),
            "`images` should list the busybox image it made\n{listed}"
        );
    }

    #[test]
    fn echo_prints_hi_rootless() {
        echo_prints_hi(&need!(Images::rootless()));
    }

    #[test]
    fn echo_prints_hi_as_root() {
        echo_prints_hi(&need!(Images::root()));
    }

    /// With no image and no command: busybox's shell, reading stdin.
    #[test]
    fn no_arguments_runs_a_shell_on_busybox() {
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        let out = images
            .stage
            .run()
            .stdin(b"echo from the shell; exit 3\n")
            .output();
        out.expect_code(3);
        assert_eq!(out.stdout, "from the shell\n", "{out}");
    }

    /// Rootless, the image's files belong to container root: the user outside, with
    /// uid 0 inside (the first line of the map).
    #[test]
    fn image_files_belong_to_container_root() {
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        let out = images.run(
            &[],
            &[
                "busybox",
                "sh",
                "-c",
                "stat -c '%u %g' /bin/busybox; cat /proc/self/uid_map",
            ],
        );
        out.expect_success();
        let lines = out.lines();
        assert_eq!(lines.first(), Some(&"0 0"), "{out}");
        assert!(lines.len() >= 3, "a user with ranges maps them too\n{out}");
    }
}

/// The container's writable layer: its changes, and only its.
mod writable_layer {
    use super::*;

    /// The first run in a store probes the kernel's overlay with empty directories, in
    /// the store's `tmp/`, and removes them: overlay leaves its `work/work` with mode
    /// 000, which a user must open up before removing. Nothing may stay there, nor in
    /// `$TMPDIR`, where the probe once left a tree per store.
    #[test]
    fn the_overlay_probe_leaves_nothing() {
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        let tmp = users::dir_owned_by(images.owner.0, images.owner.1, 0o700);
        images
            .stage
            .run()
            .env("TMPDIR", tmp.path())
            .arg("--rm")
            .cmd(["busybox", "true"])
            .output()
            .expect_success();
        assert!(
            images.path().join("overlay-probe").exists(),
            "no probe was made"
        );
        assert_eq!(names(tmp.path()), Vec::<String>::new(), "left in $TMPDIR");
        assert_eq!(
            names(&images.path().join("tmp")),
            Vec::<String>::new(),
            "left in the store's tmp/"
        );
    }

    /// A probe killed halfway leaves its tree in the store's `tmp/`, named after its
    /// process as everything staged there is; the next run's store sweeps it, overlay's
    /// `work/work` of mode 000 included.
    #[test]
    fn a_probe_killed_halfway_is_swept() {
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        images.run(&["--rm"], &["busybox", "true"]).expect_success();
        // No process has a PID as large as the largest there may be.
        let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").expect("pid_max");
        let left = images
            .path()
            .join("tmp")
            .join(format!("{}-1-0", pid_max.trim()));
        for dir in ["lower", "upper", "work/work", "merged"] {
            std::fs::create_dir_all(left.join(dir)).expect("a probe's tree");
        }
        let (uid, gid) = images.owner;
        for dir in ["", "lower", "upper", "work", "work/work", "merged"] {
            std::os::unix::fs::chown(left.join(dir), Some(uid), Some(gid)).expect("chown");
        }
        std::fs::set_permissions(
            left.join("work/work"),
            std::os::unix::fs::PermissionsExt::from_mode(0o000),
        )
        .expect("chmod 000");
        images.run(&["--rm"], &["busybox", "true"]).expect_success();
        assert_eq!(
            names(&images.path().join("tmp")),
            Vec::<String>::new(),
            "left in the store's tmp/"
        );
    }

    /// A file written in one run is absent in the next run of the same image, and the
    /// image's blobs are byte for byte what they were.
    #[test]
    fn a_file_written_is_absent_in_the_next_run() {
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        images.run(&["--rm"], &["busybox", "true"]).expect_success();
        let blobs = images.path().join("blobs/sha256");
        let before = hashes(&blobs);
        let out = images.run(
            &["--rm"],
            &[
                "busybox",
                "sh",
                "-c",
                "echo changed > /bin/busybox.new; echo x > /etc/added; rm /bin/ls",
            ],
        );
        out.expect_success();
        let next = images.run(
            &["--rm"],
            &[
                "busybox",
                "sh",
                "-c",
                "ls /etc/added /bin/busybox.new 2>&1; test -e /bin/ls && echo ls-is-back",
            ],
        );
        next.expect_success();
        assert!(
            !next.stdout.contains("/etc/added\n") && next.stdout.contains("ls-is-back"),
            "the next run must start from the image again\n{next}"
        );
        assert_eq!(hashes(&blobs), before, "the image's blobs changed");
    }

    /// `--rm` removes the container's directory; without it, it stays.
    #[test]
    fn rm_removes_the_writable_layer() {
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        images
            .run(
                &["--rm"],
                &[
                    "busybox",
                    "sh",
                    "-c",
                    "mkdir -p /a/b && chown 7:7 /a/b && touch /a/b/c",
                ],
            )
            .expect_success();
        assert_eq!(
            images.containers(),
            Vec::<String>::new(),
            "--rm left the writable layer"
        );
        images
            .run(&[], &["busybox", "touch", "/kept"])
            .expect_success();
        let kept = images.containers();
        assert_eq!(
            kept.len(),
            1,
            "without --rm the writable layer stays: {kept:?}"
        );
        let upper = images
            .path()
            .join("containers")
            .join(&kept[0])
            .join("upper/kept");
        assert!(
            upper.exists(),
            "the file the container made is in its upper directory"
        );
    }

    fn hashes(dir: &Path) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = std::fs::read_dir(dir)
            .expect("the blobs")
            .flatten()
            .map(|e| {
                let bytes = std::fs::read(e.path()).expect("a blob");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    oci::digest(&bytes),
                )
            })
            .collect();
        all.sort();
        all
    }
}

/// Layers stacked: whiteouts, opaque directories, shared layers.
mod layers {
    use super::*;

    /// A file deleted in an upper layer (`.wh.NAME`) is absent in the container.
    pub(super) fn a_whiteout_hides_the_file_below(driver: &str) {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        let _leaks = LeakCheck::start();
        let lower = oci::layer(&[
            Entry::Dir("a"),
            Entry::File("a/keep", "k"),
            Entry::File("a/gone", "g"),
        ]);
        let upper = oci::layer(&[Entry::Dir("a"), Entry::File("a/.wh.gone", "")]);
        images.import("test/whiteout", &[base, lower, upper], json!({}));
        let out = images.run(
            &["--rm", "--storage-driver", driver],
            &["test/whiteout", "ls", "-a", "/a"],
        );
        out.expect_success();
        assert_eq!(out.lines(), [".", "..", "keep"], "{out}");
    }

    /// An opaque directory (`.wh..wh..opq`) hides everything below it.
    pub(super) fn an_opaque_directory_hides_the_lower_contents(driver: &str) {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        let _leaks = LeakCheck::start();
        let lower = oci::layer(&[Entry::Dir("d"), Entry::File("d/old", "o")]);
        let upper = oci::layer(&[
            Entry::Dir("d"),
            Entry::File("d/.wh..wh..opq", ""),
            Entry::File("d/new", "n"),
        ]);
        images.import("test/opaque", &[base, lower, upper], json!({}));
        let out = images.run(
            &["--rm", "--storage-driver", driver],
            &["test/opaque", "ls", "/d"],
        );
        out.expect_success();
        assert_eq!(out.lines(), ["new"], "{out}");
    }

    #[test]
    fn an_opaque_directory_hides_the_lower_contents_in_a_copy() {
        an_opaque_directory_hides_the_lower_contents("copy");
    }

    /// Two images on one base layer: it is stored, and unpacked, once.
    #[test]
    fn a_shared_base_layer_is_stored_once() {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        let _leaks = LeakCheck::start();
        let one = oci::layer(&[Entry::File("one", "1")]);
        let two = oci::layer(&[Entry::File("two", "2")]);
        images.import("test/one", &[base.clone(), one], json!({}));
        images.import("test/two", &[base, two], json!({}));
        images
            .run(&["--rm"], &["test/one", "cat", "/one"])
            .expect_success();
        images
            .run(&["--rm"], &["test/two", "cat", "/two"])
            .expect_success();
        let layers = images.layers();
        assert_eq!(layers.len(), 3, "base, one and two: {layers:?}");
    }

    /// `rmi` of an image a container runs: the name goes, the layers stay while the
    /// container uses them (its lease), and the container goes on reading them.
    #[test]
    fn rmi_never_takes_the_layers_of_a_running_container() {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        let _leaks = LeakCheck::start();
        let mine = oci::layer(&[Entry::File("mine", "still here\n")]);
        images.import("test/running", &[base, mine], json!({}));
        let mut running = images
            .stage
            .run()
            .arg("--rm")
            .cmd([
                "test/running",
                "sh",
                "-c",
                "echo ready; read line; cat /mine",
            ])
            .spawn_ready();
        let layers = images.layers();
        let removed = images.command(&["rmi", "test/running"]);
        removed.expect_success();
        assert_eq!(
            images.layers(),
            layers,
            "rmi removed a layer a container runs on\n{removed}"
        );
        running.write_stdin(b"\n");
        let out = running.wait();
        out.expect_success();
        assert_eq!(out.stdout, "ready\nstill here\n", "{out}");
    }

    /// `rmi` drops the image and the layers no other image uses.
    #[test]
    fn rmi_removes_what_no_image_uses() {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        let _leaks = LeakCheck::start();
        let one = oci::layer(&[Entry::File("one", "1")]);
        let two = oci::layer(&[Entry::File("two", "2")]);
        images.import("test/one", &[base.clone(), one], json!({}));
        images.import("test/two", &[base, two], json!({}));
        images
            .run(&["--rm"], &["test/one", "true"])
            .expect_success();
        images
            .run(&["--rm"], &["test/two", "true"])
            .expect_success();
        let out = images.command(&["rmi", "test/one"]);
        out.expect_success();
        assert_eq!(
            images.layers().len(),
            2,
            "the shared base stays with test/two"
        );
        images
            .run(&["--rm"], &["test/two", "cat", "/two"])
            .expect_success();
        let listed = images.command(&["images"]);
        assert!(!listed.stdout.contains("test/one"), "{listed}");
    }
}

/// `import` of what `docker save` and `skopeo copy` write.
mod import {
    use super::*;

    /// skopeo writes the archives.
    fn skopeo() -> Result<(), Skip> {
        match std::process::Command::new("skopeo")
            .arg("--version")
            .output()
        {
            Ok(out) if out.status.success() => Ok(()),
            _ => Err(Skip(
                "skopeo is not installed (apt-get install skopeo)".into(),
            )),
        }
    }

    /// A docker archive and an oci-archive, written by skopeo from a layout: each is
    /// imported under its name and runs.
    #[test]
    fn archives_of_skopeo_are_imported() {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        need!(skopeo());
        let _leaks = LeakCheck::start();
        let layout = tempfile::tempdir().expect("a layout");
        let mark = oci::layer(&[Entry::File("archived", "from an archive\n")]);
        oci::write_layout(layout.path(), &[base, mark], json!({}));
        let files = users::dir_owned_by(images.owner.0, images.owner.1, 0o755);
        for (kind, file, name) in [
            ("docker-archive", "docker.tar", "test/from-docker:1"),
            ("oci-archive", "oci.tar", "test/from-oci:1"),
        ] {
            let path = files.path().join(file);
            let target = format!("{kind}:{}:{name}", path.display());
            let out = std::process::Command::new("skopeo")
                .args(["copy", "--quiet"])
                .arg(format!("oci:{}", layout.path().display()))
                .arg(&target)
                .output()
                .expect("skopeo");
            assert!(
                out.status.success(),
                "skopeo copy to {target}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::os::unix::fs::chown(&path, Some(images.owner.0), Some(images.owner.1))
                .expect("chown");
            let imported = images.command(&["import", path.to_str().expect("UTF-8"), name]);
            imported.expect_success();
            let out = images.run(&["--rm"], &[name, "cat", "/archived"]);
            out.expect_success();
            assert_eq!(out.stdout, "from an archive\n", "{kind}: {out}");
        }
    }
}

/// `pull` from a real registry on loopback, and `run` of what was pulled.
mod pull {
    use super::*;
    use keel_graders::registry::Registry;

    /// A registry holding `test/busybox:latest`: busybox, and a file of its own.
    fn registry_with_busybox(password: bool) -> Result<(Registry, String), Skip> {
        let registry = Registry::start(password)?;
        let base = busybox_layer()?;
        let mark = oci::layer(&[Entry::File("pulled", "from the registry\n")]);
        let layout = tempfile::tempdir().expect("a layout directory");
        oci::write_layout(
            layout.path(),
            &[base, mark],
            json!({"Cmd": ["cat", "/pulled"]}),
        );
        registry.push(layout.path(), "test/busybox:latest");
        let name = format!("{}/test/busybox:latest", registry.address);
        Ok((registry, name))
    }

    fn pull_then_run(images: &Images) {
        let (_registry, name) = need!(registry_with_busybox(false));
        let _leaks = LeakCheck::start();
        let pulled = images.command(&["pull", &name]);
        pulled.expect_success();
        assert!(
            pulled.stdout.starts_with(&format!("{name} sha256:")),
            "{pulled}"
        );
        let out = images.run(&["--rm"], &[&name, "echo", "hi"]);
        out.expect_success();
        assert_eq!(out.stdout, "hi\n", "{out}");
        let default = images.run(&["--rm"], &[&name]);
        default.expect_success();
        assert_eq!(
            default.stdout, "from the registry\n",
            "the image's Cmd\n{default}"
        );
    }

    #[test]
    fn pull_then_run_rootless() {
        pull_then_run(&need!(Images::rootless()));
    }

    #[test]
    fn pull_then_run_as_root() {
        pull_then_run(&need!(Images::root()));
    }

    /// What the store has is not downloaded again.
    #[test]
    fn a_second_pull_downloads_nothing() {
        let images = need!(Images::rootless());
        let (_registry, name) = need!(registry_with_busybox(false));
        let _leaks = LeakCheck::start();
        let first = images.command(&["pull", &name]);
        first.expect_success();
        assert!(first.stderr.contains("downloading"), "{first}");
        let second = images.command(&["pull", &name]);
        second.expect_success();
        assert!(
            !second.stderr.contains("downloading") && second.stderr.contains("already exists"),
            "the second pull should find every layer in the store\n{second}"
        );
    }

    /// `run` of an image the store lacks pulls it, as `docker run` does.
    #[test]
    fn run_pulls_a_missing_image() {
        let images = need!(Images::rootless());
        let (_registry, name) = need!(registry_with_busybox(false));
        let _leaks = LeakCheck::start();
        let out = images.run(&["--rm"], &[&name, "cat", "/pulled"]);
        out.expect_success();
        assert_eq!(out.stdout, "from the registry\n", "{out}");
        assert!(out.stderr.contains("pulling it"), "{out}");
    }

    /// A registry that asks for a password: refused without one, pulled with the
    /// credentials of `--authfile` (docker's config.json).
    #[test]
    fn credentials_come_from_an_authfile() {
        let images = need!(Images::rootless());
        let (_registry, name) = need!(registry_with_busybox(true));
        let _leaks = LeakCheck::start();
        let refused = images.command(&["pull", &name]);
        refused.expect_code(125);
        assert!(refused.stderr.contains("authentication"), "{refused}");
        let host = name.split('/').next().expect("a host");
        let auth = users::dir_owned_by(images.owner.0, images.owner.1, 0o700);
        let file = auth.path().join("auth.json");
        let json = json!({"auths": {host: {"username": "alice", "password": "s3cret"}}});
        std::fs::write(&file, json.to_string()).expect("auth.json");
        nix::unistd::chown(
            &file,
            Some(nix::unistd::Uid::from_raw(images.owner.0)),
            Some(nix::unistd::Gid::from_raw(images.owner.1)),
        )
        .expect("chown auth.json");
        let pulled = images.command(&["pull", "--authfile", file.to_str().expect("UTF-8"), &name]);
        pulled.expect_success();
    }
}

/// Exercise `whiteout`: a file deleted in an upper layer is gone, on an overlay (a 0:0
/// device that hides it) and in a copy (deleted for real).
mod whiteout {
    #[test]
    fn a_whiteout_hides_the_file_below_on_overlay() {
        super::layers::a_whiteout_hides_the_file_below("overlay");
    }

    #[test]
    fn a_whiteout_hides_the_file_below_in_a_copy() {
        super::layers::a_whiteout_hides_the_file_below("copy");
    }
}

/// Exercise `overlay_options`: the overlay's options stack every layer under the
/// container's upper directory.
mod overlay_options {
    use super::*;

    #[test]
    fn an_opaque_directory_hides_the_lower_contents_on_overlay() {
        super::layers::an_opaque_directory_hides_the_lower_contents("overlay");
    }

    /// Twenty layers: more than one `lowerdir` value of fsconfig(2) (256 bytes) can
    /// name; each file of each layer is there.
    #[test]
    fn twenty_layers_stack() {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        let _leaks = LeakCheck::start();
        let names: Vec<String> = (1..20).map(|n| format!("layer-{n:02}")).collect();
        let mut layers = vec![base];
        layers.extend(
            names
                .iter()
                .map(|name| oci::layer(&[Entry::File(name, name)])),
        );
        images.import("test/tall", &layers, json!({}));
        let out = images.run(
            &["--rm", "--storage-driver", "overlay"],
            &["test/tall", "sh", "-c", "ls / | grep layer-"],
        );
        out.expect_success();
        assert_eq!(out.lines(), names, "{out}");
    }

    /// The container's root is an overlay, and what it writes lands in its upper
    /// directory, not in the image's layers.
    #[test]
    fn changes_land_in_the_upper_directory() {
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        let out = images.run(
            &["--storage-driver", "overlay"],
            &[
                "busybox",
                "sh",
                "-c",
                "touch /kept; grep ' / / ' /proc/self/mountinfo",
            ],
        );
        out.expect_success();
        assert!(
            out.stdout.contains(" - overlay overlay "),
            "/ should be an overlay\n{out}"
        );
        let kept = images.containers();
        assert_eq!(kept.len(), 1, "{kept:?}");
        let upper = images
            .path()
            .join("containers")
            .join(&kept[0])
            .join("upper/kept");
        assert!(
            upper.exists(),
            "the file the container made is in its upper directory"
        );
    }
}

/// `--storage-driver fuse-overlayfs`, and `auto` where the kernel cannot mount overlay
/// in a user namespace: the overlay in user space. The container mounts `/dev/fuse`
/// itself; fuse-overlayfs serves it from outside the container's PID and mount
/// namespaces, started and stopped by the runtime.
mod fuse_overlayfs {
    use super::*;
    use keel_graders::net;
    use keel_graders::running::{host_pids, wait_for_exit};
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;
    use std::time::Duration;

    const FUSE: [&str; 2] = ["--storage-driver", "fuse-overlayfs"];

    /// fuse-overlayfs installed, and `/dev/fuse` usable by users (as udev makes it).
    fn usable() -> Result<(), Skip> {
        net::installed("fuse-overlayfs", "fuse-overlayfs")?;
        net::usable_by_users(Path::new("/dev/fuse"), "this kernel has no FUSE")
    }

    /// The busybox base, and a layer with `/hello` (container root's) and `/secret`
    /// (uid 100's, mode 0600: container root reads it only through its capabilities
    /// over the container's ids, which fuse-overlayfs then needs too).
    fn image(images: &Images) -> Result<(), Skip> {
        let base = busybox_layer()?;
        let mut tar = tar::Builder::new(Vec::new());
        for (name, text, uid, mode) in [
            ("hello", "from the image\n", 0, 0o644),
            ("secret", "of user 100\n", 100, 0o600),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_uid(uid);
            header.set_gid(uid);
            header.set_mode(mode);
            header.set_size(text.len() as u64);
            tar.append_data(&mut header, name, text.as_bytes())
                .expect("a file");
        }
        let top = tar.into_inner().expect("tar");
        images.import("test/fuse", &[base, top], json!({}));
        Ok(())
    }

    /// Every file under `dir`, with its type, mode, owner and contents' digest: what
    /// a write that went into a layer would change.
    fn snapshot(dir: &Path) -> Vec<String> {
        let mut all = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(path) = pending.pop() {
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            let contents = if meta.is_file() {
                oci::digest(&std::fs::read(&path).expect("a layer's file"))
            } else if meta.is_dir() {
                for entry in std::fs::read_dir(&path).expect("a layer's directory") {
                    pending.push(entry.expect("an entry").path());
                }
                String::new()
            } else {
                String::new()
            };
            use std::os::unix::fs::MetadataExt;
            all.push(format!(
                "{} {:o} {}:{} {contents}",
                path.display(),
                meta.mode(),
                meta.uid(),
                meta.gid()
            ));
        }
        all.sort();
        all
    }

    /// fuse-overlayfs processes serving the store of `images`.
    fn daemons(images: &Images) -> Vec<(i32, String)> {
        net::processes_mentioning(&images.path().to_string_lossy())
            .into_iter()
            .filter(|(_, cmdline)| cmdline.contains("fuse-overlayfs"))
            .collect()
    }

    /// Mounts of the store's directories, in the mount table of any process: the
    /// container's root stays as long as some mount namespace holds it.
    fn mounts(images: &Images) -> Vec<String> {
        let store = images.path().to_string_lossy().into_owned();
        host_pids()
            .into_iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok())
            .flat_map(|table| {
                table
                    .lines()
                    .filter(|line| line.contains(&store))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// No fuse-overlayfs and no mount of the store is left.
    fn assert_nothing_left(images: &Images) {
        let left = daemons(images);
        assert!(left.is_empty(), "fuse-overlayfs outlived the run: {left:?}");
        let mounted = mounts(images);
        assert!(
            mounted.is_empty(),
            "mounts of the store are left: {mounted:#?}"
        );
    }

    fn serves_the_image(images: &Images) {
        need!(usable());
        need!(image(images));
        let _leaks = LeakCheck::start();
        images.run(&FUSE, &["test/fuse", "true"]).expect_success();
        let layers = images.path().join("layers");
        let before = snapshot(&layers);
        let out = images.run(
            &FUSE,
            &[
                "test/fuse",
                "sh",
                "-c",
                "grep ' / / ' /proc/self/mountinfo; cat /hello /secret; \
                 echo changed > /hello; echo new > /added; busybox rm /bin/ls; \
                 busybox touch /owned; busybox chown 7:7 /owned",
            ],
        );
        out.expect_success();
        let lines = out.lines();
        assert!(
            lines
                .first()
                .is_some_and(|l| l.contains(" - fuse.fuse-overlayfs ")),
            "/ should be a fuse-overlayfs mount\n{out}"
        );
        assert_eq!(
            lines.get(1..3),
            Some(&["from the image", "of user 100"][..]),
            "the image's files, container root reading those of another of its users\n{out}"
        );
        assert_eq!(
            snapshot(&layers),
            before,
            "the container wrote into the image's layers"
        );
        let kept = images.containers();
        assert_eq!(kept.len(), 2, "a writable layer per run: {kept:?}");
        let written: Vec<PathBuf> = kept
            .iter()
            .map(|id| images.path().join("containers").join(id).join("upper"))
            .filter(|upper| upper.join("added").exists())
            .collect();
        let [upper] = &written[..] else {
            panic!("the second run's upper directory should hold /added: {written:?}")
        };
        assert_eq!(
            std::fs::read_to_string(upper.join("hello")).expect("hello, copied up"),
            "changed\n"
        );
        use std::os::unix::fs::FileTypeExt;
        use std::os::unix::fs::MetadataExt;
        let device = std::fs::symlink_metadata(upper.join("bin/ls"))
            .is_ok_and(|ls| ls.file_type().is_char_device() && ls.rdev() == 0);
        assert!(
            device || upper.join("bin/.wh.ls").exists(),
            "the upper directory should hold a whiteout of bin/ls (a 0:0 device or .wh.ls)"
        );
        let owned = std::fs::metadata(upper.join("owned")).expect("owned");
        assert_eq!(
            owned.uid(),
            images.host_uid(7),
            "a file given to uid 7 in the container belongs to its host id"
        );
        let next = images.run(
            &["--rm", FUSE[0], FUSE[1]],
            &["test/fuse", "sh", "-c", "cat /hello; ls /bin/ls"],
        );
        next.expect_success();
        assert_eq!(
            next.lines(),
            ["from the image", "/bin/ls"],
            "the next run starts from the image\n{next}"
        );
        assert_nothing_left(images);
    }

    /// The container sees the image's files; its writes land in its upper directory
    /// with the owners it gave them, never in the image's layers; nothing is left.
    #[test]
    fn serves_the_image_rootless() {
        serves_the_image(&need!(Images::rootless()));
    }

    #[test]
    fn serves_the_image_as_root() {
        serves_the_image(&need!(Images::root()));
    }

    #[test]
    fn a_whiteout_hides_the_file_below() {
        need!(usable());
        super::layers::a_whiteout_hides_the_file_below("fuse-overlayfs");
    }

    #[test]
    fn an_opaque_directory_hides_the_lower_contents() {
        need!(usable());
        super::layers::an_opaque_directory_hides_the_lower_contents("fuse-overlayfs");
    }

    /// While the container runs, its fuse-overlayfs is a process of the host's PID and
    /// mount namespaces, which the container's `ps` does not show.
    #[test]
    fn the_daemon_runs_outside_the_container() {
        need!(usable());
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        let mut running = images
            .stage
            .run()
            .args(FUSE)
            .cmd([
                "busybox",
                "sh",
                "-c",
                "ps -o comm | grep -c fuse; echo ready; read line; exit 0",
            ])
            .spawn();
        assert_eq!(
            running.read_line(),
            "0",
            "the container's ps shows fuse-overlayfs"
        );
        assert_eq!(running.read_line(), "ready");
        let serving = daemons(&images);
        assert_eq!(serving.len(), 1, "one fuse-overlayfs: {serving:?}");
        let daemon = PathBuf::from(format!("/proc/{}", serving[0].0));
        let container = PathBuf::from(format!("/proc/{}", running.container_pid()));
        for ns in ["pid", "mnt"] {
            let inode = |dir: &Path| std::fs::read_link(dir.join("ns").join(ns)).ok();
            assert_eq!(
                inode(&daemon),
                inode(Path::new("/proc/self")),
                "fuse-overlayfs should be in the host's {ns} namespace"
            );
            assert_ne!(inode(&daemon), inode(&container), "{ns}");
        }
        running.close_stdin();
        running.wait().expect_success();
        assert_nothing_left(&images);
    }

    /// SIGKILL of the container's first process: the runtime still stops the daemon.
    #[test]
    fn nothing_is_left_after_sigkill_of_the_container() {
        need!(usable());
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        let running = images
            .stage
            .run()
            .args(FUSE)
            .cmd(["busybox", "sh", "-c", "echo ready; read line"])
            .spawn_ready();
        assert_eq!(
            daemons(&images).len(),
            1,
            "fuse-overlayfs should serve the run"
        );
        nix::sys::signal::kill(running.container_pid(), Signal::SIGKILL).expect("kill");
        running.wait().expect_code(128 + Signal::SIGKILL as i32);
        assert_nothing_left(&images);
    }

    /// SIGKILL of the runtime, which cleans nothing up: the daemon dies of its
    /// parent-death signal, and the mount with the container.
    #[test]
    fn nothing_is_left_after_sigkill_of_the_runtime() {
        need!(usable());
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        let running = images
            .stage
            .run()
            .args(FUSE)
            .cmd(["busybox", "sh", "-c", "echo ready; read line"])
            .spawn_ready();
        let serving = daemons(&images);
        assert_eq!(serving.len(), 1, "fuse-overlayfs should serve the run");
        running.signal(Signal::SIGKILL);
        let _ = running.wait();
        assert!(
            wait_for_exit(Pid::from_raw(serving[0].0), Duration::from_secs(10)),
            "fuse-overlayfs outlived the runtime"
        );
        assert_nothing_left(&images);
    }

    /// A command that is not there: the run fails after the mount was made.
    #[test]
    fn nothing_is_left_after_a_failed_start() {
        need!(usable());
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        let out = images.run(&FUSE, &["busybox", "no-such-command"]);
        out.expect_code(127);
        assert_eq!(images.containers(), Vec::<String>::new(), "{out}");
        assert_nothing_left(&images);
    }

    /// The store remembers, per kernel, whether overlay mounts in a user namespace
    /// (this kernel's does): told that it does not, `auto` picks fuse-overlayfs and
    /// `--explain` says why.
    #[test]
    fn auto_picks_it_where_the_kernel_refuses_overlay() {
        need!(usable());
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        images.command(&["images"]).expect_success();
        let kernel = nix::sys::utsname::uname().expect("uname");
        let memory = images.path().join("overlay-probe");
        std::fs::write(
            &memory,
            format!(
                "{} user EPERM: refused in a user namespace\n",
                kernel.release().to_string_lossy()
            ),
        )
        .expect("overlay-probe");
        let out = images.run(
            &["--rm", "--explain"],
            &["busybox", "grep", " / / ", "/proc/self/mountinfo"],
        );
        out.expect_success();
        assert!(
            out.stdout.contains(" - fuse.fuse-overlayfs "),
            "/ should be a fuse-overlayfs mount\n{out}"
        );
        assert!(
            out.stderr
                .contains("storage driver: fuse-overlayfs: no kernel overlay (")
                && out.stderr.contains("refused in a user namespace"),
            "--explain should name the driver and why\n{out}"
        );
        assert_nothing_left(&images);
    }

    /// `doctor` names fuse-overlayfs as usable, and the driver `auto` picks.
    #[test]
    fn doctor_says_which_driver_and_why() {
        need!(usable());
        let images = need!(Images::rootless());
        let out = images.command(&["doctor"]);
        let line = |name: &str| {
            out.lines()
                .into_iter()
                .find(|line| line.split_whitespace().nth(1) == Some(name))
                .map(str::to_owned)
        };
        let fuse = line("fuse-overlayfs:").unwrap_or_default();
        assert!(
            fuse.trim_start().starts_with("ok") && fuse.contains("/dev/fuse usable"),
            "{out}"
        );
        let kernel = line("overlay:").unwrap_or_default();
        let expected = if kernel.trim_start().starts_with("ok") {
            "storage driver: overlay: this kernel mounts overlay"
        } else {
            "storage driver: fuse-overlayfs: no kernel overlay"
        };
        let driver = line("storage").unwrap_or_default();
        assert!(driver.contains(expected), "expected {expected:?}\n{out}");
    }
}

/// Exercise `verify_digest`: a blob is checked against its digest while it is read.
mod verify_digest {
    use super::*;

    /// The largest blob of the layout at `dir`: its layer.
    fn largest_blob(dir: &Path) -> PathBuf {
        let blobs = dir.join("blobs/sha256");
        names(&blobs)
            .into_iter()
            .map(|name| blobs.join(name))
            .max_by_key(|path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
            .expect("a layer blob")
    }

    /// A layer blob whose bytes are not those its digest names: `import` refuses it.
    #[test]
    fn a_tampered_layer_is_refused() {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        let _leaks = LeakCheck::start();
        let layout = users::dir_owned_by(images.owner.0, images.owner.1, 0o755);
        oci::write_layout(layout.path(), &[base], json!({}));
        // Flip one byte of the layer, keep its name.
        let layer = largest_blob(layout.path());
        let mut bytes = std::fs::read(&layer).expect("the layer");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&layer, bytes).expect("the tampered layer");
        let out = images.command(&[
            "import",
            layout.path().to_str().expect("UTF-8"),
            "test/tampered",
        ]);
        out.expect_code(125);
        assert!(out.stderr.contains("tampered"), "{out}");
        let listed = images.command(&["images"]);
        assert!(
            !listed.stdout.contains("test/tampered"),
            "a tampered image was named\n{listed}"
        );
    }

    /// A blob cut short: refused too, by its size.
    #[test]
    fn a_truncated_layer_is_refused() {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        let _leaks = LeakCheck::start();
        let layout = users::dir_owned_by(images.owner.0, images.owner.1, 0o755);
        oci::write_layout(layout.path(), &[base], json!({}));
        let layer = largest_blob(layout.path());
        let bytes = std::fs::read(&layer).expect("the layer");
        std::fs::write(&layer, &bytes[..bytes.len() / 2]).expect("the truncated layer");
        let out = images.command(&[
            "import",
            layout.path().to_str().expect("UTF-8"),
            "test/truncated",
        ]);
        out.expect_code(125);
        assert!(out.stderr.contains("truncated"), "{out}");
    }
}

/// The image's config: what docker does with it.
mod config {
    use super::*;

    fn image(images: &Images) -> Result<(), Skip> {
        let base = busybox_layer()?;
        let work = oci::layer(&[Entry::Dir("work")]);
        images.import(
            "test/config",
            &[base, work],
            json!({
                "Entrypoint": ["/bin/sh", "-c", "echo \"$GREETING from $PWD:\" \"$@\"", "sh"],
                "Cmd": ["the", "image's", "cmd"],
                "Env": ["GREETING=hello", "PATH=/bin"],
                "WorkingDir": "/work",
            }),
        );
        Ok(())
    }

    #[test]
    fn entrypoint_cmd_env_and_workdir_are_honoured() {
        let images = need!(Images::rootless());
        need!(image(&images));
        let _leaks = LeakCheck::start();
        let out = images.run(&["--rm"], &["test/config"]);
        out.expect_success();
        assert_eq!(out.stdout, "hello from /work: the image's cmd\n", "{out}");
        let given = images.run(&["--rm"], &["test/config", "my", "args"]);
        given.expect_success();
        assert_eq!(given.stdout, "hello from /work: my args\n", "{given}");
    }

    #[test]
    fn options_override_the_config() {
        let images = need!(Images::rootless());
        need!(image(&images));
        let _leaks = LeakCheck::start();
        let out = images.run(
            &["--rm", "-e", "GREETING=bye", "-w", "/tmp"],
            &["test/config", "x"],
        );
        out.expect_success();
        assert_eq!(out.stdout, "bye from /tmp: x\n", "{out}");
        let entry = images.run(
            &["--rm", "--entrypoint", "/bin/echo"],
            &["test/config", "plain"],
        );
        entry.expect_success();
        assert_eq!(entry.stdout, "plain\n", "{entry}");
    }
}

/// `-u` and the image's `User`: names looked up in the image's own files.
mod user {
    use super::*;

    #[test]
    fn u_runs_the_command_as_a_user_of_the_image() {
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        let out = images.run(
            &["--rm", "-u", "nobody"],
            &["busybox", "sh", "-c", "id -u; id -g"],
        );
        out.expect_success();
        assert_eq!(out.lines(), ["65534", "65534"], "{out}");
        let numeric = images.run(
            &["--rm", "-u", "1234:5"],
            &["busybox", "sh", "-c", "id -u; id -g"],
        );
        numeric.expect_success();
        assert_eq!(numeric.lines(), ["1234", "5"], "{numeric}");
    }

    #[test]
    fn the_images_user_is_honoured_and_u_overrides_it() {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        let _leaks = LeakCheck::start();
        let etc = oci::layer(&[
            Entry::Dir("etc"),
            Entry::File(
                "etc/passwd",
                "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            ),
            Entry::File("etc/group", "root:x:0:\napp:x:1000:\nextra:x:2000:app\n"),
        ]);
        images.import("test/user", &[base, etc], json!({"User": "app"}));
        let out = images.run(&["--rm"], &["test/user", "sh", "-c", "id -u; id -g"]);
        out.expect_success();
        assert_eq!(out.lines(), ["1000", "1000"], "{out}");
        let root = images.run(&["--rm", "-u", "root"], &["test/user", "id", "-u"]);
        root.expect_success();
        assert_eq!(root.stdout, "0\n", "{root}");
    }

    /// The image's `etc` is a symlink to the host's `/etc`: `-u daemon` (a user of the
    /// host's /etc/passwd, not of the image) must not be found through it.
    #[test]
    fn users_are_not_looked_up_through_a_symlink_to_the_hosts_etc() {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        let _leaks = LeakCheck::start();
        let link = oci::layer(&[Entry::Symlink("etc", "/etc")]);
        images.import("test/etc-link", &[base, link], json!({}));
        let out = images.run(&["--rm", "-u", "daemon"], &["test/etc-link", "true"]);
        out.expect_code(125);
        assert!(
            out.stderr
                .contains("no user \"daemon\" in the image's /etc/passwd"),
            "the host's /etc/passwd was read through the image's symlink\n{out}"
        );
    }

    /// An unknown user: refused before anything starts, and no container is left.
    #[test]
    fn an_unknown_user_is_refused() {
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        images.run(&["--rm"], &["busybox", "true"]).expect_success();
        let out = images.run(&["-u", "ghost"], &["busybox", "true"]);
        out.expect_code(125);
        assert!(out.stderr.contains("ghost"), "{out}");
        assert_eq!(
            images.containers(),
            Vec::<String>::new(),
            "a refused run left its container"
        );
    }
}

/// Layers crafted to write outside the layer: refused, with the entry named, and
/// nothing written anywhere else.
mod hostile_layers {
    use super::*;

    /// Imports `layer` (over busybox), runs it, and expects exit 125 with `expected` in
    /// the error, and the sentinel directory next to the store untouched.
    fn refused(layer: Vec<u8>, expected: &str) {
        refused_layers(vec![layer], expected);
    }

    /// [`refused`], with several layers over busybox.
    fn refused_layers(layers: Vec<Vec<u8>>, expected: &str) {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        let _leaks = LeakCheck::start();
        let sentinel = images.store.path().join("sentinel");
        std::fs::create_dir(&sentinel).expect("the sentinel");
        let all: Vec<Vec<u8>> = std::iter::once(base).chain(layers).collect();
        images.import("test/hostile", &all, json!({}));
        let out = images.run(&["--rm"], &["test/hostile", "true"]);
        out.expect_code(125);
        assert!(
            out.stderr.contains(expected),
            "the error should name {expected:?}\n{out}"
        );
        assert_eq!(
            names(&sentinel),
            Vec::<String>::new(),
            "something was written outside the store"
        );
        assert!(!images.store.path().join("x").exists());
    }

    /// The symlink in one layer, the file through it in the next.
    #[test]
    fn a_file_through_a_symlink_of_a_lower_layer_is_refused() {
        let link = oci::layer(&[Entry::Symlink("link", "/tmp")]);
        let file = oci::layer(&[Entry::RawFile("link/x", "through the link")]);
        refused_layers(vec![link, file], "link/x");
    }

    #[test]
    fn a_whiteout_of_dot_dot_is_refused() {
        refused(oci::layer(&[Entry::RawFile(".wh..", "")]), ".wh..");
    }

    /// A leading `/` is dropped, as docker does: the file lands in the layer.
    #[test]
    fn an_absolute_name_lands_inside_the_layer() {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        let _leaks = LeakCheck::start();
        let layer = oci::layer(&[Entry::RawFile("/keel-absolute-name", "inside\n")]);
        images.import("test/absolute", &[base, layer], json!({}));
        let out = images.run(&["--rm"], &["test/absolute", "cat", "/keel-absolute-name"]);
        out.expect_success();
        assert_eq!(out.stdout, "inside\n", "{out}");
        assert!(
            !Path::new("/keel-absolute-name").exists(),
            "written at the host's /"
        );
    }

    /// A gzip stream cut short, whose blob digest is that of the cut bytes: the blob
    /// is what it claims, the layer is not; unpacking says so, and keeps nothing.
    #[test]
    fn a_truncated_gzip_stream_is_refused() {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        let _leaks = LeakCheck::start();
        let gzipped = oci::gzip(&base);
        let cut = gzipped[..gzipped.len() / 2].to_vec();
        let layout = users::dir_owned_by(images.owner.0, images.owner.1, 0o755);
        oci::write_layout_of_blobs(layout.path(), &[(cut, oci::digest(&base))], json!({}));
        let path = layout.path().to_str().expect("UTF-8");
        images
            .command(&["import", path, "test/truncated"])
            .expect_success();
        let out = images.run(&["--rm"], &["test/truncated", "true"]);
        out.expect_code(125);
        assert!(
            out.stderr.contains("truncated") || out.stderr.contains("corrupt"),
            "{out}"
        );
        assert_eq!(
            images
                .layers()
                .iter()
                .filter(|l| !l.starts_with('.'))
                .count(),
            0,
            "a partial layer was kept"
        );
    }

    /// A manifest that names a blob the layout lacks: `import` refuses it.
    #[test]
    fn a_manifest_naming_a_missing_blob_is_refused() {
        let images = need!(Images::rootless());
        let base = need!(busybox_layer());
        let _leaks = LeakCheck::start();
        let layout = users::dir_owned_by(images.owner.0, images.owner.1, 0o755);
        oci::write_layout(layout.path(), std::slice::from_ref(&base), json!({}));
        let gone = oci::digest(&oci::gzip(&base));
        let blob = layout
            .path()
            .join("blobs/sha256")
            .join(gone.trim_start_matches("sha256:"));
        std::fs::remove_file(&blob).expect("remove the layer blob");
        let out = images.command(&[
            "import",
            layout.path().to_str().expect("UTF-8"),
            "test/missing",
        ]);
        out.expect_code(125);
        assert!(
            out.stderr.contains(&gone[7..19]),
            "the error should name the blob\n{out}"
        );
    }

    #[test]
    fn dot_dot_in_a_name_is_refused() {
        refused(
            oci::layer(&[Entry::RawFile("../../x", "escaped")]),
            "../../x",
        );
    }

    #[test]
    fn a_file_through_a_symlink_is_refused() {
        let layer = oci::layer(&[
            Entry::Symlink("link", "/tmp"),
            Entry::RawFile("link/x", "through the link"),
        ]);
        refused(layer, "link/x");
    }

    #[test]
    fn a_hardlink_to_a_host_file_is_refused() {
        let before =
            std::fs::metadata("/etc/shadow").map(|m| std::os::unix::fs::MetadataExt::nlink(&m));
        refused(
            oci::layer(&[Entry::Hardlink("shadow", "/etc/shadow")]),
            "shadow",
        );
        let after =
            std::fs::metadata("/etc/shadow").map(|m| std::os::unix::fs::MetadataExt::nlink(&m));
        assert_eq!(before.ok(), after.ok(), "/etc/shadow gained a link");
    }

    #[test]
    fn a_whiteout_that_climbs_out_is_refused() {
        refused(oci::layer(&[Entry::RawFile("../.wh.x", "")]), ".wh.x");
    }
}

/// Wrong input: a clear error, exit 125.
mod bad_input {
    use super::*;

    #[test]
    fn an_unknown_image_says_how_to_get_it() {
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        // On loopback, where nothing listens: `run` tries to pull it, and says so.
        let out = images.run(&[], &["127.0.0.1:1/test/nothing-here", "true"]);
        out.expect_code(125);
        assert!(
            out.stderr.contains("127.0.0.1:1/test/nothing-here:latest")
                && out.stderr.contains("pull it first"),
            "{out}"
        );
        assert_eq!(
            images.containers(),
            Vec::<String>::new(),
            "a run that never started left a container"
        );
    }

    /// As root, an image needs container root to be the host's root: with
    /// `--userns=auto` it could not reach the store. Refused before anything is made;
    /// a `--uidmap` that keeps root as root runs (the control).
    #[test]
    fn an_image_under_userns_auto_is_refused_with_the_fix() {
        let images = need!(Images::root());
        let _leaks = LeakCheck::start();
        let out = images.run(&["--userns=auto"], &["busybox", "true"]);
        out.expect_code(125);
        assert!(
            out.stderr.contains("--userns=auto") && out.stderr.contains("rootless"),
            "{out}"
        );
        assert_eq!(
            images.containers(),
            Vec::<String>::new(),
            "it left a container"
        );
        images
            .run(&["--uidmap", "0:0:65536"], &["busybox", "true"])
            .expect_success();
    }

    #[test]
    fn a_bad_reference_is_refused() {
        let images = need!(Images::rootless());
        let _leaks = LeakCheck::start();
        let out = images.run(&[], &["Upper/Case", "true"]);
        out.expect_code(125);
    }

    #[test]
    fn rmi_of_an_unknown_image_exits_125() {
        let images = need!(Images::rootless());
        let out = images.command(&["rmi", "test/nothing-here"]);
        out.expect_code(125);
        assert!(out.stderr.contains("no image"), "{out}");
    }
}
