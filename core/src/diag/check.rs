//! Collecting every problem of a YAML document with its position: shared by the gateway's
//! configuration and the load tester's scenario files, so both report errors alike.

use saphyr::MarkedYamlOwned;
use serde::de::DeserializeOwned;

use super::diagnostic::{ConfigErrors, Diagnostic, Severity};
use super::yaml::{self, Pos, Seg};

/// Parses YAML text, turning a syntax error into a positioned diagnostic.
/// Reads a configuration file: its text and the origin its diagnostics name, or the one
/// diagnostic that says why it cannot be read.
pub fn read_config(path: &std::path::Path) -> Result<(String, String), ConfigErrors> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text, origin)),
        Err(e) => Err(ConfigErrors(vec![Diagnostic::new(
            Severity::Error,
            &origin,
            None,
            format!("cannot read configuration: {e}"),
            Some("check the path given with -c/--config".into()),
        )])),
    }
}

pub fn parse_document(text: &str, origin: &str) -> Result<MarkedYamlOwned, ConfigErrors> {
    yaml::parse(text).map_err(|(pos, msg)| {
        ConfigErrors(vec![Diagnostic::new(
            Severity::Error,
            origin,
            Some(pos),
            format!("YAML syntax error: {msg}"),
            Some("check indentation and quoting near this position".into()),
        )])
    })
}

/// Looks up an environment variable (`${env:NAME}`, token variables).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Diagnostics against one parsed document, read against one environment.
pub struct Diagnostics<'a> {
    root: &'a MarkedYamlOwned,
    origin: &'a str,
    text: &'a str,
    env: Env<'a>,
    list: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    /// Diagnostics whose environment is the process's.
    pub fn new(root: &'a MarkedYamlOwned, origin: &'a str, text: &'a str) -> Self {
        Self::with_env(root, origin, text, &process_env)
    }

    /// Diagnostics whose environment variables come from `env` (tests, `check` of another
    /// machine's environment).
    pub fn with_env(root: &'a MarkedYamlOwned, origin: &'a str, text: &'a str, env: Env<'a>) -> Self {
        Diagnostics {
            root,
            origin,
            text,
            env,
            list: Vec::new(),
        }
    }

    /// The value of environment variable `name`, if set.
    pub fn env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// The source character at a position (to point inside quoted scalars).
    pub fn char_at(&self, pos: Pos) -> Option<char> {
        self.text
            .lines()
            .nth(pos.line.checked_sub(1)?)?
            .chars()
            .nth(pos.col.checked_sub(1)?)
    }

    /// The file name used in messages.
    pub fn origin(&self) -> &'a str {
        self.origin
    }

    /// The whole document (to look at sibling sections).
    pub fn root(&self) -> &'a MarkedYamlOwned {
        self.root
    }

    /// Everything reported so far.
    pub fn list(&self) -> &[Diagnostic] {
        &self.list
    }

    /// Hands over everything reported.
    pub fn into_list(self) -> Vec<Diagnostic> {
        self.list
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        self.push(Severity::Error, pos, message.into(), hint);
    }

    pub fn warn(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        self.push(Severity::Warning, pos, message.into(), hint);
    }

    /// Reports `key` (at `key_node`) as unknown among `known`, the closest one as the hint;
    /// `what` names the kind of key ("top-level key", "outbound key").
    pub fn unknown_key(&mut self, key_node: &MarkedYamlOwned, key: &str, what: &str, known: &[&str]) {
        let list = known.join(", ");
        let hint = match yaml::closest(key, known) {
            Some(best) => format!("did you mean `{best}`? {what}s: {list}"),
            None => format!("{what}s: {list}"),
        };
        self.error(yaml::pos(key_node), format!("unknown {what} `{key}`"), Some(hint));
    }

    /// Reports at the node found by `path` (or its nearest existing ancestor).
    pub fn error_at(&mut self, path: &[Seg], message: impl Into<String>, hint: Option<String>) {
        let pos = yaml::locate(self.root, path);
        self.error(pos, message, hint);
    }

    pub fn warn_at(&mut self, path: &[Seg], message: impl Into<String>, hint: Option<String>) {
        let pos = yaml::locate(self.root, path);
        self.warn(pos, message, hint);
    }

    /// True once any error was reported.
    pub fn has_errors(&self) -> bool {
        self.list.iter().any(Diagnostic::is_error)
    }

    /// Decodes one node into `T` (with `deny_unknown_fields` hints), reporting failures.
    pub fn decode<T: DeserializeOwned>(&mut self, node: &MarkedYamlOwned) -> Option<T> {
        match yaml::from_node::<T>(node) {
            Ok(v) => Some(v),
            Err(e) => {
                let pos = e.pos.unwrap_or_else(|| yaml::pos(node));
                self.push(Severity::Error, pos, e.message, e.hint);
                None
            }
        }
    }

    /// Decodes each item of a list on its own, so one bad item does not hide the next.
    /// Returns `(index, value)` for the items that decoded.
    pub fn decode_list<T: DeserializeOwned>(&mut self, node: &MarkedYamlOwned, key: &str) -> Vec<(usize, T)> {
        if yaml::is_null(node) {
            return Vec::new();
        }
        let Some(items) = yaml::items(node) else {
            self.error(
                yaml::pos(node),
                format!("`{key}` must be a list"),
                Some(format!("write `{key}:` followed by `- ...` items")),
            );
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.decode::<T>(n).map(|v| (i, v)))
            .collect()
    }

    fn push(&mut self, sev: Severity, pos: Pos, message: String, hint: Option<String>) {
        self.list
            .push(Diagnostic::new(sev, self.origin, Some(pos), message, hint));
    }
}
