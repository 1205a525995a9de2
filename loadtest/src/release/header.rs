//! The gateway's `x-arena-release: NAME=VERSION` debug header: which version of which release
//! answered a request on a split route.

pub use arena_core::release::Version;

/// `NAME=stable` or `NAME=canary` (surrounding blanks allowed); `None` for anything else, so
/// a malformed value is never counted as a version.
pub fn parse(value: &[u8]) -> Option<(&str, Version)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (name, version) = text.rsplit_once('=')?;
    let version = match version.trim() {
        "stable" => Version::Stable,
        "canary" => Version::Canary,
        _ => return None,
    };
    let name = name.trim();
    (!name.is_empty()).then_some((name, version))
}

/// Whether the header value `value` (as counted) is version `wanted`: the whole value
/// (`match-api-v2=canary`) or only its version (`canary`).
pub fn matches(value: &str, wanted: &str) -> bool {
    value == wanted || parse(value.as_bytes()).is_some_and(|(_, v)| v.as_str() == wanted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_name_and_version() {
        assert_eq!(parse(b"match-api-v2=canary"), Some(("match-api-v2", Version::Canary)));
        assert_eq!(
            parse(b" match-api-v2 = stable "),
            Some(("match-api-v2", Version::Stable))
        );
        // A release name may itself contain `=`: the version is after the last one.
        assert_eq!(parse(b"a=b=canary"), Some(("a=b", Version::Canary)));
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            &b""[..],
            b"canary",
            b"=canary",
            b"match-api-v2=",
            b"match-api-v2=Canary",
            b"match-api-v2=beta",
            b"match-api-v2:canary",
            b"\xff\xfe=canary",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn matches_whole_values_or_versions() {
        assert!(matches("match-api-v2=canary", "canary"));
        assert!(matches("match-api-v2=canary", "match-api-v2=canary"));
        assert!(!matches("match-api-v2=canary", "stable"));
        assert!(!matches("match-api-v2=canary", "other=canary"));
        assert!(!matches("garbage", "canary"));
    }
}
