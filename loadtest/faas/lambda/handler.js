'use strict';

// Arena's esports API as a Lambda function: takes an API Gateway v2 (payload format 2.0) event,
// the kind the gateway's `aws_lambda` fallback sends through the Invoke API, and answers an
// API Gateway v2 proxy result `{statusCode, headers, body}`.
//
//   POST /v1/verify          -> 200 {"verified":true,"bytes":N,...}
//   GET  /v1/matches[/...]   -> 200 {"served_by":"faas-lambda","path":...}
//   GET  /v1/players[/...]   -> 200 {"served_by":"faas-lambda","path":...}
//   GET  /_fn/healthz        -> 200 {"ok":true} (readiness polling)
//   any  /_fn/throw          -> the handler throws (an unhandled function error, for tests)
//   anything else            -> 404
//
// `?sleep_ms=N` (at most 10000) delays the answer so tests can hold an invocation in flight.

const SERVED_BY = 'faas-lambda';
const MAX_SLEEP_MS = 10000;

function header(headers, name) {
  if (!headers) return undefined;
  const want = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === want) return v;
  }
  return undefined;
}

function bodyBytes(event) {
  if (event.body === undefined || event.body === null) return Buffer.alloc(0);
  return event.isBase64Encoded ? Buffer.from(event.body, 'base64') : Buffer.from(String(event.body), 'utf8');
}

function reply(status, payload, requestId) {
  const headers = {
    'content-type': 'application/json',
    'x-served-by': SERVED_BY,
  };
  if (requestId) headers['x-request-id'] = requestId;
  return { statusCode: status, headers, body: JSON.stringify(payload), isBase64Encoded: false };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function under(path, prefix) {
  return path === prefix || path.startsWith(`${prefix}/`);
}

exports.handler = async (event) => {
  const http = (event.requestContext && event.requestContext.http) || {};
  const method = String(http.method || event.httpMethod || 'GET').toUpperCase();
  const path = event.rawPath || http.path || event.path || '/';
  const query = event.queryStringParameters || {};
  const requestId = header(event.headers, 'x-request-id');

  const sleepMs = Math.max(0, Math.min(Number.parseInt(query.sleep_ms, 10) || 0, MAX_SLEEP_MS));
  if (sleepMs > 0) await sleep(sleepMs);

  const base = { served_by: SERVED_BY, path, method, request_id: requestId || null };
  if (sleepMs > 0) base.slept_ms = sleepMs;

  if (path === '/_fn/throw') {
    throw new Error(`arena-faas: failure requested by ${requestId || 'a test'}`);
  }
  if (path === '/_fn/healthz') {
    return reply(200, { ok: true, served_by: SERVED_BY }, requestId);
  }
  if (path === '/v1/verify') {
    if (method !== 'POST') return reply(405, { ...base, error: 'method not allowed' }, requestId);
    return reply(200, { ...base, verified: true, bytes: bodyBytes(event).length }, requestId);
  }
  if (under(path, '/v1/matches') || under(path, '/v1/players')) {
    if (method !== 'GET' && method !== 'HEAD') {
      return reply(405, { ...base, error: 'method not allowed' }, requestId);
    }
    return reply(200, { ...base, query }, requestId);
  }
  return reply(404, { ...base, error: 'not found' }, requestId);
};
