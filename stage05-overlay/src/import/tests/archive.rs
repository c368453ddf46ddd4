//! `import_archive`: docker's archives, OCI archives and rootfs tarballs, told apart by
//! what they hold; and archives that lie or try to reach outside themselves.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageManifest, MediaType};

use super::fixtures::{
    Item, file, layer, layout_items, legacy, link, manifest_json, oci_layout, plain, saved, tar,
};
use super::gzip;
use crate::digest::Digest;
use crate::image::Image;
use crate::import::import_archive;
use crate::reference::Reference;
use crate::store::Store;

struct Test {
    dir: tempfile::TempDir,
    store: Store,
}

impl Test {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        Self { dir, store }
    }

    /// Writes `bytes` as the file `name` and imports it.
    fn import(
        &self,
        name: &str,
        bytes: &[u8],
        reference: Option<&str>,
    ) -> anyhow::Result<Vec<(Reference, Digest)>> {
        let path = self.dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        let reference = reference.map(|r| Reference::parse(r).unwrap());
        import_archive(&self.store, &path, reference.as_ref())
    }

    /// Imports what must be refused, and checks the error says `why` and that nothing
    /// was named, and nothing is kept once the import's lease is gone.
    fn refused(&self, bytes: &[u8], why: &str) {
        let err = self.import("hostile.tar", bytes, None).unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains(why), "expected {why:?} in: {err}");
        assert!(self.store.images().unwrap().is_empty());
        self.store.gc().unwrap();
        assert!(
            self.store.blobs().unwrap().is_empty(),
            "blobs left after a refused import"
        );
        assert!(staging_is_empty(self.store.root()), "staged files left");
    }

    fn image(&self, name: &str) -> Image {
        Image::load(&self.store, &Reference::parse(name).unwrap()).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn staging_is_empty(root: &Path) -> bool {
    fs::read_dir(root.join("tmp")).unwrap().next().is_none()
}

fn blobs(image: &Image) -> Vec<Digest> {
    image.layers.iter().map(|l| l.blob.clone()).collect()
}

/// Two layers: one plain, one gzipped, as a docker archive may hold either.
fn two_layers() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let base = layer(&[("etc/os-release", "ID=test\n")]);
    let top = layer(&[("bin/app", "#!/bin/sh\necho hi\n")]);
    (vec![base.clone(), gzip(&top)], vec![base, top])
}

#[test]
fn a_docker_archive_is_converted_to_an_oci_image_under_every_tag() {
    let test = Test::new();
    let (blobs_in, tars) = two_layers();
    let image = legacy(&["busybox:1", "localhost/b:2"], &blobs_in, &tars);
    let mut items = image.items;
    items.push(manifest_json(&[image.saved]));
    items.push(file("repositories", "{}"));

    let imported = test.import("saved.tar", &tar(&items), None).unwrap();
    let names: Vec<String> = imported.iter().map(|(r, _)| r.to_string()).collect();
    assert_eq!(
        names,
        ["docker.io/library/busybox:1", "localhost/b:2"],
        "every RepoTags entry, in canonical form"
    );
    assert_eq!(imported[0].1, imported[1].1, "one manifest, two names");

    let loaded = test.image("busybox:1");
    assert_eq!(loaded.diff_ids(), image.diff_ids);
    assert_eq!(
        blobs(&loaded),
        image.blobs,
        "the layers are stored as they were"
    );
    let manifest: ImageManifest = test.store.read_json(&loaded.manifest).unwrap();
    assert_eq!(*manifest.media_type(), Some(MediaType::ImageManifest));
    let types: Vec<_> = manifest
        .layers()
        .iter()
        .map(|l| l.media_type().clone())
        .collect();
    assert_eq!(types, [MediaType::ImageLayer, MediaType::ImageLayerGzip]);
    // The config is stored as it was: its digest is docker's image ID.
    let config = Digest::try_from(manifest.config().digest()).unwrap();
    assert_eq!(config, Digest::of(&image.config));
    assert_eq!(
        loaded
            .config
            .config()
            .as_ref()
            .unwrap()
            .cmd()
            .as_ref()
            .unwrap(),
        &["/bin/sh"]
    );
    assert!(staging_is_empty(test.store.root()));
}

