//! Scratch directories: removed after a passing test, kept for a look after a failing one.

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// Set (to anything) to keep every scratch dir, e.g. to read the logs of a passing run.
pub const KEEP_ENV: &str = "ARENA_KEEP_SCRATCH";

/// A fresh directory under the system temp dir (`arena-{tag}-XXXXXX`).
///
/// Removed on drop, unless the thread is panicking (a failing test: its files are evidence),
/// [`Scratch::keep`] was called, or [`KEEP_ENV`] is set; a kept dir's path goes to stderr.
pub struct Scratch {
    dir: tempfile::TempDir,
    keep: bool,
}

impl Scratch {
    pub fn new(tag: &str) -> Result<Scratch, String> {
        // `arena-pod` gives `arena-pod-XXXXXX`, `gw` gives `arena-gw-XXXXXX`.
        let tag = tag.strip_prefix("arena-").unwrap_or(tag);
        let dir = tempfile::Builder::new()
            .prefix(&format!("arena-{tag}-"))
            .tempdir()
            .map_err(|e| format!("cannot create a scratch dir for {tag}: {e}"))?;
        Ok(Scratch {
            dir,
            keep: std::env::var_os(KEEP_ENV).is_some(),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the directory when dropped.
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// `path/name` as a path.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.dir.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        if failing || self.keep {
            self.dir.disable_cleanup(true);
            let why = if failing { "the test failed" } else { "kept on request" };
            eprintln!("arena-testkit: scratch dir kept ({why}): {}", self.dir.path().display());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn removed_on_drop_kept_while_panicking() {
        let gone = Scratch::new("unit").unwrap();
        let gone_path = gone.to_path_buf();
        std::fs::write(gone.file("x"), "x").unwrap();
        drop(gone);
        assert!(!gone_path.exists());

        let kept_path = std::thread::spawn(|| {
            let s = Scratch::new("unit-panic").unwrap();
            let p = s.to_path_buf();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let _s = s;
                panic!("a failing test");
            }));
            assert!(r.is_err());
            p
        })
        .join()
        .unwrap();
        assert!(kept_path.exists(), "{}", kept_path.display());
        std::fs::remove_dir_all(&kept_path).unwrap();
    }
}
