//! Where release states outlive the process: one JSON file per gateway ([`FileStore`]), and
//! Redis for `scope: cluster` ([`RedisStore`]), where replicas share one state per release.
//!
//! The file is written whole, atomically (a temporary file in the same directory, synced,
//! renamed over the old one), and read once at start; a missing file is a first start, a
//! corrupt one is set aside as `<file>.corrupt` and every release starts fresh — a warning,
//! never a failed start. Entries that do not parse are dropped one by one. Both are blocking:
//! call them from `spawn_blocking` or a thread of their own.
//!
//! Redis holds `arena:release:v1:<name>` = the state's JSON. Writes are a Lua compare-and-set
//! on `generation`: a state is written only over an older one (or none, or an unreadable one),
//! so two replicas cannot clobber each other; the loser gets the stored state back and yields
//! to it ([`Release::yield_to`]). [`RedisStore::sync`] — called every 250 ms and after each
//! transition — takes a newer stored state or publishes a newer local one. While Redis is down
//! every call fails fast for a second at a time and the gateway keeps serving its local state
//! (and keeps writing the file); replicas catch up once it is back. Replicas that run different
//! fingerprints (a config rollout in progress) never take each other's state: they converge
//! once they run the same release ([`pick`] chooses what a start or a reload begins from).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::machine::ReleaseState;
use super::Release;
use crate::config::{RedisSpec, ReleaseSpec};

/// Prefix of every release's Redis key; the version changes with the value's format.
pub const REDIS_PREFIX: &str = "arena:release:v1:";

/// Largest state file read (far above 50 transitions × any number of releases): a bigger one
/// is not ours.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The Redis key of release `name`.
pub fn redis_key(name: &str) -> String {
    format!("{REDIS_PREFIX}{name}")
}

/// What a release (re)starts from among the states found (its own, the file's, Redis'): the
/// newest that belongs to this rollout, else the newest of any — [`reconcile`] then starts
/// over above its generation, so every replica takes the fresh state as the newest.
///
/// [`reconcile`]: super::reconcile
pub fn pick(spec: &ReleaseSpec, candidates: impl IntoIterator<Item = Option<ReleaseState>>) -> Option<ReleaseState> {
    let all: Vec<ReleaseState> = candidates.into_iter().flatten().collect();
    let best_fitting = all
        .iter()
        .filter(|s| s.is_consistent(spec))
        .max_by_key(|s| s.generation)
        .cloned();
    best_fitting.or_else(|| all.into_iter().max_by_key(|s| s.generation))
}

// ------------------------------------------------------------------------------ file

#[derive(Serialize)]
struct FileOut<'a> {
    version: u32,
    releases: &'a BTreeMap<String, ReleaseState>,
}

#[derive(Deserialize)]
struct FileIn {
    version: u32,
    releases: BTreeMap<String, serde_json::Value>,
}

const FILE_VERSION: u32 = 1;

/// Every release's state in one JSON file.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> FileStore {
        FileStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every state the file holds (by release name); empty when there is no usable file.
    pub fn load(&self) -> BTreeMap<String, ReleaseState> {
        let bytes = match read_capped(&self.path) {
            Ok(Some(b)) => b,
            Ok(None) => return BTreeMap::new(),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the release state file; releases start fresh");
                return BTreeMap::new();
            }
        };
        match parse_file(&bytes) {
            Ok(ParsedFile { states, dropped }) => {
                for (name, e) in dropped {
                    tracing::warn!(path = %self.path.display(), release = %name, error = %e, "unreadable release state dropped; it starts fresh");
                }
                states
            }
            Err(e) => {
                let aside = self.aside();
                let kept = fs::rename(&self.path, &aside).is_ok();
                tracing::warn!(
                    path = %self.path.display(),
                    error = %e,
                    kept_as = %if kept { aside.display().to_string() } else { "-".into() },
                    "corrupt release state file; releases start fresh"
                );
                BTreeMap::new()
            }
        }
    }

    fn aside(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".corrupt");
        self.path.with_file_name(name)
    }

    /// Replaces the file with `states`, atomically: a reader (or a crash) sees the old file or
    /// the new one, never half of one.
    pub fn save(&self, states: &BTreeMap<String, ReleaseState>) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(&FileOut {
            version: FILE_VERSION,
            releases: states,
        })
        .map_err(io::Error::other)?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".tmp.{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        // The rename is durable once the directory is; best effort (not every filesystem can).
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// The file's bytes; `None` when it does not exist.
fn read_capped(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        // Treated as corrupt by the parse below.
        return Ok(Some(b"too large".to_vec()));
    }
    Ok(Some(bytes))
}

/// What a state file holds.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub states: BTreeMap<String, ReleaseState>,
    /// Entries that did not parse: (release name, why).
    pub dropped: Vec<(String, String)>,
}

/// The states of a state file, and the entries that were dropped with why.
pub fn parse_file(bytes: &[u8]) -> Result<ParsedFile, String> {
    let file: FileIn = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != FILE_VERSION {
        return Err(format!(
            "state file version {} (this build reads {FILE_VERSION})",
            file.version
        ));
    }
    let mut states = BTreeMap::new();
    let mut dropped = Vec::new();
    for (name, value) in file.releases {
        match serde_json::from_value::<ReleaseState>(value) {
            Ok(s) => {
                states.insert(name, s);
            }
            Err(e) => dropped.push((name, e.to_string())),
        }
    }
    Ok(ParsedFile { states, dropped })
}

// ------------------------------------------------------------------------------ redis

/// Writes ARGV[2] when the stored state's generation is below ARGV[1] (or there is none, or
/// it is unreadable). Returns {1, ''} when written, {0, stored} when not.
const CAS_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, v = pcall(cjson.decode, cur)
  if ok and type(v) == 'table' and type(v.generation) == 'number'
     and v.generation >= tonumber(ARGV[1]) then
    return {0, cur}
  end
