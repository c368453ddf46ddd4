//! Pulling an image from a registry, as the OCI distribution spec describes it.
//!
//! 1. The reference's tag (or digest) is resolved to a manifest: `GET
//!    /v2/<name>/manifests/<tag>`, accepting OCI's and docker's types; an index of
//!    several platforms gives this machine's manifest, fetched by its digest.
//! 2. The config is fetched, and tells the layers' `diff_id`s.
//! 3. The layers are downloaded in parallel into the store, each verified against its
//!    digest, resumed with a `Range` request when a connection breaks; and, if asked,
//!    unpacked while they arrive, bottom layer first (a layer is unpacked over the
//!    ones below it, see [`crate::unpack`]).
//! 4. The reference is named in the store's index, pointing at the manifest.
//!
//! Everything is leased before it is written, so a concurrent `gc` keeps it; a pull
//! killed at any point leaves only staged files that the next opening of the store
//! sweeps. Blobs already in the store are not downloaded again.

mod challenge;
mod credentials;
mod download;
mod manifest;
mod platform;
mod pow;
mod progress;
mod registry;
mod unpacking;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context, Result, anyhow, bail};

use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::{Lease, Store};
use crate::unpack;
use download::{Cancelled, Growing, Shared};
use manifest::{Fetched, Manifest};
use registry::Registry;
use unpacking::{Board, Unpacking};

pub use platform::Platform;
pub use progress::Progress;

/// How many blobs are downloaded at once (docker's default too).
const PARALLEL: usize = 3;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Verify the registry's TLS certificate (`--tls-verify`). Registries on loopback
    /// are spoken to in plain HTTP whatever this says; with `false`, others may be
    /// spoken to in plain HTTP or HTTPS with any certificate.
    pub tls_verify: bool,
    /// Where the credentials are (`--authfile`), instead of `$REGISTRY_AUTH_FILE` and
    /// `~/.docker/config.json`.
    pub auth_file: Option<PathBuf>,
    /// What to show on stderr.
    pub progress: Progress,
    /// Unpack the layers as they download, with these options; `None`: blobs only
    /// (layers are unpacked, and their `diff_id`s checked, when first run).
    pub unpack: Option<unpack::Options>,
    /// The platform wanted from a multi-platform image: this machine's by default.
    pub platform: Platform,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            tls_verify: true,
            auth_file: None,
            progress: Progress::default(),
            unpack: None,
            platform: Platform::default(),
        }
    }
}

/// What a pull stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The manifest the reference is now the name of.
    pub manifest: Digest,
    /// The image's config.
    pub config: Digest,
    /// Each layer, bottom first: the blob's digest, and the `diff_id` (the digest of
    /// the uncompressed tar, the name of the unpacked layer).
    pub layers: Vec<(Digest, Digest)>,
    /// Bytes of blobs received from the registry (manifests, always asked for since a
    /// tag may have moved, are not counted): 0 when the store had everything.
    pub downloaded_bytes: u64,
}

/// A layer to fetch.
struct Layer {
    blob: Digest,
    size: u64,
    diff_id: Digest,
}