#[test]
fn two_images_of_one_docker_archive_are_both_tagged_and_share_a_linked_layer() {
    let test = Test::new();
    let base = layer(&[("etc/os-release", "ID=test\n")]);
    let extra = layer(&[("bin/two", "2\n")]);
    let mut two = plain(&["localhost/two:1"], &[base.clone(), extra]);
    let one = plain(&["localhost/one:1"], &[base]);
    // docker save writes a layer it already wrote as a link to the first copy.
    let Item::File(first, _) = &one.items[1] else {
        unreachable!()
    };
    let Item::File(second, _) = &two.items[1] else {
        unreachable!()
    };
    two.items[1] = link(second, &format!("../{first}"));

    let mut items = one.items;
    items.extend(two.items);
    items.push(manifest_json(&[one.saved, two.saved]));
    let imported = test.import("two.tar", &tar(&items), None).unwrap();
    assert_eq!(imported.len(), 2);

    let (one_image, two_image) = (test.image("localhost/one:1"), test.image("localhost/two:1"));
    assert_eq!(one_image.diff_ids(), one.diff_ids);
    assert_eq!(two_image.diff_ids(), two.diff_ids);
    assert_eq!(one_image.layers[0].blob, two_image.layers[0].blob);
}

#[test]
fn a_docker_archive_of_docker_25_is_read_by_its_manifest_json() {
    let test = Test::new();
    let (blobs_in, tars) = two_layers();
    // Docker 25 and later: blobs/sha256/ of an OCI layout, named by manifest.json too.
    let diff_ids: Vec<Digest> = tars.iter().map(|t| Digest::of(t)).collect();
    let config = super::fixtures::config(&diff_ids);
    let blob_name = |bytes: &[u8]| format!("blobs/sha256/{}", Digest::of(bytes).hex());
    let mut items = vec![
        file("oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#),
        // An index whose only name is a tag: read as an OCI layout, this archive would
        // need a name.
        file(
            "index.json",
            r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","annotations":{"org.opencontainers.image.ref.name":"latest"}}]}"#,
        ),
        file(&blob_name(&config), config.clone()),
    ];
    for blob in &blobs_in {
        items.push(file(&blob_name(blob), blob.clone()));
    }
    let layer_names: Vec<String> = blobs_in.iter().map(|b| blob_name(b)).collect();
    let layer_names: Vec<&str> = layer_names.iter().map(String::as_str).collect();
    items.push(manifest_json(&[saved(
        &blob_name(&config),
        &["new:1"],
        &layer_names,
    )]));

    // Compressed as a whole too, as `docker save | gzip` makes it.
    let imported = test
        .import("new.tar.gz", &gzip(&tar(&items)), None)
        .unwrap();
    assert_eq!(imported[0].0.to_string(), "docker.io/library/new:1");
    assert_eq!(test.image("new:1").diff_ids(), diff_ids);
}

#[test]
fn with_a_name_the_image_of_that_tag_is_the_one_imported() {
    let test = Test::new();
    let a = layer(&[("a", "a")]);
    let b = layer(&[("b", "b")]);
    let one = plain(&["localhost/one:1"], &[a]);
    let two = plain(&["localhost/two:1"], &[b]);
    let mut items = one.items;
    items.extend(two.items);
    items.push(manifest_json(&[one.saved, two.saved]));
    let bytes = tar(&items);

    let err = test
        .import("x.tar", &bytes, Some("localhost/three"))
        .unwrap_err();
    assert!(format!("{err:#}").contains("none tagged"), "{err:#}");
    assert!(test.store.images().unwrap().is_empty());

    let imported = test
        .import("x.tar", &bytes, Some("localhost/two:1"))
        .unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(test.image("localhost/two:1").diff_ids(), two.diff_ids);
    assert_eq!(test.store.images().unwrap().len(), 1);
}

#[test]
fn an_image_saved_by_id_needs_a_name() {
    let test = Test::new();
    let a = layer(&[("a", "a")]);
    let image = plain(&[], &[a]);
    let mut items = image.items;
    let mut entry = image.saved;
    entry["RepoTags"] = serde_json::Value::Null;
    items.push(manifest_json(&[entry]));
    let bytes = tar(&items);

    let err = test.import("id.tar", &bytes, None).unwrap_err();
    assert!(format!("{err:#}").contains("import PATH NAME"), "{err:#}");
    test.import("id.tar", &bytes, Some("localhost/named"))
        .unwrap();
    assert_eq!(test.image("localhost/named").diff_ids(), image.diff_ids);
}

/// A docker archive of one image whose manifest.json entry is changed by `change`.
fn docker_archive_with(change: impl FnOnce(&mut serde_json::Value, &mut Vec<Item>)) -> Vec<u8> {
    let base = layer(&[("etc/os-release", "ID=test\n")]);
    let image = plain(&["localhost/hostile"], &[base]);
    let (mut items, mut entry) = (image.items, image.saved);
    change(&mut entry, &mut items);
    items.push(manifest_json(&[entry]));
    tar(&items)
}

#[test]
fn a_layer_named_outside_the_archive_is_refused() {
    let test = Test::new();
    for name in ["../../etc/passwd", "/etc/passwd"] {
        let bytes = docker_archive_with(|entry, _| entry["Layers"][0] = name.into());
        test.refused(&bytes, &format!("names the file {name:?}"));
    }
}

#[test]
fn a_layer_linked_outside_the_archive_is_refused() {
    let test = Test::new();
    let bytes = docker_archive_with(|entry, items| {
        items.push(link("evil/layer.tar", "../../etc/passwd"));
        entry["Layers"][0] = "evil/layer.tar".into();
    });
    test.refused(&bytes, "outside the archive");
}

#[test]
fn a_manifest_json_that_is_a_link_is_refused() {
    // Even a link to a good manifest inside the archive: only layers may be links.
    let test = Test::new();
    let good = docker_archive_with(|_, _| {});
    let mut items = Vec::new();
    for entry in tar::Archive::new(&good[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_str().unwrap().to_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        let name = if name == "manifest.json" {
            "saved.json".to_owned()
        } else {
            name
        };
        items.push(file(&name, bytes));
    }
    items.push(link("manifest.json", "saved.json"));
    test.refused(&tar(&items), "only a layer may be a link");
    test.refused(&tar(&[link("manifest.json", "/etc/passwd")]), "is a link");
}

#[test]
fn an_entry_named_with_dotdot_makes_the_archive_refused() {
    let test = Test::new();
    let bytes = docker_archive_with(|_, items| {
        items.push(Item::RawName(b"../outside".to_vec(), b"x".to_vec()));
    });
    test.refused(&bytes, "\"../outside\"");
}

#[test]
fn a_layer_whose_diff_id_is_not_the_config_s_is_refused() {
    let test = Test::new();
    let bytes = docker_archive_with(|_, items| {
        let Item::File(name, _) = &items[1] else {
            unreachable!()
        };
        items[1] = file(&name.clone(), layer(&[("etc/os-release", "ID=evil\n")]));
    });
    test.refused(&bytes, "rootfs.diff_ids");
}

#[test]
fn a_manifest_naming_a_missing_file_is_refused() {
    let test = Test::new();
    let bytes = docker_archive_with(|entry, _| entry["Layers"][0] = "gone/layer.tar".into());
    test.refused(&bytes, "has no file \"gone/layer.tar\"");
}

#[test]
fn a_config_that_does_not_hash_to_its_name_is_refused() {
    let test = Test::new();
    let bytes = docker_archive_with(|_, items| {
        let Item::File(name, config) = &items[0] else {
            unreachable!()
        };
        let mut config: serde_json::Value = serde_json::from_slice(config).unwrap();
        config["config"]["Cmd"] = serde_json::json!(["/bin/evil"]);
        items[0] = file(&name.clone(), serde_json::to_vec(&config).unwrap());
    });
    test.refused(&bytes, "tampered");
}

fn oci_archive(dir: &Path, ref_name: &str) -> (Vec<u8>, Digest, Vec<Digest>) {
    let layout = dir.join("layout");
    let (digest, diff_ids) = oci_layout(
        &layout,
        &[layer(&[("a", "1")]), layer(&[("b", "2")])],
        ref_name,
    );
    (tar(&layout_items(&layout)), digest, diff_ids)
}

#[test]
fn an_oci_archive_is_imported_under_its_ref_name() {
    let test = Test::new();
    let (bytes, digest, diff_ids) = oci_archive(test.dir.path(), "localhost/oci:1");
    let imported = test.import("oci.tar", &bytes, None).unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].0.to_string(), "localhost/oci:1");
    assert_eq!(imported[0].1, digest, "the layout's own manifest");
    assert_eq!(test.image("localhost/oci:1").diff_ids(), diff_ids);
}

