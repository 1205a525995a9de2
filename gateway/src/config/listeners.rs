//! `listeners:` and `admin:` — the addresses the gateway binds at start.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use arena_core::config::defaults::admin as def;
use arena_core::config::fields::{check_unique, parse_addr};
use arena_core::diag::{Diagnostics, Seg};

use super::file::{AdminFile, ListenerFile, ReadToken};
use super::{Admin, Listener, Secret, Tls};

pub fn listeners(c: &mut Diagnostics<'_>, items: &[(usize, ListenerFile)]) -> Vec<Listener> {
    if items.is_empty() && !c.list().iter().any(|d| d.message.contains("listeners")) {
        c.error_at(
            &[Seg::Key("listeners")],
            "no listeners configured",
            Some("add `listeners: [{ name: public, address: 127.0.0.1:8080 }]`".into()),
        );
    }
    check_unique(c, "listeners", items.iter().map(|(i, l)| (*i, l.name.as_str())));
    let mut out = Vec::new();
    let mut addrs: HashSet<SocketAddr> = HashSet::new();
    for (i, l) in items {
        let path = [Seg::Key("listeners"), Seg::Index(*i), Seg::Key("address")];
        let Some(address) = parse_addr(c, &path, &l.address, "listener") else {
            continue;
        };
        if !addrs.insert(address) {
            c.error_at(&path, format!("address {address} is used by two listeners"), None);
        }
        let tls = l.tls.as_ref().map(|t| Tls {
            cert_file: PathBuf::from(&t.cert_file),
            key_file: PathBuf::from(&t.key_file),
            http2: t.http2,
        });
        if let Some(t) = &tls {
            check_tls_files(c, *i, t);
        }
        out.push(Listener {
            name: l.name.clone(),
            address,
            tls,
        });
    }
    out
}

fn check_tls_files(c: &mut Diagnostics<'_>, i: usize, t: &Tls) {
    for (key, file) in [("cert_file", &t.cert_file), ("key_file", &t.key_file)] {
        if let Err(e) = std::fs::metadata(file) {
            c.error_at(
                &[Seg::Key("listeners"), Seg::Index(i), Seg::Key("tls"), Seg::Key(key)],
                format!("cannot read {key} `{}`: {e}", file.display()),
                Some("give a PEM file readable by the gateway".into()),
            );
        }
    }
}

pub fn admin(c: &mut Diagnostics<'_>, a: Option<AdminFile>, listeners: &[Listener]) -> Option<Admin> {
    let a = a.unwrap_or(AdminFile {
        address: def::ADDRESS.into(),
        token_env: None,
        read_token: None,
    });
    let address = parse_addr(c, &[Seg::Key("admin"), Seg::Key("address")], &a.address, "admin")?;
    if listeners.iter().any(|l| l.address == address) {
        c.error_at(
            &[Seg::Key("admin"), Seg::Key("address")],
            format!("admin address {address} is also a listener"),
            Some("give the admin API its own port".into()),
        );
    }
    let loopback = address.ip().is_loopback();
    let required_by_default = if loopback {
        def::READ_TOKEN_REQUIRED_ON_LOOPBACK
    } else {
        def::READ_TOKEN_REQUIRED_BEYOND_LOOPBACK
    };
    let read_token = a.read_token.unwrap_or(if required_by_default {
        ReadToken::Required
    } else {
        ReadToken::Optional
    });
    let token = a
        .token_env
        .as_ref()
        .and_then(|name| c.env(name))
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    match (&a.token_env, &token, read_token) {
        // Reads need a token nobody can have: fail closed at load, not with every scrape.
        (None, _, ReadToken::Required) => {
            let (at, why) = match a.read_token {
                Some(_) => ("read_token", "`read_token: required`".to_string()),
                None => ("address", format!("{address} is beyond loopback")),
            };
            c.error_at(
                &[Seg::Key("admin"), Seg::Key(at)],
                format!("admin reads need the bearer token ({why}), but no `admin.token_env` is set"),
                Some(format!(
                    "set `token_env` to a variable holding the token (Prometheus then scrapes with \
                     `Authorization: Bearer <token>`), or `read_token: optional` to open /metrics, /config \
                     and /clusters to whoever reaches {address}"
                )),
            );
        }
        (Some(name), None, ReadToken::Required) => c.error_at(
            &[Seg::Key("admin"), Seg::Key("token_env")],
            format!("environment variable `{name}` is unset or empty, and admin reads need the token"),
            Some(format!(
                "export {name}=<secret> before starting the gateway, or set `read_token: optional`"
            )),
        ),
        (None, _, ReadToken::Optional) if !loopback => c.warn_at(
            &[Seg::Key("admin"), Seg::Key("address")],
            "admin API listens beyond loopback without a token: reads are open, mutating calls disabled",
            Some("set `admin.token_env` so every call but the probes needs a bearer token".into()),
        ),
        (Some(name), None, ReadToken::Optional) => c.warn_at(
            &[Seg::Key("admin"), Seg::Key("token_env")],
            format!("environment variable `{name}` is unset: mutating admin calls (POST /reload) are disabled"),
            Some(format!("export {name}=<secret> before starting the gateway")),
        ),
        (Some(_), Some(_), ReadToken::Optional) if !loopback => c.warn_at(
            &[Seg::Key("admin"), Seg::Key("read_token")],
            format!("admin reads (/metrics, /config, /clusters) are open to whoever reaches {address}"),
            Some("leave `read_token` out: beyond loopback reads then need the token too".into()),
        ),
        _ => {}
    }
    Some(Admin {
        address,
        token_env: a.token_env,
        token,
        read_token,
    })
}
