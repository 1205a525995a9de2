//! `kind: aws_lambda`: the Lambda Invoke API, signed with SigV4, carrying an API Gateway v2
//! (HTTP API) proxy event, so the same handler serves API Gateway and the gateway's fallback.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Map, Value};

use super::http::read_limited;
use super::{is_hop_header, FaasError, FaasRequest, FaasResponse};
use crate::config::FaasSpec;

pub struct LambdaInvoker {
    url: String,
    region: String,
    client: reqwest::Client,
}

impl LambdaInvoker {
    pub fn new(function: &str, region: &str, endpoint: Option<&str>, spec: &FaasSpec) -> Result<Self, String> {
        pingora::tls::install_default_crypto_provider();
        let endpoint = endpoint
            .map(str::to_string)
            .unwrap_or_else(|| format!("https://lambda.{region}.amazonaws.com"));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(spec.max_concurrency as usize)
            .connect_timeout(spec.timeout)
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(LambdaInvoker {
            url: format!(
                "{}/2015-03-31/functions/{}/invocations",
                endpoint.trim_end_matches('/'),
                urlencode(function)
            ),
            region: region.to_string(),
            client,
        })
    }

    pub async fn invoke(&self, name: &str, req: &FaasRequest) -> Result<FaasResponse, FaasError> {
        let fail = |cause: String| FaasError::Function {
            name: name.to_string(),
            cause,
        };
        let payload = Bytes::from(api_gateway_v2_event(req).to_string());
        let creds = credentials_from_env()
            .ok_or_else(|| fail("AWS credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into()))?;
        let signed = sign_invoke(&self.url, &self.region, &creds, &payload, SystemTime::now()).map_err(fail)?;
        let mut rb = self.client.post(&self.url).body(payload);
        for (k, v) in signed {
            rb = rb.header(k, v);
        }
        let resp = rb.send().await.map_err(|e| FaasError::Transport {
            name: name.to_string(),
            cause: e.to_string(),
        })?;
        let status = resp.status();
        let function_error = resp
            .headers()
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_limited(resp).await.map_err(|cause| FaasError::Transport {
            name: name.to_string(),
            cause,
        })?;
        if !status.is_success() {
            return Err(fail(format!(
                "invoke API answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )));
        }
        if let Some(kind) = function_error {
            return Err(fail(format!(
                "{kind}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )));
        }
        from_proxy_result(&body).map_err(fail)
    }
}

fn credentials_from_env() -> Option<Credentials> {
    let key = std::env::var("AWS_ACCESS_KEY_ID").ok()?;
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok()?;
    let token = std::env::var("AWS_SESSION_TOKEN").ok();
    Some(Credentials::new(key, secret, token, None, "environment"))
}

/// SigV4 headers (`authorization`, `x-amz-date`, ...) for a Lambda Invoke POST.
pub fn sign_invoke(
    url: &str,
    region: &str,
    creds: &Credentials,
    payload: &[u8],
    at: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("lambda")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let headers = [("content-type", "application/json")];
    let signable = SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Bytes(payload))
        .map_err(|e| format!("signing: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("signing: {e}"))?
        .into_parts();
    let mut out: Vec<(String, String)> = vec![("content-type".into(), "application/json".into())];
    out.extend(instructions.headers().map(|(k, v)| (k.to_string(), v.to_string())));
    Ok(out)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The API Gateway v2 (payload format 2.0) event for a request.
pub fn api_gateway_v2_event(req: &FaasRequest) -> Value {
    let (path, query) = req
        .path_and_query
        .split_once('?')
        .unwrap_or((req.path_and_query.as_str(), ""));
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (k, v) in &req.headers {
        let Ok(v) = v.to_str() else { continue };
        if k == http::header::COOKIE {
            cookies.extend(v.split(';').map(|c| Value::from(c.trim())));
            continue;
        }
        if is_hop_header(k.as_str()) && k != http::header::HOST {
            continue;
        }
        match headers.get_mut(k.as_str()) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(v);
            }
            _ => {
                headers.insert(k.as_str().to_string(), Value::from(v));
            }
        }
    }
    headers.insert("x-request-id".into(), Value::from(req.request_id.as_str()));
    // Decoded, and repeated keys joined with commas, as API Gateway does.
    let mut params = Map::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match params.get_mut(k.as_ref()) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(&v);
            }
            _ => {
                params.insert(k.into_owned(), Value::from(v.into_owned()));
            }
        }
    }
    let (body, b64) = match std::str::from_utf8(&req.body) {
        Ok(text) => (text.to_string(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(&req.body), true),
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "arena",
            "domainName": req.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("arena"),
            "http": {
                "method": req.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": req.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                "userAgent": req.headers.get(http::header::USER_AGENT).and_then(|h| h.to_str().ok()).unwrap_or(""),
            },
            "requestId": req.request_id,
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": now_ms,
        },
        "isBase64Encoded": b64,
    });
    if !cookies.is_empty() {
        event["cookies"] = Value::from(cookies);
    }
    if !params.is_empty() {
        event["queryStringParameters"] = Value::from(params);
    }
    if !req.body.is_empty() {
        event["body"] = Value::from(body);
    }
    event
}

/// Maps a function's result to HTTP like API Gateway v2 does: a `{statusCode, headers, body}`
/// object is taken literally; any other JSON value becomes a 200 with that JSON as the body.
pub fn from_proxy_result(payload: &[u8]) -> Result<FaasResponse, String> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("function answer is not JSON: {e}"))?;
    let Some(obj) = v.as_object().filter(|o| o.contains_key("statusCode")) else {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(FaasResponse {
            status: 200,
            headers,
            body: Bytes::copy_from_slice(payload),
        });
    };
    let status = obj
        .get("statusCode")
        .and_then(Value::as_u64)
        .filter(|s| (100..=599).contains(s))
        .ok_or("statusCode is not an HTTP status")? as u16;
    let mut headers = HeaderMap::new();
    if let Some(h) = obj.get("headers").and_then(Value::as_object) {
        for (k, v) in h {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
                HeaderValue::from_str(&text),
            ) {
                if !is_hop_header(k.as_str()) {
                    headers.append(k, v);
                }
            }
        }
    }
    if let Some(c) = obj.get("cookies").and_then(Value::as_array) {
        for cookie in c.iter().filter_map(Value::as_str) {
            if let Ok(v) = HeaderValue::from_str(cookie) {
                headers.append(http::header::SET_COOKIE, v);
            }
        }
    }
    let raw = obj.get("body").and_then(Value::as_str).unwrap_or("");
    let body = if obj.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false) {
        Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|e| format!("bad base64 body: {e}"))?,
        )
    } else {
        Bytes::copy_from_slice(raw.as_bytes())
    };
    Ok(FaasResponse { status, headers, body })
}

#[cfg(test)]
#[path = "lambda_tests.rs"]
mod tests;
