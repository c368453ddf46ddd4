//! Pulls from a real registry (Debian's `docker-registry`) that each test starts on
//! 127.0.0.1, with images the tests build from the host's static busybox and push.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use stage05_overlay::digest::Digest;
use stage05_overlay::pull::{Progress, PullOptions, Pulled, pull};
use stage05_overlay::reference::Reference;
use stage05_overlay::store::Store;
use stage05_overlay::unpack;
use support::image::{self, Compression, Image, Pusher};
use support::proxy::{Faults, Proxy};
use support::registry::Registry;
use support::token::{self, TokenServer};

fn options() -> PullOptions {
    PullOptions {
        progress: Progress::Quiet,
        unpack: Some(unpack::Options::default()),
        ..PullOptions::default()
    }
}

fn pull_ref(store: &Store, text: &str, options: &PullOptions) -> anyhow::Result<Pulled> {
    pull(store, &Reference::parse(text).expect("reference"), options)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A small layer holding one file of its own.
fn small_layer(name: &str, compression: Compression) -> image::Layer {
    let content = format!("hello from {name}\n").repeat(200);
    image::layer(
        image::tar(&[(&format!("etc/{name}"), content.as_bytes())]),
        compression,
    )
}

fn busybox_layer() -> image::Layer {
    image::layer(image::busybox_tar(), Compression::Gzip)
}

/// The store has the image whole: named, every blob there, every layer unpacked.
fn assert_whole(store: &Store, reference: &str, image: &Image) {
    let reference = Reference::parse(reference).unwrap();
    assert_eq!(store.resolve(&reference).unwrap(), Some(image.digest()));
    assert!(store.has_blob(&image.config_digest()));
    for layer in &image.layers {
        assert!(store.has_blob(&layer.digest), "blob {}", layer.digest);
        assert!(store.has_layer(&layer.diff_id), "layer {}", layer.diff_id);
    }
}

#[test]
fn a_single_platform_image_with_gzip_zstd_and_plain_layers_is_pulled_and_unpacked() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let image = Image::new(
        vec![
            busybox_layer(),
            small_layer("zstd", Compression::Zstd),
            small_layer("plain", Compression::None),
        ],
        "amd64",
        false,
    );
    Pusher::new(&registry.address, None).image("test/busybox", "1", &image);

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let name = format!("{}/test/busybox:1", registry.address);
    let pulled = pull_ref(&store, &name, &options()).unwrap();
    assert_eq!(pulled.manifest, image.digest());
    assert_eq!(pulled.config, image.config_digest());
    let layers: Vec<(Digest, Digest)> = image
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.diff_id.clone()))
        .collect();
    assert_eq!(pulled.layers, layers);
    assert_eq!(pulled.downloaded_bytes, image.blob_bytes());
    assert_whole(&store, &name, &image);
    let bottom = store.layer_path(&image.layers[0].diff_id);
    assert_eq!(
        fs::read(bottom.join("bin/busybox")).unwrap(),
        fs::read("/bin/busybox").unwrap()
    );
    assert_eq!(
        fs::read_link(bottom.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let zstd = store.layer_path(&image.layers[1].diff_id);
    assert!(
        fs::read_to_string(zstd.join("etc/zstd"))
            .unwrap()
            .starts_with("hello from zstd")
    );
    let plain = store.layer_path(&image.layers[2].diff_id);
    assert!(plain.join("etc/plain").is_file());
    // Nothing staged is left, and no lease.
    assert!(names(&dir.path().join("tmp")).is_empty());
    assert!(names(&dir.path().join("in-use")).is_empty());

    // A second pull downloads nothing.
    let again = pull_ref(&store, &name, &options()).unwrap();
    assert_eq!(again.downloaded_bytes, 0);
    assert_eq!(again.manifest, pulled.manifest);
}

#[test]
fn without_unpack_only_blobs_are_stored() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let image = Image::new(vec![small_layer("a", Compression::Gzip)], "amd64", false);
    Pusher::new(&registry.address, None).image("test/blobs", "latest", &image);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let options = PullOptions {
        unpack: None,
        ..options()
    };
    pull_ref(
        &store,
        &format!("{}/test/blobs", registry.address),
        &options,
    )
    .unwrap();
    assert!(store.has_blob(&image.layers[0].digest));
    assert!(!store.has_layer(&image.layers[0].diff_id));
}

