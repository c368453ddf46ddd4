//! Downloading one blob into the store: resumed where it broke, readable while it grows.
//!
//! The bytes go straight into the store's staging file for the blob, hashed on the way
//! ([`crate::store::BlobWriter`]). When the connection breaks, or stalls, or ends
//! early, the download asks again with `Range: bytes=<what is written>-`, so nothing
//! already on disk is fetched twice; the hash goes on over the new bytes, and only the
//! whole blob, checked against its digest, gets its name in the store.
//!
//! A layer is unpacked while it downloads: the unpacker reads the staging file through
//! a [`Follow`], which waits for bytes that are not written yet, and ends only once
//! the blob was verified whole. A blob that turns out corrupt ends the unpacking with
//! an error, so the layer is not kept either.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::progress::Task;
use super::registry::{Registry, Transient, is_transient};
use crate::digest::Digest;
use crate::store::{BlobWriter, Store};

/// How many times a blob is asked for before the pull gives up.
pub(crate) const ATTEMPTS: u32 = 5;

/// A download stopped because the pull failed elsewhere.
#[derive(Debug)]
pub(crate) struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped: another part of the pull failed")
    }
}

impl std::error::Error for Cancelled {}

/// What the downloads of one pull share.
pub(crate) struct Shared<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) store: &'a Store,
    /// Set when any part of the pull fails: the other downloads stop.
    pub(crate) cancel: AtomicBool,
    /// Bytes received from the registry.
    pub(crate) received: AtomicU64,
}

/// A blob as it is written: where, how much of it, and how it ended.
#[derive(Default)]
pub(crate) struct Growing {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    file: Option<Arc<File>>,
    written: u64,
    /// `Some` once the download ended: `Ok` only if the blob was verified.
    end: Option<Result<(), String>>,
}

impl Growing {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few plain fields, whole after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }

    /// Whether the download ended in failure.
    pub(crate) fn failed(&self) -> bool {
        matches!(self.lock().end, Some(Err(_)))
    }
}

/// Downloads the blob `digest` of `size` bytes into the store, unless it is there.
pub(crate) fn download(
    shared: &Shared<'_>,
    digest: &Digest,
    size: u64,
    task: &Task,
    growing: &Growing,
) -> Result<()> {
    let result = fetch_resuming(shared, digest, size, task, growing);
    if result.is_err() {
        task.failed();
    }
    growing.update(|state| {
        state.end = Some(result.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")))
    });
    result
}

fn fetch_resuming(
    shared: &Shared<'_>,
    digest: &Digest,
    size: u64,
    task: &Task,
    growing: &Growing,
) -> Result<()> {
    if shared.store.has_blob(digest) {
        let file = shared.store.open_blob(digest)?;
        growing.update(|state| {
            state.file = Some(Arc::new(file));
            state.written = size;
        });
        task.exists();
        return Ok(());
    }
    let mut writer = shared.store.blob_writer(digest, Some(size))?;
    let reader = Arc::new(writer.reader()?);
    growing.update(|state| state.file = Some(reader));
    task.downloading();
    let mut attempt = 1;
    loop {
        match fetch(shared, digest, size, &mut writer, task, growing) {
            Ok(()) => break,
            Err(err) if is_transient(&err) && attempt < ATTEMPTS => {
                task.resuming(writer.written(), &err);
                // A little longer each time: a registry that is restarting gets time.
                std::thread::sleep(Duration::from_millis(200 << attempt));
                attempt += 1;
            }
            Err(err) if attempt > 1 => {
                return Err(err.context(format!(
                    "downloading the blob {digest}: gave up after {attempt} attempts"
                )));
            }
            Err(err) => return Err(err),
        }
    }
    writer.commit()?;
    task.done();
    Ok(())
}

/// One request for the rest of the blob, written as it comes.
fn fetch(
    shared: &Shared<'_>,
    digest: &Digest,
    size: u64,
    writer: &mut BlobWriter,
    task: &Task,
    growing: &Growing,
) -> Result<()> {
    let offset = writer.written();
    let (mut response, start) = shared.registry.blob(digest, offset)?;
    // A registry that ignores `Range` sends the blob from its start: what is written
    // already is skipped.
    let mut skip = offset - start;
    loop {
        let chunk = shared
            .registry
            .block_on(response.chunk())
            .with_context(|| format!("downloading the blob {digest}"))?;
        let Some(chunk) = chunk else { break };
        if shared.cancel.load(Ordering::Relaxed) {
            return Err(Cancelled.into());
        }
        shared
            .received
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        let cut = usize::try_from(skip).unwrap_or(usize::MAX).min(chunk.len());
        skip -= cut as u64;
        writer
            .write_all(&chunk[cut..])
            .with_context(|| format!("writing the blob {digest}"))?;
        let written = writer.written();
        growing.update(|state| state.written = written);
        task.at(written);
    }
    if writer.written() < size {
        bail!(Transient(format!(
            "the blob {digest}: the connection ended after {} of its {size} bytes",
            writer.written()
        )));
    }
    Ok(())
}

/// Reads a [`Growing`] blob from its start, waiting for what is not written yet; the
/// end comes only when the blob was verified, and a failed download is an error.
pub(crate) struct Follow<'a> {
    growing: &'a Growing,
    position: u64,
}

impl<'a> Follow<'a> {
    pub(crate) fn new(growing: &'a Growing) -> Self {
        Self {
            growing,
            position: 0,
        }
    }
}

impl Read for Follow<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut state = self.growing.lock();
        let (file, available) = loop {
            if let Some(Err(failed)) = &state.end {
                return Err(io::Error::other(failed.clone()));
            }
            match &state.file {
                Some(file) if self.position < state.written => {
                    break (Arc::clone(file), state.written - self.position);
                }
                Some(_) if state.end.is_some() => return Ok(0), // whole and verified
                _ => {}
            }
            state = self
                .growing
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        };
        drop(state);
        let len = usize::try_from(available)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = file.read_at(&mut buf[..len], self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_waits_for_bytes_and_for_the_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut file = File::create(&path).unwrap();
        let growing = Growing::default();
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut out = Vec::new();
                let result = Follow::new(&growing).read_to_end(&mut out);
                (result.map_err(|e| e.to_string()), out)
            });
            growing.update(|s| s.file = Some(Arc::new(File::open(&path).unwrap())));
            for piece in [&b"hello "[..], b"world"] {
                file.write_all(piece).unwrap();
                growing.update(|s| s.written += piece.len() as u64);
            }
            growing.update(|s| s.end = Some(Ok(())));
            let (result, out) = reader.join().unwrap();
            assert_eq!(result, Ok(11));
            assert_eq!(out, b"hello world");
        });

        // A failed download ends the reading with its error.
        let failed = Growing::default();
        failed.update(|s| s.end = Some(Err("the blob is corrupt".into())));
        let err = Follow::new(&failed).read(&mut [0; 4]).unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
    }
}
