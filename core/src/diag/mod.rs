//! The YAML configuration language shared by every Arena file (gateway, sidecar, load
//! scenarios): a position-keeping YAML → serde bridge ([`yaml`]), diagnostics with
//! `file:line:column` and a hint ([`Diagnostic`]), and the collector that decodes a document
//! section by section so that every problem is reported at once ([`Diagnostics`]).

mod check;
mod diagnostic;
pub mod yaml;

pub use check::{parse_document, read_config, Diagnostics, Env};
pub use diagnostic::{ConfigErrors, Diagnostic, Severity};
pub use yaml::{closest, Pos, Seg};
