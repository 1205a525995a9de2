//! `arena-gateway canary …`: the operator's command line over the admin API's `/releases` —
//! a table of every release (or `--json`), and set / pause / resume / promote / rollback.
//! The token comes from the environment (`--token-env`, default `ARENA_ADMIN_TOKEN`).

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Status(Option<String>),
    Set { name: String, weight: String },
    Pause(String),
    Resume(String),
    Promote(String),
    Rollback { name: String, reason: Option<String> },
}

impl Action {
    /// Method, path and JSON body of the admin call.
    pub fn request(&self) -> (reqwest::Method, String, Option<Value>) {
        use reqwest::Method;
        let post = |name: &str, action: &str, body: Option<Value>| {
            (Method::POST, format!("/releases/{}/{action}", encode(name)), body)
        };
        match self {
            Action::Status(None) => (Method::GET, "/releases".into(), None),
            Action::Status(Some(name)) => (Method::GET, format!("/releases/{}", encode(name)), None),
            Action::Set { name, weight } => post(name, "weight", Some(serde_json::json!({ "weight": weight }))),
            Action::Pause(name) => post(name, "pause", None),
            Action::Resume(name) => post(name, "resume", None),
            Action::Promote(name) => post(name, "promote", None),
            Action::Rollback { name, reason } => post(
                name,
                "rollback",
                reason.as_ref().map(|r| serde_json::json!({ "reason": r })),
            ),
        }
    }
}

/// Bytes left literal in a path segment: RFC 3986 unreserved.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, SEGMENT).to_string()
}

/// Runs `action` against the admin API at `admin` (e.g. `http://127.0.0.1:9901`); prints the
/// answer as a table or JSON. Err: the message and the exit code.
pub fn run(admin: &str, token: Option<String>, action: &Action, json: bool) -> Result<String, (String, u8)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (format!("cannot start: {e}"), 2))?;
    let (method, path, body) = action.request();
    let url = format!("{}{path}", admin.trim_end_matches('/'));
    // reqwest is built without a crypto provider of its own: use the gateway's (ring).
    pingora::tls::install_default_crypto_provider();
    let answer = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let mut req = client.request(method, &url);
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = &body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, text))
    });
    let (status, text) = answer.map_err(|e| (e, 2))?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    if !status.is_success() {
        let message = value.get("message").and_then(Value::as_str).unwrap_or(&text);
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
            " (set the admin token in the variable named by --token-env)"
        } else {
            ""
        };
        return Err((format!("{status}: {message}{hint}"), 1));
    }
    if json {
        return Ok(serde_json::to_string_pretty(&value).unwrap_or(text));
    }
    Ok(match action {
        Action::Status(None) => table(
            value
                .get("releases")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice),
        ),
        Action::Status(Some(_)) => table(std::slice::from_ref(&value)),
        _ => {
            let release = value.get("release").cloned().unwrap_or(Value::Null);
            let t = &value["transition"];
            format!(
                "{}: {} -> {} at {}% ({})\n{}",
                release["name"].as_str().unwrap_or("?"),
                t["from"].as_str().unwrap_or("?"),
                t["to"].as_str().unwrap_or("?"),
                f64::from(u16::try_from(t["weight_bp"].as_u64().unwrap_or(0)).unwrap_or(0)) / 100.0,
                t["reason"].as_str().unwrap_or(""),
                table(std::slice::from_ref(&release))
            )
        }
    })
}

/// The human table of releases.
pub fn table(releases: &[Value]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<12} {:>8} {:>6}  {:<28} {:<28} LAST VERDICT",
        "RELEASE", "STATE", "WEIGHT", "STEP", "STABLE req/err%/p99", "CANARY req/err%/p99"
    );
    for r in releases {
        let side = |v: &Value| {
            format!(
                "{} / {:.2}% / {:.1}ms",
                v["requests"].as_u64().unwrap_or(0),
                v["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
                v["p99_ms"].as_f64().unwrap_or(0.0)
            )
        };
        let steps = r["steps"].as_array().map_or(0, Vec::len);
        let step = match r["step"].as_u64() {
            Some(s) => format!("{s}/{steps}"),
            None => "-".into(),
        };
        let verdict = r["last_verdict"]["verdict"].as_str().unwrap_or("-");
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:>7}% {:>6}  {:<28} {:<28} {verdict}",
            r["name"].as_str().unwrap_or("?"),
            r["state"].as_str().unwrap_or("?"),
            r["weight"].as_f64().unwrap_or(0.0),
            step,
            side(&r["window"]["stable"]),
            side(&r["window"]["canary"]),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_map_to_admin_calls() {
        let (m, p, b) = Action::Set {
            name: "match api".into(),
            weight: "25%".into(),
        }
        .request();
        assert_eq!((m, p.as_str()), (reqwest::Method::POST, "/releases/match%20api/weight"));
        assert_eq!(b, Some(serde_json::json!({"weight": "25%"})));
        assert_eq!(Action::Status(None).request().1, "/releases");
        assert_eq!(Action::Pause("r".into()).request().1, "/releases/r/pause");
        assert_eq!(
            Action::Promote("match-api_v2.1".into()).request().1,
            "/releases/match-api_v2.1/promote"
        );
    }

    #[test]
    fn the_table_shows_state_weight_step_and_both_windows() {
        let r = serde_json::json!({
            "name": "match-api-v2", "state": "progressing", "weight": 5.0, "step": 2,
            "steps": ["1%", "5%", "100%"],
            "window": {"stable": {"requests": 900, "error_rate": 0.001, "p99_ms": 12.5},
                       "canary": {"requests": 50, "error_rate": 0.0, "p99_ms": 11.0}},
            "last_verdict": {"verdict": "healthy"}
        });
        let t = table(&[r]);
        assert!(t.contains("match-api-v2"), "{t}");
        assert!(t.contains("progressing"), "{t}");
        assert!(t.contains("5%") && t.contains("2/3"), "{t}");
        assert!(t.contains("900 / 0.10% / 12.5ms"), "{t}");
        assert!(t.contains("healthy"), "{t}");
    }
}
