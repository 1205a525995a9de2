//! Unit tests of `yaml`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    name: String,
    #[serde(default)]
    port: Option<u16>,
}

#[test]
fn unknown_key_points_at_key_with_hint() {
    let root = parse("name: a\nprot: 1\n").unwrap();
    let err = from_node::<Item>(&root).unwrap_err();
    assert_eq!(err.pos, Some(Pos { line: 2, col: 1 }));
    assert!(err.hint.unwrap().contains("did you mean `port`"));
}

#[test]
fn type_error_points_at_value() {
    let root = parse("name: a\nport: lots\n").unwrap();
    let err = from_node::<Item>(&root).unwrap_err();
    assert_eq!(err.pos, Some(Pos { line: 2, col: 7 }));
}

#[test]
fn numbers_read_as_strings_when_text_is_wanted() {
    let root = parse("name: 42\n").unwrap();
    let item = from_node::<Item>(&root).unwrap();
    assert_eq!(item.name, "42");
    assert_eq!(item.port, None);
}

#[test]
fn locate_walks_keys_and_indexes() {
    let root = parse("routes:\n  - name: a\n  - name: b\n    cluster: x\n").unwrap();
    let p = locate(&root, &[Seg::Key("routes"), Seg::Index(1), Seg::Key("cluster")]);
    assert_eq!(p, Pos { line: 4, col: 14 });
}

#[test]
fn syntax_error_has_position() {
    let (pos, _) = parse("a: [1, 2\nb: 3\n").unwrap_err();
    assert!(pos.line >= 1);
}

/// The loader recurses per level: nesting past `MAX_DEPTH` is refused before it, at the
/// opening of the level too many.
#[test]
fn nesting_is_limited() {
    assert!(parse(&"- ".repeat(MAX_DEPTH)).is_ok());
    let (pos, msg) = parse(&"- ".repeat(MAX_DEPTH + 1)).unwrap_err();
    assert!(msg.contains("nested deeper than 64 levels"), "{msg}");
    assert_eq!(
        pos,
        Pos {
            line: 1,
            col: 2 * MAX_DEPTH + 1
        }
    );
}
