//! Archives written by skopeo, the reference tool, from a layout the test makes: keel
//! must read what others write, not only what its own tests write.

use std::path::Path;
use std::process::Command;

use super::fixtures::{layer, oci_layout};
use crate::digest::Digest;
use crate::image::Image;
use crate::import::import_archive;
use crate::reference::Reference;
use crate::store::Store;

/// Whether skopeo can be run; says so when it cannot.
fn have_skopeo() -> bool {
    let found = Command::new("skopeo").arg("--version").output().is_ok();
    if !found {
        println!("SKIP: skopeo is not installed");
    }
    found
}

/// `skopeo copy oci:<layout>:source <destination>`, and the layout's diff_ids.
fn skopeo_copy(dir: &Path, destination: &str) -> Vec<Digest> {
    let layout = dir.join("layout");
    let layers = [
        layer(&[("etc/os-release", "ID=test\n")]),
        layer(&[("bin/app", "#!/bin/sh\n")]),
    ];
    let (_, diff_ids) = oci_layout(&layout, &layers, "source");
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet"])
        .arg(format!("oci:{}:source", layout.display()))
        .arg(destination)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    diff_ids
}

fn imported_diff_ids(store: &Store, name: &str) -> Vec<Digest> {
    Image::load(store, &Reference::parse(name).unwrap())
        .unwrap()
        .diff_ids()
}

#[test]
fn a_docker_archive_of_skopeo_is_imported_under_its_tag() {
    if !have_skopeo() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker.tar");
    let diff_ids = skopeo_copy(
        dir.path(),
        &format!("docker-archive:{}:localhost/sk:1", file.display()),
    );
    let store = Store::open(dir.path().join("store")).unwrap();
    let imported = import_archive(&store, &file, None).unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].0.to_string(), "localhost/sk:1");
    assert_eq!(imported_diff_ids(&store, "localhost/sk:1"), diff_ids);
}

#[test]
fn an_oci_archive_of_skopeo_is_imported_under_its_name() {
    if !have_skopeo() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oci.tar");
    let diff_ids = skopeo_copy(
        dir.path(),
        &format!("oci-archive:{}:localhost/sk:2", file.display()),
    );
    let store = Store::open(dir.path().join("store")).unwrap();
    let imported = import_archive(&store, &file, None).unwrap();
    assert_eq!(imported[0].0.to_string(), "localhost/sk:2");
    assert_eq!(imported_diff_ids(&store, "localhost/sk:2"), diff_ids);
}
