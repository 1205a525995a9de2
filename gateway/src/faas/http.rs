//! `kind: http` functions (Cloud Run functions, Knative, OpenFaaS, Alibaba FC / Tencent SCF web
//! functions, Lambda function URLs): the request is forwarded as-is to the function's URL.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{is_hop_header, FaasError, FaasRequest, FaasResponse, MAX_RESPONSE_BYTES};
use crate::config::FaasSpec;

pub struct HttpInvoker {
    base: String,
    client: reqwest::Client,
    extra: Vec<(HeaderName, HeaderValue)>,
}

impl HttpInvoker {
    pub fn new(url: &str, spec: &FaasSpec) -> Result<Self, String> {
        pingora::tls::install_default_crypto_provider();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(spec.max_concurrency as usize)
            .connect_timeout(spec.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let extra = spec
            .headers
            .iter()
            .filter_map(|(k, v)| HeaderValue::from_str(v).ok().map(|v| (k.clone(), v)))
            .collect();
        Ok(HttpInvoker {
            base: url.trim_end_matches('/').to_string(),
            client,
            extra,
        })
    }

    pub async fn invoke(&self, name: &str, req: &FaasRequest) -> Result<FaasResponse, FaasError> {
        let url = format!("{}{}", self.base, req.path_and_query);
        let mut headers = HeaderMap::with_capacity(req.headers.len() + self.extra.len() + 2);
        for (k, v) in &req.headers {
            if !is_hop_header(k.as_str()) {
                headers.append(k.clone(), v.clone());
            }
        }
        if let Ok(v) = HeaderValue::from_str(&req.request_id) {
            headers.insert("x-request-id", v);
        }
        if let Some(ip) = req.client_ip {
            let xff = match req.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(prev) => format!("{prev}, {ip}"),
                None => ip.to_string(),
            };
            if let Ok(v) = HeaderValue::from_str(&xff) {
                headers.insert("x-forwarded-for", v);
            }
        }
        for (k, v) in &self.extra {
            headers.insert(k.clone(), v.clone());
        }
        let transport = |e: reqwest::Error| FaasError::Transport {
            name: name.to_string(),
            cause: e.to_string(),
        };
        let resp = self
            .client
            .request(req.method.clone(), &url)
            .headers(headers)
            .body(req.body.clone())
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let mut out = HeaderMap::new();
        for (k, v) in resp.headers() {
            if !is_hop_header(k.as_str()) {
                out.append(k.clone(), v.clone());
            }
        }
        let body = read_limited(resp).await.map_err(|cause| FaasError::Transport {
            name: name.to_string(),
            cause,
        })?;
        Ok(FaasResponse {
            status,
            headers: out,
            body,
        })
    }
}

pub(super) async fn read_limited(mut resp: reqwest::Response) -> Result<Bytes, String> {
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if buf.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("answer larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
