//! The weighted request mix, turned into ready-to-send hyper requests.
//!
//! Everything that does not depend on a variable (URI, header values, body) is built once;
//! per request only the templated parts are rendered, into a reused scratch buffer. With a
//! user-id header (`release.users`) each built request also says which user it is for.

use std::io::Write as _;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use http::{Method, Request, Uri};
use http_body_util::Full;
use rand::Rng;

use crate::scenario::{BaseUrl, HttpVersion, RequestSpec, Template, Var};

/// Request body type used on every connection.
pub type Body = Full<Bytes>;

#[derive(Debug)]
struct Entry {
    /// The whole HTTP/1.1 request when nothing in it is templated.
    wire: Option<Vec<u8>>,
    method: Method,
    path: Template,
    /// The URI when the path has no variables.
    uri: Option<Uri>,
    headers: Vec<(HeaderName, Template, Option<HeaderValue>)>,
    body: Option<Template>,
    static_body: Option<Bytes>,
    /// Where the user id of this entry's requests comes from (`None`: it sends none).
    user: Option<UserSlot>,
}

/// The user id of an entry: fixed, or rendered into its header number `i`.
#[derive(Debug, Clone, Copy)]
enum UserSlot {
    Fixed(u32),
    Header(usize),
}

/// One request picked and encoded for HTTP/1.1.
#[derive(Debug, Clone, Copy)]
pub struct Encoded {
    /// Index of the mix entry.
    pub entry: usize,
    /// A HEAD request (its response has no body).
    pub head: bool,
    /// The user id it carries, if the mix tracks users and it is a decimal number.
    pub user: Option<u32>,
}

/// Why a request could not be built (a templated value rendered into something invalid).
#[derive(Debug, Clone)]
pub struct BuildError(pub String);

/// The compiled request mix of a run.
#[derive(Debug)]
pub struct RequestMix {
    entries: Vec<Entry>,
    names: Vec<String>,
    /// Cumulative weights for the weighted pick.
    cumulative: Vec<f64>,
    vars: Vec<Var>,
    host: HeaderValue,
    /// `http://authority` for HTTP/2 (absolute URIs), empty for HTTP/1.1 (origin form).
    uri_base: String,
    prefix: String,
    h2: bool,
}

impl RequestMix {
    pub fn new(
        requests: &[RequestSpec],
        vars: &[Var],
        target: &BaseUrl,
        version: HttpVersion,
        users: Option<&HeaderName>,
    ) -> Result<Self, BuildError> {
        let h2 = version == HttpVersion::Http2;
        let host = HeaderValue::from_str(&target.authority)
            .map_err(|_| BuildError(format!("bad target authority `{}`", target.authority)))?;
        let uri_base = if h2 {
            format!("http://{}", target.authority)
        } else {
            String::new()
        };
        let mut mix = RequestMix {
            entries: Vec::with_capacity(requests.len()),
            names: Vec::with_capacity(requests.len()),
            cumulative: Vec::with_capacity(requests.len()),
            vars: vars.to_vec(),
            host,
            uri_base,
            prefix: target.prefix.clone(),
            h2,
        };
        let mut total = 0.0;
        for r in requests {
            let uri = match r.path.as_static() {
                Some(p) => Some(mix.uri(p)?),
                None => None,
            };
            let mut headers = Vec::with_capacity(r.headers.len());
            for (name, t) in &r.headers {
                let fixed = match t.as_static() {
                    Some(v) => Some(
                        HeaderValue::from_str(v).map_err(|_| BuildError(format!("bad value for header `{name}`")))?,
                    ),
                    None => None,
                };
                headers.push((name.clone(), t.clone(), fixed));
            }
            let user = users.and_then(|u| {
                let i = headers.iter().position(|(n, _, _)| n == u)?;
                Some(match &headers[i].2 {
                    Some(v) => UserSlot::Fixed(user_id(v.as_bytes())?),
                    None => UserSlot::Header(i),
                })
            });
            let static_body = r
                .body
                .as_ref()
                .and_then(|b| b.as_static().map(|s| Bytes::copy_from_slice(s.as_bytes())));
            total += r.weight;
            mix.cumulative.push(total);
            mix.names.push(r.name.clone());
            mix.entries.push(Entry {
                wire: None,
                method: r.method.clone(),
                path: r.path.clone(),
                uri,
                headers,
                body: r.body.clone(),
                static_body,
                user,
            });
        }
        if mix.entries.is_empty() {
            return Err(BuildError("the scenario has no requests".into()));
        }
        // Pre-encode fully static requests: sending one is then a single copy.
        for i in 0..mix.entries.len() {
            let e = &mix.entries[i];
            let is_static = e.uri.is_some()
                && e.headers.iter().all(|h| h.2.is_some())
                && (e.body.is_none() || e.static_body.is_some());
            if is_static {
                let mut wire = Vec::new();
                mix.encode_entry(i, &mut rand::rng(), &mut String::new(), &mut wire)?;
                mix.entries[i].wire = Some(wire);
            }
        }
        Ok(mix)
    }

