//! Arena load tester library.

pub mod engine;
pub mod fleet;
pub mod release;
pub mod report;
pub mod scenario;
