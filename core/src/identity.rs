//! SPIFFE identities: strict parsing of SPIFFE IDs, allow-list entries and the DNS form of an ID.
//!
//! Parsing follows the SPIFFE ID specification (SPIFFE-ID.md, sections 2 and 2.1–2.3): only the
//! `spiffe` scheme in lowercase, a lowercase trust domain of `[a-z0-9.-_]`, path segments of
//! `[A-Za-z0-9.-_]` with no empty, `.` or `..` segment and no trailing `/`. Anything else a URI
//! may carry (query, fragment, userinfo, port, percent-encoding) is refused, so one identity has
//! exactly one spelling and string comparison is identity comparison.

use std::fmt;
use std::str::FromStr;

/// The scheme prefix; the specification requires it in lowercase.
const SCHEME: &str = "spiffe://";
/// Longest SPIFFE ID accepted (the specification's limit for the whole URI, in bytes).
const MAX_ID_LEN: usize = 2048;
/// Longest trust domain accepted (the specification's limit, as for a DNS name).
const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// A parsed SPIFFE ID: `spiffe://<trust_domain><path>`, `path` empty or starting with `/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    trust_domain: String,
    path: String,
}

impl SpiffeId {
    /// Parses `s` as a SPIFFE ID; the error says what is wrong, for a config or CLI message.
    pub fn parse(s: &str) -> Result<SpiffeId, String> {
        if s.len() > MAX_ID_LEN {
            return Err(format!("SPIFFE ID longer than {MAX_ID_LEN} bytes"));
        }
        let Some(rest) = s.strip_prefix(SCHEME) else {
            return Err(format!("SPIFFE ID {s:?} must start with {SCHEME:?}"));
        };
        // Diagnose the URI features the spec forbids before the generic character check, so
        // the message names the actual mistake.
        if rest.contains('?') {
            return Err(format!("SPIFFE ID {s:?} must not have a query"));
        }
        if rest.contains('#') {
            return Err(format!("SPIFFE ID {s:?} must not have a fragment"));
        }
        if rest.contains('%') {
            return Err(format!("SPIFFE ID {s:?} must not use percent-encoding"));
        }
        let (trust_domain, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        check_trust_domain(trust_domain).map_err(|why| format!("SPIFFE ID {s:?}: {why}"))?;
        check_path(path).map_err(|why| format!("SPIFFE ID {s:?}: {why}"))?;
        Ok(SpiffeId {
            trust_domain: trust_domain.to_string(),
            path: path.to_string(),
        })
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The path: empty for a trust domain's own ID, otherwise `/seg/seg…`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path's segments (none for a trust domain's own ID).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path.split('/').skip(1)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}{}", self.trust_domain, self.path)
    }
}

impl FromStr for SpiffeId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpiffeId::parse(s)
    }
}

fn check_trust_domain(td: &str) -> Result<(), String> {
    if td.is_empty() {
        return Err("the trust domain is empty".to_string());
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(format!("the trust domain is longer than {MAX_TRUST_DOMAIN_LEN} bytes"));
    }
    if td.contains('@') {
        return Err("userinfo is not allowed".to_string());
    }
    if td.contains(':') {
        return Err("a port is not allowed".to_string());
    }
    if let Some(c) = td.chars().find(|c| !is_trust_domain_char(*c)) {
        return Err(format!(
            "the trust domain has {c:?}; only lowercase letters, digits, '.', '-' and '_' are allowed"
        ));
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Ok(());
    }
    // `path` starts with '/', so the first split item is the empty string before it.
    for seg in path.split('/').skip(1) {
        match seg {
            "" => return Err("the path has an empty segment (a '//' or a trailing '/')".to_string()),
            "." | ".." => return Err(format!("the path has a {seg:?} segment")),
            _ => {}
        }
        if let Some(c) = seg.chars().find(|c| !is_path_char(*c)) {
            return Err(format!(
                "the path has {c:?}; only letters, digits, '.', '-' and '_' are allowed"
            ));
        }
    }
    Ok(())
}

fn is_trust_domain_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// One allow-list entry: an exact ID, or an ID prefix written `spiffe://td/a/*`, which allows
/// `spiffe://td/a` and everything under it, at a segment boundary (not `spiffe://td/ab`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allow {
    Exact(SpiffeId),
    /// The prefix's canonical ID string, without the `/*`.
    Prefix(String),
}

impl Allow {
    pub fn parse(s: &str) -> Result<Allow, String> {
        match s.strip_suffix("/*") {
            // The prefix must itself be a valid ID, so `spiffe://td/*` (the whole trust domain)
            // works and `spiffe://td/a*` or `spiffe://td//*` does not.
            Some(prefix) => SpiffeId::parse(prefix)
                .map(|id| Allow::Prefix(id.to_string()))
                .map_err(|e| format!("allow-list prefix {s:?}: {e}")),
            None => SpiffeId::parse(s).map(Allow::Exact),
        }
    }

