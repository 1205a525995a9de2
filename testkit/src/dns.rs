//! A DNS readiness probe: one query over UDP, built and parsed with hickory's wire types.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

/// Queried name: reserved (RFC 6761), so no real data can ever answer it.
const PROBE_NAME: &str = "ready.invalid.";

/// Asks `server` for `ready.invalid. A` and waits up to `timeout` for the reply. Any reply to
/// this query, even NXDOMAIN, proves the server is serving.
pub fn probe(server: SocketAddr, timeout: Duration) -> Result<(), String> {
    let id = rand::random::<u16>();
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    let name = Name::from_ascii(PROBE_NAME).map_err(|e| format!("{PROBE_NAME}: {e}"))?;
    query.add_query(Query::query(name, RecordType::A));
    let bytes = query.to_vec().map_err(|e| format!("encode DNS query: {e}"))?;

    let local = if server.is_ipv4() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    } else {
        SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
    };
    let sock = UdpSocket::bind(local).map_err(|e| format!("bind {local}: {e}"))?;
    // Connected: only the server's datagrams arrive, and an ICMP refusal surfaces as an error.
    sock.connect(server).map_err(|e| format!("{server}: {e}"))?;
    sock.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    sock.send(&bytes).map_err(|e| format!("{server}: {e}"))?;
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).map_err(|e| format!("{server}: {e}"))?;
    let reply = Message::from_vec(&buf[..n]).map_err(|e| format!("{server}: not a DNS message: {e}"))?;
    if reply.metadata.id != id || reply.metadata.message_type != MessageType::Response {
        return Err(format!("{server}: a reply to another query"));
    }
    Ok(())
}

/// [`probe`] succeeded.
pub fn answers(server: SocketAddr, timeout: Duration) -> bool {
    probe(server, timeout).is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A one-shot fake server that answers whatever it gets, proving the query is well formed.
    #[test]
    fn a_reply_to_our_query_counts_and_silence_does_not() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let q = Message::from_vec(&buf[..n]).unwrap();
            assert_eq!(q.queries[0].name().to_ascii(), PROBE_NAME);
            let mut reply = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            reply.add_query(q.queries[0].clone());
            server.send_to(&reply.to_vec().unwrap(), from).unwrap();
        });
        probe(addr, Duration::from_secs(10)).unwrap();
        t.join().unwrap();
        // Nothing answers any more: an error, not a hang.
        assert!(!answers(addr, Duration::from_millis(200)));
    }
}