#[test]
fn an_oci_archive_named_by_a_tag_alone_needs_a_name() {
    let test = Test::new();
    let (bytes, digest, _) = oci_archive(test.dir.path(), "latest");
    let err = test.import("oci.tar", &bytes, None).unwrap_err();
    assert!(
        format!("{err:#}").contains("only by the tag \"latest\""),
        "{err:#}"
    );
    assert!(test.store.images().unwrap().is_empty());
    let imported = test.import("oci.tar", &bytes, Some("localhost/x")).unwrap();
    assert_eq!(imported[0].1, digest);
}

#[test]
fn an_oci_archive_whose_blob_does_not_match_its_digest_is_refused() {
    let test = Test::new();
    let (_, _, diff_ids) = oci_archive(test.dir.path(), "localhost/oci:1");
    let layer_blob = test.path("layout/blobs/sha256").join(diff_ids[1].hex());
    let mut bytes = fs::read(&layer_blob).unwrap();
    bytes[600] ^= 1;
    fs::write(&layer_blob, bytes).unwrap();
    test.refused(&tar(&layout_items(&test.path("layout"))), "tampered");
}

#[test]
fn an_oci_archive_whose_blob_is_a_link_is_refused() {
    // Even a link to the right bytes inside the archive: a layout has no links.
    let test = Test::new();
    let (_, _, diff_ids) = oci_archive(test.dir.path(), "localhost/oci:1");
    let name = format!("./blobs/sha256/{}", diff_ids[0].hex());
    let mut items = layout_items(&test.path("layout"));
    let at = items
        .iter()
        .position(|item| matches!(item, Item::File(n, _) if *n == name))
        .unwrap();
    let Item::File(_, bytes) = items.remove(at) else {
        unreachable!()
    };
    items.push(file("copy", bytes));
    items.push(link(&name, "../../copy"));
    test.refused(&tar(&items), "only a layer may be a link");
}

#[test]
fn a_plain_rootfs_tarball_is_imported_as_one_layer_named_after_its_file() {
    let test = Test::new();
    let rootfs = layer(&[("bin/sh", "#!\n"), ("etc/hostname", "x\n")]);
    let imported = test.import("my-root.tar", &gzip(&rootfs), None).unwrap();
    assert_eq!(
        imported[0].0.to_string(),
        "docker.io/library/my-root:latest"
    );
    assert_eq!(test.image("my-root").diff_ids(), [Digest::of(&rootfs)]);
}

#[test]
fn a_file_that_is_no_tar_is_refused_clearly() {
    let test = Test::new();
    let err = test.import("notes.txt", &[b'x'; 2000], None).unwrap_err();
    assert!(format!("{err:#}").contains("not a tar"), "{err:#}");
}

#[test]
fn an_archive_of_docker_before_1_10_is_refused_by_name() {
    let test = Test::new();
    let bytes = tar(&[
        file("repositories", r#"{"old":{"latest":"abc"}}"#),
        file("abc/layer.tar", layer(&[("a", "1")])),
    ]);
    test.refused(&bytes, "docker before 1.10");
}
