//! Arena load tester library.

pub mod pod;
