//! YAML → serde bridge that keeps source positions.
//!
//! saphyr parses the text into a tree whose nodes carry spans; a small serde `Deserializer`
//! over that tree lets each list item be decoded on its own, so one bad route does not hide
//! the problems in the next one, and every error points at the innermost offending node.

use std::fmt;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};
use saphyr_parser::Event;
use serde::de::{self, DeserializeSeed, Error as _, IntoDeserializer, MapAccess, SeqAccess, Visitor};

/// 1-based line and column in the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn of(node: &MarkedYamlOwned) -> Pos {
        Pos {
            line: node.span.start.line(),
            col: node.span.start.col() + 1,
        }
    }
}

/// One segment of a path into the document: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(&'static str),
    Index(usize),
}

/// Deepest nesting of sequences and mappings a document may have (the document's own
/// mapping is the first level): far beyond any configuration, far below what overflows a
/// 2 MiB thread stack — the parser loads nested nodes recursively, and reloads run on such
/// threads.
pub const MAX_DEPTH: usize = 64;

/// Parses YAML text into a position-carrying tree (first document only).
pub fn parse(text: &str) -> Result<MarkedYamlOwned, (Pos, String)> {
    check_depth(text)?;
    match MarkedYamlOwned::load_from_str(text) {
        Ok(mut docs) if !docs.is_empty() => Ok(docs.swap_remove(0)),
        Ok(_) => Ok(MarkedYamlOwned::value_from_str("~")),
        Err(e) => {
            let m = e.marker();
            Err((
                Pos {
                    line: m.line(),
                    col: m.col() + 1,
                },
                e.info().to_string(),
            ))
        }
    }
}