#[test]
fn an_index_gives_this_machines_manifest_and_says_what_it_offers_otherwise() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let pusher = Pusher::new(&registry.address, None);
    for docker in [false, true] {
        let amd64 = Image::new(vec![busybox_layer()], "amd64", docker);
        let arm64 = Image::new(
            vec![small_layer("arm64", Compression::Gzip)],
            "arm64",
            docker,
        );
        let repo = if docker { "test/list" } else { "test/index" };
        pusher.image(repo, &amd64.digest().to_string(), &amd64);
        pusher.image(repo, &arm64.digest().to_string(), &arm64);
        let index = image::index(
            &[(&arm64, "arm64", Some("v8")), (&amd64, "amd64", None)],
            docker,
        );
        let list_type = if docker {
            image::DOCKER_LIST
        } else {
            image::OCI_INDEX
        };
        pusher.manifest(repo, "multi", list_type, &index);

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let name = format!("{}/{repo}:multi", registry.address);
        let amd64_options = PullOptions {
            platform: "linux/amd64".parse().unwrap(),
            ..options()
        };
        let pulled = pull_ref(&store, &name, &amd64_options).unwrap();
        assert_eq!(pulled.manifest, amd64.digest(), "docker: {docker}");
        assert_whole(&store, &name, &amd64);
        assert!(!store.has_blob(&arm64.layers[0].digest));
        assert!(!store.has_blob(&arm64.digest()));
        if cfg!(target_arch = "x86_64") {
            // The default is this machine's platform.
            let default = pull_ref(&store, &name, &options()).unwrap();
            assert_eq!(default.manifest, amd64.digest());
        }

        let s390x = PullOptions {
            platform: "linux/s390x".parse().unwrap(),
            ..options()
        };
        let err = format!("{:#}", pull_ref(&store, &name, &s390x).unwrap_err());
        assert!(err.contains("no manifest for linux/s390x"), "{err}");
        assert!(err.contains("linux/arm64/v8, linux/amd64"), "{err}");
    }
}

#[test]
fn a_docker_schema2_image_is_pulled() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let image = Image::new(
        vec![busybox_layer(), small_layer("d", Compression::Gzip)],
        "amd64",
        true,
    );
    Pusher::new(&registry.address, None).image("test/docker", "v2", &image);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let name = format!("{}/test/docker:v2", registry.address);
    let pulled = pull_ref(&store, &name, &options()).unwrap();
    assert_eq!(pulled.manifest, image.digest());
    assert_whole(&store, &name, &image);
}

#[test]
fn images_sharing_a_base_layer_store_it_once() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let base = busybox_layer();
    let first = Image::new(
        vec![base.clone(), small_layer("first", Compression::Gzip)],
        "amd64",
        false,
    );
    let second = Image::new(
        vec![base.clone(), small_layer("second", Compression::Zstd)],
        "amd64",
        false,
    );
    let pusher = Pusher::new(&registry.address, None);
    pusher.image("test/first", "latest", &first);
    pusher.image("test/second", "latest", &second);

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    pull_ref(
        &store,
        &format!("{}/test/first", registry.address),
        &options(),
    )
    .unwrap();
    let pulled = pull_ref(
        &store,
        &format!("{}/test/second", registry.address),
        &options(),
    )
    .unwrap();
    // The base was not downloaded again: only the second's config and own layer.
    assert_eq!(
        pulled.downloaded_bytes,
        (second.config.len() + second.layers[1].blob.len()) as u64
    );
    // Three layers unpacked, three layer blobs and two configs and manifests stored.
    assert_eq!(names(&dir.path().join("layers")).len(), 3);
    assert_eq!(names(&dir.path().join("blobs/sha256")).len(), 3 + 2 + 2);
    assert!(store.gc().unwrap().blobs.is_empty());
}

