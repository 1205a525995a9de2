//! `kind: aws_lambda`: the Lambda Invoke API, signed with SigV4, carrying an API Gateway v2
//! (HTTP API) proxy event, so the same handler serves API Gateway and the gateway's fallback.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription,
    ApiGatewayV2httpResponse,
};
use aws_lambda_events::query_map::QueryMap;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::credentials::AwsCredentials;
use super::http::read_limited;
use super::{is_hop_header, FaasError, FaasRequest, FaasResponse};
use crate::config::FaasSpec;

/// Bytes left literal in the function name or ARN of the Invoke URL path: RFC 3986 unreserved.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub struct LambdaInvoker {
    url: String,
    region: String,
    client: reqwest::Client,
    /// The AWS credentials to sign with, cached and renewed before they expire.
    creds: AwsCredentials,
}

impl LambdaInvoker {
    pub fn new(
        function: &str,
        region: &str,
        endpoint: Option<&str>,
        spec: &FaasSpec,
        creds: AwsCredentials,
    ) -> Result<Self, String> {
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
            url: invoke_url(&endpoint, function),
            region: region.to_string(),
            client,
            creds,
        })
    }

    pub async fn invoke(&self, name: &str, req: &FaasRequest) -> Result<FaasResponse, FaasError> {
        let fail = |cause: String| FaasError::Function {
            name: name.to_string(),
            cause,
        };
        let payload = Bytes::from(event_json(&api_gateway_v2_event(req)).map_err(fail)?.to_string());
        let creds = self.creds.get().await.map_err(fail)?;
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

/// The Invoke API URL of `function` (a name or an ARN) at `endpoint`.
pub fn invoke_url(endpoint: &str, function: &str) -> String {
    format!(
        "{}/2015-03-31/functions/{}/invocations",
        endpoint.trim_end_matches('/'),
        utf8_percent_encode(function, PATH_SEGMENT)
    )
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

/// The API Gateway v2 (payload format 2.0) event for a request.
pub fn api_gateway_v2_event(req: &FaasRequest) -> ApiGatewayV2httpRequest {
    let (path, query) = req
        .path_and_query
        .split_once('?')
        .unwrap_or((req.path_and_query.as_str(), ""));
    let (headers, cookies) = event_headers(req);
    let params = query_params(query);
    let (body, b64) = if req.body.is_empty() {
        (None, false)
    } else {
        match std::str::from_utf8(&req.body) {
            Ok(text) => (Some(text.to_string()), false),
            Err(_) => (Some(base64::engine::general_purpose::STANDARD.encode(&req.body)), true),
        }
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let header = |name| req.headers.get(name).and_then(|h| h.to_str().ok());

    // The crate's types are non-exhaustive: built from their defaults, field by field.
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = req.method.clone();
    http.path = Some(path.to_string());
    http.protocol = Some("HTTP/1.1".to_string());
    http.source_ip = Some(req.client_ip.map(|ip| ip.to_string()).unwrap_or_default());
    http.user_agent = Some(header(http::header::USER_AGENT).unwrap_or("").to_string());
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.account_id = Some("anonymous".to_string());
    context.apiid = Some("arena".to_string());
    context.domain_name = Some(header(http::header::HOST).unwrap_or("arena").to_string());
    context.http = http;
    context.request_id = Some(req.request_id.clone());
    context.route_key = Some("$default".to_string());
    context.stage = Some("$default".to_string());
    context.time_epoch = now_ms;
    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".to_string());
    event.route_key = Some("$default".to_string());
    event.raw_path = Some(path.to_string());
    event.raw_query_string = Some(query.to_string());
    event.headers = headers;
    event.cookies = (!cookies.is_empty()).then_some(cookies);
    event.query_string_parameters = QueryMap::from(params);
    event.request_context = context;
    event.body = body;
    event.is_base64_encoded = b64;
    event
}

/// The event's headers (one value per name, repeated ones joined with commas, hop-by-hop ones
/// dropped, the request id added) and its cookies, as API Gateway builds them.
fn event_headers(req: &FaasRequest) -> (HeaderMap, Vec<String>) {
    let mut headers = HeaderMap::new();
    let mut cookies = Vec::new();
    for name in req.headers.keys() {
        let values: Vec<&str> = req
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if name == http::header::COOKIE {
            cookies.extend(values.iter().flat_map(|v| v.split(';')).map(|c| c.trim().to_string()));
            continue;
        }
        if values.is_empty() || (is_hop_header(name.as_str()) && name != http::header::HOST) {
            continue;
        }
        // One value per name, repeated ones joined with commas, as API Gateway does.
        if let Ok(v) = HeaderValue::from_str(&values.join(",")) {
            headers.insert(name.clone(), v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&req.request_id) {
        headers.insert(HeaderName::from_static("x-request-id"), v);
    }
    (headers, cookies)
}

/// The query's parameters: decoded, repeated keys joined with commas, as API Gateway does.
fn query_params(query: &str) -> HashMap<String, String> {
    let mut params: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match params.get_mut(k.as_ref()) {
            Some(prev) => {
                prev.push(',');
                prev.push_str(&v);
            }
            None => {
                params.insert(k.into_owned(), v.into_owned());
            }
        }
    }
    params
}

/// The event's JSON as an HTTP API sends it. The crate's type also models Custom Authorizer v1
/// payloads (their `httpMethod`, a GET unless set), always writes `stageVariables` and writes
/// unset members as `null`: an HTTP API event has none of these.
pub fn event_json(event: &ApiGatewayV2httpRequest) -> Result<Value, String> {
    let mut v = serde_json::to_value(event).map_err(|e| format!("event: {e}"))?;
    if let Some(o) = v.as_object_mut() {
        o.remove("httpMethod");
        o.remove("stageVariables");
    }
    drop_nulls(&mut v);
    Ok(v)
}

fn drop_nulls(v: &mut Value) {
    if let Value::Object(o) = v {
        o.retain(|_, m| !m.is_null());
        o.values_mut().for_each(drop_nulls);
    }
}

/// Most header names, and most cookies, a function's answer may carry: far more than any real
/// answer has, far fewer than an `http::HeaderMap` holds (its deserializer panics past ~24 k).
const MAX_ANSWER_HEADERS: usize = 1024;

/// Maps a function's result to HTTP like API Gateway v2 does: a `{statusCode, headers, body}`
/// object is taken literally; any other JSON value becomes a 200 with that JSON as the body.
pub fn from_proxy_result(payload: &[u8]) -> Result<FaasResponse, String> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("function answer is not JSON: {e}"))?;
    let mut obj = match v {
        Value::Object(o) if o.contains_key("statusCode") => o,
        _ => {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(FaasResponse {
                status: 200,
                headers,
                body: Bytes::copy_from_slice(payload),
            });
        }
    };
    // Payload format 2.0 has no `multiValueHeaders`; the crate's type would read them (and
    // panic on more than a header map holds).
    obj.remove("multiValueHeaders");
    // API Gateway takes header values of any JSON type and an absent `cookies`; the crate's type
    // does not.
    if let Some(Value::Object(h)) = obj.get_mut("headers") {
        if h.len() > MAX_ANSWER_HEADERS {
            return Err(format!(
                "function answer has {} headers, more than {MAX_ANSWER_HEADERS}",
                h.len()
            ));
        }
        for v in h.values_mut().filter(|v| !v.is_string()) {
            *v = Value::String(v.to_string());
        }
    }
    match obj.get("cookies") {
        None | Some(Value::Null) => {
            obj.insert("cookies".to_string(), Value::Array(Vec::new()));
        }
        Some(Value::Array(c)) if c.len() > MAX_ANSWER_HEADERS => {
            return Err(format!(
                "function answer has {} cookies, more than {MAX_ANSWER_HEADERS}",
                c.len()
            ));
        }
        Some(_) => {}
    }
    let result: ApiGatewayV2httpResponse = serde_json::from_value(Value::Object(obj))
        .map_err(|e| format!("function answer is not an API Gateway v2 result: {e}"))?;
    let status = u16::try_from(result.status_code)
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or("statusCode is not an HTTP status")?;
    let mut headers = HeaderMap::new();
    for (k, v) in &result.headers {
        if !is_hop_header(k.as_str()) {
            headers.append(k, v.clone());
        }
    }
    for cookie in &result.cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            headers.append(http::header::SET_COOKIE, v);
        }
    }
    let raw = result.body.as_deref().unwrap_or_default();
    let body = if result.is_base64_encoded {
        Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|e| format!("bad base64 body: {e}"))?,
        )
    } else {
        Bytes::copy_from_slice(raw)
    };
    Ok(FaasResponse { status, headers, body })
}

#[cfg(test)]
#[path = "lambda_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "lambda_props.rs"]
mod props;
