//! Arena load tester library.

pub mod engine;
pub mod fleet;
pub mod report;
pub mod scenario;