    /// Labels of the entries, by index.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn uri(&self, path: &str) -> Result<Uri, BuildError> {
        let mut s = String::with_capacity(self.uri_base.len() + self.prefix.len() + path.len());
        s.push_str(&self.uri_base);
        s.push_str(&self.prefix);
        s.push_str(path);
        Uri::try_from(s).map_err(|e| BuildError(format!("bad request URI for path `{path}`: {e}")))
    }

    fn pick(&self, rng: &mut impl Rng) -> usize {
        if self.entries.len() == 1 {
            0
        } else {
            let total = self.cumulative.last().copied().unwrap_or(1.0);
            let x = rng.random::<f64>() * total;
            self.cumulative.partition_point(|c| *c <= x).min(self.entries.len() - 1)
        }
    }

    /// Picks an entry by weight and writes it as an HTTP/1.1 request into `out` (cleared
    /// first).
    pub fn encode_h1(
        &self,
        rng: &mut impl Rng,
        scratch: &mut String,
        out: &mut Vec<u8>,
    ) -> Result<Encoded, BuildError> {
        let idx = self.pick(rng);
        out.clear();
        let e = &self.entries[idx];
        let user = match &e.wire {
            Some(w) => {
                out.extend_from_slice(w);
                match e.user {
                    Some(UserSlot::Fixed(u)) => Some(u),
                    _ => None,
                }
            }
            None => self.encode_entry(idx, rng, scratch, out)?,
        };
        Ok(Encoded {
            entry: idx,
            head: e.method == Method::HEAD,
            user,
        })
    }

    /// Writes entry `idx` with fresh values into `out`; returns its user id.
    fn encode_entry(
        &self,
        idx: usize,
        rng: &mut impl Rng,
        scratch: &mut String,
        out: &mut Vec<u8>,
    ) -> Result<Option<u32>, BuildError> {
        let e = &self.entries[idx];
        out.extend_from_slice(e.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.prefix.as_bytes());
        scratch.clear();
        e.path.render(&self.vars, rng, scratch);
        if scratch.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(BuildError(format!(
                "path `{scratch}` contains spaces or control characters"
            )));
        }
        out.extend_from_slice(scratch.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(self.host.as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut user = match e.user {
            Some(UserSlot::Fixed(u)) => Some(u),
            _ => None,
        };
        for (i, (name, t, fixed)) in e.headers.iter().enumerate() {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            match fixed {
                Some(v) => out.extend_from_slice(v.as_bytes()),
                None => {
                    scratch.clear();
                    t.render(&self.vars, rng, scratch);
                    if scratch.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
                        return Err(BuildError(format!("header `{name}` rendered to an invalid value")));
                    }
                    out.extend_from_slice(scratch.as_bytes());
                    if matches!(e.user, Some(UserSlot::Header(h)) if h == i) {
                        user = user_id(scratch.as_bytes());
                    }
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        let body: &[u8] = match (&e.static_body, &e.body) {
            (Some(b), _) => b,
            (None, Some(t)) => {
                scratch.clear();
                t.render(&self.vars, rng, scratch);
                scratch.as_bytes()
            }
            (None, None) => &[],
        };
        // Methods that carry a body always announce its length, even 0.
        if !body.is_empty() || matches!(e.method, Method::POST | Method::PUT | Method::PATCH) {
            let _ = write!(out, "content-length: {}\r\n", body.len());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        Ok(user)
    }

    /// Picks an entry by weight and builds it as a hyper request (HTTP/2); `scratch` is a
    /// reusable buffer. Returns the entry index, the request and its user id.
    pub fn build(
        &self,
        rng: &mut impl Rng,
        scratch: &mut String,
    ) -> Result<(usize, Request<Body>, Option<u32>), BuildError> {
        let idx = self.pick(rng);
        let e = &self.entries[idx];
        let uri = match &e.uri {
            Some(u) => u.clone(),
            None => {
                scratch.clear();
                e.path.render(&self.vars, rng, scratch);
                self.uri(scratch)?
            }
        };
        let body = match (&e.static_body, &e.body) {
            (Some(b), _) => b.clone(),
            (None, Some(t)) => {
                scratch.clear();
                t.render(&self.vars, rng, scratch);
                Bytes::copy_from_slice(scratch.as_bytes())
            }
            (None, None) => Bytes::new(),
        };
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = e.method.clone();
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        if !self.h2 {
            // HTTP/2 carries the authority in the URI (`:authority`).
            headers.insert(HOST, self.host.clone());
        }
        let mut user = None;
        for (i, (name, t, fixed)) in e.headers.iter().enumerate() {
            let value = match fixed {
                Some(v) => v.clone(),
                None => {
                    scratch.clear();
                    t.render(&self.vars, rng, scratch);
                    HeaderValue::from_str(scratch)
                        .map_err(|_| BuildError(format!("header `{name}` rendered to an invalid value")))?
                }
            };
            match e.user {
                Some(UserSlot::Fixed(u)) => user = Some(u),
                Some(UserSlot::Header(h)) if h == i => user = user_id(value.as_bytes()),
                _ => {}
            }
            headers.append(name.clone(), value);
        }
        Ok((idx, req, user))
    }
}

/// Adds the header `name: value` to the HTTP/1.1 request in `wire`, right after its request
/// line (header order carries no meaning); a request without a line end is left alone.
pub fn insert_h1_header(wire: &mut Vec<u8>, name: &str, value: &str) {
    let Some(line_end) = wire.windows(2).position(|w| w == b"\r\n") else {
        return;
    };
    let at = line_end + 2;
    let line = [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"].concat();
    wire.splice(at..at, line);
}

/// A user id as sent: a decimal number (anything else is not tracked).
fn user_id(value: &[u8]) -> Option<u32> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;
    use crate::scenario::{load, NoExtensions};

    fn mix(version: HttpVersion, users: Option<&str>) -> RequestMix {
        let text = "name: t\ntarget: http://127.0.0.1:8080\nstages: [{ duration: 1s, rate: 1 }]\n\
            requests:\n  - { weight: 1, path: \"/a\", headers: { x-user-id: \"{u}\" } }\n  - { weight: 1, path: /b, headers: { x-user-id: \"7\" } }\n  - { weight: 1, path: /c }\n\
            vars: { u: { range: [10, 12] } }\n";
        let s = load(text, "t.yaml", &NoExtensions).unwrap();
        let target = BaseUrl::parse("http://127.0.0.1:8080").unwrap();
        let header = users.map(|h| HeaderName::from_bytes(h.as_bytes()).unwrap());
        RequestMix::new(&s.requests, &s.vars, &target, version, header.as_ref()).unwrap()
    }

    #[test]
    fn every_request_names_the_user_it_sent() {
        let m = mix(HttpVersion::Http1, Some("x-user-id"));
        let (mut rng, mut scratch, mut wire) = (SmallRng::seed_from_u64(3), String::new(), Vec::new());
        let mut seen = [0u32; 3];
        for _ in 0..300 {
            let e = m.encode_h1(&mut rng, &mut scratch, &mut wire).unwrap();
            let text = String::from_utf8(wire.clone()).unwrap();
            match e.entry {
                0 => {
                    let u = e.user.unwrap();
                    assert!((10..=12).contains(&u));
                    assert!(text.contains(&format!("x-user-id: {u}\r\n")), "{text}");
                }
                1 => assert_eq!(e.user, Some(7)),
                _ => assert_eq!(e.user, None),
            }
            seen[e.entry] += 1;
        }
        assert!(seen.iter().all(|n| *n > 0), "{seen:?}");

        let m = mix(HttpVersion::Http2, Some("x-user-id"));
        for _ in 0..50 {
            let (entry, req, user) = m.build(&mut rng, &mut scratch).unwrap();
            let sent = req
                .headers()
                .get("x-user-id")
                .map(|v| v.to_str().unwrap().parse::<u32>().unwrap());
            assert_eq!(user, sent, "entry {entry}");
        }
    }

    #[test]
    fn a_header_is_added_after_the_request_line_and_the_rest_kept() {
        let m = mix(HttpVersion::Http1, None);
        let (mut rng, mut scratch, mut wire) = (SmallRng::seed_from_u64(2), String::new(), Vec::new());
        m.encode_h1(&mut rng, &mut scratch, &mut wire).unwrap();
        let before = String::from_utf8(wire.clone()).unwrap();
        insert_h1_header(&mut wire, "traceparent", "00-1-2-01");
        let after = String::from_utf8(wire.clone()).unwrap();
        let (line, rest) = before.split_once("\r\n").unwrap();
        assert_eq!(after, format!("{line}\r\ntraceparent: 00-1-2-01\r\n{rest}"));
        let mut req = [httparse::EMPTY_HEADER; 8];
        let mut parsed = httparse::Request::new(&mut req);
        assert!(parsed.parse(&wire).unwrap().is_complete());
        assert!(parsed.headers.iter().any(|h| h.name == "traceparent"));
        let mut junk = b"no line end".to_vec();
        insert_h1_header(&mut junk, "a", "b");
        assert_eq!(junk, b"no line end");
    }

    #[test]
    fn without_a_user_header_nothing_is_tracked() {
        let m = mix(HttpVersion::Http1, None);
        let (mut rng, mut scratch, mut wire) = (SmallRng::seed_from_u64(1), String::new(), Vec::new());
        for _ in 0..20 {
            assert_eq!(m.encode_h1(&mut rng, &mut scratch, &mut wire).unwrap().user, None);
        }
        assert_eq!(user_id(b" 42 "), Some(42));
        assert_eq!(user_id(b"u42"), None);
        assert_eq!(user_id(b"-1"), None);
    }
}
