//! Unit tests of `store`: the file in temp dirs; Redis against a real `redis-server` on a free
//! loopback port (skipped, with a note, where none is installed).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::process::Command;

use proptest::prelude::*;

use super::*;
use crate::config::Secret;
use crate::release::testing::spec;
use crate::release::{Operator, Phase, Release};

const STEPS: [u16; 3] = [100, 5000, 10_000];
const T0_MS: u64 = 1_700_000_000_000;

fn states() -> BTreeMap<String, ReleaseState> {
    let s = spec("a", &STEPS);
    let mut a = crate::release::reconcile(&s, None, T0_MS);
    a.set_weight(&s, 700, T0_MS + 1).unwrap();
    let b = crate::release::reconcile(&spec("b", &[]), None, T0_MS);
    BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)])
}

#[test]
fn the_file_round_trips_and_leaves_no_temporary_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("releases.json"));
    assert!(store.load().is_empty(), "no file: a first start");
    let all = states();
    store.save(&all).unwrap();
    assert_eq!(store.load(), all);
    // Saved again over the old one; only the file itself is left in the directory.
    let mut fewer = all.clone();
    fewer.remove("b");
    store.save(&fewer).unwrap();
    assert_eq!(store.load(), fewer);
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["releases.json"]);
    let text = fs::read_to_string(store.path()).unwrap();
    assert!(
        text.contains("\"version\": 1") && text.contains("\"phase\": \"paused\""),
        "{text}"
    );
}

#[test]
fn a_corrupt_file_is_set_aside_and_releases_start_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("releases.json");
    let store = FileStore::new(&path);
    for bad in [
        &b"{\"version\": 1, \"releases\": {"[..],
        b"\xff\xfe",
        b"[]",
        b"{\"version\": 2, \"releases\": {}}",
    ] {
        fs::write(&path, bad).unwrap();
        assert!(store.load().is_empty());
        assert!(!path.exists());
        assert_eq!(fs::read(dir.path().join("releases.json.corrupt")).unwrap(), bad);
    }
    // Too large to be ours.
    fs::write(&path, vec![b' '; MAX_FILE_BYTES as usize + 1]).unwrap();
    assert!(store.load().is_empty());
    // One bad entry is dropped, the others kept.
    let good = serde_json::to_value(&states()["a"]).unwrap();
    let text = serde_json::json!({ "version": 1, "releases": { "a": good, "b": { "phase": "exploded" } } });
    fs::write(&path, text.to_string()).unwrap();
    let loaded = store.load();
    assert_eq!(loaded.keys().collect::<Vec<_>>(), ["a"]);
    // Unwritable places are an error, not a panic.
    let nowhere = FileStore::new(dir.path().join("missing-dir").join("releases.json"));
    assert!(nowhere.save(&states()).is_err());
    assert!(nowhere.load().is_empty());
}

#[test]
fn pick_prefers_the_newest_state_of_this_rollout() {
    let s = spec("a", &STEPS);
    let mut mine = crate::release::reconcile(&s, None, T0_MS);
    mine.generation = 4;
    let mut newer = mine.clone();
    newer.set_weight(&s, 300, T0_MS).unwrap();
    let mut foreign = crate::release::reconcile(&spec("a", &[100]), None, T0_MS);
    foreign.generation = 9;
    assert_eq!(
        pick(
            &s,
            [Some(mine.clone()), None, Some(newer.clone()), Some(foreign.clone())]
        ),
        Some(newer)
    );
    // Nothing of this rollout: the newest of any, so the fresh start is newer still.
    let picked = pick(&s, [None, Some(foreign.clone())]);
    assert_eq!(crate::release::reconcile(&s, picked, T0_MS).generation, 10);
    assert_eq!(pick(&s, [None, None]), None);
}

