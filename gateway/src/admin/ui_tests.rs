//! Unit tests of `ui`: the page is self-contained and its policy lets exactly its script run.
#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn the_page_inlines_its_script_and_styles_and_loads_nothing_else() {
    let r = page_response(StatusCode::OK);
    let body = String::from_utf8(r.body().clone()).unwrap();
    assert!(body.contains(&format!("<script>{JS}</script>")));
    assert!(body.contains(&format!("<style>{CSS}</style>")));
    assert!(!body.contains("<!--ARENA:"));
    for outside in ["http://", "https://", "src=\"", "href=\"http"] {
        assert!(!HTML.contains(outside), "index.html refers outside: {outside}");
    }
    let csp = r.headers()[http::header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(JS.as_bytes()));
    assert!(csp.contains(&format!("script-src 'sha256-{hash}'")), "{csp}");
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    assert!(r.headers().get(http::header::WWW_AUTHENTICATE).is_none());
}

#[test]
fn without_the_read_token_the_page_says_401_and_asks_for_it() {
    let r = page_response(StatusCode::UNAUTHORIZED);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()[http::header::WWW_AUTHENTICATE], "Bearer");
}