#[test]
fn a_tampered_blob_is_refused_and_nothing_of_it_is_stored() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let image = Image::new(
        vec![busybox_layer(), small_layer("t", Compression::Gzip)],
        "amd64",
        false,
    );
    Pusher::new(&registry.address, None).image("test/tampered", "latest", &image);
    // The registry serves its files as they are: one byte of the base layer flipped.
    let victim = &image.layers[0];
    let data = registry.blob_data(victim.digest.hex());
    let mut bytes = fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&data, &bytes).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let name = format!("{}/test/tampered", registry.address);
    let err = format!("{:#}", pull_ref(&store, &name, &options()).unwrap_err());
    assert!(err.contains(&victim.digest.to_string()), "{err}");
    assert!(err.contains("tampered"), "{err}");
    assert!(!store.has_blob(&victim.digest));
    assert!(!store.has_layer(&victim.diff_id));
    assert_eq!(
        store.resolve(&Reference::parse(&name).unwrap()).unwrap(),
        None
    );
    assert!(
        names(&dir.path().join("tmp")).is_empty(),
        "{:?}",
        names(&dir.path().join("tmp"))
    );
    assert!(names(&dir.path().join("in-use")).is_empty());
}

#[test]
fn a_missing_blob_and_an_unknown_tag_are_clear_errors() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let image = Image::new(vec![small_layer("m", Compression::Gzip)], "amd64", false);
    let pusher = Pusher::new(&registry.address, None);
    pusher.image("test/missing", "latest", &image);
    pusher.delete_blob("test/missing", &image.layers[0].digest);

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let err = format!(
        "{:#}",
        pull_ref(
            &store,
            &format!("{}/test/missing", registry.address),
            &options()
        )
        .unwrap_err()
    );
    assert!(err.contains("blob unknown"), "{err}");
    assert!(err.contains(&image.layers[0].digest.to_string()), "{err}");

    for missing in ["test/missing:nope", "test/nothing-here"] {
        let err = format!(
            "{:#}",
            pull_ref(
                &store,
                &format!("{}/{missing}", registry.address),
                &options()
            )
            .unwrap_err()
        );
        assert!(err.contains("manifest unknown"), "{err}");
        assert!(err.contains("check the name and tag"), "{err}");
    }
}

#[test]
fn a_refused_connection_names_the_url() {
    let port = support::registry::free_port();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let err = format!(
        "{:#}",
        pull_ref(&store, &format!("127.0.0.1:{port}/a/b:c"), &options()).unwrap_err()
    );
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}/v2/a/b/manifests/c")),
        "{err}"
    );
}