proptest! {
    #![proptest_config(crate::props::config(512))]

    #[test]
    fn any_file_bytes_parse_or_fail_without_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_file(&bytes);
    }

    #[test]
    fn any_state_file_json_parses_or_fails_without_a_panic(
        releases in proptest::collection::btree_map("[a-z]{1,4}", prop_oneof![
            Just(serde_json::json!(null)),
            Just(serde_json::json!({ "phase": "paused" })),
            any::<u64>().prop_map(|n| serde_json::json!({
                "phase": "paused", "weight_bp": n, "step": n, "step_since_ms": n,
                "fingerprint": format!("{n:x}"), "generation": n,
            })),
        ], 0..4),
        version in 0u32..3,
    ) {
        let text = serde_json::json!({ "version": version, "releases": releases });
        if let Ok(parsed) = parse_file(text.to_string().as_bytes()) {
            prop_assert_eq!(parsed.states.len() + parsed.dropped.len(), releases.len());
        }
    }
}

// ------------------------------------------------------------------------------ redis

/// A real redis-server on a free loopback port, or `None` (with a note) without one.
fn redis_server() -> Option<(arena_testkit::Process, RedisSpec)> {
    if Command::new("redis-server").arg("--version").output().is_err() {
        println!("note: redis-server is not installed; skipping the Redis release store test");
        return None;
    }
    let (proc, addr) = arena_testkit::redis::start().unwrap();
    let url = format!("redis://{addr}");
    let spec = RedisSpec {
        url: Secret::new(url.clone()),
        shown_url: url,
        timeout: Duration::from_millis(100),
        replicas: None,
    };
    Some((proc, spec))
}

#[tokio::test]
async fn replicas_share_release_states_through_redis() {
    let Some((mut server, redis)) = redis_server() else {
        return;
    };
    let store = RedisStore::new(&redis).unwrap();
    let s = spec("match-api-v2", &STEPS);
    let now = Instant::now();
    let a = Release::new(s.clone(), None, now, T0_MS);
    let b = Release::new(s.clone(), None, now, T0_MS);
    assert_eq!(store.load("match-api-v2").await.unwrap(), None);

    // Compare-and-set on the generation.
    assert_eq!(store.save("match-api-v2", &a.state()).await.unwrap(), Saved::Written);
    assert_eq!(
        store.save("match-api-v2", &b.state()).await.unwrap(),
        Saved::Conflict(Some(a.state()))
    );
    assert_eq!(store.load("match-api-v2").await.unwrap(), Some(a.state()));
    assert_eq!(store.sync(&b).await.unwrap(), Synced::Unchanged);

    // An operator on replica a; b takes it on its next poll.
    a.apply(Operator::SetWeight(2000), T0_MS + 1).unwrap();
    assert_eq!(store.sync(&a).await.unwrap(), Synced::Published);
    assert_eq!(store.sync(&b).await.unwrap(), Synced::Adopted);
    assert_eq!(b.weight_bp(), 2000);

    // Both change the same generation: the first to write wins, the other yields to it.
    a.apply(Operator::Resume, T0_MS + 2).unwrap();
    b.apply(Operator::Rollback("b saw errors".into()), T0_MS + 2).unwrap();
    assert_eq!(store.sync(&b).await.unwrap(), Synced::Published);
    assert_eq!(store.sync(&a).await.unwrap(), Synced::Yielded);
    assert_eq!((a.weight_bp(), a.state().phase), (0, Phase::RolledBack));
    assert_eq!(a.state().generation, b.state().generation);

    // An unreadable value is replaced by the next write.
    let mut conn = redis::Client::open(redis.url.expose())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(redis_key("match-api-v2"))
        .arg("garbage")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(matches!(store.load("match-api-v2").await, Err(StoreError::Corrupt(_))));
    assert_eq!(store.sync(&a).await.unwrap(), Synced::Published);
    assert_eq!(store.load("match-api-v2").await.unwrap(), Some(a.state()));

    // Redis gone: calls fail fast, the releases keep their state.
    server.kill();
    let before = a.state();
    let started = std::time::Instant::now();
    assert!(store.sync(&a).await.is_err());
    assert_eq!(
        store.sync(&a).await,
        Err(StoreError::Down),
        "no second try within the pause"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(a.state(), before);
    assert_eq!(a.apply(Operator::SetWeight(100), T0_MS + 3).unwrap().weight_bp, 100);
}
