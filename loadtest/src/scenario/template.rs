//! `{var}` templates for request paths, header values and bodies.
//!
//! A `{` starts a variable only when followed by an identifier and `}`; any other brace is
//! literal, so JSON bodies such as `{"kills":{kills}}` need no escaping.

use std::fmt::Write as _;

use rand::Rng;

/// One compiled template: literal runs and variable slots.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var(usize),
}

/// How a variable draws its value.
#[derive(Debug, Clone, PartialEq)]
pub enum VarGen {
    Pick(Vec<String>),
    Range(i64, i64),
}

/// A named variable of the scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Var {
    pub name: String,
    pub generator: VarGen,
}

impl Var {
    /// Appends one random value to `out`.
    pub fn render(&self, rng: &mut impl Rng, out: &mut String) {
        match &self.generator {
            VarGen::Pick(choices) => {
                if !choices.is_empty() {
                    out.push_str(&choices[rng.random_range(0..choices.len())]);
                }
            }
            VarGen::Range(lo, hi) => {
                let _ = write!(out, "{}", rng.random_range(*lo..=*hi));
            }
        }
    }
}

/// Variable names referenced by `text`, with their byte offsets, in order.
pub fn references(text: &str) -> Vec<(usize, &str)> {
    let mut refs = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' {
            if let Some(len) = ident_len(&bytes[i + 1..]) {
                if bytes.get(i + 1 + len) == Some(&b'}') {
                    refs.push((i, &text[i + 1..i + 1 + len]));
                    i += len + 2;
                    continue;
                }
            }
        }
        i += 1;
    }
    refs
}

fn ident_len(b: &[u8]) -> Option<usize> {
    let first = *b.first()?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    Some(
        b.iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count(),
    )
}

impl Template {
    /// Compiles `text`; `lookup` maps a variable name to its index (None: unknown name,
    /// reported by the caller beforehand and left literal here).
    pub fn compile(text: &str, lookup: impl Fn(&str) -> Option<usize>) -> Template {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut last = 0;
        for (at, name) in references(text) {
            let Some(idx) = lookup(name) else { continue };
            lit.push_str(&text[last..at]);
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var(idx));
            last = at + name.len() + 2;
        }
        lit.push_str(&text[last..]);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Template { parts }
    }

    /// The text when the template has no variables (pre-rendered once).
    pub fn as_static(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// The variable's index when the template is exactly one variable (`"{user_id}"`).
    pub fn single_var(&self) -> Option<usize> {
        match self.parts.as_slice() {
            [Part::Var(i)] => Some(*i),
            _ => None,
        }
    }

    /// Appends a rendering with fresh random values to `out`.
    pub fn render(&self, vars: &[Var], rng: &mut impl Rng, out: &mut String) {
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(i) => {
                    if let Some(v) = vars.get(*i) {
                        v.render(rng, out);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn json_braces_stay_literal() {
        let refs = references(r#"{"match":"{match_id}","kills":{kills}}"#);
        let names: Vec<_> = refs.iter().map(|r| r.1).collect();
        assert_eq!(names, ["match_id", "kills"]);
    }

    #[test]
    fn renders_vars() {
        let vars = vec![
            Var {
                name: "id".into(),
                generator: VarGen::Pick(vec!["x".into()]),
            },
            Var {
                name: "n".into(),
                generator: VarGen::Range(7, 7),
            },
        ];
        let t = Template::compile("/a/{id}/{n}/{other}", |n| vars.iter().position(|v| v.name == n));
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut out = String::new();
        t.render(&vars, &mut rng, &mut out);
        assert_eq!(out, "/a/x/7/{other}");
        assert!(t.as_static().is_none());
        assert_eq!(Template::compile("/static", |_| None).as_static(), Some("/static"));
        assert_eq!(
            Template::compile("{n}", |n| vars.iter().position(|v| v.name == n)).single_var(),
            Some(1)
        );
        assert_eq!(t.single_var(), None);
    }
}
