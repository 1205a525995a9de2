//! Unit tests of the module above.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::{AimdSpec, QueueSpec};

fn fixed(limit: u32, queue: u32) -> Arc<Limiter> {
    Limiter::new(
        &LimitSpec::Fixed { limit },
        QueueSpec {
            max: queue,
            timeout: Duration::from_millis(50),
        },
    )
}

#[tokio::test(start_paused = true)]
async fn admits_to_the_limit_queues_in_order_and_sheds_beyond() {
    let l = fixed(2, 2);
    let a = l.acquire().await.unwrap();
    let _b = l.acquire().await.unwrap();
    assert_eq!(l.in_flight(), 2);
    let (l1, l2, l3) = (Arc::clone(&l), Arc::clone(&l), Arc::clone(&l));
    let first = tokio::spawn(async move { l1.acquire().await.map(|_p| "first") });
    tokio::task::yield_now().await;
    let second = tokio::spawn(async move {
        l2.acquire().await.map(|p| {
            std::mem::forget(p);
            "second"
        })
    });
    tokio::task::yield_now().await;
    assert_eq!(l.queued(), 2);
    let third = tokio::spawn(async move { l3.acquire().await.map(|_| ()) });
    assert_eq!(third.await.unwrap().err(), Some(Refusal::QueueFull));
    drop(a);
    // The freed slot went to the oldest waiter, without ever exceeding the limit.
    assert_eq!(first.await.unwrap(), Ok("first"));
    assert!(l.in_flight() <= 2);
    assert_eq!(second.await.unwrap(), Ok("second"));
    assert_eq!(l.in_flight(), 2);
    assert_eq!(l.queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_gives_up_at_the_queue_timeout() {
    let l = fixed(1, 8);
    let held = l.acquire().await.unwrap();
    let started = tokio::time::Instant::now();
    assert_eq!(l.acquire().await.err(), Some(Refusal::QueueTimeout));
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    assert_eq!(l.queued(), 0);
    drop(held);
    assert_eq!(l.in_flight(), 0);
    let _again = l.acquire().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn no_queue_sheds_at_once_and_a_reload_raises_the_limit_for_waiters() {
    let l = fixed(1, 0);
    let _held = l.acquire().await.unwrap();
    assert_eq!(l.acquire().await.err(), Some(Refusal::QueueFull));
    l.reconfigure(
        &LimitSpec::Fixed { limit: 1 },
        QueueSpec {
            max: 4,
            timeout: Duration::from_secs(1),
        },
    );
    let l2 = Arc::clone(&l);
    let waiter = tokio::spawn(async move { l2.acquire().await.map(std::mem::forget) });
    tokio::task::yield_now().await;
    assert_eq!(l.queued(), 1);
    l.reconfigure(
        &LimitSpec::Fixed { limit: 2 },
        QueueSpec {
            max: 4,
            timeout: Duration::from_secs(1),
        },
    );
    assert_eq!(waiter.await.unwrap(), Ok(()));
    assert_eq!(l.in_flight(), 2);
}

/// Many tasks on a multi-threaded runtime: the in-flight count never passes the limit and
/// every slot comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_over_the_limit_under_contention() {
    let l = Limiter::new(
        &LimitSpec::Fixed { limit: 3 },
        QueueSpec {
            max: 1000,
            timeout: Duration::from_secs(30),
        },
    );
    let over = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (l, over) = (Arc::clone(&l), Arc::clone(&over));
            tokio::spawn(async move {
                let p = l.acquire().await.unwrap();
                if l.in_flight() > 3 {
                    over.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                tokio::task::yield_now().await;
                p.finish(Sample::Ignore);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(!over.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!((l.in_flight(), l.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn aimd_moves_the_admitted_limit() {
    let l = Limiter::new(
        &LimitSpec::Aimd(AimdSpec {
            initial: 4,
            min: 1,
            max: 10,
            latency_threshold: Duration::from_millis(100),
            backoff: 0.5,
        }),
        QueueSpec {
            max: 0,
            timeout: Duration::from_millis(10),
        },
    );
    let permits: Vec<_> = futures_lite(&l, 4).await;
    for p in permits {
        p.finish(Sample::TimedOut);
    }
    assert_eq!(l.limit(), 1);
    let _one = l.acquire().await.unwrap();
    assert_eq!(l.acquire().await.err(), Some(Refusal::QueueFull));
}

async fn futures_lite(l: &Arc<Limiter>, n: usize) -> Vec<Permit> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(l.acquire().await.unwrap());
    }
    out
}