// ANCHOR: pull
/// Pulls `reference` into `store` and names it there.
pub fn pull(store: &Store, reference: &Reference, options: &PullOptions) -> Result<Pulled> {
    let registry = Registry::new(reference, options.tls_verify, options.auth_file.as_deref())?;
    let reporter = progress::Reporter::new(options.progress);
    let mut lease = store.lease()?;
    let (manifest_digest, manifest) =
        resolve(&registry, store, &mut lease, reference, &options.platform)
            .with_context(|| format!("pulling {reference}"))?;
    let shared = Shared {
        registry: &registry,
        store,
        cancel: AtomicBool::new(false),
        received: AtomicU64::new(0),
    };

    let config = manifest.config.digest()?;
    lease.add(std::slice::from_ref(&config), &[])?;
    let task = reporter.task(&config, manifest.config.size);
    download::download(
        &shared,
        &config,
        manifest.config.size,
        &task,
        &Growing::default(),
    )
    .with_context(|| format!("pulling the config of {reference}"))?;
    let diff_ids = store
        .read_json::<manifest::Config>(&config)?
        .rootfs
        .diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        bail!(
            "{reference}: the manifest lists {} layers, its config {}: the image is broken",
            manifest.layers.len(),
            diff_ids.len()
        );
    }
    let layers = manifest
        .layers
        .iter()
        .zip(&diff_ids)
        .map(|(descriptor, diff_id)| {
            Ok(Layer {
                blob: descriptor.digest()?,
                size: descriptor.size,
                diff_id: Digest::parse(diff_id).context("a diff_id of the config")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let blobs: Vec<Digest> = layers.iter().map(|l| l.blob.clone()).collect();
    let unpacked: Vec<Digest> = match options.unpack {
        Some(_) => layers.iter().map(|l| l.diff_id.clone()).collect(),
        None => Vec::new(),
    };
    lease.add(&blobs, &unpacked)?;

    transfer(&shared, &reporter, &layers, options.unpack.as_ref())
        .with_context(|| format!("pulling {reference}"))?;
    store.tag(reference, &manifest_digest)?;
    reporter.say(&format!("{reference}: {manifest_digest}"));
    Ok(Pulled {
        manifest: manifest_digest,
        config,
        layers: layers.into_iter().map(|l| (l.blob, l.diff_id)).collect(),
        downloaded_bytes: shared.received.load(Ordering::Relaxed),
    })
}
// ANCHOR_END: pull

/// The manifest `reference` names for `platform`, stored.
fn resolve(
    registry: &Registry,
    store: &Store,
    lease: &mut Lease,
    reference: &Reference,
    platform: &Platform,
) -> Result<(Digest, Manifest)> {
    let pinned = reference.digest();
    let first = match (pinned, reference.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.to_owned(),
        (None, None) => "latest".to_owned(),
    };
    let (digest, fetched) = fetch_manifest(registry, store, lease, &first, pinned, None)?;
    match fetched {
        Fetched::Manifest(manifest) => Ok((digest, manifest)),
        Fetched::Index(index) => {
            let descriptor = index.pick(platform)?;
            let child = descriptor.digest()?;
            let (child, fetched) = fetch_manifest(
                registry,
                store,
                lease,
                &child.to_string(),
                Some(&child),
                Some(descriptor.size),
            )?;
            match fetched {
                Fetched::Manifest(manifest) => Ok((child, manifest)),
                Fetched::Index(_) => {
                    bail!("the index's entry for {platform} is another index: not an image")
                }
            }
        }
    }
}

/// A manifest or index by tag or digest: from the store if it has that digest, else
/// from the registry, verified (against `expected`, and against what the registry
/// says it is). Manifests are stored; an index is not (the store names the manifest).
fn fetch_manifest(
    registry: &Registry,
    store: &Store,
    lease: &mut Lease,
    tag_or_digest: &str,
    expected: Option<&Digest>,
    size: Option<u64>,
) -> Result<(Digest, Fetched)> {
    if let Some(digest) = expected.filter(|d| store.has_blob(d)) {
        lease.add(std::slice::from_ref(digest), &[])?;
        let bytes = std::fs::read(store.blob_path(digest))
            .with_context(|| format!("reading the manifest {digest}"))?;
        return Ok((digest.clone(), manifest::parse(&bytes, None)?));
    }
    let (bytes, media_type, said) = registry.manifest(tag_or_digest, manifest::ACCEPT)?;
    let digest = Digest::of(&bytes);
    if let Some(expected) = expected
        && *expected != digest
    {
        bail!(
            "the manifest {expected}: what the registry sent ({} bytes) hashes to {digest}: \
             it is corrupt or was tampered with; nothing of it was kept",
            bytes.len()
        );
    }
    if let Some(size) = size
        && size != bytes.len() as u64
    {
        bail!(
            "the manifest {digest}: the index says {size} bytes, the registry sent {}",
            bytes.len()
        );
    }
    if let Some(said) = said
        && said != digest
    {
        bail!(
            "the registry says the manifest {tag_or_digest} is {said}, but what it sent \
             hashes to {digest}: it is corrupt or was tampered with; nothing of it was kept"
        );
    }
    let fetched = manifest::parse(&bytes, media_type.as_deref())
        .with_context(|| format!("the manifest {tag_or_digest} ({digest})"))?;
    if matches!(fetched, Fetched::Manifest(_)) {
        lease.add(std::slice::from_ref(&digest), &[])?;
        store.put_blob(&bytes[..], &digest, Some(bytes.len() as u64))?;
    }
    Ok((digest, fetched))
}

// ANCHOR: transfer
/// Downloads the layers, [`PARALLEL`] at a time in their order, and, with `unpack`,
/// unpacks them as they download, [`PARALLEL`] at a time too (see [`unpacking`]).
fn transfer(
    shared: &Shared<'_>,
    reporter: &progress::Reporter,
    layers: &[Layer],
    unpack: Option<&unpack::Options>,
) -> Result<()> {
    let growing: Vec<Growing> = layers.iter().map(|_| Growing::default()).collect();
    // A blob listed twice is downloaded once: `first[i]` is its first listing.
    let first: Vec<usize> = layers
        .iter()
        .map(|l| layers.iter().position(|m| m.blob == l.blob).unwrap_or(0))
        .collect();
    let tasks: Vec<Option<progress::Task>> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| (first[i] == i).then(|| reporter.task(&l.blob, l.size)))
        .collect();
    let unpacking = unpack.map(|options| Unpacking {
        store: shared.store,
        reporter,
        layers,
        growing: &growing,
        first: &first,
        options,
        board: Board::new(layers.len()),
    });
    let next_download = AtomicUsize::new(0);
    let next_unpack = AtomicUsize::new(0);
    let download = |i: usize| match &tasks[i] {
        Some(task) => {
            let layer = &layers[i];
            download::download(shared, &layer.blob, layer.size, task, &growing[i])
        }
        None => Ok(()), // listed before
    };
    let count = layers.len();
    let threads = PARALLEL.min(count);
    std::thread::scope(|scope| {
        let downloads: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| take_turns(&next_download, count, &shared.cancel, download)))
            .collect();
        let unpackers: Vec<_> = match &unpacking {
            Some(unpacking) => (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        take_turns(&next_unpack, count, &shared.cancel, |i| unpacking.layer(i))
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        // A real failure is the one to report (the others are [`Cancelled`]): a
        // download's first (its unpacker saw it as a read error), else an unpacking's.
        let mut result = Ok(());
        for thread in downloads.into_iter().chain(unpackers) {
            let ended = thread
                .join()
                .unwrap_or_else(|_| Err(anyhow!("a thread of the pull panicked")));
            if let Err(err) = ended
                && !err.is::<Cancelled>()
                && result.is_ok()
            {
                result = Err(err);
            }
        }
        result
    })
}
// ANCHOR_END: transfer

/// Works on the layers `next` hands out, in their order, until none is left; returns
/// the first failure. A real failure (not [`Cancelled`]) stops the rest of the pull.
///
/// Layers are handed out in order, so what an unpacker waits for (its blob's bytes,
/// the layers below) is being done or done already: nobody waits for a worker that
/// waits.
fn take_turns(
    next: &AtomicUsize,
    count: usize,
    cancel: &AtomicBool,
    work: impl Fn(usize) -> Result<()>,
) -> Result<()> {
    let mut failed = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            break;
        }
        if let Err(err) = work(i) {
            if !err.is::<Cancelled>() {
                cancel.store(true, Ordering::Relaxed);
            }
            failed.get_or_insert(err);
        }
    }
    failed.map_or(Ok(()), Err)
}