#[test]
fn a_broken_download_is_resumed_with_a_range_request() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let image = Image::new(vec![busybox_layer()], "amd64", false);
    Pusher::new(&registry.address, None).image("test/resume", "latest", &image);
    let blob = &image.layers[0].digest;
    let proxy = Proxy::start(
        &registry.address,
        Faults {
            target: blob.hex().to_owned(),
            cut_after: Some(200_000),
            cut_times: 1,
            ..Faults::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let name = format!("{}/test/resume", proxy.address);
    let pulled = pull_ref(&store, &name, &options()).unwrap();
    assert_whole(&store, &name, &image);
    // Resumed, not restarted: every byte came once.
    assert_eq!(pulled.downloaded_bytes, image.blob_bytes());
    let ranges: Vec<String> = proxy
        .heads()
        .iter()
        .filter(|h| h.contains(blob.hex()))
        .filter_map(|h| {
            h.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("range:"))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(ranges.len(), 1, "{:?}", proxy.heads());
    let offset: u64 = ranges[0]
        .split("bytes=")
        .nth(1)
        .and_then(|r| r.trim().trim_end_matches('-').parse().ok())
        .unwrap();
    assert!(offset > 0 && offset < 200_000, "{}", ranges[0]);
}

#[test]
fn a_download_that_keeps_breaking_gives_up_with_a_clear_error() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let image = Image::new(vec![busybox_layer()], "amd64", false);
    Pusher::new(&registry.address, None).image("test/broken", "latest", &image);
    let proxy = Proxy::start(
        &registry.address,
        Faults {
            target: image.layers[0].digest.hex().to_owned(),
            cut_after: Some(300),
            cut_times: usize::MAX,
            ..Faults::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let name = format!("{}/test/broken", proxy.address);
    let err = format!("{:#}", pull_ref(&store, &name, &options()).unwrap_err());
    assert!(err.contains("gave up after 5 attempts"), "{err}");
    assert!(err.contains(&image.layers[0].digest.to_string()), "{err}");
    assert_eq!(proxy.matching(), 5);
    assert!(!store.has_blob(&image.layers[0].digest));
    assert!(names(&dir.path().join("tmp")).is_empty());
}

#[test]
fn token_auth_with_credentials_from_an_auth_file() {
    if !Path::new(support::registry::BINARY).exists() {
        println!("SKIP: docker-registry is not installed");
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(keys.path());
    let Some(registry) = Registry::start(Some(&tokens.registry_auth())) else {
        return;
    };
    let image = Image::new(
        vec![small_layer("secret", Compression::Gzip)],
        "amd64",
        false,
    );
    let push_token = tokens.token("test/private", &["pull", "push"]);
    Pusher::new(&registry.address, Some(format!("Bearer {push_token}"))).image(
        "test/private",
        "latest",
        &image,
    );

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let name = format!("{}/test/private", registry.address);
    let auth_file = |user: &str, password: &str| {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let file = dir.path().join(format!("auth-{user}-{password}.json"));
        let json = serde_json::json!({"auths": {registry.address.clone(): {"auth": auth}}});
        fs::write(&file, json.to_string()).unwrap();
        file
    };

    // Without credentials: the anonymous token grants nothing.
    let empty = dir.path().join("empty.json");
    fs::write(&empty, r#"{"auths": {}}"#).unwrap();
    let anonymous = PullOptions {
        auth_file: Some(empty),
        ..options()
    };
    let err = format!("{:#}", pull_ref(&store, &name, &anonymous).unwrap_err());
    assert!(err.contains("requires authentication"), "{err}");
    assert!(err.contains("empty.json"), "{err}");

    // Wrong credentials: the token server refuses them.
    let wrong = PullOptions {
        auth_file: Some(auth_file(token::USER, "wrong")),
        ..options()
    };
    let err = format!("{:#}", pull_ref(&store, &name, &wrong).unwrap_err());
    assert!(err.contains("refused the credentials"), "{err}");
    assert_eq!(
        store.resolve(&Reference::parse(&name).unwrap()).unwrap(),
        None
    );

    let right = PullOptions {
        auth_file: Some(auth_file(token::USER, token::PASSWORD)),
        ..options()
    };
    let pulled = pull_ref(&store, &name, &right).unwrap();
    assert_eq!(pulled.manifest, image.digest());
    assert_whole(&store, &name, &image);
}

/// Not a test by itself: the pulling process that other tests start (and kill).
#[test]
#[ignore = "run by other tests in a process of its own"]
fn child_pull() {
    let (Ok(root), Ok(name)) = (
        std::env::var("KEEL_TEST_STORE"),
        std::env::var("KEEL_TEST_REF"),
    ) else {
        return;
    };
    let store = Store::open(root).unwrap();
    let progress = match std::env::var("KEEL_TEST_PROGRESS").as_deref() {
        Ok("lines") => Progress::Lines,
        _ => Progress::Quiet,
    };
    let pulled = pull_ref(
        &store,
        &name,
        &PullOptions {
            progress,
            ..options()
        },
    )
    .unwrap();
    println!("pulled {}", pulled.manifest);
    // The pull's runtime is gone with its threads: a container may be cloned now.
    let threads: Vec<String> = fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("comm")).ok())
        .collect();
    assert!(
        !threads.iter().any(|t| t.starts_with("keel-pull")),
        "{threads:?}"
    );
}

fn child(store: &Path, name: &str) -> std::process::Child {
    child_with(store, name, "quiet")
}

fn child_with(store: &Path, name: &str, progress: &str) -> std::process::Child {
    child_command(store, name, progress).spawn().unwrap()
}

/// This test binary, to run [`child_pull`] alone.
fn child_command(store: &Path, name: &str, progress: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--ignored",
            "--exact",
            "child_pull",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KEEL_TEST_STORE", store)
        .env("KEEL_TEST_REF", name)
        .env("KEEL_TEST_PROGRESS", progress)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[test]
fn a_pull_killed_mid_download_leaves_a_store_the_next_pull_completes() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let image = Image::new(
        vec![busybox_layer(), small_layer("k", Compression::Gzip)],
        "amd64",
        false,
    );
    Pusher::new(&registry.address, None).image("test/killed", "latest", &image);
    let proxy = Proxy::start(
        &registry.address,
        Faults {
            target: image.layers[0].digest.hex().to_owned(),
            stall_after: Some(300_000),
            ..Faults::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    Store::open(&root).unwrap();
    let name = format!("{}/test/killed", proxy.address);
    let mut pulling = child(&root, &name);
    proxy.wait_stalled();
    // The base layer is being unpacked from the part of its blob that arrived: its
    // busybox appears in a staged layer while the download is stalled.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let unpacking = loop {
        let found = names(&root.join("tmp"))
            .into_iter()
            .map(|n| root.join("tmp").join(n).join("diff/bin/busybox"))
            .find(|p| p.exists());
        if let Some(found) = found {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no layer is being unpacked"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        !store_blob_exists(&root, &image.layers[0].digest),
        "{unpacking:?}"
    );
    // A collection meanwhile keeps what the live pull leased (its manifest and config
    // are named by no image yet).
    let collected = Store::open(&root).unwrap().gc().unwrap();
    assert!(collected.blobs.is_empty(), "{collected:?}");
    assert!(store_blob_exists(&root, &image.digest()));
    assert!(store_blob_exists(&root, &image.config_digest()));
    // The child is mid-download and mid-unpack: kill it where it stands.
    pulling.kill().unwrap();
    pulling.wait().unwrap();
    assert!(
        !names(&root.join("tmp")).is_empty(),
        "the child had staged nothing"
    );
    drop(proxy);

    let store = Store::open(&root).unwrap();
    assert!(
        names(&root.join("tmp")).is_empty(),
        "the dead child's staging was not swept"
    );
    let direct = format!("{}/test/killed", registry.address);
    pull_ref(&store, &direct, &options()).unwrap();
    assert_whole(&store, &direct, &image);
    // The dead child's lease is dropped, and nothing the image needs is collected.
    let collected = store.gc().unwrap();
    assert!(
        collected.blobs.is_empty() && collected.layers.is_empty(),
        "{collected:?}"
    );
    assert!(names(&root.join("in-use")).is_empty());
}

fn store_blob_exists(root: &Path, digest: &Digest) -> bool {
    root.join("blobs/sha256").join(digest.hex()).is_file()
}

#[test]
fn two_processes_pulling_one_image_at_once_both_succeed() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let image = Image::new(
        vec![busybox_layer(), small_layer("c", Compression::Zstd)],
        "amd64",
        false,
    );
    Pusher::new(&registry.address, None).image("test/concurrent", "latest", &image);
    // Both children's requests for the base layer are held until both asked: their
    // downloads overlap.
    let proxy = Proxy::start(
        &registry.address,
        Faults {
            target: image.layers[0].digest.hex().to_owned(),
            gate: Some(2),
            ..Faults::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    Store::open(&root).unwrap();
    let name = format!("{}/test/concurrent", proxy.address);
    let children = [
        child_with(&root, &name, "lines"),
        child_with(&root, &name, "lines"),
    ];
    let short = &image.layers[0].digest.hex()[..12];
    for pulling in children {
        let out = pulling.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout),
        );
        // Progress as lines: the base layer's short digest, downloading, then done.
        assert!(
            stderr.contains(&format!("{short}: downloading\n")),
            "{stderr}"
        );
        assert!(stderr.contains(&format!("{short}: done\n")), "{stderr}");
    }
    assert!(proxy.gate_opened(), "the two pulls did not overlap");
    let store = Store::open(&root).unwrap();
    assert_whole(&store, &name, &image);
    assert!(names(&root.join("tmp")).is_empty());
    let collected = store.gc().unwrap();
    assert!(
        collected.blobs.is_empty() && collected.layers.is_empty(),
        "{collected:?}"
    );
}

#[test]
fn layers_download_in_parallel() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let image = Image::new(
        vec![
            busybox_layer(),
            small_layer("p1", Compression::Gzip),
            small_layer("p2", Compression::Zstd),
        ],
        "amd64",
        false,
    );
    Pusher::new(&registry.address, None).image("test/parallel", "latest", &image);
    // Every layer's response is held until all three were asked for: a pull that
    // fetched them one by one would wait for the gate's timeout.
    let targets: Vec<&str> = image.layers.iter().map(|l| l.digest.hex()).collect();
    let proxy = Proxy::start(
        &registry.address,
        Faults {
            target: targets.join("|"),
            gate: Some(3),
            ..Faults::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let name = format!("{}/test/parallel", proxy.address);
    pull_ref(&store, &name, &options()).unwrap();
    assert!(
        proxy.gate_opened(),
        "the layers were not downloaded at once"
    );
    assert_whole(&store, &name, &image);
}

#[test]
fn a_layer_whose_diff_id_differs_from_the_config_is_not_kept() {
    let Some(registry) = Registry::start(None) else {
        return;
    };
    let mut image = Image::new(vec![small_layer("real", Compression::Gzip)], "amd64", false);
    // The config claims another tar than the blob holds.
    let claimed = small_layer("claimed", Compression::Gzip);
    image = Image::new(
        vec![image::Layer {
            diff_id: claimed.diff_id.clone(),
            ..image.layers[0].clone()
        }],
        "amd64",
        false,
    );
    Pusher::new(&registry.address, None).image("test/lying", "latest", &image);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let name = format!("{}/test/lying", registry.address);
    let err = format!("{:#}", pull_ref(&store, &name, &options()).unwrap_err());
    assert!(err.contains(&claimed.diff_id.to_string()), "{err}");
    assert!(err.contains("does not describe its layers"), "{err}");
    assert!(!store.has_layer(&claimed.diff_id));
    assert!(names(&dir.path().join("layers")).is_empty());
    assert_eq!(
        store.resolve(&Reference::parse(&name).unwrap()).unwrap(),
        None
    );
}

/// alice's password "s3cret", hashed with bcrypt as htpasswd does.
const HTPASSWD: &str = "alice:$2b$12$FzNlDkO7Ltp59m80z5iYBOERe/bQivtzFisNlcM.eNLRB.UFtR.AG\n";

#[test]
fn basic_auth_with_credentials_from_the_registry_auth_file_variable() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    fs::write(&htpasswd, HTPASSWD).unwrap();
    let auth = format!(
        "  htpasswd:\n    realm: keel-test\n    path: {}\n",
        htpasswd.display()
    );
    let Some(registry) = Registry::start(Some(&auth)) else {
        return;
    };
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    let image = Image::new(
        vec![small_layer("basic", Compression::Gzip)],
        "amd64",
        false,
    );
    Pusher::new(&registry.address, Some(format!("Basic {basic}"))).image(
        "test/basic",
        "latest",
        &image,
    );

    let store = Store::open(dir.path().join("store")).unwrap();
    let name = format!("{}/test/basic", registry.address);
    let file = dir.path().join("auth.json");
    let nobody = PullOptions {
        auth_file: Some(file.clone()),
        ..options()
    };
    fs::write(&file, r#"{"auths": {}}"#).unwrap();
    let err = format!("{:#}", pull_ref(&store, &name, &nobody).unwrap_err());
    assert!(err.contains("requires authentication"), "{err}");

    // `auth_file` unset: $REGISTRY_AUTH_FILE is read (in a process of its own: the
    // environment is not to be changed under the other tests' threads).
    let json = serde_json::json!({"auths": {registry.address.clone(): {"username": "alice", "password": "s3cret"}}});
    fs::write(&file, json.to_string()).unwrap();
    let out = child_command(&dir.path().join("store"), &name, "quiet")
        .env("REGISTRY_AUTH_FILE", &file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_whole(&store, &name, &image);
}
