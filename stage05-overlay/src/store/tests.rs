use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use common::state::Owner;
use serde_json::json;

use super::*;
use crate::digest::Digest;
use crate::reference::Reference;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn reference(text: &str) -> Reference {
    Reference::parse(text).unwrap()
}

/// An owner that is not alive: this process's PID with another start time.
fn dead_owner() -> Owner {
    let me = Owner::current().unwrap();
    Owner {
        pid: me.pid,
        start_time: me.start_time + 12345,
    }
}

/// A layer "unpacked" by writing one file named after it; its diff_id is made up.
fn fake_layer(store: &Store, name: &str) -> Digest {
    let diff_id = Digest::of(name.as_bytes());
    store
        .ensure_layer(&diff_id, |tree| {
            tree.write_file("file", name)?;
            Ok(Digest::of(name.as_bytes()))
        })
        .unwrap();
    diff_id
}

/// An image: a manifest, its config naming `layers` as diff_ids, and one layer blob each.
fn fake_image(store: &Store, tag: &str, layers: &[&str]) -> (Digest, Vec<Digest>) {
    let diff_ids: Vec<Digest> = layers.iter().map(|l| fake_layer(store, l)).collect();
    let config = json!({
        "architecture": "amd64", "os": "linux",
        // A config's own `config` (the runtime settings) is not a link.
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = store.put_bytes(&config).unwrap();
    let mut blobs = Vec::new();
    let mut layer_descriptors = Vec::new();
    for layer in layers {
        let bytes = format!("compressed {layer}");
        let digest = store.put_bytes(bytes.as_bytes()).unwrap();
        layer_descriptors.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest.to_string(), "size": bytes.len(),
        }));
        blobs.push(digest);
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest.to_string(), "size": config.len()},
        "layers": layer_descriptors,
    });
    let digest = store
        .put_bytes(&serde_json::to_vec(&manifest).unwrap())
        .unwrap();
    store.tag(&reference(tag), &digest).unwrap();
    blobs.push(config_digest);
    (digest, blobs)
}

#[test]
fn open_makes_an_oci_layout() {
    let (_dir, store) = store();
    let layout: serde_json::Value =
        serde_json::from_slice(&fs::read(store.root().join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    for dir in ["blobs/sha256", "layers", "in-use", "locks", "tmp"] {
        assert!(store.root().join(dir).is_dir(), "{dir}");
    }
}

#[test]
fn default_root_of_root_is_var_lib_keel() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: not root");
        return;
    }
    assert_eq!(
        Store::default_root().unwrap(),
        Path::new("/var/lib/keel").to_path_buf()
    );
}

#[test]
fn put_blob_stores_verified_read_only_content() {
    let (_dir, store) = store();
    let digest = Digest::of(b"hello");
    assert!(!store.has_blob(&digest));
    let path = store.put_blob(&b"hello"[..], &digest, Some(5)).unwrap();
    assert_eq!(path, store.blob_path(&digest));
    assert!(store.has_blob(&digest));
    assert_eq!(fs::read(&path).unwrap(), b"hello");
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o444
    );
    assert_eq!(store.blob_size(&digest).unwrap(), 5);
    assert!(names(&store.root().join("tmp")).is_empty());
}

#[test]
fn a_digest_mismatch_leaves_no_blob_and_no_temp_file() {
    let (_dir, store) = store();
    let expected = Digest::of(b"what the manifest said");
    let err = store
        .put_blob(&b"something else"[..], &expected, None)
        .unwrap_err();
    assert!(format!("{err:#}").contains("tampered"), "{err:#}");
    assert!(!store.has_blob(&expected));
    assert!(names(&store.root().join("blobs/sha256")).is_empty());
    assert!(names(&store.root().join("tmp")).is_empty());
}

