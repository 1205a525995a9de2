//! Real FaaS runtimes on loopback for the gateway's fallback invokers: panicking layers over
//! `arena_testkit::faas` (the Functions Framework and serverless-offline, installed by
//! `deploy/local/faas-setup.sh`; each in its own process group, killed whole on drop).

#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::ops::{Deref, DerefMut};

pub use arena_testkit::faas::{LAMBDA_FUNCTION, SETUP};
pub use arena_testkit::repo_root;

/// `loadtest/faas/http/main.py` served by the Functions Framework on a free loopback port.
pub struct HttpFunction(pub arena_testkit::HttpFunction);

impl HttpFunction {
    pub fn start() -> HttpFunction {
        HttpFunction(arena_testkit::HttpFunction::start().unwrap_or_else(|e| panic!("{e}")))
    }
}

impl Deref for HttpFunction {
    type Target = arena_testkit::HttpFunction;

    fn deref(&self) -> &arena_testkit::HttpFunction {
        &self.0
    }
}

impl DerefMut for HttpFunction {
    fn deref_mut(&mut self) -> &mut arena_testkit::HttpFunction {
        &mut self.0
    }
}

/// `loadtest/faas/lambda` run by `serverless offline` (the Lambda Invoke API).
pub struct LambdaEmulator(pub arena_testkit::LambdaEmulator);

impl LambdaEmulator {
    pub fn start() -> LambdaEmulator {
        LambdaEmulator(arena_testkit::LambdaEmulator::start().unwrap_or_else(|e| panic!("{e}")))
    }
}

impl Deref for LambdaEmulator {
    type Target = arena_testkit::LambdaEmulator;

    fn deref(&self) -> &arena_testkit::LambdaEmulator {
        &self.0
    }
}

impl DerefMut for LambdaEmulator {
    fn deref_mut(&mut self) -> &mut arena_testkit::LambdaEmulator {
        &mut self.0
    }
}