    pub fn matches(&self, id: &SpiffeId) -> bool {
        match self {
            Allow::Exact(want) => want == id,
            Allow::Prefix(prefix) => {
                let id = id.to_string();
                // Segment boundary: the prefix itself, or the prefix followed by '/'.
                id.strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
    }
}

impl fmt::Display for Allow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allow::Exact(id) => write!(f, "{id}"),
            Allow::Prefix(p) => write!(f, "{p}/*"),
        }
    }
}

impl FromStr for Allow {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Allow::parse(s)
    }
}

/// Whether `id` is allowed by `list`; an empty list allows any (CA-verified) identity.
pub fn allowed(list: &[Allow], id: &SpiffeId) -> bool {
    list.is_empty() || list.iter().any(|a| a.matches(id))
}

/// The DNS form of a Kubernetes-shaped ID: `spiffe://TD/ns/NS/sa/SA` → `SA.NS.sa.identity.TD`.
///
/// It lets a TLS client that can only check DNS SANs (pingora's upstream verification) check a
/// workload identity. `None` for any other shape, or when the name would not be a valid DNS
/// name. SA and NS must each be one lowercase label: a '.' inside one would let two different
/// IDs share a DNS form (`a` in `b.c` vs `a.b` in `c`), and DNS names compare case-insensitively.
pub fn dns_form(id: &SpiffeId) -> Option<String> {
    let mut segs = id.segments();
    let (Some("ns"), Some(ns), Some("sa"), Some(sa), None) =
        (segs.next(), segs.next(), segs.next(), segs.next(), segs.next())
    else {
        return None;
    };
    if !is_lowercase_label(ns) || !is_lowercase_label(sa) {
        return None;
    }
    let name = format!("{sa}.{ns}.sa.identity.{}", id.trust_domain());
    is_dns_name(&name).then_some(name)
}

/// A DNS host name as a certificate SAN carries it: dot-separated labels of 1–63 of
/// `[A-Za-z0-9-]`, not starting or ending with '-', at most 253 bytes, no trailing dot.
pub fn is_dns_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_label)
}

fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_lowercase_label(label: &str) -> bool {
    is_label(label) && !label.bytes().any(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn parses_valid_ids() {
        let a = id("spiffe://arena/ns/default/sa/web");
        assert_eq!(a.trust_domain(), "arena");
        assert_eq!(a.path(), "/ns/default/sa/web");
        assert_eq!(a.to_string(), "spiffe://arena/ns/default/sa/web");
        let td = id("spiffe://example.org");
        assert_eq!(td.path(), "");
        assert_eq!(td.segments().count(), 0);
        assert_eq!(
            id("spiffe://a_b-c.9/Up.Per/x-_y").to_string(),
            "spiffe://a_b-c.9/Up.Per/x-_y"
        );
        // A segment of dots other than "." and ".." is a plain name.
        assert_eq!(id("spiffe://td/...").path(), "/...");
    }

    #[test]
    fn rejects_invalid_ids() {
        for (s, why) in [
            ("", "start with"),
            ("http://arena/x", "start with"),
            ("SPIFFE://arena/x", "start with"),
            ("spiffe:/arena", "start with"),
            ("spiffe://", "empty"),
            ("spiffe:///x", "empty"),
            ("spiffe://Arena/x", "'A'"),
            ("spiffe://arena/", "empty segment"),
            ("spiffe://arena//x", "empty segment"),
            ("spiffe://arena/x/", "empty segment"),
            ("spiffe://arena/./x", "\".\""),
            ("spiffe://arena/x/..", "\"..\""),
            ("spiffe://arena/x?y=1", "query"),
            ("spiffe://arena/x#f", "fragment"),
            ("spiffe://arena/x%20y", "percent"),
            ("spiffe://user@arena/x", "userinfo"),
            ("spiffe://arena:443/x", "port"),
            ("spiffe://arena/x y", "' '"),
            ("spiffe://arena/é", "'é'"),
        ] {
            let err = SpiffeId::parse(s).unwrap_err();
            assert!(err.contains(why), "{s:?}: {err:?} should mention {why:?}");
        }
        let long = format!("spiffe://arena/{}", "a".repeat(MAX_ID_LEN));
        assert!(SpiffeId::parse(&long).is_err());
        let long_td = format!("spiffe://{}", "a".repeat(MAX_TRUST_DOMAIN_LEN + 1));
        assert!(SpiffeId::parse(&long_td).is_err());
    }

    #[test]
    fn allow_entries() {
        let list = vec![
            Allow::parse("spiffe://arena/gateway").unwrap(),
            Allow::parse("spiffe://arena/ns/prod/*").unwrap(),
        ];
        assert!(allowed(&list, &id("spiffe://arena/gateway")));
        assert!(!allowed(&list, &id("spiffe://arena/gateway/x")));
        assert!(allowed(&list, &id("spiffe://arena/ns/prod")));
        assert!(allowed(&list, &id("spiffe://arena/ns/prod/sa/web")));
        assert!(!allowed(&list, &id("spiffe://arena/ns/production")));
        assert!(!allowed(&list, &id("spiffe://other/ns/prod/sa/web")));
        assert!(allowed(&[], &id("spiffe://anything/at/all")));

        let td = Allow::parse("spiffe://arena/*").unwrap();
        assert!(td.matches(&id("spiffe://arena")));
        assert!(td.matches(&id("spiffe://arena/x")));
        assert!(!td.matches(&id("spiffe://arena.io/x")));
        assert_eq!(td.to_string(), "spiffe://arena/*");

        for bad in [
            "spiffe://arena/a*",
            "spiffe://arena//*",
            "spiffe://arena/*/x",
            "arena/*",
            "*",
        ] {
            assert!(Allow::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_forms() {
        assert_eq!(
            dns_form(&id("spiffe://arena/ns/default/sa/web")).as_deref(),
            Some("web.default.sa.identity.arena")
        );
        assert_eq!(
            dns_form(&id("spiffe://cluster.local/ns/a-b/sa/c1")).as_deref(),
            Some("c1.a-b.sa.identity.cluster.local")
        );
        for s in [
            "spiffe://arena",
            "spiffe://arena/gateway",
            "spiffe://arena/ns/default/sa",
            "spiffe://arena/ns/default/sa/web/extra",
            "spiffe://arena/sa/web/ns/default",
            "spiffe://arena/ns/a.b/sa/web",
            "spiffe://arena/ns/default/sa/Web",
            "spiffe://arena/ns/default/sa/under_score",
            "spiffe://arena/ns/default/sa/-web",
            "spiffe://under_score/ns/default/sa/web",
            "spiffe://arena./ns/default/sa/web",
        ] {
            assert_eq!(dns_form(&id(s)), None, "{s}");
        }
        let long = format!("spiffe://arena/ns/default/sa/{}", "a".repeat(64));
        assert_eq!(dns_form(&id(&long)), None);
    }

    fn segment() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._-]{1,12}".prop_filter("not . or ..", |s| s != "." && s != "..")
    }

    fn valid_id() -> impl Strategy<Value = String> {
        ("[a-z0-9._-]{1,20}", prop::collection::vec(segment(), 0..5)).prop_map(|(td, segs)| {
            segs.iter()
                .fold(format!("spiffe://{td}"), |acc, s| format!("{acc}/{s}"))
        })
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = SpiffeId::parse(&s);
            let _ = Allow::parse(&s);
        }

        #[test]
        fn parse_never_panics_near_valid(s in "spiffe://[a-zA-Z0-9./:@?#%_-]{0,30}") {
            if let Ok(id) = SpiffeId::parse(&s) {
                prop_assert_eq!(id.to_string(), s);
                let _ = dns_form(&id);
            }
        }

        #[test]
        fn valid_ids_round_trip(s in valid_id()) {
            let id = SpiffeId::parse(&s).unwrap();
            prop_assert_eq!(id.to_string(), s.clone());
            prop_assert_eq!(SpiffeId::parse(&id.to_string()).unwrap(), id);
        }

        #[test]
        fn prefix_respects_segment_boundaries(base in valid_id(), tail in segment(), glued in "[A-Za-z0-9._-]{1,8}") {
            let prefix = Allow::parse(&format!("{base}/*")).unwrap();
            let base_id = SpiffeId::parse(&base).unwrap();
            prop_assert!(prefix.matches(&base_id));
            let child = SpiffeId::parse(&format!("{base}/{tail}")).unwrap();
            prop_assert!(prefix.matches(&child));
            // Text glued onto the last segment (or the trust domain) is a different name.
            if let Ok(sibling) = SpiffeId::parse(&format!("{base}{glued}")) {
                prop_assert!(!prefix.matches(&sibling));
            }
        }

        #[test]
        fn dns_form_is_a_dns_name(ns in "[a-z0-9-]{1,70}", sa in "[a-z0-9-]{1,70}", td in "[a-z0-9._-]{1,30}") {
            let id = SpiffeId::parse(&format!("spiffe://{td}/ns/{ns}/sa/{sa}")).unwrap();
            if let Some(name) = dns_form(&id) {
                prop_assert!(is_dns_name(&name));
                prop_assert_eq!(name, format!("{sa}.{ns}.sa.identity.{td}"));
            }
        }
    }
}