#[test]
fn a_size_mismatch_is_refused_both_ways() {
    let (_dir, store) = store();
    let digest = Digest::of(b"hello");
    let err = store.put_blob(&b"hello"[..], &digest, Some(4)).unwrap_err();
    assert!(
        format!("{err:#}").contains("expected 4 bytes, got 5"),
        "{err:#}"
    );
    let err = store.put_blob(&b"hello"[..], &digest, Some(9)).unwrap_err();
    assert!(
        format!("{err:#}").contains("expected 9 bytes, got 5"),
        "{err:#}"
    );
    assert!(!store.has_blob(&digest));
    assert!(names(&store.root().join("tmp")).is_empty());
}

#[test]
fn read_json_reads_a_blob() {
    let (_dir, store) = store();
    let digest = store.put_bytes(br#"{"a": [1, 2]}"#).unwrap();
    let value: serde_json::Value = store.read_json(&digest).unwrap();
    assert_eq!(value["a"][1], 2);
    let err = store.read_json::<Vec<u8>>(&digest).unwrap_err();
    assert!(
        format!("{err:#}").contains("not the JSON expected"),
        "{err:#}"
    );
}

#[test]
fn writers_of_the_same_blob_at_once_all_succeed() {
    let (dir, _store) = store();
    let root = dir.path().join("store");
    let bytes: Arc<Vec<u8>> = Arc::new((0..1 << 20).map(|i| (i % 251) as u8).collect());
    let digest = Digest::of(&bytes);
    let start = Arc::new(Barrier::new(6));
    let writers: Vec<_> = (0..6)
        .map(|_| {
            let (root, bytes, digest, start) =
                (root.clone(), bytes.clone(), digest.clone(), start.clone());
            std::thread::spawn(move || {
                // Each its own Store, as separate processes would have.
                let store = Store::open(root).unwrap();
                start.wait();
                store.put_blob(&bytes[..], &digest, Some(bytes.len() as u64))
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap().unwrap();
    }
    assert_eq!(
        names(&root.join("blobs/sha256")),
        vec![digest.hex().to_owned()]
    );
    assert_eq!(
        fs::read(root.join("blobs/sha256").join(digest.hex())).unwrap(),
        *bytes
    );
    assert!(names(&root.join("tmp")).is_empty());
}

#[test]
fn what_a_dead_process_left_in_tmp_is_swept_and_a_live_ones_kept() {
    let (dir, store) = store();
    let dead = dead_owner();
    let tmp = store.root().join("tmp");
    fs::write(
        tmp.join(format!("{}-{}-0", dead.pid, dead.start_time)),
        "half a blob",
    )
    .unwrap();
    let tree = tmp.join(format!("{}-{}-1", dead.pid, dead.start_time));
    fs::create_dir_all(tree.join("diff/usr/bin")).unwrap();
    fs::write(tree.join("diff/usr/bin/sh"), "half a layer").unwrap();
    let mine = store.fresh_name();
    fs::write(tmp.join(&mine), "being written").unwrap();
    fs::write(tmp.join("not-ours"), "").unwrap();

    let _reopened = Store::open(dir.path().join("store")).unwrap();
    assert_eq!(names(&tmp), {
        let mut want = vec![mine, "not-ours".to_owned()];
        want.sort();
        want
    });
}

#[test]
fn a_layer_without_its_marker_is_unpacked_again() {
    let (_dir, store) = store();
    let diff_id = Digest::of(b"layer");
    // What an interrupted copy of a store would leave.
    let dir = store.root().join("layers").join(diff_id.hex());
    fs::create_dir_all(dir.join("diff")).unwrap();
    fs::write(dir.join("diff/junk"), "").unwrap();
    assert!(!store.has_layer(&diff_id));

    let calls = AtomicUsize::new(0);
    let path = store
        .ensure_layer(&diff_id, |tree| {
            calls.fetch_add(1, Ordering::SeqCst);
            tree.write_file("good", "x")?;
            Ok(Digest::of(b"layer"))
        })
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(path, store.layer_path(&diff_id));
    assert_eq!(names(&path), vec!["good"]);
    assert!(store.has_layer(&diff_id));
    assert!(names(&store.root().join("tmp")).is_empty());

    // Whole now: not unpacked again.
    store
        .ensure_layer(&diff_id, |_| panic!("unpacked twice"))
        .unwrap();
}

#[test]
fn a_layer_that_fails_or_hashes_wrong_is_not_kept() {
    let (_dir, store) = store();
    let diff_id = Digest::of(b"layer");
    let err = store
        .ensure_layer(&diff_id, |tree| {
            tree.write_file("partial", "x")?;
            anyhow::bail!("the gzip stream ended early")
        })
        .unwrap_err();
    assert!(format!("{err:#}").contains("ended early"), "{err:#}");
    assert!(!store.has_layer(&diff_id));

    let err = store
        .ensure_layer(&diff_id, |tree| {
            tree.write_file("evil", "x")?;
            Ok(Digest::of(b"another layer"))
        })
        .unwrap_err();
    assert!(format!("{err:#}").contains("nothing was kept"), "{err:#}");
    assert!(!store.has_layer(&diff_id));
    assert!(names(&store.root().join("layers")).is_empty());
    assert!(names(&store.root().join("tmp")).is_empty());
}

#[test]
fn a_layer_wanted_at_once_by_many_is_unpacked_once() {
    let (dir, _store) = store();
    let root = dir.path().join("store");
    let diff_id = Digest::of(b"layer");
    let calls = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(4));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (root, diff_id, calls, start) =
                (root.clone(), diff_id.clone(), calls.clone(), start.clone());
            std::thread::spawn(move || {
                let store = Store::open(root).unwrap();
                start.wait();
                store.ensure_layer(&diff_id, |tree| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tree.write_file("f", "x")?;
                    Ok(Digest::of(b"layer"))
                })
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap().unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn tag_resolve_images_and_remove() {
    let (_dir, store) = store();
    let (a, _) = fake_image(&store, "alpine", &["a"]);
    let (b, _) = fake_image(&store, "localhost:5000/b:1", &["b"]);
    assert_eq!(
        store.resolve(&reference("alpine:latest")).unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store
            .resolve(&reference("docker.io/library/alpine"))
            .unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.resolve(&reference("alpine:3")).unwrap(), None);
    // By digest: any tag of the repository that has it.
    let pinned = reference(&format!("alpine@{a}"));
    assert_eq!(store.resolve(&pinned).unwrap(), Some(a.clone()));
    assert_eq!(
        store.resolve(&reference(&format!("busybox@{a}"))).unwrap(),
        None
    );

    let listed: Vec<String> = store
        .images()
        .unwrap()
        .iter()
        .map(|i| format!("{} {}", i.reference, i.digest))
        .collect();
    assert_eq!(
        listed,
        vec![
            format!("docker.io/library/alpine:latest {a}"),
            format!("localhost:5000/b:1 {b}"),
        ]
    );

    // index.json is an OCI index other tools read.
    let index: oci_spec::image::ImageIndex =
        serde_json::from_slice(&fs::read(store.root().join("index.json")).unwrap()).unwrap();
    assert_eq!(index.manifests().len(), 2);

    // A name moves to another image.
    store.tag(&reference("alpine"), &b).unwrap();
    assert_eq!(
        store.resolve(&reference("alpine")).unwrap(),
        Some(b.clone())
    );
    assert_eq!(store.images().unwrap().len(), 2);

    assert!(store.remove(&reference("alpine")).unwrap());
    assert!(!store.remove(&reference("alpine")).unwrap());
    assert_eq!(store.resolve(&reference("alpine")).unwrap(), None);
    assert_eq!(store.images().unwrap().len(), 1);
}

#[test]
fn tag_refuses_a_manifest_not_in_the_store() {
    let (_dir, store) = store();
    let err = store
        .tag(&reference("alpine"), &Digest::of(b"nothing"))
        .unwrap_err();
    assert!(format!("{err:#}").contains("no such blob"), "{err:#}");
    let not_manifest = store.put_bytes(b"{}").unwrap();
    let err = store.tag(&reference("alpine"), &not_manifest).unwrap_err();
    assert!(format!("{err:#}").contains("neither"), "{err:#}");
}

#[test]
fn gc_keeps_shared_and_leased_layers_and_drops_the_rest() {
    let (_dir, store) = store();
    let (a, a_blobs) = fake_image(&store, "a", &["only-a", "shared"]);
    let (b, b_blobs) = fake_image(&store, "b", &["shared", "only-b"]);
    let orphan_layer = fake_layer(&store, "orphan");
    let orphan_blob = store.put_bytes(b"orphan").unwrap();
    let only_a = Digest::of(b"only-a");
    let shared = Digest::of(b"shared");
    let only_b = Digest::of(b"only-b");

    // A container of image a runs: it leases a's layers.
    let mut running = store.lease().unwrap();
    running.add(&[], &[only_a.clone(), shared.clone()]).unwrap();
    // A container whose process is gone leased the orphan.
    let mut gone = store.lease_for(dead_owner()).unwrap();
    gone.add(
        std::slice::from_ref(&orphan_blob),
        std::slice::from_ref(&orphan_layer),
    )
    .unwrap();
    let gone_path = gone.keep();

    assert!(store.remove(&reference("a")).unwrap());
    let collected = store.gc().unwrap();

    assert!(collected.left.is_empty());
    // Layers: a's only layer is leased, the shared one is b's too, the orphan goes.
    assert_eq!(collected.layers, vec![orphan_layer.clone()]);
    assert!(store.has_layer(&only_a));
    assert!(store.has_layer(&shared));
    assert!(store.has_layer(&only_b));
    assert!(!store.has_layer(&orphan_layer));
    // Blobs: a's manifest, config and own layer blob go; b's stay (the shared layer's
    // blob is one of them).
    assert!(!store.has_blob(&a));
    for blob in a_blobs.iter().filter(|blob| !b_blobs.contains(blob)) {
        assert!(!store.has_blob(blob), "{blob}");
    }
    assert_eq!(a_blobs.iter().filter(|b| b_blobs.contains(b)).count(), 1);
    assert!(!store.has_blob(&orphan_blob));
    assert!(store.has_blob(&b));
    for blob in &b_blobs {
        assert!(store.has_blob(blob), "{blob}");
    }
    // The dead process's lease is gone, the live one's stays.
    assert!(!gone_path.exists());
    assert!(running.path().exists());

    // The container stops: its layer goes at the next collection.
    running.release().unwrap();
    let collected = store.gc().unwrap();
    assert_eq!(collected.layers, vec![only_a.clone()]);
    assert!(!store.has_layer(&only_a));
    assert!(store.has_layer(&shared));
    assert!(names(&store.root().join("tmp")).is_empty());
    assert!(names(&store.root().join("in-use")).is_empty());
}

#[test]
fn a_leased_manifest_keeps_what_it_links_to() {
    let (_dir, store) = store();
    let (a, a_blobs) = fake_image(&store, "a", &["l"]);
    // A pull in progress: it leased the manifest, the image is not named yet.
    let mut pull = store.lease().unwrap();
    pull.add(std::slice::from_ref(&a), &[]).unwrap();
    store.remove(&reference("a")).unwrap();
    let collected = store.gc().unwrap();
    assert!(collected.blobs.is_empty(), "{:?}", collected.blobs);
    assert!(collected.layers.is_empty());
    for blob in &a_blobs {
        assert!(store.has_blob(blob));
    }
    assert!(store.has_layer(&Digest::of(b"l")));
    drop(pull);
    assert_eq!(store.gc().unwrap().layers.len(), 1);
}

#[test]
fn gc_refuses_a_lease_it_cannot_read() {
    let (_dir, store) = store();
    let layer = fake_layer(&store, "x");
    fs::write(store.root().join("in-use/foreign"), "what is this\n").unwrap();
    let err = store.gc().unwrap_err();
    assert!(
        format!("{err:#}").contains("not a lease keel writes"),
        "{err:#}"
    );
    assert!(store.has_layer(&layer));
}