end
redis.call('SET', KEYS[1], ARGV[2])
return {1, ''}
";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("redis unavailable (retrying shortly)")]
    Down,
    #[error("redis timed out")]
    Timeout,
    #[error("redis: {0}")]
    Redis(String),
    #[error("unreadable release state in redis: {0}")]
    Corrupt(String),
}

/// The answer of a compare-and-set write.
#[derive(Debug, Clone, PartialEq)]
pub enum Saved {
    Written,
    /// Redis holds a state at least as new; here it is (`None`: one this build cannot read).
    Conflict(Option<ReleaseState>),
}

/// What [`RedisStore::sync`] did; after `Adopted` and `Yielded` the release's state changed
/// (write the state file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    /// Both agree (or the stored one belongs to another rollout and ours is not newer).
    Unchanged,
    /// A newer stored state was taken.
    Adopted,
    /// Ours was newer (or Redis had none) and was written.
    Published,
    /// Ours lost a race for the same generation; the stored one was taken.
    Yielded,
}

/// How long to stay away from Redis after a failure.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Release states shared through Redis.
pub struct RedisStore {
    client: redis::Client,
    conn: OnceLock<ConnectionManager>,
    script: redis::Script,
    timeout: Duration,
    down_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on `spec`'s Redis (connects lazily); at least 250 ms per call, as a state is no
    /// request-path read.
    pub fn new(spec: &RedisSpec) -> Result<RedisStore, redis::RedisError> {
        Ok(RedisStore {
            client: redis::Client::open(spec.url.expose())?,
            conn: OnceLock::new(),
            script: redis::Script::new(CAS_SCRIPT),
            timeout: spec.timeout.max(Duration::from_millis(250)),
            down_until: Mutex::new(None),
        })
    }

    fn connection(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        let c = crate::resilience::rate_limit::lazy_connection(&self.client, self.timeout)
            .map_err(|e| StoreError::Redis(e.to_string()))?;
        Ok(self.conn.get_or_init(|| c).clone())
    }

    fn check_up(&self) -> Result<(), StoreError> {
        let mut d = self.down_until.lock().unwrap_or_else(PoisonError::into_inner);
        match *d {
            Some(until) if Instant::now() < until => Err(StoreError::Down),
            Some(_) => {
                *d = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn failed(&self, e: StoreError) -> StoreError {
        let mut d = self.down_until.lock().unwrap_or_else(PoisonError::into_inner);
        if d.is_none() {
            tracing::warn!(error = %e, "redis unavailable; releases keep their local state");
        }
        *d = Some(Instant::now() + RETRY_AFTER);
        e
    }

    async fn run<T>(&self, call: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.failed(StoreError::Redis(e.to_string()))),
            Err(_) => Err(self.failed(StoreError::Timeout)),
        }
    }

    /// The stored state of release `name`, if any.
    pub async fn load(&self, name: &str) -> Result<Option<ReleaseState>, StoreError> {
        self.check_up()?;
        let mut conn = self.connection()?;
        let key = redis_key(name);
        let mut cmd = redis::cmd("GET");
        cmd.arg(&key);
        let raw: Option<String> = self.run(cmd.query_async(&mut conn)).await?;
        raw.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    /// Writes `state` unless Redis holds one at least as new (see the module docs).
    pub async fn save(&self, name: &str, state: &ReleaseState) -> Result<Saved, StoreError> {
        self.check_up()?;
        let mut conn = self.connection()?;
        let json = serde_json::to_string(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut invocation = self.script.key(redis_key(name));
        invocation.arg(state.generation).arg(json);
        let (written, stored): (i64, String) = self.run(invocation.invoke_async(&mut conn)).await?;
        if written == 1 {
            return Ok(Saved::Written);
        }
        Ok(Saved::Conflict(serde_json::from_str(&stored).ok()))
    }

    /// Brings `release` and Redis together: takes a newer stored state, or publishes ours
    /// when it is newer. On error the release keeps its state.
    pub async fn sync(&self, release: &Release) -> Result<Synced, StoreError> {
        let stored = match self.load(release.name()).await {
            Ok(s) => s,
            // An unreadable value is overwritten by ours (the script treats it as absent).
            Err(StoreError::Corrupt(_)) => None,
            Err(e) => return Err(e),
        };
        let ours = release.state();
        if let Some(s) = stored {
            if s.generation > ours.generation {
                return Ok(if release.adopt(s) {
                    Synced::Adopted
                } else {
                    Synced::Unchanged
                });
            }
            if s.generation == ours.generation {
                // The same generation made twice (a change here while Redis was away, another
                // there): Redis' copy is the one the other replicas see, so it wins.
                if same_rollout(&s, &ours) || !release.yield_to(s) {
                    return Ok(Synced::Unchanged);
                }
                return Ok(Synced::Yielded);
            }
        }
        match self.save(release.name(), &ours).await? {
            Saved::Written => Ok(Synced::Published),
            Saved::Conflict(Some(s)) if release.yield_to(s.clone()) => Ok(Synced::Yielded),
            Saved::Conflict(_) => Ok(Synced::Unchanged),
        }
    }
}

/// Two states that say the same about the rollout (verdicts and step timers are each
/// replica's own).
fn same_rollout(a: &ReleaseState, b: &ReleaseState) -> bool {
    (
        a.phase,
        a.weight_bp,
        a.step,
        a.step_since_ms,
        a.fingerprint,
        a.generation,
    ) == (
        b.phase,
        b.weight_bp,
        b.step,
        b.step_since_ms,
        b.fingerprint,
        b.generation,
    )
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