/// Refuses nesting deeper than [`MAX_DEPTH`] before the recursive load, walking the parser's
/// events (produced without recursion). A syntax error is left to the load to report.
fn check_depth(text: &str) -> Result<(), (Pos, String)> {
    let mut depth = 0usize;
    for event in saphyr_parser::Parser::new_from_str(text) {
        let Ok((event, span)) = event else { return Ok(()) };
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    let pos = Pos {
                        line: span.start.line(),
                        col: span.start.col() + 1,
                    };
                    return Err((
                        pos,
                        format!("sequences and mappings nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Position of the node at `path`, or of its nearest existing ancestor.
pub fn locate(root: &MarkedYamlOwned, path: &[Seg]) -> Pos {
    let mut node = root;
    for seg in path {
        let next = match (seg, &node.data) {
            (Seg::Index(i), YamlDataOwned::Sequence(items)) => items.get(*i),
            (Seg::Key(k), YamlDataOwned::Mapping(map)) => map
                .iter()
                .find(|(key, _)| scalar_text(key).as_deref() == Some(*k))
                .map(|(_, v)| v),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    Pos::of(node)
}

/// Entries of a mapping node as (key text, key node, value node).
pub fn entries(node: &MarkedYamlOwned) -> Option<Vec<(String, &MarkedYamlOwned, &MarkedYamlOwned)>> {
    match &node.data {
        YamlDataOwned::Mapping(map) => Some(
            map.iter()
                .map(|(k, v)| (scalar_text(k).unwrap_or_default(), k, v))
                .collect(),
        ),
        _ => None,
    }
}

/// Items of a sequence node.
pub fn items(node: &MarkedYamlOwned) -> Option<&[MarkedYamlOwned]> {
    match &node.data {
        YamlDataOwned::Sequence(items) => Some(items),
        _ => None,
    }
}

/// True for an explicit or implied YAML null (`~`, `null`, empty value).
pub fn is_null(node: &MarkedYamlOwned) -> bool {
    matches!(node.data, YamlDataOwned::Value(ScalarOwned::Null))
}

/// Text of a scalar node (numbers and booleans as written).
pub fn scalar(node: &MarkedYamlOwned) -> Option<String> {
    scalar_text(node)
}

/// Position of a node.
pub fn pos(node: &MarkedYamlOwned) -> Pos {
    Pos::of(node)
}

fn scalar_text(node: &MarkedYamlOwned) -> Option<String> {
    match &node.data {
        YamlDataOwned::Value(s) => Some(match s {
            ScalarOwned::Null => "~".to_string(),
            ScalarOwned::Boolean(b) => b.to_string(),
            ScalarOwned::Integer(i) => i.to_string(),
            ScalarOwned::FloatingPoint(f) => f.to_string(),
            ScalarOwned::String(s) => s.clone(),
        }),
        YamlDataOwned::Representation(s, _, _) => Some(s.clone()),
        YamlDataOwned::Tagged(_, inner) => scalar_text(inner),
        _ => None,
    }
}

/// A decoding error with the position of the innermost node it concerns.
#[derive(Debug, Clone)]
pub struct DeError {
    pub message: String,
    pub hint: Option<String>,
    pub pos: Option<Pos>,
}

impl DeError {
    fn at(mut self, node: &MarkedYamlOwned) -> Self {
        if self.pos.is_none() {
            self.pos = Some(Pos::of(node));
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

/// Joins a message and its hint for `serde::de::Error::custom`, which carries only text: a
/// [`DeError`] splits them again (any other deserializer shows both, as a diagnostic does).
pub fn with_hint(message: impl fmt::Display, hint: impl fmt::Display) -> String {
    format!("{message}{HINT_MARK}{hint}")
}

const HINT_MARK: &str = "\n   = hint: ";

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let text = msg.to_string();
        let (message, hint) = match text.split_once(HINT_MARK) {
            Some((m, h)) => (m.to_string(), Some(h.to_string())),
            None => (text, None),
        };
        DeError {
            message,
            hint,
            pos: None,
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            message: format!("unknown key `{field}`"),
            hint: Some(match closest(field, expected) {
                Some(best) => format!("did you mean `{best}`? valid keys: {}", expected.join(", ")),
                None => format!("valid keys: {}", expected.join(", ")),
            }),
            pos: None,
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            message: format!("unknown value `{variant}`"),
            hint: Some(match closest(variant, expected) {
                Some(best) => format!("did you mean `{best}`? one of: {}", expected.join(", ")),
                None => format!("one of: {}", expected.join(", ")),
            }),
            pos: None,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            message: format!("missing required key `{field}`"),
            hint: None,
            pos: None,
        }
    }
}

/// The candidate nearest to `word` by edit distance, if it is plausibly a typo of it.
pub fn closest<'de>(word: &str, candidates: &[&'de str]) -> Option<&'de str> {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= c.len().max(word.len()).div_ceil(3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Decodes a typed value from a node.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &'de MarkedYamlOwned) -> Result<T, DeError> {
    T::deserialize(NodeDe(node)).map_err(|e| e.at(node))
}

/// serde `Deserializer` over one position-carrying node.
#[derive(Clone, Copy)]
pub struct NodeDe<'de>(pub &'de MarkedYamlOwned);

impl<'de> NodeDe<'de> {
    fn any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.0;
        let r = match &node.data {
            YamlDataOwned::Value(s) => match s {
                ScalarOwned::Null => visitor.visit_unit(),
                ScalarOwned::Boolean(b) => visitor.visit_bool(*b),
                ScalarOwned::Integer(i) => visitor.visit_i64(*i),
                ScalarOwned::FloatingPoint(f) => visitor.visit_f64(f.into_inner()),
                ScalarOwned::String(s) => visitor.visit_str(s),
            },
            YamlDataOwned::Representation(s, _, _) => visitor.visit_str(s),
            YamlDataOwned::Sequence(items) => visitor.visit_seq(Seq { iter: items.iter() }),
            YamlDataOwned::Mapping(map) => visitor.visit_map(Map {
                iter: Box::new(map.iter()),
                value: None,
            }),
            YamlDataOwned::Tagged(_, inner) => NodeDe(inner).any(visitor),
            YamlDataOwned::Alias(_) | YamlDataOwned::BadValue => {
                Err(de::Error::custom("unsupported YAML value (unresolved alias?)"))
            }
        };
        r.map_err(|e| e.at(node))
    }
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if is_null(self.0) {
            visitor.visit_none()
        } else {
            visitor.visit_some(self).map_err(|e| e.at(self.0))
        }
    }

    /// Scalars read as text when text is wanted: `version: 2` is a fine label.
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.0.data {
            YamlDataOwned::Value(ScalarOwned::Null) => self.any(visitor),
            YamlDataOwned::Value(_) | YamlDataOwned::Representation(..) => match scalar_text(self.0) {
                Some(s) => visitor.visit_string(s).map_err(|e: DeError| e.at(self.0)),
                None => self.any(visitor),
            },
            _ => self.any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let node = self.0;
        let r = match &node.data {
            YamlDataOwned::Mapping(map) if map.len() == 1 => match map.iter().next() {
                Some((k, v)) => visitor.visit_enum(Enum { key: k, value: Some(v) }),
                None => Err(de::Error::custom("empty mapping")),
            },
            YamlDataOwned::Value(ScalarOwned::String(_)) | YamlDataOwned::Representation(..) => {
                visitor.visit_enum(Enum { key: node, value: None })
            }
            _ => Err(de::Error::custom("expected a name, or a mapping with a single key")),
        };
        r.map_err(|e| e.at(node))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

struct Seq<'de> {
    iter: std::slice::Iter<'de, MarkedYamlOwned>,
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = DeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            Some(n) => seed.deserialize(NodeDe(n)).map(Some).map_err(|e| e.at(n)),
            None => Ok(None),
        }
    }
}

type MapIter<'de> = Box<dyn Iterator<Item = (&'de MarkedYamlOwned, &'de MarkedYamlOwned)> + 'de>;

struct Map<'de> {
    iter: MapIter<'de>,
    value: Option<&'de MarkedYamlOwned>,
}

impl<'de> MapAccess<'de> for Map<'de> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(NodeDe(k)).map(Some).map_err(|e| e.at(k))
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.value.take() {
            Some(v) => seed.deserialize(NodeDe(v)).map_err(|e| e.at(v)),
            None => Err(de::Error::custom("value without a key")),
        }
    }
}

struct Enum<'de> {
    key: &'de MarkedYamlOwned,
    value: Option<&'de MarkedYamlOwned>,
}

impl<'de> de::EnumAccess<'de> for Enum<'de> {
    type Error = DeError;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let name = scalar_text(self.key).unwrap_or_default();
        let v = seed
            .deserialize(name.into_deserializer())
            .map_err(|e: DeError| e.at(self.key))?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for Enum<'de> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        match self.value {
            None => Ok(()),
            Some(v) if is_null(v) => Ok(()),
            Some(v) => Err(DeError::custom("this variant takes no value").at(v)),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        match self.value {
            Some(v) => seed.deserialize(NodeDe(v)).map_err(|e| e.at(v)),
            None => Err(DeError::custom("this variant needs a value").at(self.key)),
        }
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Some(v) => de::Deserializer::deserialize_seq(NodeDe(v), visitor),
            None => Err(DeError::custom("this variant needs a list").at(self.key)),
        }
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.value {
            Some(v) => de::Deserializer::deserialize_map(NodeDe(v), visitor),
            None => Err(DeError::custom("this variant needs a mapping").at(self.key)),
        }
    }
}

#[cfg(test)]
#[path = "yaml_tests.rs"]
mod tests;
